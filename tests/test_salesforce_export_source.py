"""Reading a Salesforce Data Export folder into records (no database involved)."""

from __future__ import annotations

import csv
import logging
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from oppkit.sources import salesforce_export
from oppkit.sources.records import (
    AccountRecord,
    ActivityRecord,
    CampaignMemberRecord,
    Checkpoint,
    Notice,
    OpportunityChangeRecord,
    OpportunityMemberRecord,
    OpportunityRecord,
    PersonRecord,
    Skipped,
    StageRecord,
)
from oppkit.sources.salesforce_export import (
    domain_from_website,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_float,
    read_export,
)


def write_csv(path: Path, rows: list[dict[str, str]], bom: bool = False) -> None:
    """Write ``rows`` like a Data Export does; the header is every key used, in order."""
    header = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([row.get(key, "") for key in header] for row in rows)


def stage(id_: str, label: str, closed: str, won: str, order: str, prob: str) -> dict[str, str]:
    return {
        "Id": id_,
        "MasterLabel": label,
        "ApiName": label or "Legacy",
        "IsActive": "false" if label == "" else "true",
        "IsClosed": closed,
        "IsWon": won,
        "SortOrder": order,
        "DefaultProbability": prob,
    }


def snapshot(
    id_: str, opp: str, stage: str, amount: str, close: str, at: str, by: str = "005U1"
) -> dict[str, str]:
    return {
        "Id": id_,
        "OpportunityId": opp,
        "StageName": stage,
        "Amount": amount,
        "CloseDate": close,
        "Probability": "10",
        "CreatedDate": at,
        "CreatedById": by,
    }


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    """A small export: no Campaign.csv, User.csv with a BOM and without a Name column."""
    write_csv(
        tmp_path / "OpportunityStage.csv",
        [
            stage("01J1", "Prospecting", "false", "false", "1", "10"),
            stage("01J2", "Closed Won", "true", "true", "2", "100"),
            stage("01J3", "Closed Lost", "TRUE", "0", "3", "0"),
            stage("01J4", "", "false", "false", "4", ""),  # no MasterLabel: ApiName is used
        ],
    )
    write_csv(
        tmp_path / "User.csv",
        [{"Id": "005U1", "FirstName": "Dana", "LastName": "Seller", "Email": "dana@ourco.com"}],
        bom=True,
    )
    write_csv(
        tmp_path / "Account.csv",
        [
            {
                "Id": "001A",
                "Name": "Acme",
                "Website": "https://www.Acme.com/about",
                "OwnerId": "005U1",
                "Industry": "Manufacturing",
                "Type": "Customer",
                "CreatedDate": "2024-01-15 10:30:00",
                "SystemModstamp": "2024-02-01T08:00:00.000+0000",
                "IsDeleted": "false",
            },
            {"Id": "001B", "Name": "Globex", "Type": "Prospect", "IsDeleted": "0"},
            {"Id": "", "Name": "No Id Inc", "Website": "noid.com"},
        ],
    )
    write_csv(
        tmp_path / "Contact.csv",
        [
            {
                "Id": "003C1",
                "AccountId": "001A",
                "Name": "Ann Buyer",
                "Email": "ann@acme.com",
                "Title": "CFO",
            }
        ],
    )
    write_csv(
        tmp_path / "Opportunity.csv",
        [
            {
                "Id": "006A",
                "Name": "Acme expansion",
                "AccountId": "001A",
                "OwnerId": "005U1",
                "StageName": "Closed Won",
                "Amount": "12000",
                "CloseDate": "2024-05-15",
                "Probability": "100",
                "IsPrivate": "false",
                "CampaignId": "701X",
                "Type": "New Business",
                "LeadSource": "Web",
                "CreatedDate": "2024-01-01T09:00:00.000Z",
                "LastModifiedDate": "2024-03-01T09:00:00.000Z",
                "SystemModstamp": "2024-03-02T09:00:00.000Z",
            },
            {
                "Id": "006B",
                "Name": "Globex pilot",
                "StageName": "Prospecting",
                "Amount": "",
                "IsPrivate": "true",
                "LastModifiedDate": "2024-02-03T09:00:00.000Z",
            },
            {
                "Id": "006C",
                "Name": "Messy deal",
                "StageName": "Prospecting",
                "Amount": "n/a",
                "CloseDate": "31/12/2024",
                "Probability": "x",
            },
            {"Id": "006D", "Name": "", "Amount": "5"},
        ],
    )
    write_csv(
        tmp_path / "OpportunityContactRole.csv",
        [
            {
                "Id": "00K1",
                "OpportunityId": "006A",
                "ContactId": "003C1",
                "Role": "Economic Buyer",
                "IsPrimary": "true",
            }
        ],
    )
    write_csv(
        tmp_path / "OpportunityHistory.csv",
        [  # out of order on purpose: history is sorted by CreatedDate per opportunity
            snapshot("008H3", "006A", "Closed Won", "12000", "2024-05-15", "2024-03-01T09:00:00Z"),
            snapshot("008H1", "006A", "Prospecting", "10000", "2024-06-30", "2024-01-01T09:00:00Z"),
            snapshot("008H4", "006B", "Prospecting", "", "2024-09-30", "2024-02-01T09:00:00Z"),
            snapshot(
                "008H2",
                "006A",
                "Prospecting",
                "12000",
                "2024-06-30",
                "2024-02-01T09:00:00Z",
                by="005U2",
            ),
        ],
    )
    write_csv(
        tmp_path / "CampaignMember.csv",
        [
            {"Id": "00v1", "CampaignId": "701X", "ContactId": "003C1", "Status": "Responded"},
            {"Id": "00v2", "CampaignId": "701X", "LeadId": "00QL1", "Status": "Sent"},
        ],
    )
    write_csv(
        tmp_path / "Task.csv",
        [
            {
                "Id": "00T1",
                "Subject": "Discovery call",
                "Description": "Discussed pricing.\nNext step: send proposal.",
                "TaskSubtype": "Call",
                "Status": "Completed",
                "IsClosed": "true",
                "ActivityDate": "2024-01-10",
                "CompletedDateTime": "2024-01-10T15:00:00.000Z",
                "CallDurationInSeconds": "300",
                "WhatId": "006A",
                "WhoId": "003C1",
                "AccountId": "001A",
                "OwnerId": "005U1",
                "CreatedDate": "2024-01-10T14:00:00.000Z",
            },
            {"Id": "", "Subject": "Orphan", "TaskSubtype": "Task", "Status": "Open"},
            {
                "Id": "00T2",
                "Subject": "Proposal sent",
                "TaskSubtype": "Email",
                "IsClosed": "true",
                "WhatId": "001B",
                "CreatedDate": "2024-01-11T08:00:00.000Z",
            },
            {
                "Id": "00T3",
                "Subject": "Follow up",
                "TaskSubtype": "Task",
                "Status": "Not Started",
                "IsClosed": "false",
                "ActivityDate": "2999-01-01",
                "WhatId": "006B",
            },
            {
                "Id": "00T4",
                "TaskSubtype": "Task",
                "CallType": "Outbound",
                "Status": "Completed",
                "IsDeleted": "true",
                "CreatedDate": "2024-01-13T08:00:00.000Z",
            },
        ],
    )
    write_csv(
        tmp_path / "Event.csv",
        [
            {
                "Id": "00U1",
                "Subject": "Kick-off",
                "StartDateTime": "2024-01-20T10:00:00.000Z",
                "EndDateTime": "2024-01-20T11:30:00.000Z",
                "Location": "Acme HQ",
                "WhatId": "006A",
                "WhoId": "003C1",
            },
            {
                "Id": "00U2",
                "Subject": "QBR",
                "StartDateTime": "2999-06-01 14:00:00",
                "DurationInMinutes": "45",
                "WhatId": "001B",
            },
            {"Id": "00U3", "Subject": "No start", "DurationInMinutes": "30"},
        ],
    )
    return tmp_path


