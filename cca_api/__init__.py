"""cca API: a thin Flask app over the store and the Celery producer."""

from __future__ import annotations

from flask import Flask, g, request

from cca_api import errors, fleet, openapi, tasks
from cca_api.auth import ANONYMOUS, CONFIG_KEY, matches_any, presented_key, require_key
from cca_api.resources import make_resources
from cca_core.config import load_settings
from cca_core.errors import Unauthorized
from cca_core.settings import Settings

PUBLIC_PATHS = frozenset({"/health"})


def create_app(settings: Settings | None = None) -> Flask:
    """Build the API for ``settings`` (loaded from the config files when None)."""
    settings = settings or load_settings()
    app = Flask("cca_api")
    app.config["MAX_CONTENT_LENGTH"] = settings.daemon.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["cca"] = make_resources(settings)
    errors.init_app(app)
    for blueprint in (tasks.bp, fleet.bp, openapi.bp):
        app.register_blueprint(blueprint)

    @app.before_request
    def _authenticate() -> None:
        if request.path in PUBLIC_PATHS:
            return
        presented = presented_key(request)
        if presented is None and not settings.daemon.require_auth:
            g.principal = ANONYMOUS
            return
        key = require_key(presented)
        if not matches_any(key, settings.daemon.api_keys):
            raise Unauthorized("the API key is not valid")
        g.principal = CONFIG_KEY

    @app.after_request
    def _no_sniff(response):  # type: ignore[no-untyped-def]
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
