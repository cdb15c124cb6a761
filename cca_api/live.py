"""Server-Sent Events: a task's events and status as they happen, and the status changes of
the caller's tasks and workflows.

A task follower replays ``task_events`` after its cursor, then reads the task's Redis stream
after it (one cursor: a stream entry's id is its event's table id, ``cca_core.tasks.live``);
when the task's status changes (a notice from :mod:`cca_api.hub`) it reads the table again
(the run's last events are written with its status) and sends the new status; it ends after
a terminal one. While it waits it holds a Redis read, no Postgres connection. Heartbeats
(SSE comments) keep proxies from closing a quiet stream; ``retry:`` tells an EventSource how
soon to reconnect, and it resumes with ``Last-Event-ID``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import redis
from flask import Blueprint, Response, current_app, stream_with_context
from sqlalchemy import Connection

from cca_api.auth import current
from cca_api.hub import RESYNC, Busy
from cca_api.operations import operation
from cca_api.resources import Resources
from cca_core.errors import Unavailable
from cca_core.infra.db import transaction
from cca_core.names import events_stream_key
from cca_core.tasks import store
from cca_core.tasks.live import entry_view, stream_id
from cca_core.tasks.schemas import EventView, TaskView, event_view
from cca_core.tasks.status import TERMINAL_STATUSES

bp = Blueprint("live", __name__, url_prefix="/api/v1")

READ_BLOCK_MS = 500  # how long one Redis read waits: a status notice is seen within it
REPLAY_PAGE = 500
MAX_EVENTS_PAGE_BYTES = 4 * 1024 * 1024  # of event data as Postgres stores it (compressed)
RESYNC_S = 60.0  # a follower reads the task again at least this often (a notice may be lost)
RECONNECT_MS = 2000  # the SSE retry: an EventSource reconnects after this long
STREAM_MEDIA = "text/event-stream"
STREAM_ANSWER = {"type": "string", "description": "Server-Sent Events"}

ReadTask = Callable[[Connection], TaskView]


def resources() -> Resources:
    return current_app.extensions["cca"]


def sse(event: str, data: Any, ident: int | None = None) -> str:
    """One SSE message; ``ident`` becomes the client's Last-Event-ID."""
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


Present = Callable[[EventView], dict[str, Any]]


def as_api(view: EventView) -> dict[str, Any]:
    """An event as ``GET …/events`` shows it."""
    return view.model_dump(mode="json")


def stream_response(messages: Iterator[str]) -> Response:
    return Response(stream_with_context(messages), mimetype=STREAM_MEDIA,
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def subscribe(res: Resources, wants: Callable[[dict[str, Any]], bool]) -> Any:
    try:
        return res.hub.subscribe(wants)
    except Busy as exc:
        raise Unavailable(f"{exc}; try again shortly") from exc


def follow_task(res: Resources, task_id: str, cursor: int, owner: str | None,
                read_task: ReadTask, present: Present = as_api) -> Iterator[str]:
    """The messages of one task's stream (see the module's doc), each event as ``present``
    makes it. The caller checked that the task exists and may be seen."""
    subscription = subscribe(res, lambda notice: notice.get("id") == task_id)
    heartbeat_s = res.settings.daemon.stream_heartbeat_seconds
    key = events_stream_key(task_id)

    def messages() -> Iterator[str]:
        nonlocal cursor
        shown: tuple[Any, ...] | None = None
        try:
            yield f"retry: {RECONNECT_MS}\n\n"
            while True:
                # The task first, then its events: a run's events are committed no later than
                # its status, so the replay holds every event of the status it sends.
                with transaction(res.sessions) as session:
                    task = read_task(session.connection())
                for view in _replay(res, task_id, cursor, owner):
                    cursor = view.id
                    yield sse("event", present(view), view.id)
                state = (task.status, task.waiting_for, task.error.code if task.error else None)
                if state != shown:
                    shown = state
                    yield sse("status", task.model_dump(mode="json"))
                if task.status in TERMINAL_STATUSES:
                    yield sse("end", {"status": task.status})
                    return
                for live in _live(res, subscription, key, cursor, heartbeat_s):
                    if live is None:
                        yield ": keep-alive\n\n"
                    else:
                        cursor = live.id
                        yield sse("event", present(live), live.id)
        finally:
            res.hub.unsubscribe(subscription)

    return messages()


def _replay(res: Resources, task_id: str, cursor: int, owner: str | None) -> Iterator[EventView]:
    """The recorded events after ``cursor``, a page per short transaction."""
    while True:
        with transaction(res.sessions) as session:
            rows = store.list_events(session.connection(), task_id, after=cursor, limit=REPLAY_PAGE,
                                     max_bytes=MAX_EVENTS_PAGE_BYTES, owner=owner)
        if not rows:
            return
        for row in rows:
            yield event_view(row)
        cursor = rows[-1].id


def _live(res: Resources, subscription: Any, key: str, cursor: int,
          heartbeat_s: float) -> Iterator[EventView | None]:
    """Events from the Redis stream after ``cursor`` until a status notice arrives (or a
    resync is due); None when a heartbeat is due. A Redis error ends it (the table is read
    instead)."""
    started = quiet_since = time.monotonic()
    while not subscription.drain():
        try:
            answer = cast(list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
                          res.followers_redis.xread({key: stream_id(cursor)}, count=REPLAY_PAGE,
                                                    block=READ_BLOCK_MS))
        except redis.RedisError:
            time.sleep(READ_BLOCK_MS / 1000)
            return
        now = time.monotonic()
        for _, entries in answer or ():
            for entry_id, fields in entries:
                quiet_since = now
                view = entry_view(entry_id, fields)
                cursor = view.id
                yield view
        if now - quiet_since >= heartbeat_s:
            quiet_since = now
            yield None
        if now - started >= RESYNC_S:
            return


@bp.get("/stream")
@operation("Status changes of the caller's tasks and workflows, as Server-Sent Events",
           STREAM_ANSWER, media=STREAM_MEDIA, errors=(503,))
def status_stream() -> Response:
    res = resources()
    owner = current().scope()
    subscription = subscribe(res, lambda notice: owner is None or notice.get("owner") == owner)
    heartbeat_s = res.settings.daemon.stream_heartbeat_seconds

    def messages() -> Iterator[str]:
        try:
            yield f"retry: {RECONNECT_MS}\n\n"
            reported_lost = 0
            while True:
                notice = subscription.get(timeout=heartbeat_s)
                if subscription.lost > reported_lost:
                    yield sse("gap", {"lost": subscription.lost - reported_lost})
                    reported_lost = subscription.lost
                if notice is None:
                    yield ": keep-alive\n\n"
                elif notice is not RESYNC:
                    yield sse("status", notice)
        finally:
            res.hub.unsubscribe(subscription)

    return stream_response(messages())
