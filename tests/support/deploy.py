"""Read cca's deployment files as their tools would: Compose files with their variable
interpolation, Dockerfile instructions, systemd units; and resolve what they name (commands,
``CCA__SECTION__KEY`` variables) against the real package."""

from __future__ import annotations

import re
import shlex
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import BaseModel

from cca_cli.main import cli
from cca_core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CCA_VAR = re.compile(r"\bCCA__[A-Z0-9_]+\b")
_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


class MissingVariable(Exception):
    """A ``${VAR:?message}`` whose variable is unset, as Compose refuses it."""


def load_compose(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's interpolation: ${V}, ${V:-default}, ${V-default}, ${V:?err}, ${V?err}, $$."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        if name is None:
            return "$"
        present = env.get(name, "") != "" if op and op.startswith(":") else name in env
        if op in (":-", "-"):
            return env[name] if present else arg
        if op in (":?", "?") and not present:
            raise MissingVariable(f"{name}: {arg}")
        return env.get(name, "")

    return _REFERENCE.sub(replace, value)


def references(value: str) -> list[tuple[str, str | None, str]]:
    """The ``${…}`` references in a string: (name, operator, argument)."""
    return [(m[1], m[2], m[3] or "") for m in _REFERENCE.finditer(value) if m[1]]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment, from either of Compose's forms."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def published(service: Mapping[str, Any]) -> dict[int, tuple[str, int]]:
    """Container port -> (host address, host port) of a service's short-syntax ports."""
    ports: dict[int, tuple[str, int]] = {}
    for spec in service.get("ports", []):
        parts = str(spec).split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        ports[int(parts[-1])] = (host_ip, int(parts[-2]))
    return ports


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in logical.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(words[0].upper(), words[1] if len(words) > 1 else "") for words in pairs]


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as section -> key -> every value given (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def console_scripts() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def check_command(argv: list[str] | str) -> click.Command | None:
    """Resolve a command line to the console script or ``cca`` command it runs, parsing its
    options as click would; raise AssertionError if anything in it is not real."""
    args = shlex.split(argv) if isinstance(argv, str) else list(argv)
    program = Path(args[0]).name
    assert program in console_scripts(), f"{program} is not a console script of pyproject.toml"
    if program == "ccad":
        assert args[1:] == [], "ccad takes no arguments; configure it with settings"
        return cli.commands["api"]
    if program != "cca":
        return None  # cca-mcp: an MCP server with its own options
    command: click.Command = cli
    rest = args[1:]
    while isinstance(command, click.Group):
        assert rest and rest[0] in command.commands, f"`{' '.join(args)}`: no such cca command"
        command = command.commands[rest.pop(0)]
    command.make_context(program, rest)  # raises click.UsageError on an unknown option
    return command


def setting_for(variable: str) -> str:
    """The dotted setting a ``CCA__SECTION__KEY`` variable sets, or AssertionError."""
    parts = variable.removeprefix("CCA__").lower().split("__")
    model: type[BaseModel] = Settings
    for index, part in enumerate(parts):
        assert part in model.model_fields, f"{variable}: {'.'.join(parts[:index + 1])} is no setting"
        annotation = model.model_fields[part].annotation
        nested = _model_in(annotation)
        if typing.get_origin(annotation) is dict:
            assert index < len(parts) - 1, f"{variable} names a table, not a key"
            return ".".join(parts)  # [agents.env] and [agents.roles] take any name
        if nested is None:
            assert index == len(parts) - 1, f"{variable}: {'.'.join(parts[:index + 1])} has no keys"
            return ".".join(parts)
        model = nested
    raise AssertionError(f"{variable} names a section, not a key")


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None
