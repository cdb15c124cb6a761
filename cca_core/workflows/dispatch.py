"""Advance a workflow and send the messages of the steps it released: what a finishing
worker, a cancel and the sweep each do."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import Engine

from cca_core.models import Task
from cca_core.workflows import store

Send = Callable[[Task], object]
"""Sends one released step's message (``partial(enqueue, producer)``)."""


def advance_and_send(engine: Engine, send: Send | None, workflow_id: uuid.UUID) -> int:
    """Advance the workflow in a transaction of its own, then send its released steps (with
    no ``send``, the sweep sends them). Returns how many were released."""
    with engine.begin() as connection:
        released = store.advance(connection, workflow_id)
    if send is not None:
        for task in released:
            send(task)
    return len(released)
