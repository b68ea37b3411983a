"""A wire-level fake of the Salesforce REST API for tests.

The real ``simple_salesforce.Salesforce`` client talks to it over HTTPS on 127.0.0.1; a trustme CA
signs the certificate (``session.verify = fake.ca_path``). It serves the documented paths and JSON:
versions, limits, describeGlobal, describe, query / queryAll paged through
``nextRecordsUrl``, getDeleted, getUpdated, record updates (PATCH on sObject Rows, with
``If-Unmodified-Since``), the OAuth2 token endpoint and the SOAP login.

simple-salesforce sends logins to ``https://{domain}.salesforce.com``; they reach the fake through
its CONNECT tunnel: ``session.proxies = fake.proxies`` (the certificate covers ``*.salesforce.com``).

``FakeOrg.from_export(folder)`` fills an org from a Salesforce Data Export folder (the demo's
export: notebooks/04_workflow.ipynb writes back to it), keeping the export's record Ids.

What Salesforce does by itself, the org does too: ``org.convert_lead(id)`` converts a lead as
Lead Convert does (account, contact and opportunity made or reused, the lead's campaign
members gain the contact, IsConverted / Converted* / ConvertedDate set, SystemModstamp
bumped); ``org.delete(sobject, id)`` sends any record to the recycle bin (queryAll,
getDeleted), a Lead or Contact with its campaign members; a CampaignMember whose Status is
one of ``org.responded_statuses`` has responded (HasResponded; FirstRespondedDate the first
time).
"""

from __future__ import annotations

import base64
import calendar
import csv
import functools
import itertools
import json
import re
import secrets
import selectors
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time as clock
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import trustme
from requests.structures import CaseInsensitiveDict

from tests.fakes.holds import Holds

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # ascending in ASCII
_TEXT = {"string", "picklist", "textarea", "email", "phone", "url", "combobox"}
_NUMBER = {"double", "currency", "percent", "int"}
_XSD = {"id": "tns:ID", "reference": "tns:ID", "datetime": "xsd:dateTime", "int": "xsd:int"}
_XSD |= {t: "xsd:double" for t in ("double", "currency", "percent")}
_XSD |= {t: f"xsd:{t}" for t in ("boolean", "date", "anyType")}


_UPPER = str.maketrans(_B62, "0" * 10 + "1" * 26 + "0" * 26)
_CHECK = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_PAIRS = [a + b for a in _B62 for b in _B62]  # two base-62 digits, for fast Ids


def to18(id15: str) -> str:
    """Salesforce's case-safe 18-character Id: each 5-char chunk's uppercase letters as bits."""
    if len(id15) != 15 or not id15.isalnum():
        return id15
    bits = id15.translate(_UPPER)[::-1]  # reversed: the first character is the lowest bit
    return id15 + _CHECK[int(bits[10:], 2)] + _CHECK[int(bits[5:10], 2)] + _CHECK[int(bits[:5], 2)]


@functools.lru_cache(maxsize=1 << 16)  # records loaded together share their timestamps
def sf_datetime(value: datetime) -> str:
    """Salesforce's JSON datetime format: 2026-01-01T10:00:00.000+0000."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _coerce(ftype: str, value):
    """A Python or ISO-string value as the field type's stored Python value."""
    if value is None:
        return None
    if ftype == "datetime":
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        elif not isinstance(value, datetime):
            value = datetime.combine(value, time())
        return _utc(value)
    if ftype == "date":
        if isinstance(value, str):
            return date.fromisoformat(value)
        return value.date() if isinstance(value, datetime) else value
    if ftype == "int":
        return int(float(value)) if isinstance(value, str) else int(value)
    if ftype in _NUMBER:
        return float(value)
    return bool(value) if ftype == "boolean" else value


def _export_value(ftype: str, text: str):
    """A Data Export cell as the field type's stored value: empty is null (a checkbox false),
    Ids in their 18-character form."""
    if ftype == "boolean":
        return text.strip().lower() in ("true", "1")
    if not text.strip():
        return None
    if ftype in ("id", "reference"):
        return to18(text.strip())
    return text if ftype in _TEXT or ftype == "anyType" else _coerce(ftype, text.strip())


def _json_value(value):
    if isinstance(value, datetime):
        return sf_datetime(value)
    return value.isoformat() if isinstance(value, date) else value


_TO_JSON = {"datetime": sf_datetime, "date": date.isoformat, "anyType": _json_value}
_JSON_TOKENS = {bool: "VALUE_TRUE", int: "VALUE_NUMBER_INT", float: "VALUE_NUMBER_FLOAT"}
_JSON_TOKENS |= {str: "VALUE_STRING", dict: "START_OBJECT", list: "START_ARRAY"}


def _from_json(ftype: str, value):
    """A JSON value of a request body as the field type's stored value; ValueError if it does
    not fit (Salesforce answers JSON_PARSER_ERROR). A checkbox set to null turns false."""
    if ftype == "boolean":
        if value is None or isinstance(value, bool):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(value)
    if value is None:
        return None
    if isinstance(value, dict | list) or (isinstance(value, bool) and ftype != "anyType"):
        raise ValueError(value)
    if ftype in ("datetime", "date") and not isinstance(value, str):
        raise ValueError(value)
    if ftype in _NUMBER | {"datetime", "date"}:
        return _coerce(ftype, value)  # ValueError for text that is not one
    return value if ftype == "anyType" or isinstance(value, str) else str(value)


