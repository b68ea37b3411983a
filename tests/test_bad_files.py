"""Bad calendar and CSV input never blocks a sync (issue P10 "bad input").

Every malformed input gives one clear line (a skipped row or a notice), the good records
around it land, work and memory stay bounded by the input, nothing hangs. Run through the
real command on SQLite and PostgreSQL, and through the sources where the detail is
clearer. The inputs are built in tests/bad_files_corpus.py (benchmarks/bad_files.py runs
the same ones).
"""

from __future__ import annotations

import re
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import caldav
import pytest
from sqlalchemy import select

from oppkit.db.engine import connect_engine
from oppkit.db.schema import accounts, activities, opportunities
from oppkit.errors import printable
from oppkit.sources.caldav_source import read_caldav
from oppkit.sources.ics import read_calendars
from oppkit.sources.records import (
    AccountRecord,
    ActivityRecord,
    Checkpoint,
    Notice,
    OpportunityRecord,
    Skipped,
)
from oppkit.sources.salesforce_export import read_export
from oppkit.sync import sync_calendar, sync_salesforce_export
from tests.bad_files_corpus import (
    ACCOUNT,
    CAP,
    HEAD,
    OPPORTUNITY,
    TAIL,
    bad_files,
    calendar_around,
    csv_text,
    event,
    export,
    opportunity,
    sfid,
)
from tests.fakes.radicale_server import RadicaleServer
from tests.support import count, run_cli

CORPUS = {bad.name: bad for bad in bad_files()}
TABLES = {"activities": activities, "opportunities": opportunities, "accounts": accounts}
REPORT = re.compile(r"^WARNING oppkit\.sync\.runner: (skipped|notice) \S.*$")
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _rows(url: str, table, column: str) -> list:  # noqa: ANN001
    engine = connect_engine(url)
    with engine.connect() as conn:
        found = conn.execute(select(table.c[column]).order_by(table.c.source_id)).scalars().all()
    engine.dispose()
    return found


def _of(records: list, kind: type) -> list:
    return [r for r in records if isinstance(r, kind)]


def _reports(records: list) -> list:
    return [r for r in records if isinstance(r, Skipped | Notice)]


# --- every malformed input through the command, on both backends ---------------------


@pytest.mark.parametrize("name", list(CORPUS))
def test_the_command_lands_the_good_records_and_reports_the_bad_one_in_one_line(
    name: str, db_url: str, tmp_path: Path
):
    bad = CORPUS[name]
    path = bad.write(tmp_path / "input")
    started = time.perf_counter()
    result = run_cli("--db", db_url, *bad.args(path), "--no-progress")
    seconds = time.perf_counter() - started
    assert result.returncode == bad.code, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == bad.lines, result.stderr[-2000:]
    assert all(REPORT.match(line) and line.isprintable() for line in lines), lines
    assert all(len(line) < 600 for line in lines)
    assert count(db_url, TABLES[bad.table]) == bad.lands, result.stdout
    assert seconds < 90  # bounded by the input: 480 s and 4.5 GB for a minutely rule before


# --- calendars: the window ----------------------------------------------------------


def _daily(tmp_path: Path, now: datetime) -> Path:
    start = (now - timedelta(days=800)).strftime("%Y%m%dT%H%M%SZ")
    path = tmp_path / "daily.ics"
    path.write_text(
        HEAD + event("standup@northwind.example", "Standup", start, "RRULE:FREQ=DAILY\r\n") + TAIL
    )
    return path


def _span(records: list) -> tuple[datetime, datetime, int]:
    meetings = _of(records, ActivityRecord)
    starts = [m.occurred_at for m in meetings]
    return min(starts), max(starts), len(meetings)


def test_recurrence_is_expanded_12_months_back_and_6_ahead_by_default(tmp_path: Path):
    first, last, n = _span(list(read_calendars(_daily(tmp_path, NOW), now=NOW)))
    assert first.date() == datetime(2025, 3, 1).date()  # 12 months back
    assert last.date() == datetime(2026, 8, 31).date()  # 6 months ahead
    assert n == 549  # was 730 + 365 days


def test_the_window_comes_from_oppkit_toml_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    config = tmp_path / "oppkit.toml"
    config.write_text("[calendar]\npast_months = 1\nfuture_months = 2\n")
    monkeypatch.setenv("OPPKIT_CONFIG", str(config))
    first, last, _ = _span(list(read_calendars(_daily(tmp_path, NOW), now=NOW)))
    assert (first.date(), last.date()) == (
        datetime(2026, 2, 1).date(),
        datetime(2026, 4, 30).date(),
    )
    monkeypatch.setenv("OPPKIT_CALENDAR_PAST_MONTHS", "3")
    monkeypatch.setenv("OPPKIT_CALENDAR_FUTURE_MONTHS", "0")
    first, last, _ = _span(list(read_calendars(_daily(tmp_path, NOW), now=NOW)))
    assert (first.date(), last.date()) == (
        datetime(2025, 12, 1).date(),
        datetime(2026, 2, 28).date(),
    )


