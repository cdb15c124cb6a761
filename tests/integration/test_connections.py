"""The Postgres connections a real API process and a real worker open while agents run stay
within what cca_core.infra.connections counts for them (what `cca config check` adds up)."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import make_url, text

from cca_core.infra.config import validate
from cca_core.infra.connections import host_connections
from cca_core.infra.db import make_engine, sqlalchemy_url
from tests.support.fleet import Sampler, bash, script
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_a_busy_api_and_worker_stay_within_the_counted_connections(
        config_data, api_url, start_worker, database_url):
    start_worker("w1")
    budget = host_connections(validate({**config_data, "daemon": {
        **config_data["daemon"], "api_processes": 1}}))
    database = make_url(sqlalchemy_url(database_url)).database
    engine = make_engine(database_url, pool_size=1, max_overflow=0)

    def connections() -> int:
        with engine.connect() as connection:
            return int(connection.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"),
                {"db": database}))

    prompt = script(bash("sleep 1"), {"text": "ok"})
    with Sampler(connections, interval_s=0.05) as sampler:
        ids = [httpx.post(f"{api_url}/api/v1/tasks", json={
            "prompt": prompt, "allowed_tools": ["Bash(sleep *)"]}).json()["id"] for _ in range(4)]
        for _ in range(20):  # readers too, while the agents run
            httpx.get(f"{api_url}/api/v1/tasks/{ids[0]}/events")
            httpx.get(f"{api_url}/metrics")

        def finished() -> bool:
            return all(httpx.get(f"{api_url}/api/v1/tasks/{task_id}").json()["status"] == "succeeded"
                       for task_id in ids)

        wait_for(finished, timeout_s=90, message="the four tasks to succeed")
    engine.dispose()
    peak = max(count for _, count in sampler.samples)
    assert 0 < peak <= budget["api"] + budget["worker"], (peak, budget, json.dumps(sampler.samples[-5:]))
