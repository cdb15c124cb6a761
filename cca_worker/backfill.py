"""Embedding the memories stored without a vector: a thread in each worker's main process.

An agent's slot stores the lesson of its run as text alone (``cca_worker.memory``): embedding
it there would load the model into every slot process (about 250 MB each) and take CPU from
the agents while they run. This thread embeds those lessons in batches, once per worker, and
also the memories stored while the provider was down, once it answers again. Until then full
text finds them. Several workers share the work (``cca_core.search.reembed.backfill``)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Engine

from cca_core.embeddings import EmbeddingUnavailable
from cca_core.embeddings.providers import embedder_for
from cca_core.search.reembed import backfill
from cca_core.settings import EmbeddingSettings
from cca_worker.background import Background
from cca_worker.jobs import REEMBEDDED
from cca_worker.outage import is_transient

log = logging.getLogger(__name__)
IDLE_S = 2.0  # between looks while nothing waits
DOWN_S = 30.0  # before asking a provider that did not answer again


class Backfill(Background):
    """Embeds waiting memories until stopped."""

    name = "backfill"

    def __init__(self, engine: Engine, settings: Callable[[], EmbeddingSettings]) -> None:
        self._engine = engine
        self._settings = settings
        super().__init__()

    def _run(self) -> None:
        pause = 0.0
        while not self._stopped.wait(pause):
            pause = self.step()

    def step(self) -> float:
        """Embed one batch; return how long to wait before the next."""
        settings = self._settings()
        if settings.provider == "none":
            return IDLE_S
        try:
            done = backfill(self._engine, embedder_for(settings), "memories", REEMBEDDED["memories"],
                            settings.batch_size)
        except EmbeddingUnavailable as exc:
            log.warning("memories wait for their vectors: %s (asking again in %.0f s)", exc, DOWN_S)
            return DOWN_S
        except Exception as exc:  # the thread must outlive a failure; the next step tries again
            if not is_transient(exc):
                log.exception("backfill failed")
                return DOWN_S
            log.warning("backfill: Postgres is unreachable (%s)", type(exc.__cause__ or exc).__name__)
            return IDLE_S
        if done:
            log.info("embedded %s memories", done)
        return 0.0 if done == settings.batch_size else IDLE_S
