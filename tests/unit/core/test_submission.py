"""A task's limits are decided once, at submission: the row holds them, the worker trusts it."""

from __future__ import annotations

import pytest

from cca_core.errors import Invalid
from cca_core.settings import AgentSettings
from cca_core.tasks.schemas import TaskCreate
from cca_core.tasks.submission import task_values

AGENTS = AgentSettings.model_validate({
    "token_budget_per_task": 7000, "default_timeout_seconds": 90, "queues": ["cca", "nightly"],
    "roles": {"reviewer": {"token_budget": 5000, "timeout_seconds": 60}}})


def values(**body):
    return task_values(TaskCreate.model_validate({"prompt": "p", **body}), AGENTS, "cca")


def test_the_fleet_defaults_fill_a_body_without_limits():
    row = values()
    assert (row["token_budget"], row["timeout_seconds"], row["queue"]) == (7000, 90, "cca")


def test_a_role_sets_its_own_defaults_and_the_body_wins_over_both():
    assert (values(role="reviewer")["token_budget"], values(role="reviewer")["timeout_seconds"]) \
        == (5000, 60)
    given = values(role="reviewer", token_budget=123, timeout_seconds=45)
    assert (given["token_budget"], given["timeout_seconds"]) == (123, 45)


def test_a_queue_no_worker_consumes_is_refused_naming_the_field():
    with pytest.raises(Invalid) as refused:
        values(queue="elsewhere")
    assert refused.value.field == "queue"
