"""Triggers: what a transition creates from the opportunity's data, inside its transaction.

Why inside the transaction: a trigger that fails rolls back the whole transition (step,
stage, attributes, history, links), so a deal never stands at "Won" without its invoice.

A trigger is a function taking a :class:`TriggerContext`. ``ctx.opportunity`` is a plain
dict of the opportunity after the transition's attributes were set (id, name, amount,
close_date, account, account_id, owner_email, contact_email (the attribute given, else the
deal's contact), custom attributes...);
``ctx.add_link(kind, reference, data)`` records a linked record in ``links``;
``ctx.connection`` is the transaction's SQLAlchemy connection for anything else (use
parameterised statements). Raise to refuse: everything is rolled back.

Register your own by name, then use the name in the workflow file::

    from oppkit.workflow import register_trigger

    @register_trigger("open_support_case")
    def open_support_case(ctx):
        ctx.add_link("case", f"CASE-{ctx.opportunity['id']}", {"account": ctx.opportunity["account"]})

A name written as ``package.module:function`` is imported when the transition runs.
"""

from __future__ import annotations

import importlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ..db.schema import accounts, links, opportunities, opportunity_people, people
from ..identity import normalise_email

Trigger = Callable[["TriggerContext"], None]
_TRIGGERS: dict[str, Trigger] = {}


@dataclass
class TriggerContext:
    """What a trigger sees: the opportunity, the transaction, and a way to add links."""

    connection: Connection
    opportunity: dict[str, Any]
    transition: str
    by_id: int | None = None
    created: list[dict[str, Any]] = field(default_factory=list)

    def add_link(self, kind: str, reference: str, data: dict[str, Any] | None = None) -> None:
        """Record a linked record (an invoice number, a registration id...) on the deal."""
        row = {
            "opportunity_id": self.opportunity["id"],
            "kind": kind,
            "reference": str(reference),
            "data": json_safe(data),
            "transition": self.transition,
            "created_at": datetime.now(UTC),
        }
        self.connection.execute(insert(links).values(**row))
        self.created.append(row)


def json_safe(value: Any) -> Any:
    """Dates and other non-JSON values as text, so they fit a JSON column."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def register_trigger(name: str) -> Callable[[Trigger], Trigger]:
    """Decorator: make ``fn`` available to workflow files as trigger ``name``.

    >>> @register_trigger("notify_erp")
    ... def notify_erp(ctx): ctx.add_link("erp_order", "SO-1")
    """

    def decorate(fn: Trigger) -> Trigger:
        _TRIGGERS[name] = fn
        return fn

    return decorate


def trigger_known(name: str) -> bool:
    """Whether ``name`` is registered, or looks like an importable ``module:function``."""
    return name in _TRIGGERS or (":" in name and all(name.split(":", 1)))


def get_trigger(name: str) -> Trigger:
    if name in _TRIGGERS:
        return _TRIGGERS[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise LookupError(f"cannot import trigger {name!r}: {exc}") from exc
    raise LookupError(f"unknown trigger {name!r}")


def _need(ctx: TriggerContext, *names: str) -> None:
    missing = [n for n in names if ctx.opportunity.get(n) in (None, "")]
    if missing:
        raise ValueError(f"needs {', '.join(missing)} on the opportunity")


# --- built-ins ------------------------------------------------------------------------


@register_trigger("create_account")
def create_account(ctx: TriggerContext) -> None:
    """Give the deal an account: the one it has, else a new one named ``account_name``."""
    opp = ctx.opportunity
    if opp.get("account_id") is None:
        name = opp.get("account_name") or opp["name"]
        account_id = ctx.connection.execute(
            insert(accounts)
            .values(name=name, source="oppkit", source_id=f"account:{uuid.uuid4().hex}")
            .returning(accounts.c.id)
        ).scalar_one()
        ctx.connection.execute(
            update(opportunities)
            .where(opportunities.c.id == opp["id"])
            .values(account_id=account_id)
        )
        opp.update(account_id=account_id, account=name)
    ctx.add_link("account", str(opp["account_id"]), {"name": opp.get("account")})


@register_trigger("create_contact")
def create_contact(ctx: TriggerContext) -> None:
    """Make ``contact_email`` (and ``contact_name``) a person and a member of the deal.

    The email given as an attribute (on the transition, or set on the deal before) wins;
    the deal's existing external contact is the fallback. A new deal has no members, so
    ``transition(deal, ..., contact_email="jo@acme.example")`` is how it gets its first.
    """
    _need(ctx, "contact_email")
    opp, conn = ctx.opportunity, ctx.connection
    email = normalise_email(opp["contact_email"])
    if not email:
        raise ValueError(f"contact_email {opp['contact_email']!r} is not an email address")
    person_id = conn.scalar(select(people.c.id).where(people.c.email == email))
    if person_id is None:
        person_id = conn.execute(
            insert(people)
            .values(
                email=email,
                name=opp.get("contact_name"),
                account_id=opp.get("account_id"),
                source="oppkit",
                source_id=f"person:{email}",
            )  # fmt: skip
            .returning(people.c.id)
        ).scalar_one()
    member = conn.scalar(
        select(opportunity_people.c.id).where(
            opportunity_people.c.opportunity_id == opp["id"],
            opportunity_people.c.person_id == person_id,
        )
    )
    if member is None:
        conn.execute(
            insert(opportunity_people).values(
                opportunity_id=opp["id"],
                person_id=person_id,
                kind="member",
                role="contact",
                source="oppkit",
                source_id=f"member:{uuid.uuid4().hex}",
            )  # fmt: skip
        )
    ctx.add_link("contact", email, {"person_id": person_id, "name": opp.get("contact_name")})


@register_trigger("create_invoice")
def create_invoice(ctx: TriggerContext) -> None:
    """An invoice for the deal's amount, due on its close date."""
    _need(ctx, "amount")
    opp = ctx.opportunity
    number = f"INV-{opp['id']:05d}-{secrets.token_hex(3).upper()}"
    ctx.add_link(
        "invoice", number,
        {"amount": opp["amount"], "currency": opp.get("currency"), "account": opp.get("account"),
         "due": opp.get("close_date")},
    )  # fmt: skip


@register_trigger("create_registration")
def create_registration(ctx: TriggerContext) -> None:
    """A product registration for the account (who bought, which deal)."""
    _need(ctx, "account_id")
    opp = ctx.opportunity
    ctx.add_link(
        "registration", f"REG-{opp['account_id']:05d}-{opp['id']:05d}",
        {"account": opp.get("account"), "contact_email": opp.get("contact_email")},
    )  # fmt: skip


@register_trigger("issue_training_token")
def issue_training_token(ctx: TriggerContext) -> None:
    """A one-time token for the customer's training portal (``seats`` attribute, default 1)."""
    opp = ctx.opportunity
    seats = int(opp.get("seats") or 1)
    ctx.add_link(
        "training_token", secrets.token_urlsafe(16),
        {"seats": seats, "account": opp.get("account"), "contact_email": opp.get("contact_email")},
    )  # fmt: skip
