"""API shapes of webhooks and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cca_core.webhooks.events import EVENTS

EventName = Literal["task.finished", "task.budget_exceeded", "schedule.fire_failed", "quota.reached",
                    "worker.lost"]
assert set(EventName.__args__) == set(EVENTS)  # type: ignore[attr-defined]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2048)
    events: list[EventName] = Field(min_length=1, max_length=len(EVENTS))
    description: str | None = Field(default=None, max_length=200)
    allow_private: bool = Field(default=False, description="admins only: allow a loopback or "
                                "private-network target (an internal receiver)")

    @field_validator("events")
    @classmethod
    def _distinct(cls, events: list[str]) -> list[str]:
        if len(set(events)) != len(events):
            raise ValueError("each event once")
        return events


class WebhookView(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str | None
    allow_private: bool
    scope: Literal["tenant", "fleet"]  # fleet: an admin's, told of every tenant and the fleet
    owner: str | None
    created_by: str | None
    created_at: datetime
    secret: str | None = Field(default=None, description="shown once, when the endpoint is made")


class WebhookList(BaseModel):
    webhooks: list[WebhookView]


class AttemptRecord(BaseModel):
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryView(BaseModel):
    id: int
    event: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    history: list[AttemptRecord]
    payload: dict[str, Any]


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryView]
    next_before: int | None


def webhook_view(row: Any, secret: str | None = None) -> WebhookView:
    return WebhookView(id=str(row.id), url=row.url, events=list(row.events), description=row.description,
                       allow_private=row.allow_private, scope="fleet" if row.owner is None else "tenant",
                       owner=row.owner, created_by=row.created_by, created_at=row.created_at,
                       secret=secret)


def delivery_view(row: Any) -> DeliveryView:
    return DeliveryView(id=row.id, event=row.event, status=row.status, attempts=row.attempts,
                        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
                        created_at=row.created_at, delivered_at=row.delivered_at,
                        history=[AttemptRecord(**entry) for entry in row.history], payload=row.payload)
