"""Run one task: claim it, start `claude`, supervise it, record the one terminal outcome."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine

from cca_core.access.task_tokens import mint
from cca_core.credentials.pool import Busy
from cca_core.errors import Invalid
from cca_core.infra.db import autocommit
from cca_core.infra.redact import Redactor, secret_env_values, settings_secrets
from cca_core.infra.reload import Watcher
from cca_core.models import Task
from cca_core.retries import Failure, retry_at, rule_for, rules_of
from cca_core.settings import Settings
from cca_core.tasks import holds, store
from cca_core.tasks.outcome import Outcome
from cca_core.tasks.status import CREDENTIAL, RETRY, USAGE_WINDOW, TaskStatus
from cca_core.tasks.submission import Producer, send
from cca_core.tokens.pricing import estimate_cost
from cca_core.tokens.usage import Tokens
from cca_core.workflows import store as workflows
from cca_core.workflows.advance import Send, advance_and_send
from cca_core.workflows.inputs import with_dependency_results
from cca_worker import budget, sessions, spending, spool, workdirs
from cca_worker.agent import AgentProcess, spawn
from cca_worker.argv import AgentSpec, build_argv, build_env
from cca_worker.confinement import View, agent_tools, confine
from cca_worker.events import EventSink
from cca_worker.memory import Recalled, recall, remember_later
from cca_worker.outage import Outage, PostgresLost, is_transient, waiting_out
from cca_worker.proxy import ModelProxy, Route
from cca_worker.repos import GitFailed
from cca_worker.spec import resolve_spec
from cca_worker.supervisor import Clock, supervise
from cca_worker.telemetry import telemetry_env
from cca_worker.verdict import Limits, StopReason, decide

Launcher = Callable[..., AgentProcess]
"""Starts an agent: ``launcher(argv, env=, cwd=, grace_s=, nice=)`` (``spawn``; a replay in
tests)."""

log = logging.getLogger(__name__)
FAILURES = frozenset(Failure)


@dataclass(frozen=True)
class WorkerContext:
    """What a pool process needs to run tasks; built once per process after the fork."""

    settings: Settings
    hostname: str
    slot: int
    engine: Engine
    redis: redis.Redis
    bwrap: str | None = None  # the bubblewrap program agents run under (agents.confinement)
    # The process's model API proxy, lending the fleet's credentials; without one (no
    # credential configured or in the environment) agents reach the model API on their own.
    proxy: ModelProxy | None = None
    # Notices a reloaded configuration (cca_core.infra.reload) before a run.
    watcher: Watcher | None = None
    # What sends the messages of the workflow steps a finish releases (the worker's Celery
    # app); without one the sweep sends them.
    producer: Producer | None = None

    @property
    def send(self) -> Send | None:
        return partial(send, self.producer, self.engine) if self.producer is not None else None
    # Read once: os.environ decodes every name and value on each pass over it.
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def slot_home(self) -> Path:
        """One HOME per slot, holding its CLAUDE_CONFIG_DIR (``.claude``): runs in a slot never
        overlap, runs in slots never share transcripts."""
        return self.settings.data_dir / "slots" / f"{self.hostname}-{self.slot}"


def run_task(ctx: WorkerContext, task_id: str, *, launcher: Launcher = spawn,
             clock: Clock = time.monotonic) -> str | None:
    """Run the task if this delivery can claim it. Returns the terminal status, or None when
    the task was not ours to run (finished, cancelled, owned by a live run, or parked until
    a credential has room). ``launcher`` starts the agent and ``clock`` times its limits:
    the seams of the run loop's tests."""
    if holds.is_held(ctx.redis, task_id):
        log.info("task %s: held by a run that waits for Postgres; skipping this delivery", task_id)
        return None
    if _over_worker_budget(ctx):
        # The gate pauses the consumer within a tick; a delivery taken meanwhile is left for
        # another worker, due at once (the sweep sends it), and spends no attempt.
        with autocommit(ctx.engine) as connection:
            store.park_unclaimed(connection, task_id, RETRY, datetime.now(UTC))
        log.info("task %s: this worker is over its token budget; left for another worker", task_id)
        return None
    if ctx.proxy is None:
        return _run(ctx, task_id, None, launcher, clock)
    route = ctx.proxy.take(task_id)
    if isinstance(route, Busy):
        _wait_for_credential(ctx, ctx.proxy, task_id, route)
        return None
    try:
        return _run(ctx, task_id, route, launcher, clock)
    finally:
        if ctx.proxy.give_back(route):
            _send_credential_waits(ctx, 1)


