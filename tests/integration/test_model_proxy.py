"""The credential pool on real Redis and the model proxy in front of the scripted Messages API:
leases under caps, parking on a reset, tokens swapped and counted, usage windows answered here."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from cca_core.credentials.pool import Busy, CredentialPool, Lease, credential_status, describe
from cca_core.settings import CredentialSettings
from cca_worker.proxy import GIVE_UP_RETRY_AFTER_S, ModelProxy, Route
from tests.fakes.model_api import KeyLimits, ModelAPI, Window


def credential(url: str, key: str, cap: int = 0) -> CredentialSettings:
    return CredentialSettings(api_key=key, base_url=url, max_agents=cap)


def script(*steps: dict) -> str:
    return "[[script:" + json.dumps({"steps": list(steps)}) + "]]"


def message(route: Route, proxy: ModelProxy, prompt: str, *, stream: bool = True) -> httpx.Response:
    body = {"model": "claude-test", "max_tokens": 100, "stream": stream,
            "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": prompt}]}
    return httpx.post(f"{proxy.url}/v1/messages?beta=true", json=body, timeout=30,
                      headers={"x-api-key": route.token, "anthropic-version": "2023-06-01"})


def test_leases_go_to_the_credential_with_most_room_and_never_past_a_cap(redis_client):
    pool = CredentialPool(redis_client, {"a": credential("http://x", "ka", 1),
                                         "b": credential("http://x", "kb", 2)}, lease_s=30)
    leases = [pool.acquire(f"run-{n}") for n in range(3)]
    assert all(isinstance(lease, Lease) for lease in leases)
    assert sorted(lease.credential for lease in leases) == ["a", "b", "b"]  # type: ignore[union-attr]
    assert pool.acquire("run-3") == Busy(reset=None) and not pool.has_room()
    on_a = next(lease for lease in leases if lease.credential == "a")  # type: ignore[union-attr]
    assert pool.release(on_a)  # type: ignore[arg-type]
    assert pool.has_room() and pool.acquire("run-4") == Lease("a", "run-4")


def test_a_lease_its_run_stopped_renewing_lapses(redis_client):
    pool = CredentialPool(redis_client, {"a": credential("http://x", "ka", 1)}, lease_s=1)
    kept = pool.acquire("kept")
    assert isinstance(kept, Lease) and isinstance(pool.acquire("other"), Busy)
    time.sleep(1.2)
    assert pool.acquire("other") == Lease("a", "other")  # the dead run's lease lapsed


def test_parked_credentials_lend_nothing_until_their_reset(redis_client):
    pool = CredentialPool(redis_client, {"a": credential("http://x", "ka"),
                                         "b": credential("http://x", "kb")}, lease_s=30)
    soon, later = (datetime.now(UTC) + timedelta(seconds=s) for s in (1.5, 60))
    pool.park("a", later)
    assert pool.acquire("r1") == Lease("b", "r1")  # the other one still lends
    pool.park("b", soon)
    busy = pool.acquire("r2")
    assert isinstance(busy, Busy) and busy.reset is not None
    assert abs((busy.reset - soon).total_seconds()) < 0.01  # the first reset, for the estimate
    assert pool.next_free() == busy.reset
    time.sleep(1.6)
    assert pool.acquire("r3") == Lease("b", "r3")  # b's window reset
    assert pool.next_free() <= datetime.now(UTC)


@pytest.fixture
def limited_api() -> Iterator[ModelAPI]:
    keys = {"real-a": KeyLimits(max_concurrent=1, window=Window(after_requests=2, seconds=120)),
            "real-b": KeyLimits()}
    with ModelAPI(keys=keys) as api:
        yield api


def proxy_for(redis_client, api: ModelAPI, window_wait_s: int = 30) -> ModelProxy:
    pool = CredentialPool(redis_client, {"a": credential(api.url, "real-a"),
                                         "b": credential(api.url, "real-b")}, lease_s=30)
    return ModelProxy(pool, window_wait_s=window_wait_s)


def status(proxy: ModelProxy) -> list[dict]:
    return credential_status(proxy.pool.client, describe(proxy.pool.credentials))


def test_the_proxy_swaps_the_run_token_for_the_credential_and_counts_streamed_tokens(
        redis_client, limited_api):
    proxy = proxy_for(redis_client, limited_api)
    route = proxy.take("task-1")
    assert isinstance(route, Route) and route.token.startswith("sk-cca-run-")
    usage = {"input_tokens": 120, "output_tokens": 35, "cache_read_input_tokens": 7,
             "cache_creation_input_tokens": 3}
    reply = message(route, proxy, script({"text": "hello there", "usage": usage}))
    assert reply.status_code == 200 and "hello there" in reply.text
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert [record["key"] for record in limited_api.records] == [f"real-{route.lease.credential}"]
    assert route.requests == 1 and route.tokens == usage
    row = next(row for row in status(proxy) if row["name"] == route.lease.credential)
    assert row["agents"] == 1 and row["today"] == {"requests": 1, **usage}
    plain = message(route, proxy, script({"text": "again", "usage": usage}), stream=False)
    assert plain.json()["content"][0]["text"] == "again" and route.tokens["output_tokens"] == 70

    assert proxy.give_back(route)
    stale = message(route, proxy, script({"text": "x"}))
    assert stale.status_code == 401  # a finished run's token is worth nothing
    assert len(limited_api.records) == 2  # and never reached the model API


def test_a_usage_window_parks_the_credential_and_later_requests_are_answered_here(
        redis_client, limited_api):
    proxy = proxy_for(redis_client, limited_api, window_wait_s=30)
    route = proxy.take("task-1")
    assert isinstance(route, Route)
    if route.lease.credential != "a":  # the window is on a: take that one
        other = proxy.take("task-2")
        assert isinstance(other, Route) and other.lease.credential == "a"
        proxy.give_back(route)
        route = other
    for _ in range(2):
        assert message(route, proxy, script({"text": "ok"})).status_code == 200
    refused = message(route, proxy, script({"text": "ok"}))
    # the window resets in 120 s, past window_wait_seconds: the CLI is told to give up
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= GIVE_UP_RETRY_AFTER_S
    assert route.window is not None and 110 < (route.window - datetime.now(UTC)).total_seconds() <= 120
    assert proxy.pool.parked_until("a") == route.window
    assert limited_api.refused_window == {"real-a": 1}
    again = message(route, proxy, script({"text": "ok"}))
    assert again.status_code == 429 and again.json()["error"]["type"] == "rate_limit_error"
    assert limited_api.refused_window == {"real-a": 1}  # answered here: the API saw nothing
    assert isinstance(proxy.take("task-3"), Route)  # b still lends
    limits = next(row for row in status(proxy) if row["name"] == "a")["rate_limits"]
    assert limits["anthropic-ratelimit-requests-remaining"] == "0"


def test_a_window_that_resets_soon_is_waited_out_by_the_agent(redis_client, limited_api):
    proxy = proxy_for(redis_client, limited_api, window_wait_s=30)
    proxy.pool.park("a", datetime.now(UTC) + timedelta(seconds=10))
    route = proxy.take("task-1")
    assert isinstance(route, Route) and route.lease.credential == "b"
    proxy.pool.park("b", datetime.now(UTC) + timedelta(seconds=10))
    refused = message(route, proxy, script({"text": "ok"}))
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 10
    assert route.window is None  # within window_wait_seconds: the run is not turned away


def test_a_request_without_a_run_token_never_reaches_the_model_api(redis_client, limited_api):
    proxy = proxy_for(redis_client, limited_api)
    for headers in ({}, {"x-api-key": "real-a"}, {"authorization": "Bearer sk-cca-run-guess"}):
        reply = httpx.post(f"{proxy.url}/v1/messages", json={}, headers=headers, timeout=10)
        assert reply.status_code == 401 and reply.json()["error"]["type"] == "authentication_error"
    assert limited_api.records == []
