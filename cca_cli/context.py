"""What every command shares: settings loaded once, errors printed without a traceback."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cca_core.errors import CcaError
from cca_core.infra import local_fleet
from cca_core.infra.api_client import ApiError, CcaClient
from cca_core.infra.config import load_settings
from cca_core.infra.local_fleet import LocalFleet
from cca_core.infra.local_secrets import read_local_key
from cca_core.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def print_json(data: Any) -> None:
    """What every ``--json`` prints: the API's answer, indented."""
    click.echo(json.dumps(data, indent=2))


def fail(message: str, code: int = 1) -> None:
    click.echo(f"cca: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn cca's expected errors into one line on stderr and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ApiError as exc:
            where = f" (field {exc.field})" if exc.field else ""
            fail(f"{exc.message}{where} [{exc.code}]")
        except CcaError as exc:
            fail(exc.message, 2)

    return wrapper  # type: ignore[return-value]


class CliState:
    def __init__(self, api_url: str | None, api_key: str | None, data_dir: Path | None = None) -> None:
        self._api_url = api_url
        self._api_key = api_key
        self.data_dir = data_dir  # --data-dir: where to look for a running `cca up`
        self._settings: Settings | None = None
        self.fleet: LocalFleet | None = None  # the `cca up` fleet these settings joined

    def configured(self) -> Settings:
        """The settings of the files and the environment alone (what ``cca up`` runs on)."""
        settings = load_settings()
        if self.data_dir is not None:
            os.environ["CCA__EMBEDDED__DATA_DIR"] = str(self.data_dir.expanduser().resolve())
            settings = load_settings()
        return settings

    @property
    def settings(self) -> Settings:
        """The settings, joined to the running ``cca up`` of the data directory when they name
        no Redis or Postgres of their own (cca_core.infra.local_fleet)."""
        if self._settings is None:
            settings = self.configured()
            if not (settings.redis.url and settings.postgres.url):
                self.fleet = local_fleet.find(settings.data_dir)
                if self.fleet is not None:
                    os.environ.update(self.fleet.environment())
                    settings = load_settings()
            self._settings = settings
        return self._settings

    def client(self) -> CcaClient:
        settings = self.settings
        url = self._api_url or (self.fleet.api_url if self.fleet else f"http://{settings.daemon.bind_address}")
        key = (self._api_key or next(iter(settings.daemon.api_keys), None)
               or read_local_key(settings.data_dir))
        return CcaClient(url, key)


pass_state = click.make_pass_decorator(CliState)


def data_dir_option(command: F) -> F:
    """``--data-dir``: join the ``cca up`` fleet of that data directory (as ``cca --data-dir``)."""

    @functools.wraps(command)
    def wrapper(*args: Any, data_dir: Path | None, **kwargs: Any) -> Any:
        state = click.get_current_context().find_object(CliState)
        if data_dir is not None and state is not None:
            state.data_dir = data_dir
        return command(*args, **kwargs)

    return click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
                        help="Join the `cca up` fleet running from this data directory.")(wrapper)  # type: ignore[return-value]
