"""The shared database schema (SQLAlchemy Core), one place for every table.

Why Core and not the ORM: sync writes in large batches with dialect upserts, and the Kit
reads straight into DataFrames; neither needs identity-mapped objects.

Identity and idempotency: every synced row carries ``source`` and ``source_id``, unique
together, so re-running a sync (or two at once) upserts instead of duplicating. Times are
stored in UTC (see :class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns aware UTC: the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def bind_processor(self, dialect):  # noqa: ANN001, ANN201
        """On SQLite, one step instead of two (this type's, then DATETIME's string form).

        The stored text is SQLite DATETIME's own (``2026-01-02 03:04:05.000000``); a sync
        binds a few datetimes per row, so the saving shows on large syncs.
        """
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        slow = super().bind_processor(dialect)

        def process(value):  # noqa: ANN001, ANN202
            if value.__class__ is not datetime:
                return slow(value)
            if value.tzinfo is not None:
                value = value.astimezone(UTC).replace(tzinfo=None)
            return value.isoformat(" ", "microseconds")

        return process

    def process_result_value(self, value, dialect):  # noqa: ANN001
        if value is None:
            return None
        if isinstance(value, str):  # raw SQLite text
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _synced() -> list[Column]:
    """Columns every synced row carries."""
    return [
        Column("source", String(40), nullable=False),
        Column("source_id", String(255), nullable=False),
        Column("created_at", UTCDateTime, default=_now),
        Column("updated_at", UTCDateTime, default=_now, onupdate=_now),
        Column("is_deleted", Boolean, nullable=False, default=False, server_default="0"),
    ]


def _lifecycle_synced() -> list[Column]:
    """What a sync keeps of a contact's or account's Salesforce record for write-back
    (migration 0009): its SystemModstamp and its lifecycle status as last synced."""
    return [
        Column("source_modstamp", UTCDateTime),
        # the value of the [salesforce] *_status_field as last read (or pushed): a sync
        # moves the lifecycle stage only when Salesforce's status changes
        Column("source_status", String(120)),
    ]


accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("domain", String(255), unique=True),
    Column("owner_id", Integer),  # people.id; no FK: people also points at accounts
    Column("industry", String(120)),
    Column("account_type", String(120)),
    Column("lifecycle_stage", String(120)),
    Column("stage_locked", Boolean, nullable=False, default=False, server_default="0"),
    Column("salesforce_id", String(18), unique=True),
    *_lifecycle_synced(),
    *_synced(),
    UniqueConstraint("source", "source_id"),
)

people = Table(
    "people",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), unique=True),
    Column("name", String(255)),
    Column("title", String(255)),
    Column("account_id", Integer, ForeignKey("accounts.id")),
    Column("is_internal", Boolean, nullable=False, default=False, server_default="0"),
    Column("lifecycle_stage", String(120)),
    Column("stage_locked", Boolean, nullable=False, default=False, server_default="0"),
    Column("salesforce_id", String(18), unique=True),
    *_lifecycle_synced(),
    *_synced(),
    UniqueConstraint("source", "source_id"),
    Index(None, "account_id"),
)

stages = Table(
    "stages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(120), nullable=False, unique=True),
    Column("status", String(20), nullable=False, default="open"),  # open/archived/lost/won
    Column("sort_order", Integer),  # the funnel's place: oppkit's (oppkit.funnel)
    Column("probability", Float),
    Column("is_active", Boolean, nullable=False, default=True, server_default="1"),
    Column("source", String(40), nullable=False, default="local"),
    Column("source_order", Integer),  # the source's own order (SortOrder); migration 0009
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("status", String(60)),
    Column("campaign_type", String(60)),
    Column("start_date", Date),
    Column("end_date", Date),
    # migration 0011: what a campaign costs and should bring, its parent, its process
    Column("parent_id", Integer, ForeignKey("campaigns.id")),
    Column("budgeted_cost", Float),
    Column("actual_cost", Float),
    Column("expected_revenue", Float),
    Column("is_active", Boolean),
    Column("process", String(120)),  # the workflow process its deals run (oppkit's)
    *_synced(),
    UniqueConstraint("source", "source_id"),
)

opportunities = Table(
    "opportunities",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("account_id", Integer, ForeignKey("accounts.id")),
    Column("owner_id", Integer, ForeignKey("people.id")),
    Column("stage", String(120)),
    Column("step", String(120)),  # the step's name, kept with step_id for reading
    Column("step_id", Integer, ForeignKey("steps.id")),
    Column("amount", Float),
    Column("currency", String(3)),
    Column("close_date", Date),
    Column("probability", Float),
    Column("is_private", Boolean, nullable=False, default=False, server_default="0"),
    Column("parent_id", Integer, ForeignKey("opportunities.id")),
    Column("campaign_id", Integer, ForeignKey("campaigns.id")),
    # the workflow process the deal runs (None: the default process); migration 0011
    Column("process", String(120)),
    Column("opportunity_type", String(120)),
    Column("lead_source", String(120)),
    Column("attributes", JSON(none_as_null=True)),  # custom fields mapped in oppkit.toml
    # the source's own last-modified stamp as last synced (Salesforce's SystemModstamp):
    # what a write-back's If-Unmodified-Since says the user saw (migration 0009)
    Column("source_modstamp", UTCDateTime),
    *_synced(),
    UniqueConstraint("source", "source_id"),
    Index(None, "account_id"),
)

opportunity_people = Table(
    "opportunity_people",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "opportunity_id",
        Integer,
        ForeignKey("opportunities.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("person_id", Integer, ForeignKey("people.id"), nullable=False),
    Column("kind", String(20), nullable=False, default="member"),  # member / follower
    Column("role", String(120)),
    Column("is_primary", Boolean, nullable=False, default=False, server_default="0"),
    Column("digest_frequency", String(10)),  # daily / weekly for followers
    *_synced(),
    UniqueConstraint("source", "source_id"),
    Index(None, "opportunity_id", "person_id"),
    Index(None, "person_id"),
)

activities = Table(
    "activities",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(20), nullable=False),  # email meeting call note sms task event
    Column("subject", Text),
    Column("snippet", Text),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("duration_minutes", Float),
    Column("direction", String(10)),  # inbound outbound internal
    Column("thread_id", String(255)),
    Column("account_id", Integer, ForeignKey("accounts.id")),
    Column("opportunity_id", Integer, ForeignKey("opportunities.id")),
    # where opportunity_id came from: 'source' (a WhatId, a note on a deal; kept),
    # 'matched' (oppkit.matching; matched again when deals change), NULL (no deal)
    Column("opportunity_link", String(10)),  # migration 0006_match_link
    # a campaign activity (migration 0011): internal work for our people (kind 'task',
    # status assigned/unassigned/in progress/completed/cancelled) or a message the
    # campaign sent to the account's people (kind 'email' or 'sms', outbound)
    Column("campaign_id", Integer, ForeignKey("campaigns.id")),
    Column("sender_id", Integer, ForeignKey("people.id")),
    Column("owner_id", Integer, ForeignKey("people.id")),
    Column("location", Text),
    Column("is_planned", Boolean, nullable=False, default=False, server_default="0"),
    Column("status", String(40)),
    Column("is_auto", Boolean, nullable=False, default=False, server_default="0"),
    Column("asks_question", Boolean, nullable=False, default=False, server_default="0"),
    Column("attachments", JSON(none_as_null=True)),
    *_synced(),
    UniqueConstraint("source", "source_id"),
    Index(None, "opportunity_id", "occurred_at"),
    Index(None, "account_id", "occurred_at"),
    Index(None, "occurred_at"),
    Index(None, "thread_id"),
)

activity_people = Table(
    "activity_people",
    metadata,
    Column(
        "activity_id", Integer, ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("person_id", Integer, ForeignKey("people.id"), primary_key=True),
    Column("role", String(20), primary_key=True),  # from to cc bcc organizer attendee who
    Column("response", String(20)),
    Index(None, "person_id", "activity_id"),
)

# Every source that reports an activity: one real-world meeting or email is one
# ``activities`` row, whichever sources report it (a calendar and Salesforce, a mailbox
# and a Salesforce Task). ``activities.source/source_id`` stay the first source's; a
# source's row is marked deleted when that source deletes it, and the activity hides
# only when all its sources have.
activity_sources = Table(
    "activity_sources",
    metadata,
    Column("source", String(40), primary_key=True),
    Column("source_id", String(255), primary_key=True),
    Column("activity_id", Integer, ForeignKey("activities.id", ondelete="CASCADE"), nullable=False),
    Column("is_deleted", Boolean, nullable=False, default=False, server_default="0"),
    Index(None, "activity_id"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(20), nullable=False),  # alert / task / request / commitment / risk
    Column("text", Text, nullable=False),
    Column("due_at", UTCDateTime),
    Column("status", String(20), nullable=False, default="open"),  # open / done / dismissed
    Column("activity_id", Integer, ForeignKey("activities.id", ondelete="SET NULL")),
    Column("opportunity_id", Integer, ForeignKey("opportunities.id", ondelete="CASCADE")),
    Column("rule", String(120)),
    *_synced(),
    UniqueConstraint("source", "source_id"),
    Index(None, "opportunity_id", "status"),
    Index(None, "activity_id"),  # migration 0006_match_link: alerts follow their activity
)

stage_history = Table(
    "stage_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "opportunity_id",
        Integer,
        ForeignKey("opportunities.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("field", String(20), nullable=False),  # stage step amount close_date
    Column("old_value", String(255)),
    Column("new_value", String(255)),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("changed_by_id", Integer, ForeignKey("people.id")),
    # where the change came from: sync, create, transition, edit, conflict (migration 0009)
    Column("origin", String(20)),
    *_synced(),
    UniqueConstraint("source", "source_id"),
    Index(None, "opportunity_id", "changed_at"),
)

# Leads: people who showed interest and are not contacts of an account yet (Salesforce
# Lead, or made in oppkit). Accepting one (oppkit.leads) makes the account, the contact
# and the deal; a converted Salesforce lead names what it became. Migration 0011.
leads = Table(
    "leads",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("email", String(320)),  # normalised
    Column("company", String(255)),
    Column("title", String(255)),
    Column("status", String(60)),
    Column("lead_source", String(120)),
    Column("owner_id", Integer, ForeignKey("people.id")),
    Column("is_converted", Boolean, nullable=False, default=False, server_default="0"),
    Column("converted_at", Date),
    Column("converted_account_id", Integer, ForeignKey("accounts.id")),
    Column("converted_person_id", Integer, ForeignKey("people.id")),
    Column("converted_opportunity_id", Integer, ForeignKey("opportunities.id")),
    *_synced(),
    UniqueConstraint("source", "source_id"),
    Index(None, "email"),
)

# A contact (person_id) or a lead (lead_id) in a campaign.
campaign_members = Table(
    "campaign_members",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("person_id", Integer, ForeignKey("people.id")),  # nullable since 0011 (a lead)
    Column("lead_id", Integer, ForeignKey("leads.id")),  # migration 0011
    Column("status", String(60)),
    Column("has_responded", Boolean, nullable=False, default=False, server_default="0"),
    Column("first_responded_at", Date),
    *_synced(),
    UniqueConstraint("source", "source_id"),
    # migration 0012: covering indexes for the campaign report (oppkit.campaign_report):
    # members counted per campaign without reading the table, and a lead's or a
    # contact's memberships found from the lead or the person
    Index(None, "campaign_id", "is_deleted", "created_at"),
    Index(None, "person_id", "campaign_id", "is_deleted"),
    Index(None, "lead_id", "campaign_id", "is_deleted"),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("agent", String(60), nullable=False),
    Column("source", String(60), nullable=False),
    Column("object", String(500), nullable=False),
    Column("cursor", JSON(none_as_null=True)),
    Column("last_run_at", UTCDateTime),
    Column("last_error", Text),
    UniqueConstraint("agent", "source", "object"),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("agent", String(60), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("read", Integer, nullable=False, default=0),
    Column("written", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Column("errors", Integer, nullable=False, default=0),
    Column("status", String(20)),  # running / done / failed / interrupted
    Column("message", Text),
    # migration 0010: what ran, and who runs it (a run whose process is gone, or whose
    # heartbeat stopped, is interrupted: oppkit.liveness)
    Column("source", String(60)),  # the source label (file, imap, ews, api, csv...)
    Column("target", String(500)),  # what was synced: a path, user@host, an org (no secret)
    Column("host", String(200)),
    Column("pid", Integer),
    Column("heartbeat_at", UTCDateTime),
    Index(None, "agent", "source", "target", "id"),
    Index(None, "status"),
)

sync_locks = Table(
    "sync_locks",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),  # host:pid
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)


# --- workflow: steps, transitions, entries, follow-ons (see oppkit.workflow) ----------

steps = Table(
    "steps",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(120), nullable=False, unique=True),
    Column("stage_id", Integer, ForeignKey("stages.id"), nullable=False),
    Column("attributes", JSON(none_as_null=True)),  # opportunity attributes the step shows
    Column("description", Text),
    Column("sort_order", Integer),
    # a step dropped from the definition while opportunities still stand on it
    Column("is_active", Boolean, nullable=False, default=True, server_default="1"),
)

transitions = Table(
    "transitions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(120), nullable=False),
    Column("from_step_id", Integer, ForeignKey("steps.id"), nullable=False),
    Column("to_step_id", Integer, ForeignKey("steps.id"), nullable=False),
    Column("required_attributes", JSON(none_as_null=True)),
    Column("triggers", JSON(none_as_null=True)),
    Column("communications", JSON(none_as_null=True)),
    Column("sort_order", Integer),
    UniqueConstraint("from_step_id", "name"),
)

# Where a deal that arrives in a stage from Salesforce stands in the workflow: a
# Salesforce stage name (the workflow's own stages and those it maps onto them) -> step.
stage_arrivals = Table(
    "stage_arrivals",
    metadata,
    Column("stage_name", String(120), primary_key=True),
    Column("step_id", Integer, ForeignKey("steps.id", ondelete="CASCADE"), nullable=False),
)

workflow_entries = Table(
    "workflow_entries",
    metadata,
    Column("kind", String(20), primary_key=True),  # new_account / existing_account
    Column("step_id", Integer, ForeignKey("steps.id"), nullable=False),
)

# Named processes beside the default one ([entries]): each has its own entry steps, so
# a campaign's deals can start elsewhere in the workflow (or in a graph of their own).
process_entries = Table(
    "process_entries",
    metadata,
    Column("process", String(120), primary_key=True),
    Column("kind", String(20), primary_key=True),  # new_account / existing_account
    Column("step_id", Integer, ForeignKey("steps.id"), nullable=False),
)

follow_ons = Table(
    "follow_ons",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(120), nullable=False, unique=True),
    Column("step_id", Integer, ForeignKey("steps.id"), nullable=False),
)

links = Table(
    "links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "opportunity_id",
        Integer,
        ForeignKey("opportunities.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("kind", String(40), nullable=False),  # account contact invoice registration ...
    Column("reference", String(255), nullable=False),
    Column("data", JSON(none_as_null=True)),
    Column("transition", String(120)),
    Column("created_at", UTCDateTime, nullable=False, default=_now),
    Index(None, "opportunity_id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("opportunity_id", Integer, ForeignKey("opportunities.id", ondelete="CASCADE")),
    Column("transition", String(120)),
    Column("channel", String(10), nullable=False),  # email / sms
    Column("recipient", String(320), nullable=False),
    Column("subject", Text),
    Column("body", Text, nullable=False),
    Column("html", Text),
    Column("status", String(10), nullable=False, default="pending"),  # pending sent failed
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False, default=_now),
    Column("sent_at", UTCDateTime),
    # the outbound activity on the timeline that stands for this message (a campaign's
    # message; migration 0011): it shows queued, sent or failed with the message
    Column("activity_id", Integer, ForeignKey("activities.id", ondelete="SET NULL")),
    Index(None, "status"),
)

# --- contact and account lifecycle ------------------------------------------------------

lifecycle_stages = Table(
    "lifecycle_stages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(10), nullable=False),  # contact / account
    Column("name", String(120), nullable=False),
    Column("category", String(20), nullable=False),  # succeeded, in progress, not succeeded
    Column("external_status", String(120)),  # the Salesforce status it maps to
    Column("locks", Boolean, nullable=False, default=False, server_default="0"),
    Column("sort_order", Integer, nullable=False),
    UniqueConstraint("kind", "name"),
)

lifecycle_rules = Table(
    "lifecycle_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("event", String(40), nullable=False),
    Column("stage", String(120), nullable=False),
    UniqueConstraint("kind", "event"),
)

lifecycle_history = Table(
    "lifecycle_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("person_id", Integer, ForeignKey("people.id", ondelete="CASCADE")),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE")),
    Column("old_stage", String(120)),
    Column("new_stage", String(120), nullable=False),
    Column("reason", String(40), nullable=False),  # manual, or the rule's event
    Column("activity_id", Integer, ForeignKey("activities.id", ondelete="SET NULL")),
    Column("changed_at", UTCDateTime, nullable=False, default=_now),
    Column("changed_by_id", Integer, ForeignKey("people.id")),
    Index(None, "person_id"),
    Index(None, "account_id"),
)

# --- follower digests (migration 0005) ----------------------------------------------

digest_log = Table(
    "digest_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("person_id", Integer, ForeignKey("people.id", ondelete="CASCADE"), nullable=False),
    Column("frequency", String(10), nullable=False),  # daily / weekly
    Column("period", String(20), nullable=False),  # 2026-03-03 / 2026-W10
    Column("status", String(20), nullable=False, default="pending"),  # pending sending sent
    Column("window_start", UTCDateTime, nullable=False),
    Column("window_end", UTCDateTime, nullable=False),
    Column("message_id", String(255), nullable=False),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("claimed_at", UTCDateTime),
    Column("sent_at", UTCDateTime),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, default=_now),
    UniqueConstraint("person_id", "frequency", "period"),
)

# Who a PostgreSQL login role is: on a team database each person connects as their own
# role, and row-level security (migration 0008) shows each role only what that person
# may see. The table owner (the agents' role) is not listed and sees everything.
database_users = Table(
    "database_users",
    metadata,
    Column("role_name", String(63), primary_key=True),
    Column("person_id", Integer, ForeignKey("people.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, default=_now),
)

# Changes made in oppkit to fields Salesforce owns, on their way to Salesforce (write-back,
# oppkit.writeback; migration 0009): a deal's fields, a contact's or account's lifecycle
# status. Committed with the edit, transition or lifecycle change that made them; the
# Salesforce agent pushes them before it pulls.
outbound_changes = Table(
    "outbound_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    # the record: its Salesforce object and oppkit's row (one of the three ids)
    Column(
        "sobject", String(40), nullable=False, default="Opportunity", server_default="Opportunity"
    ),  # fmt: skip
    Column("opportunity_id", Integer, ForeignKey("opportunities.id", ondelete="CASCADE")),
    Column("person_id", Integer, ForeignKey("people.id", ondelete="CASCADE")),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE")),
    # oppkit's column (stage amount close_date ...) or lifecycle_status
    Column("field", String(40), nullable=False),
    Column("old_value", JSON(none_as_null=True)),  # what the person saw
    Column("new_value", JSON(none_as_null=True)),  # what they want
    Column("seen_modstamp", UTCDateTime),  # the SystemModstamp of the record they saw
    # pending -> pushed; pending -> conflict -> pending (push mine) or dropped (keep theirs)
    Column("status", String(12), nullable=False, default="pending"),
    Column("origin", String(20), nullable=False),  # edit / transition / rule
    Column("requested_by_id", Integer, ForeignKey("people.id")),
    Column("requested_at", UTCDateTime, nullable=False, default=_now),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("last_error", Text),
    Column("pushed_at", UTCDateTime),
    Column("their_value", JSON(none_as_null=True)),  # a conflict: Salesforce's value now
    Column("their_modstamp", UTCDateTime),
    Column("their_by", String(255)),  # who changed it in Salesforce
    Index(None, "status"),
    Index(None, "opportunity_id"),
    Index(None, "person_id"),
    Index(None, "account_id"),
)


# --- the account's Sales tab: interactions, stage actions, agreements, cases, policies ---
# (migration 0012; see oppkit.interactions, oppkit.agreements, oppkit.cases)

# A planned interaction and its result. The timeline row is the activity (subject, when,
# where, who, account, deal, is_planned); this row holds what only a plan or a result
# has. A Salesforce Task or Event is an interaction without a row here.
interactions = Table(
    "interactions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "activity_id",
        Integer,
        ForeignKey("activities.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),  # fmt: skip
    Column("interaction_type", String(40), nullable=False),  # call meeting email sms visit ...
    Column("follows_id", Integer, ForeignKey("interactions.id")),  # the plan it follows up
    Column("source_type", String(60)),
    Column("reason", String(255)),
    Column("planned_start", UTCDateTime),  # kept when a result moves the activity's time
    Column("planned_end", UTCDateTime),
    Column("location_comments", Text),
    Column("description", Text),
    Column("status", String(20), nullable=False, default="planned"),  # planned done cancelled
    Column("result_at", UTCDateTime),
    Column("result_type", String(60)),
    Column("result_comments", Text),
    Column("result_description", Text),
    # the message recorded with the result (sent after commit through oppkit.outbox)
    Column("message", JSON(none_as_null=True)),
    Column("outbox_id", Integer, ForeignKey("outbox.id", ondelete="SET NULL")),
    Column("created_by_id", Integer, ForeignKey("people.id")),
    Column("created_at", UTCDateTime, nullable=False, default=_now),
    Column("updated_at", UTCDateTime, default=_now, onupdate=_now),
    Index(None, "follows_id"),
)

# What a workflow stage lets a person do from a meeting or call on a deal in it.
stage_actions = Table(
    "stage_actions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("stage_name", String(120), nullable=False),
    Column("name", String(120), nullable=False),
    Column("kind", String(20), nullable=False),  # activity / letter
    Column("activity_kind", String(20)),  # task call meeting note ... (kind activity)
    Column("subject", Text),
    Column("template", Text),  # a letter's body (str.format over the deal's values)
    Column("sort_order", Integer),
    UniqueConstraint("stage_name", "name"),
)

# An account's agreements; a Salesforce Contract is one (status derived from the dates).
agreements = Table(
    "agreements",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("agreement_type", String(60), nullable=False),
    Column("start_date", Date),
    Column("end_date", Date),
    Column("contract_number", String(60)),
    Column("contract_status", String(60)),  # the Contract's own status, as Salesforce says
    Column("description", Text),
    *_synced(),
    UniqueConstraint("source", "source_id"),
    Index(None, "account_id"),
)

# Cases linked to a deal: Salesforce Cases and informal pending cases made in oppkit; a
# pending parent formalised into child cases hands them its deal link.
cases = Table(
    "cases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_number", String(60)),
    Column("subject", Text),
    Column("status", String(60)),
    Column("priority", String(40)),
    Column("description", Text),
    Column("account_id", Integer, ForeignKey("accounts.id")),
    Column("person_id", Integer, ForeignKey("people.id")),
    Column("opportunity_id", Integer, ForeignKey("opportunities.id")),
    Column("parent_id", Integer, ForeignKey("cases.id")),
    Column("is_formal", Boolean, nullable=False, default=True, server_default="1"),
    *_synced(),
    UniqueConstraint("source", "source_id"),
    Index(None, "opportunity_id"),
    Index(None, "account_id"),
)

# Policies (local records) with the deal they came from.
policies = Table(
    "policies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("policy_number", String(60), nullable=False),
    Column("name", String(255)),
    Column("policy_type", String(60)),
    Column("status", String(40)),
    Column("account_id", Integer, ForeignKey("accounts.id")),
    Column("opportunity_id", Integer, ForeignKey("opportunities.id")),
    Column("start_date", Date),
    Column("end_date", Date),
    Column("premium", Float),
    *_synced(),
    UniqueConstraint("source", "source_id"),
    Index(None, "opportunity_id"),
)

# What hangs under a plan besides the interactions that follow it up: the activities and
# stage actions done for it (the message its result sent, a letter, a task).
plan_items = Table(
    "plan_items",
    metadata,
    Column(
        "interaction_id",
        Integer,
        ForeignKey("interactions.id", ondelete="CASCADE"),
        primary_key=True,
    ),  # fmt: skip
    Column(
        "activity_id", Integer, ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True
    ),  # fmt: skip
    Index(None, "activity_id"),
)
