"""Idempotency keys belong to a tenant: the same key from another tenant makes that tenant's
own task (never returns the first one's), and the same key with another body is a 409."""

from __future__ import annotations

import pytest

from cca_api import create_app

pytestmark = [pytest.mark.integration, pytest.mark.attack]
ADMIN = {"X-API-Key": "idempotency-admin-key-0123456789"}


@pytest.fixture
def client(make_settings):
    return create_app(make_settings(
        daemon={"require_auth": True, "api_keys": [ADMIN["X-API-Key"]]},
        security={"rate_limit_per_minute": 0, "ip_rate_limit_per_minute": 0})).test_client()


def key_of(client, name: str) -> dict[str, str]:
    made = client.post("/api/v1/keys", headers=ADMIN, json={"name": name, "role": "submitter"})
    return {"X-API-Key": made.get_json()["key"]}


def submit(client, headers, idempotency_key: str, prompt: str = "nightly review"):
    return client.post("/api/v1/tasks", json={"prompt": prompt},
                       headers={**headers, "Idempotency-Key": idempotency_key})


def test_another_tenants_same_key_never_returns_the_first_tenants_task(client):
    alice, mallory = key_of(client, "alice"), key_of(client, "mallory")
    first = submit(client, alice, "deploy-42")
    assert first.status_code == 202
    theirs = submit(client, mallory, "deploy-42")
    assert theirs.status_code == 202 and theirs.get_json()["id"] != first.get_json()["id"]
    assert "nightly review" == theirs.get_json()["prompt"]
    assert client.get(f"/api/v1/tasks/{first.get_json()['id']}", headers=mallory).status_code == 404


def test_the_same_key_with_another_body_is_a_conflict(client):
    alice = key_of(client, "alice")
    first = submit(client, alice, "deploy-43").get_json()
    again = submit(client, alice, "deploy-43")
    assert again.status_code == 200 and again.get_json()["id"] == first["id"]
    other = submit(client, alice, "deploy-43", prompt="rm -rf the other thing")
    assert other.status_code == 409
    error = other.get_json()["error"]
    assert error["code"] == "idempotency_mismatch" and error["field"] == "Idempotency-Key"
    listed = client.get("/api/v1/tasks", headers=alice).get_json()["tasks"]
    assert [task["id"] for task in listed] == [first["id"]]  # nothing was made
