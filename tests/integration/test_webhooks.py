"""Webhooks against real Postgres and a real HTTP receiver: endpoints per tenant through the
API, events queued in the transaction that makes them (a task's end from the trigger, whoever
ends it; a quota refused; a schedule's failed fire; a lost worker), each delivery signed,
retried with backoff while the receiver is down, visible with its attempts; targets on
loopback or private networks refused unless an admin allows them; and a real worker delivers."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update

from cca_api import create_app
from cca_core.access.keys import Quotas, create_key
from cca_core.infra.db import autocommit, make_session_factory, transaction
from cca_core.models import Task
from cca_core.settings import AgentSettings, WebhookSettings
from cca_core.tasks import store as tasks
from cca_core.tasks.outcome import Outcome
from cca_core.webhooks import signing
from cca_core.webhooks import store as webhooks
from cca_worker.sweep import sweep
from cca_worker.webhooks import Dispatcher
from tests.fakes.webhook_receiver import Receiver
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
FAST = WebhookSettings(max_attempts=4, backoff_seconds=0.2, max_backoff_seconds=1, timeout_seconds=2)
ADMIN = "admin-key-0123456789"


@pytest.fixture
def receiver():
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def secured(make_settings, engine: Engine):
    """An API requiring keys: the admin's, and submitter keys of tenants alpha and beta."""
    with transaction(make_session_factory(engine)) as session:
        keys = {name: create_key(session, name, "submitter", tenant=name,
                                 quotas=Quotas(max_concurrent=1) if name == "beta" else Quotas())[1]
                for name in ("alpha", "beta")}
    app = create_app(make_settings(daemon={"require_auth": True, "api_keys": [ADMIN]}))
    return app.test_client(), {"admin": {"X-API-Key": ADMIN},
                               **{name: {"X-API-Key": key} for name, key in keys.items()}}


def add(client, headers, url: str, events: list[str], **extra: Any) -> dict[str, Any]:
    answer = client.post("/api/v1/webhooks", json={"url": url, "events": events, **extra}, headers=headers)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def deliver_all(engine: Engine, settings: WebhookSettings = FAST) -> int:
    with ThreadPoolExecutor(2) as senders:
        return Dispatcher(engine, lambda: settings).deliver_due(senders)


def deliver_until(engine: Engine, done: Callable[[], bool], what: str) -> None:
    """Run the dispatcher (as a worker does every second) until ``done``."""
    def attempt() -> bool:
        deliver_all(engine)
        return done()

    wait_for(attempt, timeout_s=10, message=what)


def finish(engine: Engine, task_id: str, status: str) -> None:
    with autocommit(engine) as connection:
        assert tasks.claim_task(connection, task_id, worker="w1@test", pid=1, lease_s=60, max_attempts=3)
        assert tasks.finish_task(connection, task_id, 1, Outcome(status=status, error_code=(
            None if status == "succeeded" else status)))


def test_targets_on_the_fleets_own_networks_are_refused_unless_an_admin_allows_them(secured, receiver):
    client, keys = secured
    for url in ("http://127.0.0.1:9200/x", "http://localhost/x", "http://10.1.2.3/x",
                "http://169.254.169.254/", "http://[::1]/x", "http://192.168.0.1/x", "http://100.64.0.1/x"):
        answer = client.post("/api/v1/webhooks", json={"url": url, "events": ["task.finished"]},
                             headers=keys["admin"])
        assert answer.status_code == 422, (url, answer.get_json())
        assert answer.get_json()["error"]["field"] == "url"
        assert "not a public address" in answer.get_json()["error"]["message"]
    for body, status, field in (
            ({"url": "ftp://example.com/", "events": ["task.finished"]}, 422, "url"),
            ({"url": "http://user:pw@example.com/", "events": ["task.finished"]}, 422, "url"),
            ({"url": receiver.url, "events": ["task.nope"]}, 422, "events[0]"),
            ({"url": receiver.url, "events": []}, 422, "events"),
            ({"url": receiver.url, "events": ["worker.lost"]}, 422, "events[0]"),
            ({"url": receiver.url, "events": ["task.finished"], "allow_private": True}, 403,
             "allow_private")):
        answer = client.post("/api/v1/webhooks", json=body, headers=keys["alpha"])
        assert answer.status_code == status, (body, answer.get_json())
        assert answer.get_json()["error"]["field"] == field
    allowed = add(client, keys["admin"], receiver.url, ["task.finished"], allow_private=True)
    assert allowed["secret"].startswith("whsec_") and allowed["scope"] == "fleet"
    shown = client.get(f"/api/v1/webhooks/{allowed['id']}", headers=keys["admin"]).get_json()
    assert shown["secret"] is None  # shown once
    assert client.get(f"/api/v1/webhooks/{allowed['id']}", headers=keys["alpha"]).status_code == 404


