"""cca API: a thin Flask app over the store and the Celery producer."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from flask import Flask, Response, g, request

from cca_api import (
    code,
    errors,
    fleet,
    keys,
    live,
    memory,
    openapi,
    roles,
    schedules,
    tasks,
    tokens,
    ui,
    webhooks,
    workflows,
)
from cca_api.auth import ANONYMOUS, presented_key, refuse_task_tokens_outside, require_key
from cca_api.limits import check_rate, client_ip
from cca_api.operations import declared
from cca_api.resources import Resources, make_resources
from cca_api.security import harden
from cca_core.infra.config import load_settings
from cca_core.infra.reload import Watcher, api_process
from cca_core.settings import Settings

RELOAD_POLL_S = 1.0
TASK_TOKEN_BLUEPRINTS = frozenset({tasks.bp.name, fleet.bp.name, openapi.bp.name, roles.bp.name,
                                   memory.bp.name, code.bp.name})


def create_app(settings: Settings | None = None, *,
               load: Callable[[], Settings] | None = None) -> Flask:
    """Build the API for ``settings`` (loaded from the config files when None). ``load``
    reads the configuration again when a reload is asked (cca_core.infra.reload); without it
    (and with given settings) the app keeps its settings."""
    if settings is None:
        settings, load = load_settings(), load or load_settings
    app = routes()
    app.config["MAX_CONTENT_LENGTH"] = settings.daemon.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    res = make_resources(settings)
    if load is not None:
        res.watcher = Watcher(res.redis, settings, load, api_process())
    app.extensions["cca"] = res
    errors.init_app(app, on_quota=webhooks.quota_reached)
    app.register_blueprint(ui.bp)

    @app.before_request
    def _authenticate() -> None:
        follow_reloads(res)
        if request.method == "OPTIONS":
            return
        security = res.settings.security
        ip = client_ip(request, security)
        if request.blueprint == ui.bp.name:  # the dashboard signs in with a session of its own
            check_rate(res.redis, f"ip:{ip}", security.ip_rate_limit_per_minute)
            return
        if _is_public(app, request.endpoint):
            # Public, so limited too; counted apart, so a load balancer's probes never use up
            # the budget of the clients behind the same address.
            check_rate(res.redis, f"ip:health:{ip}", security.ip_rate_limit_per_minute)
            return
        check_rate(res.redis, f"ip:{ip}", security.ip_rate_limit_per_minute)
        presented = presented_key(request)
        if presented is None and not res.settings.daemon.require_auth:
            g.principal = ANONYMOUS
            return
        g.principal = res.keys.resolve(require_key(presented))
        check_rate(res.redis, f"key:{g.principal.name}", security.rate_limit_per_minute)
        refuse_task_tokens_outside(TASK_TOKEN_BLUEPRINTS, request.blueprint)

    @app.after_request
    def _harden(response: Response) -> Response:
        return harden(response, request, res.settings.security)

    return app


def routes() -> Flask:
    """A Flask app with cca's routes and nothing else (no settings, no connections): what
    ``create_app`` builds on, and what the OpenAPI document describes."""
    app = Flask("cca_api")
    for blueprint in (tasks.bp, fleet.bp, openapi.bp, keys.bp, schedules.bp, roles.bp,
                      workflows.bp, memory.bp, code.bp, tokens.bp, live.bp, webhooks.bp):
        app.register_blueprint(blueprint)
    return app


_following: set[int] = set()


def follow_reloads(res: Resources) -> None:
    """Once per process: a thread that applies a reloaded configuration within a second."""
    if res.watcher is None or os.getpid() in _following:
        return
    _following.add(os.getpid())
    watcher = res.watcher

    def follow() -> None:
        while True:
            time.sleep(RELOAD_POLL_S)
            fresh = watcher.check()
            if fresh is not None:
                res.settings = fresh

    threading.Thread(target=follow, name="config-reload", daemon=True).start()


def _is_public(app: Flask, endpoint: str | None) -> bool:
    """Whether the route declares itself public (``@operation(..., public=True)``)."""
    view = app.view_functions.get(endpoint or "")
    found = declared(view) if view is not None else None
    return found is not None and found.public
