"""Leads in a notebook: read them, make them, accept them into the workflow.

Why: a lead is where a deal begins. ``kit.leads`` reads Salesforce Leads and leads made
in oppkit as a frame, and accepting a lead (seed 001's handling options) creates its
account, contact and deal in one transaction, the deal starting at the entry step of
the process of the lead's campaign (else the default process).

A Salesforce lead is converted in Salesforce (conversion is Salesforce's own action,
not a field oppkit could push): accepting one here is refused with that message, and
the next sync brings the account, contact and deal Salesforce made, linked from the lead.

Example::

    kit.leads(status="Open - Not Contacted")
    lead = kit.leads.create("Nora Lindqvist", email="nora@soylent.example",
                            company="Soylent Foods", campaign="Spring webinar")
    deal_id = kit.leads.accept(lead).opportunity_id
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, insert, select, update

from . import frames
from .config import load_settings
from .db.engine import write_transaction
from .db.schema import accounts, campaign_members, campaigns, leads, people
from .errors import OppkitError
from .identity import (
    DomainRules,
    Resolver,
    account_name_from_domain,
    domain_of,
    normalise_email,
)
from .scope import ScopeLike, scope_of

SOURCE = "oppkit"
CONVERTED = "Closed - Converted"


@dataclass
class Accepted:
    """What accepting a lead made: its account, contact (None without an email) and deal."""

    lead_id: int
    account_id: int
    person_id: int | None
    opportunity_id: int
    process: str | None


class Leads:
    """``kit.leads``: call it for the leads frame; :meth:`accept` turns one into a deal."""

    def __init__(self, scope: ScopeLike) -> None:
        self.scope = scope_of(scope)

    def __call__(self, **filters: Any) -> pd.DataFrame:
        """The leads frame (:func:`oppkit.frames.campaigns.leads`)."""
        return frames.leads(self.scope, **filters)

    def lead_id(self, lead: Any) -> int:
        """Exactly one lead, by id, email, Salesforce id or name."""
        ids = list(dict.fromkeys(self.scope.lead_ids(lead)))
        if len(ids) != 1:
            raise OppkitError(f"{len(ids)} leads match {lead!r}; use the id")
        return ids[0]

    def create(
        self, name: str, *, email: str | None = None, company: str | None = None,
        title: str | None = None, status: str = "Open - Not Contacted",
        lead_source: str | None = None, owner: str | None = None, campaign: Any = None,
    ) -> int:  # fmt: skip
        """A lead made in oppkit (a form, a list, a conversation), optionally a member of
        ``campaign``; its id.

        >>> kit.leads.create("Nora Lindqvist", email="nora@soylent.example", company="Soylent")
        """
        if not name or not name.strip():
            raise OppkitError("a lead needs a name")
        owner_id = self.scope.acting_person_id(owner)
        campaign_ids = self.scope.campaign_ids(campaign) if campaign is not None else []
        with write_transaction(self.scope.engine) as conn:
            lead_id = conn.execute(
                insert(leads)
                .values(
                    name=name.strip(),
                    email=normalise_email(email),
                    company=company,
                    title=title,
                    status=status,
                    lead_source=lead_source,
                    owner_id=owner_id,
                    source=SOURCE,
                    source_id=f"lead:{uuid.uuid4().hex}",
                    created_at=datetime.now(UTC),
                )  # fmt: skip
                .returning(leads.c.id)
            ).scalar_one()
            for campaign_id in dict.fromkeys(campaign_ids):
                conn.execute(
                    insert(campaign_members).values(
                        campaign_id=campaign_id,
                        lead_id=lead_id,
                        status="Added",
                        source=SOURCE,
                        source_id=f"member:{campaign_id}:lead:{lead_id}",
                    )  # fmt: skip
                )
        return lead_id

    def accept(
        self, lead: Any, *, owner: str | None = None, process: str | None = None,
        name: str | None = None, **values: Any,
    ) -> Accepted:  # fmt: skip
        """Accept a lead: its account (by its email's company domain, else its company),
        its contact and a deal, in one transaction. The deal runs ``process``, else the
        process of the lead's campaign (its newest campaign that names one), else the
        default process, from that process's entry step; it carries the campaign.
        Keywords are the deal's attributes (amount, close_date, ...).

        >>> kit.leads.accept("nora@soylent.example", amount=40_000)
        """
        from .workflow.engine import Workflow

        lead_id = self.lead_id(lead)
        owner_id = self.scope.acting_person_id(owner)
        by_id = self.scope.acting_person_id(None)
        with write_transaction(self.scope.engine) as conn:
            row = conn.execute(
                select(leads).where(leads.c.id == lead_id).with_for_update()
            ).mappings().one()  # fmt: skip
            _check_acceptable(row)
            account_id, person_id, made = _account_and_contact(conn, row)
            campaign_id, campaign_name, campaign_process = _campaign_of(conn, lead_id)
            process = process or campaign_process
            deal_name = name or f"{row['company'] or row['name']} — {campaign_name or 'lead'}"
            opportunity_id = Workflow(self.scope).create_in(
                conn, deal_name, account_id=account_id,
                owner_id=owner_id or row["owner_id"], by_id=by_id, process=process,
                campaign_id=campaign_id, member_ids=[person_id] if person_id else [],
                values={"lead_source": row["lead_source"], **values}, new_account=made,
            )  # fmt: skip
            conn.execute(
                update(leads)
                .where(leads.c.id == lead_id)
                .values(
                    is_converted=True,
                    status=CONVERTED,
                    converted_at=datetime.now(UTC).date(),
                    converted_account_id=account_id,
                    converted_person_id=person_id,
                    converted_opportunity_id=opportunity_id,
                    updated_at=datetime.now(UTC),
                )  # fmt: skip
            )
        return Accepted(lead_id, account_id, person_id, opportunity_id, process)


def _check_acceptable(row: Any) -> None:
    if row["is_converted"]:
        raise OppkitError(f"lead {row['name']!r} is converted already (see kit.leads())")
    if row["source"] != SOURCE:
        raise OppkitError(
            f"lead {row['name']!r} is a {row['source'].title()} lead: convert it there (the "
            "next sync brings its account, contact and deal here)"
        )


def _account_and_contact(conn: Connection, row: Any) -> tuple[int, int | None, bool]:
    """The lead's account and contact, made where oppkit does not know them yet; and
    whether the account is new (the deal then enters as a new account's)."""
    person_id = account_id = None
    email = row["email"]
    known = set()
    if email:
        known = set(
            conn.scalars(select(accounts.c.id).where(accounts.c.domain == domain_of(email)))
        )
        known |= set(
            conn.scalars(
                select(people.c.account_id).where(
                    people.c.email == email, people.c.account_id.is_not(None)
                )
            )
        )
        resolver = Resolver(DomainRules(load_settings().internal_domains))
        ref = resolver.people_for_emails(conn, {email: row["name"]})[email]
        if ref.is_internal:
            raise OppkitError(f"lead {row['name']!r} has a colleague's address: {email}")
        person_id, account_id = ref.id, ref.account_id
        conn.execute(
            update(people)
            .where(people.c.id == person_id, people.c.title.is_(None))
            .values(title=row["title"])
        )
        if account_id is not None and row["company"]:
            # an account oppkit made from the domain carries a guessed name: the lead's
            # company is a better one
            conn.execute(
                update(accounts)
                .where(
                    accounts.c.id == account_id,
                    accounts.c.source == "mail",
                    accounts.c.name == account_name_from_domain(domain_of(email)),
                )
                .values(name=row["company"])
            )
    if account_id is None:
        account_id = conn.execute(
            insert(accounts)
            .values(
                name=row["company"] or row["name"],
                source=SOURCE,
                source_id=f"account:{uuid.uuid4().hex}",
            )  # fmt: skip
            .returning(accounts.c.id)
        ).scalar_one()
        if person_id is not None:
            conn.execute(
                update(people).where(people.c.id == person_id).values(account_id=account_id)
            )
    return account_id, person_id, account_id not in known


def _campaign_of(conn: Connection, lead_id: int) -> tuple[int | None, str | None, str | None]:
    """The lead's campaign: its newest membership whose campaign names a process, else its
    newest membership; (id, name, process) or Nones."""
    rows = conn.execute(
        select(campaigns.c.id, campaigns.c.name, campaigns.c.process)
        .join(campaign_members, campaign_members.c.campaign_id == campaigns.c.id)
        .where(campaign_members.c.lead_id == lead_id, campaign_members.c.is_deleted.is_(False),
               campaigns.c.is_deleted.is_(False))
        .order_by(campaign_members.c.id.desc())
    ).all()  # fmt: skip
    chosen = next((r for r in rows if r.process), rows[0] if rows else None)
    return (chosen.id, chosen.name, chosen.process) if chosen else (None, None, None)
