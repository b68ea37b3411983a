"""Malformed calendar and Salesforce export files, built in code (issue P10 "bad input").

Shared by tests/test_bad_files.py and benchmarks/bad_files.py: every input sits between
good records, and says what a sync of it into a fresh database must leave behind -- the
rows that land (``table``, ``lands``) and how many one-line reports (a skipped row or a
notice) the command prints (``lines``).

Calendar inputs are one .ics file (or a folder) synced with ``oppkit sync calendar
--ics PATH``; their good meetings are one-off events, kept whatever the window. Export
inputs are a Data Export folder (Account.csv and Opportunity.csv) synced with ``oppkit
sync salesforce-export DIR``; their Ids are real-looking 18-character Salesforce Ids.

Example::

    for bad in bad_files():
        path = bad.write(tmp_path / "input")
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

CAP = 5000  # occurrences kept of one series (oppkit.sources.recurrence.MAX_OCCURRENCES)
BIG_FIELD = 200_000  # characters: over csv's default field_size_limit (131,072)
HUGE_FIELD = 11 * 2**20  # characters: over oppkit's 10 MB limit for one row


@dataclass(frozen=True)
class BadFile:
    """One malformed input and what a sync of it must leave behind."""

    name: str
    command: str  # "calendar" or "salesforce-export"
    build: Callable[[Path], Path]  # writes the input under a folder, returns what to sync
    lands: int  # rows of ``table`` in a fresh database after one sync
    lines: int  # one-line reports (skipped or notice) the sync prints
    table: str = "activities"
    code: int = 0  # exit code

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        return self.build(folder)

    def args(self, path: Path) -> list[str]:
        """The command's arguments for the input at ``path``."""
        if self.command == "calendar":
            return ["sync", "calendar", "--ics", str(path)]
        return ["sync", "salesforce-export", str(path)]


# --- calendars ----------------------------------------------------------------------

HEAD = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//oppkit tests//bad files//EN\r\n"
TAIL = "END:VCALENDAR\r\n"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def event(uid: str, summary: str, start: str | None = "20260302T100000Z", extra: str = "") -> str:
    """One VEVENT (an hour long); ``start=None`` leaves DTSTART out, ``extra`` adds lines."""
    lines = ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z"]
    if start is not None:
        lines += [f"DTSTART:{start}", "DURATION:PT1H"]
    lines.append(f"SUMMARY:{summary}")
    text = "\r\n".join(lines) + "\r\n" + extra
    return text + "ORGANIZER;CN=Ava Patel:mailto:ava.patel@northwind.example\r\nEND:VEVENT\r\n"


def good_events() -> tuple[str, str]:
    return (
        event("good-1@northwind.example", "Good 1", "20260302T100000Z"),
        event("good-3@northwind.example", "Good 3", "20260304T100000Z"),
    )


def calendar_around(bad: str) -> str:
    """A calendar of the bad event between two good ones."""
    first, last = good_events()
    return HEAD + first + bad + last + TAIL


