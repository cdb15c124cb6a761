"""What every command shares: settings loaded once, errors printed without a traceback."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from cca_core.errors import CcaError
from cca_core.infra.api_client import ApiError, CcaClient
from cca_core.infra.config import load_settings
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
    def __init__(self, api_url: str | None, api_key: str | None) -> None:
        self._api_url = api_url
        self._api_key = api_key
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def client(self) -> CcaClient:
        url = self._api_url or f"http://{self.settings.daemon.bind_address}"
        key = (self._api_key or next(iter(self.settings.daemon.api_keys), None)
               or read_local_key(self.settings.data_dir))
        return CcaClient(url, key)


pass_state = click.make_pass_decorator(CliState)
