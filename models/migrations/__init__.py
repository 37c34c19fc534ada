"""Alembic migrations of tablebeat's schema (run them with :func:`models.migrate.upgrade`)."""
