"""Managed API keys (admin only): create (the key is shown once), list, revoke."""

from __future__ import annotations

import re
from typing import Any, Literal

from flask import Blueprint, current_app
from pydantic import ConfigDict, Field

from cca_api import operations
from cca_api.auth import require_role
from cca_api.operations import REF, operation
from cca_api.resources import Resources
from cca_core.access.key_limits import KeyLimits, check_limits
from cca_core.access.keys import Quotas, create_key, key_view, list_keys, revoke_key
from cca_core.errors import NotFound
from cca_core.infra.db import transaction

bp = Blueprint("keys", __name__, url_prefix="/api/v1/keys")
KEY_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class KeyCreate(KeyLimits):
    """A new key: its name, role, tenant, quotas and the limits of its tasks (KeyLimits)."""

    model_config = ConfigDict(extra="forbid", frozen=False)

    name: str = Field(min_length=1, max_length=64, pattern=KEY_NAME.pattern)
    role: Literal["admin", "submitter", "reader"] = "submitter"
    tenant: str | None = Field(default=None, min_length=1, max_length=64,
                               pattern=r"^[A-Za-z0-9_.\-]+$",
                               description="Team whose tasks the key shares (default: its name).")
    # Bounded by their columns (INTEGER, BIGINT, NUMERIC(12, 4)): a larger value is a 422.
    max_concurrent: int | None = Field(default=None, ge=0, le=2**31 - 1)
    tokens_per_day: int | None = Field(default=None, ge=0, le=2**63 - 1)
    usd_per_day: float | None = Field(default=None, ge=0, le=99_999_999)


# What the key routes answer: a key's row (never its secret), and once, with the secret.
KEY_VIEW: dict[str, Any] = {
    "type": "object", "required": ["name", "role", "tenant", *KeyLimits.model_fields],
    "additionalProperties": True,
    "properties": {"name": {"type": "string"}, "role": {"type": "string"},
                   "tenant": {"type": "string"},
                   **KeyLimits.model_json_schema(ref_template=REF)["properties"]}}
CREATED_KEY = {**KEY_VIEW, "properties": {**KEY_VIEW["properties"], "key": {"type": "string"}}}
KEY_LIST = {"type": "object", "required": ["keys"],
            "properties": {"keys": {"type": "array", "items": KEY_VIEW}}}


def resources() -> Resources:
    return current_app.extensions["cca"]


@bp.post("")
@operation("Create a managed key (its secret is in this answer only)", CREATED_KEY, status=201,
           body=KeyCreate, errors=(400, 403, 409, 415, 422))
def create() -> tuple[dict[str, Any], int]:
    require_role("admin")
    body = operations.body(KeyCreate)
    limits = KeyLimits.model_validate(body.model_dump(include=set(KeyLimits.model_fields)))
    check_limits(limits, resources().settings.agents)
    with transaction(resources().sessions) as session:
        row, secret = create_key(session, body.name, body.role, body.tenant,
                                 Quotas(body.max_concurrent, body.tokens_per_day, body.usd_per_day),
                                 limits)
        return {**key_view(row), "key": secret}, 201


@bp.get("")
@operation("List managed keys", KEY_LIST, errors=(403,))
def index() -> dict[str, Any]:
    require_role("admin")
    with transaction(resources().sessions) as session:
        return {"keys": [key_view(row) for row in list_keys(session)]}


@bp.post("/<name>/revoke")
@operation("Revoke a managed key (refused everywhere within seconds)", KEY_VIEW, errors=(403, 404))
def revoke(name: str) -> dict[str, Any]:
    require_role("admin")
    if not KEY_NAME.fullmatch(name):
        raise NotFound(f"no live key named {name[:64]!r}")
    with transaction(resources().sessions) as session:
        return key_view(revoke_key(session, name))