def _over_worker_budget(ctx: WorkerContext) -> bool:
    worker = ctx.settings.worker
    try:
        return budget.is_spent(ctx.redis, ctx.hostname, worker.token_budget_per_window,
                               worker.budget_window_seconds)
    except redis.RedisError as exc:
        log.warning("could not read this worker's token budget: %s", exc)
        return False


def _wait_for_credential(ctx: WorkerContext, proxy: ModelProxy, task_id: str, busy: Busy) -> None:
    """Park a task no credential has room for (unclaimed: it spends no attempt): until the
    first reset when every credential is in a usage window, else until a lease could lapse
    (one given back sends it sooner). A credential given back meanwhile is not missed."""
    lapse = datetime.now(UTC) + timedelta(seconds=ctx.settings.agents.lease_seconds)
    waiting_for, until = (USAGE_WINDOW, busy.reset) if busy.reset is not None else (CREDENTIAL, lapse)
    with autocommit(ctx.engine) as connection:
        parked = store.park_unclaimed(connection, task_id, waiting_for, until)
    if parked:
        log.info("task %s: no credential has room; waiting for %s until %s", task_id, waiting_for, until)
        if proxy.pool.has_room():
            _send_credential_waits(ctx, 1)


def _send_credential_waits(ctx: WorkerContext, count: int) -> None:
    """Send the ``count`` tasks parked longest for a credential (one has room now)."""
    with autocommit(ctx.engine) as connection:
        waiting = store.release_credential_waits(connection, count)
    for task in waiting:
        if ctx.send is not None:
            ctx.send(task)


def _run(ctx: WorkerContext, task_id: str, route: Route | None, launcher: Launcher,
         clock: Clock) -> str | None:
    agents = ctx.settings.agents
    task = _claim(ctx, task_id)
    if task is None:
        log.info("task %s: not claimable, skipping this delivery", task_id)
        return None
    attempt = task.attempts
    secret = ctx.settings.daemon.task_token_secret
    token = mint(secret, task_id) if secret else None
    redactor = _redactor(ctx, token, route)
    prompt = task.prompt
    if task.workflow_id is not None:
        with autocommit(ctx.engine) as connection:
            if workflows.over_budget(connection, task.workflow_id):
                outcome = Outcome(status="cancelled", error_code="budget_exceeded",
                                  error_message="not started: its workflow's budget is spent")
                return _finish(ctx, task, attempt, outcome, redactor)
            prompt = with_dependency_results(
                prompt, workflows.dependency_results(connection, task))
    recalled = recall(ctx.engine, ctx.settings, task, prompt)
    prompt = recalled.prompt
    session = sessions.plan(ctx.engine, ctx.settings, task, attempt, new_id=str(uuid.uuid4()))
    try:
        spec, note = resolve_spec(task, agents, session_id=session.session_id, python=sys.executable,
                                  bridge_token=token)
        spec = replace(spec, prompt=prompt)
        place = workdirs.open_workdir(task, ctx.settings, attempt)
    except Invalid as exc:
        outcome = Outcome(status="failed", error_code=exc.code, error_message=exc.message)
        return _finish(ctx, task, attempt, outcome, redactor)
    except GitFailed as exc:
        outcome = Outcome(status="failed", error_code="repo_failed",
                          error_message=f"cannot clone its repository: {exc}"[:1000])
        return _finish(ctx, task, attempt, outcome, redactor)
    try:
        return _run_in(ctx, _Claimed(task, attempt, spec, session, route, redactor, recalled, note),
                       place, launcher, clock)
    finally:
        workdirs.close(place)


def _claim(ctx: WorkerContext, task_id: str) -> Task | None:
    """Claim the task; while Postgres is unreachable, try again with backoff (the slot keeps
    the message meanwhile) for up to ``worker.postgres_outage_seconds``."""
    agents = ctx.settings.agents

    def claim() -> Task | None:
        with autocommit(ctx.engine) as connection:
            return store.claim_task(connection, task_id, worker=ctx.hostname, pid=os.getpid(),
                                    lease_s=agents.lease_seconds, max_attempts=agents.max_attempts)

    return waiting_out(claim, ctx.settings.worker.postgres_outage_seconds, f"task {task_id}: claim")


