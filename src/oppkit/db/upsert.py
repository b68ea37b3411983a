"""Dialect-aware bulk upserts: the one way synced rows reach the database.

SQLite and PostgreSQL both speak ``INSERT ... ON CONFLICT``; SQLAlchemy builds it per
dialect. Values are always bound parameters, never formatted into SQL.

Why not ``conn.execute(stmt, rows)``: for a batch of thousands of rows SQLAlchemy
rebuilds each row's parameters and runs each value's type processor through generic
machinery, which cost more than SQLite's own insert. Here a statement is compiled once
per (dialect, table, columns, conflict rule), together with its columns' bind
processors, Python-side defaults and string limits; each row then becomes one tuple
(or dict, for the ``pyformat`` drivers) handed to the driver's ``executemany`` through
``exec_driver_sql``, so errors still arrive as SQLAlchemy's ``DBAPIError``. The values
stored are those SQLAlchemy would store: the same processors convert them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Boolean, Connection, String, Table, and_, bindparam, case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from .ownership import kept

CHUNK = 512  # values per IN (...) of a lookup
ROWS_PER_CALL = 2000  # rows per executemany


@dataclass(frozen=True)
class _Prepared:
    """One compiled INSERT ... ON CONFLICT and how to turn a row into its parameters."""

    sql: str
    names: tuple[str, ...]  # parameters in the statement's order
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # position -> bind processor
    limits: tuple[tuple[int, int], ...]  # position -> maximum string length
    defaults: tuple[tuple[str, Callable[[], Any]], ...]  # columns the rows leave out
    # (the same value for every row of a call: processed once, not per row)
    positional: bool


def _default_of(column) -> Callable[[], Any] | None:  # noqa: ANN001
    """A Python-side INSERT default as a function of nothing (None: no such default)."""
    default = column.default
    if default is None or not (default.is_scalar or default.is_callable):
        return None
    if default.is_scalar:
        return lambda: default.arg
    return lambda: default.arg(None)  # SQLAlchemy wraps a plain function to take a context


@lru_cache(maxsize=512)
def _prepared(
    dialect: Dialect,
    table: Table,
    columns: tuple[str, ...],
    key: tuple[str, ...] | None,
    update: tuple[str, ...],
) -> _Prepared:
    """Compile the statement for rows with ``columns``; ``key=None``: skip any conflict."""
    stmt = postgresql.insert(table) if dialect.name == "postgresql" else sqlite.insert(table)
    if key is None:
        stmt = stmt.on_conflict_do_nothing()
    elif update:
        held, held_columns = kept(table.name) or (None, frozenset())
        stmt = stmt.on_conflict_do_update(
            index_elements=list(key),
            set_={
                c: case((held, table.c[c]), else_=stmt.excluded[c])
                if c in held_columns
                else stmt.excluded[c]
                for c in update
            },
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
    defaulted = {
        c.key: fn for c in table.columns if c.key not in columns and (fn := _default_of(c))
    }
    compiled = stmt.compile(dialect=dialect, column_keys=[*columns, *defaulted])
    params = compiled.construct_params(
        {name: None for name in (*columns, *defaulted)}, _check=False
    )
    positional = bool(dialect.positional)
    bound = list(compiled.positiontup) if positional else list(params)
    unknown = set(bound) - set(columns) - set(defaulted)
    if unknown:  # a bind this fast path does not fill (e.g. a SQL-expression default)
        raise ValueError(f"cannot bulk-write {table.name}: unbound {sorted(unknown)}")
    names = tuple(bound)
    processors, limits, defaults = [], [], []
    for position, name in enumerate(names):
        column = table.c[name]
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        if name in defaulted:
            defaults.append((name, _processed(defaulted[name], process)))
            continue
        if process is not None and not _driver_binds(dialect, column):
            processors.append((position, process))
        length = getattr(column.type, "length", None)
        if isinstance(column.type, String) and length:
            limits.append((position, length))
    return _Prepared(
        compiled.string, names, tuple(processors), tuple(limits), tuple(defaults), positional
    )


def _driver_binds(dialect: Dialect, column) -> bool:  # noqa: ANN001
    """sqlite3 stores a Python bool as the integer SQLAlchemy's processor would make."""
    return dialect.name == "sqlite" and isinstance(column.type, Boolean)


def _processed(make: Callable[[], Any], process: Callable[[Any], Any] | None) -> Callable[[], Any]:
    return make if process is None else (lambda: process(make()))


def _execute(conn: Connection, prepared: _Prepared, rows: Sequence[dict[str, Any]]) -> None:
    """Turn ``rows`` into driver parameters and run ``executemany`` in slices.

    Column by column (one ``map`` per processor, one ``zip`` for the tuples): per value
    that is a C-level step instead of a turn of a Python loop.
    """
    defaults = {name: make() for name, make in prepared.defaults}  # one "now" per call
    columns = [
        [defaults[name]] * len(rows) if name in defaults else [row[name] for row in rows]
        for name in prepared.names
    ]
    for position, length in prepared.limits:  # one long value never fails a batch
        column = columns[position]
        if _longest(column) > length:
            columns[position] = [
                v[:length] if v.__class__ is str and len(v) > length else v for v in column
            ]
    for position, process in prepared.processors:
        columns[position] = list(map(process, columns[position]))
    if prepared.positional:
        params: list[Any] = list(zip(*columns, strict=True))
    else:
        params = [
            dict(zip(prepared.names, values, strict=True)) for values in zip(*columns, strict=True)
        ]
    for start in range(0, len(params), ROWS_PER_CALL):
        conn.exec_driver_sql(prepared.sql, params[start : start + ROWS_PER_CALL])


