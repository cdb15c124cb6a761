"""Prepared statements on real Postgres: the same rows, values and errors as SQLAlchemy's own
execution (which runs them inside a transaction), and a lost connection handled alike."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, event, func, insert, inspect, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from cca_core.infra.db import autocommit, make_engine, make_session_factory, transaction
from cca_core.infra.prepared import PreparedStatement
from cca_core.models import Task
from cca_core.tasks import store
from cca_core.tasks.outcome import Outcome
from tests.support.postgres import terminate

pytestmark = pytest.mark.integration

VALUES = {
    "prompt": "p", "role": None, "model": "sonnet", "priority": "high", "token_budget": 5000,
    "timeout_seconds": 60, "max_budget_usd": 1.25, "allowed_tools": ["Bash(ls:*)", "Read"],
    "denied_tools": [], "json_schema": {"type": "object"}, "meta": {"team": "a", "n": [1]},
}
FRESH = {"id", "created_at", "sent_at", "started_at", "finished_at", "lease_expires_at"}


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url, pool_size=2, max_overflow=0)
    yield engine
    engine.dispose()


def columns(task: Task) -> dict[str, Any]:
    return {attr.key: getattr(task, attr.key) for attr in inspect(Task).column_attrs
            if attr.key not in FRESH}


def stored(engine: Engine, task_id: Any) -> dict[str, Any]:
    with transaction(make_session_factory(engine)) as session:
        task = session.get(Task, task_id)
        assert task is not None
        return columns(task)


def test_a_task_inserted_prepared_equals_one_inserted_through_sqlalchemy(engine):
    with autocommit(engine) as connection:
        prepared, _ = store.create_task(connection, VALUES)
    with transaction(make_session_factory(engine)) as session:
        through_sqlalchemy, _ = store.create_task(session.connection(), VALUES)

    assert columns(prepared) == columns(through_sqlalchemy)
    assert stored(engine, prepared.id) == stored(engine, through_sqlalchemy.id)
    assert columns(prepared) == stored(engine, prepared.id)
    assert prepared.priority == "high" and prepared.permission_denials == []
    assert isinstance(prepared.max_budget_usd, float) and isinstance(prepared.cost_usd, float)


@pytest.mark.parametrize("structured_output", [None, "a JSON string", 3, ["x", {"y": None}]])
def test_a_finish_stores_json_values_as_sqlalchemy_does(engine, structured_output):
    outcome = Outcome(status="succeeded", result="done", structured_output=structured_output,
                      permission_denials=[{"tool_name": "Write"}], input_tokens=7, cost_usd=0.5)
    ids = []
    for prepared in (True, False):
        with autocommit(engine) as connection:
            task, _ = store.create_task(connection, VALUES)
            assert store.claim_task(connection, str(task.id), worker="w", pid=1, lease_s=30,
                                    max_attempts=3) is not None
        if prepared:
            with autocommit(engine) as connection:
                assert store.finish_task(connection, str(task.id), 1, outcome, [{"type": "x"}])
        else:
            with transaction(make_session_factory(engine)) as session:
                assert store.finish_task(session.connection(), str(task.id), 1, outcome,
                                         [{"type": "x"}])
        ids.append(task.id)

    first, second = (stored(engine, task_id) for task_id in ids)
    assert first == second and first["structured_output"] == structured_output
    with engine.connect() as connection:
        kinds = connection.execute(select(func.jsonb_typeof(Task.structured_output))
                                   .where(Task.id.in_(ids))).scalars().all()
    assert kinds[0] == kinds[1]


def test_on_an_autocommit_connection_the_statements_bypass_sqlalchemys_execution(engine):
    executed: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: executed.append(args[2]))
    with autocommit(engine) as connection:
        task, _ = store.create_task(connection, VALUES)
        assert store.claim_task(connection, str(task.id), worker="w", pid=1, lease_s=30,
                                max_attempts=3) is not None
        assert store.finish_task(connection, str(task.id), 1, Outcome(status="succeeded"))
    assert executed == []
    with transaction(make_session_factory(engine)) as session:
        store.create_task(session.connection(), VALUES)
    assert len(executed) == 1 and executed[0].startswith("INSERT INTO tasks")


def test_a_statement_without_returning_runs_and_returns_no_row(engine):
    statement = PreparedStatement(insert(Task).values(sent_at=func.now()))
    task_id = uuid.uuid4()
    with autocommit(engine) as connection:
        assert statement.first(connection, store.column_values({"id": task_id, **VALUES})) is None
    assert stored(engine, task_id)["prompt"] == "p"


def test_a_violated_constraint_raises_sqlalchemys_error(engine):
    with autocommit(engine) as connection, pytest.raises(IntegrityError) as failed:
        store.create_task(connection, {**VALUES, "prompt": None})
    assert "prompt" in str(failed.value.orig)


def test_a_missing_parameter_is_named_before_anything_runs(engine):
    statement = PreparedStatement(update(Task).where(Task.id == bindparam("wanted"))
                                  .values(status="failed").returning(Task.id))
    with autocommit(engine) as connection, pytest.raises(KeyError, match="wanted"):
        statement.first(connection, {})


def test_a_dead_connection_fails_once_and_takes_the_pools_other_connections_with_it(
    engine, database_url,
):
    with autocommit(engine) as connection:
        task, _ = store.create_task(connection, VALUES)
    pids = pooled_backends(engine)
    for pid in pids:
        terminate(database_url, pid)

    with autocommit(engine) as connection, pytest.raises(OperationalError) as failed:
        store.claim_task(connection, str(task.id), worker="w", pid=1, lease_s=30, max_attempts=3)
    assert failed.value.connection_invalidated
    assert pooled_backends(engine).isdisjoint(pids)  # neither dead connection is handed out
    with autocommit(engine) as connection:
        assert store.claim_task(connection, str(task.id), worker="w", pid=1, lease_s=30,
                                max_attempts=3) is not None


def pooled_backends(engine: Engine) -> set[int]:
    """The backend pids of both pooled connections, checked out at the same time."""
    pids: set[int] = set()
    both_out = threading.Barrier(2)

    def take() -> None:
        with engine.connect() as connection:
            pids.add(int(connection.scalar(text("SELECT pg_backend_pid()"))))
            both_out.wait(timeout=10)

    threads = [threading.Thread(target=take) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(pids) == 2
    return pids
