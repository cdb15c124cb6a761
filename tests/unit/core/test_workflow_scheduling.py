"""What a workflow does next (cca_core.workflows.scheduling.next_moves): dependents start when
all they need succeeded; a failure is handled by the policy; a halt stops everything."""

from __future__ import annotations

from cca_core.workflows.scheduling import StepState, next_moves


def diamond(**statuses: str) -> dict[str, StepState]:
    """root -> (left, right) -> join, each in the status given (default queued and waiting)."""
    deps = {"root": (), "left": ("root",), "right": ("root",), "join": ("left", "right")}
    return {name: StepState(statuses.get(name, "queued"), deps[name],
                            waiting=bool(deps[name]) and statuses.get(name, "queued") == "queued")
            for name in deps}


def test_a_step_starts_only_when_every_dependency_succeeded():
    assert next_moves(diamond(root="running"), "fail_fast").release == []
    assert sorted(next_moves(diamond(root="succeeded"), "fail_fast").release) == ["left", "right"]
    half = next_moves(diamond(root="succeeded", left="succeeded", right="running"), "fail_fast")
    assert half.release == [] and half.finished is None
    both = next_moves(diamond(root="succeeded", left="succeeded", right="succeeded"), "fail_fast")
    assert both.release == ["join"]


def test_a_workflow_succeeds_when_every_step_did():
    moves = next_moves(diamond(root="succeeded", left="succeeded", right="succeeded",
                               join="succeeded"), "continue")
    assert moves.finished == "succeeded" and not moves.release


def test_fail_fast_stops_running_siblings_and_cancels_what_has_not_started():
    moves = next_moves(diamond(root="succeeded", left="failed", right="running"), "fail_fast")
    assert moves.stop == {"right": "dependency_failed"}
    assert moves.cancel == {"join": "dependency_failed"}
    assert moves.release == [] and moves.finished is None  # right still has to stop
    over = next_moves(diamond(root="succeeded", left="failed", right="cancelled"), "fail_fast")
    assert over.finished == "failed" and over.cancel == {"join": "dependency_failed"}


def test_continue_cancels_only_what_depends_on_the_failure_directly_or_not():
    steps = {
        "a": StepState("failed"),
        "b": StepState("queued", ("a",), waiting=True),
        "c": StepState("queued", ("b",), waiting=True),
        "d": StepState("running"),
        "e": StepState("queued", ("d",), waiting=True),
    }
    moves = next_moves(steps, "continue")
    assert moves.cancel == {"b": "dependency_failed", "c": "dependency_failed"}
    assert moves.stop == {} and moves.release == [] and moves.finished is None
    steps["d"] = StepState("succeeded")
    later = next_moves(steps, "continue")
    assert later.release == ["e"]


def test_a_halt_cancels_everything_not_started_and_stops_what_runs():
    moves = next_moves(diamond(root="succeeded", left="running"), "continue", halt="budget_exceeded")
    assert moves.stop == {"left": "budget_exceeded"}
    assert moves.cancel == {"right": "budget_exceeded", "join": "budget_exceeded"}
    assert moves.release == [] and moves.finished is None
    done = next_moves(diamond(root="succeeded", left="cancelled"), "continue", halt="cancelled")
    assert done.finished == "cancelled"


def test_a_step_run_when_ended_runs_after_a_failure_and_after_what_it_doomed():
    steps = {
        "a": StepState("failed"),
        "b": StepState("queued", ("a",), waiting=True),
        "report": StepState("queued", ("a", "b"), waiting=True, run_when="ended"),
    }
    moves = next_moves(steps, "continue")
    assert moves.cancel == {"b": "dependency_failed"} and moves.release == []
    steps["b"] = StepState("cancelled")
    later = next_moves(steps, "continue")
    assert later.release == ["report"] and later.finished is None
    steps["report"] = StepState("succeeded", ("a", "b"), run_when="ended")
    assert next_moves(steps, "continue").finished == "failed"
    halted = next_moves({**steps, "report": StepState("queued", ("a",), waiting=True,
                                                      run_when="ended")},
                        "continue", halt="cancelled")
    assert halted.cancel == {"report": "cancelled"}
