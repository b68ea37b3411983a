"""Campaigns in a notebook: read them, stamp deals with them, add contacts to them.

Why: where deals come from and which campaigns pay is the question marketing and sales
share. ``kit.campaigns`` reads campaigns as frames and makes the few writes a person
does on them, with the ownership rules of write-back (:mod:`oppkit.writeback`):

- *assign*: a deal's campaign. On a deal oppkit created it changes at once. On a
  Salesforce deal it is Salesforce's field (CampaignId): with write-back on the change is
  queued and pushed by the agent; with it off the whole assignment is refused, saying
  where to make it. A Salesforce deal takes only a campaign Salesforce knows.
- *marketing options* (:meth:`Campaigns.add_contacts`): contacts join a campaign and each
  contact gets its own deal (``"<campaign> — <contact>"``) at the entry step of the
  campaign's process; running it again adds and creates nothing new. A contact who cannot
  have a deal (no account, or one of our people) is listed in the result with the reason.
- *campaign activities*: internal work for our people on an account (assigned,
  unassigned, in progress, completed, cancelled) and the messages a campaign sent.

Example::

    kit.campaigns()                                     # every campaign, with counts
    kit.campaigns.assign(kit.opportunities(stage="Prospecting"), "Spring webinar")
    kit.campaigns.add_contacts(kit.people(account="acme-robotics.example"), "Spring webinar")
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, and_, insert, select, update

from . import frames
from .db.engine import write_transaction
from .db.schema import (
    accounts,
    activities,
    campaign_members,
    campaigns,
    opportunities,
    opportunity_people,
    outbox,
    people,
)
from .errors import OppkitError
from .frames.campaigns import INTERNAL_STATUSES
from .scope import ScopeLike, refs_of, scope_of
from .writeback import SALESFORCE, WriteBackOff, owned_by_salesforce, queue_changes, refusal

SOURCE = "oppkit"
MEMBER_STATUS = "Added"  # the member status of a contact added in oppkit


@dataclass
class Assignment:
    """What :meth:`Campaigns.assign` did: deals changed at once, changes queued for
    Salesforce (their ids in ``kit.changes()``), deals already in the campaign."""

    campaign_id: int
    assigned: list[int] = field(default_factory=list)
    queued: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class NoDeal:
    """A contact :meth:`Campaigns.add_contacts` gave no deal, and why."""

    person_id: int
    name: str
    reason: str


@dataclass
class Added:
    """What :meth:`Campaigns.add_contacts` did: members added (their member ids), deals
    created (one per contact), contacts already in the campaign, contacts who already had
    a deal of it, and the contacts that could not get one (:class:`NoDeal`, with the reason)."""

    campaign_id: int
    members: list[int] = field(default_factory=list)
    opportunities: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)
    had_deal: list[int] = field(default_factory=list)
    no_deal: list[NoDeal] = field(default_factory=list)


@dataclass
class Sent:
    """What :meth:`Campaigns.send` did: outbox rows, their activities, and which failed
    (they stay in the outbox for ``kit.workflow.deliver()``)."""

    campaign_id: int
    messages: list[int] = field(default_factory=list)
    activities: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


class Campaigns:
    """``kit.campaigns``: call it for the campaigns frame; methods act on campaigns."""

    def __init__(self, scope: ScopeLike) -> None:
        self.scope = scope_of(scope)

    def __call__(self, **filters: Any) -> pd.DataFrame:
        """The campaigns frame (:func:`oppkit.frames.campaigns.campaigns`)."""
        return frames.campaigns(self.scope, **filters)

    def members(self, campaign: Any = None, **filters: Any) -> pd.DataFrame:
        """The members frame (:func:`oppkit.frames.campaigns.campaign_members`)."""
        return frames.campaign_members(self.scope, campaign, **filters)

    def campaign_id(self, campaign: Any) -> int:
        """Exactly one campaign, by id, Salesforce id or name."""
        ids = list(dict.fromkeys(self.scope.campaign_ids(campaign)))
        if len(ids) != 1:
            raise OppkitError(f"{len(ids)} campaigns match {campaign!r}; use the id")
        return ids[0]

    # --- local campaigns -------------------------------------------------------------

    def create(
        self, name: str, *, campaign_type: str | None = None, status: str = "Planned",
        start_date: date | str | None = None, end_date: date | str | None = None,
        budgeted_cost: float | None = None, actual_cost: float | None = None,
        expected_revenue: float | None = None, parent: Any = None, process: str | None = None,
    ) -> int:  # fmt: skip
        """A campaign kept in oppkit (for a team without Salesforce, or work it does not
        track there); its id.

        >>> kit.campaigns.create("Spring webinar", campaign_type="Webinar", actual_cost=4_000)
        """
        if not name or not name.strip():
            raise OppkitError("a campaign needs a name")
        parent_id = self.campaign_id(parent) if parent is not None else None
        with write_transaction(self.scope.engine) as conn:
            if process is not None:
                _check_process(conn, process)
            return conn.execute(
                insert(campaigns)
                .values(
                    name=name.strip(),
                    campaign_type=campaign_type,
                    status=status,
                    start_date=_day(start_date),
                    end_date=_day(end_date),
                    budgeted_cost=budgeted_cost,
                    actual_cost=actual_cost,
                    expected_revenue=expected_revenue,
                    parent_id=parent_id,
                    is_active=True,
                    process=process,
                    source=SOURCE,
                    source_id=f"campaign:{uuid.uuid4().hex}",
                )  # fmt: skip
                .returning(campaigns.c.id)
            ).scalar_one()

    def set_process(self, campaign: Any, process: str | None) -> None:
        """The process (a named workflow process, None: the default) the campaign's new
        deals run. It is oppkit's, so a Salesforce campaign takes one too.

        >>> kit.campaigns.set_process("Spring webinar", "Webinar follow-up")
        """
        campaign_id = self.campaign_id(campaign)
        with write_transaction(self.scope.engine) as conn:
            if process is not None:
                _check_process(conn, process)
            conn.execute(
                update(campaigns).where(campaigns.c.id == campaign_id).values(process=process)
            )

    # --- stamping deals ---------------------------------------------------------------

    def assign(self, deals: Any, campaign: Any, *, by: str | None = None) -> Assignment:
        """Stamp one deal or many with ``campaign`` (None: no campaign).

        ``deals`` are ids, names or a frame of deals (its ``id`` column). All or nothing:
        a Salesforce deal whose campaign cannot change (write-back off, or a campaign
        Salesforce does not know) refuses the whole call with a message naming it.

        >>> kit.campaigns.assign(["Acme pilot", 42], "Spring webinar")
        """
        ids = list(dict.fromkeys(self.scope.opportunity_ids(refs_of(deals))))
        campaign_id = self.campaign_id(campaign) if campaign is not None else None
        by_id = self.scope.acting_person_id(by)
        result = Assignment(campaign_id)
        with write_transaction(self.scope.engine) as conn:
            target = None
            if campaign_id is not None:
                target = conn.execute(
                    select(campaigns.c.name, campaigns.c.source).where(campaigns.c.id == campaign_id)
                ).one()  # fmt: skip
            rows = conn.execute(
                select(opportunities).where(opportunities.c.id.in_(ids)).order_by(opportunities.c.id)
            ).mappings().all()  # fmt: skip
            refused = [r["name"] for r in rows
                       if owned_by_salesforce(r) and r["campaign_id"] != campaign_id
                       and target is not None and target.source != SALESFORCE]  # fmt: skip
            if refused:
                raise OppkitError(
                    f"{target.name!r} is a campaign of oppkit only; Salesforce deals take "
                    f"Salesforce campaigns: {', '.join(repr(n) for n in refused)}"
                )
            for row in rows:
                if row["campaign_id"] == campaign_id:
                    result.unchanged.append(row["id"])
                elif owned_by_salesforce(row):
                    result.queued += _queue(conn, row, campaign_id, by_id)
                else:
                    conn.execute(
                        update(opportunities)
                        .where(opportunities.c.id == row["id"])
                        .values(campaign_id=campaign_id, updated_at=datetime.now(UTC))
                    )
                    result.assigned.append(row["id"])
        return result

    # --- marketing options ------------------------------------------------------------

    def add_contacts(
        self, contacts: Any, campaign: Any, *, create_deals: bool = True,
        owner: str | None = None, status: str = MEMBER_STATUS,
    ) -> Added:  # fmt: skip
        """Add contacts (emails, ids, or a people frame) to a campaign and, unless
        ``create_deals=False``, give each contact its own deal, ``"<campaign> — <name>"``,
        on the contact's account, at the entry step of the campaign's process (the default
        process when it names none), with the contact as a member.

        Idempotent per campaign and contact: a contact already a member is not added again,
        and one who is a member of a live deal of the campaign gets no second deal. A
        contact without an account, or one of our own people, gets no deal: the result's
        ``no_deal`` says who and why. Everything happens in one transaction.

        >>> kit.campaigns.add_contacts(kit.people(account="acme-robotics.example"), "Spring webinar")
        """
        campaign_id = self.campaign_id(campaign)
        person_ids = list(dict.fromkeys(self.scope.person_ids(refs_of(contacts))))
        owner_id = self.scope.acting_person_id(owner) if create_deals else None
        result = Added(campaign_id)
        with write_transaction(self.scope.engine) as conn:
            camp = conn.execute(
                select(campaigns).where(campaigns.c.id == campaign_id).with_for_update()
            ).one()  # one run at a time per campaign, so none creates a deal twice
            self._add_members(conn, campaign_id, person_ids, status, result)
            if create_deals:
                self._deals_for(conn, camp, person_ids, owner_id, result)
        return result

    def _add_members(
        self, conn: Connection, campaign_id: int, person_ids: list[int], status: str,
        result: Added,
    ) -> None:  # fmt: skip
        members = set(
            conn.scalars(
                select(campaign_members.c.person_id).where(
                    campaign_members.c.campaign_id == campaign_id,
                    campaign_members.c.is_deleted.is_(False),
                )
            )
        )
        for person_id in person_ids:
            if person_id in members:
                result.already.append(person_id)
                continue
            result.members.append(
                conn.execute(
                    insert(campaign_members)
                    .values(
                        campaign_id=campaign_id,
                        person_id=person_id,
                        status=status,
                        source=SOURCE,
                        source_id=f"member:{campaign_id}:{person_id}",
                    )  # fmt: skip
                    .returning(campaign_members.c.id)
                ).scalar_one()
            )

    def _deals_for(
        self, conn: Connection, camp: Any, person_ids: list[int], owner_id: int | None,
        result: Added,
    ) -> None:  # fmt: skip
        """A deal in the campaign's process for each contact without a live one of it."""
        from .workflow.engine import Workflow

        live = accounts.c.is_deleted.is_(False)
        who = conn.execute(
            select(people.c.id, people.c.name, people.c.email, people.c.is_internal,
                   accounts.c.id.label("account_id"))
            .outerjoin(accounts, and_(accounts.c.id == people.c.account_id, live))
            .where(people.c.id.in_(person_ids))
            .order_by(people.c.id)
        ).all()  # fmt: skip
        with_deal = _with_deal(conn, camp.id, person_ids)
        workflow = Workflow(self.scope)
        for person in who:
            name = person.name or person.email
            if person.id in with_deal:
                result.had_deal.append(person.id)
            elif person.is_internal:
                result.no_deal.append(NoDeal(person.id, name, "one of our people"))
            elif person.account_id is None:
                result.no_deal.append(NoDeal(person.id, name, "no account"))
            else:
                result.opportunities.append(
                    workflow.create_in(
                        conn,
                        f"{camp.name} — {name}",
                        account_id=person.account_id,
                        owner_id=owner_id,
                        by_id=self.scope.user_id,
                        process=camp.process,
                        campaign_id=camp.id,
                        member_ids=[person.id],
                    )
                )

    # --- messages ---------------------------------------------------------------------

    def send(
        self, campaign: Any, subject: str, body: str, *, html: str | None = None,
        to: Any = None, deliver: bool = True,
    ) -> Sent:  # fmt: skip
        """Email the campaign's members (or the people ``to`` names, who join it): one
        message each, rendered from ``str.format`` templates with ``{name}``,
        ``{first_name}``, ``{email}``, ``{account}`` and ``{campaign}`` (in ``html`` every
        value is HTML-escaped). Each message is an external campaign activity on its
        account's timeline (outbound email, status queued, then sent or failed) and an
        outbox row; both commit together, then the outbox is delivered over SMTP with
        retries (``deliver=False`` leaves that to ``kit.workflow.deliver()``). Members
        without an address, and people a private deal hides, are skipped.

        >>> kit.campaigns.send("Spring webinar", "See you on {campaign}", "Hello {first_name}, ...")
        """
        from .workflow import communications

        campaign_id = self.campaign_id(campaign)
        if to is not None:
            self.add_contacts(to, campaign_id, create_deals=False)
            wanted = set(self.scope.person_ids(refs_of(to)))
        members = self.members(campaign_id)
        members = members[members["person_id"].notna() & members["email"].notna()]
        if to is not None:
            members = members[members["person_id"].isin(wanted)]
        problem = communications.template_problem(subject) or communications.template_problem(body)
        if problem:
            raise OppkitError(f"template: {problem}")
        result = Sent(campaign_id)
        now = datetime.now(UTC)
        with write_transaction(self.scope.engine) as conn:
            name = conn.scalar(select(campaigns.c.name).where(campaigns.c.id == campaign_id))
            for member in members.itertuples():
                values = {
                    "name": member.name or member.email, "email": member.email,
                    "first_name": (member.name or "").split(" ")[0] or member.email,
                    "account": member.account or "", "campaign": name,
                }  # fmt: skip
                text = communications.render(body, values)
                title = " ".join(communications.render(subject, values).split())
                activity_id = communications.record_outbound(
                    conn, channel="email", recipient=member.email, subject=title, body=text,
                    campaign_id=campaign_id,
                    sender_id=self.scope.user_id, when=now,
                )  # fmt: skip
                result.messages.append(
                    conn.execute(
                        insert(outbox)
                        .values(
                            channel="email",
                            recipient=member.email,
                            subject=title,
                            body=text,
                            html=communications.render(html, values, escape=True) if html else None,
                            status="pending",
                            attempts=0,
                            created_at=now,
                            activity_id=activity_id,
                        )  # fmt: skip
                        .returning(outbox.c.id)
                    ).scalar_one()
                )
                result.activities.append(activity_id)
        if deliver and result.messages:
            outcome = communications.deliver(self.scope.engine, result.messages)
            result.failed = [r["id"] for r in outcome if r["status"] != "sent"]
        return result

    # --- campaign activities ----------------------------------------------------------

    def activities(self, **filters: Any) -> pd.DataFrame:
        """Campaign activities (:func:`oppkit.frames.campaigns.campaign_activities`)."""
        return frames.campaign_activities(self.scope, **filters)

    def plan_activity(
        self, campaign: Any, account: Any, subject: str, *, assigned_to: str | None = None,
        due: datetime | str | None = None,
    ) -> int:  # fmt: skip
        """Internal work on an account for a campaign: assigned when it has someone to do
        it, else unassigned; on the account's timeline as a planned task. Its id.

        >>> kit.campaigns.plan_activity("Spring webinar", "acme-robotics.example",
        ...                             "Invite the data team", assigned_to="ava.patel@northwind.example")
        """
        campaign_id = self.campaign_id(campaign)
        account_id = self.scope.account_ids(account)[0]
        owner_id = self.scope.person_ids(assigned_to)[0] if assigned_to else None
        when = pd.Timestamp(due or datetime.now(UTC))
        when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
        with write_transaction(self.scope.engine) as conn:
            return conn.execute(
                insert(activities)
                .values(
                    kind="task",
                    subject=subject,
                    occurred_at=when.to_pydatetime(),
                    account_id=account_id,
                    owner_id=owner_id,
                    campaign_id=campaign_id,
                    is_planned=True,
                    status="assigned" if owner_id else "unassigned",
                    direction="internal",
                    source=SOURCE,
                    source_id=f"campaign-task:{uuid.uuid4().hex}",
                )  # fmt: skip
                .returning(activities.c.id)
            ).scalar_one()

    def set_activity_status(
        self, activity_id: int, status: str, *, assigned_to: str | None = None
    ) -> None:
        """Move an internal campaign activity: assigned, unassigned, in progress,
        completed or cancelled (``assigned_to`` sets who does it).

        >>> kit.campaigns.set_activity_status(812, "completed")
        """
        status = status.strip().lower()
        if status not in INTERNAL_STATUSES:
            raise OppkitError(f"status must be one of {', '.join(INTERNAL_STATUSES)}")
        values: dict[str, Any] = {"status": status, "is_planned": status not in
                                  ("completed", "cancelled")}  # fmt: skip
        if assigned_to is not None:
            values["owner_id"] = self.scope.person_ids(assigned_to)[0]
        with write_transaction(self.scope.engine) as conn:
            found = conn.execute(
                update(activities)
                .where(
                    activities.c.id == activity_id,
                    activities.c.campaign_id.is_not(None),
                    activities.c.kind == "task",
                    activities.c.source == SOURCE,
                )
                .values(**values)
            ).rowcount
        if not found:
            raise OppkitError(f"no internal campaign activity {activity_id} made in oppkit")


def _with_deal(conn: Connection, campaign_id: int, person_ids: list[int]) -> set[int]:
    """Those of ``person_ids`` who are members of a live deal of the campaign (any deal,
    private or not: whether one exists decides, never whether this user sees it)."""
    return set(
        conn.scalars(
            select(opportunity_people.c.person_id)
            .join(opportunities, opportunities.c.id == opportunity_people.c.opportunity_id)
            .where(
                opportunities.c.campaign_id == campaign_id,
                opportunities.c.is_deleted.is_(False),
                opportunity_people.c.kind == "member",
                opportunity_people.c.person_id.in_(person_ids),
            )
        )
    )


def _queue(conn: Connection, row: Any, campaign_id: int | None, by_id: int | None) -> list[int]:
    try:
        return queue_changes(conn, row, {"campaign_id": campaign_id}, origin="edit", by_id=by_id)
    except WriteBackOff:
        raise refusal(row["name"], ["campaign"]) from None


def _check_process(conn: Connection, process: str) -> None:
    from .workflow.processes import process_names

    known = process_names(conn)
    if process not in known:
        raise OppkitError(
            f"no process {process!r}; processes: {', '.join(sorted(known)) or 'none loaded'}"
        )


def _day(value: date | str | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value).strip())
