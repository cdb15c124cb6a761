"""The dashboard's routes: sign-in, the pages, the actions, and the pages' live streams."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, url_for
from pydantic import ValidationError
from werkzeug.wrappers import Response as BaseResponse

from cca_api import live, schedules, tasks
from cca_api.auth import ANONYMOUS, current, require_role
from cca_api.resources import Resources
from cca_api.ui import session as sessions
from cca_core.access.keys import list_keys
from cca_core.errors import CcaError, field_path, plain_message
from cca_core.fleet import trends
from cca_core.fleet.state import queue_depths, workers_with_slots
from cca_core.infra.db import transaction
from cca_core.schedules import store as schedule_store
from cca_core.schedules.schemas import schedule_view
from cca_core.tasks import store
from cca_core.tasks.narration import event_lines
from cca_core.tasks.schemas import TaskCreate, attempt_view, event_view, task_view
from cca_core.tasks.status import ALL_STATUSES, TERMINAL_STATUSES
from cca_core.workflows import store as workflows
from cca_core.workflows.schemas import workflow_summary, workflow_view

bp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates",
               static_folder="static", static_url_path="/static")
OPEN = frozenset({"ui.login", "ui.sign_in", "ui.static"})
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PAGE = 50
TIMELINE = 300  # events of a task shown at first; the rest arrive live
PLOT_HOURS = (6, 24, 72, 168)
NAV = (("ui.tasks_page", "Tasks"), ("ui.workflows_page", "Workflows"), ("ui.workers_page", "Workers"),
       ("ui.queues_page", "Queues"), ("ui.schedules_page", "Schedules"), ("ui.plots_page", "Plots"),
       ("ui.keys_page", "Keys"))


def resources() -> Resources:
    return current_app.extensions["cca"]


@bp.before_request
def _signed_in() -> BaseResponse | None:
    if request.endpoint in OPEN:
        return None
    found = sessions.load(resources(), request)
    if found is None:
        return redirect(url_for("ui.login", next=request.path))
    g.principal, g.ui = found.principal, found
    if request.method == "POST" and not sessions.same_token(found.csrf, request.form.get("csrf_token")):
        return render("error.html", code=403,
                      message="This form has expired; reload the page and try again.")
    return None


@bp.after_request
def _policy(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    return response


def render(template: str, code: int = 200, **context: Any) -> Response:
    ui = g.get("ui")
    return Response(render_template(
        template, principal=ui.principal if ui else None, csrf=ui.csrf if ui else "", nav=NAV,
        notice=request.args.get("notice"), error=request.args.get("error"), **context), code)


def back(endpoint: str, error: str | None = None, notice: str | None = None, **values: Any) -> BaseResponse:
    query = {name: text for name, text in (("error", error), ("notice", notice)) if text}
    return redirect(url_for(endpoint, **values) + (f"?{urlencode(query)}" if query else ""), 303)


def act(endpoint: str, action: Callable[[], Any], done: str, **values: Any) -> BaseResponse:
    """Run an action; go back to ``endpoint`` saying what happened or what went wrong."""
    try:
        action()
    except CcaError as exc:
        return back(endpoint, error=exc.message, **values)
    return back(endpoint, notice=done, **values)


# Sign-in -------------------------------------------------------------------------------------

@bp.get("/login")
def login() -> Response:
    token = sessions.login_token(request)
    response = render("login.html", token=token, next=_safe_next(request.args.get("next")),
                      key_needed=resources().settings.daemon.require_auth)
    sessions.set_login_cookie(response, request, token)
    return response


@bp.post("/login")
def sign_in() -> BaseResponse:
    res = resources()
    next_page = _safe_next(request.form.get("next"))
    expected = request.cookies.get(sessions.LOGIN_COOKIE)
    if not sessions.same_token(expected, request.form.get("login_token")):
        return redirect(url_for("ui.login", next=next_page,
                                error="The sign-in form expired; try again."), 303)
    key = (request.form.get("api_key") or "").strip()
    if not key and res.settings.daemon.require_auth:
        return redirect(url_for("ui.login", next=next_page, error="Enter your API key."), 303)
    try:
        principal = res.keys.resolve(key) if key else ANONYMOUS
        found = sessions.sign_in(res, principal)
    except CcaError as exc:
        return redirect(url_for("ui.login", next=next_page, error=f"Not signed in: {exc.message}"), 303)
    response = redirect(next_page, 303)
    sessions.set_cookie(response, res, request, found)
    return response


@bp.post("/logout")
def sign_out() -> BaseResponse:
    sessions.sign_out(resources(), g.ui)
    response = redirect(url_for("ui.login", notice="Signed out."), 303)
    sessions.clear_cookie(response)
    return response


def _safe_next(target: str | None) -> str:
    """Only a path of the dashboard (never another site)."""
    if target and target.startswith("/ui") and not urlsplit(target).netloc and "//" not in target:
        return target
    return "/ui/tasks"


# Tasks ---------------------------------------------------------------------------------------

@bp.get("")
@bp.get("/")
def home() -> BaseResponse:
    return redirect(url_for("ui.tasks_page"))


@bp.get("/tasks")
def tasks_page() -> Response:
    status = request.args.get("status") or None
    role = request.args.get("role") or None
    if status not in (None, *ALL_STATUSES):
        status = None
    with transaction(resources().sessions) as session:
        rows, cursor = store.list_tasks(session.connection(), status=status, role=role,
                                        owner=current().scope(), limit=PAGE,
                                        cursor=request.args.get("cursor") or None)
    return render("tasks.html", tasks=[task_view(row) for row in rows], cursor=cursor,
                  statuses=ALL_STATUSES, status=status, role=role or "",
                  roles=sorted(resources().settings.agents.roles))


@bp.post("/tasks")
def submit_task() -> BaseResponse:
    res = resources()
    fields = {name: value for name, value in (
        ("prompt", request.form.get("prompt", "").strip()), ("role", request.form.get("role")),
        ("priority", request.form.get("priority")),
        ("token_budget", request.form.get("token_budget"))) if value}
    try:
        body = TaskCreate.model_validate(fields)
        view, _ = tasks.create_task(res, require_role("admin", "submitter"), body)
    except ValidationError as exc:
        first = exc.errors()[0]
        return back("ui.tasks_page", error=f"{field_path(first['loc'])}: {plain_message(first)}")
    except CcaError as exc:
        return back("ui.tasks_page", error=exc.message)
    return back("ui.task_page", notice="Submitted.", task_id=view.id)


@bp.get("/tasks/<task_id>")
def task_page(task_id: str) -> Response:
    principal = current()
    with transaction(resources().sessions) as session:
        connection = session.connection()
        view = tasks.read_task(connection, task_id, principal)
        events = [event_view(row) for row in store.list_events(
            connection, task_id, limit=TIMELINE, max_bytes=2 * 1024 * 1024, owner=principal.scope())]
        attempts = [attempt_view(row) for row in store.list_attempts(connection, task_id,
                                                                      principal.scope())]
    return render("task.html", task=view, events=events, attempts=attempts,
                  after=events[-1].id if events else 0, ended=view.status in TERMINAL_STATUSES)


@bp.post("/tasks/<task_id>/cancel")
def cancel_task(task_id: str) -> BaseResponse:
    return act("ui.task_page", partial(tasks.cancel, task_id), "Cancel requested.", task_id=task_id)


# Workflows, fleet, schedules, keys --------------------------------------------------------------

@bp.get("/workflows")
def workflows_page() -> Response:
    with transaction(resources().sessions) as session:
        rows, cursor = workflows.list_workflows(session.connection(), owner=current().scope(), limit=PAGE,
                                                cursor=request.args.get("cursor") or None)
    return render("workflows.html", workflows=[workflow_summary(row) for row in rows], cursor=cursor)


@bp.get("/workflows/<workflow_id>")
def workflow_page(workflow_id: str) -> Response:
    with transaction(resources().sessions) as session:
        workflow, steps = workflows.get_workflow(session.connection(), workflow_id, current().scope())
    view = workflow_view(workflow, steps)
    return render("workflow.html", workflow=view, levels=levels(view.tasks))


def levels(steps: list[Any]) -> list[list[Any]]:
    """The steps in columns: each after every step it depends on."""
    depth: dict[str, int] = {}
    for step in steps:  # steps come after their dependencies
        depth[step.name] = 1 + max((depth.get(name, 0) for name in step.depends_on), default=-1)
    columns: list[list[Any]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for step in steps:
        columns[depth[step.name]].append(step)
    return columns


@bp.get("/workers")
def workers_page() -> Response:
    res = resources()
    with transaction(res.sessions) as session:
        workers = workers_with_slots(res.redis, session)
    return render("workers.html", workers=workers)


@bp.get("/queues")
def queues_page() -> Response:
    res = resources()
    with transaction(res.sessions) as session:
        workers = workers_with_slots(res.redis, session)
        counts = store.count_by_status(session.connection())
    names = set(res.settings.agents.queues) | {q for worker in workers for q in worker["queues"]}
    depths = queue_depths(res.redis, names)
    consumers = {queue: [w["hostname"] for w in workers if queue in w["queues"]] for queue in depths}
    return render("queues.html", depths=depths, consumers=consumers, counts=counts)


@bp.get("/schedules")
def schedules_page() -> Response:
    with transaction(resources().sessions) as session:
        rows = [schedule_view(row) for row in schedule_store.list_schedules(session, current().scope())]
    return render("schedules.html", schedules=rows)


@bp.post("/schedules/<schedule_id>/<action>")
def schedule_action(schedule_id: str, action: str) -> BaseResponse:
    run = {"pause": schedules.pause, "resume": schedules.resume, "run": schedules.run}.get(action)
    if run is None:
        return back("ui.schedules_page", error=f"unknown action {action}")
    return act("ui.schedules_page", partial(run, schedule_id),
               {"pause": "Paused.", "resume": "Resumed.", "run": "Its task was submitted."}[action])


@bp.get("/keys")
def keys_page() -> Response:
    if not current().is_admin:
        return render("error.html", code=403, message="Keys and quotas are for admins.")
    with transaction(resources().sessions) as session:
        rows = list_keys(session)
        used = {row.name: store.usage_today(session.connection(), row.name) for row in rows}
    return render("keys.html", keys=rows, used=used)


# Plots ------------------------------------------------------------------------------------------

@bp.get("/plots")
def plots_page() -> Response:
    hours = request.args.get("hours", type=int) or 24
    hours = hours if hours in PLOT_HOURS else 24
    by = request.args.get("by") if request.args.get("by") in ("role", "model", "key") else "role"
    owner = current().scope()
    with transaction(resources().sessions) as session:
        connection = session.connection()
        data = {"spending": trends.spending(connection, owner, hours, by),  # type: ignore[arg-type]
                "statuses": trends.statuses(connection, owner, hours),
                "durations": trends.durations(connection, owner, hours),
                "samples": trends.samples(connection, hours)}
    return render("plots.html", data=data, hours=hours, by=by, hour_choices=PLOT_HOURS,
                  sample_seconds=resources().settings.dashboard.sample_seconds)


# Live -------------------------------------------------------------------------------------------

@bp.get("/stream")
def status_stream() -> Response:
    return live.status_stream()


@bp.get("/tasks/<task_id>/stream")
def task_stream(task_id: str) -> Response:
    res, principal = resources(), current()
    with transaction(res.sessions) as session:
        tasks.read_task(session.connection(), task_id, principal)
    after = request.args.get("after", type=int) or 0
    messages: Iterator[str] = live.follow_task(
        res, task_id, after, principal.scope(),
        lambda connection: tasks.read_task(connection, task_id, principal),
        present=lambda view: {"id": view.id, "type": view.type, "subtype": view.subtype,
                              "text": event_text(view.data)})
    return live.stream_response(messages)


@bp.app_template_filter("event_text")
def event_text(data: dict[str, Any]) -> str:
    """An event as the timeline shows it (what the terminal's follow shows)."""
    return " · ".join(event_lines(data))

