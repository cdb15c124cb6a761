"""Who is calling: API keys (``X-API-Key`` or ``Authorization: Bearer``) resolved to a
Principal with a role and a tenant. Keys are compared in constant time."""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from flask import Request, g
from sqlalchemy.orm import Session, sessionmaker

from cca_core.access.key_limits import NO_LIMITS, KeyLimits
from cca_core.access.keys import (
    ANONYMOUS_NAME,
    CONFIG_KEY_NAME,
    Quotas,
    digest,
    find_key,
    limits_of,
    named_key,
    quotas_of,
)
from cca_core.access.task_tokens import verify
from cca_core.errors import Forbidden, Unauthorized
from cca_core.models import Task
from cca_core.tasks.status import TaskStatus
from cca_core.tasks.store import parse_task_id

Role = Literal["admin", "submitter", "reader"]
ROLES: tuple[Role, ...] = ("admin", "submitter", "reader")


@dataclass(frozen=True)
class Principal:
    """The caller. ``tenant`` owns what the caller creates; admins see every tenant."""

    name: str
    tenant: str
    role: Role
    key_id: str | None = None
    quotas: Quotas = Quotas()
    limits: KeyLimits = NO_LIMITS  # what its tasks may ask for (cca_core.access.key_limits)
    task_id: str | None = None  # set for a fleet agent's bridge: it may only add children

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def scope(self) -> str | None:
        """The tenant whose rows this caller may see, or None for all (admins)."""
        return None if self.is_admin else self.tenant


ANONYMOUS = Principal(name=ANONYMOUS_NAME, tenant="local", role="admin")
CONFIG_KEY = Principal(name=CONFIG_KEY_NAME, tenant="admin", role="admin")


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


class KeyResolver:
    """Resolve a presented key to a Principal: config keys are admins, managed keys and task
    tokens come from Postgres. Valid keys are cached for a few seconds, so a revocation (or a
    task's end) takes effect within ``ttl_s`` on every API process."""

    def __init__(self, config_keys: Sequence[str], sessions: sessionmaker[Session],
                 task_token_secret: str = "", ttl_s: float = 5.0) -> None:
        self._config_keys = list(config_keys)
        self._task_token_secret = task_token_secret
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Principal]] = {}

    def resolve(self, presented: str) -> Principal:
        """Raise Unauthorized for an unknown or revoked key."""
        if matches_any(presented, self._config_keys):
            return CONFIG_KEY
        fingerprint = digest(presented)
        cached = self._cache.get(fingerprint)
        if cached is not None and cached[0] >= time.monotonic():
            return cached[1]
        principal = self._lookup(presented)
        if principal is None:  # not cached: a key or task may become valid at any moment
            raise Unauthorized("the API key is not valid")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[fingerprint] = (time.monotonic() + self._ttl_s, principal)
        return principal

    def _lookup(self, presented: str) -> Principal | None:
        task_id = verify(self._task_token_secret, presented)
        with self._sessions() as session:
            if task_id is not None:
                return _task_principal(session, task_id)
            row = find_key(session, presented)
            if row is None:
                return None
            return Principal(name=row.name, tenant=row.tenant, role=row.role,  # type: ignore[arg-type]
                             key_id=str(row.id), quotas=quotas_of(row), limits=limits_of(row))


def _task_principal(session: Session, task_id: str) -> Principal | None:
    """A running task's bridge acts for the task's tenant, as a submitter of its children,
    under the name, quotas and limits of the key that created the tree's root (children
    inherit its ``created_by``): a tree spends one allowance. A revoked root key stops its
    tree's tokens; a config key's tree has no quotas."""
    task = session.get(Task, parse_task_id(task_id))
    if task is None or task.status != TaskStatus.RUNNING:
        return None
    key = named_key(session, task.created_by) if task.created_by else None
    if key is not None and key.revoked_at is not None:
        return None
    return Principal(name=task.created_by or f"task:{task_id}", tenant=task.owner or "local",
                     role="submitter", task_id=task_id,
                     quotas=quotas_of(key) if key is not None else Quotas(),
                     limits=limits_of(key) if key is not None else NO_LIMITS)


def refuse_task_tokens_outside(blueprints: frozenset[str], blueprint: str | None) -> None:
    """A task token reaches its own tasks (and the fleet's status), never schedules or keys."""
    principal = current()
    if principal.task_id is not None and blueprint not in blueprints:
        raise Forbidden("a task token may only submit, read and cancel tasks of its own subtree")
