"""Entry module of the baseline worker: ``celery -A bench.bare_worker worker``."""

from __future__ import annotations

import os
from pathlib import Path

from bench.bare import make_bare_celery

app = make_bare_celery(os.environ["BENCH_REDIS_URL"], Path(os.environ["BENCH_WORKSPACE"]),
                       Path(os.environ["BENCH_STANDIN"]))
