"""delivery timelines read each delivery's newest attempts: outbox_attempts indexed by
(outbox_id, id)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 08:00:00.000000

A log line refused for a permission is tried again every few minutes, so its attempts grow
for as long as the channel stays broken; the timelines (console, API, CLI, Discord) read the
newest few of each delivery. The attempt number starts again at 1 whenever a row is queued
again, so (outbox_id, attempt) cannot give them in order; (outbox_id, id) does, one index
range per delivery.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index('ix_outbox_attempts_outbox', table_name='outbox_attempts')
    op.create_index('ix_outbox_attempts_outbox', 'outbox_attempts', ['outbox_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_outbox_attempts_outbox', table_name='outbox_attempts')
    op.create_index('ix_outbox_attempts_outbox', 'outbox_attempts', ['outbox_id', 'attempt'])