# -- describe metadata ------------------------------------------------------------------------
# "Object prefix: Field:type[>ReferenceTo|...][!: not nillable][~: read-only] ..."; every object
# starts with Id. "+audit" stands for CreatedDate, CreatedById, LastModified*, SystemModstamp.
_SCHEMA = """
Account 001: IsDeleted:boolean~ Name:string! Type:picklist ParentId:reference>Account
  Industry:picklist Website:url Phone:phone BillingCity:string BillingCountry:string
  AnnualRevenue:currency NumberOfEmployees:int Description:textarea OwnerId:reference>User!
  LastActivityDate:date~ +audit
Contact 003: IsDeleted:boolean~ AccountId:reference>Account LastName:string! FirstName:string
  Name:string!~ Title:string Email:email Phone:phone MobilePhone:phone Department:string
  LeadSource:picklist Description:textarea OwnerId:reference>User! LastActivityDate:date~ +audit
User 005: Username:string! LastName:string! FirstName:string Name:string!~ Email:email!
  Title:string Department:string IsActive:boolean ManagerId:reference>User +audit
Opportunity 006: IsDeleted:boolean~ AccountId:reference>Account Name:string! Description:textarea
  StageName:picklist! Amount:currency Probability:percent ExpectedRevenue:currency~
  CloseDate:date! Type:picklist NextStep:string LeadSource:picklist IsClosed:boolean~
  IsWon:boolean~ ForecastCategory:picklist~ ForecastCategoryName:picklist
  CampaignId:reference>Campaign OwnerId:reference>User! FiscalQuarter:int~ FiscalYear:int~
  LastActivityDate:date~ +audit
Task 00T: IsDeleted:boolean~ WhoId:reference>Contact|Lead
  WhatId:reference>Account|Opportunity|Campaign
  Subject:combobox ActivityDate:date Status:picklist! Priority:picklist! OwnerId:reference>User!
  Description:textarea AccountId:reference>Account~ IsClosed:boolean~ TaskSubtype:picklist
  CompletedDateTime:datetime~ CallDurationInSeconds:int +audit
Event 00U: IsDeleted:boolean~ WhoId:reference>Contact|Lead WhatId:reference>Account|Opportunity
  Subject:combobox Location:string IsAllDayEvent:boolean ActivityDateTime:datetime
  ActivityDate:date DurationInMinutes:int StartDateTime:datetime EndDateTime:datetime
  Description:textarea AccountId:reference>Account~ OwnerId:reference>User! ShowAs:picklist
  EventSubtype:picklist +audit
Campaign 701: IsDeleted:boolean~ Name:string! ParentId:reference>Campaign Type:picklist
  Status:picklist StartDate:date EndDate:date BudgetedCost:currency ActualCost:currency
  ExpectedRevenue:currency IsActive:boolean OwnerId:reference>User! +audit
Lead 00Q: IsDeleted:boolean~ LastName:string! FirstName:string Name:string!~ Company:string!
  Email:email Title:string Status:picklist! LeadSource:picklist OwnerId:reference>User!
  IsConverted:boolean~ ConvertedDate:date~ ConvertedAccountId:reference>Account~
  ConvertedContactId:reference>Contact~ ConvertedOpportunityId:reference>Opportunity~ +audit
CampaignMember 00v: IsDeleted:boolean~ CampaignId:reference>Campaign! LeadId:reference>Lead
  ContactId:reference>Contact Status:picklist HasResponded:boolean~ FirstRespondedDate:date~
  +audit
Contract 800: IsDeleted:boolean~ AccountId:reference>Account! ContractNumber:string!~
  StartDate:date EndDate:date~ ContractTerm:int Status:picklist! StatusCode:picklist~
  Description:textarea OwnerId:reference>User! ActivatedDate:datetime~ +audit
Case 500: IsDeleted:boolean~ CaseNumber:string!~ AccountId:reference>Account
  ContactId:reference>Contact ParentId:reference>Case Subject:string Description:textarea
  Status:picklist! Priority:picklist Origin:picklist Type:picklist IsClosed:boolean~
  ClosedDate:datetime~ OwnerId:reference>User! +audit
OpportunityContactRole 00K: IsDeleted:boolean~ OpportunityId:reference>Opportunity!
  ContactId:reference>Contact! Role:picklist IsPrimary:boolean +audit
OpportunityHistory 008: IsDeleted:boolean~ OpportunityId:reference>Opportunity!~
  CreatedById:reference>User!~ CreatedDate:datetime!~ StageName:picklist!~ Amount:currency~
  ExpectedRevenue:currency~ CloseDate:date~ Probability:percent~ ForecastCategory:picklist~
  PrevAmount:currency~ PrevCloseDate:date~ SystemModstamp:datetime!~
OpportunityStage 01J: MasterLabel:string! ApiName:string!~ IsActive:boolean SortOrder:int
  IsClosed:boolean IsWon:boolean ForecastCategory:picklist ForecastCategoryName:picklist
  DefaultProbability:percent Description:string +audit
OpportunityFieldHistory 017: IsDeleted:boolean~ OpportunityId:reference>Opportunity!~
  CreatedById:reference>User!~ CreatedDate:datetime!~ Field:picklist!~ DataType:picklist~
  OldValue:anyType~ NewValue:anyType~
"""  # Field history has no SystemModstamp / LastModifiedDate: sync it on CreatedDate.
_AUDIT = (
    "CreatedDate:datetime!~ CreatedById:reference>User!~ LastModifiedDate:datetime!~ "
    "LastModifiedById:reference>User!~ SystemModstamp:datetime!~"
)
_STAGE_FIELDS = ("MasterLabel", "IsClosed", "IsWon", "ForecastCategory", "DefaultProbability")
_STAGES = [
    ("Prospecting", False, False, "Pipeline", 10),
    ("Qualification", False, False, "Pipeline", 10),
    ("Needs Analysis", False, False, "Pipeline", 20),
    ("Value Proposition", False, False, "Pipeline", 50),
    ("Id. Decision Makers", False, False, "Pipeline", 60),
    ("Perception Analysis", False, False, "Pipeline", 70),
    ("Proposal/Price Quote", False, False, "Pipeline", 75),
    ("Negotiation/Review", False, False, "Pipeline", 90),
    ("Closed Won", True, True, "Closed", 100),
    ("Closed Lost", True, False, "Omitted", 0),
]


def field_meta(name: str, ftype: str, *, nillable=True, updateable=True, reference_to=(), **extra):
    """One describe field entry, shaped like Salesforce's (the keys a sync agent reads)."""
    label = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name.removesuffix("__c"))
    long_text, is_ref = ftype in ("textarea", "anyType"), ftype == "reference"
    length = {"id": 18, "reference": 18, "textarea": 32000}.get(ftype, 255 * (ftype in _TEXT))
    meta = {
        "name": name,
        "label": label[:-3] + " ID" if is_ref and label.endswith(" Id") else label,
        "type": ftype,
        "soapType": _XSD.get(ftype, "xsd:string"),
        "nillable": nillable and ftype not in ("boolean", "id"),
        "createable": updateable,
        "updateable": updateable,
        "filterable": not long_text,
        "sortable": not long_text,
        "custom": name.endswith("__c"),
        "calculated": False,
        "length": length,
        "precision": 18 if ftype == "currency" else 0,
        "scale": 2 if ftype == "currency" else 0,
        "referenceTo": list(reference_to),
        "relationshipName": name[:-2] if is_ref and name.endswith("Id") else None,
        "defaultValue": None,
        "externalId": False,
        "picklistValues": [],
    }
    return meta | extra


def parse_fields(spec: str) -> list[dict]:
    """Describe fields from the compact ``Name:type>Ref!~`` notation of ``_SCHEMA``."""
    fields = [field_meta("Id", "id", nillable=False, updateable=False)]
    for item in spec.replace("+audit", _AUDIT).split():
        decl = item.rstrip("!~")
        name, _, ftype = decl.partition(":")
        ftype, _, refs = ftype.partition(">")
        flags = item[len(decl) :]
        flags = {"nillable": "!" not in flags, "updateable": "~" not in flags}
        fields.append(
            field_meta(name, ftype, reference_to=refs.split("|") if refs else (), **flags)
        )
    return fields


# -- the org ----------------------------------------------------------------------------------


