"""`cca keys` as an admin runs it, against a real API process: limits set at creation are
shown in the key view; limits beyond the fleet are one line naming the field."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import start_api_process

pytestmark = pytest.mark.integration
ADMIN = "config-admin-key-0123456789"


def test_a_key_is_created_with_limits_and_listed_with_them(tmp_path, config_data, fleet_env):
    url = start_api_process(tmp_path, {**config_data, "daemon": {
        **config_data["daemon"], "require_auth": True, "api_keys": [ADMIN]}})
    root = config_data["agents"]["allowed_roots"][0]

    def cca(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cca_cli.main", "--api-url", url, "--api-key",
                               ADMIN, "keys", *args], env={**fleet_env, "COLUMNS": "300"}, text=True,
                              capture_output=True, timeout=60)

    created = cca("create", "web", "--allowed-queue", "cca", "--allowed-permission-mode", "sandbox",
                  "--allowed-permission-mode", "allowlist", "--max-token-budget", "5000",
                  "--max-timeout-seconds", "300", "--max-budget-usd", "0.5", "--cwd-root", root)
    assert created.returncode == 0 and created.stdout.startswith("cca_"), created.stderr
    [view] = json.loads(cca("list", "--json").stdout)
    assert {field: view[field] for field in ("allowed_queues", "allowed_permission_modes",
                                             "max_token_budget", "max_timeout_seconds",
                                             "max_budget_usd", "cwd_roots", "allowed_roles")} == {
        "allowed_queues": ["cca"], "allowed_permission_modes": ["sandbox", "allowlist"],
        "max_token_budget": 5000, "max_timeout_seconds": 300, "max_budget_usd": 0.5,
        "cwd_roots": [root], "allowed_roles": None}
    assert "max_token_budget=5000" in cca("list").stdout

    outside = cca("create", "evil", "--cwd-root", "/etc")
    assert outside.returncode == 1 and "(field cwd_roots[0])" in outside.stderr
    assert "Traceback" not in outside.stderr