def of_type(records: list, kind: type) -> list:
    return [r for r in records if isinstance(r, kind)]


def test_files_are_read_in_dependency_order_and_missing_files_are_ignored(export_dir: Path) -> None:
    records = list(read_export(export_dir))
    done = [c.object for c in of_type(records, Checkpoint) if c.cursor["complete"]]
    assert done == [
        f"salesforce-export:{name}"
        for name in [
            "OpportunityStage.csv",
            "User.csv",
            "Account.csv",
            "Contact.csv",
            "Opportunity.csv",
            "OpportunityContactRole.csv",
            "OpportunityHistory.csv",
            "CampaignMember.csv",
            "Task.csv",
            "Event.csv",
        ]
    ]
    assert isinstance(records[0], StageRecord)
    first_account = next(i for i, r in enumerate(records) if isinstance(r, AccountRecord))
    first_opportunity = next(i for i, r in enumerate(records) if isinstance(r, OpportunityRecord))
    assert first_account < first_opportunity
    assert all(getattr(r, "source", "salesforce") == "salesforce" for r in records)


def test_stage_status_order_and_fallback_name(export_dir: Path) -> None:
    stages = of_type(list(read_export(export_dir)), StageRecord)
    assert [(s.name, s.status, s.sort_order) for s in stages] == [
        ("Prospecting", "open", 1),
        ("Closed Won", "won", 2),
        ("Closed Lost", "lost", 3),
        ("Legacy", "open", 4),
    ]
    assert stages[0].probability == 10.0
    assert stages[3].probability is None
    assert stages[3].is_active is False


