"""memory and code search on pgvector: memories, code_files, code_chunks, jobs; tasks.recall_k

Embeddings are ``vector`` columns with no fixed dimension: each row names its vector space
(``space``), and cca_core.search.vectors makes one partial HNSW index per table and space
when the first vector of that space is written. The ``vector`` extension exists already
(0001).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tasks', sa.Column('recall_k', sa.Integer(), nullable=True))
    op.create_table(
        'memories',
        sa.Column('id', UUID(as_uuid=True), primary_key=True),
        sa.Column('tenant', sa.Text(), nullable=False),
        sa.Column('kind', sa.Text(), nullable=False),
        sa.Column('content', sa.Text(), nullable=False),
        sa.Column('tags', ARRAY(sa.Text()), nullable=False, server_default=sa.text("'{}'::text[]")),
        sa.Column('source_task_id', UUID(as_uuid=True), sa.ForeignKey('tasks.id', ondelete='SET NULL'), nullable=True),
        sa.Column('successes', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('failures', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('space', sa.Text(), nullable=True),
        sa.Column('embedding', Vector(), nullable=True),
        sa.Column('search_text', TSVECTOR(), nullable=False),
        sa.Column('created_by', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index('memories_tenant_created_idx', 'memories', ['tenant', sa.text('created_at DESC')])
    op.create_index('memories_search_text_idx', 'memories', ['search_text'], postgresql_using='gin')
    op.create_index('memories_source_task_idx', 'memories', ['source_task_id'])
    op.create_table(
        'code_files',
        sa.Column('tenant', sa.Text(), primary_key=True),
        sa.Column('root', sa.Text(), primary_key=True),
        sa.Column('path', sa.Text(), primary_key=True),
        sa.Column('language', sa.Text(), nullable=True),
        sa.Column('content_hash', sa.Text(), nullable=False),
        sa.Column('chunks', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('indexed_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        'code_chunks',
        sa.Column('id', sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column('tenant', sa.Text(), nullable=False),
        sa.Column('root', sa.Text(), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('language', sa.Text(), nullable=True),
        sa.Column('symbol', sa.Text(), nullable=True),
        sa.Column('kind', sa.Text(), nullable=False),
        sa.Column('start_line', sa.Integer(), nullable=False),
        sa.Column('end_line', sa.Integer(), nullable=False),
        sa.Column('content', sa.Text(), nullable=False),
        sa.Column('space', sa.Text(), nullable=True),
        sa.Column('embedding', Vector(), nullable=True),
        sa.Column('search_text', TSVECTOR(), nullable=False),
        sa.ForeignKeyConstraint(['tenant', 'root', 'path'], ['code_files.tenant', 'code_files.root', 'code_files.path'],
                                ondelete='CASCADE', name='code_chunks_file_fkey'),
    )
    op.create_index('code_chunks_file_idx', 'code_chunks', ['tenant', 'root', 'path'])
    op.create_index('code_chunks_search_text_idx', 'code_chunks', ['search_text'], postgresql_using='gin')
    op.create_table(
        'jobs',
        sa.Column('id', UUID(as_uuid=True), primary_key=True),
        sa.Column('kind', sa.Text(), nullable=False),
        sa.Column('tenant', sa.Text(), nullable=False),
        sa.Column('status', sa.Text(), nullable=False),
        sa.Column('params', JSONB(), nullable=False),
        sa.Column('progress', JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False, server_default='false'),
        sa.Column('created_by', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('jobs_tenant_kind_created_idx', 'jobs', ['tenant', 'kind', sa.text('created_at DESC')])


def downgrade() -> None:
    op.drop_table('jobs')
    op.drop_table('code_chunks')
    op.drop_table('code_files')
    op.drop_table('memories')
    op.drop_column('tasks', 'recall_k')
