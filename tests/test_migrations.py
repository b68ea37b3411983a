"""Schema migrations keep existing data when a database is upgraded."""

from __future__ import annotations

from alembic import command
from sqlalchemy import insert, inspect, select

from oppkit.db.engine import alembic_config, create_oppkit_engine, migrate, write_transaction
from oppkit.db.schema import accounts


def test_upgrade_from_the_first_schema_keeps_rows(sqlite_url: str):
    engine = create_oppkit_engine(sqlite_url)
    with write_transaction(engine) as conn:
        config = alembic_config(engine)
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    with write_transaction(engine) as conn:
        conn.execute(
            insert(accounts).values(
                name="Acme", domain="acme.example", source="mail", source_id="acme.example"
            )
        )
    assert "sync_locks" not in inspect(engine).get_table_names()

    assert migrate(engine) == "0005"
    assert "sync_locks" in inspect(engine).get_table_names()
    assert "attributes" in {c["name"] for c in inspect(engine).get_columns("opportunities")}
    with engine.connect() as conn:
        assert conn.execute(select(accounts.c.name, accounts.c.domain)).all() == [
            ("Acme", "acme.example")
        ]
