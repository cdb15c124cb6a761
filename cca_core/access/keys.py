"""Managed API keys: created once (the secret is shown once), stored as a hash, revocable.

A key reads ``cca_<prefix>_<secret>``; the prefix finds the row, the secret's SHA-256 is
compared in constant time. Keys are random (256 bits), so a fast hash is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cca_core.access.key_limits import NO_LIMITS, KeyLimits
from cca_core.errors import Conflict, Invalid, NotFound
from cca_core.models import ApiKey

PREFIX_BYTES = 6
SECRET_BYTES = 32
# Who acts for a config-file key and for an API without auth: no managed key may take these
# names, or it would share their tasks' quotas and be taken for them by schedules.
CONFIG_KEY_NAME = "config"
ANONYMOUS_NAME = "anonymous"


@dataclass(frozen=True)
class Quotas:
    max_concurrent: int | None = None
    tokens_per_day: int | None = None
    usd_per_day: float | None = None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(presented: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed managed key, else None."""
    parts = presented.split("_")
    if len(parts) != 3 or parts[0] != "cca" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def create_key(
    session: Session, name: str, role: str, tenant: str | None = None, quotas: Quotas = Quotas(),
    limits: KeyLimits = NO_LIMITS,
) -> tuple[ApiKey, str]:
    """Store a new key; return the row and the plaintext key (shown once).

    Raises Conflict when the name is taken, Invalid when it is reserved.
    """
    if name in (CONFIG_KEY_NAME, ANONYMOUS_NAME):
        raise Invalid(f"the name {name!r} is reserved", field="name")
    prefix = secrets.token_hex(PREFIX_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES).replace("_", "-")
    row = ApiKey(name=name, prefix=prefix, secret_hash=digest(secret), role=role,
                 tenant=tenant or name, max_concurrent=quotas.max_concurrent,
                 tokens_per_day=quotas.tokens_per_day, usd_per_day=quotas.usd_per_day,
                 limits=limits.model_dump(mode="json", exclude_none=True))
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise Conflict(f"a key named {name!r} already exists", field="name") from None
    return row, f"cca_{prefix}_{secret}"


def find_key(session: Session, presented: str) -> ApiKey | None:
    """The live key matching ``presented``, or None."""
    parts = split_key(presented)
    if parts is None:
        return None
    prefix, secret = parts
    row = session.scalars(
        select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
    ).one_or_none()
    if row is None or not hmac.compare_digest(row.secret_hash, digest(secret)):
        return None
    return row


def named_key(session: Session, name: str) -> ApiKey | None:
    """The managed key named ``name``, revoked or not; None for a config key."""
    return session.scalars(select(ApiKey).where(ApiKey.name == name)).one_or_none()


def quotas_of(row: ApiKey) -> Quotas:
    return Quotas(row.max_concurrent, row.tokens_per_day, row.usd_per_day)


def limits_of(row: ApiKey) -> KeyLimits:
    return KeyLimits.model_validate(row.limits or {})


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def revoke_key(session: Session, name: str) -> ApiKey:
    """Revoke by name. Raises NotFound."""
    row = session.scalars(
        update(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now()).returning(ApiKey)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no live key named {name!r}")
    return row


def key_view(row: ApiKey) -> dict[str, Any]:
    return {"id": str(row.id), "name": row.name, "prefix": row.prefix, "role": row.role,
            "tenant": row.tenant, "max_concurrent": row.max_concurrent,
            "tokens_per_day": row.tokens_per_day, "usd_per_day": row.usd_per_day,
            **limits_of(row).model_dump(mode="json"),
            "created_at": row.created_at.isoformat() if row.created_at else None,
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None}
