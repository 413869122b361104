"""remediable deliveries, installation identity, lines in commit order, audit targets,
stack traces

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 05:00:00.000000

- `installation`: one row, this database's random identity. Message nonces combine it with
  the outbox row id, so a new database (whose ids start again) never repeats a nonce that
  Discord still de-duplicates.
- Commit order of log-channel lines: a BEFORE INSERT trigger takes the row's lane lock (a
  transaction-scoped advisory lock) before the row takes its id, so the transactions that
  write one channel's lane take their ids in the order they commit, and a worker, which
  delivers a lane in id order, never posts a line before one committed earlier.
- `outbox.cause` / `discord_code` and `outbox_attempts.discord_code` / `outcome`: why a
  delivery failed, in a form staff can act on; `delivery_status` learns `skipped` (a role
  delivery retried after the member's state moved on).
- `remediation_actions` learns what it is about (`target_kind`: a dead letter or a
  delivery, and `target_id`); its status columns become text (a delivery's statuses are not
  a dead letter's).
- `dead_letters.stack_trace`: the failure's redacted, bounded stack trace.
"""
import secrets
import string
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IDENTITY_ALPHABET = string.digits + string.ascii_lowercase

# Advisory lock key space (the two-int form, apart from the migrations' one-bigint lock):
# class 7301 = an outbox lane. A mirror row's id is taken again here, after the lock (the
# column default's id, taken before it, is left unused), which is held until commit: the
# next writer of the lane takes a larger id only after this one committed. Role lanes are
# ordered by the member row lock their writers hold already: their rows skip the trigger.
LANE_LOCK_CLASS = 7301
POSITION_FUNCTION = f"""
CREATE FUNCTION outbox_take_position() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
  PERFORM pg_advisory_xact_lock({LANE_LOCK_CLASS}, hashtext(NEW.lane));
  NEW.id := nextval(pg_get_serial_sequence('outbox', 'id'));
  RETURN NEW;
END
$fn$
"""


def new_identity() -> str:
    return "".join(secrets.choice(IDENTITY_ALPHABET) for _ in range(6))


def upgrade() -> None:
    op.create_table(
        'installation',
        sa.Column('id', sa.SmallInteger(), server_default=sa.text('1'), nullable=False),
        sa.Column('identity', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.CheckConstraint('id = 1', name=op.f('ck_installation_single_row')),
        sa.CheckConstraint("identity ~ '^[0-9a-z]{6}$'", name=op.f('ck_installation_identity')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_installation')))
    op.execute(sa.text("INSERT INTO installation (id, identity) VALUES (1, :identity)")
               .bindparams(identity=new_identity()))

    op.execute("ALTER TYPE delivery_status ADD VALUE IF NOT EXISTS 'skipped'")
    op.add_column('outbox', sa.Column('cause', sa.Text(), nullable=True))
    op.add_column('outbox', sa.Column('discord_code', sa.Integer(), nullable=True))
    op.execute(POSITION_FUNCTION)
    op.execute("CREATE TRIGGER outbox_take_position BEFORE INSERT ON outbox FOR EACH ROW "
               "WHEN (NEW.kind = 'mirror') EXECUTE FUNCTION outbox_take_position()")
    op.drop_index('ix_outbox_guild_status', table_name='outbox')
    op.execute("CREATE INDEX ix_outbox_guild_status ON outbox (guild_id, status, id DESC)")
    op.execute("CREATE INDEX ix_outbox_guild_id ON outbox (guild_id, id DESC)")
    op.add_column('outbox_attempts', sa.Column('discord_code', sa.Integer(), nullable=True))
    op.add_column('outbox_attempts', sa.Column('outcome', sa.Text(), nullable=True))

    op.add_column('remediation_actions',
                  sa.Column('target_kind', sa.Text(), server_default='dead_letter',
                            nullable=False))
    op.add_column('remediation_actions', sa.Column('target_id', sa.BigInteger(), nullable=True))
    op.execute("UPDATE remediation_actions SET target_id = dead_letter_id")
    op.alter_column('remediation_actions', 'target_id', nullable=False)
    op.alter_column('remediation_actions', 'dead_letter_id', nullable=True)
    op.create_check_constraint('target_kind', 'remediation_actions',
                               "target_kind IN ('dead_letter', 'delivery')")
    for column in ('status_before', 'status_after'):
        op.execute(f"ALTER TABLE remediation_actions ALTER COLUMN {column} TYPE text "
                   f"USING {column}::text")
    op.execute("CREATE INDEX ix_remediation_actions_target ON remediation_actions "
               "(guild_id, target_kind, target_id, id DESC)")
    op.execute("CREATE INDEX ix_remediation_actions_actor ON remediation_actions "
               "(guild_id, actor_id, id DESC)")
    op.execute("CREATE INDEX ix_remediation_actions_guild ON remediation_actions "
               "(guild_id, id DESC)")

    op.add_column('dead_letters', sa.Column('stack_trace', sa.Text(), nullable=True))
    op.create_check_constraint('stack_trace_length', 'dead_letters',
                               "char_length(stack_trace) <= 8192")


def downgrade() -> None:
    op.drop_constraint(op.f('ck_dead_letters_stack_trace_length'), 'dead_letters')
    op.drop_column('dead_letters', 'stack_trace')
    for name in ('ix_remediation_actions_guild', 'ix_remediation_actions_actor',
                 'ix_remediation_actions_target'):
        op.drop_index(name, table_name='remediation_actions')
    op.execute("DELETE FROM remediation_actions WHERE target_kind <> 'dead_letter'")
    for column in ('status_before', 'status_after'):
        op.execute(f"ALTER TABLE remediation_actions ALTER COLUMN {column} TYPE "
                   f"dead_letter_status USING {column}::dead_letter_status")
    op.drop_constraint(op.f('ck_remediation_actions_target_kind'), 'remediation_actions')
    op.alter_column('remediation_actions', 'dead_letter_id', nullable=False)
    op.drop_column('remediation_actions', 'target_id')
    op.drop_column('remediation_actions', 'target_kind')
    op.drop_column('outbox_attempts', 'outcome')
    op.drop_column('outbox_attempts', 'discord_code')
    op.drop_index('ix_outbox_guild_id', table_name='outbox')
    op.drop_index('ix_outbox_guild_status', table_name='outbox')
    op.create_index('ix_outbox_guild_status', 'outbox', ['guild_id', 'status'], unique=False)
    op.execute("DROP TRIGGER outbox_take_position ON outbox")
    op.execute("DROP FUNCTION outbox_take_position()")
    op.drop_column('outbox', 'discord_code')
    op.drop_column('outbox', 'cause')
    op.execute("DELETE FROM outbox WHERE status = 'skipped'")
    # An enum value cannot be dropped; `skipped` stays, unused.
    op.drop_table('installation')
