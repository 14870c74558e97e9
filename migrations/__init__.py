"""Alembic migrations: the only way Sluiceway's schema is created or changed."""
