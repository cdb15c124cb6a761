"""The lifecycle table: what a task's status may become."""

from __future__ import annotations

import pytest

from cca_core.tasks.status import (
    ALL_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    IllegalTransition,
    TaskStatus,
    changing,
)


def test_every_status_has_a_row_and_terminal_ones_lead_nowhere():
    assert set(TRANSITIONS) == set(TaskStatus) == set(ALL_STATUSES)
    assert all(TRANSITIONS[status] == frozenset() for status in TERMINAL_STATUSES)


def test_every_status_is_reachable_from_queued():
    reached, frontier = {TaskStatus.QUEUED}, [TaskStatus.QUEUED]
    while frontier:
        for target in TRANSITIONS[frontier.pop()] - reached:
            reached.add(target)
            frontier.append(target)
    assert reached == set(TaskStatus)


def test_the_changes_the_store_makes_are_allowed_and_others_refused():
    assert changing(TaskStatus.QUEUED, "running") is TaskStatus.QUEUED
    assert changing(TaskStatus.RUNNING, TaskStatus.RUNNING) is TaskStatus.RUNNING  # re-claim
    for terminal in TERMINAL_STATUSES:
        assert changing(TaskStatus.RUNNING, terminal) is TaskStatus.RUNNING
    with pytest.raises(IllegalTransition, match="from queued to succeeded"):
        changing(TaskStatus.QUEUED, TaskStatus.SUCCEEDED)
    with pytest.raises(IllegalTransition):
        changing(TaskStatus.SUCCEEDED, TaskStatus.RUNNING)
    with pytest.raises(ValueError):
        changing(TaskStatus.RUNNING, "paused")


def test_statuses_are_strings_where_rows_and_json_use_them():
    assert TaskStatus.TIMED_OUT == "timed_out" and "queued" in {TaskStatus.QUEUED}