def test_a_bad_window_setting_is_a_configuration_error(sqlite_url: str, tmp_path: Path):
    path = tmp_path / "one.ics"
    path.write_text(calendar_around(""))
    result = run_cli("--db", sqlite_url, "sync", "calendar", "--ics", str(path),
                     env={"OPPKIT_CALENDAR_FUTURE_MONTHS": "six"})  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "oppkit: error: OPPKIT_CALENDAR_FUTURE_MONTHS must be a whole number of months"
        " (0 or more), not 'six'"
    )


# --- calendars: rules without end --------------------------------------------------


def _minutely(tmp_path: Path, rule: str, start: datetime) -> Path:
    path = tmp_path / "busy.ics"
    series = event("busy@northwind.example", "Busy", start.strftime("%Y%m%dT%H%M%SZ"),
                   f"RRULE:{rule}\r\n")  # fmt: skip
    path.write_text(calendar_around(series))
    return path


@pytest.mark.parametrize("rule", ["FREQ=MINUTELY", "FREQ=MINUTELY;COUNT=10000000"])
def test_an_endless_series_keeps_its_first_5000_occurrences_and_says_so(rule: str, tmp_path: Path):
    start = NOW - timedelta(days=2)
    path = _minutely(tmp_path, rule, start)
    tracemalloc.start()
    began = time.perf_counter()
    records = list(read_calendars(path, now=NOW))
    seconds = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    series = [r for r in _of(records, ActivityRecord) if r.thread_id == "busy@northwind.example"]
    assert len(series) == CAP
    assert min(s.occurred_at for s in series) == start
    assert max(s.occurred_at for s in series) == start + timedelta(minutes=CAP - 1)
    assert {r.subject for r in _of(records, ActivityRecord)} >= {"Good 1", "Good 3"}
    [notice] = _reports(records)
    assert isinstance(notice, Notice)  # the first 5000 landed: a notice, not a skip
    assert notice.reason == (
        "series busy@northwind.example: more than 5000 occurrences in the window;"
        " the first 5000 are kept"
    )
    assert notice.where == f"{path}: Busy"
    assert seconds < 30 and peak < 150 * 2**20  # was 480 s and 4.5 GB


def test_a_secondly_series_from_1970_ends_quickly_with_one_line(tmp_path: Path):
    path = _minutely(tmp_path, "FREQ=SECONDLY", datetime(1970, 1, 1, tzinfo=UTC))
    began = time.perf_counter()
    records = list(read_calendars(path, now=NOW))
    assert time.perf_counter() - began < 10  # bounded by a budget, not by the rule
    assert {r.subject for r in _of(records, ActivityRecord)} == {"Good 1", "Good 3"}
    [skipped] = _reports(records)
    assert isinstance(skipped, Skipped)
    assert skipped.reason == (
        "series busy@northwind.example: FREQ=SECONDLY from 1970-01-01 repeats more than"
        " 100000 times before the window; not expanded"
    )


def test_a_rule_that_matches_no_date_is_refused_at_once(tmp_path: Path):
    path = _minutely(tmp_path, "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30", NOW - timedelta(days=2))
    began = time.perf_counter()
    records = list(read_calendars(path, now=NOW))
    assert time.perf_counter() - began < 5  # dateutil alone stepped to the year 9999: 59 s
    assert {r.subject for r in _of(records, ActivityRecord)} == {"Good 1", "Good 3"}
    [skipped] = _reports(records)
    assert skipped.reason == (
        "series busy@northwind.example: its rule matches no date at all (like 30 February);"
        " not expanded"
    )


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (
            "RRULE:FREQ=FOO\r\n",
            "unreadable event: bad RRULE 'FREQ=FOO' (Expected frequency, got: FOO)",
        ),
        (
            "RRULE:FREQ=DAILY;COUNT=-1\r\n",
            "unreadable event: RRULE COUNT must be at least 1, got -1",
        ),
        ("RRULE:garbage\r\n", "unreadable event: bad RRULE (no FREQ)"),
        ("RRULE:FREQ=DAILY;BYDAY=XX\r\n", "unreadable event: bad RRULE 'FREQ=DAILY;BYDAY=XX'"),
    ],
)
def test_a_broken_rule_gives_one_line_and_the_other_events_land(
    extra: str, reason: str, tmp_path: Path
):
    path = tmp_path / "rule.ics"
    path.write_text(calendar_around(event("broken@northwind.example", "Broken", extra=extra)))
    records = list(read_calendars(path, now=NOW))
    assert [r.subject for r in _of(records, ActivityRecord)] == ["Good 1", "Good 3"]
    [skipped] = _reports(records)
    assert skipped.reason.startswith(reason) and skipped.where == f"{path}: Broken"


