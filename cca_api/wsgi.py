"""WSGI entry module for gunicorn: ``gunicorn cca_api.wsgi:app``."""

from __future__ import annotations

from cca_api import create_app

app = create_app()
