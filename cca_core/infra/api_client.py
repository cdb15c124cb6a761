"""A small HTTP client of the cca API, used by the CLI (and the MCP bridge).

Every call has a timeout. Errors come back as ApiError with the API's code and message, or
with code ``unreachable`` when nothing answers at the URL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from cca_core.infra import sse

DEFAULT_URL = "http://127.0.0.1:9200"
# A live stream sends a heartbeat at least every 55 s (daemon.stream_heartbeat_seconds):
# a read that waits longer than this has lost its connection.
STREAM_READ_TIMEOUT_S = 75.0
STREAM_RECONNECTS = 5  # in a row, without an event between them


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


class CcaClient:
    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None,
                 timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self.headers = headers  # what authenticates a request (for another HTTP client)
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; return the decoded JSON body. Raises ApiError."""
        response = self._send(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            return None

    def text(self, method: str, path: str, **kwargs: Any) -> str:
        """Send one request; return the body as text (JSON lines, say). Raises ApiError."""
        return self._send(method, path, **kwargs).text

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from exc
        self.raise_for(response, path)
        return response

    def unreachable(self, exc: Exception) -> ApiError:
        return ApiError(0, "unreachable", f"the cca API at {self.base_url} is not reachable "
                        f"({type(exc).__name__}): start it with `cca up`")

    def raise_for(self, response: httpx.Response, path: str) -> None:
        """Raise the API's error when ``response`` is one."""
        if not response.is_error:
            return
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            raise ApiError(response.status_code, str(error.get("code")),
                           str(error.get("message")), error.get("field"))
        raise ApiError(response.status_code, "http_error",
                       f"HTTP {response.status_code} from {self.base_url}{path}")

    def follow(self, task_id: str, after: int = 0) -> Iterator[sse.ServerEvent]:
        """A task's live stream (``event``, ``status`` and ``end`` events) until it ends.
        A dropped connection is made again from the last event seen. Raises ApiError."""
        path, cursor, failures = f"/api/v1/tasks/{quote(task_id)}/stream", after, 0
        timeout = httpx.Timeout(10.0, read=STREAM_READ_TIMEOUT_S)
        while True:
            try:
                with self._http.stream("GET", path, headers={"Last-Event-ID": str(cursor)},
                                       timeout=timeout) as response:
                    if response.is_error:
                        response.read()
                        self.raise_for(response, path)
                    for event in sse.parse(response.iter_lines()):
                        failures = 0
                        cursor = event.id if event.id is not None else cursor
                        yield event
                        if event.event == "end":
                            return
            except httpx.TransportError as exc:
                dropped: Exception = exc
            else:  # closed before its end (an API process restarting, say)
                dropped = ConnectionError("the stream closed before the task ended")
            failures += 1
            if failures > STREAM_RECONNECTS:
                raise self.unreachable(dropped) from dropped
            time.sleep(min(2.0 ** failures, 10.0) / 4)

    def submit(self, task: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", "/api/v1/tasks", json=task, headers=headers)

    def task(self, task_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/tasks/{task_id}")

    def tasks(self, **params: Any) -> dict[str, Any]:
        query = {name: value for name, value in params.items() if value is not None}
        return self.request("GET", "/api/v1/tasks", params=query)

    def continue_task(self, task_id: str, follow_up: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/tasks/{task_id}/continue", json=follow_up)

    def cancel(self, task_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/tasks/{task_id}/cancel")

    def events(self, task_id: str, after: int = 0, limit: int = 500) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/tasks/{task_id}/events",
                            params={"after": after, "limit": limit})

    def diff(self, task_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/tasks/{task_id}/diff")

    def attempts(self, task_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/tasks/{task_id}/attempts")

    def status(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/status")

    def workers(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/workers")

    def token_metrics(self, days: int = 7) -> dict[str, Any]:
        return self.request("GET", "/api/v1/tokens/metrics", params={"days": days})

    def task_tokens(self, task_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/tokens/metrics/{task_id}")

    def token_recommendations(self, days: int = 7) -> dict[str, Any]:
        return self.request("GET", "/api/v1/tokens/recommendations", params={"days": days})

    def reload_config(self, wait_seconds: float = 3.0) -> dict[str, Any]:
        return self.request("POST", "/api/v1/admin/config/reload", params={"wait_seconds": wait_seconds})

    def credentials(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/credentials")

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health")

    def roles(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/roles")

    def role(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/roles/{quote(name, safe='')}")

    def submit_workflow(self, workflow: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/v1/workflows", json=workflow)

    def workflow(self, workflow_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/workflows/{quote(workflow_id, safe='')}")

    def workflows(self, **params: Any) -> dict[str, Any]:
        return self.request("GET", "/api/v1/workflows",
                            params={k: v for k, v in params.items() if v is not None})

    def cancel_workflow(self, workflow_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/workflows/{quote(workflow_id, safe='')}/cancel")

    def memory_search(self, search: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/v1/memory/search", json=search)

    def memory_store(self, memory: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/v1/memory", json=memory)

    def memory_stats(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/memory/stats")

    def memory_export(self) -> str:
        return self.text("GET", "/api/v1/memory/export")

    def memory_import(self, memories: list[dict[str, Any]]) -> dict[str, Any]:
        return self.request("POST", "/api/v1/memory/import", json={"memories": memories})

    def memory_reembed(self) -> dict[str, Any]:
        return self.request("POST", "/api/v1/memory/reembed")

    def reembed_job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/memory/reembed/{quote(job_id, safe='')}")

    def code_index(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/v1/code/index", json=request)

    def code_index_job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/code/index/{quote(job_id, safe='')}")

    def code_index_jobs(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/code/index")

    def cancel_code_index(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/code/index/{quote(job_id, safe='')}/cancel")

    def code_search(self, search: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/v1/code/search", json=search)

    def code_stats(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/code/stats")

    def create_schedule(self, schedule: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/v1/schedules", json=schedule)

    def schedules(self, name: str | None = None) -> dict[str, Any]:
        return self.request("GET", "/api/v1/schedules", params={"name": name} if name else {})

    def schedule(self, schedule_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/schedules/{schedule_id}")

    def update_schedule(self, schedule_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/api/v1/schedules/{schedule_id}", json=changes)

    def delete_schedule(self, schedule_id: str) -> None:
        self.request("DELETE", f"/api/v1/schedules/{schedule_id}")

    def run_schedule(self, schedule_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/schedules/{schedule_id}/run")

    def pause_schedule(self, schedule_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/schedules/{schedule_id}/pause")

    def resume_schedule(self, schedule_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/schedules/{schedule_id}/resume")

    def schedule_runs(self, schedule_id: str, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return self.request("GET", f"/api/v1/schedules/{schedule_id}/runs", params=params)
