"""The endpoints and the outbox of their deliveries (every function takes a Connection)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import JSONB

from cca_core.errors import NotFound
from cca_core.models import Webhook, WebhookDelivery

NOW = func.now()


def create(connection: Connection, *, owner: str | None, url: str, events: Sequence[str],
           secret: str, allow_private: bool, description: str | None, created_by: str) -> Row[Any]:
    return connection.execute(insert(Webhook).values(
        id=uuid.uuid4(), owner=owner, url=url, events=list(events), secret=secret,
        allow_private=allow_private, description=description, created_by=created_by,
    ).returning(*Webhook.__table__.c)).one()


def _visible(scope: str | None) -> Any:
    """An admin (scope None) sees every endpoint; a tenant its own."""
    return True if scope is None else Webhook.owner == scope


def list_webhooks(connection: Connection, scope: str | None) -> list[Row[Any]]:
    return list(connection.execute(select(*Webhook.__table__.c).where(_visible(scope))
                                   .order_by(Webhook.created_at)))


def get(connection: Connection, webhook_id: str, scope: str | None) -> Row[Any]:
    row = connection.execute(select(*Webhook.__table__.c).where(
        Webhook.id == _parse(webhook_id), _visible(scope))).first()
    if row is None:
        raise NotFound(f"webhook {webhook_id} not found")
    return row


def remove(connection: Connection, webhook_id: str, scope: str | None) -> None:
    get(connection, webhook_id, scope)
    connection.execute(delete(Webhook).where(Webhook.id == _parse(webhook_id)))


def deliveries(connection: Connection, webhook_id: str, scope: str | None, *,
               before: int | None, limit: int) -> list[Row[Any]]:
    """Newest first, with ids below ``before``."""
    get(connection, webhook_id, scope)
    query = select(*WebhookDelivery.__table__.c).where(WebhookDelivery.webhook_id == _parse(webhook_id))
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    return list(connection.execute(query.order_by(WebhookDelivery.id.desc()).limit(limit)))


def emit(connection: Connection, event: str, owner: str | None, payload: dict[str, Any]) -> None:
    """Queue ``event`` for every endpoint that wants it (the owner's and the admins'; with no
    owner, the admins' only), in the caller's transaction."""
    connection.execute(text("SELECT cca_webhook_emit(:event, :owner, CAST(:payload AS jsonb))"),
                       {"event": event, "owner": owner, "payload": json.dumps(payload, default=str)})


@dataclass(frozen=True)
class Due:
    """A delivery taken for one attempt, with where it goes."""

    id: int
    event: str
    payload: dict[str, Any]
    attempts: int  # this one included
    created_at: datetime
    url: str
    secret: str
    allow_private: bool


def claim_due(connection: Connection, limit: int, lease_s: int) -> list[Due]:
    """Take up to ``limit`` deliveries that are due for an attempt (each by one dispatcher:
    SKIP LOCKED, then a lease while it is attempted)."""
    due = (select(WebhookDelivery.id)
           .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= NOW,
                  (WebhookDelivery.locked_until.is_(None)) | (WebhookDelivery.locked_until < NOW))
           .order_by(WebhookDelivery.next_attempt_at).limit(limit)
           .with_for_update(skip_locked=True).scalar_subquery())
    claimed = connection.execute(
        update(WebhookDelivery).where(WebhookDelivery.id.in_(due))
        .values(locked_until=NOW + timedelta(seconds=lease_s), attempts=WebhookDelivery.attempts + 1)
        .returning(WebhookDelivery.id, WebhookDelivery.webhook_id, WebhookDelivery.event,
                   WebhookDelivery.payload, WebhookDelivery.attempts, WebhookDelivery.created_at)
    ).all()
    if not claimed:
        return []
    targets = {row.id: row for row in connection.execute(
        select(Webhook.id, Webhook.url, Webhook.secret, Webhook.allow_private)
        .where(Webhook.id.in_({row.webhook_id for row in claimed})))}
    return [Due(id=row.id, event=row.event, payload=row.payload, attempts=row.attempts,
                created_at=row.created_at, url=targets[row.webhook_id].url,
                secret=targets[row.webhook_id].secret,
                allow_private=targets[row.webhook_id].allow_private)
            for row in sorted(claimed, key=lambda row: row.id) if row.webhook_id in targets]


def record(connection: Connection, delivery_id: int, attempt: dict[str, Any], *,
           delivered: bool, retry_in_s: float | None) -> None:
    """Record one attempt (JSON values: ``at`` as ISO text): delivered, or pending again in
    ``retry_in_s``, or (None) failed."""
    status = "delivered" if delivered else "pending" if retry_in_s is not None else "failed"
    connection.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(
            status=status, locked_until=None,
            history=WebhookDelivery.history.op("||")(literal([attempt], JSONB)),
            delivered_at=NOW if delivered else None,
            next_attempt_at=NOW + timedelta(seconds=retry_in_s or 0)))


def delete_before(connection: Connection, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` deliveries made before ``cutoff`` (retention)."""
    oldest = (select(WebhookDelivery.id).where(WebhookDelivery.created_at < cutoff)
              .order_by(WebhookDelivery.id).limit(limit).scalar_subquery())
    return connection.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(oldest))).rowcount


def _parse(webhook_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(webhook_id)
    except ValueError:
        raise NotFound(f"webhook {webhook_id} not found") from None
