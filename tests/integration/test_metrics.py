"""/metrics in Prometheus text format, parsed by the official parser; values move as tasks run."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cca_api import create_app
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_move_when_tasks_run(make_settings, start_worker):
    client = create_app(make_settings()).test_client()
    before = scrape(client)
    assert before[("cca_tasks", (("status", "queued"),))] == 0
    assert before[("cca_workers_online", ())] == 0

    script = json.dumps({"steps": [{"text": "ok", "usage": {"input_tokens": 400, "output_tokens": 30}}]})
    for _ in range(2):
        client.post("/api/v1/tasks", json={"prompt": f"[[script:{script}]]"})
    client.post("/api/v1/tasks", json={"prompt": "[[script:" + json.dumps(
        {"steps": [{"error": 429}]}) + "]]", "model": "claude-sonnet-5",
                                       "retries": {"rate_limited": {"attempts": 1}}})
    queued = scrape(client)
    assert queued[("cca_tasks", (("status", "queued"),))] == 3
    assert queued[("cca_queue_depth", (("queue", "cca"),))] == 3

    start_worker("w1")
    wait_for(lambda: scrape(client)[("cca_tasks", (("status", "queued"),))] == 0
             and scrape(client)[("cca_agents_running", ())] == 0, timeout_s=60,
             message="every task to finish")
    after = scrape(client)
    assert after[("cca_tasks", (("status", "succeeded"),))] == 2
    assert after[("cca_tasks", (("status", "failed"),))] == 1
    assert after[("cca_tasks_ended_total", (("reason", "rate_limited"), ("status", "failed")))] == 1
    assert after[("cca_tokens_total", (("kind", "input"), ("model", "default")))] >= 800
    assert after[("cca_cost_usd_total", (("model", "default"),))] > 0
    assert after[("cca_task_duration_seconds_count", ())] == 3
    assert after[("cca_task_duration_seconds_bucket", (("le", "+Inf"),))] == 3
    assert after[("cca_queue_depth", (("queue", "cca"),))] == 0
    assert after[("cca_workers_online", ())] == 1
    assert after[("cca_worker_slots", (("state", "total"), ("worker", "w1@test")))] == 2
