"""Signing in to the dashboard: an API key becomes a session.

The key is checked once, at sign-in, and never stored: the session (in Redis, for
``dashboard.session_hours``) keeps who signed in (a managed key's id, or that it was a
configured key) and a CSRF token. The browser holds only a random session id, in an HttpOnly,
SameSite=Strict cookie scoped to ``/ui``. Each request rebuilds the principal: a managed key
revoked since signs its sessions out. Every form that changes something carries the CSRF token,
and the sign-in form a token of its own (a double-submit cookie)."""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass

from flask import Request
from werkzeug.wrappers import Response

from cca_api.auth import ANONYMOUS, CONFIG_KEY, Principal
from cca_api.resources import Resources
from cca_core.access.keys import digest, limits_of, quotas_of
from cca_core.errors import Forbidden
from cca_core.infra.db import transaction
from cca_core.models import ApiKey

COOKIE = "cca_session"
LOGIN_COOKIE = "cca_login"  # the sign-in form's CSRF token (double submit)
PATH = "/ui"


@dataclass(frozen=True)
class UiSession:
    id: str
    csrf: str
    principal: Principal


def _key(session_id: str) -> str:
    return f"cca:ui:session:{digest(session_id)}"


def sign_in(res: Resources, principal: Principal) -> UiSession:
    if principal.task_id is not None:
        raise Forbidden("a task token cannot sign in to the dashboard")
    kind = ("anonymous" if principal is ANONYMOUS else "config" if principal is CONFIG_KEY
            else "managed")
    session = UiSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32), principal)
    record = {"kind": kind, "key_id": principal.key_id, "csrf": session.csrf}
    res.redis.set(_key(session.id), json.dumps(record), ex=_ttl(res))
    return session


def load(res: Resources, request: Request) -> UiSession | None:
    """The request's session, if it has a live one."""
    session_id = request.cookies.get(COOKIE)
    raw = res.redis.get(_key(session_id)) if session_id else None
    if not session_id or raw is None:
        return None
    record = json.loads(raw)
    principal = _principal(res, record)
    return None if principal is None else UiSession(session_id, record["csrf"], principal)


def _principal(res: Resources, record: dict[str, str]) -> Principal | None:
    if record["kind"] == "anonymous":
        return None if res.settings.daemon.require_auth else ANONYMOUS
    if record["kind"] == "config":
        return CONFIG_KEY
    with transaction(res.sessions) as session:
        row = session.get(ApiKey, record["key_id"])
        if row is None or row.revoked_at is not None:
            return None
        return Principal(name=row.name, tenant=row.tenant, role=row.role,  # type: ignore[arg-type]
                         key_id=str(row.id), quotas=quotas_of(row), limits=limits_of(row))


def sign_out(res: Resources, session: UiSession) -> None:
    res.redis.delete(_key(session.id))


def set_cookie(response: Response, res: Resources, request: Request, session: UiSession) -> None:
    response.set_cookie(COOKIE, session.id, max_age=_ttl(res), path=PATH, httponly=True,
                        samesite="Strict", secure=request.is_secure)


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="Strict")


def login_token(request: Request) -> str:
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)


def set_login_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, path=PATH, httponly=True,
                        samesite="Strict", secure=request.is_secure)


def same_token(expected: str | None, given: str | None) -> bool:
    return bool(expected and given) and hmac.compare_digest(str(expected), str(given))


def _ttl(res: Resources) -> int:
    return int(res.settings.dashboard.session_hours * 3600)