class FakeOrg:
    """In-memory org: objects -> {Id: record dict}; a clock for SystemModstamp.

    Values are stored as Python values (aware UTC datetimes, dates, floats). The clock is real time
    unless ``now`` is given, then frozen (move it with ``advance``/``set_now``); timestamps have whole
    seconds like Salesforce's. ``fields`` is the describe metadata per object: drop an entry (or
    ``del org.fields["OpportunityFieldHistory"]``) to simulate an org without it.
    """

    def __init__(self, *, now: datetime | None = None, standard_stages: bool = True) -> None:
        self.lock = threading.RLock()
        self._frozen = _utc(now).replace(microsecond=0) if now else None
        self._seq = itertools.count(1)
        self.fields: dict[str, list[dict]] = {}
        self.key_prefixes: dict[str, str] = {}
        self.records: dict[str, dict[str, dict]] = {}
        self.deleted_dates: dict[str, dict[str, datetime]] = {}  # the delete log of getDeleted
        self.responded_statuses = {"Responded"}  # CampaignMemberStatus.HasResponded
        for block in re.split(r"\n(?=\S)", _SCHEMA.strip()):
            head, _, spec = block.partition(":")
            self.define_object(*head.split(), spec)
        self.org_id, self.user_id = to18("00DFk0000000001"), to18("005Fk0000000001")
        self.earliest_deleted_available = (self.now() - timedelta(days=30)).replace(second=0)
        stages = [dict(zip(_STAGE_FIELDS, stage, strict=True)) for stage in _STAGES]
        for order, stage in enumerate(stages * standard_stages, 1):
            stage |= {"ApiName": stage["MasterLabel"], "SortOrder": order, "IsActive": True}
            self.add("OpportunityStage", ForecastCategoryName=stage["ForecastCategory"], **stage)

    @classmethod
    def from_export(cls, folder: str | Path, *, now: datetime | None = None) -> FakeOrg:
        """An org holding what a Salesforce Data Export folder holds (``<Object>.csv`` each).

        Records keep the export's Ids, so an API sync of this org lands on the rows an export
        sync of the folder wrote; references (OwnerId, AccountId, WhatId...) and audit stamps
        stay as exported. Only the objects and fields this fake defines are read: other files
        and columns are skipped, empty cells are nulls (false for a checkbox). A stamp a file
        lacks follows those it has: SystemModstamp and LastModifiedDate stand for each other
        (else CreatedDate), CreatedDate is the earliest of them; with none, ``now``. An
        exported OpportunityStage.csv replaces the standard stages; a record exported deleted
        is in the recycle bin (queryAll, getDeleted). ``now`` as in ``FakeOrg(now=...)``.

        >>> org = FakeOrg.from_export(files.salesforce_dir)
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"not a Salesforce export folder: {folder}")
        files = {path.stem.lower(): path for path in folder.glob("*.csv")}
        org = cls(now=now, standard_stages="opportunitystage" not in files)
        for stem in sorted(files, key=lambda stem: (stem != "opportunitystage", stem)):
            if (obj := org.object_name(stem)) is not None:  # stages first: deals derive from them
                org.add_many(obj, org._export_rows(obj, files[stem]))
        return org

    def _export_rows(self, obj: str, path: Path) -> Iterable[dict]:
        """The CSV's rows as ``add`` takes them, Ids included; see :meth:`from_export`."""
        _, types, lower = self._types(obj)
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for raw in csv.DictReader(handle):
                row = {}
                for key, text in raw.items():
                    name = lower.get((key or "").strip().lower())
                    if name is not None and text is not None:
                        row[name] = _export_value(types[name], text)
                row = {name: value for name, value in row.items() if value is not None}
                if not row.get("Id"):
                    continue
                self._export_defaults(obj, types, row)
                yield row

    def _export_defaults(self, obj: str, types: dict[str, str], row: dict) -> None:
        """What Salesforce always has and an export may leave out: audit stamps, a User's
        Username, a stage's ForecastCategory; a deleted record's place in the delete log."""
        stamps = [row[n] for n in ("SystemModstamp", "LastModifiedDate") if n in row]
        modified = stamps[0] if stamps else row.get("CreatedDate")
        for name in ("SystemModstamp", "LastModifiedDate"):
            if name in types and modified is not None:
                row.setdefault(name, modified)
        if "CreatedDate" in types and stamps:
            row.setdefault("CreatedDate", min(stamps))
        if obj == "User" and "Email" in row:
            row.setdefault("Username", row["Email"])
        if obj == "OpportunityStage":
            if category := row.get("ForecastCategory") or row.get("ForecastCategoryName"):
                row.setdefault("ForecastCategory", category)
                row.setdefault("ForecastCategoryName", category)
        if row.get("IsDeleted"):
            self.deleted_dates[obj][row["Id"]] = row.get("SystemModstamp") or self.now()

    def now(self) -> datetime:
        return self._frozen or datetime.now(UTC).replace(microsecond=0)

    def set_now(self, value: datetime) -> None:
        self._frozen = _utc(value).replace(microsecond=0)

    def advance(self, **delta: float) -> datetime:
        """Freeze the clock at now + timedelta(**delta)."""
        self._frozen = self.now() + timedelta(**delta)
        return self._frozen

    def define_object(self, name: str, key_prefix: str, spec: str = "IsDeleted:boolean~ +audit"):
        """Add an object, e.g. ``define_object("Deal__c", "a01", "IsDeleted:boolean~ Name:string")``."""
        self.fields[name], self.key_prefixes[name] = parse_fields(spec), key_prefix
        self.records.setdefault(name, {})
        self.deleted_dates.setdefault(name, {})

    def add_field(self, sobject: str, name: str, ftype: str, **meta) -> None:
        self.fields[sobject].append(field_meta(name, ftype, **meta))

    def drop_field(self, sobject: str, name: str) -> None:
        self.fields[sobject] = [f for f in self.fields[sobject] if f["name"] != name]

    def object_name(self, sobject: str) -> str | None:
        """The canonical name (object and field names are case-insensitive); None if absent."""
        return next((n for n in self.fields if n.lower() == sobject.lower()), None)

    def _types(self, sobject: str) -> tuple[str, dict[str, str], dict[str, str]]:
        """(object name, field types by name, field names by lowercase name)."""
        obj = self.object_name(sobject)
        if obj is None:
            raise KeyError(f"unknown sobject {sobject!r}")
        types = {f["name"]: f["type"] for f in self.fields[obj]}
        return obj, types, {n.lower(): n for n in types}

    def add(self, sobject: str, **fields) -> str:
        return self.add_many(sobject, [fields])[0]

    def add_many(self, sobject: str, rows: Iterable[dict]) -> list[str]:
        """Insert rows, returning their Ids; audit fields default to now and the org's user.

        A row may bring its own ``Id`` (a record copied from another org's export keeps it);
        else the org makes one. An Id already in the org is a ValueError."""
        obj, types, lower = self._types(sobject)
        now, prefix, table = self.now(), self.key_prefixes[obj], self.records[obj]
        base = {n: False for n, t in types.items() if t == "boolean"}
        base |= {"IsDeleted": False, "CreatedById": self.user_id, "LastModifiedById": self.user_id}
        base |= {"CreatedDate": now, "LastModifiedDate": now, "SystemModstamp": now}
        if "OwnerId" in types:
            base["OwnerId"] = self.user_id
        ids = []
        with self.lock:
            stages = self._stages() if obj == "Opportunity" else {}
            for row in rows:
                row = dict(row)
                given_id = row.pop("Id", None)
                rid = to18(str(given_id)) if given_id else self._new_id(prefix)
                if rid in table:
                    raise ValueError(f"{obj} {rid} exists already")
                given = self._convert(obj, types, lower, row)
                table[rid] = rec = base | {"Id": rid} | given
                self._derive(obj, rec, given, stages)
                ids.append(rid)
        return ids

    def update(self, sobject: str, id: str, **fields) -> None:
        """Set fields; LastModifiedDate and SystemModstamp become now unless given."""
        obj, types, lower = self._types(sobject)
        with self.lock:
            now, given = self.now(), self._convert(obj, types, lower, fields)
            rec = self.records[obj][to18(id)]
            rec |= {"LastModifiedDate": now, "SystemModstamp": now} | given
            self._derive(obj, rec, given, self._stages())

    def delete(self, sobject: str, id: str) -> None:
        """Soft delete: IsDeleted=True, kept for queryAll and getDeleted (deletedDate = now).
        As in Salesforce, a deleted Lead or Contact takes its campaign members with it."""
        obj, now, rid = self._types(sobject)[0], self.now(), to18(id)
        with self.lock:
            self.records[obj][rid] |= {"IsDeleted": True, "SystemModstamp": now}
            self.records[obj][rid]["LastModifiedDate"] = self.deleted_dates[obj][rid] = now
            link = {"Lead": "LeadId", "Contact": "ContactId"}.get(obj)
            members = self.records["CampaignMember"].values() if link else ()
            for member in [m for m in members if m.get(link) == rid and not m["IsDeleted"]]:
                if obj == "Contact" or not member.get("ContactId"):  # converted: the contact's
                    self.delete("CampaignMember", member["Id"])

    def get(self, sobject: str, id: str) -> dict:
        return dict(self.records[self._types(sobject)[0]][to18(id)])

    def convert_lead(
        self, lead_id: str, *, account_id: str | None = None, contact_id: str | None = None,
        create_opportunity: bool = True, status: str = "Closed - Converted",
    ) -> dict[str, str | None]:  # fmt: skip
        """Lead Convert: an account (``account_id``, else a new one named after the
        Company), a contact (``contact_id``, else a new one from the lead) and, unless
        ``create_opportunity=False``, a new opportunity named "<Company>-" as Salesforce
        names it; the lead's campaign members gain the contact. The lead becomes
        converted (Status, IsConverted, Converted*Id, ConvertedDate today), its
        SystemModstamp now. The new Ids: ``{"account", "contact", "opportunity"}``."""
        with self.lock:
            lead = self.get("Lead", lead_id)
            if lead["IsConverted"] or lead["IsDeleted"]:
                raise ValueError(f"lead {lead_id} is converted or deleted already")
            owner = {"OwnerId": lead["OwnerId"]}
            account_id = account_id or self.add("Account", Name=lead["Company"], **owner)
            contact_id = contact_id or self.add(
                "Contact", AccountId=account_id, FirstName=lead.get("FirstName"),
                LastName=lead["LastName"], Email=lead.get("Email"), Title=lead.get("Title"),
                LeadSource=lead.get("LeadSource"), **owner,
            )  # fmt: skip
            opportunity_id = None
            if create_opportunity:
                opportunity_id = self.add(
                    "Opportunity", Name=f"{lead['Company']}-", AccountId=account_id,
                    StageName=next(iter(self._stages())), LeadSource=lead.get("LeadSource"),
                    CloseDate=self.now().date() + timedelta(days=90), **owner,
                )  # fmt: skip
            for member in list(self.records["CampaignMember"].values()):
                if member.get("LeadId") == to18(lead_id) and not member["IsDeleted"]:
                    self.update("CampaignMember", member["Id"], ContactId=contact_id)
            self.update(
                "Lead", lead_id, Status=status, IsConverted=True, ConvertedDate=self.now().date(),
                ConvertedAccountId=account_id, ConvertedContactId=contact_id,
                ConvertedOpportunityId=opportunity_id,
            )  # fmt: skip
        return {"account": account_id, "contact": contact_id, "opportunity": opportunity_id}

    def _new_id(self, prefix: str) -> str:
        n = next(self._seq)  # 8 base-62 digits, so Ids sort in creation order
        high, low = divmod(n, 3844**2)
        digits = (
            _PAIRS[high // 3844 % 3844]
            + _PAIRS[high % 3844]
            + _PAIRS[low // 3844]
            + _PAIRS[low % 3844]
        )
        return to18(prefix + "Fk00" + digits)

    def _convert(self, obj: str, types: dict, lower: dict, row: dict) -> dict:
        out = {}
        for key, value in row.items():
            name = key if key in types else lower.get(key.lower())
            if name is None or name == "Id":
                raise ValueError(f"{obj} has no settable field {key!r} (see org.add_field)")
            out[name] = _coerce(types[name], value)
        return out

    def fields_of(self, obj: str) -> set[str]:
        return {f["name"] for f in self.fields[obj]}

    def _stages(self) -> dict[str, dict]:
        return {s["MasterLabel"]: s for s in self.records["OpportunityStage"].values()}

    def _derive(self, obj: str, rec: dict, given: dict, stages: dict[str, dict]) -> None:
        """What Salesforce computes: the Name of people, Opportunity fields from the stage."""
        if "FirstName" in given or "LastName" in given:
            rec["Name"] = " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p)
        stage = stages.get(rec.get("StageName")) if "StageName" in given else None
        for auto in ("ContractNumber", "CaseNumber"):  # auto numbers, as Salesforce gives them
            if obj in ("Contract", "Case") and auto in self.fields_of(obj) and not rec.get(auto):
                rec[auto] = f"{next(self._seq):08d}"
        if obj == "Contract" and "ContractTerm" in given and rec.get("StartDate"):
            start, months = rec["StartDate"], int(rec["ContractTerm"] or 0)
            year, month = divmod(start.month - 1 + months, 12)
            year, month = start.year + year, month + 1
            day = min(start.day, calendar.monthrange(year, month)[1])
            rec["EndDate"] = date(year, month, day) - timedelta(days=1)
        if obj == "Opportunity" and stage:
            for name in ("IsClosed", "IsWon", "ForecastCategory", "ForecastCategoryName"):
                rec[name] = given.get(name, stage[name])
            rec["Probability"] = given.get("Probability", stage["DefaultProbability"])
        if obj == "CampaignMember" and "Status" in given and "HasResponded" not in given:
            rec["HasResponded"] = rec["Status"] in self.responded_statuses
            if rec["HasResponded"] and not rec.get("FirstRespondedDate"):
                rec["FirstRespondedDate"] = self.now().date()


# -- SOQL subset ------------------------------------------------------------------------------


class SalesforceFault(Exception):
    """An error answer: HTTP status and ``[{"message": ..., "errorCode": ...}]``; a DML error
    (one about the record written) also names its ``fields``; ``more``: further errors."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[str] | None = None, more=()
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        error = {"message": message, "errorCode": code}
        self.errors = [error if fields is None else error | {"fields": fields}, *more]


def _malformed(message: str) -> SalesforceFault:
    return SalesforceFault(400, "MALFORMED_QUERY", message)


def _if_unmodified_since(value: str | None) -> datetime | None:
    """The header's HTTP date (RFC 7231: ``Wed, 02 Dec 2026 10:00:00 GMT``; whole seconds).
    Salesforce documents a 400 for an invalid value on PATCH (not which error code)."""
    if value is None:
        return None
    try:
        return _utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError) as e:
        message = f"Invalid If-Unmodified-Since header value: {value}"
        raise SalesforceFault(400, "INVALID_HEADER_VALUE", message) from e


_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')"
    r"|(?P<dt>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))"
    r"|(?P<date>\d{4}-\d\d-\d\d)|(?P<num>[+-]?\d+(?:\.\d+)?)"
    r"|(?P<op><=|>=|!=|<>|=|<|>)|(?P<punct>[(),])|(?P<word>[A-Za-z_][\w.]*))"
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


class _Soql:
    """``SELECT f, ... | COUNT() FROM Obj [WHERE expr] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST],
    ...] [LIMIT n] [OFFSET n]``. expr combines conditions with AND, OR, NOT and parentheses (AND
    and OR do not mix unparenthesised, as in SOQL); a condition is ``f op literal``,
    ``f [NOT] IN (literal, ...)`` or ``f LIKE 'pattern'``. Where is a tree of tuples:
    ("AND"|"OR", left, right), ("NOT", node), ("COND", field, op, literal or [literals])."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos, text, self.i = 0, text.strip(), 0
        while pos < len(text):
            if not (m := _TOKEN.match(text, pos)):
                raise _malformed(f"unexpected token: '{text[pos:].split()[0]}'")
            self.tokens.append((m.lastgroup, m.group(m.lastgroup)))
            pos = m.end()
        self.expect("SELECT")
        self.fields: list[str] = []
        self.count = "".join(v for _, v in self.tokens[self.i : self.i + 3]).upper() == "COUNT()"
        self.i += 3 * self.count
        while not self.count and (not self.fields or self.punct(",")):
            self.fields.append(self.ident())
        self.expect("FROM")
        self.sobject = self.ident()
        self.where = self.expression() if self.keyword("WHERE") else None
        self.order: list[tuple[str, bool, bool]] = []  # field, descending, nulls first
        if self.keyword("ORDER"):
            self.expect("BY")
            while not self.order or self.punct(","):
                name, desc = self.ident(), self.keyword("DESC")
                if not desc:
                    self.keyword("ASC")
                nulls_first = not desc
                if self.keyword("NULLS"):
                    nulls_first = self.keyword("FIRST") or not self.expect("LAST")
                self.order.append((name, desc, nulls_first))
        self.limit = self.integer() if self.keyword("LIMIT") else None
        self.offset = self.integer() if self.keyword("OFFSET") else 0
        if self.i < len(self.tokens):
            self.fail()

    def fail(self):
        token = self.tokens[self.i][1] if self.i < len(self.tokens) else "<EOF>"
        raise _malformed(f"unexpected token: '{token}'")

    def take(self, *kinds: str) -> str:
        if self.i >= len(self.tokens) or self.tokens[self.i][0] not in kinds:
            self.fail()
        self.i += 1
        return self.tokens[self.i - 1][1]

    def keyword(self, word: str) -> bool:
        ok = self.i < len(self.tokens) and self.tokens[self.i][0] == "word"
        ok = ok and self.tokens[self.i][1].upper() == word
        self.i += ok
        return ok

    def expect(self, word: str) -> bool:
        return self.keyword(word) or self.fail()

    def punct(self, char: str) -> bool:
        ok = self.i < len(self.tokens) and self.tokens[self.i] == ("punct", char)
        self.i += ok
        return ok

    def ident(self) -> str:
        return self.take("word")

    def integer(self) -> int:
        value = self.take("num")
        if not value.isdigit():
            self.i -= 1
            self.fail()
        return int(value)

    def literal(self) -> tuple[str, object]:
        kind = self.tokens[self.i][0] if self.i < len(self.tokens) else None
        value = self.take("str", "dt", "date", "num", "word")
        if kind == "str":
            return "str", re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), value[1:-1])
        if kind != "word":
            return kind, value
        if value.lower() not in ("true", "false", "null"):
            self.i -= 1
            self.fail()
        return ("null", None) if value.lower() == "null" else ("bool", value.lower() == "true")

    def expression(self) -> tuple:
        node = self.factor()
        op = "AND" if self.keyword("AND") else "OR" if self.keyword("OR") else None
        while op:
            node = (op, node, self.factor())
            if not self.keyword(op):
                break
        if self.keyword("AND") or self.keyword("OR"):  # a AND b OR c: ambiguous in SOQL
            self.i -= 1
            self.fail()
        return node

    def factor(self) -> tuple:
        if self.keyword("NOT"):
            return "NOT", self.factor()
        if self.punct("("):
            node = self.expression()
            self.punct(")") or self.fail()
            return node
        return "COND", *self.condition()

    def condition(self) -> tuple[str, str, object]:
        name = self.ident()
        negated = self.keyword("NOT")
        if negated or self.keyword("IN"):
            if negated:
                self.expect("IN")
            self.punct("(") or self.fail()
            values = [self.literal()]
            while self.punct(","):
                values.append(self.literal())
            self.punct(")") or self.fail()
            return name, "NOT IN" if negated else "IN", values
        if self.keyword("LIKE"):
            return name, "LIKE", self.literal()
        op = self.take("op")
        return name, "!=" if op == "<>" else op, self.literal()


