"""Campaign frames: campaigns, their members, leads and campaign activities.

Why: where deals come from is a question an analyst asks of frames. These read what the
Salesforce sync (Campaign, CampaignMember, Lead) and oppkit itself (local campaigns,
assignments, accepted leads) wrote, with the scope's privacy: a deal the user may not
see is neither counted nor named, a person known only from one is not listed.

Example::

    kit.campaigns()[["name", "status", "members", "opportunities"]]
    kit.campaign_members(campaign="Data & Analytics Summit", status="Responded")
    kit.leads(status="Open - Not Contacted", campaign="Predictive Maintenance Webinar")
    kit.campaign_activities(account="acme-robotics.example", kind="internal")
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import and_, case, func, literal, or_, select

from ..db import schema as db
from ..scope import ScopeLike, as_list, scope_of

__all__ = [
    "CAMPAIGN_ACTIVITY_KINDS", "INTERNAL_STATUSES", "campaign_activities", "campaign_members",
    "campaigns", "leads",
]  # fmt: skip

# Internal campaign activities are work for our people; external ones are what the
# campaign sent to the account's people.
INTERNAL_STATUSES = ("assigned", "unassigned", "in progress", "completed", "cancelled")
CAMPAIGN_ACTIVITY_KINDS = {"internal": ("task",), "external": ("email", "sms", "letter")}


def _counts(scope: ScopeLike) -> tuple[Any, Any]:
    """Per campaign: members and lead members; visible deals."""
    scope = scope_of(scope)
    m = db.campaign_members
    members = (
        select(
            m.c.campaign_id,
            func.count().label("members"),
            func.count(m.c.lead_id).label("lead_members"),
            func.sum(case((m.c.has_responded.is_(True), 1), else_=0)).label("responded"),
        )
        .where(m.c.is_deleted.is_(False))
        .group_by(m.c.campaign_id)
        .subquery()
    )
    o = db.opportunities
    deals = (
        select(o.c.campaign_id, func.count().label("opportunities"))
        .where(o.c.is_deleted.is_(False), o.c.campaign_id.is_not(None), scope.visible())
        .group_by(o.c.campaign_id)
        .subquery()
    )
    return members, deals


def campaigns(
    scope: ScopeLike, *, status: str | list[str] | None = None, active: bool | None = None
) -> pd.DataFrame:
    """One row per campaign: type, status, dates, costs, expected revenue, parent, the
    process its deals run, and how many members, lead members, responders and (visible)
    opportunities it has.

    >>> kit.campaigns(active=True)[["name", "members", "opportunities", "actual_cost"]]
    """
    scope = scope_of(scope)
    c, parent = db.campaigns, db.campaigns.alias("parent")
    members, deals = _counts(scope)
    stmt = (
        select(
            c.c.id,
            c.c.name,
            c.c.status,
            c.c.campaign_type,
            c.c.start_date,
            c.c.end_date,
            c.c.parent_id,
            parent.c.name.label("parent"),
            c.c.budgeted_cost,
            c.c.actual_cost,
            c.c.expected_revenue,
            c.c.is_active,
            c.c.process,
            func.coalesce(members.c.members, 0).label("members"),
            func.coalesce(members.c.lead_members, 0).label("lead_members"),
            func.coalesce(members.c.responded, 0).label("responded"),
            func.coalesce(deals.c.opportunities, 0).label("opportunities"),
            c.c.source,
            c.c.source_id,
        )  # fmt: skip
        .select_from(
            c.outerjoin(parent, parent.c.id == c.c.parent_id)
            .outerjoin(members, members.c.campaign_id == c.c.id)
            .outerjoin(deals, deals.c.campaign_id == c.c.id)
        )
        .where(c.c.is_deleted.is_(False))
        .order_by(c.c.start_date.desc(), c.c.name)
    )
    if status is not None:
        stmt = stmt.where(c.c.status.in_(as_list(status)))
    if active is not None:
        stmt = stmt.where(func.coalesce(c.c.is_active, literal(False)).is_(active))
    df = scope.frame(stmt, "campaigns")
    for column in ("start_date", "end_date"):
        df[column] = pd.to_datetime(df[column]).dt.date
    for column in ("budgeted_cost", "actual_cost", "expected_revenue"):
        df[column] = df[column].astype("Float64")
    for column in ("members", "lead_members", "responded", "opportunities"):
        df[column] = df[column].astype("int64")
    return df


def campaign_members(
    scope: ScopeLike, campaign: Any = None, *, status: str | list[str] | None = None,
    responded: bool | None = None,
) -> pd.DataFrame:  # fmt: skip
    """The contacts and leads in one campaign, several, or all (``campaign=None``).

    Columns: id, campaign_id, campaign, member_type (contact or lead), person_id,
    lead_id, name, email, account (a contact's account, a lead's company), status,
    has_responded, first_responded_at, source.

    >>> kit.campaign_members(campaign="Data & Analytics Summit", responded=True)
    """
    scope = scope_of(scope)
    m, c, p, lead = db.campaign_members, db.campaigns, db.people, db.leads
    stmt = (
        select(
            m.c.id,
            m.c.campaign_id,
            c.c.name.label("campaign"),
            case((m.c.person_id.is_not(None), literal("contact")), else_=literal("lead")).label(
                "member_type"
            ),
            m.c.person_id,
            m.c.lead_id,
            func.coalesce(p.c.name, lead.c.name).label("name"),
            func.coalesce(p.c.email, lead.c.email).label("email"),
            func.coalesce(db.accounts.c.name, lead.c.company).label("account"),
            m.c.status,
            m.c.has_responded,
            m.c.first_responded_at,
            m.c.source,
        )  # fmt: skip
        .select_from(
            m.join(c, c.c.id == m.c.campaign_id)
            .outerjoin(p, p.c.id == m.c.person_id)
            .outerjoin(db.accounts, db.accounts.c.id == p.c.account_id)
            .outerjoin(lead, lead.c.id == m.c.lead_id)
        )
        .where(
            m.c.is_deleted.is_(False),
            c.c.is_deleted.is_(False),
            or_(m.c.person_id.is_(None), m.c.person_id.not_in(scope.hidden_people())),
        )
        .order_by(c.c.name, m.c.id)
    )
    if campaign is not None:
        stmt = stmt.where(m.c.campaign_id.in_(scope.campaign_ids(campaign)))
    if status is not None:
        stmt = stmt.where(m.c.status.in_(as_list(status)))
    if responded is not None:
        stmt = stmt.where(m.c.has_responded.is_(responded))
    df = scope.frame(stmt, "campaign_members")
    df["has_responded"] = df["has_responded"].astype(bool)
    df["first_responded_at"] = pd.to_datetime(df["first_responded_at"]).dt.date
    return df


def leads(
    scope: ScopeLike, *, status: str | list[str] | None = None, campaign: Any = None,
    converted: bool | None = None,
) -> pd.DataFrame:  # fmt: skip
    """One row per lead: who, company, status, lead source, owner, and for a converted
    (accepted) lead the account, contact and deal it became (the deal only when the user
    may see it). ``campaign`` keeps the leads that are members of that campaign (or any of
    several); ``campaigns`` lists each lead's campaigns.

    >>> kit.leads(status="Open - Not Contacted", campaign="Predictive Maintenance Webinar")
    """
    scope = scope_of(scope)
    lead, owner, contact = db.leads, db.people.alias("owner"), db.people.alias("contact")
    deal = db.opportunities
    shown_deal = and_(deal.c.id.is_not(None), deal.c.is_deleted.is_(False), scope.visible())
    stmt = (
        select(
            lead.c.id,
            lead.c.name,
            lead.c.email,
            lead.c.company,
            lead.c.title,
            lead.c.status,
            lead.c.lead_source,
            owner.c.name.label("owner"),
            owner.c.email.label("owner_email"),
            lead.c.is_converted,
            lead.c.converted_at,
            db.accounts.c.name.label("converted_account"),
            contact.c.email.label("converted_contact"),
            case((shown_deal, deal.c.id)).label("converted_opportunity_id"),
            case((shown_deal, deal.c.name)).label("converted_opportunity"),
            lead.c.created_at,
            lead.c.source,
            lead.c.source_id,
        )  # fmt: skip
        .select_from(
            lead.outerjoin(owner, owner.c.id == lead.c.owner_id)
            .outerjoin(db.accounts, db.accounts.c.id == lead.c.converted_account_id)
            .outerjoin(contact, contact.c.id == lead.c.converted_person_id)
            .outerjoin(deal, deal.c.id == lead.c.converted_opportunity_id)
        )
        .where(lead.c.is_deleted.is_(False))
        .order_by(lead.c.created_at.desc(), lead.c.id)
    )
    if status is not None:
        stmt = stmt.where(lead.c.status.in_(as_list(status)))
    if converted is not None:
        stmt = stmt.where(lead.c.is_converted.is_(converted))
    if campaign is not None:
        stmt = stmt.where(lead.c.id.in_(_lead_members(scope, campaign)))
    df = scope.frame(stmt, "leads")
    df["is_converted"] = df["is_converted"].astype(bool)
    df["converted_at"] = pd.to_datetime(df["converted_at"]).dt.date
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True)
    df["converted_opportunity_id"] = df["converted_opportunity_id"].astype("Int64")
    df["campaigns"] = _campaigns_of_leads(scope, df)
    return df


def _lead_members(scope: ScopeLike, campaign: Any) -> Any:
    """The leads in ``campaign``: members as leads, and converted leads whose contact is."""
    scope = scope_of(scope)
    m = db.campaign_members
    ids = scope.campaign_ids(campaign)
    as_lead = select(m.c.lead_id).where(
        m.c.campaign_id.in_(ids), m.c.lead_id.is_not(None), m.c.is_deleted.is_(False)
    )
    as_contact = select(db.leads.c.id).where(
        db.leads.c.converted_person_id.in_(
            select(m.c.person_id).where(
                m.c.campaign_id.in_(ids), m.c.person_id.is_not(None), m.c.is_deleted.is_(False)
            )
        )
    )
    return as_lead.union(as_contact)


def _campaigns_of_leads(scope: ScopeLike, df: pd.DataFrame) -> list[list[str]]:
    scope = scope_of(scope)
    m, c = db.campaign_members, db.campaigns
    found: dict[int, list[str]] = {}
    with scope.engine.connect() as conn:
        rows = conn.execute(
            select(db.leads.c.id, c.c.name)
            .select_from(
                db.leads.join(
                    m,
                    or_(
                        m.c.lead_id == db.leads.c.id,
                        and_(
                            m.c.person_id.is_not(None),
                            m.c.person_id == db.leads.c.converted_person_id,
                        ),
                    ),
                ).join(c, c.c.id == m.c.campaign_id)
            )
            .where(m.c.is_deleted.is_(False), c.c.is_deleted.is_(False))
            .order_by(c.c.name)
        ).all()
    for lead_id, name in rows:
        found.setdefault(lead_id, [])
        if name not in found[lead_id]:
            found[lead_id].append(name)
    return [found.get(i, []) for i in df["id"]]


def campaign_activities(
    scope: ScopeLike, *, account: Any = None, campaign: Any = None, kind: str | None = None,
    status: str | list[str] | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Campaign activities on accounts: ``internal`` ones (work for our people: assigned,
    unassigned, in progress, completed, cancelled) and ``external`` ones (the messages a
    campaign sent to the account's people). Without ``status``, internal activities are
    those still assigned (as seed 002 shows them) and external ones all; ``status="all"``
    shows every one.

    Columns: id, campaign_id, campaign, kind (internal/external), activity_kind (task,
    email, sms...), subject, status, assigned_to, account_id, account, opportunity_id,
    occurred_at, is_planned, source.

    >>> kit.campaign_activities(account="acme-robotics.example", kind="internal")
    """
    scope = scope_of(scope)
    if kind not in (None, *CAMPAIGN_ACTIVITY_KINDS):
        raise ValueError(f"kind must be internal or external, not {kind!r}")
    a, c, assigned = db.activities, db.campaigns, db.people.alias("assigned")
    internal = a.c.kind.in_(CAMPAIGN_ACTIVITY_KINDS["internal"])
    stmt = (
        select(
            a.c.id,
            a.c.campaign_id,
            c.c.name.label("campaign"),
            case((internal, literal("internal")), else_=literal("external")).label("kind"),
            a.c.kind.label("activity_kind"),
            a.c.subject,
            a.c.status,
            assigned.c.email.label("assigned_to"),
            a.c.account_id,
            db.accounts.c.name.label("account"),
            a.c.opportunity_id,
            a.c.occurred_at,
            a.c.is_planned,
            a.c.source,
        )  # fmt: skip
        .select_from(
            a.join(c, c.c.id == a.c.campaign_id)
            .outerjoin(assigned, assigned.c.id == a.c.owner_id)
            .outerjoin(db.accounts, db.accounts.c.id == a.c.account_id)
        )
        .where(a.c.is_deleted.is_(False), scope.visible_activity())
        .order_by(a.c.occurred_at.desc(), a.c.id)
    )
    if kind is not None:
        wanted = CAMPAIGN_ACTIVITY_KINDS[kind]
        stmt = stmt.where(a.c.kind.in_(wanted))
    if account is not None:
        stmt = stmt.where(a.c.account_id.in_(scope.account_ids(account)))
    if campaign is not None:
        stmt = stmt.where(a.c.campaign_id.in_(scope.campaign_ids(campaign)))
    if status is None:
        stmt = stmt.where(or_(~internal, a.c.status == "assigned"))
    elif status != "all":
        stmt = stmt.where(a.c.status.in_(as_list(status)))
    df = scope.frame(stmt, "campaign_activities")
    df["occurred_at"] = pd.to_datetime(df["occurred_at"], utc=True)
    df["is_planned"] = df["is_planned"].astype(bool)
    df["opportunity_id"] = df["opportunity_id"].astype("Int64")
    return df
