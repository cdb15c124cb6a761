"""SQLAlchemy models: the ``tasks`` table (the truth about every task) and ``task_events``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector  # type: ignore[import-untyped]
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    status: Mapped[str] = mapped_column(Text, default="queued")
    prompt: Mapped[str] = mapped_column(Text)
    role: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(Text, default="normal")
    queue: Mapped[str] = mapped_column(Text, default="cca")
    token_budget: Mapped[int] = mapped_column(BigInteger)  # decided at submission
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    max_turns: Mapped[int | None] = mapped_column(Integer)
    max_budget_usd: Mapped[float | None] = mapped_column(Numeric(12, 4, asdecimal=False))
    permission_mode: Mapped[str | None] = mapped_column(Text)
    allowed_tools: Mapped[list[str] | None] = mapped_column(JSONB)
    denied_tools: Mapped[list[str] | None] = mapped_column(JSONB)
    cwd: Mapped[str | None] = mapped_column(Text)
    # A repository task: it runs in a clone of ``repo`` on branch cca/<id> from ``base``
    # (cca_worker.repos); ``push`` pushes that branch to the repository's remote when it ends.
    repo: Mapped[str | None] = mapped_column(Text)
    base: Mapped[str | None] = mapped_column(Text)
    push: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    json_schema: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    request_hash: Mapped[str | None] = mapped_column(Text)  # of the body an idempotency key made
    owner: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    depth: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("schedules.id", ondelete="SET NULL"))
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A step of a workflow (cca_core.workflows): its name there and the tasks it waits for.
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("workflows.id", ondelete="CASCADE"))
    step: Mapped[str | None] = mapped_column(Text)
    depends_on: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(UUID(as_uuid=True)))
    waiting_for: Mapped[str | None] = mapped_column(Text)  # "dependencies" or "children"
    # When a step runs: its dependencies all "succeeded", or all "ended" (whatever their status).
    run_when: Mapped[str] = mapped_column(Text, default="succeeded", server_default="succeeded")
    recall_k: Mapped[int | None] = mapped_column(Integer)  # memories put before its prompt
    cancel_code: Mapped[str | None] = mapped_column(Text)  # the error a requested cancel ends with
    # Retries (cca_core.retries): the task's own rules; when a task parked after a failed
    # run (waiting_for "retry") runs again; how many runs the policy granted.
    retries: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retried: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A follow-up: the finished task whose session this one forks (cca_core.sessions).
    continues: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tasks.id", ondelete="SET NULL"))

    result: Mapped[str | None] = mapped_column(Text)
    structured_output: Mapped[Any | None] = mapped_column(JSONB)
    error_code: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_read_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_creation_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[float] = mapped_column(Numeric(14, 6, asdecimal=False), default=0)
    num_turns: Mapped[int] = mapped_column(Integer, default=0)
    # What the attempts before the current one spent; the usage columns above include it.
    earlier_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    earlier_output_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    earlier_cache_read_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0,
                                                                 server_default="0")
    earlier_cache_creation_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0,
                                                                     server_default="0")
    earlier_cost_usd: Mapped[float] = mapped_column(Numeric(14, 6, asdecimal=False), default=0,
                                                    server_default="0")
    session_id: Mapped[str | None] = mapped_column(Text)
    permission_denials: Mapped[list[Any]] = mapped_column(JSONB, default=list)

    worker: Mapped[str | None] = mapped_column(Text)
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("tasks_created_idx", created_at.desc(), id.desc()),
        Index("tasks_status_created_idx", status, created_at.desc(), id.desc()),
        Index("tasks_role_created_idx", role, created_at.desc(), id.desc()),
        Index("tasks_idempotency_idx", owner, idempotency_key, unique=True,
              postgresql_where=text("idempotency_key IS NOT NULL")),
        Index("tasks_active_idx", status, lease_expires_at,
              postgresql_where=text("status IN ('queued', 'running')")),
        Index("tasks_parent_idx", parent_id, postgresql_where=text("parent_id IS NOT NULL")),
        Index("tasks_owner_created_idx", owner, created_at.desc(), id.desc()),
        Index("tasks_created_by_idx", created_by, created_at),
        # The dedupe key of scheduled fires: one task per schedule and fire time.
        Index("tasks_schedule_fire_idx", schedule_id, scheduled_for, unique=True,
              postgresql_where=text("schedule_id IS NOT NULL")),
        Index("tasks_workflow_step_idx", workflow_id, step, unique=True,
              postgresql_where=text("workflow_id IS NOT NULL")),
        Index("tasks_parked_idx", retry_at,
              postgresql_where=text("waiting_for IN ('retry', 'credential', 'usage_window')")),
        Index("tasks_finished_idx", finished_at),  # the rows cca_core.tasks.totals reads live
    )


class TaskRollup(Base):
    """The tasks finished before the rollup's mark, counted and summed per status, end reason,
    model and duration bucket (``cca_core.tasks.totals``): fleet totals without a scan."""

    __tablename__ = "task_rollup"

    status: Mapped[str] = mapped_column(Text, primary_key=True)
    reason: Mapped[str] = mapped_column(Text, primary_key=True)
    model: Mapped[str] = mapped_column(Text, primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)  # -1: never ran
    tasks: Mapped[int] = mapped_column(BigInteger)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_read_input_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_creation_input_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[float] = mapped_column(Numeric(20, 6, asdecimal=False))
    seconds: Mapped[float] = mapped_column(Numeric(20, 3, asdecimal=False))


class TaskRollupMark(Base):
    """The one row saying up to when finished tasks are in ``task_rollup``."""

    __tablename__ = "task_rollup_mark"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    finished_before: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TaskAttempt(Base):
    """One run of a task: where, how it ended, what it spent; ``retry_at`` when it was
    retried. A run whose worker died keeps no end (its task went on without it)."""

    __tablename__ = "task_attempts"

    task_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cache_read_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cache_creation_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cost_usd: Mapped[float] = mapped_column(Numeric(14, 6, asdecimal=False), default=0,
                                            server_default="0")
    num_turns: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    session_id: Mapped[str | None] = mapped_column(Text)
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TaskChanges(Base):
    """What a repository task's branch holds over its base, recorded when a run ends."""

    __tablename__ = "task_changes"

    task_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    branch: Mapped[str] = mapped_column(Text)
    base: Mapped[str] = mapped_column(Text)
    head: Mapped[str] = mapped_column(Text)
    commits: Mapped[list[dict[str, str]]] = mapped_column(JSONB)
    files: Mapped[int] = mapped_column(Integer)
    insertions: Mapped[int] = mapped_column(Integer)
    deletions: Mapped[int] = mapped_column(Integer)
    diff: Mapped[str] = mapped_column(Text)
    truncated: Mapped[bool] = mapped_column(Boolean)
    pushed: Mapped[bool | None] = mapped_column(Boolean)  # None: not asked to push
    push_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TaskSession(Base):
    """The latest checkpoint of a task's claude session: its transcript (gzipped JSONL) and,
    for a task in its own workspace, that workspace (a gzipped tar) or why it was not kept."""

    __tablename__ = "task_sessions"

    task_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    session_id: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    transcript: Mapped[bytes] = mapped_column(LargeBinary)
    workspace: Mapped[bytes | None] = mapped_column(LargeBinary)
    workspace_note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TaskEvent(Base):
    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    task_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tasks.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(Text)
    subtype: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("task_events_task_idx", task_id, id),)


