"""Salesforce REST API source: incremental by SystemModstamp, delete-aware, streaming.

Why: consultants need the pipeline fresh every few minutes without losing or doubling a
record. Each object is read with ``queryAll`` (deleted rows included) ordered by its
timestamp and Id, from the last committed timestamp minus an overlap window, so a row
whose transaction committed late is still picked up; rows are upserted by Id, so the
overlap never duplicates. A checkpoint follows every page (the API's nextRecordsUrl
pages), so a killed run resumes there and memory stays flat however big the org is.

Fields come from describe(): only fields that exist and are readable are asked for, so an
org without some standard field still syncs. Where the team names the field that holds a
contact's or account's lifecycle status (``[salesforce] contact_status_field``,
``account_status_field``) and the org has it, it is read into the record's
``external_status``; the sync maps it to a lifecycle stage. Records map to oppkit records through the
same builders as the Data Export (:mod:`oppkit.sources.salesforce_fields`).

Example::

    client = SalesforceClient.connect(SalesforceSettings.from_env())
    for record in read_salesforce(client, previous={}):
        ...
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..config import Settings, case_opportunity_field, contract_type_field, status_field
from .declaration import SourceOptions
from .records import Checkpoint, Deleted, Record, Skipped
from .salesforce_client import SalesforceClient, SalesforceSettings
from .salesforce_fields import (
    BUILDERS,
    SOURCE,
    CustomFields,
    SalesforceRow,
    Unusable,
    as_text,
    history_changes,
    parse_datetime,
    snapshot,
)

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = timedelta(minutes=5)
DELETED_WINDOW = timedelta(days=29)  # getDeleted only answers for the last 30 days
_ID = re.compile(r"^[A-Za-z0-9]{15,18}$")
# Objects whose lifecycle status oppkit reads (and, with write-back, pushes), by kind. A
# Lead's Status would be the third; leads are not synced yet.
STATUS_OBJECTS = {"Contact": "contact", "Account": "account"}

# What oppkit reads per object, in dependency order (what a record refers to comes first).
WANTED: dict[str, tuple[str, ...]] = {
    "OpportunityStage": ("Id", "MasterLabel", "ApiName", "IsActive", "SortOrder", "IsClosed",
                         "IsWon", "DefaultProbability", "SystemModstamp"),
    "User": ("Id", "Name", "FirstName", "LastName", "Email", "Title", "IsActive", "SystemModstamp"),
    "Account": ("Id", "Name", "Website", "Industry", "Type", "OwnerId", "CreatedDate",
                "LastModifiedDate", "SystemModstamp", "IsDeleted"),
    "Contact": ("Id", "AccountId", "FirstName", "LastName", "Name", "Email", "Title", "OwnerId",
                "SystemModstamp", "IsDeleted"),
    "Campaign": ("Id", "Name", "Status", "Type", "StartDate", "EndDate", "IsActive", "ParentId",
                 "BudgetedCost", "ActualCost", "ExpectedRevenue", "SystemModstamp", "IsDeleted"),
    "Opportunity": ("Id", "Name", "AccountId", "OwnerId", "StageName", "Amount", "CloseDate",
                    "Probability", "IsPrivate", "IsClosed", "IsWon", "CampaignId", "Type",
                    "LeadSource", "CurrencyIsoCode", "CreatedDate", "LastModifiedDate",
                    "SystemModstamp", "IsDeleted"),
    "OpportunityContactRole": ("Id", "OpportunityId", "ContactId", "Role", "IsPrimary",
                               "SystemModstamp", "IsDeleted"),
    "OpportunityHistory": ("Id", "OpportunityId", "StageName", "Amount", "CloseDate", "Probability",
                           "CreatedDate", "CreatedById", "SystemModstamp", "IsDeleted"),
    "OpportunityFieldHistory": ("Id", "OpportunityId", "Field", "OldValue", "NewValue",
                                "CreatedDate", "CreatedById", "IsDeleted"),
    "Lead": ("Id", "FirstName", "LastName", "Name", "Email", "Company", "Title", "Status",
             "LeadSource", "OwnerId", "IsConverted", "ConvertedDate", "ConvertedAccountId",
             "ConvertedContactId", "ConvertedOpportunityId", "CreatedDate", "SystemModstamp",
             "IsDeleted"),
    "CampaignMember": ("Id", "CampaignId", "ContactId", "LeadId", "Status", "HasResponded",
                       "FirstRespondedDate", "CreatedDate", "SystemModstamp", "IsDeleted"),
    "Contract": ("Id", "AccountId", "ContractNumber", "StartDate", "EndDate", "Status",
                 "SystemModstamp", "IsDeleted"),
    "Case": ("Id", "CaseNumber", "AccountId", "ContactId", "ParentId", "Subject", "Description",
             "Status", "Priority", "CreatedDate", "SystemModstamp", "IsDeleted"),
    "Task": ("Id", "WhoId", "WhatId", "AccountId", "OwnerId", "Subject", "Description",
             "ActivityDate", "Status", "Priority", "IsClosed", "TaskSubtype", "CallType",
             "CallDurationInSeconds", "CompletedDateTime", "CreatedDate", "SystemModstamp",
             "IsDeleted"),
    "Event": ("Id", "WhoId", "WhatId", "AccountId", "OwnerId", "Subject", "Description",
              "Location", "StartDateTime", "EndDateTime", "DurationInMinutes", "ActivityDateTime",
              "ActivityDate", "IsAllDayEvent", "CreatedDate", "SystemModstamp", "IsDeleted",
              "ICalUId"),
}  # fmt: skip
# Field history covers what OpportunityHistory does not (it already gives stage, amount and
# close date); those three are left out here so a change is never counted twice.
FIELD_HISTORY_SKIP = {"StageName", "Amount", "CloseDate", "created", "opportunityCreatedFromLead"}


def _soql_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cursor_field(fields: Sequence[str]) -> str:
    return "SystemModstamp" if "SystemModstamp" in fields else "CreatedDate"


class _ObjectReader:
    """Reads one object incrementally; yields records, skips and per-page checkpoints."""

    def __init__(
        self,
        client: SalesforceClient,
        name: str,
        fields: list[str],
        cursor: Mapping[str, Any],
        overlap: timedelta,
        attributes: Mapping[str, str],
        status_field: str | None = None,
        custom: CustomFields | None = None,
    ) -> None:
        self.client, self.name, self.fields = client, name, fields
        self.custom = custom  # the team's fields: a Contract's type, a Case's deal
        self.status_field = status_field  # the lifecycle status (Contact, Account)
        self.cursor_field = _cursor_field(fields)
        self.since = parse_datetime(cursor.get("modstamp")) if cursor.get("modstamp") else None
        self.overlap = overlap
        self.attributes = attributes  # custom field -> attribute name (Opportunity only)
        self.owner_only = False  # the org's sharing keeps every deal to its owner
        self.object_key = f"salesforce:{name}"

    def soql(self) -> str:
        # SOQL over REST has no bind parameters. Every piece here is ours: field and object
        # names from WANTED that describe() confirmed, and a datetime we formatted.
        query = f"SELECT {', '.join(self.fields)} FROM {self.name}"  # noqa: S608
        if self.since is not None:
            query += f" WHERE {self.cursor_field} >= {_soql_datetime(self.since - self.overlap)}"
        return query + f" ORDER BY {self.cursor_field}, Id"

    def read(self) -> Iterator[Record]:
        newest = self.since
        started = datetime.now(UTC)
        for page in self.client.query_pages(
            self.soql(), include_deleted="IsDeleted" in self.fields
        ):
            yield from self._records(page)
            stamps = [parse_datetime(r.get(self.cursor_field)) for r in page]
            newest = max([s for s in stamps if s] + ([newest] if newest else []), default=newest)
            if newest is not None:
                yield Checkpoint(self.object_key, {"modstamp": newest.isoformat()})
        if self.since is not None:
            yield from self._hard_deletes(started)

    def _records(self, page: list[dict[str, Any]]) -> Iterator[Record]:
        if self.name == "OpportunityHistory":
            yield from self._history(page)
            return
        if self.name == "OpportunityFieldHistory":
            yield from self._field_history(page)
            return
        build = BUILDERS[self.name]
        for number, raw in enumerate(page, start=1):
            row = SalesforceRow(raw, number, f"{self.name} {raw.get('Id') or '(no Id)'}")
            try:
                row.require("Id")
                record = build(row)
            except Unusable as exc:
                yield Skipped(str(exc), row.where)
                continue
            if self.attributes and hasattr(record, "attributes"):
                record.attributes = {a: raw.get(f) for f, a in self.attributes.items() if f in raw}
            if self.status_field:
                record.external_status = row.text(self.status_field)
            if self.custom is not None:
                self.custom.apply(record, row)
            if self.owner_only and self.name == "Opportunity":
                record.is_private = True  # the org shares deals with their owners only
            yield record

    def _history(self, page: list[dict[str, Any]]) -> Iterator[Record]:
        """Snapshots -> changes; earlier snapshots of the same deals give the old values."""
        wanted = {r["Id"] for r in page}
        opportunities = sorted(
            {r["OpportunityId"] for r in page if _ID.match(r.get("OpportunityId") or "")}
        )
        rows = []
        for start in range(0, len(opportunities), 200):
            ids = ", ".join(f"'{i}'" for i in opportunities[start : start + 200])
            query = (f"SELECT {', '.join(self.fields)} FROM OpportunityHistory "  # noqa: S608 (ids match _ID)
                     f"WHERE OpportunityId IN ({ids}) ORDER BY CreatedDate, Id")  # fmt: skip
            for chunk in self.client.query_pages(query, include_deleted=False):
                rows.extend(chunk)
        snaps = []
        for number, raw in enumerate(rows, start=1):
            row = SalesforceRow(raw, number, f"OpportunityHistory {raw.get('Id')}")
            try:
                snaps.append(snapshot(row))
            except Unusable as exc:
                if raw.get("Id") in wanted:
                    yield Skipped(str(exc), row.where)
        for change in history_changes(snaps):
            if change.source_id.split(":")[0] in wanted:
                yield change

    def _field_history(self, page: list[dict[str, Any]]) -> Iterator[Record]:
        from .records import OpportunityChangeRecord

        for raw in page:
            field = raw.get("Field") or ""
            changed_at = parse_datetime(raw.get("CreatedDate"))
            if field in FIELD_HISTORY_SKIP or not raw.get("Id") or not raw.get("OpportunityId"):
                continue
            if changed_at is None:
                yield Skipped(
                    "field history without CreatedDate", f"OpportunityFieldHistory {raw.get('Id')}"
                )
                continue
            yield OpportunityChangeRecord(
                source=SOURCE, source_id=raw["Id"], opportunity_ref=raw["OpportunityId"],
                field=_snake(field), old_value=_text_or_none(raw.get("OldValue")),
                new_value=_text_or_none(raw.get("NewValue")), changed_at=changed_at,
                changed_by_ref=raw.get("CreatedById"),
            )  # fmt: skip

    def _hard_deletes(self, until: datetime) -> Iterator[Record]:
        """Records purged from the recycle bin never show in queryAll: ask getDeleted.

        The window starts at the cursor (minus the overlap); the server caps its end at
        its own clock and answers only for the last 30 days, so an older cursor is
        clamped to that.
        """
        start = self.since - self.overlap
        ids = self.client.deleted_ids(self.name, start, until)
        if ids is None:  # the start is older than the server keeps deletions for
            ids = self.client.deleted_ids(self.name, until - DELETED_WINDOW, until) or []
        for record_id in ids:
            yield Deleted(SOURCE, self.name, record_id)


def _snake(field: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", field.removesuffix("__c")).lower()


def _text_or_none(value: Any) -> str | None:
    return None if value is None else as_text(value)


@dataclass(frozen=True)
class SalesforceOrg:
    """One run against an org: how to log in, which objects, the overlap, custom fields
    (``status_fields``: object -> the field holding its lifecycle status)."""

    login: SalesforceSettings
    objects: tuple[str, ...] | None = None
    overlap: timedelta = DEFAULT_OVERLAP
    opportunity_attributes: Mapping[str, str] | None = None
    status_fields: Mapping[str, str] | None = None
    custom_fields: CustomFields = CustomFields()

    def describe(self) -> str:
        return self.login.describe()


def salesforce_org(
    settings: Settings,
    login: SalesforceSettings | None = None,
    *,
    objects: Sequence[str] | None = None,
    overlap: timedelta | None = None,
    **login_overrides: Any,
) -> SalesforceOrg:
    """The org to sync: ``login`` or the OPPKIT_SF_* variables (``login_overrides`` first);
    the overlap and ``[salesforce.opportunity_attributes]`` default from oppkit.toml, the
    lifecycle status fields come from :func:`oppkit.config.status_field`."""
    config = settings.extra.get("salesforce", {}) if settings.extra else {}
    login = login or SalesforceSettings.from_env(config, **login_overrides)
    if overlap is None:
        minutes = config.get("overlap_minutes")
        overlap = timedelta(minutes=float(minutes)) if minutes is not None else DEFAULT_OVERLAP
    statuses = {
        sobject: field
        for sobject, kind in STATUS_OBJECTS.items()
        if (field := status_field(kind, settings))
    }
    custom = CustomFields(contract_type_field(settings), case_opportunity_field(settings))
    return SalesforceOrg(
        login, tuple(objects) if objects else None, overlap, config.get("opportunity_attributes"),
        statuses or None, custom,
    )  # fmt: skip


def salesforce_orgs(options: SourceOptions, settings: Settings) -> list[SalesforceOrg]:
    """The org the ``oppkit sync salesforce`` options and the environment name."""
    overlap = timedelta(seconds=options.overlap) if options.overlap is not None else None
    return [
        salesforce_org(
            settings,
            objects=options.objects,
            overlap=overlap,
            instance_url=options.instance_url,
            session_id=options.session_id,
        )
    ]


def read_org(org: SalesforceOrg, previous: Mapping[str, dict] | None = None) -> Iterator[Record]:
    """Log in now (a bad login fails before any read), then :func:`read_salesforce`."""
    client = SalesforceClient.connect(org.login)
    return read_salesforce(
        client,
        previous,
        objects=org.objects,
        overlap=org.overlap,
        opportunity_attributes=org.opportunity_attributes,
        status_fields=org.status_fields,
        custom_fields=org.custom_fields,
    )


def read_salesforce(
    client: SalesforceClient,
    previous: Mapping[str, dict] | None = None,
    *,
    objects: Sequence[str] | None = None,
    overlap: timedelta = DEFAULT_OVERLAP,
    opportunity_attributes: Mapping[str, str] | None = None,
    status_fields: Mapping[str, str] | None = None,
    custom_fields: CustomFields | None = None,
) -> Iterator[Record]:
    """Records from a Salesforce org, object by object, resuming from ``previous`` cursors.

    ``opportunity_attributes`` maps custom Opportunity fields (``Region__c``) to attribute
    names (``region``) stored with the opportunity. ``status_fields`` names the field of a
    Contact or Account that holds its lifecycle status (``{"Contact":
    "Lifecycle_Status__c"}``): read, where the org has it, into ``external_status``.
    ``custom_fields`` names a Contract's type field and a Case's deal field (where the
    org lacks one, the Contract takes the fallback type and the Case its account only).
    """
    custom = custom_fields or CustomFields()
    previous = previous or {}
    attributes = dict(opportunity_attributes or {})
    owner_only = "Opportunity" in (objects or WANTED) and deals_are_owner_only(client)
    for name in objects or WANTED:
        available = client.readable_fields(name)
        if available is None:
            log.info("the org has no readable %s; skipped", name)
            continue
        wanted = list(WANTED.get(name, ("Id",)))
        if name == "Opportunity":
            wanted += [f for f in attributes if f not in wanted]
        status = (status_fields or {}).get(name)
        if status and status not in wanted:
            wanted.append(status)
        wanted += [f for f in custom.wanted(name) if f not in wanted]
        fields = [f for f in wanted if f in available]
        if "Id" not in fields:
            yield Skipped("object without a readable Id", name)
            continue
        missing = sorted(set(wanted) - set(fields))
        if missing:
            log.info("%s: the org lacks %s; syncing without them", name, ", ".join(missing))
        reader = _ObjectReader(
            client, name, fields, previous.get(f"salesforce:{name}", {}), overlap,
            attributes if name == "Opportunity" else {}, status if status in fields else None,
            CustomFields(*(f if f in fields else None
                           for f in (custom.contract_type, custom.case_opportunity))),
        )  # fmt: skip
        reader.owner_only = owner_only
        yield from reader.read()


def deals_are_owner_only(client: SalesforceClient) -> bool:
    """Whether the org's sharing settings keep each opportunity to its owner.

    Salesforce says so in ``Organization.DefaultOpportunityAccess`` ("None" is Private;
    "ControlledByParent" follows ``DefaultAccountAccess``). Then every deal arrives
    private in oppkit: visible to its owner and members only. Where the org does not
    expose the setting, each deal's own ``IsPrivate`` decides.
    """
    available = client.readable_fields("Organization") or set()
    fields = [f for f in ("DefaultOpportunityAccess", "DefaultAccountAccess") if f in available]
    if "DefaultOpportunityAccess" not in fields:
        return False
    soql = f"SELECT {', '.join(fields)} FROM Organization"  # noqa: S608 (names from describe)
    for page in client.query_pages(soql, include_deleted=False):
        for row in page:
            deals, accounts = row.get("DefaultOpportunityAccess"), row.get("DefaultAccountAccess")
            if deals == "None" or (deals == "ControlledByParent" and accounts == "None"):
                return True
    return False
