"""Who is calling: API keys (``X-API-Key`` or ``Authorization: Bearer``) resolved to a
Principal with a role and a tenant. Keys are compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from flask import Request, g

from cca_core.errors import Forbidden, Unauthorized

Role = Literal["admin", "submitter", "reader"]
ROLES: tuple[Role, ...] = ("admin", "submitter", "reader")


@dataclass(frozen=True)
class Principal:
    """The caller. ``tenant`` owns what the caller creates; admins see every tenant."""

    name: str
    tenant: str
    role: Role
    key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def scope(self) -> str | None:
        """The tenant whose rows this caller may see, or None for all (admins)."""
        return None if self.is_admin else self.tenant


ANONYMOUS = Principal(name="anonymous", tenant="local", role="admin")
CONFIG_KEY = Principal(name="config", tenant="admin", role="admin")


def presented_key(request: Request) -> str | None:
    if key := request.headers.get("X-API-Key"):
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def matches_any(presented: str, keys: Sequence[str]) -> bool:
    """Compare against every key (no early exit), each in constant time."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.encode(), key.encode())
    return matched


def require_key(presented: str | None) -> str:
    if not presented:
        raise Unauthorized("an API key is required: send X-API-Key or Authorization: Bearer")
    return presented


def current() -> Principal:
    """The principal of this request (set before the view runs)."""
    return g.get("principal", ANONYMOUS)


def require_role(*roles: Role) -> Principal:
    """Return the caller; raise Forbidden unless it has one of ``roles``."""
    principal = current()
    if principal.role not in roles:
        raise Forbidden(f"a {principal.role} key may not do this (needs {' or '.join(roles)})")
    return principal
