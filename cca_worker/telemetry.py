"""The CLI's own OpenTelemetry for fleet agents (pure): with ``telemetry.enabled``, each agent
exports its metrics and events (tokens, cost, tool calls, API requests) to the configured OTLP
collector, tagged with the task, tenant, role and worker as resource attributes.

The agent holds no collector credentials: run a collector beside each worker (it adds them for
your backend); ``telemetry.endpoint`` is that collector."""

from __future__ import annotations

from urllib.parse import quote

from cca_core.models import Task
from cca_core.settings import TelemetrySettings


def telemetry_env(telemetry: TelemetrySettings, task: Task, worker: str) -> dict[str, str]:
    """The variables that turn the CLI's telemetry on for a run of ``task`` (none when off)."""
    if not telemetry.enabled:
        return {}
    attributes = {"cca.task_id": str(task.id), "cca.tenant": task.owner or "",
                  "cca.role": task.role or "", "cca.worker": worker,
                  **({"cca.workflow_id": str(task.workflow_id)} if task.workflow_id else {})}
    return {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp" if telemetry.events else "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": telemetry.protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": telemetry.endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": str(telemetry.metric_export_interval_ms),
        "OTEL_LOGS_EXPORT_INTERVAL": str(telemetry.logs_export_interval_ms),
        "OTEL_RESOURCE_ATTRIBUTES": ",".join(f"{name}={quote(value, safe='')}"
                                             for name, value in attributes.items()),
    }
