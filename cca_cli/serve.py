"""Serve the API with gunicorn (``ccad`` and ``cca api``)."""

from __future__ import annotations

from typing import Any

import click
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from cca_core.access.safe_defaults import refuse_unsafe
from cca_core.infra.config import load_settings
from cca_core.infra.local_secrets import KEY_FILE, ensure_local_key
from cca_core.infra.logs import configure_logging_for
from cca_core.settings import Settings


class ApiServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with the app built from already-validated settings.

    gthread workers: a live follower (SSE) keeps its request open for minutes while it mostly
    waits on a socket, so each process serves ``daemon.api_threads`` requests at once and
    followers can take all but a few of them (cca_api.resources.follower_capacity). A sync
    worker would be taken whole by one follower; gevent would need every driver (psycopg,
    redis, kombu) patched, and an asyncio server a second app."""

    def __init__(self, settings: Settings, bind: str, processes: int) -> None:
        self.settings = settings
        self.options: dict[str, Any] = {"bind": bind, "workers": processes, "worker_class": "gthread",
                        "threads": settings.daemon.api_threads,
                        "timeout": 60, "graceful_timeout": 10,
                        "loglevel": {"warn": "warning"}.get(settings.daemon.log_level,
                                                            settings.daemon.log_level)}
        if settings.daemon.log_format == "json":
            self.options["logconfig_dict"] = json_logconfig(self.options["loglevel"])
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from cca_api import create_app

        configure_logging_for(self.settings)
        return create_app(self.settings, load=lambda: with_an_admin_key(load_settings()))


def json_logconfig(level: str) -> dict[str, Any]:
    """gunicorn's own loggers in the same one-object-per-line JSON as cca's."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    logger = {"handlers": ["stderr"], "level": level.upper(), "propagate": False}
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"json": {"()": "cca_core.infra.logs.JsonFormatter"}},
            "handlers": {"stderr": handler},
            "loggers": {"gunicorn.error": logger, "gunicorn.access": logger},
            "root": {"handlers": ["stderr"], "level": level.upper()}}


def serve(settings: Settings, bind: str | None = None, processes: int | None = None) -> None:
    """Run the API. Raises ConfigError when its settings would open the fleet (open on a
    network address, or bridges that could not authenticate)."""
    refuse_unsafe(settings, bind)
    ApiServer(with_an_admin_key(settings), bind or settings.daemon.bind_address,
              processes or settings.daemon.api_processes).run()


def with_an_admin_key(settings: Settings) -> Settings:
    """With auth on and no configured key, the data directory's local admin key (made on
    first start, mode 0600, as `cca up` makes it): an API that requires keys must have one."""
    daemon = settings.daemon
    if not daemon.require_auth or daemon.api_keys:
        return settings
    key = ensure_local_key(settings.data_dir)
    click.echo(f"ccad: daemon.api_keys is empty; the admin key is in {settings.data_dir / KEY_FILE}",
               err=True)
    return settings.model_copy(update={"daemon": daemon.model_copy(update={"api_keys": [key]})})
