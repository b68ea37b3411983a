"""Dialect-aware bulk upserts: the one way synced rows reach the database.

SQLite and PostgreSQL both speak ``INSERT ... ON CONFLICT``; SQLAlchemy exposes it per
dialect. Values are always bound parameters, never formatted into SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, String, Table, and_, select
from sqlalchemy.dialects import postgresql, sqlite

CHUNK = 500


def _insert(conn: Connection, table: Table):  # noqa: ANN202
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@lru_cache(maxsize=256)
def _string_limits(table: Table) -> dict[str, int]:
    """Column name -> maximum length, for the string columns that have one."""
    return {
        c.name: c.type.length
        for c in table.columns
        if isinstance(c.type, String) and getattr(c.type, "length", None)
    }


def fit_to_columns(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """Truncate strings to their column's length so one long value never fails a batch."""
    for name, length in _string_limits(table).items():
        value = row.get(name)
        if isinstance(value, str) and len(value) > length:
            row[name] = value[:length]
    return row


@lru_cache(maxsize=256)
def _upsert_statement(dialect: str, table: Table, key: tuple[str, ...], update: tuple[str, ...]):  # noqa: ANN202
    """One statement per (table, key, update): building ``excluded`` is costly, reuse it."""
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    if update:
        return stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: stmt.excluded[c] for c in update}
        )
    return stmt.on_conflict_do_nothing(index_elements=list(key))


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    update: Iterable[str] | None = None,
) -> None:
    """Insert ``rows``; on a conflict on ``key`` update the ``update`` columns (or skip).

    Rows are sorted by key so that concurrent writers lock rows in the same order.
    """
    if not rows:
        return
    rows = sorted(
        (fit_to_columns(table, dict(r)) for r in rows), key=lambda r: tuple(str(r[k]) for k in key)
    )
    stmt = _upsert_statement(conn.dialect.name, table, tuple(key), tuple(update or ()))
    for start in range(0, len(rows), CHUNK):
        conn.execute(stmt, rows[start : start + CHUNK])


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, silently skipping any that conflict with any unique constraint."""
    if not rows:
        return
    rows = [fit_to_columns(table, dict(r)) for r in rows]
    stmt = _insert(conn, table).on_conflict_do_nothing()
    for start in range(0, len(rows), CHUNK):
        conn.execute(stmt, rows[start : start + CHUNK])


def lookup(
    conn: Connection, table: Table, key: str | Sequence[str], values: Iterable[Any], *columns: str
) -> dict[Any, Any]:
    """Map key value(s) -> id (or a tuple of ``columns``) for existing rows.

    A composite key is queried as equality on its leading columns plus IN on the last
    (``source = ? AND source_id IN (...)``): that form uses the unique index on SQLite,
    where a row-value IN scans it.
    """
    values = list(dict.fromkeys(values))
    found: dict[Any, Any] = {}
    keys = [key] if isinstance(key, str) else list(key)
    wanted = [table.c.id] if not columns else [table.c[c] for c in columns]
    groups: dict[tuple, list] = {}
    for value in values:
        prefix, last = ((), value) if len(keys) == 1 else (tuple(value[:-1]), value[-1])
        groups.setdefault(prefix, []).append(last)
    for prefix, lasts in groups.items():
        fixed = [table.c[k] == v for k, v in zip(keys[:-1], prefix, strict=True)]
        for start in range(0, len(lasts), CHUNK):
            cond = and_(*fixed, table.c[keys[-1]].in_(lasts[start : start + CHUNK]))
            for row in conn.execute(select(*(table.c[k] for k in keys), *wanted).where(cond)):
                k = row[0] if len(keys) == 1 else tuple(row[: len(keys)])
                rest = row[len(keys) :]
                found[k] = rest[0] if len(rest) == 1 else tuple(rest)
    return found
