"""Load cca's configuration: TOML files, deep-merged, then ``CCA__SECTION__KEY`` variables.

Files, later wins: ``~/.config/cca/cca.toml`` then ``./cca.toml``; ``CCA_CONFIG`` names one
file instead. ``${VAR}`` inside a string is expanded from the environment. The merged result is
validated into :class:`Settings`; a bad key raises :class:`ConfigError` naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dynaconf import Dynaconf  # type: ignore[import-untyped]
from pydantic import ValidationError

from cca_core.errors import ConfigError, field_path, plain_message
from cca_core.settings import Settings

ENV_PREFIX = "CCA_"  # dynaconf adds one "_": variables are spelled CCA__SECTION__KEY
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_KEYS = ("key", "token", "secret", "password", "basic_auth")
MASK = "********"


def config_files(env: Mapping[str, str] | None = None) -> list[Path]:
    """Return the config files that exist, in load order (later wins)."""
    env = os.environ if env is None else env
    if env.get("CCA_CONFIG"):
        path = Path(env["CCA_CONFIG"]).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"CCA_CONFIG names {path}, which does not exist", field="CCA_CONFIG")
        return [path]
    candidates = [Path("~/.config/cca/cca.toml").expanduser(), Path.cwd() / "cca.toml"]
    return [path.resolve() for path in candidates if path.is_file()]


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Load, merge, expand and validate the configuration.

    ``overrides`` (nested dicts) win over files and environment; tests and the CLI use it.
    Raises ConfigError naming the first bad key.
    """
    files = config_files()
    try:
        raw = Dynaconf(
            envvar_prefix=ENV_PREFIX,
            settings_files=[str(path) for path in files],
            merge_enabled=True,
            environments=False,
        ).as_dict()
    except Exception as exc:  # dynaconf raises many kinds for a broken TOML file
        names = ", ".join(str(path) for path in files)
        raise ConfigError(f"cannot read configuration ({names}): {exc}") from exc
    data = _deep_merge(_lower_keys(raw), _lower_keys(dict(overrides or {})))
    return validate(_expand(data, path=""))


def validate(data: Mapping[str, Any]) -> Settings:
    """Validate plain data into Settings; raise ConfigError naming the bad key."""
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = field_path(first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else plain_message(first)
        raise ConfigError(f"config key {key}: {message}", field=key) from exc


def masked(settings: Settings) -> dict[str, Any]:
    """Return the settings as plain data with every secret replaced by a mask."""
    return _mask(settings.model_dump(mode="json"), key="")


def _mask(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, k.lower()) for k, v in value.items()}
    if isinstance(value, list):
        return [MASK for _ in value] if _is_secret(key) else value
    if isinstance(value, str):
        if _is_secret(key) and value:
            return MASK
        return mask_url(value)
    return value


def _is_secret(key: str) -> bool:
    return any(word in key for word in _SECRET_KEYS)


def mask_url(value: str) -> str:
    """Hide the password of a URL such as ``postgres://user:pw@host/db``."""
    return re.sub(r"(://[^:/@]*:)[^@/]+@", rf"\1{MASK}@", value)


def _lower_keys(value: Any) -> Any:
    """Lower-case setting names; the names of ``env`` tables are variable names and keep case."""
    if isinstance(value, Mapping):
        return {
            str(k).lower(): dict(v) if str(k).lower() == "env" and isinstance(v, Mapping)
            else _lower_keys(v)
            for k, v in value.items()
        }
    return value


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _expand(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(item, path) for item in value]
    if isinstance(value, str):
        return _VAR.sub(lambda match: _lookup(match.group(1), path), value)
    return value


def _lookup(name: str, path: str) -> str:
    if name not in os.environ:
        raise ConfigError(f"config key {path}: environment variable {name} is not set", field=path)
    return os.environ[name]