_OPS: dict[str, Callable] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,  # SOQL's != matches nulls too
    "<": lambda a, b: a is not None and a < b,
    "<=": lambda a, b: a is not None and a <= b,
    ">": lambda a, b: a is not None and a > b,
    ">=": lambda a, b: a is not None and a >= b,
}


def _norm(ftype: str) -> Callable:
    """Comparison key: text compares case-insensitively, 15-char Ids equal their 18-char form."""
    if ftype in _TEXT:
        return lambda v: v.casefold() if isinstance(v, str) else v
    if ftype in ("id", "reference"):
        return lambda v: to18(v) if isinstance(v, str) else v
    return lambda v: v


def _literal_value(meta: dict, literal: tuple[str, object]):
    kind, raw = literal
    expected = {"datetime": "dt", "date": "date", "boolean": "bool"}.get(meta["type"])
    expected = expected or ("num" if meta["type"] in _NUMBER else "str")
    if kind == "null":
        return None
    if kind != expected:
        xsd = {"str": "string", "num": "double", "dt": "dateTime"}.get(expected, expected)
        quotes = "be enclosed in quotes" if expected == "str" else "not be enclosed in quotes"
        raise SalesforceFault(
            400,
            "INVALID_QUERY_FILTER_OPERATOR",
            f"value of filter criterion for field '{meta['name']}' must be of type {xsd} "
            f"and should {quotes}",
        )
    return _coerce(meta["type"], raw) if kind in ("dt", "date", "num") else raw


