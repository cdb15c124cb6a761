"""A daemon thread of the worker's main process that runs until stopped (the webhook
dispatcher, the memories' backfill)."""

from __future__ import annotations

import threading


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