@dataclass(frozen=True)
class _Claimed:
    """A claimed run, ready to start."""

    task: Task
    attempt: int
    spec: AgentSpec
    session: sessions.SessionPlan
    route: Route | None
    redactor: Redactor
    recalled: Recalled
    note: str | None


def _run_in(ctx: WorkerContext, run: _Claimed, place: workdirs.Workdir, launcher: Launcher,
            clock: Clock) -> str | None:
    """Run the claimed task's agent in ``place``, and record how it ended."""
    task, attempt, spec, route, redactor, recalled = (run.task, run.attempt, run.spec, run.route,
                                                      run.redactor, run.recalled)
    task_id, agents, workdir = str(task.id), ctx.settings.agents, place.path
    outage = _outage(ctx, task_id, attempt)
    sink = EventSink(ctx.engine, ctx.redis, task_id, attempt,
                     ttl_s=ctx.settings.redis.context_ttl_seconds,
                     max_events=ctx.settings.redis.stream_max_events, redactor=redactor,
                     outage=outage, max_buffered=ctx.settings.worker.event_buffer_events)
    for message in (run.note, recalled.note):
        if message:
            sink.add({"type": "cca", "subtype": "note", "message": message})
    spent = spending.for_run(ctx.redis, ctx.engine, ctx.settings, ctx.hostname, task)
    if spent.key_spent():
        outcome = Outcome(status="budget_exceeded", error_code="quota_exceeded",
                          error_message="not started: its API key's tokens_per_day quota is spent")
        return _finish(ctx, task, attempt, outcome, redactor, sink)
    home = _fresh_home(ctx.slot_home)
    config_dir = home / ".claude"
    spec = _with_session(spec, run.session, task, config_dir, place, sink)
    model_api = ({"ANTHROPIC_BASE_URL": ctx.proxy.url, "ANTHROPIC_API_KEY": route.token}
                 if ctx.proxy is not None and route is not None else None)
    extra = {**agents.env, **dict(spec.env), **telemetry_env(ctx.settings.telemetry, task, ctx.hostname)}
    env = build_env(ctx.environ, extra, home=str(home), config_dir=str(config_dir), model_api=model_api)
    argv = build_argv(agents.claude_path, spec, _write_mcp_config(home, spec.mcp_config))
    try:
        if ctx.bwrap:
            view = View(workdir, home, (*_tools(agents.claude_path, env.get("PATH", "")), *place.readonly))
            argv = confine(ctx.bwrap, argv, view, path=env.get("PATH", ""))
        proc = launcher(argv, env=env, cwd=str(workdir), grace_s=agents.stop_grace_seconds,
                        nice=agents.nice)
    except OSError as exc:
        outcome = Outcome(status="failed", error_code="spawn_failed",
                          error_message=f"cannot start {agents.claude_path}: {exc}")
        return _finish(ctx, task, attempt, outcome, redactor, sink)
    checkpoints = sessions.Checkpointer(ctx.engine, task, attempt, spec.session_id, config_dir,
                                        workdir, place.pack)
    limits = Limits(timeout_s=task.timeout_seconds, stall_s=agents.stall_timeout_seconds,
                    token_budget=task.token_budget,
                    heartbeat_s=ctx.settings.worker.heartbeat_seconds)
    try:
        beat = partial(_heartbeat, ctx, task, attempt, checkpoints, route)
        end = supervise(proc, limits, sink, lambda *progress: outage.call(partial(beat, *progress), False),
                        clock, charge=spent.charge)
    except Exception as exc:
        # Postgres stayed unreachable past worker.postgres_outage_seconds, or something else
        # failed under the supervisor: never leave the agent unwatched.
        proc.stop()
        proc.wait()
        log.exception("task %s: supervision failed; the agent was stopped", task_id)
        outcome = Outcome(status="failed", error_code="supervision_failed",
                          error_message=f"the worker could not supervise the agent: {exc}"[:1000])
        # After an outage the buffered events go with the finish (spooled if need be).
        return _finish(ctx, task, attempt, outcome, redactor,
                       sink if isinstance(exc, PostgresLost) else None)
    _last_checkpoint(checkpoints, task_id)
    outcome = decide(end)
    spent.charge(Tokens(outcome.input_tokens, outcome.output_tokens, outcome.cache_read_input_tokens,
                        outcome.cache_creation_input_tokens).budget_tokens)  # the final count
    found = workdirs.record_changes(place, ctx.engine, task, push=task.push and outcome.status == "succeeded")
    if found is not None:
        sink.add({"type": "cca", "subtype": "changes", "branch": found.branch, "head": found.head,
                  "commits": len(found.commits), "files": found.files, "pushed": found.pushed,
                  "push_error": found.push_error})
    window = route.window if route is not None else None
    return _finish(ctx, task, attempt, outcome, redactor, sink, recalled.memory_ids, window)


def _outage(ctx: WorkerContext, task_id: str, attempt: int) -> Outage:
    """How the run rides out Postgres being unreachable: its task held in Redis meanwhile
    (for as long as the run may go on without Postgres, and a lease more)."""
    worker = ctx.settings.worker
    seconds = worker.postgres_outage_seconds + ctx.settings.agents.lease_seconds
    return Outage(worker.postgres_outage_seconds,
                  on_start=partial(holds.hold, ctx.redis, task_id, attempt, ctx.hostname, seconds),
                  on_end=partial(holds.release, ctx.redis, task_id))


def _redactor(ctx: WorkerContext, token: str | None, route: Route | None) -> Redactor:
    """What to remove from a run's events and outcome: the fleet's configured secrets, the
    task token the agent's bridge holds, its model API token and the credentials in the
    agent's environment."""
    return Redactor([*settings_secrets(ctx.settings), token or "", route.token if route else "",
                     *secret_env_values(ctx.environ), *secret_env_values(ctx.settings.agents.env)])


def _with_session(spec: AgentSpec, session: sessions.SessionPlan, task: Task, config_dir: Path,
                  place: workdirs.Workdir, sink: EventSink) -> AgentSpec:
    """The spec with its session: a stored one restored into the fresh slot and resumed (its
    prompt then says the run goes on) or forked; when it cannot be restored, a new session
    that starts over, and a note that says why."""
    if session.source is None:
        return spec
    cannot = (place.lost if not session.fork else None) or sessions.restore(
        session.source, config_dir, place.path, own_workspace=place.pack is not None and place.clone is None)
    if cannot is not None:
        sink.add({"type": "cca", "subtype": "note",
                  "message": f"cannot resume the session: {cannot}; starting over"})
        return replace(spec, session_id=str(uuid.uuid4())) if not session.fork else spec
    sink.add({"type": "cca", "subtype": "session", "action": "fork" if session.fork else "resume",
              "session_id": session.source.session_id, "from_attempt": session.source.attempt})
    if session.fork:
        return replace(spec, resume=session.source.session_id, fork=True)
    reason = task.error_code or "its worker was lost"
    return replace(spec, resume=session.session_id, prompt=sessions.RESUME_PROMPT.format(reason=reason))


def _last_checkpoint(checkpoints: sessions.Checkpointer, task_id: str) -> None:
    """Store the session as the run left it (so it can be continued); best effort."""
    try:
        checkpoints.save()
    except Exception:
        log.exception("task %s: could not store its session", task_id)


def _heartbeat(ctx: WorkerContext, task: Task, attempt: int, checkpoints: sessions.Checkpointer,
               route: Route | None, tokens: Tokens, turns: int, models: frozenset[str]) -> bool:
    """Store the session if it moved on, renew the lease (and the credential's), record
    progress so far; True if the run must stop. A step of a workflow whose budget its steps
    have now spent stops every running step (this one too)."""
    checkpoints.save()
    if ctx.proxy is not None and route is not None:
        ctx.proxy.renew(route)
    progress = {**asdict(tokens), "num_turns": turns, "cost_usd": estimate_cost(tokens, models)}
    with autocommit(ctx.engine) as connection:
        lease = store.renew_lease(connection, str(task.id), attempt,
                                  ctx.settings.agents.lease_seconds, progress)
        spent = (lease.owned and task.workflow_id is not None
                 and workflows.over_budget(connection, task.workflow_id))
    if spent and task.workflow_id is not None:
        advance_and_send(ctx.engine, ctx.send, task.workflow_id, ctx.settings.agents)
    return spent or lease.cancel_requested or not lease.owned


