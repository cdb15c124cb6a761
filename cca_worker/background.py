"""A daemon thread of the worker's main process that runs until stopped (the webhook
dispatcher, the memories' backfill, the Postgres chores)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Background:
    """Subclasses set ``name`` and write ``_run``, which returns once ``_stopped`` is set."""

    name = "background"

    def __init__(self) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)

    def _run(self) -> None:
        raise NotImplementedError


class Repeating(Background):
    """Calls ``work`` at once, then every ``interval_s`` after the last call ended."""

    def __init__(self, name: str, interval_s: float, work: Callable[[], None]) -> None:
        self.name = name
        self._interval_s = interval_s
        self._work = work
        super().__init__()

    def _run(self) -> None:
        self._work()
        while not self._stopped.wait(self._interval_s):
            self._work()