def test_an_event_without_dtstart_gives_one_line(tmp_path: Path):
    path = tmp_path / "undated.ics"
    path.write_text(calendar_around(event("undated@northwind.example", "Undated", None)))
    records = list(read_calendars(path, now=NOW))
    assert [r.subject for r in _of(records, ActivityRecord)] == ["Good 1", "Good 3"]
    assert [(s.reason, s.where) for s in _reports(records)] == [
        ("event without DTSTART", f"{path}: Undated")
    ]


# --- calendars: files cut off or not iCalendar -------------------------------------


def test_a_truncated_file_lands_its_complete_events_and_reports_the_cut_one(
    db_url: str, settings, tmp_path: Path
):
    path = CORPUS["truncated in a VEVENT"].write(tmp_path)
    records = list(read_calendars(path, now=NOW))
    assert [r.subject for r in _of(records, ActivityRecord)] == ["Good 1", "Good 2", "Good 3"]
    [skipped] = _reports(records)
    assert skipped.reason == "event cut off at the end of the file (no END:VEVENT)"
    assert skipped.where == f"{path}: Cut off"
    assert isinstance(records[-1], Checkpoint)
    summary = sync_calendar(path, settings=settings)
    assert (summary.written, summary.skipped) == (3, 1)
    assert _rows(db_url, activities, "subject") == ["Good 1", "Good 2", "Good 3"]


def test_an_unreadable_line_in_an_event_is_left_out_with_a_notice(tmp_path: Path):
    path = CORPUS["a line that is no property, in an event"].write(tmp_path)
    records = list(read_calendars(path, now=NOW))
    assert [r.subject for r in _of(records, ActivityRecord)] == ["Good 1", "Bad line", "Good 3"]
    [notice] = _reports(records)
    assert isinstance(notice, Notice) and notice.where == f"{path}: Bad line"
    assert notice.reason.startswith("1 unreadable line left out of the event: Content line")


def test_an_unreadable_line_between_events_costs_no_event(tmp_path: Path):
    path = CORPUS["a line that is no property, between events"].write(tmp_path)
    records = list(read_calendars(path, now=NOW))
    assert [r.subject for r in _of(records, ActivityRecord)] == ["Good 1", "Good 3"]  # was none
    [notice] = _reports(records)
    assert (notice.reason, notice.where) == (
        "1 unreadable line between events left out: '?junk line'",
        str(path),
    )


def test_an_unparseable_file_is_quoted_without_escape_sequences(tmp_path: Path):
    folder = CORPUS["escape sequences, no calendar"].write(tmp_path)
    records = list(read_calendars(folder, now=NOW))
    assert [r.subject for r in _of(records, ActivityRecord)] == ["Good 1", "Good 3"]
    [skipped] = _reports(records)
    assert skipped.where == str(folder / "bad.ics")
    assert skipped.reason.startswith("not an iCalendar file")
    assert skipped.reason.isprintable() and len(skipped.reason) <= 250
    assert "\x1b" not in skipped.reason and "RED ALERT" in skipped.reason


def test_printable_keeps_text_readable_on_one_bounded_line():
    assert printable("\x1b[31mred\x1b[0m and \x1b]0;title\x07 ok") == "?red? and ? ok"
    assert printable("a\x00b\x08c\u009bd") == "a?b?c?d"
    assert printable("line one\r\nline\ttwo  ") == "line one line two"
    assert printable("Müller — 東京") == "Müller — 東京"
    cut = printable("x" * 500)
    assert len(cut) == 200 and cut.endswith("…")
    assert printable(b"bytes \xff\x1b") == "bytes \ufffd?"
    assert len(printable("y" * 50, limit=10)) == 10


# --- CalDAV shares the expansion ---------------------------------------------------


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    with RadicaleServer(tmp_path_factory.mktemp("radicale")) as server:
        yield server


