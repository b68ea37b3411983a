"""A team on PostgreSQL: each person connects as their own database role.

Why: ``oppkit.connect(user=...)`` is a name the caller states, not a login; on one
person's SQLite file that is enough. On a team's PostgreSQL, :func:`grant` ties a login
role to a person, and the row-level security policies (migration 0008) show that role
only the private deals its person owns or is a member of -- whatever the notebook
states, and whether it reads through oppkit or with plain SQL. A Kit connected as such a
role is that person; naming someone else is refused. The agents keep connecting as the
tables' owner, which sees everything.

Example::

    from oppkit.team import grant
    grant(engine, "ava", "ava.patel@northwind.example", create=True)
    kit = oppkit.connect("postgresql://ava@db.example/oppkit")   # kit.user is Ava
"""

from __future__ import annotations

import re

from sqlalchemy import Engine, delete, text

from .config import load_settings
from .db.engine import write_transaction
from .db.schema import database_users
from .db.upsert import upsert
from .errors import ConfigError
from .identity import DomainRules, Resolver, normalise_email

__all__ = ["grant", "revoke"]

_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _role(engine: Engine, role: str) -> str:
    if engine.dialect.name != "postgresql":
        raise ConfigError("database roles are for a team's PostgreSQL, not SQLite")
    if not _ROLE.match(role):
        raise ConfigError(f"not a role name oppkit manages: {role!r} (a-z, 0-9, _)")
    return engine.dialect.identifier_preparer.quote(role)


def grant(engine: Engine, role: str, person_email: str, *, create: bool = False) -> None:
    """Let login role ``role`` read and write oppkit's tables as ``person_email``.

    ``create=True`` creates the role (LOGIN, no password: set one, or use the server's
    authentication). The role may not change who is who (``database_users``).

    >>> grant(engine, "ava", "ava.patel@northwind.example", create=True)
    """
    quoted = _role(engine, role)
    email = normalise_email(person_email)
    if not email:
        raise ConfigError(f"not an email address: {person_email!r}")
    rules = DomainRules(load_settings().internal_domains)
    with write_transaction(engine) as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
        if not exists:
            if not create:
                raise ConfigError(f"no database role {role!r} (create it, or pass --create)")
            conn.execute(text(f"CREATE ROLE {quoted} LOGIN"))
        for statement in (
            f"GRANT USAGE ON SCHEMA public TO {quoted}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
            f"REVOKE INSERT, UPDATE, DELETE ON database_users, alembic_version FROM {quoted}",
        ):
            conn.execute(text(statement))
        person_id = Resolver(rules).people_for_emails(conn, {email: None})[email].id
        upsert(conn, database_users, [{"role_name": role, "person_id": person_id}],
               ["role_name"], ["person_id"])  # fmt: skip


def revoke(engine: Engine, role: str) -> None:
    """Take away a role's access to oppkit's tables and its person (the role stays)."""
    quoted = _role(engine, role)
    with write_transaction(engine) as conn:
        conn.execute(delete(database_users).where(database_users.c.role_name == role))
        conn.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {quoted}"))
