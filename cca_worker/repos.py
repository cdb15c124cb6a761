"""Repository tasks: each run works in a clone of its own (``git clone --shared``: the
repository's objects, read-only, and a work tree and branch ``cca/<task id>`` of its own), so
runs on one repository never share files; the worker brings what it did back to that branch
in the repository, records the diff, pushes the branch if asked and removes the clone.

The agent may change anything in its clone, its ``.git/config`` and hooks included, so the
worker never runs git *in* the clone: it reads the clone through the repository's own git
(``--work-tree`` over a private index; ``fetch`` for the agent's commits), with hooks and
fsmonitor off. The repository's remote and its credentials stay on the worker's side: the
agent's clone knows the repository only as a path it cannot write.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cca_core.errors import Invalid
from cca_core.names import TASK_BRANCH_PREFIX, branch_of
from cca_core.tasks.changes import Changes

SAFE = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "protocol.file.allow=always")
GIT_TIMEOUT_S = 120
MAX_DIFF_BYTES = 1_000_000
AGENT_IDENTITY = ("cca agent", "agent@cca.invalid")


class GitFailed(Exception):
    """A git command of the worker failed (its stderr is the message)."""


@dataclass(frozen=True)
class Clone:
    """A run's clone: where the agent works, what it started from."""

    repo: Path  # the repository's top directory
    objects: Path  # the repository's object store, the one thing of it the agent reads
    path: Path
    branch: str
    base: str  # the commit the task's branch started from
    start: str  # the commit this run's clone started from
    resumed: bool  # started from an earlier run's checkpoint or branch, not from the base


def checkpoint_ref(task_id: str) -> str:
    """Where a run's state goes after each tool result (the branch gets it when it ends)."""
    return f"refs/cca/checkpoints/{task_id}"


def open_clone(repo: Path, base: str | None, task_id: str, into: Path) -> Clone:
    """Clone ``repo`` into ``into`` on the task's branch: from the last checkpoint an earlier
    run left (mid-run, else at its end), else from ``base`` (the repository's HEAD when None).
    Raises Invalid naming ``repo`` or ``base``, or GitFailed."""
    top = _repository(repo)
    branch = branch_of(task_id)
    try:
        base_commit = _git(top, "rev-parse", "--verify", "--end-of-options", f"{base or 'HEAD'}^{{commit}}")
    except GitFailed:
        raise Invalid(f"base {base or 'HEAD'} is not a commit of {top}", field="base") from None
    earlier = _ref(top, checkpoint_ref(task_id)) or _ref(top, f"refs/heads/{branch}")
    start = earlier or base_commit
    if into.exists():
        shutil.rmtree(into)
    into.parent.mkdir(parents=True, exist_ok=True)
    _git(into.parent, "clone", "--quiet", "--shared", "--no-checkout", "--", str(top), str(into))
    # A fresh clone holds nothing of the agent's yet: git may run in it this once.
    _git(into, "config", "user.name", AGENT_IDENTITY[0])
    _git(into, "config", "user.email", AGENT_IDENTITY[1])
    _git(into, "checkout", "--quiet", "-B", branch, start)
    objects = Path(_git(top, "rev-parse", "--path-format=absolute", "--git-common-dir")) / "objects"
    return Clone(top, objects, into, branch, _merge_base(top, base_commit, start), start,
                 earlier is not None)


