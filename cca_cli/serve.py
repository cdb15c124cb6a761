"""Serve the API with gunicorn (``ccad`` and ``cca api``)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from cca_core.logs import configure_logging_for
from cca_core.settings import Settings


class ApiServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with the app built from already-validated settings."""

    def __init__(self, settings: Settings, bind: str, processes: int) -> None:
        self.settings = settings
        self.options: dict[str, Any] = {"bind": bind, "workers": processes, "worker_class": "sync",
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
        return create_app(self.settings)


def json_logconfig(level: str) -> dict[str, Any]:
    """gunicorn's own loggers in the same one-object-per-line JSON as cca's."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    logger = {"handlers": ["stderr"], "level": level.upper(), "propagate": False}
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"json": {"()": "cca_core.logs.JsonFormatter"}},
            "handlers": {"stderr": handler},
            "loggers": {"gunicorn.error": logger, "gunicorn.access": logger},
            "root": {"handlers": ["stderr"], "level": level.upper()}}


def serve(settings: Settings, bind: str | None = None, processes: int | None = None) -> None:
    ApiServer(settings, bind or settings.daemon.bind_address,
              processes or settings.daemon.api_processes).run()


def ccad_main() -> None:
    """Entry point of ``ccad``: the API server as the guide's systemd unit starts it."""
    from cca_cli.main import main

    main(["api"])
