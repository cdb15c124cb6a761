"""The [beat] settings refuse a leader timeout a normal tick could trip."""

from __future__ import annotations

import pytest

from cca_core.errors import ConfigError
from cca_core.infra.config import validate


def test_a_leader_timeout_shorter_than_three_ticks_is_refused_naming_the_section():
    with pytest.raises(ConfigError, match="leader_timeout_seconds must be at least 3 x tick_seconds") as bad:
        validate({"beat": {"tick_seconds": 5, "leader_timeout_seconds": 10}})
    assert bad.value.field == "beat"


def test_the_defaults_fire_every_second_and_fail_over_within_ten():
    beat = validate({}).beat
    assert (beat.tick_seconds, beat.leader_timeout_seconds, beat.misfire_grace_seconds) == (1.0, 10, 60)
