"""Fixtures of the integration tier: a real `cca api` process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cca_core.embedded import free_port
from tests.support import toml
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment without any CCA setting, with a private HOME."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CCA")}
    return {**env, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO),
            "CCA_TEST_CWD": str(tmp_path)}


@pytest.fixture
def fleet_env(base_env, tmp_path, config_data) -> dict[str, str]:
    config = toml.write(tmp_path / "cca.toml", config_data)
    return {**base_env, "CCA_CONFIG": str(config)}


@pytest.fixture
def api_url(fleet_env) -> str:
    """A real `cca api` (gunicorn) process."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "cca_cli.main", "api", "--bind",
                                f"127.0.0.1:{port}", "--processes", "1"], env=fleet_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code in (200, 503)
        except httpx.TransportError:
            return process.poll() is not None

    wait_for(up, timeout_s=30, message="the API to answer")
    assert process.poll() is None
    yield url
    process.terminate()
    process.wait(15)


