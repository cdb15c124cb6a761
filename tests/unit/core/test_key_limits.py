"""Key limits as plain functions: what a body may give, what it gets when it leaves a field out."""

from __future__ import annotations

import pytest

from cca_core.access.key_limits import KeyLimits, check_limits, limited_values
from cca_core.errors import Forbidden, Invalid
from cca_core.settings import AgentSettings, Settings
from cca_core.tasks.schemas import TaskCreate

AGENTS = AgentSettings.model_validate({
    "queues": ["cca", "nightly"], "allowed_roots": ["/srv"], "token_budget_per_task": 100,
    "roles": {"reader": {"permissions": {"mode": "sandbox"}, "model": "haiku"},
              "cheap": {"allowed_models": ["haiku"], "allowed_queues": ["nightly"],
                        "max_token_budget": 10}}})


def values(limits: KeyLimits, within_role: bool = True, **body) -> dict:
    return limited_values(TaskCreate(prompt="p", **body), limits, AGENTS, "cca",
                          within_role=within_role)


def test_no_limits_change_nothing():
    assert values(KeyLimits())["queue"] == "cca"
    assert values(KeyLimits(), queue="nightly", token_budget=500)["token_budget"] == 500


def test_a_left_out_mode_is_the_widest_allowed_no_wider_than_the_roles():
    limits = KeyLimits(allowed_permission_modes=["dangerous", "sandbox"])
    assert values(limits)["permission_mode"] == "sandbox"
    assert values(KeyLimits(allowed_permission_modes=["allowlist"]))["permission_mode"] is None


def test_a_left_out_role_and_model_are_the_keys_first():
    limited = values(KeyLimits(allowed_roles=["reader"], allowed_models=["haiku", "opus"]))
    assert (limited["role"], limited["model"]) == ("reader", None)  # the role's model is allowed
    assert values(KeyLimits(allowed_models=["opus"]))["model"] == "opus"


def test_caps_refuse_more_and_lower_the_default():
    with pytest.raises(Forbidden) as refused:
        values(KeyLimits(max_token_budget=50), token_budget=51)
    assert refused.value.field == "token_budget"
    assert values(KeyLimits(max_token_budget=50))["token_budget"] == 50


def test_a_roles_limits_bind_its_non_admin_tasks_within_the_keys():
    cheap = values(KeyLimits(max_token_budget=50), role="cheap")
    assert (cheap["queue"], cheap["model"], cheap["token_budget"]) == ("nightly", "haiku", 10)
    with pytest.raises(Forbidden) as refused:
        values(KeyLimits(), role="cheap", model="opus")
    assert refused.value.field == "model"
    with pytest.raises(Invalid) as refused:  # the role's queue is not one the key may use
        values(KeyLimits(allowed_queues=["cca"]), role="cheap")
    assert refused.value.field == "queue" and "this key" in refused.value.message
    assert "role cheap" in pytest.raises(Forbidden, values, KeyLimits(), role="cheap",
                                         token_budget=11).value.message
    admin = values(KeyLimits(), within_role=False, role="cheap", model="opus", token_budget=99)
    assert (admin["model"], admin["token_budget"], admin["queue"]) == ("opus", 99, "cca")


def test_a_queue_outside_the_fleet_is_invalid_even_for_an_unlimited_key():
    with pytest.raises(Invalid) as refused:
        values(KeyLimits(), queue="elsewhere")
    assert refused.value.field == "queue"


def test_limits_naming_what_the_fleet_lacks_are_invalid():
    for limits, field in ((KeyLimits(allowed_queues=["cca", "x"]), "allowed_queues[1]"),
                          (KeyLimits(allowed_roles=["writer"]), "allowed_roles[0]"),
                          (KeyLimits(cwd_roots=["/srv/web", "/etc"]), "cwd_roots[1]")):
        with pytest.raises(Invalid) as refused:
            check_limits(limits, AGENTS)
        assert refused.value.field == field


def test_the_fleets_queues_default_to_the_workers():
    assert Settings.model_validate({"worker": {"queues": ["a", "b"]}}).agents.queues == ["a", "b"]
    both = Settings.model_validate({"worker": {"queues": ["a"]}, "agents": {"queues": ["a", "z"]}})
    assert both.agents.queues == ["a", "z"]
    with pytest.raises(ValueError, match="agents.roles.r.allowed_queues: b not in agents.queues"):
        Settings.model_validate({"agents": {"roles": {"r": {"allowed_queues": ["b"]}}}})