def test_a_finished_task_is_delivered_signed_to_its_tenant_and_the_admins(secured, receiver, engine):
    client, keys = secured
    fleet = add(client, keys["admin"], receiver.url + "?fleet", ["task.finished", "task.budget_exceeded"],
                allow_private=True)
    with autocommit(engine) as connection:  # a tenant's endpoint on a private target, as an admin allowed
        alpha_hook = webhooks.create(connection, owner="alpha", url=receiver.url + "?alpha",
                                     events=["task.finished"], secret=signing.new_secret(),
                                     allow_private=True, description=None, created_by="alpha")
    ours = client.post("/api/v1/tasks", json={"prompt": "a"}, headers=keys["alpha"]).get_json()
    theirs = client.post("/api/v1/tasks", json={"prompt": "b"}, headers=keys["beta"]).get_json()
    finish(engine, ours["id"], "succeeded")
    finish(engine, theirs["id"], "budget_exceeded")
    assert deliver_all(engine) == 4  # alpha's endpoint: 1; the admin's: 1 + 2
    by_path: dict[str, list[dict]] = {}
    for received in receiver.received:
        by_path.setdefault(received.path.split("?")[1], []).append(json.loads(received.body))
        assert received.headers["X-CCA-Signature"].startswith("v1=")
    assert [(body["event"], body["task"]["id"]) for body in by_path["alpha"]] == [
        ("task.finished", ours["id"])]
    assert sorted((body["event"], body["task"]["status"]) for body in by_path["fleet"]) == [
        ("task.budget_exceeded", "budget_exceeded"), ("task.finished", "budget_exceeded"),
        ("task.finished", "succeeded")]
    # The signature verifies with the endpoint's secret over the raw body, and with no other.
    fleet_delivery = next(r for r in receiver.received if r.path.endswith("?fleet"))
    stamp, signed = fleet_delivery.headers["X-CCA-Timestamp"], fleet_delivery.headers["X-CCA-Signature"]
    assert signing.verify(fleet["secret"], stamp, signed, fleet_delivery.body)
    assert not signing.verify(alpha_hook.secret, stamp, signed, fleet_delivery.body)
    assert not signing.verify(fleet["secret"], stamp, signed, fleet_delivery.body + b" ")
    page = client.get(f"/api/v1/webhooks/{fleet['id']}/deliveries", headers=keys["admin"]).get_json()
    assert [d["status"] for d in page["deliveries"]] == ["delivered"] * 3
    assert all(d["attempts"] == 1 and d["history"][0]["status_code"] == 200 for d in page["deliveries"])