def _plan(org: FakeOrg, soql: str):
    """Parse a query and resolve it against the describe: (object, query, fields, match, sort)."""
    q = _Soql(soql)
    obj = org.object_name(q.sobject)
    if obj is None:
        raise SalesforceFault(
            400,
            "INVALID_TYPE",
            f"sObject type '{q.sobject}' is not supported. If you are attempting to use a custom "
            "object, be sure to append the '__c' after the entity name. Please reference your "
            "WSDL or the describe call for the appropriate names.",
        )
    metas = {f["name"].lower(): f for f in org.fields[obj]}

    def field(name: str, use: str = "") -> dict:
        meta = metas.get(name.lower())
        if "." in name:  # relationship paths are not implemented
            message = f"Didn't understand relationship '{name.split('.')[0]}' in field path."
        elif meta is None:
            message = (
                f"No such column '{name}' on entity '{obj}'. If you are attempting to use a "
                "custom field, be sure to append the '__c' after the custom field name. Please "
                "reference your WSDL or the describe call for the appropriate names."
            )
        elif use and not meta[use + "able"]:
            message = f"field '{meta['name']}' can not be {use}ed in a query call"
        else:
            return meta
        raise SalesforceFault(400, "INVALID_FIELD", message)

    def compile(node: tuple | None) -> Callable[[dict], bool]:
        if node is None:
            return lambda r: True
        if node[0] in ("AND", "OR"):
            left, right = compile(node[1]), compile(node[2])
            if node[0] == "AND":
                return lambda r: left(r) and right(r)
            return lambda r: left(r) or right(r)
        if node[0] == "NOT":
            inner = compile(node[1])
            return lambda r: not inner(r)
        _, name, op, literal = node
        meta = field(name, "filter")
        norm, key = _norm(meta["type"]), meta["name"]
        if op in ("IN", "NOT IN"):
            values, want = {norm(_literal_value(meta, lit)) for lit in literal}, op == "IN"
            return lambda r: (norm(r.get(key)) in values) == want
        if op == "LIKE":
            pattern = re.escape(_literal_value(meta, literal)).replace("%", ".*").replace("_", ".")
            rx = re.compile(pattern, re.IGNORECASE | re.DOTALL)
            return lambda r: r.get(key) is not None and bool(rx.fullmatch(r[key]))
        value, compare = norm(_literal_value(meta, literal)), _OPS[op]
        return lambda r: compare(norm(r.get(key)), value)

    selected = [field(n) for n in q.fields]
    match = compile(q.where)
    order = [(field(n, "sort"), desc, nulls_first) for n, desc, nulls_first in q.order]

    def sort(rows: list[dict]) -> None:
        for meta, desc, nulls_first in reversed(order):  # stable sorts, last key first
            norm, key = _norm(meta["type"]), meta["name"]
            null = (0,) if nulls_first != desc else (2,)
            rows.sort(key=lambda r: null if r.get(key) is None else (1, norm(r[key])), reverse=desc)

    return obj, q, selected, match, sort


# -- HTTP -------------------------------------------------------------------------------------

