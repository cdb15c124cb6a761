"""Cheap to ask, bounded to keep (docs/security.md, item 8): /health cannot be used to load the
servers, /metrics and event pages stay bounded whatever callers send, and an agent's output
that Postgres would refuse (a NUL character) is stored, not lost."""

from __future__ import annotations

import os
import time

import pytest

from cca_api import create_app
from cca_api.live import MAX_EVENTS_PAGE_BYTES
from cca_core.fleet.metrics import MAX_SERIES
from cca_core.fleet.state import announce
from cca_core.infra.db import autocommit, make_engine
from cca_core.tasks import store
from tests.integration.test_metrics import scrape
from tests.support.fleet import FleetAPI, bash

pytestmark = pytest.mark.attack


def test_health_hammered_from_one_address_is_refused_after_the_limit(make_settings):
    client = create_app(make_settings(security={"ip_rate_limit_per_minute": 5})).test_client()
    answers = [client.get("/health").status_code for _ in range(8)]
    assert answers[:5] == [200] * 5
    assert answers[5:] == [429] * 3
    refused = client.get("/health")
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    # Another address is not affected.
    other = client.get("/health", environ_base={"REMOTE_ADDR": "10.0.0.7"})
    assert other.status_code == 200


def test_health_does_not_scan_the_key_space(make_settings, redis_client):
    client = create_app(make_settings()).test_client()
    now = time.time()
    for n in range(300):  # keys a scan would have to walk; one live worker among them
        redis_client.set(f"cca:worker:ghost-{n}", "{}")
    announce(redis_client, {"hostname": "w-live", "queues": ["cca"], "slots_total": 1,
                            "seen_at": now}, ttl_s=30)
    redis_client.config_resetstat()
    health = client.get("/health").get_json()
    commands = redis_client.info("commandstats")
    assert health["workers"]["online"] == 1
    assert not {"cmdstat_scan", "cmdstat_keys"} & set(commands), sorted(commands)


def test_an_event_page_cannot_ask_for_an_unbounded_number_of_events(make_settings):
    client = create_app(make_settings()).test_client()
    task = client.post("/api/v1/tasks", json={"prompt": "hello"}).get_json()
    huge = client.get(f"/api/v1/tasks/{task['id']}/events?limit=100000000")
    assert huge.status_code == 422
    assert huge.get_json()["error"]["field"] == "limit"
    assert client.get(f"/api/v1/tasks/{task['id']}/events?limit=1000").status_code == 200


def test_metric_labels_stay_bounded_whatever_models_and_workers_are_named(
        make_settings, redis_client):
    client = create_app(make_settings()).test_client()
    for n in range(MAX_SERIES + 30):
        response = client.post("/api/v1/tasks", json={"prompt": "p",
                                                      "model": f"model-{n:03d}-" + "x" * 150})
        assert response.status_code == 202, response.get_json()
    for n in range(MAX_SERIES + 30):
        announce(redis_client, {"hostname": f"forged-{n}", "queues": [f"queue-{n}"],
                                "slots_total": 1, "seen_at": time.time()}, ttl_s=30)
    samples = scrape(client)
    models = {dict(labels)["model"] for name, labels in samples if name == "cca_cost_usd_total"}
    workers = {dict(labels)["worker"] for name, labels in samples if name == "cca_worker_slots"}
    queues = {dict(labels)["queue"] for name, labels in samples if name == "cca_queue_depth"}
    for labels in (models, workers, queues):
        assert len(labels) == MAX_SERIES + 1 and "other" in labels
        assert max(len(label) for label in labels) <= 64
    assert samples[("cca_workers_online", ())] == MAX_SERIES + 30


def test_an_agent_output_with_a_nul_character_is_stored_escaped_and_readable(
        make_settings, start_worker):
    start_worker("w1")
    api = FleetAPI(create_app(make_settings()).test_client())
    task = api.submit(bash("printf 'before\\000after'"), {"text": "saw {tool_result}"},
                      allowed_tools=["Bash(printf *)"])
    done = api.wait_terminal(task["id"], timeout_s=60)
    assert done["status"] == "succeeded", done
    events = api.events(task["id"])
    (output,) = [event for event in events if event["type"] == "user"]
    assert output["data"]["tool_use_result"]["stdout"] == "before\\u0000after"
    assert done["result"] == "saw before\\u0000after"


@pytest.mark.parametrize(("body", "field"), [
    ({"prompt": "a\u0000b"}, "prompt"),
    ({"prompt": "ok", "json_schema": {"type": "object", "description": "x\u0000"}},
     "json_schema.description"),
    ({"prompt": "ok", "allowed_tools": ["Read", "Bash(\u0000)"]}, "allowed_tools[1]"),
])
def test_a_nul_character_in_a_request_is_a_422_naming_the_field(make_settings, body, field):
    client = create_app(make_settings()).test_client()
    response = client.post("/api/v1/tasks", json=body)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["field"] == field
    listed = client.get("/api/v1/tasks?role=a%00b")
    assert listed.status_code == 422 and listed.get_json()["error"]["field"] == "role"


def test_an_event_page_of_huge_events_is_cut_by_size_and_paging_still_reads_them_all(
        make_settings, database_url):
    client = create_app(make_settings()).test_client()
    task = client.post("/api/v1/tasks", json={"prompt": "hello"}).get_json()
    client.post(f"/api/v1/tasks/{task['id']}/cancel")
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    big = [{"type": "user", "n": n, "text": os.urandom(250_000).hex()} for n in range(20)]
    with autocommit(engine) as connection:  # 10 MB of output an agent could print
        store.append_events(connection, task["id"], 1, big)
    engine.dispose()
    first = client.get(f"/api/v1/tasks/{task['id']}/events?limit=1000").get_json()
    assert 1 <= len(first["events"]) < len(big)
    assert len(first["events"]) * 500_000 <= MAX_EVENTS_PAGE_BYTES + 500_000
    seen = [event["data"]["n"] for event in first["events"]]
    after = first["next_after"]
    while after is not None:
        page = client.get(f"/api/v1/tasks/{task['id']}/events?after={after}").get_json()
        seen += [event["data"]["n"] for event in page["events"]]
        after = page["next_after"]
    assert seen == list(range(len(big)))
