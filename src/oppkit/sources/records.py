"""Plain records that sources yield and the sync runner writes.

Sources know no SQL: they read an upstream system (a file, a server) and yield these
records. References to other upstream objects (a Salesforce AccountId, an owner's user id)
stay as upstream ids in the ``*_ref`` fields; the runner resolves them to database rows.

Besides data, a source may yield:

* :class:`Checkpoint` -- everything yielded before it is covered by ``cursor``; the runner
  commits those rows and the cursor in one transaction, so a killed run resumes there.
* :class:`Skipped` -- an input the source could not use, with the reason; counted in the
  run summary, never fatal.
* :class:`Notice` -- a line for the user about input that was used, but not as it came
  (a file read as Windows-1252, a series cut at 5,000 occurrences); printed like a
  Skipped, never counted as one.

All datetimes are timezone-aware (UTC); dates are ``datetime.date``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T", bound=type)


def record(cls: T) -> T:
    """``@dataclass(slots=True)``, pickled as its class and its fields' values.

    Why: parse workers hand every parsed message to the sync as a pickle (#16). For a
    slots dataclass, pickle calls the dataclass's Python ``__getstate__`` and
    ``__setstate__`` per object, which made pickling a parsed message cost about as much
    as parsing it; a tuple of the values, given back to the constructor, costs a third.
    """
    cls = dataclass(slots=True)(cls)
    names = cls.__match_args__  # the __init__ fields, in order: every field here
    values = attrgetter(*names) if len(names) > 1 else (lambda obj: (getattr(obj, names[0]),))

    def __reduce__(self: Any) -> tuple[type, tuple]:  # noqa: N807
        return cls, values(self)

    cls.__reduce__ = __reduce__
    return cls


@record
class Participant:
    """Someone who took part in an activity, with how (from, to, cc, bcc, organizer...)."""

    email: str
    name: str | None = None
    role: str = "to"
    response: str | None = None  # attendee response for meetings (accepted, declined...)


@record
class Attachment:
    name: str | None
    content_type: str | None
    size: int


@record
class ActivityRecord:
    """A touch point on the timeline: email, meeting, call, note, sms, task, event."""

    source: str
    source_id: str
    kind: str
    occurred_at: datetime
    subject: str | None = None
    snippet: str | None = None
    text: str | None = None  # newest part of the body, for signals; not stored
    participants: list[Participant] = field(default_factory=list)
    thread_id: str | None = None
    duration_minutes: float | None = None
    location: str | None = None
    is_planned: bool = False
    status: str | None = None
    is_auto: bool = False  # bounce or auto-reply
    attachments: list[Attachment] = field(default_factory=list)
    # upstream references (Salesforce ids), resolved by the runner
    account_ref: str | None = None
    opportunity_ref: str | None = None
    campaign_ref: str | None = None  # a campaign activity (a Task about a Campaign)
    person_refs: list[str] = field(default_factory=list)
    owner_ref: str | None = None
    is_deleted: bool = False


@record
class AccountRecord:
    source: str
    source_id: str
    name: str
    domain: str | None = None
    owner_ref: str | None = None
    industry: str | None = None
    account_type: str | None = None
    # the account's lifecycle status in the upstream system (Salesforce: the field named
    # by [salesforce] account_status_field); None when it is not read or empty
    external_status: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    is_deleted: bool = False


@record
class PersonRecord:
    """A contact or a user. ``is_user`` marks the company's own users (internal)."""

    source: str
    source_id: str
    email: str | None
    name: str | None = None
    title: str | None = None
    account_ref: str | None = None
    is_user: bool = False
    # the contact's lifecycle status upstream ([salesforce] contact_status_field)
    external_status: str | None = None
    updated_at: datetime | None = None
    is_deleted: bool = False


@record
class StageRecord:
    """A stage of the sales process; status is open, won, lost or archived."""

    source: str
    name: str
    status: str = "open"
    sort_order: int | None = None
    probability: float | None = None
    is_active: bool = True


@record
class OpportunityRecord:
    source: str
    source_id: str
    name: str
    account_ref: str | None = None
    owner_ref: str | None = None
    stage: str | None = None
    amount: float | None = None
    currency: str | None = None
    close_date: date | None = None
    probability: float | None = None
    is_private: bool = False
    campaign_ref: str | None = None
    opportunity_type: str | None = None
    lead_source: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    is_deleted: bool = False
    attributes: dict[str, Any] | None = None  # custom fields mapped in oppkit.toml


@record
class OpportunityChangeRecord:
    """One change of an opportunity's stage, amount or close date (for stage_history)."""

    source: str
    source_id: str
    opportunity_ref: str
    field: str  # "stage", "amount", "close_date"
    old_value: str | None
    new_value: str | None
    changed_at: datetime
    changed_by_ref: str | None = None


@record
class OpportunityMemberRecord:
    """A person on a deal (Salesforce OpportunityContactRole) with their role."""

    source: str
    source_id: str
    opportunity_ref: str
    person_ref: str
    role: str | None = None
    is_primary: bool = False
    is_deleted: bool = False


@record
class CampaignRecord:
    """A campaign (Salesforce Campaign): what it cost, what it should bring, its parent."""

    source: str
    source_id: str
    name: str
    status: str | None = None
    campaign_type: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    parent_ref: str | None = None
    budgeted_cost: float | None = None
    actual_cost: float | None = None
    expected_revenue: float | None = None
    is_active: bool | None = None
    is_deleted: bool = False


@record
class LeadRecord:
    """A lead (Salesforce Lead): someone interested, not yet a contact of an account; a
    converted lead names the account, contact and deal it became."""

    source: str
    source_id: str
    name: str
    email: str | None = None
    company: str | None = None
    title: str | None = None
    status: str | None = None
    lead_source: str | None = None
    owner_ref: str | None = None
    is_converted: bool = False
    converted_at: date | None = None
    converted_account_ref: str | None = None
    converted_contact_ref: str | None = None
    converted_opportunity_ref: str | None = None
    created_at: datetime | None = None
    is_deleted: bool = False


@record
class CampaignMemberRecord:
    """A contact (``contact_ref``) or a lead (``lead_ref``) in a campaign."""

    source: str
    source_id: str
    campaign_ref: str
    contact_ref: str | None = None
    lead_ref: str | None = None
    status: str | None = None
    has_responded: bool = False
    first_responded_at: date | None = None
    created_at: datetime | None = None
    is_deleted: bool = False


@record
class ContractRecord:
    """An agreement of an account (Salesforce Contract): its type (the field named by
    ``[salesforce] contract_type_field``; None: the fallback type), dates, number, status."""

    source: str
    source_id: str
    account_ref: str
    agreement_type: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    contract_number: str | None = None
    contract_status: str | None = None
    is_deleted: bool = False


@record
class CaseRecord:
    """A case (Salesforce Case) on an account; ``opportunity_ref`` only where the org names
    the deal in a field of its own (``[salesforce] case_opportunity_field``)."""

    source: str
    source_id: str
    case_number: str | None = None
    subject: str | None = None
    status: str | None = None
    priority: str | None = None
    description: str | None = None
    account_ref: str | None = None
    contact_ref: str | None = None
    opportunity_ref: str | None = None
    parent_ref: str | None = None
    created_at: datetime | None = None
    is_deleted: bool = False
    # whether the org names a Case's deal (then its deal link is Salesforce's; else
    # oppkit's: a pending case formalised into it hands it the deal)
    links_opportunity: bool = False


@record
class Deleted:
    """An upstream record that was deleted (e.g. Salesforce getDeleted): hide its row."""

    source: str
    object: str  # upstream object name, e.g. "Opportunity"
    source_id: str


@record
class Checkpoint:
    """Everything yielded before this is covered by ``cursor`` (JSON-serialisable)."""

    object: str
    cursor: dict[str, Any]


@record
class Skipped:
    """An input the source could not use, e.g. a malformed message or a bad CSV row."""

    reason: str
    where: str = ""


@record
class Notice:
    """Something the user should know about input that was used, e.g. a file that was not
    UTF-8 and was read as Windows-1252; one line, not a skip."""

    reason: str
    where: str = ""


Record = (
    ActivityRecord
    | AccountRecord
    | PersonRecord
    | StageRecord
    | OpportunityRecord
    | OpportunityChangeRecord
    | OpportunityMemberRecord
    | CampaignRecord
    | CampaignMemberRecord
    | LeadRecord
    | ContractRecord
    | CaseRecord
    | Deleted
    | Checkpoint
    | Skipped
    | Notice
)
