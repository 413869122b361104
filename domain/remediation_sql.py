"""The SQL of remediation: reading entries and counts, claiming, and writing outcomes.

An outcome is one statement (hence one transaction): the status compare-and-set, its audit
row and its mirror row, as CTEs.
"""

from __future__ import annotations

from sqlalchemy import text

from domain.deadletters import DEAD_LETTER_COLUMNS
from domain.mirror import mirror_cte
from domain.persistence.database import DriverStatement

COLS = ", ".join(DEAD_LETTER_COLUMNS)

# Statements built once: text() parses its bind parameters each time it is constructed.
GET = text(f"SELECT {COLS} FROM dead_letters WHERE id = :id AND guild_id = :g")  # noqa: S608
GET_FOR_UPDATE = text(
    f"SELECT {COLS} FROM dead_letters WHERE id = :id AND guild_id = :g FOR UPDATE")  # noqa: S608

CLAIM = text(
    f"""UPDATE dead_letters SET status = 'retrying', version = version + 1, updated_at = now()
        WHERE id = :id AND guild_id = :g
          AND (status = 'open' OR (status = 'retrying'
               AND updated_at < now() - make_interval(secs => :stale)))
        RETURNING {COLS}""")  # noqa: S608

CLAIM_SOME = text(
    f"""UPDATE dead_letters SET status = 'retrying', version = version + 1, updated_at = now()
        WHERE id = ANY(CAST(:ids AS bigint[])) AND guild_id = :g
          AND (status = 'open' OR (status = 'retrying'
               AND updated_at < now() - make_interval(secs => :stale)))
        RETURNING {COLS}""")  # noqa: S608

# Only claims still as this caller left them (same version) go back to open.
RELEASE = text(
    """UPDATE dead_letters AS d SET status = 'open', version = d.version + 1,
              updated_at = now()
       FROM unnest(CAST(:ids AS bigint[]), CAST(:versions AS int[])) AS c(id, version)
       WHERE d.id = c.id AND d.guild_id = :g AND d.version = c.version
         AND d.status = 'retrying'""")

WRITE_OUTCOME = text(
    f"""WITH upd AS (
          UPDATE dead_letters SET
             status = CAST(:status AS dead_letter_status),
             version = version + 1, updated_at = now(),
             remediation_count = remediation_count + CASE WHEN :count_it THEN 1 ELSE 0 END,
             last_remediated_at = now(),
             resolved_by = CASE WHEN :resolved THEN CAST(:actor AS bigint) ELSE NULL END,
             resolution_note = CASE WHEN :resolved THEN CAST(:note AS text) ELSE NULL END,
             error_type = CASE WHEN :failed THEN CAST(:error_type AS text) ELSE error_type END,
             error_message = CASE WHEN :failed THEN CAST(:error_message AS text)
                                  ELSE error_message END
          WHERE id = :id AND guild_id = :g AND version = :version
          RETURNING {COLS}
        ),
        audit AS (
          INSERT INTO remediation_actions (guild_id, dead_letter_id, actor_id, source, action,
                 outcome, status_before, status_after, note, error_message, correlation_id)
          SELECT :g, :id, :actor, CAST(:source AS transition_source), :action, :outcome,
                 CAST(:before AS dead_letter_status), CAST(:status AS dead_letter_status),
                 :note, :error_message, :corr
          FROM upd
        ),{mirror_cte("upd")}
        SELECT * FROM upd""")  # noqa: S608

DRIVER_CLAIM = DriverStatement.of(CLAIM)
DRIVER_CLAIM_SOME = DriverStatement.of(CLAIM_SOME)
DRIVER_RELEASE = DriverStatement.of(RELEASE)
DRIVER_WRITE_OUTCOME = DriverStatement.of(WRITE_OUTCOME)

# Counts of dead_letters by (signature, status) are sums of dead_letter_counts over the
# writer slots (see domain.persistence.tables.DeadLetterCount); a sum of 0 is a key whose
# entries are gone (kept, not shown). Ranked by open (open + retrying) entries, then all.
STATS_BY_SIGNATURE_AND_STATUS = text(
    """SELECT signature, status::text AS status, n,
              coalesce(sum(n) FILTER (WHERE status IN ('open', 'retrying')) OVER bysig, 0)
                AS open,
              sum(n) OVER bysig AS total
       FROM (SELECT signature, status, sum(n) AS n FROM dead_letter_counts
             WHERE guild_id = :g GROUP BY signature, status HAVING sum(n) <> 0) AS per
       WINDOW bysig AS (PARTITION BY signature)
       ORDER BY open DESC, total DESC, signature""")

OPEN_SIGNATURES = text(
    """SELECT signature, sum(n) AS open FROM dead_letter_counts
       WHERE guild_id = :g AND status = 'open' AND signature LIKE :prefix
       GROUP BY signature HAVING sum(n) <> 0
       ORDER BY sum(n) DESC, signature LIMIT :limit""")
