"""How a run rides out Postgres being unreachable (cca_worker.outage), on a fake clock."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from cca_worker.outage import Outage, PostgresLost, is_transient, waiting_out

DOWN = OperationalError("SELECT 1", {}, Exception("connection refused"))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def seen() -> list[str]:
    return []


@pytest.fixture
def outage(clock: Clock, seen: list[str]) -> Outage:
    return Outage(30, on_start=lambda: seen.append("start"), on_end=lambda: seen.append("end"),
                  clock=clock)


def fail() -> str:
    raise DOWN


def test_a_failed_write_answers_the_default_and_is_tried_again_after_a_growing_backoff(outage, clock, seen):
    tries: list[float] = []

    def write() -> str:
        tries.append(clock.now)
        raise DOWN

    for step in range(80):  # 20 s in steps of 0.25 s
        clock.now = step * 0.25
        assert outage.call(write, "default") == "default"
    assert tries == [0.0, 0.5, 1.5, 3.5, 7.5, 12.5, 17.5]  # 0.5, 1, 2, 4 s, then every 5 s
    assert outage.down and seen == ["start"]


def test_a_write_that_succeeds_again_ends_the_outage(outage, clock, seen):
    outage.call(fail, None)
    clock.now = 0.5
    assert outage.call(lambda: "written", None) == "written"
    assert not outage.down and seen == ["start", "end"]
    outage.call(fail, None)  # a new outage starts over, its backoff too
    clock.now = 1.0
    assert outage.call(lambda: "again", None) == "again"
    assert seen == ["start", "end", "start", "end"]


def test_an_outage_longer_than_the_limit_stops_the_run(outage, clock):
    outage.call(fail, None)
    clock.now = 29.0
    outage.call(fail, None)
    clock.now = 40.0
    with pytest.raises(PostgresLost, match="unreachable for 40 s"):
        outage.call(fail, None)


def test_an_error_that_is_not_about_reaching_postgres_propagates(outage, seen):
    wrong = IntegrityError("INSERT", {}, Exception("duplicate key"))

    def write() -> None:
        raise wrong

    with pytest.raises(IntegrityError):
        outage.call(write, None)
    assert not outage.down and seen == []
    assert is_transient(DOWN) and not is_transient(wrong) and not is_transient(ValueError())


def test_waiting_out_tries_again_with_the_same_backoff_until_it_works():
    slept: list[float] = []
    results = iter([DOWN, DOWN, "claimed"])

    def claim() -> str:
        value = next(results)
        if isinstance(value, Exception):
            raise value
        return value

    assert waiting_out(claim, 30, "claim", sleep=slept.append) == "claimed"
    assert slept == [0.5, 1.0]


def test_waiting_out_gives_up_past_its_limit_and_at_once_on_other_errors():
    with pytest.raises(OperationalError):
        waiting_out(fail, 0, "claim", sleep=lambda _: None)
    wrong = IntegrityError("INSERT", {}, Exception("duplicate key"))

    def write() -> None:
        raise wrong

    slept: list[float] = []
    with pytest.raises(IntegrityError):
        waiting_out(write, 30, "claim", sleep=slept.append)
    assert slept == []
