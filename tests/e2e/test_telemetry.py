"""The CLI's own OpenTelemetry, end to end: a real worker runs the real `claude` with
telemetry on, and a collector receives its metrics and events tagged with the task."""

from __future__ import annotations

import pytest

from cca_api import create_app
from tests.fakes.otlp_collector import Collector
from tests.support.fleet import FleetAPI, bash
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


def test_an_agents_telemetry_reaches_the_collector_tagged_with_its_task(make_settings, start_worker):
    with Collector() as collector:
        sections = {"telemetry": {"enabled": True, "endpoint": collector.url, "protocol": "http/json",
                                  "metric_export_interval_ms": 1000, "logs_export_interval_ms": 500}}
        start_worker("w1", **sections)
        api = FleetAPI(create_app(make_settings(**sections)).test_client())
        task = api.submit(bash("git --version"), {"text": "measured"}, role="qa")
        assert api.wait_terminal(task["id"], timeout_s=90)["status"] == "succeeded"
        wait_for(lambda: any(attrs.get("cca.task_id") == task["id"]
                             for attrs in collector.resource_attributes()),
                 timeout_s=20, message="the agent's telemetry to reach the collector")
        tagged = [attrs for attrs in collector.resource_attributes()
                  if attrs.get("cca.task_id") == task["id"]]
        assert {attrs["cca.role"] for attrs in tagged} == {"qa"}
        assert {attrs["cca.worker"] for attrs in tagged} == {"w1@test"}
        assert {path for path, _ in collector.received} & {"/v1/metrics", "/v1/logs"}
