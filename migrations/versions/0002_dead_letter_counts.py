"""dead letter counts kept by triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:00:00.000000

`dead_letter_counts` holds how many entries of `dead_letters` each (guild, signature,
status) has, so `RemediationService.stats()` reads a few hundred counter rows instead of
counting every entry of a guild. Statement-level AFTER triggers on `dead_letters` keep it
exact in the writer's own transaction, whatever the writer (the recorder, the remediation
statements, retention, a bulk load, psql). Each backend adds its deltas to its own `slot`
(pg_backend_pid() % 16), so concurrent writers of one signature seldom wait on one counter
row; a count is the sum over the slots, and one slot alone may be negative.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One function for the four triggers. The deltas of a statement are summed per key before
# they are written (an UPDATE that leaves the key unchanged writes nothing), and written in
# key order, so two statements upserting the same rows lock them in the same order. A
# backend always writes to the same one of 16 slots.
FUNCTION = """
CREATE FUNCTION dead_letter_counts_apply() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  my_slot smallint := pg_backend_pid() % 16;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO dead_letter_counts AS c (guild_id, signature, status, slot, n)
    SELECT guild_id, signature, status, my_slot, count(*) FROM new_rows
    GROUP BY guild_id, signature, status
    ORDER BY guild_id, signature, status
    ON CONFLICT (guild_id, signature, status, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO dead_letter_counts AS c (guild_id, signature, status, slot, n)
    SELECT guild_id, signature, status, my_slot, -count(*) FROM old_rows
    GROUP BY guild_id, signature, status
    ORDER BY guild_id, signature, status
    ON CONFLICT (guild_id, signature, status, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO dead_letter_counts AS c (guild_id, signature, status, slot, n)
    SELECT guild_id, signature, status, my_slot, sum(delta) FROM (
        SELECT guild_id, signature, status, -1 AS delta FROM old_rows
        UNION ALL
        SELECT guild_id, signature, status, 1 AS delta FROM new_rows) AS deltas
    GROUP BY guild_id, signature, status
    HAVING sum(delta) <> 0
    ORDER BY guild_id, signature, status
    ON CONFLICT (guild_id, signature, status, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
  ELSIF TG_OP = 'TRUNCATE' THEN
    DELETE FROM dead_letter_counts;
  END IF;
  RETURN NULL;
END
$fn$
"""

# Transition tables need one trigger per event (and no column list).
TRIGGERS = {
    "dead_letter_counts_insert": "AFTER INSERT ON dead_letters "
                                 "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
    "dead_letter_counts_update": "AFTER UPDATE ON dead_letters "
                                 "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
                                 "FOR EACH STATEMENT",
    "dead_letter_counts_delete": "AFTER DELETE ON dead_letters "
                                 "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT",
    "dead_letter_counts_truncate": "AFTER TRUNCATE ON dead_letters FOR EACH STATEMENT",
}


def upgrade() -> None:
    op.create_table('dead_letter_counts',
    sa.Column('guild_id', sa.BigInteger(), nullable=False),
    sa.Column('signature', sa.Text(), nullable=False),
    sa.Column('status', postgresql.ENUM('open', 'retrying', 'resolved', 'dismissed', name='dead_letter_status', create_type=False), nullable=False),
    sa.Column('slot', sa.SmallInteger(), nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('guild_id', 'signature', 'status', 'slot', name=op.f('pk_dead_letter_counts'))
    )
    op.execute(FUNCTION)
    # Writers wait (readers do not) until this transaction commits: no write can fall
    # between the backfill and the triggers.
    op.execute("LOCK TABLE dead_letters IN SHARE ROW EXCLUSIVE MODE")
    for name, spec in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {spec} EXECUTE FUNCTION dead_letter_counts_apply()")
    op.execute("""INSERT INTO dead_letter_counts (guild_id, signature, status, slot, n)
                  SELECT guild_id, signature, status, 0, count(*) FROM dead_letters
                  GROUP BY guild_id, signature, status""")


def downgrade() -> None:
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON dead_letters")
    op.execute("DROP FUNCTION dead_letter_counts_apply()")
    op.drop_table('dead_letter_counts')
