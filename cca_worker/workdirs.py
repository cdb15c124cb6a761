"""Where a run works, and what becomes of it: a per-task directory (packed with the session so
a resumed run gets it back), the task's own ``cwd`` (as it is), or a clone of the task's
repository (cca_worker.repos: checkpointed to the repository after each tool result, its
branch and diff recorded when the run ends, then removed)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sqlalchemy import Engine

from cca_core.infra.db import autocommit
from cca_core.models import Task
from cca_core.names import TASK_BRANCH_PREFIX
from cca_core.settings import Settings
from cca_core.tasks import changes as recorded
from cca_core.tasks.changes import Changes
from cca_core.tasks.workspace import check_cwd, prepare_workdir
from cca_worker import repos
from cca_worker.outage import is_transient
from cca_worker.sessions import Packer, pack_directory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workdir:
    path: Path
    clone: repos.Clone | None = None
    # How the session keeps the files for a resumed run (None: they stay where they are).
    pack: Packer | None = None
    # Why a resumed run cannot have the files its session saw (it starts over), if so.
    lost: str | None = None

    @property
    def readonly(self) -> tuple[Path, ...]:
        """What a confined agent must read besides its workdir: a clone's objects."""
        return (self.clone.objects,) if self.clone is not None else ()


def open_workdir(task: Task, settings: Settings, attempt: int) -> Workdir:
    """The run's workdir. Raises Invalid (naming ``cwd``, ``repo`` or ``base``) or GitFailed."""
    task_id = str(task.id)
    agents = settings.agents
    if task.repo is None:
        path = prepare_workdir(task_id, task.cwd, settings.workspace_root, agents.allowed_roots)
        own = task.cwd is None
        return Workdir(path, pack=partial(pack_directory, path, settings.sessions.max_workspace_bytes)
                       if own else None)
    repo = check_cwd(task.repo, agents.allowed_roots, field="repo")
    clone = repos.open_clone(repo, task.base, task_id, settings.workspace_root / task_id)
    lost = None if clone.resumed or attempt == 1 else "no checkpoint of its repository clone was kept"
    return Workdir(clone.path, clone, partial(_checkpoint, clone), lost)


def record_changes(workdir: Workdir, engine: Engine, task: Task, push: bool) -> Changes | None:
    """A repository task's run ended: its branch gets the clone's state, its changes are
    recorded, and pushed when ``push``; None when the repository could not be updated."""
    clone = workdir.clone
    if clone is None:
        return None
    try:
        head = repos.checkpoint(clone, f"cca: what task {task.id} left uncommitted", final=True)
        found = repos.changes(clone, head)
    except repos.GitFailed as exc:
        log.warning("task %s: its changes could not be brought to %s: %s", task.id, clone.repo, exc)
        return None
    if push:
        error = repos.push(clone)
        found = Changes(**{**found.__dict__, "pushed": error is None, "push_error": error})
    try:
        with autocommit(engine) as connection:
            recorded.record(connection, str(task.id), found)
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("task %s: Postgres is unreachable; its changes (branch %s) are not recorded",
                    task.id, found.branch)
    return found


def close(workdir: Workdir) -> None:
    if workdir.clone is not None:
        repos.remove(workdir.clone)


def _checkpoint(clone: repos.Clone) -> tuple[bytes | None, str | None]:
    """A mid-run checkpoint of a clone: a commit in the repository, not a tar."""
    try:
        head = repos.checkpoint(clone, "cca: checkpoint (the run went on)", final=False)
    except repos.GitFailed as exc:
        log.warning("checkpoint of %s failed: %s", clone.path, exc)
        return None, f"its repository checkpoint failed: {exc}"
    return None, f"commit {head} of {repos.checkpoint_ref(clone.branch.removeprefix(TASK_BRANCH_PREFIX))}"

