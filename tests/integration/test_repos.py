"""Repository tasks' git side on real repositories: a clone per run on the task's branch, the
agent's commits and leftovers brought back, a diff recorded, a push to a bare remote, and
nothing the agent plants in its clone run by the worker."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cca_core.errors import Invalid
from cca_worker import repos


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "dev")
    (path / "parser.py").write_text("def parse(text):\n    return text.split(',')\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "first")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(path, "remote", "add", "origin", str(remote))
    return path


def test_two_tasks_on_one_repository_work_in_clones_of_their_own(repo, tmp_path):
    first = repos.open_clone(repo, None, "task-1", tmp_path / "work" / "task-1")
    second = repos.open_clone(repo, None, "task-2", tmp_path / "work" / "task-2")
    (first.path / "parser.py").write_text("changed by one\n")
    assert (second.path / "parser.py").read_text().startswith("def parse")  # untouched
    assert git(first.path, "branch", "--show-current") == "cca/task-1"
    assert first.base == git(repo, "rev-parse", "HEAD") and first.objects == repo / ".git" / "objects"
    assert not first.resumed
    assert git(repo, "status", "--porcelain") == ""  # the repository's own tree is never touched


def test_the_agents_commits_and_leftovers_reach_the_branch_with_a_diff(repo, tmp_path):
    clone = repos.open_clone(repo, None, "t", tmp_path / "work" / "t")
    (clone.path / "test_parser.py").write_text("def test_parse():\n    assert parse('a,b') == ['a', 'b']\n")
    git(clone.path, "add", "test_parser.py")
    git(clone.path, "commit", "-qm", "add a test")
    (clone.path / "parser.py").write_text("def parse(text):\n    return text.split(',') if text else []\n")
    head = repos.checkpoint(clone, "cca: what task t left uncommitted", final=True)
    assert git(repo, "rev-parse", "cca/t") == head
    found = repos.changes(clone, head)
    assert [commit["subject"] for commit in found.commits] == ["cca: what task t left uncommitted",
                                                                 "add a test"]
    assert (found.files, found.insertions, found.deletions) == (2, 3, 1)
    assert "+    return text.split(',') if text else []" in found.diff and not found.truncated
    assert repos.push(clone) is None
    assert git(tmp_path / "remote.git", "rev-parse", "cca/t") == head
    repos.remove(clone)
    again = repos.open_clone(repo, None, "t", tmp_path / "work" / "t")  # a later run of the task
    assert again.start == head and again.base == found.base and again.resumed
    assert "if text else []" in (again.path / "parser.py").read_text()


def test_a_run_killed_mid_way_leaves_a_checkpoint_the_next_run_starts_from(repo, tmp_path):
    clone = repos.open_clone(repo, None, "t", tmp_path / "work" / "t")
    (clone.path / "parser.py").write_text("half done\n")
    mid = repos.checkpoint(clone, "cca: checkpoint", final=False)
    assert git(repo, "branch", "--list", "cca/t") == ""  # the branch waits for the run's end
    repos.remove(clone)
    again = repos.open_clone(repo, None, "t", tmp_path / "work" / "t2")
    assert again.resumed and again.start == mid
    assert (again.path / "parser.py").read_text() == "half done\n"
    head = repos.checkpoint(again, "cca: end", final=True)
    assert git(repo, "rev-parse", "cca/t") == head
    assert "refs/cca/" not in git(repo, "for-each-ref")  # no checkpoint left behind


def test_nothing_the_agent_plants_in_its_clone_runs_on_the_workers_side(repo, tmp_path):
    clone = repos.open_clone(repo, None, "t", tmp_path / "work" / "t")
    marker = tmp_path / "planted-ran"
    git(clone.path, "config", "core.fsmonitor", f"touch {marker}")
    git(clone.path, "config", "core.hooksPath", str(clone.path / "hooks"))
    (clone.path / "hooks").mkdir()
    for hook in ("pre-commit", "post-checkout", "reference-transaction", "pre-auto-gc"):
        script = clone.path / "hooks" / hook
        script.write_text(f"#!/bin/sh\ntouch {marker}\n")
        script.chmod(0o755)
    git(clone.path, "config", "filter.evil.clean", f"touch {marker}; cat")
    (clone.path / ".gitattributes").write_text("* filter=evil\n")
    (clone.path / "new.txt").write_text("x\n")
    head = repos.checkpoint(clone, "cca: left over", final=True)
    repos.changes(clone, head)
    assert not marker.exists()
    assert "new.txt" in git(repo, "show", "--name-only", "--format=", head)


def test_a_bad_repository_or_base_is_named(repo, tmp_path):
    with pytest.raises(Invalid) as error:
        repos.open_clone(tmp_path, None, "t", tmp_path / "work" / "t")
    assert error.value.field == "repo"
    with pytest.raises(Invalid) as error:
        repos.open_clone(repo, "no-such-branch", "t", tmp_path / "work" / "t")
    assert error.value.field == "base"
    with pytest.raises(Invalid) as error:
        repos.open_clone(repo, "--upload-pack=touch", "t", tmp_path / "work" / "t")
    assert error.value.field == "base"