def _finish(ctx: WorkerContext, task: Task, attempt: int, outcome: store.Outcome,
            redactor: Redactor, sink: EventSink | None = None,
            recalled: Sequence[str] = (), window: datetime | None = None) -> str | None:
    """Record the outcome (redacted), and in the same statement the run's last events; then
    move the task's workflow on (its dependents start now) and remember the run. A failed
    run its retry policy runs again parks the task instead (nothing moves on), and so does
    one a usage window turned away (``window``: its reset), whatever its policy."""
    task_id = str(task.id)
    redacted = outcome.redacted(redactor)
    waiting_for, due = _retry_due(ctx, task, attempt, outcome, window)
    if due is not None and sink:
        sink.add({"type": "cca", "subtype": "retry", "error_code": outcome.error_code,
                  "attempt": attempt, "waiting_for": waiting_for, "retry_at": due.isoformat()})
    last_events = sink.take() if sink else []
    finish = spool.Finish(task_id, attempt, redacted, last_events, due, waiting_for)
    try:
        with autocommit(ctx.engine) as connection:
            parked, finished = spool.record(connection, finish)
    except Exception as exc:
        if not is_transient(exc):
            raise
        # Held first: a worker that dies before its spool is written delays its task (until
        # the hold lapses), one that died after would let it run twice.
        holds.hold(ctx.redis, task_id, attempt, ctx.hostname, ctx.settings.worker.spool_hold_seconds)
        kept = spool.keep(spool.spool_dir(ctx.settings, ctx.hostname), finish)
        log.warning("task %s: Postgres cannot record its finish (%s); kept in %s until it can",
                    task_id, outcome.status, kept)
        return None
    if sink:
        sink.publish_recorded(last_events)
    if parked:
        log.info("task %s: attempt %s failed (%s); it runs again at %s", task_id, attempt,
                 outcome.error_code, due)
        return TaskStatus.QUEUED
    if finished and task.workflow_id is not None:
        advance_and_send(ctx.engine, ctx.send, task.workflow_id, ctx.settings.agents)
    if not finished:
        log.warning("task %s: attempt %s lost ownership before finishing", task_id, attempt)
        return None
    remember_later(ctx.engine, ctx.settings, task, redacted, recalled, redactor)
    log.info("task %s finished: %s", task_id, outcome.status)
    return outcome.status


def _retry_due(ctx: WorkerContext, task: Task, attempt: int, outcome: Outcome,
               window: datetime | None) -> tuple[str, datetime | None]:
    """What the task waits for after this run and until when it runs again; None: never. A
    run stopped because its worker's window is spent runs again at once, on another worker;
    one a usage window turned away when a credential is free again (now, if another is);
    any other failed run by its retry policy."""
    settings = ctx.settings
    if outcome.error_code == StopReason.WORKER_BUDGET.code:
        return RETRY, datetime.now(UTC)
    if outcome.status != TaskStatus.FAILED:
        return RETRY, None
    if window is not None and ctx.proxy is not None:
        return USAGE_WINDOW, ctx.proxy.pool.next_free()
    if outcome.error_code not in FAILURES:
        return RETRY, None
    rule = rule_for(Failure(outcome.error_code), (
        settings.retries.rules, settings.agents.role(task.role).retries, rules_of(task.retries)))
    return RETRY, retry_at(rule, attempt, datetime.now(UTC), jitter=settings.retries.jitter)


def _fresh_home(home: Path) -> Path:
    """The slot's HOME, emptied: a run may write there (its config dir is read-write), and
    what it leaves (a settings.json with hooks, a CLAUDE.md) must not configure the next
    run in the slot, another tenant's perhaps. Transcripts go with it."""
    shutil.rmtree(home, ignore_errors=True)
    (home / ".claude").mkdir(parents=True)
    return home


def _write_mcp_config(home: Path, config: Mapping[str, Any] | None) -> str | None:
    """The run's MCP config (its bridge's task token inside) in a file of the fresh HOME only
    the agent's user reads."""
    if config is None:
        return None
    path = home / "mcp.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(config, out)
    return str(path)


@functools.cache
def _tools(claude_path: str, path: str) -> tuple[Path, ...]:
    """What a confined agent reads besides the system (found once per pool process)."""
    return agent_tools(shutil.which(claude_path, path=path) or claude_path, sys.executable)
