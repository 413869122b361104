"""bulk jobs: a console "retry all matching" and its progress, in PostgreSQL

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:30:00.000000

The console starts a bulk retry as a row here; the process running it writes its progress
to the row, and any page (after a reload, through another API replica) reads it there.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'bulk_jobs',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('guild_id', sa.BigInteger(), nullable=False),
        sa.Column('actor_id', sa.BigInteger(), nullable=False),
        sa.Column('kind', sa.Text(), nullable=False),
        sa.Column('filters', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('force', sa.Boolean(), nullable=False),
        sa.Column('status', sa.Text(), server_default='running', nullable=False),
        sa.Column('total', sa.Integer(), server_default='0', nullable=False),
        sa.Column('done', sa.Integer(), server_default='0', nullable=False),
        sa.Column('resolved', sa.Integer(), server_default='0', nullable=False),
        sa.Column('failed', sa.Integer(), server_default='0', nullable=False),
        sa.Column('skipped', sa.Integer(), server_default='0', nullable=False),
        sa.Column('stale', sa.Integer(), server_default='0', nullable=False),
        sa.Column('remaining', sa.Integer(), server_default='0', nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'done', 'failed')",
                           name=op.f('ck_bulk_jobs_status')),
        sa.CheckConstraint("kind IN ('retry_all')", name=op.f('ck_bulk_jobs_kind')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_jobs')))
    op.execute("CREATE INDEX ix_bulk_jobs_guild ON bulk_jobs (guild_id, id DESC)")


def downgrade() -> None:
    op.drop_index('ix_bulk_jobs_guild', table_name='bulk_jobs')
    op.drop_table('bulk_jobs')
