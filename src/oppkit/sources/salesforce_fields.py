"""Salesforce fields -> oppkit records: one mapping shared by the export and the API.

Why: a Data Export CSV and a REST query return the same objects with the same API
field names; only the transport differs. Both wrap a record's values (as strings) in a
:class:`SalesforceRow` and call the builder for its object (:data:`BUILDERS`).

Forgiving by design: a bad optional value (an amount of "n/a") is logged and stored as
null; a row without its Id or a required field raises :class:`Unusable` (a Skipped).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

from dateutil.parser import isoparse

from oppkit.sources.records import (
    AccountRecord,
    ActivityRecord,
    CampaignMemberRecord,
    CampaignRecord,
    CaseRecord,
    ContractRecord,
    LeadRecord,
    OpportunityChangeRecord,
    OpportunityMemberRecord,
    OpportunityRecord,
    PersonRecord,
    Record,
    StageRecord,
)
from oppkit.sources.text import make_snippet

log = logging.getLogger(__name__)

SOURCE = "salesforce"
OPPORTUNITY_PREFIX = "006"  # Salesforce key prefixes of WhatId targets
ACCOUNT_PREFIX = "001"
CAMPAIGN_PREFIX = "701"
# A task about a campaign (WhatId a Campaign) is an internal campaign activity; its
# Salesforce status as oppkit's campaign activity status (oppkit.frames.campaigns)
CAMPAIGN_TASK_STATUS = {
    "not started": "assigned", "in progress": "in progress", "completed": "completed",
    "waiting on someone else": "in progress", "deferred": "cancelled",
}  # fmt: skip

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_T = TypeVar("_T")

# --- value parsers: "" and None mean null, anything unusable raises ValueError ----------


def parse_bool(value: str | None) -> bool | None:
    """``true``/``false`` (any case) or ``1``/``0``."""
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def parse_datetime(value: str | None) -> datetime | None:
    """An ISO datetime (``2024-01-15T10:30:00.000Z``, ``2024-01-15 10:30:00``) in UTC."""
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())  # fast; Salesforce's own format
    except ValueError:
        parsed = isoparse(value.strip())
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_date(value: str | None) -> date | None:
    """An ISO date (``2024-01-15``); a full datetime is accepted and cut to its date."""
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        parsed = parse_datetime(value)
        assert parsed is not None
        return parsed.date()


def parse_float(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    number = float(value.strip())
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def parse_int(value: str | None) -> int | None:
    number = parse_float(value)
    return None if number is None else int(number)


def domain_from_website(website: str | None) -> str | None:
    """``https://www.Acme.com/about`` -> ``acme.com``; None when there is no usable host."""
    if website is None or not website.strip():
        return None
    text = website.strip()
    if "://" not in text:
        text = "//" + text
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.removeprefix("www.").rstrip(".")
    if "." not in host or " " in host:
        return None
    return host


# --- rows -----------------------------------------------------------------------------


class Unusable(Exception):
    """A row lacks its Id or a required field; it becomes a Skipped."""


