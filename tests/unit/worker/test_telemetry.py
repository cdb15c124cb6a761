"""The CLI's OpenTelemetry variables a run gets (pure)."""

from __future__ import annotations

import uuid

from cca_core.models import Task
from cca_core.settings import TelemetrySettings
from cca_worker.telemetry import telemetry_env


def test_off_gives_nothing_and_on_tags_the_task_tenant_role_and_worker():
    task = Task(id=uuid.UUID(int=7), owner="team a,b=c", role=None, workflow_id=None)
    assert telemetry_env(TelemetrySettings(), task, "w1@host") == {}
    env = telemetry_env(TelemetrySettings(enabled=True, endpoint="http://127.0.0.1:4318", events=False),
                        task, "w1@host")
    assert env["CLAUDE_CODE_ENABLE_TELEMETRY"] == "1" and env["OTEL_LOGS_EXPORTER"] == "none"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == (
        f"cca.task_id={uuid.UUID(int=7)},cca.tenant=team%20a%2Cb%3Dc,cca.role=,cca.worker=w1%40host")