def _longest(column: list[Any]) -> int:
    try:
        return max(map(len, filter(None, column)), default=0)
    except TypeError:  # not only strings: measure the strings
        return max((len(v) for v in column if isinstance(v, str)), default=0)


def _write(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: tuple[str, ...] | None,
    update: tuple[str, ...],
) -> None:
    """Rows grouped by the columns they carry, each group through its prepared statement."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    for columns, group in groups.items():
        _execute(conn, _prepared(conn.dialect, table, columns, key, update), group)


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    update: Iterable[str] | None = None,
) -> None:
    """Insert ``rows``; on a conflict on ``key`` update the ``update`` columns (or skip).

    Columns a person settled stay (:func:`oppkit.db.ownership.kept`: an activity whose
    deal a person chose keeps its deal whatever a re-sync reports).

    Strings longer than their column are cut to fit, so one long value never fails a
    batch. Rows are sorted by key so that concurrent writers lock rows in the same order.

    Example::

        upsert(conn, stages, [{"name": "Won", "status": "won"}], ["name"], ["status"])
    """
    if not rows:
        return
    key = tuple(key)
    try:
        ordered = sorted(rows, key=itemgetter(*key) if len(key) > 1 else itemgetter(key[0]))
    except TypeError:  # e.g. None beside text in a key column
        ordered = sorted(rows, key=lambda r: tuple(str(r[k]) for k in key))
    _write(conn, table, ordered, key, tuple(update or ()))


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, silently skipping any that conflict with any unique constraint."""
    if rows:
        _write(conn, table, rows, None, ())


@lru_cache(maxsize=512)
def _select_in(
    dialect: Dialect, table: Table, keys: tuple[str, ...], wanted: tuple[str, ...], size: int
) -> tuple[str, tuple[str, ...] | None, tuple[Callable[[Any], Any] | None, ...]]:
    """``SELECT keys, wanted WHERE leading keys = ? AND last key IN (size values)``.

    Compiled once per shape (``size`` is a power of two; callers pad with a repeated
    value) with the result processors of the selected columns, so a lookup costs the
    query and not SQLAlchemy's per-call compilation of an expanding IN.
    """
    fixed = [table.c[k] == bindparam(f"k{i}") for i, k in enumerate(keys[:-1])]
    values = [bindparam(f"v{i}") for i in range(size)]
    stmt = select(*(table.c[k] for k in keys), *(table.c[c] for c in wanted)).where(
        and_(*fixed, table.c[keys[-1]].in_(values))
    )
    compiled = stmt.compile(dialect=dialect)
    order = tuple(compiled.positiontup) if dialect.positional else None
    processors = tuple(
        table.c[c].type.dialect_impl(dialect).result_processor(dialect, None)
        for c in (*keys, *wanted)
    )
    return compiled.string, order, processors


def lookup(
    conn: Connection, table: Table, key: str | Sequence[str], values: Iterable[Any], *columns: str
) -> dict[Any, Any]:
    """Map key value(s) -> id (or a tuple of ``columns``) for existing rows.

    A composite key is queried as equality on its leading columns plus IN on the last
    (``source = ? AND source_id IN (...)``): that form uses the unique index on SQLite,
    where a row-value IN scans it.

    Example::

        lookup(conn, activities, ("source", "source_id"), [("salesforce", "00T1")])
    """
    keys = (key,) if isinstance(key, str) else tuple(key)
    wanted = columns or ("id",)
    groups: dict[tuple, list] = {}
    for value in dict.fromkeys(values):
        prefix, last = ((), value) if len(keys) == 1 else (tuple(value[:-1]), value[-1])
        groups.setdefault(prefix, []).append(last)
    found: dict[Any, Any] = {}
    for prefix, lasts in groups.items():
        for start in range(0, len(lasts), CHUNK):
            part = lasts[start : start + CHUNK]
            size = 1 << (len(part) - 1).bit_length()
            sql, order, processors = _select_in(conn.dialect, table, keys, wanted, size)
            named = {f"k{i}": v for i, v in enumerate(prefix)}
            named.update({f"v{i}": part[min(i, len(part) - 1)] for i in range(size)})
            params = tuple(named[n] for n in order) if order is not None else named
            plain = not any(processors)
            for raw in conn.exec_driver_sql(sql, params).fetchall():
                row = (
                    raw
                    if plain
                    else [p(v) if p else v for p, v in zip(processors, raw, strict=True)]
                )
                k = row[0] if len(keys) == 1 else tuple(row[: len(keys)])
                rest = row[len(keys) :]
                found[k] = rest[0] if len(rest) == 1 else tuple(rest)
    return found