def test_users_contacts_and_accounts(export_dir: Path) -> None:
    records = list(read_export(export_dir))
    people = {p.source_id: p for p in of_type(records, PersonRecord)}
    # User.csv has a BOM (the Id header still matches) and no Name column
    assert people["005U1"].is_user is True
    assert people["005U1"].name == "Dana Seller"
    assert people["005U1"].email == "dana@ourco.com"
    assert people["003C1"].is_user is False
    assert people["003C1"].account_ref == "001A"
    assert people["003C1"].title == "CFO"

    accounts = {a.source_id: a for a in of_type(records, AccountRecord)}
    assert set(accounts) == {"001A", "001B"}
    acme = accounts["001A"]
    assert acme.domain == "acme.com"
    assert acme.owner_ref == "005U1"
    assert acme.account_type == "Customer"
    assert acme.created_at == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    assert acme.updated_at == datetime(2024, 2, 1, 8, 0, tzinfo=UTC)
    assert accounts["001B"].domain is None
    assert accounts["001B"].industry is None


def test_opportunity_amount_null_stays_null_and_bad_fields_are_repaired(
    export_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=salesforce_export.__name__):
        records = list(read_export(export_dir))
    deals = {o.source_id: o for o in of_type(records, OpportunityRecord)}
    assert set(deals) == {"006A", "006B", "006C"}  # 006D has no Name

    won = deals["006A"]
    assert won.amount == 12000.0
    assert won.close_date == date(2024, 5, 15)
    assert won.campaign_ref == "701X"
    assert won.opportunity_type == "New Business"
    assert won.updated_at == datetime(2024, 3, 2, 9, 0, tzinfo=UTC)  # SystemModstamp wins

    assert deals["006B"].amount is None
    assert deals["006B"].is_private is True
    assert deals["006B"].updated_at == datetime(2024, 2, 3, 9, 0, tzinfo=UTC)

    messy = deals["006C"]
    assert (messy.amount, messy.close_date, messy.probability) == (None, None, None)
    assert messy.stage == "Prospecting"
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert "Opportunity.csv line 4: unusable Amount 'n/a'" in warnings
    assert "unusable CloseDate '31/12/2024'" in warnings

    skipped = [s for s in of_type(records, Skipped) if s.where.startswith("Opportunity.csv")]
    assert skipped == [Skipped(reason="missing Name", where="Opportunity.csv line 5")]


def test_history_snapshots_become_changes(export_dir: Path) -> None:
    changes = of_type(list(read_export(export_dir)), OpportunityChangeRecord)
    summary = [(c.source_id, c.opportunity_ref, c.field, c.old_value, c.new_value) for c in changes]
    assert summary == [
        ("008H1:stage", "006A", "stage", None, "Prospecting"),
        ("008H2:amount", "006A", "amount", "10000.0", "12000.0"),
        ("008H3:stage", "006A", "stage", "Prospecting", "Closed Won"),
        ("008H3:close_date", "006A", "close_date", "2024-06-30", "2024-05-15"),
        ("008H4:stage", "006B", "stage", None, "Prospecting"),
    ]
    by_id = {c.source_id: c for c in changes}
    assert by_id["008H2:amount"].changed_by_ref == "005U2"
    assert by_id["008H3:stage"].changed_at == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def test_contact_roles_and_campaign_members(export_dir: Path) -> None:
    records = list(read_export(export_dir))
    [role] = of_type(records, OpportunityMemberRecord)
    assert (role.opportunity_ref, role.person_ref, role.role, role.is_primary) == (
        "006A",
        "003C1",
        "Economic Buyer",
        True,
    )
    members = {
        m.source_id: (m.contact_ref, m.lead_ref) for m in of_type(records, CampaignMemberRecord)
    }
    assert members == {"00v1": ("003C1", None), "00v2": (None, "00QL1")}  # a lead: no contact


