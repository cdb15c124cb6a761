"""Helpers for end-to-end tests of the fleet: drive the real API, read the process table.

``FleetAPI`` wraps a Flask test client of the real app; ``agent_processes`` finds the agent
processes (``claude``, its reaper shim, its tools) that belong to one test, so that tests running
side by side on the same machine never count each other's processes.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_for

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out", "budget_exceeded"})


def script(*steps: dict[str, Any]) -> str:
    """The prompt marker that makes the scripted Messages API answer with ``steps``."""
    return "[[script:" + json.dumps({"steps": list(steps)}) + "]]"


def bash(command: str, **extra: Any) -> dict[str, Any]:
    """A script step that calls the Bash tool with ``command``."""
    return {"tool_use": {"name": "Bash", "input": {"command": command, "description": "run"}},
            **extra}


def ts(value: str | None) -> float:
    """An API timestamp as epoch seconds."""
    assert value is not None
    return datetime.fromisoformat(value).timestamp()


class FleetAPI:
    """The task endpoints of the real Flask app, with the assertions every call deserves."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def submit(self, *steps: dict[str, Any], prompt_prefix: str = "", **body: Any) -> dict[str, Any]:
        response = self.client.post("/api/v1/tasks",
                                    json={"prompt": prompt_prefix + script(*steps), **body})
        assert response.status_code == 202, response.get_json()
        task = response.get_json()
        coordinated = body.get("mode") == "coordinate" or body.get("role") == "coordinator"
        assert task["status"] == ("running" if coordinated else "queued"), task
        return task

    def get(self, task_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/tasks/{task_id}")
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def cancel(self, task_id: str) -> Any:
        return self.client.post(f"/api/v1/tasks/{task_id}/cancel")

    def events(self, task_id: str) -> list[dict[str, Any]]:
        """Every recorded event of the task, oldest first (all pages)."""
        found: list[dict[str, Any]] = []
        after = 0
        while True:
            response = self.client.get(f"/api/v1/tasks/{task_id}/events?after={after}&limit=500")
            assert response.status_code == 200, response.get_json()
            page = response.get_json()
            found += page["events"]
            if page["next_after"] is None:
                return found
            after = page["next_after"]

    def wait_until(self, task_id: str, check: Callable[[dict[str, Any]], bool], timeout_s: float,
                   message: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            task = self.get(task_id)
            return task if check(task) else None

        return wait_for(probe, timeout_s=timeout_s, message=f"task {task_id}: {message}")

    def wait_running(self, task_id: str, timeout_s: float = 30) -> dict[str, Any]:
        def running(task: dict[str, Any]) -> bool:
            assert task["status"] in ("queued", "running"), task
            return task["status"] == "running"

        return self.wait_until(task_id, running, timeout_s, "to be running")

    def wait_terminal(self, task_id: str, timeout_s: float = 60) -> dict[str, Any]:
        return self.wait_until(task_id, lambda task: task["status"] in TERMINAL, timeout_s,
                               "to end")


    def submit_workflow(self, **body: Any) -> dict[str, Any]:
        response = self.client.post("/api/v1/workflows", json=body)
        assert response.status_code == 202, response.get_json()
        return response.get_json()

    def workflow(self, workflow_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/workflows/{workflow_id}")
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def wait_workflow(self, workflow_id: str, timeout_s: float = 90) -> dict[str, Any]:
        """The workflow once it ended (every step ended too)."""
        def ended() -> dict[str, Any] | None:
            found = self.workflow(workflow_id)
            return found if found["status"] != "running" else None

        return wait_for(ended, timeout_s=timeout_s, message=f"workflow {workflow_id} to end")


def steps_by_name(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in workflow["tasks"]}


# -- processes ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Proc:
    pid: int
    start: int
    cmdline: str
    argv: tuple[str, ...]
    cwd: str
    environ: str = field(repr=False)

    def alive(self) -> bool:
        stat = _stat(self.pid)
        return stat is not None and stat[2] == self.start and stat[0] != "Z"


def _stat(pid: int) -> tuple[str, int, int] | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[1]), int(fields[19])


def live_processes() -> list[Proc]:
    """Every live (non-zombie) process this user can inspect."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            raw = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().replace(b"\0", b"\n").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        stat = _stat(pid)
        if stat is None or stat[0] == "Z" or not raw:
            continue
        argv = tuple(part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0"))
        found.append(Proc(pid, stat[2], " ".join(argv), argv, cwd, environ))
    return found


def belongs_to(proc: Proc, root: Path) -> bool:
    """Whether ``proc`` runs for the test whose files live under ``root`` (its cwd or its
    environment, e.g. CLAUDE_CONFIG_DIR, points there; tools inherit both)."""
    marker = f"{root}/"
    return proc.cwd == str(root) or proc.cwd.startswith(marker) or marker in proc.environ


def agent_processes(root: Path, marker: str) -> list[Proc]:
    """Processes of this test whose command line contains ``marker``."""
    return [proc for proc in live_processes() if marker in proc.cmdline and belongs_to(proc, root)]


def tool_processes(root: Path, command: str, *, shells: bool = True) -> list[Proc]:
    """The processes of a Bash tool call running ``command``: the command itself and (with
    ``shells``) the ``bash -c ... eval '<command>'`` shell claude wraps it in; never claude,
    whose prompt may quote the command too."""
    return [proc for proc in live_processes() if belongs_to(proc, root)
            and (proc.cmdline == command or shells and f"eval '{command}'" in proc.cmdline)]


def claude_processes(root: Path, claude_bin: str) -> list[Proc]:
    """The running agents of this test: ``claude`` CLI processes (not their reaper shims, and
    not the short-lived forks claude makes of itself, which share its command line)."""
    found = [proc for proc in agent_processes(root, claude_bin)
             if proc.argv and proc.argv[0] == claude_bin]
    pids = {proc.pid for proc in found}
    return [proc for proc in found if (stat := _stat(proc.pid)) is not None
            and stat[1] not in pids]


def descendants(root_pid: int) -> list[Proc]:
    """The live processes below ``root_pid`` in the process tree."""
    procs = {proc.pid: proc for proc in live_processes()}
    children: dict[int, list[int]] = {}
    for pid in procs:
        stat = _stat(pid)
        if stat is not None:
            children.setdefault(stat[1], []).append(pid)
    found: list[Proc] = []
    todo = list(children.get(root_pid, ()))
    while todo:
        pid = todo.pop()
        if pid in procs:
            found.append(procs[pid])
        todo.extend(children.get(pid, ()))
    return found


def describe(procs: Iterable[Proc]) -> list[str]:
    return [f"{proc.pid}: {proc.cmdline[:300]}" for proc in procs]


class Sampler:
    """Call ``probe()`` every ``interval_s`` in a background thread; keep (time, value)."""

    def __init__(self, probe: Callable[[], Any], interval_s: float = 0.05) -> None:
        self.probe, self.interval_s = probe, interval_s
        self.samples: list[tuple[float, Any]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.time(), self.probe()))
            except BaseException as exc:  # noqa: BLE001 - reported by stop()
                self.errors.append(exc)
                return
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        if self.errors:
            raise self.errors[0]
