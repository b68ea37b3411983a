"""Database: schema, engine set-up and Alembic migrations."""

from .engine import connect_engine, migrate

__all__ = ["connect_engine", "migrate"]