def test_tasks_kinds_refs_and_planned_flags(export_dir: Path) -> None:
    records = list(read_export(export_dir))
    tasks = {
        a.source_id: a for a in of_type(records, ActivityRecord) if a.source_id.startswith("00T")
    }
    assert {k: t.kind for k, t in tasks.items()} == {
        "00T1": "call",
        "00T2": "email",
        "00T3": "task",
        "00T4": "call",  # CallType set
    }
    call = tasks["00T1"]
    assert call.occurred_at == datetime(2024, 1, 10, 15, 0, tzinfo=UTC)
    assert call.duration_minutes == 5.0
    assert call.snippet is not None and "Next step: send proposal." in call.snippet
    assert (call.opportunity_ref, call.account_ref, call.person_refs, call.owner_ref) == (
        "006A",
        "001A",
        ["003C1"],
        "005U1",
    )
    assert call.is_planned is False

    email = tasks["00T2"]
    assert (email.opportunity_ref, email.account_ref, email.person_refs) == (None, "001B", [])
    assert email.occurred_at == datetime(2024, 1, 11, 8, 0, tzinfo=UTC)  # CreatedDate fallback

    follow_up = tasks["00T3"]
    assert follow_up.is_planned is True
    assert follow_up.status == "Not Started"
    assert follow_up.occurred_at == datetime(2999, 1, 1, tzinfo=UTC)  # ActivityDate at midnight
    assert follow_up.opportunity_ref == "006B"

    assert tasks["00T4"].is_deleted is True
    assert tasks["00T4"].is_planned is False  # Status Completed

    skipped = [s for s in of_type(records, Skipped) if s.where.startswith("Task.csv")]
    # the first task's Description spans lines 2-3, so the Id-less row starts on line 4
    assert skipped == [Skipped(reason="missing Id", where="Task.csv line 4")]


def test_events_are_meetings_with_duration_and_planned_flag(export_dir: Path) -> None:
    records = list(read_export(export_dir))
    events = {a.source_id: a for a in of_type(records, ActivityRecord) if a.kind == "meeting"}
    assert set(events) == {"00U1", "00U2"}
    kickoff = events["00U1"]
    assert kickoff.duration_minutes == 90.0  # from EndDateTime - StartDateTime
    assert kickoff.location == "Acme HQ"
    assert kickoff.is_planned is False
    assert (kickoff.opportunity_ref, kickoff.person_refs) == ("006A", ["003C1"])

    qbr = events["00U2"]
    assert qbr.occurred_at == datetime(2999, 6, 1, 14, 0, tzinfo=UTC)  # naive read as UTC
    assert qbr.duration_minutes == 45.0
    assert qbr.is_planned is True
    assert qbr.account_ref == "001B"

    skipped = [s for s in of_type(records, Skipped) if s.where.startswith("Event.csv")]
    assert len(skipped) == 1
    assert skipped[0].where == "Event.csv line 4"
    assert "StartDateTime" in skipped[0].reason


def test_all_skipped_rows_are_counted_with_where(export_dir: Path) -> None:
    skipped = of_type(list(read_export(export_dir)), Skipped)
    assert sorted(s.where for s in skipped) == [
        "Account.csv line 4",
        "Event.csv line 4",
        "Opportunity.csv line 5",
        "Task.csv line 4",
    ]


def test_checkpoints_carry_hash_and_row_count(export_dir: Path) -> None:
    checkpoints = {c.object: c.cursor for c in of_type(list(read_export(export_dir)), Checkpoint)}
    cursor = checkpoints["salesforce-export:Opportunity.csv"]
    assert cursor["rows"] == 4
    assert cursor["complete"] is True
    assert len(cursor["sha256"]) == 64


def test_rereading_with_previous_checkpoints_yields_nothing(export_dir: Path) -> None:
    previous = {c.object: c.cursor for c in of_type(list(read_export(export_dir)), Checkpoint)}
    assert list(read_export(export_dir, previous)) == []


def test_only_changed_files_are_read_again(export_dir: Path) -> None:
    previous = {c.object: c.cursor for c in of_type(list(read_export(export_dir)), Checkpoint)}
    write_csv(export_dir / "Contact.csv", [{"Id": "003C2", "Email": "bo@acme.com"}])
    again = list(read_export(export_dir, previous))
    assert [type(r) for r in again] == [PersonRecord, Checkpoint]
    assert again[0].source_id == "003C2"
    assert again[0].name is None


