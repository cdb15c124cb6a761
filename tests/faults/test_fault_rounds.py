"""The faults of bench.faults that the other tests here do not strike, each once under a
steady load with the stand-in (a run of 2 s that leaves a background process behind), on
its own servers, workers, APIs and beats: a worker's main process SIGKILLed and started again
a second later, a whole worker host lost, an API process killed behind HAProxy while clients
submit, the leading beat killed while a schedule fires. Every task finishes exactly once, none
is lost, none runs twice, and no agent's process is left (issue 19, item 3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from bench.faults import Figures, prepare
from bench.servers import open_bench

pytestmark = pytest.mark.integration
TASKS = 12


@pytest.fixture(scope="module")
def strike() -> Iterator[Callable[[str, int], Figures]]:
    with open_bench() as bench, ExitStack() as stack:
        yield prepare(bench, stack, real=False)


@pytest.mark.parametrize("fault", ["worker-kill", "host-lost", "api-killed", "beat-leader"])
def test_under_this_fault_every_task_finishes_once_and_leaves_nothing(strike, fault):
    figures = strike(fault, TASKS)
    assert figures.submitted >= TASKS
    assert (figures.lost, figures.twice, figures.orphans) == (0, 0, 0), figures
    assert figures.exactly_once == figures.submitted, figures