def test_caldav_caps_an_endless_series_like_the_ics_source(radicale: RadicaleServer):
    client = caldav.DAVClient(radicale.url, username="ava", password="caldav-test-secret")
    name = f"busy-{uuid.uuid4().hex[:6]}"
    calendar = client.get_principal().make_calendar(name=name)
    start = NOW - timedelta(days=1)
    calendar.add_event(HEAD + event("busy@northwind.example", "Busy",
                                    start.strftime("%Y%m%dT%H%M%SZ"), "RRULE:FREQ=MINUTELY\r\n") + TAIL)  # fmt: skip
    calendar.add_event(HEAD + event("good-1@northwind.example", "Good 1") + TAIL)
    records = list(read_caldav(radicale.url, username="ava", password="caldav-test-secret",
                               calendars=[name], now=NOW))  # fmt: skip
    assert len(_of(records, ActivityRecord)) == CAP + 1
    [notice] = _reports(records)
    assert isinstance(notice, Notice) and "first 5000 are kept" in notice.reason


# --- Salesforce export --------------------------------------------------------------


def _export(tmp_path: Path, **files: str | bytes) -> Path:
    root = tmp_path / "export"
    root.mkdir()
    for name, data in files.items():
        (root / f"{name}.csv").write_bytes(data if isinstance(data, bytes) else data.encode())
    return root


def _names(records: list) -> dict[str, str]:
    return {r.source_id: r.name for r in _of(records, OpportunityRecord | AccountRecord)}


def test_a_field_over_131072_characters_no_longer_drops_the_rows_after_it(
    db_url: str, settings, tmp_path: Path
):
    root = CORPUS["field of 200,000 characters"].write(tmp_path)
    summary = sync_salesforce_export(root, settings=settings)
    assert (summary.skipped, summary.errors) == (0, 0)
    assert _rows(db_url, opportunities, "name") == [f"Deal {n}" for n in range(1, 6)]


def test_a_row_over_the_limit_is_skipped_in_one_line_and_the_rest_lands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from oppkit.sources import salesforce_export

    monkeypatch.setattr(salesforce_export, "ROW_LIMIT", 50_000)
    rows = [opportunity(n) + [f"Notes {n}"] for n in range(1, 6)]
    rows[1][-1] = "many\nlines\n" * 10_000  # 110,000 characters over 20,000 lines
    root = _export(tmp_path, Opportunity=csv_text(OPPORTUNITY + ["Description"], rows))
    records = list(read_export(root))
    assert sorted(_names(records).values()) == ["Deal 1", "Deal 3", "Deal 4", "Deal 5"]
    [skipped] = _reports(records)
    assert skipped.where == "Opportunity.csv line 3"
    assert skipped.reason == "row of more than 50000 characters (20001 lines); skipped"
    assert records[-1].cursor["complete"] is True


@pytest.mark.parametrize(
    "name", ["unterminated quote, minimal quoting", "unterminated quote, all quoted"]
)
def test_an_unterminated_quote_costs_its_row_not_the_rows_after_it(name: str, tmp_path: Path):
    root = CORPUS[name].write(tmp_path)
    records = list(read_export(root))
    names = {k: v for k, v in _names(records).items() if k.startswith("006")}
    assert names == {sfid("006", n): f"Deal {n}" for n in (1, 3, 4, 5)}  # was one merged Name
    [skipped] = _reports(records)
    assert skipped.where == "Opportunity.csv line 3"
    assert skipped.reason == (
        "unterminated quote: a quoted field runs on into the next row (line 4); row skipped"
    )


def test_an_unterminated_quote_in_the_last_row_costs_that_row(tmp_path: Path):
    root = CORPUS["unterminated quote in the last row"].write(tmp_path)
    records = list(read_export(root))
    assert sorted(v for k, v in _names(records).items() if k.startswith("006")) == [
        "Deal 1", "Deal 2", "Deal 3", "Deal 4"
    ]  # fmt: skip
    [skipped] = _reports(records)
    assert (skipped.where, skipped.reason) == (
        "Opportunity.csv line 6",
        "unterminated quote: a quoted field runs to the end of the file; row skipped",
    )


def test_an_open_quote_with_short_ids_rereads_the_lines_it_swallowed(tmp_path: Path):
    lines = ['Id,Name\r\n', '001A,"Acme\r\n', '001B,Globex\r\n', '001C,Initech\r\n']  # fmt: skip
    records = list(read_export(_export(tmp_path, Account="".join(lines))))
    assert _names(records) == {"001B": "Globex", "001C": "Initech"}
    assert [s.where for s in _reports(records)] == ["Account.csv line 2"]


