"""the console overview's history: daily and hourly snapshots

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 07:00:00.000000

Retention erases closed dead letters and delivered outbox rows after RETENTION_DAYS; the
overview's charts keep their history in small tables the delivery worker fills:
- `daily_guild_stats`: per guild and day, new dead letters, resolved ones, open ones at the
  last snapshot of the day;
- `daily_signature_open`: per guild, day and signature, open entries at that snapshot;
- `hourly_transitions`: per guild, hour and source, transitions written (counted from the
  ledger by id, past a watermark, so each row is counted once).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'daily_guild_stats',
        sa.Column('guild_id', sa.BigInteger(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('new_entries', sa.Integer(), nullable=False),
        sa.Column('resolved_entries', sa.Integer(), nullable=False),
        sa.Column('open_entries', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('guild_id', 'day', name=op.f('pk_daily_guild_stats')))
    op.create_table(
        'daily_signature_open',
        sa.Column('guild_id', sa.BigInteger(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('signature', sa.Text(), nullable=False),
        sa.Column('open_entries', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('guild_id', 'day', 'signature',
                                name=op.f('pk_daily_signature_open')))
    op.create_table(
        'hourly_transitions',
        sa.Column('guild_id', sa.BigInteger(), nullable=False),
        sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source', sa.Text(), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('guild_id', 'hour', 'source',
                                name=op.f('pk_hourly_transitions')))
    op.create_table(
        'snapshot_watermarks',
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('last_id', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_snapshot_watermarks')))


def downgrade() -> None:
    for table in ('snapshot_watermarks', 'hourly_transitions', 'daily_signature_open',
                  'daily_guild_stats'):
        op.drop_table(table)