def test_resume_from_incomplete_checkpoint_yields_only_remaining_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(salesforce_export, "CHECKPOINT_EVERY", 2)
    write_csv(tmp_path / "Contact.csv", [{"Id": f"003C{i}"} for i in range(1, 6)])

    first = list(read_export(tmp_path))
    checkpoints = [r.cursor for r in first if isinstance(r, Checkpoint)]
    assert [(c.get("row"), c.get("rows"), c["complete"]) for c in checkpoints] == [
        (2, None, False),
        (4, None, False),
        (None, 5, True),
    ]
    # a run killed after the second intermediate checkpoint resumes after row 4
    previous = {"salesforce-export:Contact.csv": checkpoints[1]}
    resumed = list(read_export(tmp_path, previous))
    assert [r.source_id for r in resumed if isinstance(r, PersonRecord)] == ["003C5"]
    assert resumed[-1] == Checkpoint(object="salesforce-export:Contact.csv", cursor=checkpoints[2])


def test_a_file_that_is_not_utf8_is_read_as_windows_1252_with_a_notice(tmp_path: Path) -> None:
    (tmp_path / "Account.csv").write_bytes("Id,Name\n001A,Müller GmbH\n".encode("latin-1"))
    write_csv(tmp_path / "Contact.csv", [{"Id": "003C1", "Email": "a@b.com"}])
    records = list(read_export(tmp_path))
    assert of_type(records, Skipped) == []
    [notice] = of_type(records, Notice)
    assert notice.where == "Account.csv"
    assert notice.reason == "not UTF-8 (first bad byte at 14); read as Windows-1252 (cp1252)"
    assert [a.name for a in of_type(records, AccountRecord)] == ["Müller GmbH"]
    assert [p.source_id for p in of_type(records, PersonRecord)] == ["003C1"]


def test_a_row_over_the_limit_is_skipped_and_the_rows_after_it_land(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(salesforce_export, "ROW_LIMIT", 1000)
    at = "2024-01-20T10:00:00Z"
    write_csv(
        tmp_path / "Task.csv",
        [
            {"Id": "00T1", "CreatedDate": at},
            {"Id": "00T2", "CreatedDate": at, "Description": "x" * 2000},
            {"Id": "00T3", "CreatedDate": at},
        ],
    )
    write_csv(tmp_path / "Event.csv", [{"Id": "00U1", "StartDateTime": at}])
    records = list(read_export(tmp_path))
    [skipped] = of_type(records, Skipped)
    assert skipped.where == "Task.csv line 3"
    assert skipped.reason == "row of more than 1000 characters (1 line); skipped"
    objects = [c.object for c in of_type(records, Checkpoint) if c.cursor["complete"]]
    assert objects == ["salesforce-export:Task.csv", "salesforce-export:Event.csv"]
    assert [a.source_id for a in of_type(records, ActivityRecord)] == ["00T1", "00T3", "00U1"]


def test_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(read_export(tmp_path / "nope"))


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-15T10:30:00.000Z",
        "2024-01-15 10:30:00",
        "2024-01-15T10:30:00.000+0000",
        "2024-01-15T12:30:00+02:00",
    ],
)
def test_parse_datetime_formats(text: str) -> None:
    assert parse_datetime(text) == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def test_value_parsers() -> None:
    assert [parse_bool(v) for v in ("true", "TRUE", "1", "false", "0", "")] == [
        True,
        True,
        True,
        False,
        False,
        None,
    ]
    assert parse_float("") is None
    assert parse_float("12000") == 12000.0
    assert parse_date("2024-01-15") == date(2024, 1, 15)
    assert parse_datetime("") is None
    for parse, bad in (
        (parse_bool, "maybe"),
        (parse_float, "n/a"),
        (parse_float, "nan"),
        (parse_date, "31/12/2024"),
    ):
        with pytest.raises(ValueError):
            parse(bad)


@pytest.mark.parametrize(
    ("website", "domain"),
    [
        ("https://www.Acme.com/about", "acme.com"),
        ("www.globex.co.uk", "globex.co.uk"),
        ("http://shop.example.org:8080/x?y=1", "shop.example.org"),
        ("", None),
        ("n/a", None),
    ],
)
def test_domain_from_website(website: str, domain: str | None) -> None:
    assert domain_from_website(website) == domain