@pytest.mark.parametrize(
    ("encoding", "notice"),
    [
        ("utf-8-sig", None),
        ("utf-16", None),
        ("utf-16-be", None),
        ("cp1252", "not UTF-8 (first bad byte at {at}); read as Windows-1252 (cp1252)"),
    ],
)
def test_encodings_are_detected_and_a_fallback_is_said(
    encoding: str, notice: str | None, db_url: str, settings, tmp_path: Path
):
    rows = [[sfid("001", 1), "Acme Robotics GmbH", ""], [sfid("001", 3), "Müller Café €", ""]]
    data = csv_text(ACCOUNT, rows).encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    root = _export(tmp_path, Account=data)
    records = list(read_export(root))
    assert sorted(_names(records).values()) == ["Acme Robotics GmbH", "Müller Café €"]
    at = data.find("ü".encode(encoding))
    assert [r.reason for r in _reports(records)] == ([notice.format(at=at)] if notice else [])
    assert all(isinstance(r, Notice) for r in _reports(records))
    summary = sync_salesforce_export(root, settings=settings)  # was: the whole file dropped
    assert (summary.written, summary.skipped) == (2, 0)
    assert _rows(db_url, accounts, "name") == ["Acme Robotics GmbH", "Müller Café €"]
    assert sync_salesforce_export(root, settings=settings).read == 0  # the checkpoint holds


def test_a_cp1252_file_resumes_mid_file_from_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from oppkit.sources import salesforce_export

    monkeypatch.setattr(salesforce_export, "CHECKPOINT_EVERY", 2)
    rows = [[sfid("001", n), f"Café {n}", ""] for n in range(1, 6)]
    root = _export(tmp_path, Account=csv_text(ACCOUNT, rows).encode("cp1252"))
    first = list(read_export(root))
    [middle, *_] = _of(first, Checkpoint)
    assert middle.cursor["row"] == 2 and middle.cursor["complete"] is False
    resumed = list(read_export(root, {middle.object: middle.cursor}))
    assert [r.name for r in _of(resumed, AccountRecord)] == ["Café 3", "Café 4", "Café 5"]


def test_a_nul_byte_is_stripped_and_the_row_lands_on_both_backends(
    db_url: str, settings, tmp_path: Path
):
    root = CORPUS["NUL byte in a field"].write(tmp_path)
    summary = sync_salesforce_export(root, settings=settings)
    assert (summary.written, summary.skipped, summary.errors) == (7, 0, 0)
    assert "Deal 3" in _rows(db_url, opportunities, "name")  # PostgreSQL lost the row


def test_a_duplicate_id_keeps_the_first_row_and_says_so_once(db_url: str, settings, tmp_path: Path):
    root = CORPUS["duplicate Ids"].write(tmp_path)
    records = list(read_export(root))
    [skipped] = _reports(records)
    assert (skipped.where, skipped.reason) == (
        "Opportunity.csv line 5",
        f"duplicate Id {sfid('006', 2)} (the first row with it is kept); row skipped",
    )
    summary = sync_salesforce_export(root, settings=settings)
    assert (summary.skipped, summary.errors) == (1, 0)
    assert _rows(db_url, opportunities, "name") == [f"Deal {n}" for n in range(1, 6)]


def test_missing_and_extra_columns_and_quoted_newlines(db_url: str, settings, tmp_path: Path):
    sync_salesforce_export(CORPUS["missing optional and extra columns"].write(tmp_path / "a"),
                           settings=settings)  # fmt: skip
    assert _rows(db_url, opportunities, "amount") == [None] * 5
    sync_salesforce_export(CORPUS["quoted newlines in Name"].write(tmp_path / "b"),
                           settings=settings)  # fmt: skip
    assert _rows(db_url, opportunities, "name")[1] == "Deal 2\nsecond line\r\nthird"


def test_a_missing_id_column_is_one_line_for_the_file(tmp_path: Path):
    root = export(accounts=csv_text(["Name", "Website"], [["Acme", ""], ["Globex", ""]]))(tmp_path)
    records = list(read_export(root))
    assert _of(records, AccountRecord) == []
    assert len(_of(records, OpportunityRecord)) == 5
    assert [(r.where, r.reason) for r in _reports(records)] == [
        ("Account.csv", "no Id column (the header has: Name, Website); file skipped")
    ]


def test_a_notice_is_printed_but_not_counted_as_skipped(sqlite_url: str, tmp_path: Path):
    root = CORPUS["Windows-1252"].write(tmp_path)
    at = (root / "Account.csv").read_bytes().find("ü".encode("cp1252"))
    result = run_cli("--db", sqlite_url, "sync", "salesforce-export", str(root))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"WARNING oppkit.sync.runner: notice Account.csv: not UTF-8 (first bad byte at {at});"
        " read as Windows-1252 (cp1252)"
    ]
    assert "read 8, written 8, skipped 0, errors 0" in result.stdout
    assert "1 notice" in result.stdout