def _recurring(rule: str, start: datetime) -> str:
    return event("series@northwind.example", "Busy series", _stamp(start), f"RRULE:{rule}\r\n")


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _write(name: str, text: str | bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        data = text() if callable(text) else text
        if isinstance(data, str):
            data = data.encode("utf-8")
        path.write_bytes(data)
        return path

    return build


def _truncated() -> str:
    first, last = good_events()
    middle = event("good-2@northwind.example", "Good 2", "20260303T100000Z")
    cut = event("cut@northwind.example", "Cut off", "20260305T100000Z", "LOCATION:Room 4\r\n")
    whole = HEAD + first + middle + last + cut + TAIL
    return whole[: whole.index("LOCATION:Room 4")]  # the file ends inside the last VEVENT


def _escapes(folder: Path) -> Path:
    folder = folder / "calendars"
    folder.mkdir()
    (folder / "good.ics").write_text(calendar_around(""), encoding="utf-8")
    (folder / "bad.ics").write_bytes(
        b"\x1b]0;owned\x07\x1b[2J\x1b[31mRED ALERT\x1b[0m\x00\x08\x08 not a calendar\r\n"
        + bytes(range(0x80, 0xA0))
        + b"\r\n"
    )
    return folder


def calendar_files() -> list[BadFile]:
    """The malformed calendar inputs: each between two good meetings (Good 1, Good 3)."""
    now = _minute(datetime.now(UTC))
    return [
        BadFile("infinite FREQ=MINUTELY", "calendar", _write("minutely.ics", lambda: calendar_around(
            _recurring("FREQ=MINUTELY", now - timedelta(days=2)))), 2 + CAP, 1),
        BadFile("FREQ=SECONDLY since 1970", "calendar", _write("secondly.ics", lambda: calendar_around(
            _recurring("FREQ=SECONDLY", datetime(1970, 1, 1, tzinfo=UTC)))), 2, 1),
        BadFile("COUNT=10000000", "calendar", _write("count.ics", lambda: calendar_around(
            _recurring("FREQ=MINUTELY;COUNT=10000000", now - timedelta(days=1)))), 2 + CAP, 1),
        BadFile("FREQ=HOURLY on 30 February", "calendar", _write("february.ics", lambda: calendar_around(
            _recurring("FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30", now - timedelta(days=2)))), 2, 1),
        BadFile("COUNT=-1", "calendar", _write("negative.ics", lambda: calendar_around(
            _recurring("FREQ=MINUTELY;COUNT=-1", now - timedelta(days=2)))), 2, 1),
        BadFile("no DTSTART", "calendar", _write("undated.ics", calendar_around(
            event("undated@northwind.example", "Undated", None))), 2, 1),
        BadFile("RRULE:FREQ=FOO", "calendar", _write("foo.ics", calendar_around(
            event("foo@northwind.example", "Foo rule", extra="RRULE:FREQ=FOO\r\n"))), 2, 1),
        BadFile("RRULE:garbage", "calendar", _write("garbage.ics", calendar_around(
            event("garbage@northwind.example", "Garbage rule", extra="RRULE:garbage\r\n"))), 2, 1),
        BadFile("truncated in a VEVENT", "calendar", _write("truncated.ics", _truncated), 3, 1),
        BadFile("a line that is no property, in an event", "calendar", _write("badline.ics", calendar_around(
            event("badline@northwind.example", "Bad line", extra="THIS LINE HAS NO COLON\r\n"))), 3, 1),
        BadFile("a line that is no property, between events", "calendar", _write("junk.ics", lambda:
            calendar_around("").replace("END:VEVENT\r\n", "END:VEVENT\r\n\x1b[31mjunk line\r\n", 1)), 2, 1),
        BadFile("escape sequences, no calendar", "calendar", _escapes, 2, 1),
        BadFile("RRULE INTERVAL=0", "calendar", _write("interval.ics", calendar_around(
            event("loop@northwind.example", "Looping", extra="RRULE:FREQ=WEEKLY;INTERVAL=0\r\n"))), 2, 1),
    ]  # fmt: skip


# --- Salesforce Data Export ---------------------------------------------------------

OPPORTUNITY = ["Id", "Name", "AccountId", "StageName", "Amount", "CloseDate"]
ACCOUNT = ["Id", "Name", "Website"]


def sfid(prefix: str, n: int) -> str:
    """An 18-character Salesforce Id, e.g. ``sfid("006", 1)`` -> ``006000000000001AAA``."""
    return f"{prefix}{n:012d}AAA"


def account_rows() -> list[list[str]]:
    return [
        [sfid("001", 1), "Acme Robotics GmbH", "https://www.acme-robotics.example/"],
        [sfid("001", 2), "Globex", "globex.example"],
    ]


def opportunity(n: int, name: str | None = None) -> list[str]:
    return [sfid("006", n), name or f"Deal {n}", sfid("001", 1 + n % 2), "Prospecting",
            str(1000 * n), "2026-06-30"]  # fmt: skip


def csv_text(header: list[str], rows: list[list[str]], *, quote_all: bool = True) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def export(
    opportunities: str | Callable[[], str] | None = None,
    accounts: str | bytes | Callable[[], str | bytes] | None = None,
) -> Callable[[Path], Path]:
    """A builder of an export folder: Account.csv and Opportunity.csv (default: good)."""

    def build(folder: Path) -> Path:
        root = folder / "export"
        root.mkdir()
        acc = accounts() if callable(accounts) else accounts
        acc = csv_text(ACCOUNT, account_rows()) if acc is None else acc
        (root / "Account.csv").write_bytes(acc if isinstance(acc, bytes) else acc.encode("utf-8"))
        opp = opportunities() if callable(opportunities) else opportunities
        opp = csv_text(OPPORTUNITY, [opportunity(n) for n in range(1, 6)]) if opp is None else opp
        (root / "Opportunity.csv").write_bytes(opp.encode("utf-8"))
        return root

    return build


def _deals(rows: list[list[str]], header: list[str] = OPPORTUNITY, quote_all: bool = True) -> str:
    return csv_text(header, rows, quote_all=quote_all)


def _big_field(size: int) -> Callable[[], str]:
    def text() -> str:
        rows = [opportunity(n) + [f"Notes {n}"] for n in range(1, 6)]
        rows[1][-1] = "x" * size
        return _deals(rows, OPPORTUNITY + ["Description"])

    return text


def _open_quote_minimal() -> str:
    """Minimal quoting; deal 2's Name opens a quote it never closes."""
    lines = _deals([opportunity(n) for n in range(1, 6)], quote_all=False).splitlines(True)
    lines[2] = lines[2].replace("Deal 2", '"Deal 2', 1)
    return "".join(lines)


def _open_quote_quoted(row: int) -> Callable[[], str]:
    """Every field quoted; deal ``row``'s last field lacks its closing quote."""

    def text() -> str:
        lines = _deals([opportunity(n) for n in range(1, 6)]).splitlines(True)
        lines[row] = lines[row].rstrip("\r\n").removesuffix('"') + "\r\n"
        return "".join(lines)

    return text


def _accounts_encoded(encoding: str) -> Callable[[], bytes]:
    def data() -> bytes:
        rows = account_rows() + [[sfid("001", 3), "Müller Café €", "mueller.example"]]
        return csv_text(ACCOUNT, rows).encode(encoding)

    return data


def export_files() -> list[BadFile]:
    """The malformed export inputs: Opportunity.csv holds deals 1-5 unless told otherwise."""
    deals = [opportunity(n) for n in range(1, 6)]
    return [
        BadFile(f"field of {BIG_FIELD:,} characters", "salesforce-export", export(_big_field(BIG_FIELD)),
                5, 0, "opportunities"),
        BadFile("field of 11 MB", "salesforce-export", export(_big_field(HUGE_FIELD)), 4, 1, "opportunities"),
        BadFile("unterminated quote, minimal quoting", "salesforce-export", export(_open_quote_minimal),
                4, 1, "opportunities"),
        BadFile("unterminated quote, all quoted", "salesforce-export", export(_open_quote_quoted(2)),
                4, 1, "opportunities"),
        BadFile("unterminated quote in the last row", "salesforce-export", export(_open_quote_quoted(5)),
                4, 1, "opportunities"),
        BadFile("UTF-8 with BOM", "salesforce-export", export(accounts=_accounts_encoded("utf-8-sig")),
                3, 0, "accounts"),
        BadFile("UTF-16 with BOM", "salesforce-export", export(accounts=_accounts_encoded("utf-16")),
                3, 0, "accounts"),
        BadFile("Windows-1252", "salesforce-export", export(accounts=_accounts_encoded("cp1252")),
                3, 1, "accounts"),
        BadFile("NUL byte in a field", "salesforce-export", export(lambda: _deals(
            [*deals[:2], opportunity(3, "Deal\x00 3"), *deals[3:]])), 5, 0, "opportunities"),
        BadFile("duplicate Ids", "salesforce-export", export(lambda: _deals(
            [*deals[:3], opportunity(2, "Deal 2 again"), *deals[3:]])), 5, 1, "opportunities"),
        BadFile("missing optional and extra columns", "salesforce-export", export(lambda: _deals(
            [[sfid("006", n), f"Deal {n}", "x" * n, "?"] for n in range(1, 6)],
            ["Id", "Name", "Unknown__c", "Another Column"])), 5, 0, "opportunities"),
        BadFile("no Id column", "salesforce-export", export(accounts=lambda: csv_text(
            ["Name", "Website"], [r[1:] for r in account_rows()])), 0, 1, "accounts"),
        BadFile("quoted newlines in Name", "salesforce-export", export(lambda: _deals(
            [*deals[:1], opportunity(2, "Deal 2\nsecond line\r\nthird"), *deals[2:]])), 5, 0,
            "opportunities"),
    ]  # fmt: skip


def bad_files() -> list[BadFile]:
    """Every malformed input: calendars first, then Salesforce exports."""
    return calendar_files() + export_files()
