"""PostgreSQL persistence (SQLAlchemy 2 async + asyncpg)."""
