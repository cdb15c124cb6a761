"""The roles cca ships: the seed's coordinator and its six specialists, each a prompt file
(``prompts/<role>.md``) and defaults in ``catalog.toml``. ``[agents.roles.NAME]`` in the config
adds a role or overrides fields of a shipped one (``cca_core.settings.AgentSettings``)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CATALOG = HERE / "catalog.toml"
PROMPTS = HERE / "prompts"


def shipped_roles() -> dict[str, dict[str, Any]]:
    """The shipped roles as config tables, their prompt files as absolute paths."""
    with CATALOG.open("rb") as catalog:
        roles: dict[str, dict[str, Any]] = tomllib.load(catalog)
    for name, role in roles.items():
        role["prompt_file"] = str(PROMPTS / f"{name}.md")
    return roles


def merged_roles(configured: dict[str, Any]) -> dict[str, Any]:
    """The shipped roles with the configured tables over them, field by field (a table
    given for ``permissions`` replaces the shipped one whole)."""
    roles: dict[str, Any] = shipped_roles()
    for name, table in configured.items():
        if isinstance(table, dict) and name in roles:
            shipped = dict(roles[name])
            if "append_system_prompt" in table:  # a prompt given inline wins over the file
                shipped.pop("prompt_file", None)
            roles[name] = {**shipped, **table}
        else:
            roles[name] = table
    return roles
