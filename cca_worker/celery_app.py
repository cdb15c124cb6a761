"""Entry module for ``celery -A cca_worker.celery_app`` (systemd units, Flower)."""

from __future__ import annotations

from cca_core.infra.config import load_settings
from cca_worker.app import make_celery

app = make_celery(load_settings())