def checkpoint(clone: Clone, message: str, *, final: bool) -> str:
    """Bring the clone's state to the repository: the agent's commits, then what it left
    uncommitted as one more commit, on the task's branch when the run ends (``final``), else
    on its checkpoint ref. Returns that commit."""
    task_id = clone.branch.removeprefix(TASK_BRANCH_PREFIX)
    incoming = f"refs/cca/incoming/{task_id}"
    _git(clone.repo, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", str(clone.path),
         f"+HEAD:{incoming}")
    committed = _git(clone.repo, "rev-parse", "--verify", incoming)
    with tempfile.TemporaryDirectory(prefix="cca-index-") as scratch:
        env = {"GIT_INDEX_FILE": os.path.join(scratch, "index")}
        tree_args = ("--git-dir", str(_git_dir(clone.repo)), "--work-tree", str(clone.path))
        # run inside the clone, but with the repository's git dir named: the clone's own
        # .git (and its config) is never looked at
        _git(clone.path, *tree_args, "read-tree", committed, env=env)
        _git(clone.path, *tree_args, "add", "--all", "--", ".", env=env)
        tree = _git(clone.path, *tree_args, "write-tree", env=env)
    head = committed
    if tree != _git(clone.repo, "rev-parse", f"{committed}^{{tree}}"):
        identity = {"GIT_AUTHOR_NAME": AGENT_IDENTITY[0], "GIT_AUTHOR_EMAIL": AGENT_IDENTITY[1],
                    "GIT_COMMITTER_NAME": AGENT_IDENTITY[0], "GIT_COMMITTER_EMAIL": AGENT_IDENTITY[1]}
        head = _git(clone.repo, "commit-tree", tree, "-p", committed, "-m", message, env=identity)
    _git(clone.repo, "update-ref", f"refs/heads/{clone.branch}" if final else checkpoint_ref(task_id), head)
    _git(clone.repo, "update-ref", "-d", incoming)
    if final:
        _git(clone.repo, "update-ref", "-d", checkpoint_ref(task_id))
    return head


def changes(clone: Clone, head: str) -> Changes:
    """The branch's commits and diff over its base (the diff cut at ``MAX_DIFF_BYTES``)."""
    span = f"{clone.base}..{head}"
    log = _git(clone.repo, "log", "--format=%H%x1f%an%x1f%aI%x1f%s", span)
    commits = [dict(zip(("sha", "author", "date", "subject"), line.split("\x1f"), strict=True))
               for line in log.splitlines() if line]
    files = insertions = deletions = 0
    for line in _git(clone.repo, "diff", "--numstat", clone.base, head).splitlines():
        added, removed, _ = line.split("\t", 2)
        files += 1
        insertions += int(added) if added.isdigit() else 0
        deletions += int(removed) if removed.isdigit() else 0
    diff = _git(clone.repo, "diff", "--no-color", "--no-ext-diff", clone.base, head, strip=False)
    truncated = len(diff.encode()) > MAX_DIFF_BYTES
    if truncated:
        diff = diff.encode()[:MAX_DIFF_BYTES].decode(errors="ignore")
    return Changes(clone.branch, clone.base, head, commits, files, insertions, deletions, diff,
                   truncated)


def push(clone: Clone) -> str | None:
    """Push the task's branch to the repository's remote (``origin``, else its only remote)
    with the worker's own git credentials. Returns why it could not, or None."""
    remotes = _git(clone.repo, "remote").split()
    remote = "origin" if "origin" in remotes else (remotes[0] if len(remotes) == 1 else None)
    if remote is None:
        return "the repository has no remote to push to" if not remotes else \
            f"the repository has several remotes and none is origin: {', '.join(remotes)}"
    try:
        ref = f"refs/heads/{clone.branch}"
        _git(clone.repo, "push", "--quiet", "--", remote, f"{ref}:{ref}")
    except GitFailed as exc:
        return f"git push to {remote} failed: {exc}"
    return None


def remove(clone: Clone) -> None:
    shutil.rmtree(clone.path, ignore_errors=True)


def _repository(path: Path) -> Path:
    if not path.is_dir():
        raise Invalid(f"repo {path} is not a directory", field="repo")
    try:
        top = _git(path, "rev-parse", "--show-toplevel")
    except GitFailed:
        raise Invalid(f"repo {path} is not a git repository", field="repo") from None
    return Path(top)


def _git_dir(repo: Path) -> Path:
    return Path(_git(repo, "rev-parse", "--path-format=absolute", "--git-dir"))


def _ref(repo: Path, name: str) -> str | None:
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", name)
    except GitFailed:
        return None


def _merge_base(repo: Path, base: str, start: str) -> str:
    """The task's base: ``base``, unless an earlier run's branch does not descend from it."""
    try:
        return _git(repo, "merge-base", base, start)
    except GitFailed:
        return base


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None, strip: bool = True) -> str:
    """Run one git command of the worker's; its output, or GitFailed."""
    command: Sequence[str] = ["git", *SAFE, *args]
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}
    try:
        done = subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitFailed(f"git {args[0]}: {exc}") from None
    if done.returncode != 0:
        raise GitFailed(done.stderr.strip()[-500:] or f"git {args[0]} exited {done.returncode}")
    return done.stdout.strip() if strip else done.stdout
