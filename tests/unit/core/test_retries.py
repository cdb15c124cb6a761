"""The retry policy: rules layered class by class, final classes, waits with jitter."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from cca_core.retries import DEFAULTS, Failure, RetryRule, Rule, retry_at, rule_for, rules_of
from cca_core.settings import Settings

NOW = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)


def test_layers_apply_field_by_field_in_order():
    fleet = {Failure.OVERLOADED: RetryRule(attempts=5, backoff_seconds=1)}
    role = {Failure.OVERLOADED: RetryRule(max_backoff_seconds=7)}
    task = {Failure.OVERLOADED: RetryRule(attempts=2)}
    assert rule_for(Failure.OVERLOADED, (fleet, role, task)) == Rule(2, 1, 7)
    assert rule_for(Failure.SERVER_ERROR, (fleet, None, task)) == DEFAULTS[Failure.SERVER_ERROR]


def test_final_classes_are_refused_and_never_retried():
    with pytest.raises(ValidationError, match="billing is final"):
        Settings(retries={"billing": {"attempts": 2}})
    with pytest.raises(ValidationError, match="auth_failed is final"):
        rules_of({"auth_failed": {"attempts": 3}})
    assert retry_at(rule_for(Failure.AUTH_FAILED, ()), 1, NOW, jitter=0) is None


def test_waits_double_up_to_the_cap_less_the_jitter():
    rule = Rule(attempts=6, backoff_s=10, max_backoff_s=35)
    waits = [(retry_at(rule, n, NOW, jitter=0) - NOW).total_seconds() for n in range(1, 6)]
    assert waits == [10, 20, 35, 35, 35]
    assert retry_at(rule, 6, NOW, jitter=0) is None
    jittered = {(retry_at(rule, 1, NOW, jitter=0.5, rng=random.Random(seed)) - NOW).total_seconds()
                for seed in range(50)}
    assert min(jittered) >= 5 and max(jittered) <= 10 and len(jittered) > 40


def test_the_example_config_documents_the_defaults(monkeypatch, tmp_path):
    example = Path(__file__).resolve().parents[3] / "cca.toml.example"
    config = tmp_path / "cca.toml"  # the name it is copied to (dynaconf reads .toml files only)
    config.write_text(example.read_text())
    monkeypatch.setenv("CCA_CONFIG", str(config))
    from cca_core.infra.config import load_settings

    rules = load_settings().retries.rules
    assert set(rules) == set(Failure)
    assert {failure: rule_for(failure, (rules,)) for failure in Failure} == dict(DEFAULTS)
