"""Schema upgrades: `upgrade(url)` for the entrypoints, tests and bench.

The alembic run and its advisory lock live with the rest of the SQL, in
domain/persistence/migrate.py; this module keeps the name its importers use.
"""

from __future__ import annotations

from domain.persistence.migrate import MIGRATION_LOCK_KEY, alembic_config, upgrade

__all__ = ["MIGRATION_LOCK_KEY", "alembic_config", "upgrade"]
