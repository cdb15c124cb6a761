"""Fakes for the run loop's unit tests: a clock that moves only when told, and an agent
process that replays a stream-json transcript recorded from the real CLI
(``tests/data/transcripts``) on that clock, with the surface of
:class:`cca_worker.agent.AgentProcess` the supervisor uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cca_worker.agent import EOF, ExitStatus

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "data" / "transcripts"
SIGTERM_EXIT = 143


def transcript(name: str) -> list[str]:
    """The lines of ``tests/data/transcripts/<name>.jsonl``."""
    return (TRANSCRIPTS / f"{name}.jsonl").read_text().splitlines()


class FakeClock:
    """Monotonic seconds that advance only when the fake agent spends them."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ReplayedAgent:
    """Replays ``lines``, one every ``gap_s`` of the clock. After ``hang_after`` lines it goes
    silent (each read waits out its timeout) until stopped. It exits with ``exit_code`` once
    the lines are out, or 143 (SIGTERM) when stopped first."""

    def __init__(self, lines: list[str], clock: FakeClock, *, gap_s: float = 0.05,
                 hang_after: int | None = None, exit_code: int = 0, stderr: str = "") -> None:
        self.lines = list(lines)
        self.clock = clock
        self.gap_s = gap_s
        self.hang_after = hang_after
        self.exit_code = exit_code
        self.stderr_tail = stderr
        self.started = clock()
        self.sent = 0
        self.stopped = False

    def read_line(self, timeout_s: float) -> str | None | Any:
        if self.stopped or self.sent == len(self.lines):
            return EOF
        if self.hang_after is not None and self.sent >= self.hang_after:
            self.clock.advance(timeout_s)
            return None
        self.clock.advance(self.gap_s)
        self.sent += 1
        return self.lines[self.sent - 1]

    def stop(self) -> None:
        self.stopped = True

    def wait(self, timeout_s: float | None = None) -> ExitStatus:
        code = SIGTERM_EXIT if self.stopped else self.exit_code
        return ExitStatus(returncode=code, stopped=self.stopped,
                          duration_s=self.clock() - self.started)


class MemorySink:
    """The events a run persists, kept in a list."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.flushes = 0

    def add(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def flush(self) -> None:
        self.flushes += 1
