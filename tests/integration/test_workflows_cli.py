"""`cca workflows` as a user runs it: a YAML file through a real API process to real workers."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.cli import cca
from tests.support.fleet import script

pytestmark = pytest.mark.integration


def test_a_yaml_workflow_runs_to_the_end_and_shows_as_a_tree(fleet_env, api_url, start_worker,
                                                            tmp_path):
    start_worker("w1")
    path = tmp_path / "review.yaml"
    path.write_text(f"""
name: review
failure_policy: continue
tasks:
  - name: scan
    role: security
    prompt: 'scan: {script({"text": "no secrets found"})}'
  - name: summary
    role: qa
    depends_on: [scan]
    prompt: 'summary: {script({"text": "all clear"})}'
""")
    run = cca("--api-url", api_url, "workflows", "run", str(path), "--wait", "--json",
              env=fleet_env)
    assert run.returncode == 0, run.stderr
    workflow = json.loads(run.stdout)
    assert workflow["status"] == "succeeded"
    assert [(s["name"], s["status"]) for s in workflow["tasks"]] == [
        ("scan", "succeeded"), ("summary", "succeeded")]

    shown = cca("--api-url", api_url, "workflows", "show", workflow["id"], env=fleet_env)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert re.match(rf"✓ review\s+{workflow['id']}\s+succeeded", out), out
    assert re.search(r"├── ✓ scan\s+security\s+succeeded", out), out
    assert re.search(r"└── ✓ summary\s+qa\s+succeeded\s+after scan\s+on w1@test", out), out
    listed = cca("--api-url", api_url, "workflows", "list", "--json", env=fleet_env)
    assert [w["id"] for w in json.loads(listed.stdout)["workflows"]] == [workflow["id"]]


def test_a_bad_workflow_file_says_what_is_wrong_in_one_line(fleet_env, api_url, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ntasks: [\n")
    result = cca("--api-url", api_url, "workflows", "run", str(broken), env=fleet_env)
    assert result.returncode == 2 and "is not valid YAML at line" in result.stderr
    assert "Traceback" not in result.stderr
    cyclic = tmp_path / "cyclic.yaml"
    cyclic.write_text("name: x\ntasks:\n  - {name: a, prompt: p, depends_on: [b]}\n"
                      "  - {name: b, prompt: p, depends_on: [a]}\n")
    result = cca("--api-url", api_url, "workflows", "run", str(cyclic), env=fleet_env)
    assert result.returncode == 1 and "cycle" in result.stderr and "(field tasks)" in result.stderr
    missing = cca("--api-url", api_url, "workflows", "run", str(tmp_path / "nope.yaml"),
                  env=fleet_env)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
