"""Read a Salesforce Data Export folder (one CSV per object) into plain records.

Why: an org that gives no API access can still hand over its weekly Data Export
(Setup > Data Export). Its files use API field names and the same record ids as the
live API, so records read here carry ``source="salesforce"`` and land on the same rows
an API sync would write.

What: :func:`read_export` streams each known CSV in dependency order (stages, users,
accounts, contacts, campaigns, opportunities, then what hangs off them) and yields
records, :class:`Skipped` for rows it cannot use and a :class:`Checkpoint` per file
(and every :data:`CHECKPOINT_EVERY` rows) keyed by the file's SHA-256, so an unchanged
file is skipped on the next run and a killed run resumes mid-file.

Forgiving by design, and one line per problem: files and columns may be missing (orgs
differ) and unknown columns are ignored; a bad optional value (an amount of "n/a") is
logged and stored as null; a row without its Id or a required field is skipped, and a
file without a required column is one Skipped for the file. Bad files cost their bad
rows only:

* Encoding: a byte-order mark says UTF-8, UTF-16 or UTF-32 (UTF-16 without one is
  recognised by its zero bytes); otherwise UTF-8, and a file that is not UTF-8 is read as
  Windows-1252 with a :class:`Notice` saying so.
* Rows are parsed by :mod:`csv` over lines that are remembered per record
  (:class:`_Rows`): a row over :data:`ROW_LIMIT` characters is skipped with one line
  (csv's own limit of 131,072 characters a field used to end the file there); a quote
  that never closes costs its row -- when a line it swallowed is a row of its own (the
  header's width, a Salesforce Id of the file's kind) the rows are read again from there,
  and when it runs to the end of the file the lines after it are read again once.
* NUL characters are removed (PostgreSQL stores none); a second row with an Id already
  read is skipped with one line: the first row with an Id wins.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from oppkit.config import case_opportunity_field, contract_type_field, load_settings
from oppkit.errors import printable
from oppkit.sources.records import Checkpoint, Notice, Record, Skipped
from oppkit.sources.salesforce_fields import (
    BUILDERS,
    CustomFields,
    SalesforceRow,
    Snapshot,
    Unusable,
    domain_from_website,
    history_changes,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_float,
    snapshot,
)
from oppkit.sources.text import clean_text

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 5000  # data rows between intermediate checkpoints
ROW_LIMIT = 10 * 2**20  # characters of one row; a longer one is skipped with one line
HISTORY_FILE = "OpportunityHistory.csv"
EXPORT_FILES = {f"{name}.csv": build for name, build in BUILDERS.items()}
# Columns a file is no use without (besides Id): one Skipped for the file, not one a row.
REQUIRED_COLUMNS = {
    "Account.csv": ("Name",),
    "Campaign.csv": ("Name",),
    "Opportunity.csv": ("Name",),
    "OpportunityContactRole.csv": ("OpportunityId", "ContactId"),
    "OpportunityHistory.csv": ("OpportunityId", "CreatedDate"),
    "CampaignMember.csv": ("CampaignId",),
    "Contract.csv": ("AccountId",),
}
_BOMS = (  # longest first: UTF-32 LE starts like UTF-16 LE
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SALESFORCE_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_LINE_END = re.compile(r"(?:\r\n|\n|\r)\Z")

__all__ = [
    "domain_from_website",
    "parse_bool",
    "parse_date",
    "parse_datetime",
    "parse_float",
    "read_export",
]


# --- encoding ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Encoding:
    name: str
    errors: str = "strict"
    notice: str | None = None  # what the user is told about how the file was read


def _inspect(path: Path) -> tuple[str, _Encoding]:
    """The file's SHA-256 and how to decode it (checked by decoding it once)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        first = handle.read(1 << 20)
        encoding = _sniff(first)
        decoder = codecs.getincrementaldecoder(encoding)()
        bad: int | None = None
        offset = 0
        chunk = first
        while chunk:
            digest.update(chunk)
            if bad is None:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    bad = offset + max(exc.start, 0)
            offset += len(chunk)
            chunk = handle.read(1 << 20)
        if bad is None:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                bad = offset
    if bad is None:
        return digest.hexdigest(), _Encoding(encoding)
    if encoding in ("utf-8", "utf-8-sig"):
        notice = f"not UTF-8 (first bad byte at {bad}); read as Windows-1252 (cp1252)"
        return digest.hexdigest(), _Encoding("cp1252", "replace", notice)
    notice = f"not valid {encoding.upper()} (first bad byte at {bad}); bad characters replaced"
    return digest.hexdigest(), _Encoding(encoding, "replace", notice)


