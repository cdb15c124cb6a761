"""A run's claude session on disk: checkpoint it to Postgres while the run goes, and restore
it into a fresh slot on any worker (cca_core.sessions.store keeps the rows).

The transcript lives at ``$CLAUDE_CONFIG_DIR/projects/<cwd slug>/<session id>.jsonl`` and is
portable: placed under the slug of the directory the resumed run works in, ``--resume`` reads
it there (notes/claude-cli.md §4). A run whose tool was running when it was stopped resumes
without that tool call: the CLI drops a tool_use that has no result.
"""

from __future__ import annotations

import gzip
import io
import logging
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from cca_core.infra.db import autocommit
from cca_core.models import Task
from cca_core.sessions import store
from cca_core.sessions.store import Checkpoint
from cca_core.settings import Settings

log = logging.getLogger(__name__)

TOOL_RESULT = b'"tool_result"'  # how a tool's result shows in a transcript line
RESUME_PROMPT = (
    "Your previous run of this task stopped before it finished ({reason}). Its conversation is "
    "restored above: continue the task from where it stopped, and do not repeat steps whose "
    "results you already have.")


@dataclass(frozen=True)
class SessionPlan:
    """How a run starts its session: fresh (``source`` None), resuming the task's own stored
    session, or forking a finished task's (``fork``)."""

    session_id: str
    source: Checkpoint | None = None
    fork: bool = False


def plan(engine: Engine, settings: Settings, task: Task, attempt: int, new_id: str) -> SessionPlan:
    """A follow-up forks the session of the task it continues; a retried run resumes its own
    (unless ``sessions.resume`` is off); any other run starts one with ``new_id``."""
    source_task = task.continues if task.continues is not None else (
        task.id if attempt > 1 and settings.sessions.resume else None)
    if source_task is None:
        return SessionPlan(new_id)
    with autocommit(engine) as connection:
        source = store.load(connection, source_task)
    if source is None:
        return SessionPlan(new_id)
    if task.continues is not None:
        return SessionPlan(new_id, source, fork=True)
    return SessionPlan(source.session_id, source)


def restore(checkpoint: Checkpoint, config_dir: Path, workdir: Path, own_workspace: bool) -> str | None:
    """Put the stored transcript (and the task's own workspace) where ``claude --resume`` run
    in ``workdir`` finds them. Returns why it cannot resume, or None."""
    if own_workspace and checkpoint.workspace is None:
        return f"its workspace was not kept ({checkpoint.workspace_note or 'no snapshot'})"
    if own_workspace and checkpoint.workspace is not None:
        _unpack(checkpoint.workspace, workdir)
    project = project_dir(config_dir, workdir)
    project.mkdir(parents=True, exist_ok=True)
    (project / f"{checkpoint.session_id}.jsonl").write_bytes(gzip.decompress(checkpoint.transcript))
    return None


def project_dir(config_dir: Path, workdir: Path) -> Path:
    """Where claude keeps the transcripts of runs in ``workdir``."""
    return config_dir / "projects" / re.sub(r"[^A-Za-z0-9]", "-", str(workdir))


Packer = Callable[[], tuple[bytes | None, str | None]]
"""Keeps a run's files for a resumed run: a snapshot stored with the session (or None) and a
note on it (where they are kept, or why not)."""


class Checkpointer:
    """Stores a run's session whenever its transcript has grown (so a tool whose result is in
    a stored transcript never runs again), and keeps its files with ``pack`` (cca_worker.workdirs).
    Only tools change the files: they are packed again only when the transcript gained a tool
    result since the last pack."""

    def __init__(self, engine: Engine, task: Task, attempt: int, session_id: str, config_dir: Path,
                 workdir: Path, pack: Packer | None) -> None:
        self._engine, self._task_id, self._attempt = engine, task.id, attempt
        self._session_id, self._config_dir, self._workdir = session_id, config_dir, workdir
        self._pack = pack
        self._stored_size = -1
        self._workspace: tuple[bytes | None, str | None] = (None, None)

    def save(self) -> bool:
        """Store the session if its transcript changed since the last save. True if stored."""
        path = project_dir(self._config_dir, self._workdir) / f"{self._session_id}.jsonl"
        try:
            written = path.read_bytes()
        except FileNotFoundError:
            return False
        transcript = written[:written.rfind(b"\n") + 1]  # whole lines: claude may be mid-append
        if len(transcript) == self._stored_size:
            return False
        if self._pack is not None and (self._stored_size < 0 or TOOL_RESULT in
                                       transcript[self._stored_size:]):
            self._workspace = self._pack()
        checkpoint = Checkpoint(self._session_id, self._attempt, gzip.compress(transcript, 6),
                                *self._workspace)
        with autocommit(self._engine) as connection:
            store.save(connection, self._task_id, checkpoint)
        self._stored_size = len(transcript)
        return True


class _TooBig(Exception):
    pass


class _Bounded(io.BytesIO):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.tell() + len(data) > self._limit:
            raise _TooBig
        return super().write(data)


def pack_directory(workdir: Path, max_bytes: int) -> tuple[bytes | None, str | None]:
    """The workspace as a gzipped tar of at most ``max_bytes``, or None and why not."""
    buffer = _Bounded(max_bytes)
    try:
        with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as archive:
            archive.add(workdir, arcname=".")
    except _TooBig:
        return None, f"over sessions.max_workspace_bytes ({max_bytes} bytes gzipped)"
    except OSError as exc:
        return None, f"unreadable: {exc}"
    return buffer.getvalue(), None


def _unpack(archive_bytes: bytes, workdir: Path) -> None:
    """Extract a stored workspace into ``workdir``, leaving out any member that would land
    outside it (links out of it, absolute paths, devices)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as archive:
        archive.extractall(workdir, filter=_inside)


def _inside(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError as exc:
        log.warning("not restoring %s: %s", member.name, exc)
        return None
