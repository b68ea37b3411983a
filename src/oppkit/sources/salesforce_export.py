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

Forgiving by design: files and columns may be missing (orgs differ); a bad optional
value (an amount of "n/a") is logged and stored as null; a row without its Id or a
required field is skipped; a file that is not UTF-8 or not CSV is skipped as a whole.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from oppkit.sources.records import Checkpoint, Record, Skipped
from oppkit.sources.salesforce_fields import (
    BUILDERS,
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

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 5000  # data rows between intermediate checkpoints
HISTORY_FILE = "OpportunityHistory.csv"
EXPORT_FILES = {f"{name}.csv": build for name, build in BUILDERS.items()}

__all__ = [
    "domain_from_website",
    "parse_bool",
    "parse_date",
    "parse_datetime",
    "parse_float",
    "read_export",
]


class _BrokenFile(Exception):
    """The CSV itself cannot be parsed any further."""

    def __init__(self, reason: str, where: str) -> None:
        super().__init__(reason)
        self.where = where


def _csv_rows(path: Path, skip: int = 0) -> Iterator[SalesforceRow]:
    """Stream the data rows of ``path`` after the first ``skip``; blank lines don't count."""
    line = 1
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            number = 0
            while True:
                line = reader.line_num + 1  # where the next record starts
                values = next(reader, None)
                if values is None:
                    return
                if not values:
                    continue
                number += 1
                if number > skip:
                    yield SalesforceRow(
                        dict(zip(header, values, strict=False)), number, f"{path.name} line {line}"
                    )
    except csv.Error as exc:
        raise _BrokenFile(f"cannot parse CSV: {exc}", f"{path.name} line {line}") from exc


# --- files ----------------------------------------------------------------------------


def _fingerprint(path: Path) -> str:
    """SHA-256 of the file; raises UnicodeDecodeError if it is not UTF-8 text."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                exc.start += offset  # report the position in the file, not in the chunk
                raise
            offset += len(chunk)
        decoder.decode(b"", final=True)
    return digest.hexdigest()


def _read_file(
    path: Path, build: Callable[[SalesforceRow], Record] | None, previous: Mapping[str, dict]
) -> Iterator[Record]:
    object_name = f"salesforce-export:{path.name}"
    try:
        sha256 = _fingerprint(path)
    except UnicodeDecodeError as exc:
        yield Skipped(f"not UTF-8 text ({exc.reason} near byte {exc.start})", path.name)
        return
    except OSError as exc:
        yield Skipped(f"cannot read file: {exc}", path.name)
        return

    last = previous.get(object_name) or {}
    resume = 0
    if last.get("sha256") == sha256:
        if last.get("complete"):
            return  # unchanged since the last complete read
        if build is not None:  # history is grouped in memory, so it always restarts
            resume = int(last.get("row") or 0)

    rows = resume
    try:
        if build is None:
            snapshots: list[Snapshot] = []
            for row in _csv_rows(path):
                rows = row.number
                try:
                    snapshots.append(snapshot(row))
                except Unusable as exc:
                    yield Skipped(str(exc), row.where)
            yield from history_changes(snapshots)
        else:
            for row in _csv_rows(path, skip=resume):
                rows = row.number
                try:
                    row.require("Id")
                    record = build(row)
                except Unusable as exc:
                    yield Skipped(str(exc), row.where)
                else:
                    yield record
                if rows % CHECKPOINT_EVERY == 0:
                    cursor = {"sha256": sha256, "row": rows, "complete": False}
                    yield Checkpoint(object=object_name, cursor=cursor)
    except _BrokenFile as exc:
        yield Skipped(str(exc), exc.where)
        return
    yield Checkpoint(object=object_name, cursor={"sha256": sha256, "rows": rows, "complete": True})


def read_export(directory: Path, previous: Mapping[str, dict] | None = None) -> Iterator[Record]:
    """Yield records from a Salesforce Data Export folder in dependency order.

    ``previous`` maps ``salesforce-export:<file>`` to the last committed checkpoint cursor:
    files whose SHA-256 matches a complete cursor are skipped, an incomplete one resumes
    after its ``row``. Missing files are skipped silently; a missing folder raises
    FileNotFoundError (that is a wrong path, not bad data).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"not a Salesforce export folder: {directory}")
    for filename, build in EXPORT_FILES.items():
        path = directory / filename
        if path.is_file():
            yield from _read_file(path, build, previous or {})
        else:
            log.debug("%s: no %s, nothing to read", directory, filename)