_FAULTS = {
    400: ("MALFORMED_QUERY", "Injected bad request."),
    401: ("INVALID_SESSION_ID", "Session expired or invalid"),
    403: ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    404: ("NOT_FOUND", "The requested resource does not exist"),
    500: ("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId..."),
    503: ("SERVER_UNAVAILABLE", "Server temporarily unavailable, please try again later."),
}
_V = r"/services/data/v(?P<v>\d+\.\d)"
_ROUTES = [  # method, path, handler, is an authenticated (and counted) API call
    ("GET", r"/services/data/?", "versions", False),
    ("GET", _V + r"/limits/?", "limits", True),
    ("GET", _V + r"/sobjects/?", "describe_global", True),
    ("GET", _V + r"/sobjects/(?P<obj>\w+)/describe/?", "describe", True),
    ("GET", _V + r"/sobjects/(?P<obj>\w+)/(?P<kind>deleted|updated)/?", "replication", True),
    ("GET", _V + r"/(?P<ep>query|queryAll)/?", "query", True),
    ("GET", _V + r"/(?P<ep>query|queryAll)/(?P<loc>\w+-\d+)/?", "query_more", True),
    ("PATCH", _V + r"/sobjects/(?P<obj>\w+)/(?P<rid>[^/]+)/?", "update", True),
    ("POST", r"/services/oauth2/token", "oauth_token", False),
    ("POST", r"/services/Soap/u/(?P<v>\d+\.\d)(?:/.*)?", "soap_login", False),
]
_SOAP = (
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.'
    'xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:sf="urn:fault.'
    'partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    "<soapenv:Body>{}</soapenv:Body></soapenv:Envelope>"
)
_LOGIN_FAULT = (
    "<soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: {0}"
    '</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>'
    "INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>{0}</sf:exceptionMessage>"
    "</sf:LoginFault></detail></soapenv:Fault>"
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Salesforce
    timeout = 30  # close idle connections
    disable_nagle_algorithm = True  # headers and body are two writes

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.fake._dispatch(self)

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def reply(self, status: int, body, content_type: str | None, usage: str) -> None:
        """Send an answer; a 204 (body None) has neither body nor Content-Type/Length."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", content_type or "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
        if usage:
            self.send_header("Sforce-Limit-Info", usage)
        self.end_headers()
        if status != 204:
            self.wfile.write(data)


class _HttpsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeSalesforce, context: ssl.SSLContext) -> None:
        self.fake, self.context = fake, context
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request, client_address) -> None:
        try:  # the TLS handshake happens here, in the connection's own thread
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # resets and TLS errors are expected
            super().handle_error(request, client_address)


class _TunnelHandler(socketserver.BaseRequestHandler):
    """An HTTP CONNECT proxy that tunnels every target (login.salesforce.com, ...) to the fake."""

    def handle(self) -> None:
        reader = self.request.makefile("rb", buffering=0)
        request_line = reader.readline(65536).decode("latin-1").split()
        while reader.readline(65536) not in (b"\r\n", b"\n", b""):
            pass
        if request_line[:1] != ["CONNECT"] or len(request_line) < 2:
            self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        fake = self.server.fake
        fake.tunnels.append(request_line[1])
        with socket.create_connection(("127.0.0.1", fake.port)) as upstream:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with selectors.DefaultSelector() as sel:
                sel.register(self.request, selectors.EVENT_READ, upstream)
                sel.register(upstream, selectors.EVENT_READ, self.request)
                while not fake._stopped.is_set():
                    for key, _ in sel.select(timeout=0.5):
                        if not (data := key.fileobj.recv(65536)):
                            return
                        key.data.sendall(data)


class Patch(NamedTuple):
    """A PATCH request as it arrived: the record Id of its path, the decoded JSON body (the raw
    bytes if it was not JSON) and the request headers (a case-insensitive dict)."""

    id: str
    body: object
    headers: CaseInsensitiveDict


class FakeSalesforce:
    """HTTPS server on 127.0.0.1 (threaded) speaking the Salesforce REST API; a context manager."""

    versions = [f"{v}.0" for v in range(50, 63)]

    def __init__(
        self,
        org: FakeOrg,
        *,
        page_size: int = 2000,
        session_id: str = "SESSION",
        username: str = "user@example.com",
        password: str = "password",
        token: str = "TOKEN",
        consumer_key: str = "CONSUMER_KEY",
        consumer_secret: str = "CONSUMER_SECRET",
        daily_api_max: int = 100_000,
    ) -> None:
        self.org, self.page_size, self.session_id = org, page_size, session_id
        self.username, self.password, self.token = username, password, token
        self.consumer_key, self.consumer_secret = consumer_key, consumer_secret
        self.daily_api_max, self.api_used = daily_api_max, 0
        self.requests: list[tuple[str, str]] = []  # (method, path+query) of every request
        self.patches: list[Patch] = []  # every PATCH, faulted ones too
        self._rules: dict[str, list[tuple[Callable[[dict], bool], str, str | None]]] = {}
        self._locked: set[str] = set()  # Ids of records locked (e.g. by an approval process)
        self.tunnels: list[str] = []  # CONNECT targets seen by the proxy
        self._sessions = {session_id}
        self._faults: list[list] = []  # [times, path_contains, status or None (= drop), code, msg]
        self._limit_exceeded = False
        self.latency = 0.0  # seconds each API answer takes, as a real org's query does
        self.holds = Holds()  # requests to hold until the test releases them ("GET /path?q")
        self._cursors: dict[str, tuple] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._dir = tempfile.TemporaryDirectory(prefix="fake-salesforce-")
        ca = trustme.CA()
        names = ("127.0.0.1", "localhost", "*.salesforce.com", "*.my.salesforce.com")
        self.ca_path = str(Path(self._dir.name) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names, "*.sandbox.my.salesforce.com").configure_cert(context)
        self._https = _HttpsServer(self, context)
        self.port = self._https.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._tunnel = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _TunnelHandler)
        self._tunnel.daemon_threads, self._tunnel.fake = True, self
        self.proxy_url = f"http://127.0.0.1:{self._tunnel.server_address[1]}"
        self.proxies = {"https": self.proxy_url}
        for server in (self._https, self._tunnel):
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def __enter__(self) -> FakeSalesforce:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stopped.set()
        self.holds.release_all()
        for server in (self._https, self._tunnel):
            server.shutdown()
            server.server_close()
        self._dir.cleanup()

    # -- test controls --
    def fail_next(
        self, status: int, times: int = 1, path_contains: str = "", *, code=None, msg=None,
        echo_headers: bool = False, text: bool = False,
    ):  # fmt: skip
        """The next ``times`` matching requests answer ``status`` with a Salesforce error body.

        ``echo_headers``: the message goes on with the request's headers (Authorization too),
        as a proxy's or a debugging gateway's error page does. ``text``: the body is that
        message as text/plain, not Salesforce's JSON list (a page from something in between).
        """
        default_code, default_msg = _FAULTS.get(status, ("UNKNOWN_EXCEPTION", f"HTTP {status}"))
        with self._lock:
            self._faults.append([times, path_contains, status, code or default_code,
                                 msg or default_msg, echo_headers, text])  # fmt: skip

    def drop_next(self, times: int = 1, path_contains: str = "") -> None:
        """The next ``times`` matching requests get the connection closed without a response."""
        with self._lock:
            self._faults.append([times, path_contains, None, "", "", False, False])

    def clear_faults(self) -> None:
        """Forget pending fail_next / drop_next faults."""
        with self._lock:
            self._faults.clear()

    def limit_exceeded(self, on: bool = True) -> None:
        self._limit_exceeded = on

    def expire_session(self) -> None:
        """Every token issued so far turns invalid (401 INVALID_SESSION_ID); logins make new ones."""
        self._sessions.clear()

    def issue_session(self, token: str | None = None) -> str:
        token = token or f"{self.org.org_id[:15]}!AQ{secrets.token_urlsafe(24)}"
        self._sessions.add(token)
        return token

    def expire_query_locators(self) -> None:
        """Open cursors vanish; their nextRecordsUrl answers 400 INVALID_QUERY_LOCATOR."""
        self._cursors.clear()

    def call_count(self, path_contains: str) -> int:
        return sum(path_contains in path for _, path in self.requests)

    def add_validation_rule(
        self,
        sobject: str,
        error_condition: Callable[[dict], bool],
        message: str,
        field: str | None = None,
    ) -> None:
        """A validation rule on updates through the API (not on ``org.add`` / ``org.update``):
        ``error_condition(record)`` sees the record as the update would leave it (a dict of
        every described field's stored Python value, None if unset; derived fields recomputed)
        and returns True to reject it, as a Salesforce error condition formula does. The answer
        is 400 FIELD_CUSTOM_VALIDATION_EXCEPTION with ``message`` shown at ``field`` (None: at
        the top of the page, ``fields: []``); every failing rule adds its error to the answer."""
        obj, _, lower = self.org._types(sobject)
        name = None if field is None else lower.get(field.lower())
        if field is not None and name is None:
            raise KeyError(f"{obj} has no field {field!r}")
        with self._lock:
            self._rules.setdefault(obj, []).append((error_condition, message, name))

    def lock_record(self, sobject: str, id: str) -> None:
        """Lock a record, as an approval process does: API updates answer ENTITY_IS_LOCKED."""
        rid = to18(id)
        if rid not in self.org.records[self.org._types(sobject)[0]]:
            raise KeyError(f"no {sobject} {id}")
        self._locked.add(rid)

    def unlock_record(self, sobject: str, id: str) -> None:
        self._locked.discard(to18(id))

    # -- dispatch --
    def _dispatch(self, h: _Handler) -> None:
        self.requests.append((h.command, h.path))
        self.holds.check(f"{h.command} {h.path}")
        path, query = urlsplit(h.path)[2:4]
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if h.command == "PATCH":
            try:
                sent = json.loads(body)
            except ValueError:
                sent = body
            headers = CaseInsensitiveDict(h.headers.items())
            self.patches.append(Patch(path.rstrip("/").rpartition("/")[2], sent, headers))
        with self._lock:
            fault = next((f for f in self._faults if f[1] in h.path), None)
            if fault:
                fault[0] -= 1
                if fault[0] <= 0:
                    self._faults.remove(fault)
        if fault and fault[2] is None:
            h.close_connection = True  # the server closes the socket without a byte
            return
        usage = ""
        try:
            if fault:
                status, code, msg, echo, as_text = fault[2:]
                if echo:
                    msg += "; request headers: " + "; ".join(
                        f"{k}: {v}" for k, v in h.headers.items()
                    )
                if as_text:
                    return h.reply(status, msg.encode(), "text/plain;charset=UTF-8", "")
                raise SalesforceFault(status, code, msg)
            route = next(
                (r for r in _ROUTES if r[0] == h.command and re.fullmatch(r[1], path)), None
            )
            if route is None:
                raise SalesforceFault(404, "NOT_FOUND", "The requested resource does not exist")
            _, pattern, name, api = route
            match = re.fullmatch(pattern, path)
            if api:
                usage = self._authorize(h.headers.get("Authorization", ""))
            params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
            if api and self.latency:
                clock.sleep(self.latency)
            status, out, ctype = getattr(self, "_" + name)(h, params, body, **match.groupdict())
        except SalesforceFault as e:
            status, out, ctype = e.status, e.errors, None
        except Exception as e:  # a bug in the fake: answer as Salesforce would, show the traceback
            traceback.print_exc()
            status, out, ctype = 500, [{"message": repr(e), "errorCode": "UNKNOWN_EXCEPTION"}], None
        h.reply(status, out, ctype, usage)

    def _authorize(self, header: str) -> str:
        scheme, _, token = header.partition(" ")
        if scheme not in ("Bearer", "OAuth") or token not in self._sessions:
            raise SalesforceFault(401, "INVALID_SESSION_ID", "Session expired or invalid")
        with self._lock:
            if self._limit_exceeded or self.api_used >= self.daily_api_max:
                raise SalesforceFault(
                    403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."
                )
            self.api_used += 1
            return f"api-usage={self.api_used}/{self.daily_api_max}"

    def _object(self, obj: str) -> str:
        if (name := self.org.object_name(obj)) is None:
            raise SalesforceFault(404, "NOT_FOUND", "The requested resource does not exist")
        return name

    # -- endpoints: each returns (status, body, content type or None for JSON) --
    def _versions(self, h, params, body):
        out = []
        for v in self.versions:  # 59.0 is Winter '24
            n = int(float(v))
            label = f"{('Spring', 'Summer', 'Winter')[(n - 57) % 3]} '{23 + (n - 56) // 3}"
            out.append({"label": label, "url": f"/services/data/v{v}", "version": v})
        return 200, out, None

    def _limits(self, h, params, body, v):
        left = max(self.daily_api_max - self.api_used, 0)
        limits = {"DailyApiRequests": {"Max": self.daily_api_max, "Remaining": left}}
        limits["DailyBulkApiBatches"] = {"Max": 15000, "Remaining": 15000}
        return 200, limits, None

    def _summary(self, obj: str, v: str) -> dict:
        label = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", obj.removesuffix("__c"))
        url = f"/services/data/v{v}/sobjects/{obj}"
        out = {"name": obj, "label": label, "keyPrefix": self.org.key_prefixes[obj]}
        out["labelPlural"] = label[:-1] + "ies" if label.endswith("y") else label + "s"
        out |= dict.fromkeys(("queryable", "retrieveable", "replicateable", "searchable"), True)
        out |= dict.fromkeys(("createable", "updateable", "deletable"), True)
        out["custom"] = obj.endswith("__c")
        return out | {"urls": {"sobject": url, "describe": url + "/describe"}}

    def _describe_global(self, h, params, body, v):
        objects = [self._summary(o, v) for o in self.org.fields]
        return 200, {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": objects}, None

    def _describe(self, h, params, body, v, obj):
        obj = self._object(obj)
        fields = [dict(f) for f in self.org.fields[obj]]
        return 200, self._summary(obj, v) | {"fields": fields, "childRelationships": []}, None

    def _render(self, obj: str, rec: dict, metas: list[dict], v: str) -> dict:
        out = {
            "attributes": {"type": obj, "url": f"/services/data/v{v}/sobjects/{obj}/{rec['Id']}"}
        }
        for meta in metas:
            value, to_json = rec.get(meta["name"]), _TO_JSON.get(meta["type"])
            out[meta["name"]] = value if value is None or to_json is None else to_json(value)
        return out

    def _query(self, h, params, body, v, ep):
        if not params.get("q"):
            raise _malformed("A query string has to be specified")
        with self.org.lock:
            obj, q, metas, match, sort = _plan(self.org, params["q"])
            rows = [
                r
                for r in self.org.records[obj].values()
                if (ep == "queryAll" or not r["IsDeleted"]) and match(r)
            ]
            sort(rows)
            rows = rows[q.offset :][: q.limit]
        if q.count:
            return 200, {"totalSize": len(rows), "done": True, "records": []}, None
        batch = self.page_size  # the Sforce-Query-Options header may lower it (200..2000)
        if m := re.search(r"batchSize=(\d+)", h.headers.get("Sforce-Query-Options", "")):
            batch = min(batch, max(200, min(2000, int(m[1]))))
        locator = self.org._new_id("01g")
        self._cursors[locator] = (obj, [r["Id"] for r in rows], metas, v, ep, batch)
        return self._page(locator, 0)

    def _query_more(self, h, params, body, v, ep, loc):
        locator, _, offset = loc.rpartition("-")
        if locator not in self._cursors:
            raise SalesforceFault(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(locator, int(offset))

    def _page(self, locator: str, offset: int):
        obj, ids, metas, v, ep, batch = self._cursors[locator]
        end = min(offset + batch, len(ids))
        with self.org.lock:  # the cursor pins the Ids; values are read per page
            table = self.org.records[obj]
            rows = [table[i] for i in ids[offset:end] if i in table]  # purged: gone
            records = [self._render(obj, row, metas, v) for row in rows]
        out = {"totalSize": len(ids), "done": end >= len(ids), "records": records}
        if end < len(ids):
            out["nextRecordsUrl"] = f"/services/data/v{v}/{ep}/{locator}-{end}"
        else:
            self._cursors.pop(locator, None)
        return 200, out, None

    def _replication(self, h, params, body, v, obj, kind):
        """getDeleted / getUpdated over [start, min(end, now)), seconds ignored, as documented."""
        obj, window = self._object(obj), []
        for name in ("start", "end"):
            try:  # an unencoded '+' arrives as a space
                value = datetime.fromisoformat(params[name].replace(" ", "+"))
            except (KeyError, ValueError):
                value = None
            if value is None or value.tzinfo is None:
                raise _malformed(f"{name} date is not in the correct format")
            window.append(_utc(value).replace(second=0, microsecond=0))
        start, end = window
        now = self.org.now()
        if start >= end or start < now - timedelta(days=30):
            message = "startDate must precede endDate and be within the last 30 days"
            raise SalesforceFault(400, "INVALID_REPLICATION_DATE", message)
        covered = min(end, now.replace(second=0))
        with self.org.lock:
            if kind == "updated":
                ids = [
                    r["Id"]
                    for r in self.org.records[obj].values()
                    if not r["IsDeleted"] and start <= r["SystemModstamp"] < covered
                ]
                return 200, {"ids": ids, "latestDateCovered": sf_datetime(covered)}, None
            earliest = self.org.earliest_deleted_available
            gone = [
                {"id": rid, "deletedDate": sf_datetime(when)}
                for rid, when in self.org.deleted_dates[obj].items()
                if max(start, earliest) <= when < covered
            ]
        return (
            200,
            {
                "deletedRecords": gone,
                "earliestDateAvailable": sf_datetime(earliest),
                "latestDateCovered": sf_datetime(covered),
            },
            None,
        )

    def _update(self, h, params, body, v, obj, rid):
        """sObject Rows PATCH: set the body's fields as the API user, 204 without a body; the
        documented errors change nothing. The audit fields move to now, as on any update."""
        obj = self._object(obj)
        try:
            values = json.loads(body)
        except ValueError as e:
            raise SalesforceFault(400, "JSON_PARSER_ERROR", f"Unexpected character: {e}") from e
        if not isinstance(values, dict):
            token = _JSON_TOKENS.get(type(values), "VALUE_NULL")
            message = f"Cannot deserialize instance of {obj} from {token} value"
            raise SalesforceFault(400, "JSON_PARSER_ERROR", message)
        metas = {f["name"].lower(): f for f in self.org.fields[obj]}
        given: dict[str, tuple[dict, object]] = {}
        for key, value in values.items():
            if key == "attributes":  # {"type": ...}, as in a query result: allowed, unused
                continue
            if (meta := metas.get(key.lower())) is None:
                message = f"No such column '{key}' on sobject of type {obj}"
                raise SalesforceFault(400, "INVALID_FIELD", message)
            given[meta["name"]] = meta, value
        since = _if_unmodified_since(h.headers.get("If-Unmodified-Since"))
        with self.org.lock:  # the precondition and the write are one step
            rec = self.org.records[obj].get(to18(rid))
            if rec is None:
                ok = rid.isalnum() and (len(rid) == 15 or (len(rid) == 18 and to18(rid) == rid))
                message = "The requested resource does not exist"
                if not ok:  # not an Id: Salesforce takes it for an external ID field's name
                    message = (
                        f"Provided external ID field does not exist or is not accessible: {rid}"
                    )
                raise SalesforceFault(404, "NOT_FOUND", message)
            if rec.get("IsDeleted"):
                raise SalesforceFault(404, "ENTITY_IS_DELETED", "entity is deleted", [])
            modified = rec.get("SystemModstamp") or rec.get("CreatedDate")  # field history: none
            if since and modified and modified.replace(microsecond=0) > since:  # whole seconds
                stamp = h.headers["If-Unmodified-Since"]
                message = f"The requested resource has been modified since {stamp}"
                raise SalesforceFault(412, "PRECONDITION_FAILED", message)
            if readonly := [name for name, (meta, _) in given.items() if not meta["updateable"]]:
                message = (
                    f"Unable to create/update fields: {', '.join(readonly)}. Please check the "
                    "security settings of this field and verify that it is read/write for your "
                    "profile or permission set."
                )
                raise SalesforceFault(400, "INVALID_FIELD_FOR_INSERT_UPDATE", message, readonly)
            if rec["Id"] in self._locked:
                message = "This record is locked. If you need to edit it, contact your admin."
                raise SalesforceFault(400, "ENTITY_IS_LOCKED", message, [])
            changes = {}
            for name, (meta, value) in given.items():
                try:
                    changes[name] = _from_json(meta["type"], value)
                except (ValueError, TypeError, OverflowError) as e:
                    token = _JSON_TOKENS.get(type(value), "VALUE_NULL")
                    message = (
                        f"Cannot deserialize instance of {meta['type']} from {token} value "
                        f"{json.dumps(value)} or request may be missing a required field"
                    )
                    raise SalesforceFault(400, "JSON_PARSER_ERROR", message) from e
            required = {n for n, (meta, _) in given.items() if not meta["nillable"]}
            if missing := [n for n, x in changes.items() if x is None and n in required]:
                message = f"Required fields are missing: [{', '.join(missing)}]"
                raise SalesforceFault(400, "REQUIRED_FIELD_MISSING", message, missing)
            now = self.org.now()
            audit = {"LastModifiedDate": now, "SystemModstamp": now}
            audit["LastModifiedById"] = self.org.user_id  # the API user: every session's
            after = rec | {k: x for k, x in audit.items() if k.lower() in metas} | changes
            stages = self.org._stages() if obj == "Opportunity" else {}
            self.org._derive(obj, after, changes, stages)
            with self._lock:
                rules = list(self._rules.get(obj, ()))
            code = "FIELD_CUSTOM_VALIDATION_EXCEPTION"
            record = {meta["name"]: after.get(meta["name"]) for meta in metas.values()}
            if errors := [
                {"message": message, "errorCode": code, "fields": [field] if field else []}
                for error_condition, message, field in rules
                if error_condition(dict(record))
            ]:
                first, *more = errors
                raise SalesforceFault(400, code, first["message"], first["fields"], more)
            rec |= after
        return 204, None, None

    def _token_response(self) -> dict:
        return {
            "access_token": self.issue_session(),
            "instance_url": self.url,
            "id": f"{self.url}/id/{self.org.org_id}/{self.org.user_id}",
            "token_type": "Bearer",
            "issued_at": str(int(datetime.now(UTC).timestamp() * 1000)),
            "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
        }

    def _oauth_token(self, h, params, body):
        """The connected-app grants simple-salesforce uses: password and client_credentials."""
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        grant, client_id, secret = (
            form.get(k) for k in ("grant_type", "client_id", "client_secret")
        )
        if (auth := h.headers.get("Authorization", "")).startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        passwords = (self.password + self.token, self.password)
        user_ok = form.get("username") == self.username and form.get("password") in passwords
        if grant not in ("password", "client_credentials"):
            error = ("unsupported_grant_type", "grant type not supported")
        elif client_id != self.consumer_key:
            error = ("invalid_client_id", "client identifier invalid")
        elif secret != self.consumer_secret:
            error = ("invalid_client", "invalid client credentials")
        elif grant != "client_credentials" and not user_ok:
            error = ("invalid_grant", "authentication failure")
        else:
            return 200, self._token_response(), None
        return 400, {"error": error[0], "error_description": error[1]}, None

    def _soap_login(self, h, params, body, v):
        """The partner API login(): password + security token (or the password alone if token="")."""
        try:
            values = {e.tag.rpartition("}")[2]: e.text for e in ET.fromstring(body).iter()}
        except ET.ParseError:
            values = {}
        if values.get("username") != self.username or values.get("password") not in (
            self.password + self.token,
            None if self.token else self.password,
        ):
            message = "Invalid username, password, security token; or user locked out."
            return 500, _SOAP.format(_LOGIN_FAULT.format(message)).encode(), "text/xml"
        server = f"{self.url}/services/Soap/u/{v}/{self.org.org_id}"
        result = (
            f"<loginResponse><result><metadataServerUrl>{server.replace('/u/', '/m/')}"
            "</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>false"
            f"</sandbox><serverUrl>{server}</serverUrl><sessionId>{escape(self.issue_session())}"
            f"</sessionId><userId>{self.org.user_id}</userId><userInfo><organizationId>"
            f"{self.org.org_id}</organizationId><userName>{escape(self.username)}</userName>"
            "</userInfo></result></loginResponse>"
        )
        return 200, _SOAP.format(result).encode(), "text/xml;charset=UTF-8"
