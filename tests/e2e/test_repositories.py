"""Repository tasks end to end: several real `claude` agents work on one git repository at once,
each in a clone of its own on its branch; their commits and leftovers reach the repository's
branches, the diff is recorded and the branches are pushed to a bare remote."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from cca_api import create_app
from tests.support.fleet import FleetAPI, bash

pytestmark = pytest.mark.e2e
AGENTS = 3


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repository(config_data: dict[str, Any]) -> Path:
    root = Path(config_data["agents"]["allowed_roots"][0])
    repo = root / "project"
    (repo / "tests").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "dev")
    for n in range(AGENTS):
        (repo / "tests" / f"test_{n}.py").write_text(f"def test_{n}():\n    assert {n} == -1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "failing tests")
    git(root, "init", "-q", "--bare", "remote.git")
    git(repo, "remote", "add", "origin", str(root / "remote.git"))
    return repo


def fix(n: int) -> list[dict[str, Any]]:
    """An agent that fixes tests/test_<n>.py and commits it, then leaves a note uncommitted."""
    return [bash("git rev-parse --show-toplevel"),
            {"tool_use": {"name": "Read", "input": {"file_path": f"{{tool_result}}/tests/test_{n}.py"}}},
            bash("git rev-parse --show-toplevel"),  # (the CLI writes only a file it read)
            {"tool_use": {"name": "Write", "input": {
                "file_path": f"{{tool_result}}/tests/test_{n}.py",
                "content": f"def test_{n}():\n    assert {n} == {n}\n"}}},
            bash(f"git commit -qam 'fix test_{n}'"),
            bash("git rev-parse --show-toplevel"),
            {"tool_use": {"name": "Write", "input": {
                "file_path": f"{{tool_result}}/tests/NOTES_{n}.md", "content": "checked\n"}}},
            {"text": f"fixed test_{n}"}]


def test_agents_fix_one_repository_at_once_each_on_its_own_branch(
        make_settings, start_worker, repository):
    sections = {"daemon": {"max_agents": AGENTS}}
    start_worker("w1", **sections)
    api = FleetAPI(create_app(make_settings(**sections)).test_client())
    main = git(repository, "rev-parse", "main")
    tasks = [api.submit(*fix(n), repo=str(repository), push=True)["id"] for n in range(AGENTS)]
    done = [api.wait_terminal(task_id, timeout_s=120) for task_id in tasks]

    assert [task["status"] for task in done] == ["succeeded"] * AGENTS, done
    spans = sorted((task["started_at"], task["finished_at"]) for task in done)
    assert spans[1][0] < spans[0][1]  # they ran at the same time
    workdirs = {event["data"]["cwd"] for task_id in tasks for event in api.events(task_id)
                if event["subtype"] == "init"}
    assert len(workdirs) == AGENTS and str(repository) not in workdirs  # a clone each
    for n, (task_id, task) in enumerate(zip(tasks, done, strict=True)):
        assert task["branch"] == f"cca/{task_id}" and task["repo"] == str(repository)
        found = api.client.get(f"/api/v1/tasks/{task_id}/diff").get_json()
        assert (found["base"], found["branch"], found["pushed"]) == (main, f"cca/{task_id}", True)
        results = [str(event["data"]["message"]["content"])[:300] for event in api.events(task_id)
                   if event["type"] == "user"]
        assert [c["subject"] for c in found["commits"]] == [
            f"cca: what task {task_id} left uncommitted", f"fix test_{n}"], "\n".join(results)
        assert (found["files"], found["insertions"], found["deletions"]) == (2, 2, 1)
        assert f"+    assert {n} == {n}" in found["diff"] and f"tests/NOTES_{n}.md" in found["diff"]
        assert git(repository, "rev-parse", f"cca/{task_id}") == found["head"]
        assert git(repository.parent / "remote.git", "rev-parse", f"cca/{task_id}") == found["head"]
        assert not Path(next(iter(w for w in workdirs if task_id in w))).exists()  # clone removed
    # the repository's own tree and main are as they were
    assert git(repository, "status", "--porcelain") == "" and git(repository, "rev-parse", "main") == main
    assert "assert 0 == -1" in (repository / "tests" / "test_0.py").read_text()
    plain = api.submit({"text": "no repository"})
    api.wait_terminal(plain["id"])
    missing = api.client.get(f"/api/v1/tasks/{plain['id']}/diff")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "no_changes"
