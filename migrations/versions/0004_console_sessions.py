"""the web console's sessions, and the `console` source

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:00:00.000000

- `transition_source` learns `console`: remediation done from the staff web console (the
  lifecycle spec's list of sources).
- `console_sessions`: one row per logged-in browser. The cookie holds a random value; the row
  is keyed by its SHA-256, so the table never holds what a browser presents. Each session has
  its own CSRF token and an expiry; logout deletes the row.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TYPE transition_source ADD VALUE IF NOT EXISTS 'console'")
    op.create_table(
        'console_sessions',
        sa.Column('id_hash', sa.Text(), nullable=False),
        sa.Column('user_id', sa.BigInteger(), nullable=False),
        sa.Column('username', sa.Text(), nullable=False),
        sa.Column('csrf_token', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id_hash ~ '^[0-9a-f]{64}$'", name=op.f('ck_console_sessions_id_hash')),
        sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_console_sessions')))
    op.create_index('ix_console_sessions_expires', 'console_sessions', ['expires_at'])
    op.create_index('ix_console_sessions_user', 'console_sessions', ['user_id'])


def downgrade() -> None:
    op.drop_index('ix_console_sessions_user', table_name='console_sessions')
    op.drop_index('ix_console_sessions_expires', table_name='console_sessions')
    op.drop_table('console_sessions')
    # An enum value cannot be dropped; `console` stays, unused.
