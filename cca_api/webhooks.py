"""Webhook endpoints: add, list, show, remove, and each endpoint's deliveries.

An endpoint belongs to the caller's tenant and is told of that tenant's events; one an admin
adds is told of every tenant's, and may ask for the fleet's own (``worker.lost``) or point at
a private network (``allow_private``). Readers may only look."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from cca_api import operations
from cca_api.auth import Role, current, require_role
from cca_api.operations import operation
from cca_api.resources import Resources
from cca_core.errors import Forbidden, Invalid, QuotaExceeded
from cca_core.infra.db import autocommit, transaction
from cca_core.names import quota_notice_key
from cca_core.webhooks import store
from cca_core.webhooks.events import ADMIN_EVENTS, QUOTA_REACHED
from cca_core.webhooks.schemas import (
    DeliveryPage,
    WebhookCreate,
    WebhookList,
    WebhookView,
    delivery_view,
    webhook_view,
)
from cca_core.webhooks.signing import new_secret
from cca_core.webhooks.targets import check_target

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1/webhooks")
WRITERS: tuple[Role, ...] = ("admin", "submitter")
QUOTAS = frozenset({"max_concurrent", "tokens_per_day", "usd_per_day"})
QUOTA_NOTICE_S = 3600  # one quota.reached per key and limit per hour at most


class DeliveriesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    before: int | None = Field(default=None, ge=1)
    limit: int = Field(default=50, ge=1, le=200)


def resources() -> Resources:
    return current_app.extensions["cca"]


@bp.post("")
@operation("Add a webhook endpoint (its signing secret is in this answer only)", WebhookView,
           status=201, body=WebhookCreate, errors=(400, 403, 415, 422))
def add() -> tuple[dict[str, Any], int]:
    principal = require_role(*WRITERS)
    body = operations.body(WebhookCreate)
    if not principal.is_admin:
        for index, event in enumerate(body.events):
            if event in ADMIN_EVENTS:
                raise Invalid(f"events[{index}]: {event} is for an admin's endpoints",
                              field=f"events[{index}]")
        if body.allow_private:
            raise Forbidden("only an admin may allow a private-network target (allow_private)",
                            field="allow_private")
    check_target(body.url, body.allow_private)
    secret = new_secret()
    with transaction(resources().sessions) as session:
        row = store.create(session.connection(), owner=principal.scope(), url=body.url,
                           events=body.events, secret=secret, allow_private=body.allow_private,
                           description=body.description, created_by=principal.name)
    return webhook_view(row, secret).model_dump(mode="json"), 201


@bp.get("")
@operation("List webhook endpoints", WebhookList)
def index() -> dict[str, Any]:
    with transaction(resources().sessions) as session:
        rows = store.list_webhooks(session.connection(), current().scope())
    return WebhookList(webhooks=[webhook_view(row) for row in rows]).model_dump(mode="json")


@bp.get("/<webhook_id>")
@operation("Show a webhook endpoint", WebhookView, errors=(404,))
def show(webhook_id: str) -> dict[str, Any]:
    with transaction(resources().sessions) as session:
        row = store.get(session.connection(), webhook_id, current().scope())
    return webhook_view(row).model_dump(mode="json")


@bp.delete("/<webhook_id>")
@operation("Remove a webhook endpoint and its deliveries", None, status=204, errors=(403, 404))
def remove(webhook_id: str) -> tuple[str, int]:
    scope = require_role(*WRITERS).scope()
    with transaction(resources().sessions) as session:
        store.remove(session.connection(), webhook_id, scope)
    return "", 204


@bp.get("/<webhook_id>/deliveries")
@operation("An endpoint's deliveries, newest first: status, attempts (each with its answer), "
           "payload", DeliveryPage, query=DeliveriesQuery, errors=(404, 422))
def deliveries(webhook_id: str) -> dict[str, Any]:
    query = operations.query(DeliveriesQuery)
    with transaction(resources().sessions) as session:
        rows = store.deliveries(session.connection(), webhook_id, current().scope(),
                                before=query.before, limit=query.limit)
    page = DeliveryPage(deliveries=[delivery_view(row) for row in rows],
                        next_before=rows[-1].id if len(rows) == query.limit else None)
    return page.model_dump(mode="json")


def quota_reached(exc: QuotaExceeded) -> None:
    """Tell the caller's tenant's endpoints that its key reached a quota (once an hour per
    key and limit: every refused submission would say it again)."""
    principal = g.get("principal")
    if principal is None or exc.limit not in QUOTAS:
        return
    res = resources()
    if not res.redis.set(quota_notice_key(principal.name, exc.limit), 1, nx=True, ex=QUOTA_NOTICE_S):
        return
    notify_quota(res.engine, principal.tenant, principal.name, exc)


def notify_quota(engine: Engine, tenant: str, key: str, exc: QuotaExceeded) -> None:
    with autocommit(engine) as connection:
        store.emit(connection, QUOTA_REACHED, tenant,
                   {"quota": {"key": key, "tenant": tenant, "limit": exc.limit,
                              "message": exc.message, "retry_after_s": exc.retry_after_s}})
