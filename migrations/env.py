"""Alembic environment: the URL comes from the caller (``cca db upgrade``) via config attributes."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from cca_core.infra.db import sqlalchemy_url
from cca_core.models import Base

config = context.config
url = sqlalchemy_url(config.get_main_option("sqlalchemy.url") or "")
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