def _sniff(start: bytes) -> str:
    """The encoding a file's first bytes show: its byte-order mark, else UTF-16 when every
    other byte is zero (ASCII text without a mark), else UTF-8."""
    for bom, name in _BOMS:
        if start.startswith(bom):
            return name
    sample = start[:4096]
    half = len(sample) // 2
    if half >= 4:
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        if odd >= half * 0.4 and even <= half * 0.05:
            return "utf-16-le"
        if even >= half * 0.4 and odd <= half * 0.05:
            return "utf-16-be"
    return "utf-8"


# --- rows ----------------------------------------------------------------------------


def _ends_quoted(line: str, quoted: bool) -> bool:
    """Does ``line`` end inside a quoted field, starting inside one or not? As Python's
    csv reads it: a quote opens a field only at the field's start, ``""`` inside one is a
    quote, and after the closing quote the field runs on to the next comma."""
    if not quoted and '"' not in line:
        return False
    pos = 0
    while True:
        if quoted:
            while True:
                found = line.find('"', pos)
                if found < 0:
                    return True
                if line.startswith('"', found + 1):
                    pos = found + 2
                    continue
                pos, quoted = found + 1, False
                break
        elif line.startswith('"', pos):
            pos, quoted = pos + 1, True
            continue
        comma = line.find(",", pos)
        if comma < 0:
            return False
        pos = comma + 1


def _parse(text: str) -> list[str]:
    return next(csv.reader((text,)), [])


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class _TooLong(Exception):
    """The record being read is over :data:`ROW_LIMIT` characters."""


class _Lines:
    """A text file's lines for csv.reader: numbered, with lines given back to be read
    again first, and the lines (and size) of the record being read remembered."""

    def __init__(self, handle: Iterable[str]) -> None:
        self._file = iter(handle)
        self._number = 0
        self.back: deque[tuple[int, str]] = deque()
        self.record: list[tuple[int, str]] = []
        self.size = 0
        self.ended = False  # the end of the file was reached while reading the record
        self.nul = False  # the record holds a NUL character

    def start(self) -> None:
        self.record, self.size, self.ended, self.nul = [], 0, False, False

    def take(self) -> tuple[int, str] | None:
        """The next line, not counted in the record (None at the end of the file)."""
        if self.back:
            return self.back.popleft()
        line = next(self._file, None)
        if line is None:
            return None
        self._number += 1
        return self._number, line

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        item = self.take()
        if item is None:
            self.ended = True
            raise StopIteration
        self.record.append(item)
        self.size += len(item[1])
        if "\0" in item[1]:
            self.nul = True
        if self.size > ROW_LIMIT:  # bounded memory: csv never holds more of one row
            raise _TooLong
        return item[1]


