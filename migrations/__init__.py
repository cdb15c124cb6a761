"""Alembic migrations of the cca schema; run with ``cca db upgrade``."""
