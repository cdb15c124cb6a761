"""Every way a run ends, through the supervisor and the verdict, with transcripts of the real
CLI replayed on a fake clock: no process, no Redis, no Postgres."""

from __future__ import annotations

from dataclasses import dataclass, field

from cca_core.tasks.outcome import Outcome
from cca_core.tokens.usage import Tokens
from cca_worker.supervisor import supervise
from cca_worker.verdict import Limits, RunEnd, StopReason, decide
from tests.fakes.agent import FakeClock, MemorySink, ReplayedAgent, transcript

LIMITS = Limits(timeout_s=60, stall_s=10, token_budget=1_000_000, heartbeat_s=1)


@dataclass
class Heartbeat:
    """Records each beat; asks the run to stop from beat ``cancel_at`` on."""

    cancel_at: int | None = None
    beats: list[tuple[Tokens, int]] = field(default_factory=list)

    def __call__(self, tokens: Tokens, turns: int, models: frozenset[str]) -> bool:
        self.beats.append((tokens, turns))
        return self.cancel_at is not None and len(self.beats) >= self.cancel_at


@dataclass
class Run:
    agent: ReplayedAgent
    sink: MemorySink
    end: RunEnd
    outcome: Outcome
    clock: FakeClock


def run(name: str, limits: Limits = LIMITS, heartbeat: Heartbeat | None = None,
        lines: list[str] | None = None, **agent: object) -> Run:
    clock = FakeClock()
    proc = ReplayedAgent(transcript(name) if lines is None else lines, clock, **agent)  # type: ignore[arg-type]
    sink = MemorySink()
    end = supervise(proc, limits, sink, heartbeat or Heartbeat(), clock)  # type: ignore[arg-type]
    return Run(proc, sink, end, decide(end), clock)


def test_success_records_the_result_and_the_events():
    done = run("tool_success")
    assert (done.outcome.status, done.outcome.result) == ("succeeded", "saw: recorded-marker")
    assert done.end.stop_reason is None and not done.agent.stopped
    kinds = [event["type"] for event in done.sink.events]
    assert kinds[0] == "system" and kinds[-1] == "result"
    assert "assistant" in kinds and "user" in kinds
    assert done.end.session_id == done.sink.events[0]["session_id"]


def test_a_run_over_its_token_budget_is_stopped():
    done = run("tool_success", Limits(timeout_s=60, stall_s=10, token_budget=500, heartbeat_s=1))
    assert done.agent.stopped
    assert done.end.stop_reason is StopReason.BUDGET_EXCEEDED
    assert (done.outcome.status, done.outcome.error_code) == ("budget_exceeded",
                                                             "token_budget_exceeded")
    assert "token budget of 500 crossed" in (done.outcome.error_message or "")
    assert done.outcome.input_tokens > 500


def test_a_run_past_its_wall_clock_timeout_is_stopped():
    done = run("tool_success", Limits(timeout_s=5, stall_s=10, token_budget=10**6,
                                      heartbeat_s=1), gap_s=2)
    assert done.agent.stopped and done.agent.sent < len(done.agent.lines)
    assert (done.outcome.status, done.outcome.error_code) == ("timed_out", "timeout")
    assert done.outcome.error_message == "wall-clock timeout of 5s reached"
    assert 5 < done.clock() <= 7


def test_a_silent_run_is_stopped_as_stalled():
    done = run("tool_success", Limits(timeout_s=600, stall_s=3, token_budget=10**6,
                                      heartbeat_s=1), hang_after=2)
    assert done.agent.stopped and done.agent.sent == 2
    assert (done.outcome.status, done.outcome.error_code) == ("timed_out", "stalled")
    assert done.outcome.error_message == "no output for 3s: the agent stalled"


def test_a_cancel_heard_at_a_heartbeat_stops_the_run():
    beat = Heartbeat(cancel_at=2)
    done = run("tool_success", heartbeat=beat, hang_after=5)
    assert done.agent.stopped and len(beat.beats) == 2
    assert (done.outcome.status, done.outcome.error_code) == ("cancelled", "cancelled")
    assert beat.beats[-1][0].input_tokens > 0  # progress so far went to the lease


def test_an_api_error_fails_with_its_status():
    done = run("rate_limited", exit_code=1)
    assert not done.agent.stopped
    assert (done.outcome.status, done.outcome.error_code) == ("failed", "rate_limited")


def test_a_crash_without_a_result_fails_with_the_stderr_tail():
    done = run("tool_success", lines=transcript("tool_success")[:4], exit_code=1,
               stderr="Error: the agent died")
    assert done.end.result is None and done.end.returncode == 1
    assert (done.outcome.status, done.outcome.error_code) == ("failed", "crashed")
    assert "the agent died" in (done.outcome.error_message or "")


def test_max_turns_and_denials_come_from_the_result():
    assert run("max_turns", exit_code=1).outcome.error_code == "max_turns"
    denied = run("denied").outcome
    assert denied.status == "succeeded"
    assert [d["tool_name"] for d in denied.permission_denials] == ["Bash"]


def test_heartbeats_come_at_their_interval_and_events_are_flushed():
    beat = Heartbeat()
    done = run("tool_success", Limits(timeout_s=60, stall_s=10, token_budget=10**6,
                                      heartbeat_s=0.5), heartbeat=beat, gap_s=0.25)
    assert len(beat.beats) == int(done.clock() / 0.5)
    assert done.sink.flushes >= int(done.clock() / 0.25) - 1
