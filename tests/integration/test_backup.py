"""ops/backup and ops/restore against real Postgres 16 with pgvector: a dump restored into a
fresh database holds every task and event as it was; a restore over a live database puts it
back as it was at the dump; missing tools and targets are refused with a clear message."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pgserver  # type: ignore[import-untyped]
import pytest
from sqlalchemy import select, text

from cca_core.infra.db import make_engine, make_session_factory, transaction
from cca_core.models import Task, TaskEvent
from cca_core.tasks import store

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BACKUP, RESTORE = REPO / "ops/backup", REPO / "ops/restore"
PG_BIN = Path(pgserver.__file__).parent / "pginstall/bin"  # the server's own pg_dump/pg_restore
BASH = shutil.which("bash") or "/bin/bash"
_numbers = itertools.count(1)


def run(script: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "PG_BIN": str(PG_BIN), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run([BASH, str(script), *args], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def new_database(pg_server: Any, database_url: str) -> str:
    """An empty database (no migrations) on the same server; return its URL."""
    name = f"restored_{os.getpid()}_{next(_numbers)}"
    pg_server.execute(f'CREATE DATABASE "{name}"')
    return re.sub(r"/[^/?]+\?", f"/{name}?", database_url, count=1)


def snapshot(url: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Every column of every task (by id) and every event, as plain values."""
    engine = make_engine(url, pool_size=0)
    try:
        with engine.connect() as conn:
            tasks = {str(row.id): dict(row._mapping) for row in conn.execute(select(Task.__table__))}
            events = [dict(row._mapping) for row in
                      conn.execute(select(TaskEvent.__table__).order_by(TaskEvent.id))]
    finally:
        engine.dispose()
    return tasks, events


LIMITS = {"token_budget": 100000, "timeout_seconds": 600}  # as submission decides them


@pytest.fixture
def seeded_url(database_url: str) -> str:
    """The test database with tasks of every shape: plain, full, finished with events."""
    engine = make_engine(database_url, pool_size=0)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        store.create_task(session.connection(), {"prompt": "plain", **LIMITS})
        store.create_task(session.connection(), {
            "prompt": "review the diff of PR 42", "role": "reviewer", "model": "sonnet",
            "priority": "high", "queue": "nightly", "token_budget": 80000, "timeout_seconds": 300,
            "max_turns": 7, "max_budget_usd": 1.25, "permission_mode": "sandbox",
            "allowed_tools": ["Read", "Grep"], "denied_tools": ["Bash(rm -rf *)"],
            "json_schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
            "meta": {"pr": 42, "labels": ["ci", "é"]}, "owner": "platform", "created_by": "ci-bot",
        }, idempotency_key="pr-42-review")
        done, _ = store.create_task(session.connection(), {"prompt": "finished", **LIMITS})
        store.append_events(session.connection(), str(done.id), 1, [
            {"type": "system", "subtype": "init", "session_id": "s-1"},
            {"type": "result", "subtype": "success", "result": "all good"},
        ])
        session.execute(text(
            "UPDATE tasks SET status = 'succeeded', result = 'all good', input_tokens = 1200, "
            "output_tokens = 340, cost_usd = 0.0123, num_turns = 3, session_id = 's-1', "
            "attempts = 1, started_at = now(), finished_at = now() WHERE id = :id"), {"id": done.id})
    engine.dispose()
    return database_url


def test_a_restored_backup_holds_every_task_with_the_same_fields(seeded_url, pg_server, tmp_path):
    # The URL as cca's settings spell it: SQLAlchemy's driver suffix must not reach libpq.
    env_url = seeded_url.replace("postgresql://", "postgresql+psycopg://", 1)
    backup = run(BACKUP, "--dir", str(tmp_path / "backups"), env={"CCA__POSTGRES__URL": env_url})
    assert backup.returncode == 0, backup.stderr
    dump = Path(backup.stdout.strip())
    assert dump.parent == tmp_path / "backups" and dump.is_file()
    assert re.fullmatch(r"cca-test_\d+_\d+-\d{8}T\d{6}Z\.dump", dump.name)
    assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    assert dump.stat().st_mode & 0o077 == 0

    target = new_database(pg_server, seeded_url)
    restore = run(RESTORE, "--url", target, str(dump))
    assert restore.returncode == 0, restore.stderr

    tasks, events = snapshot(seeded_url)
    assert len(tasks) == 3 and len(events) == 2
    assert snapshot(target) == (tasks, events)


def test_a_restore_over_a_live_database_brings_back_the_state_of_the_dump(seeded_url, tmp_path):
    before = snapshot(seeded_url)
    dump = run(BACKUP, "--url", seeded_url, "--dir", str(tmp_path)).stdout.strip()
    engine = make_engine(seeded_url, pool_size=0)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tasks WHERE prompt = 'finished'"))
        conn.execute(text("UPDATE tasks SET status = 'cancelled' WHERE prompt = 'plain'"))
    engine.dispose()
    assert snapshot(seeded_url) != before

    restore = run(RESTORE, "--url", seeded_url, dump)
    assert restore.returncode == 0, restore.stderr
    assert snapshot(seeded_url) == before


def test_the_scripts_refuse_clearly_when_the_postgres_tools_are_missing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    backup = run(BACKUP, "--url", "postgres://cca@localhost/cca", env={"PG_BIN": str(empty)})
    restore = run(RESTORE, "--url", "postgres://cca@localhost/cca", "x.dump",
                  env={"PG_BIN": "", "PATH": str(empty)})
    assert backup.returncode == 2 and restore.returncode == 2
    assert f"{empty}/pg_dump not found" in backup.stderr and "PG_BIN" in backup.stderr
    assert "pg_restore not found" in restore.stderr and "postgresql-client-16" in restore.stderr


def test_the_scripts_refuse_without_a_database_or_a_dump(tmp_path):
    no_url = run(BACKUP, env={"CCA_PYTHON": "false"})
    assert no_url.returncode == 2 and "no database URL" in no_url.stderr
    no_target = run(RESTORE, "some.dump", env={"CCA__POSTGRES__URL": "postgres://cca@db/cca"})
    assert no_target.returncode == 2 and "pass --url" in no_target.stderr
    missing = run(RESTORE, "--url", "postgres://cca@db/cca", str(tmp_path / "nope.dump"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_the_password_reaches_libpq_through_the_environment_not_the_command_line(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "pg_dump").write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_LOG"\nprintf "%s" "$PGPASSWORD" > "$PW_LOG"\n'
        'for arg; do case "$arg" in --file=*) : > "${arg#--file=}";; esac; done\n')
    (fake / "pg_dump").chmod(0o755)
    url = "postgresql+psycopg://cca:p%40ss:w0rd@db.internal:5432/cca?sslmode=require"
    result = run(BACKUP, "--dir", str(tmp_path), env={
        "PG_BIN": str(fake), "CCA__POSTGRES__URL": url,
        "ARGS_LOG": str(tmp_path / "args"), "PW_LOG": str(tmp_path / "pw")})
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "args").read_text().splitlines()
    assert "--dbname=postgresql://cca@db.internal:5432/cca?sslmode=require" in args
    assert "--format=custom" in args
    assert (tmp_path / "pw").read_text() == "p@ss:w0rd"
    assert Path(result.stdout.strip()).name.startswith("cca-cca-")