class _Rows:
    """The records of a CSV text as (number of its first line, its values or None, why it
    cannot be used or None).

    csv.reader parses; a record is looked at again only when it spans lines, reaches the
    end of the file or is too long: ``starts_row`` (set once the header is known) tells
    whether a line an open quote swallowed is a row of its own, and the rows are then read
    again from that line; a quote open at the end of the file has the lines after its row
    read again, once.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = _Lines(lines)
        self._given_back = 0  # the last line given back after a quote ran to the end
        self.starts_row: Callable[[str], bool] = lambda line: False

    def __iter__(self) -> Iterator[tuple[int, list[str] | None, str | None]]:
        reader = csv.reader(self.lines)
        lines = self.lines
        while True:
            lines.start()
            try:
                values = next(reader)
            except StopIteration:
                return
            except _TooLong:
                yield lines.record[0][0], None, self._too_long()
                continue
            except csv.Error as exc:
                yield (
                    lines.record[0][0],
                    None,
                    self._broken(f"cannot parse CSV row: {printable(exc)}"),
                )
                continue
            number = lines.record[0][0]
            if len(lines.record) > 1 or lines.ended:
                why = self._swallowed() or self._open_at_the_end()
                if why is not None:
                    yield number, None, why
                    continue
            if lines.nul:
                values = [clean_text(value) or "" for value in values]
            yield number, values, None

    def _swallowed(self) -> str | None:
        """An open quote took in a line that is a row: read again from there."""
        record = self.lines.record
        for at, (number, line) in enumerate(record[1:], start=1):
            if self.starts_row(line):
                self.lines.back.extendleft(reversed(record[at:]))
                why = f"a quoted field runs on into the next row (line {number})"
                return f"unterminated quote: {why}; row skipped"
        return None

    def _open_at_the_end(self) -> str | None:
        """The file ended inside a quoted field: the lines after the row are read again,
        once (not again when a line given back opens a quote to the end again)."""
        record = self.lines.record
        if not self.lines.ended or not _quoted_after(line for _, line in record):
            return None
        if record[0][0] > self._given_back:
            self._given_back = record[-1][0]
            self.lines.back.extendleft(reversed(record[1:]))
            return "unterminated quote: a quoted field runs to the end of the file; row skipped"
        return (
            "unterminated quote: a quoted field runs to the end of the file;"
            f" {_count(len(record), 'line')} skipped"
        )

    def _too_long(self) -> str:
        return self._broken(
            f"row of more than {ROW_LIMIT} characters ({{lines}}); skipped", counted=True
        )

    def _broken(self, why: str, counted: bool = False) -> str:
        """After a record that could not be parsed: a row an open quote swallowed is read
        again; else the lines up to the end of its quoted field (if one is open) go too."""
        swallowed = self._swallowed()
        if swallowed is not None:
            return swallowed
        lines = len(self.lines.record)
        quoted = _quoted_after(line for _, line in self.lines.record)
        while quoted and (item := self.lines.take()) is not None:
            if self.starts_row(item[1]):
                self.lines.back.appendleft(item)
                break
            lines += 1
            quoted = _ends_quoted(item[1], True)
        return why.format(lines=_count(lines, "line")) if counted else why


def _quoted_after(lines: Iterable[str]) -> bool:
    """Do these lines, read from the start of a record, end inside a quoted field?"""
    quoted = False
    for line in lines:
        quoted = _ends_quoted(line, quoted)
    return quoted


def _row_start(header: list[str], prefix: Callable[[], str | None]) -> Callable[[str], bool]:
    """Is a line a row of this file on its own: complete, the header's width, and a
    Salesforce Id (of the kind the file's rows have) in the Id column?"""
    width, at = len(header), header.index("Id")

    def starts_row(line: str) -> bool:
        if at == 0 and not _SALESFORCE_ID.match(line.lstrip('"')):
            return False  # the usual case, decided without parsing
        if _ends_quoted(line, False):
            return False
        try:
            fields = _parse(_LINE_END.sub("", line, 1))
        except csv.Error:
            return False
        if len(fields) != width or not _SALESFORCE_ID.fullmatch(fields[at].strip()):
            return False
        kind = prefix()
        return kind is None or fields[at].strip().startswith(kind)

    return starts_row


class _Export:
    """One export file read row by row: the header, then (number, row or None, Skipped)."""

    def __init__(self, path: Path, encoding: _Encoding) -> None:
        self.path = path
        self.encoding = encoding
        self.header: list[str] = []
        self.prefix: str | None = None  # the key prefix of the file's Ids ("006")
        if csv.field_size_limit() <= ROW_LIMIT:  # process-wide; only ever raised
            csv.field_size_limit(ROW_LIMIT + 1)  # (oppkit bounds a whole row itself)

    def rows(self) -> Iterator[tuple[int, SalesforceRow | None, Skipped | None]]:
        encoding, errors = self.encoding.name, self.encoding.errors
        with self.path.open(encoding=encoding, errors=errors, newline="") as handle:
            records = _Rows(handle)
            number = 0
            for line, values, why in records:
                where = f"{self.path.name} line {line}"
                if not self.header:
                    if values:
                        self.header = self._header(values)
                        if "Id" in self.header:
                            records.starts_row = _row_start(self.header, lambda: self.prefix)
                        yield 0, None, None  # the header is read
                    continue
                if values is not None and not values:
                    continue  # a blank line is no row
                number += 1
                if why is not None:
                    yield number, None, Skipped(why, where)
                    continue
                row = SalesforceRow(dict(zip(self.header, values, strict=False)), number, where)
                if self.prefix is None and _SALESFORCE_ID.fullmatch(row.text("Id") or ""):
                    self.prefix = (row.text("Id") or "")[:3]
                yield number, row, None

    @staticmethod
    def _header(values: list[str]) -> list[str]:
        names = [clean_text(name.strip()) or "" for name in values]
        if names:  # a UTF-8 mark read as Windows-1252, or one the codec left
            names[0] = names[0].removeprefix("\ufeff").removeprefix("ï»¿").strip()
        return names


# --- files ----------------------------------------------------------------------------


def _read_file(
    path: Path,
    build: Callable[[SalesforceRow], Record] | None,
    previous: Mapping[str, dict],
    custom: CustomFields,
) -> Iterator[Record]:
    object_name = f"salesforce-export:{path.name}"
    try:
        sha256, encoding = _inspect(path)
    except OSError as exc:
        yield Skipped(f"cannot read file: {printable(exc)}", path.name)
        return

    last = previous.get(object_name) or {}
    resume = 0
    if last.get("sha256") == sha256:
        if last.get("complete"):
            return  # unchanged since the last complete read
        if build is not None:  # history is grouped in memory, so it always restarts
            resume = int(last.get("row") or 0)
    if encoding.notice and not resume:  # said once, not again when a run resumes
        yield Notice(encoding.notice, path.name)

    export = _Export(path, encoding)
    rows = resume
    seen: set[str] = set()  # Ids read so far: the first row with an Id wins
    snapshots: list[Snapshot] = []
    for number, row, skipped in export.rows():
        if number == 0:  # the header was read: is the file of any use?
            missing = [
                c for c in ("Id", *REQUIRED_COLUMNS.get(path.name, ())) if c not in export.header
            ]
            if missing:
                have = printable(", ".join(export.header), 150) or "nothing"
                yield Skipped(f"no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}"
                              f" (the header has: {have}); file skipped", path.name)  # fmt: skip
                break
            continue
        rows = number
        row_id = row.text("Id") if row is not None else None
        if row_id is not None and row_id in seen:
            skipped = Skipped(f"duplicate Id {printable(row_id, 40)} (the first row with it is"
                              " kept); row skipped", row.where)  # fmt: skip
        elif row_id is not None:
            seen.add(row_id)
        if number <= resume:
            continue
        if skipped is not None:
            yield skipped
        elif build is None:
            try:
                snapshots.append(snapshot(row))
            except Unusable as exc:
                yield Skipped(str(exc), row.where)
        else:
            try:
                row.require("Id")
                record = build(row)
            except Unusable as exc:
                yield Skipped(str(exc), row.where)
            else:
                custom.apply(record, row)
                yield record
        if build is not None and rows % CHECKPOINT_EVERY == 0:
            cursor = {"sha256": sha256, "row": rows, "complete": False}
            yield Checkpoint(object=object_name, cursor=cursor)
    yield from history_changes(snapshots)
    yield Checkpoint(object=object_name, cursor={"sha256": sha256, "rows": rows, "complete": True})


def read_export(
    directory: Path, previous: Mapping[str, dict] | None = None, custom: CustomFields | None = None
) -> Iterator[Record]:
    """Yield records from a Salesforce Data Export folder in dependency order.

    ``custom`` names a Contract's type field and a Case's deal field as the API source
    reads them (default: from the settings, :func:`oppkit.config.contract_type_field` and
    :func:`oppkit.config.case_opportunity_field`); a file without the column leaves the
    type to the fallback and the Case to its account.

    ``previous`` maps ``salesforce-export:<file>`` to the last committed checkpoint cursor:
    files whose SHA-256 matches a complete cursor are skipped, an incomplete one resumes
    after its ``row``. Missing files are skipped silently; a missing folder raises
    FileNotFoundError (that is a wrong path, not bad data).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"not a Salesforce export folder: {directory}")
    if custom is None:
        settings = load_settings()
        custom = CustomFields(contract_type_field(settings), case_opportunity_field(settings))
    for filename, build in EXPORT_FILES.items():
        path = directory / filename
        if path.is_file():
            yield from _read_file(path, build, previous or {}, custom)
        else:
            log.debug("%s: no %s, nothing to read", directory, filename)
