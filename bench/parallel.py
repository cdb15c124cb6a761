"""Run a job a fixed number of times from several client threads and time the whole."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress

Job = Callable[[], None]
JobFactory = Callable[[], AbstractContextManager[Job]]


def run_parallel(total: int, threads: int, make_job: JobFactory) -> float:
    """Call jobs ``total`` times in all from ``threads`` threads; each thread makes its own
    job (and client) with ``make_job`` before the clock starts. Returns the elapsed seconds
    from the start to the end of the last call. Re-raises the first error of any thread."""
    tickets = itertools.count()  # next() on it is atomic under the GIL
    ready = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            with make_job() as job:
                ready.wait()
                while not errors and next(tickets) < total:
                    job()
        except threading.BrokenBarrierError:
            pass
        except BaseException as exc:  # handed to the main thread, which re-raises it
            errors.append(exc)
            ready.abort()

    workers = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    with suppress(threading.BrokenBarrierError):
        ready.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed
