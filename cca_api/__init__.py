"""cca API: a thin Flask app over the store and the Celery producer."""

from __future__ import annotations

from flask import Flask, Response, g, request

from cca_api import code, errors, fleet, keys, memory, openapi, roles, schedules, tasks, tokens, workflows
from cca_api.auth import ANONYMOUS, presented_key, refuse_task_tokens_outside, require_key
from cca_api.limits import check_rate, client_ip
from cca_api.operations import declared
from cca_api.resources import make_resources
from cca_api.security import harden
from cca_core.infra.config import load_settings
from cca_core.settings import Settings

TASK_TOKEN_BLUEPRINTS = frozenset({tasks.bp.name, fleet.bp.name, openapi.bp.name, roles.bp.name,
                                   memory.bp.name, code.bp.name})


def create_app(settings: Settings | None = None) -> Flask:
    """Build the API for ``settings`` (loaded from the config files when None)."""
    settings = settings or load_settings()
    app = routes()
    app.config["MAX_CONTENT_LENGTH"] = settings.daemon.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    res = make_resources(settings)
    app.extensions["cca"] = res
    errors.init_app(app)
    security = settings.security

    @app.before_request
    def _authenticate() -> None:
        if request.method == "OPTIONS":
            return
        ip = client_ip(request, security)
        if _is_public(app, request.endpoint):
            # Public, so limited too; counted apart, so a load balancer's probes never use up
            # the budget of the clients behind the same address.
            check_rate(res.redis, f"ip:health:{ip}", security.ip_rate_limit_per_minute)
            return
        check_rate(res.redis, f"ip:{ip}", security.ip_rate_limit_per_minute)
        presented = presented_key(request)
        if presented is None and not settings.daemon.require_auth:
            g.principal = ANONYMOUS
            return
        g.principal = res.keys.resolve(require_key(presented))
        check_rate(res.redis, f"key:{g.principal.name}", security.rate_limit_per_minute)
        refuse_task_tokens_outside(TASK_TOKEN_BLUEPRINTS, request.blueprint)

    @app.after_request
    def _harden(response: Response) -> Response:
        return harden(response, request, security)

    return app


def routes() -> Flask:
    """A Flask app with cca's routes and nothing else (no settings, no connections): what
    ``create_app`` builds on, and what the OpenAPI document describes."""
    app = Flask("cca_api")
    for blueprint in (tasks.bp, fleet.bp, openapi.bp, keys.bp, schedules.bp, roles.bp,
                      workflows.bp, memory.bp, code.bp, tokens.bp):
        app.register_blueprint(blueprint)
    return app


def _is_public(app: Flask, endpoint: str | None) -> bool:
    """Whether the route declares itself public (``@operation(..., public=True)``)."""
    view = app.view_functions.get(endpoint or "")
    found = declared(view) if view is not None else None
    return found is not None and found.public