def as_text(value: Any) -> str:
    """A JSON value as the string a Data Export would hold (so one mapping serves both)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class SalesforceRow:
    """One record with forgiving typed accessors: a bad optional value becomes None.

    ``values`` are a CSV row's strings or a REST record's JSON values; a JSON value is
    read as the text an export would hold, only when a builder asks for it.
    """

    def __init__(self, values: dict[str, Any], number: int, where: str) -> None:
        self.values = values
        self.number = number  # 1-based data row number (the header is not counted)
        self.where = where  # "Opportunity.csv line 12", for Skipped and log lines

    def text(self, column: str) -> str | None:
        value = self.values.get(column)
        if value is None:
            return None
        if value.__class__ is not str:
            value = as_text(value)
        return value.strip() or None

    def require(self, column: str) -> str:
        value = self.text(column)
        if value is None:
            raise Unusable(f"missing {column}")
        return value

    def _typed(self, column: str, parse: Callable[[str | None], _T | None]) -> _T | None:
        value = self.text(column)
        try:
            return parse(value)
        except (ValueError, OverflowError):
            log.warning("%s: unusable %s %r, stored as null", self.where, column, value)
            return None

    def as_bool(self, column: str, default: bool = False) -> bool:
        value = self.values.get(column)
        if value.__class__ is bool:  # a REST record's JSON boolean, as it is
            return value
        value = self._typed(column, parse_bool)
        return default if value is None else value

    def as_float(self, column: str) -> float | None:
        value = self.values.get(column)
        if value.__class__ in (int, float) and math.isfinite(value):  # a JSON number
            return float(value)
        return self._typed(column, parse_float)

    def as_int(self, column: str) -> int | None:
        return self._typed(column, parse_int)

    def as_date(self, column: str) -> date | None:
        return self._typed(column, parse_date)

    def as_datetime(self, column: str) -> datetime | None:
        return self._typed(column, parse_datetime)

    def person_name(self) -> str | None:
        parts = (self.text("FirstName"), self.text("LastName"))
        return self.text("Name") or " ".join(p for p in parts if p) or None


# --- one builder per object: the mapping from API field names to records --------------


def _stage(row: SalesforceRow) -> StageRecord:
    name = row.text("MasterLabel") or row.text("ApiName")
    if name is None:
        raise Unusable("missing MasterLabel and ApiName")
    if row.as_bool("IsWon"):
        status = "won"
    elif row.as_bool("IsClosed"):
        status = "lost"
    else:
        status = "open"
    return StageRecord(
        source=SOURCE,
        name=name,
        status=status,
        sort_order=row.as_int("SortOrder"),
        probability=row.as_float("DefaultProbability"),
        is_active=row.as_bool("IsActive", default=True),
    )


def _user(row: SalesforceRow) -> PersonRecord:
    return PersonRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        email=row.text("Email"),
        name=row.person_name(),
        title=row.text("Title"),
        is_user=True,
        updated_at=_updated_at(row),
    )


def _account(row: SalesforceRow) -> AccountRecord:
    return AccountRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        name=row.require("Name"),
        domain=domain_from_website(row.text("Website")),
        owner_ref=row.text("OwnerId"),
        industry=row.text("Industry"),
        account_type=row.text("Type"),
        created_at=row.as_datetime("CreatedDate"),
        updated_at=_updated_at(row),
        is_deleted=row.as_bool("IsDeleted"),
    )


def _contact(row: SalesforceRow) -> PersonRecord:
    return PersonRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        email=row.text("Email"),
        name=row.person_name(),
        title=row.text("Title"),
        account_ref=row.text("AccountId"),
        updated_at=_updated_at(row),
        is_deleted=row.as_bool("IsDeleted"),
    )


def _campaign(row: SalesforceRow) -> CampaignRecord:
    return CampaignRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        name=row.require("Name"),
        status=row.text("Status"),
        campaign_type=row.text("Type"),
        start_date=row.as_date("StartDate"),
        end_date=row.as_date("EndDate"),
        parent_ref=row.text("ParentId"),
        budgeted_cost=row.as_float("BudgetedCost"),
        actual_cost=row.as_float("ActualCost"),
        expected_revenue=row.as_float("ExpectedRevenue"),
        is_active=row.as_bool("IsActive") if row.text("IsActive") is not None else None,
        is_deleted=row.as_bool("IsDeleted"),
    )


def _lead(row: SalesforceRow) -> LeadRecord:
    return LeadRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        name=row.person_name() or row.require("LastName"),
        email=row.text("Email"),
        company=row.text("Company"),
        title=row.text("Title"),
        status=row.text("Status"),
        lead_source=row.text("LeadSource"),
        owner_ref=row.text("OwnerId"),
        is_converted=row.as_bool("IsConverted"),
        converted_at=row.as_date("ConvertedDate"),
        converted_account_ref=row.text("ConvertedAccountId"),
        converted_contact_ref=row.text("ConvertedContactId"),
        converted_opportunity_ref=row.text("ConvertedOpportunityId"),
        created_at=row.as_datetime("CreatedDate"),
        is_deleted=row.as_bool("IsDeleted"),
    )


def _opportunity(row: SalesforceRow) -> OpportunityRecord:
    return OpportunityRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        name=row.require("Name"),
        account_ref=row.text("AccountId"),
        owner_ref=row.text("OwnerId"),
        stage=row.text("StageName"),
        amount=row.as_float("Amount"),  # empty stays None, never 0
        currency=row.text("CurrencyIsoCode"),
        close_date=row.as_date("CloseDate"),
        probability=row.as_float("Probability"),
        is_private=row.as_bool("IsPrivate"),
        campaign_ref=row.text("CampaignId"),
        opportunity_type=row.text("Type"),
        lead_source=row.text("LeadSource"),
        created_at=row.as_datetime("CreatedDate"),
        updated_at=_updated_at(row),
        is_deleted=row.as_bool("IsDeleted"),
    )


def _contact_role(row: SalesforceRow) -> OpportunityMemberRecord:
    return OpportunityMemberRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        opportunity_ref=row.require("OpportunityId"),
        person_ref=row.require("ContactId"),
        role=row.text("Role"),
        is_primary=row.as_bool("IsPrimary"),
        is_deleted=row.as_bool("IsDeleted"),
    )


def _contract(row: SalesforceRow) -> ContractRecord:
    """A Contract; its type comes from the configured field (:class:`CustomFields`)."""
    return ContractRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        account_ref=row.require("AccountId"),
        start_date=row.as_date("StartDate"),
        end_date=row.as_date("EndDate"),
        contract_number=row.text("ContractNumber"),
        contract_status=row.text("Status"),
        is_deleted=row.as_bool("IsDeleted"),
    )


def _case(row: SalesforceRow) -> CaseRecord:
    """A Case on its account; its deal only through the configured field (:class:`CustomFields`)."""
    return CaseRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        case_number=row.text("CaseNumber"),
        subject=row.text("Subject"),
        status=row.text("Status"),
        priority=row.text("Priority"),
        description=make_snippet(row.text("Description")),
        account_ref=row.text("AccountId"),
        contact_ref=row.text("ContactId"),
        parent_ref=row.text("ParentId"),
        created_at=row.as_datetime("CreatedDate"),
        is_deleted=row.as_bool("IsDeleted"),
    )


@dataclass(frozen=True)
class CustomFields:
    """The fields a team names in oppkit.toml that the API and the export read alike:
    ``contract_type`` (a Contract's agreement type, default ``Type__c``) and
    ``case_opportunity`` (a Case's deal; None: a Case belongs to its account only).

    >>> CustomFields("Agreement_Type__c", "Opportunity__c").wanted("Case")
    ['Opportunity__c']
    """

    contract_type: str | None = None
    case_opportunity: str | None = None

    def wanted(self, sobject: str) -> list[str]:
        """The extra fields to read of ``sobject``."""
        field = {"Contract": self.contract_type, "Case": self.case_opportunity}.get(sobject)
        return [field] if field else []

    def apply(self, record: Record, row: SalesforceRow) -> None:
        """Fill what the named fields say into a built record (in place)."""
        if isinstance(record, ContractRecord) and self.contract_type:
            record.agreement_type = row.text(self.contract_type)
        elif isinstance(record, CaseRecord) and self.case_opportunity:
            deal = row.text(self.case_opportunity) or ""
            record.opportunity_ref = deal if deal.startswith(OPPORTUNITY_PREFIX) else None
            record.links_opportunity = True


def _campaign_member(row: SalesforceRow) -> CampaignMemberRecord:
    contact, lead = row.text("ContactId"), row.text("LeadId")
    if contact is None and lead is None:
        raise Unusable("missing ContactId and LeadId")
    return CampaignMemberRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        campaign_ref=row.require("CampaignId"),
        contact_ref=contact,
        lead_ref=None if contact else lead,  # a converted lead's member row names both
        status=row.text("Status"),
        has_responded=row.as_bool("HasResponded"),
        first_responded_at=row.as_date("FirstRespondedDate"),
        created_at=row.as_datetime("CreatedDate"),
        is_deleted=row.as_bool("IsDeleted"),
    )


def _task(row: SalesforceRow) -> ActivityRecord:
    source_id = row.require("Id")
    subtype = row.text("TaskSubtype")
    if subtype == "Call" or row.text("CallType"):
        kind = "call"
    elif subtype == "Email":
        kind = "email"
    else:
        kind = "task"
    occurred_at = (
        row.as_datetime("CompletedDateTime")
        or _midnight(row.as_date("ActivityDate"))
        or row.as_datetime("CreatedDate")
    )
    if occurred_at is None:
        raise Unusable("no CompletedDateTime, ActivityDate or CreatedDate")
    seconds = row.as_float("CallDurationInSeconds")
    done = row.as_bool("IsClosed") or row.text("Status") == "Completed"
    refs = _activity_refs(row)
    status = row.text("Status")
    if refs["campaign_ref"] and kind == "task" and status:
        status = CAMPAIGN_TASK_STATUS.get(status.lower(), status.lower())
    return ActivityRecord(
        source=SOURCE,
        source_id=source_id,
        kind=kind,
        occurred_at=occurred_at,
        subject=row.text("Subject"),
        snippet=make_snippet(row.text("Description")),
        duration_minutes=None if seconds is None else seconds / 60,
        is_planned=not done,
        status=status,
        is_deleted=row.as_bool("IsDeleted"),
        **refs,
    )


def _event(row: SalesforceRow) -> ActivityRecord:
    source_id = row.require("Id")
    start = (
        row.as_datetime("StartDateTime")
        or row.as_datetime("ActivityDateTime")
        or _midnight(row.as_date("ActivityDate"))
    )
    if start is None:
        raise Unusable("no StartDateTime, ActivityDateTime or ActivityDate")
    duration = row.as_float("DurationInMinutes")
    end = row.as_datetime("EndDateTime")
    if duration is None and end is not None:
        duration = (end - start).total_seconds() / 60
    return ActivityRecord(
        source=SOURCE,
        source_id=source_id,
        kind="meeting",
        occurred_at=start,
        subject=row.text("Subject"),
        snippet=make_snippet(row.text("Description")),
        duration_minutes=duration,
        location=row.text("Location"),
        # the iCalendar UID of the calendar meeting it records, where the org has it:
        # a calendar's meetings carry their UID as thread_id, so the two find each other
        thread_id=row.text("ICalUId"),
        is_planned=start > datetime.now(UTC),
        is_deleted=row.as_bool("IsDeleted"),
        **_activity_refs(row),
    )


def _updated_at(row: SalesforceRow) -> datetime | None:
    return row.as_datetime("SystemModstamp") or row.as_datetime("LastModifiedDate")


def _midnight(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time(), UTC)


def _activity_refs(row: SalesforceRow) -> dict[str, Any]:
    """Task/Event links: WhatId points at an opportunity or account by its key prefix."""
    what = row.text("WhatId") or ""
    who = row.text("WhoId")
    return {
        "opportunity_ref": what if what.startswith(OPPORTUNITY_PREFIX) else None,
        "account_ref": row.text("AccountId") or (what if what.startswith(ACCOUNT_PREFIX) else None),
        "campaign_ref": what if what.startswith(CAMPAIGN_PREFIX) else None,
        "person_refs": [who] if who else [],
        "owner_ref": row.text("OwnerId"),
    }


# Objects in dependency order; OpportunityHistory is handled by history_changes instead.
BUILDERS: dict[str, Callable[[SalesforceRow], Record] | None] = {
    "OpportunityStage": _stage,
    "User": _user,
    "Account": _account,
    "Contact": _contact,
    "Campaign": _campaign,
    "Opportunity": _opportunity,
    "OpportunityContactRole": _contact_role,
    "OpportunityHistory": None,
    "Lead": _lead,
    "CampaignMember": _campaign_member,
    "Contract": _contract,
    "Case": _case,
    "Task": _task,
    "Event": _event,
}

# --- OpportunityHistory: snapshots -> changes ------------------------------------------

HISTORY_FIELDS = ("stage", "amount", "close_date")


class Snapshot(NamedTuple):
    opportunity_id: str
    changed_at: datetime
    row_id: str
    changed_by: str | None
    values: dict[str, str | None]  # HISTORY_FIELDS -> value as string


def snapshot(row: SalesforceRow) -> Snapshot:
    row_id = row.require("Id")
    opportunity_id = row.require("OpportunityId")
    changed_at = row.as_datetime("CreatedDate")
    if changed_at is None:
        raise Unusable("missing or unusable CreatedDate")
    amount = row.as_float("Amount")
    close_date = row.as_date("CloseDate")
    return Snapshot(
        opportunity_id=opportunity_id,
        changed_at=changed_at,
        row_id=row_id,
        changed_by=row.text("CreatedById"),
        values={
            "stage": row.text("StageName"),
            "amount": None if amount is None else str(amount),
            "close_date": None if close_date is None else close_date.isoformat(),
        },
    )


def history_changes(snapshots: list[Snapshot]) -> Iterator[OpportunityChangeRecord]:
    """One change per field that differs between consecutive snapshots of a deal.

    The first snapshot records the initial stage (old value None).
    """
    by_opportunity: dict[str, list[Snapshot]] = defaultdict(list)
    for snap in snapshots:
        by_opportunity[snap.opportunity_id].append(snap)
    for opportunity_id, snaps in by_opportunity.items():
        snaps.sort(key=lambda s: (s.changed_at, s.row_id))
        before: dict[str, str | None] | None = None
        for snap in snaps:
            if before is None:
                changed = [("stage", None)] if snap.values["stage"] is not None else []
            else:
                changed = [(f, before[f]) for f in HISTORY_FIELDS if before[f] != snap.values[f]]
            for name, old in changed:
                yield OpportunityChangeRecord(
                    source=SOURCE,
                    source_id=f"{snap.row_id}:{name}",
                    opportunity_ref=opportunity_id,
                    field=name,
                    old_value=old,
                    new_value=snap.values[name],
                    changed_at=snap.changed_at,
                    changed_by_ref=snap.changed_by,
                )
            before = snap.values
