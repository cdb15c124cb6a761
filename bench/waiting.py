"""Deadlines, and the one error the benchmark raises when something does not come up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from bench.processes import Child

T = TypeVar("T")


class BenchError(Exception):
    """A server, worker or task did not behave as the benchmark needs."""


def wait_until(check: Callable[[], T | None], *, timeout_s: float, what: str,
               child: Child | None = None, interval_s: float = 0.01) -> T:
    """Return the first truthy value of ``check()``.

    Raises BenchError when ``timeout_s`` passes or ``child`` exits first (with its log tail).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if child is not None and not child.alive():
            raise BenchError(f"{child.name} exited while waiting for {what}:\n{child.log_tail()}")
        if time.monotonic() > deadline:
            tail = f"\n{child.name} log:\n{child.log_tail()}" if child is not None else ""
            raise BenchError(f"timed out after {timeout_s:g}s waiting for {what}{tail}")
        time.sleep(interval_s)