def test_a_receiver_down_for_a_while_gets_it_later_and_one_down_for_good_fails(secured, receiver, engine):
    client, keys = secured
    hook = add(client, keys["admin"], receiver.url, ["task.finished"], allow_private=True)
    task = client.post("/api/v1/tasks", json={"prompt": "a"}, headers=keys["alpha"]).get_json()
    receiver.down()
    finish(engine, task["id"], "failed")
    deliver_all(engine)  # refused: the port is closed
    receiver.up()
    receiver.failing_status = 503
    deliver_until(engine, lambda: len(receiver.received) == 1, "the second attempt (after the backoff)")
    receiver.failing_status = None
    deliver_until(engine, lambda: len(receiver.received) == 2, "the third attempt")
    [delivery] = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=keys["admin"]).get_json()[
        "deliveries"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3
    first, second, third = delivery["history"]
    assert first["status_code"] is None and "ConnectError" in first["error"]
    assert second["status_code"] == 503 and third["status_code"] == 200
    # The same delivery id on every attempt: a receiver drops repeats by it.
    assert {r.headers["X-CCA-Delivery"] for r in receiver.received} == {str(delivery["id"])}

    other = client.post("/api/v1/tasks", json={"prompt": "b"}, headers=keys["alpha"]).get_json()
    receiver.failing_status = 500
    finish(engine, other["id"], "cancelled")
    deliver_until(engine, lambda: client.get(f"/api/v1/webhooks/{hook['id']}/deliveries",
                                             headers=keys["admin"]).get_json()["deliveries"][0][
        "status"] == "failed", "the delivery to run out of attempts")
    failed = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=keys["admin"]).get_json()[
        "deliveries"][0]
    assert failed["attempts"] == FAST.max_attempts and failed["next_attempt_at"] is None


def test_quota_reached_and_worker_lost_are_told(secured, receiver, engine):
    client, keys = secured
    beta = add(client, keys["beta"], "https://1.1.1.1/hook", ["quota.reached", "schedule.fire_failed"])
    add(client, keys["admin"], receiver.url, ["worker.lost", "quota.reached"], allow_private=True)
    assert client.post("/api/v1/tasks", json={"prompt": "1"}, headers=keys["beta"]).status_code == 202
    for _ in range(3):  # over max_concurrent: told once, not per refusal
        assert client.post("/api/v1/tasks", json={"prompt": "2"}, headers=keys["beta"]).status_code == 429
    with autocommit(engine) as connection:
        quota = webhooks.deliveries(connection, beta["id"], None, before=None, limit=10)
        assert [(d.event, d.payload["quota"]["limit"]) for d in quota] == [
            ("quota.reached", "max_concurrent")]
    running = client.post("/api/v1/tasks", json={"prompt": "3"}, headers=keys["alpha"]).get_json()
    with autocommit(engine) as connection:
        tasks.claim_task(connection, running["id"], worker="gone@host", pid=1, lease_s=60,
                         max_attempts=3)
        earlier = Task.started_at - timedelta(seconds=5)
        connection.execute(update(Task).where(Task.id == running["id"]).values(
            lease_expires_at=earlier, sent_at=earlier))
    sweep(engine, lambda task: None, AgentSettings(), resend_after_s=3600)
    deliver_all(engine)
    told = [json.loads(r.body) for r in receiver.received]
    assert {"worker.lost", "quota.reached"} == {body["event"] for body in told}
    lost = next(body for body in told if body["event"] == "worker.lost")
    assert lost["worker"] == {"name": "gone@host", "tasks": [running["id"]]}


def test_a_worker_delivers_what_its_fleet_emits(make_settings, start_worker, receiver, engine):
    client = create_app(make_settings()).test_client()  # no auth: the caller is an admin
    hook = add(client, {}, receiver.url, ["task.finished"], allow_private=True)
    start_worker("w1", webhooks={"backoff_seconds": 0.5})
    task = client.post("/api/v1/tasks", json={"prompt": "queued, then cancelled"}).get_json()
    client.post(f"/api/v1/tasks/{task['id']}/cancel")
    wait_for(lambda: receiver.received, timeout_s=15, message="the worker to deliver task.finished")
    body = json.loads(receiver.received[0].body)
    assert body["event"] == "task.finished" and body["task"]["status"] == "cancelled"
    assert signing.verify(hook["secret"], receiver.received[0].headers["X-CCA-Timestamp"],
                          receiver.received[0].headers["X-CCA-Signature"], receiver.received[0].body)