class ApiKey(Base):
    """A managed API key: only a hash of its secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(Text, unique=True)
    prefix: Mapped[str] = mapped_column(Text, unique=True)
    secret_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    tenant: Mapped[str] = mapped_column(Text)
    max_concurrent: Mapped[int | None] = mapped_column(Integer)
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger)
    usd_per_day: Mapped[float | None] = mapped_column(Numeric(12, 4, asdecimal=False))
    limits: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"),
                                                   default=dict)  # cca_core.access.key_limits
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Schedule(Base):
    """A recurring agent job: when it fires (cron in a time zone, or an interval), the task it
    creates, and its policies. The beat fires it; its tasks point back with ``schedule_id``."""

    __tablename__ = "schedules"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(Text)
    cron: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(Text, default="UTC")
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    anchor_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    template: Mapped[dict[str, Any]] = mapped_column(JSONB)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    overlap: Mapped[str] = mapped_column(Text, default="skip")
    catchup: Mapped[str] = mapped_column(Text, default="skip_missed")
    expires_seconds: Mapped[int | None] = mapped_column(Integer)
    next_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_task_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    last_skip_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_skip_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint(owner, name, name="schedules_owner_name_key"),
        CheckConstraint("(cron IS NULL) <> (interval_seconds IS NULL)", name="schedules_one_timing"),
        Index("schedules_due_idx", next_fire_at, postgresql_where=text("enabled")),
    )


class Workflow(Base):
    """A graph of tasks (its steps, ``tasks.workflow_id``) run as one: a failure policy, a
    budget for all of them, one status. A coordinated task's plan runs as one
    (``parent_task_id``)."""

    __tablename__ = "workflows"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="running")
    failure_policy: Mapped[str] = mapped_column(Text, default="fail_fast")
    token_budget: Mapped[int | None] = mapped_column(BigInteger)
    budget_usd: Mapped[float | None] = mapped_column(Numeric(12, 4, asdecimal=False))
    parent_task_id: Mapped[uuid.UUID | None] = mapped_column(  # tasks refer here too: use_alter
        UUID(as_uuid=True), ForeignKey("tasks.id", ondelete="SET NULL", use_alter=True,
                                       name="workflows_parent_task_id_fkey"))
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error_code: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict,
                                                 server_default=text("'{}'::jsonb"))
    owner: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(Text)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("workflows_owner_created_idx", owner, created_at.desc(), id.desc()),
        Index("workflows_created_idx", created_at.desc(), id.desc()),
        Index("workflows_running_idx", created_at, postgresql_where=text("status = 'running'")),
    )


class Memory(Base):
    """What the fleet learned: a note searched by meaning (``embedding``, in vector space
    ``space``; one HNSW index per space, cca_core.search.vectors) and by words
    (``search_text``), scoped to its tenant."""

    __tablename__ = "memories"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text, default="note")
    content: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list,
                                            server_default=text("'{}'::text[]"))
    source_task_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tasks.id", ondelete="SET NULL"))
    successes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    space: Mapped[str | None] = mapped_column(Text)
    embedding: Mapped[Any] = mapped_column(Vector(), nullable=True)
    search_text: Mapped[Any] = mapped_column(TSVECTOR)
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("memories_tenant_created_idx", tenant, created_at.desc()),
        Index("memories_search_text_idx", search_text, postgresql_using="gin"),
        Index("memories_source_task_idx", source_task_id),
        # The ones waiting for a vector (cca_worker.backfill), oldest first.
        Index("memories_unembedded_idx", created_at, postgresql_where=text("space IS NULL")),
    )


class CodeFile(Base):
    """A file of an indexed tree, by content hash: re-indexing skips it while unchanged."""

    __tablename__ = "code_files"

    tenant: Mapped[str] = mapped_column(Text, primary_key=True)
    root: Mapped[str] = mapped_column(Text, primary_key=True)
    path: Mapped[str] = mapped_column(Text, primary_key=True)
    language: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(Text)
    chunks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    indexed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CodeChunk(Base):
    """A function, class, method or window of lines of an indexed file."""

    __tablename__ = "code_chunks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(Text)
    root: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(Text)
    symbol: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    start_line: Mapped[int] = mapped_column(Integer)
    end_line: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    space: Mapped[str | None] = mapped_column(Text)
    embedding: Mapped[Any] = mapped_column(Vector(), nullable=True)
    search_text: Mapped[Any] = mapped_column(TSVECTOR)

    __table_args__ = (
        ForeignKeyConstraint([tenant, root, path],
                             [CodeFile.tenant, CodeFile.root, CodeFile.path], ondelete="CASCADE",
                             name="code_chunks_file_fkey"),
        Index("code_chunks_file_idx", tenant, root, path),
        Index("code_chunks_search_text_idx", search_text, postgresql_using="gin"),
    )


class Job(Base):
    """A background job on the workers (a code index, a re-embedding) and its progress."""

    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(Text)
    tenant: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    progress: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict,
                                                     server_default=text("'{}'::jsonb"))
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("jobs_tenant_kind_created_idx", tenant, kind, created_at.desc()),)


class Webhook(Base):
    """An endpoint told of events: a tenant's (``owner``), or an admin's (``owner`` NULL: every
    tenant's events, and the fleet's own such as ``worker.lost``)."""

    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(ARRAY(Text))
    secret: Mapped[str] = mapped_column(Text)  # signs each delivery (HMAC-SHA256)
    allow_private: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("webhooks_owner_idx", owner),)


class WebhookDelivery(Base):
    """One event to one endpoint: pending until delivered or out of attempts (the outbox)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    webhook_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text, default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list,
                                                          server_default=text("'[]'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("webhook_deliveries_due_idx", next_attempt_at, postgresql_where=text("status = 'pending'")),
        Index("webhook_deliveries_webhook_idx", webhook_id, id.desc()),
    )


class FleetSample(Base):
    """The fleet at one moment (queue depths, slots busy and total), taken every
    ``dashboard.sample_seconds`` by one worker and kept ``dashboard.keep_days``: the
    dashboard's plots of queue depth and slot use over time."""

    __tablename__ = "fleet_samples"

    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True, server_default=func.now())
    workers: Mapped[int] = mapped_column(Integer)
    slots_total: Mapped[int] = mapped_column(Integer)
    slots_busy: Mapped[int] = mapped_column(Integer)
    queues: Mapped[dict[str, int]] = mapped_column(JSONB)
