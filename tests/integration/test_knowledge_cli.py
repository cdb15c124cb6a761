"""`cca memory` and `cca code` as a user runs them, through a real API process to a real
worker; bad input is one line naming what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import cca

pytestmark = pytest.mark.integration


def test_memory_commands_round_trip(fleet_env, api_url, tmp_path):
    def run(*args: str):
        done = cca("--api-url", api_url, "memory", *args, env=fleet_env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    memory_id = run("store", "Staging deploys need the VPN up first", "--tag", "ops").strip()
    assert len(memory_id) == 36
    found = run("search", "why does the rollout to staging hang")
    assert "note #ops" in found and "Staging deploys need the VPN up first" in found
    assert json.loads(run("stats", "--json"))["total"] == 1
    exported = tmp_path / "memories.jsonl"
    run("export", str(exported))
    assert json.loads(exported.read_text())["content"] == "Staging deploys need the VPN up first"
    assert run("import", str(exported)).strip() == "1 memories imported"
    assert json.loads(run("stats", "--json"))["total"] == 2

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"content": "ok"}\nnot json\n')
    bad = cca("--api-url", api_url, "memory", "import", str(broken), env=fleet_env)
    assert bad.returncode == 2 and bad.stderr.strip().endswith("line 2 is not JSON")
    bad_k = cca("--api-url", api_url, "memory", "search", "x", "-k", "99", env=fleet_env)
    assert bad_k.returncode == 2 and "-k" in bad_k.stderr


def test_code_commands_index_and_search_a_tree(fleet_env, api_url, config_data, start_worker):
    start_worker("w1")
    root = Path(config_data["agents"]["allowed_roots"][0]) / "app"
    root.mkdir()
    (root / "mail.py").write_text('def send_welcome(user):\n    """Email a new user a greeting."""\n')
    (root / "math.py").write_text('def mean(xs):\n    """The average of the numbers."""\n')
    indexed = cca("--api-url", api_url, "code", "index", str(root), "--json", env=fleet_env)
    assert indexed.returncode == 0, indexed.stderr
    job = json.loads(indexed.stdout)
    assert job["status"] == "succeeded" and job["progress"]["files_indexed"] == 2
    found = cca("--api-url", api_url, "code", "search", "greet someone who just signed up",
                "--limit", "1", env=fleet_env)
    assert found.returncode == 0 and found.stdout.startswith("mail.py:1-2 function send_welcome")
    status = cca("--api-url", api_url, "code", "status", env=fleet_env)
    assert f"{root}: 2 files, 2 chunks" in status.stdout and "succeeded" in status.stdout
    outside = cca("--api-url", api_url, "code", "index", "/etc", env=fleet_env)
    assert outside.returncode != 0 and "path /etc is outside the allowed roots" in outside.stderr
