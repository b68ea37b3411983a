"""A toy source for tests/test_source_seam.py: notes from a text file, one per line.

It is what a new source in src/oppkit/sources/ looks like: a reader ``(target, cursors)
-> records`` that knows no SQL, yields plain records and a :class:`Checkpoint` after them,
and resumes from the cursor it checkpointed (here: how many lines it has read).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from oppkit.sources.records import ActivityRecord, Checkpoint, Participant, Record

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def read_notes(path: Path, previous: Mapping[str, dict] | None = None) -> Iterator[Record]:
    """Each line ``<id> <email> <subject>`` becomes a note; a checkpoint after the file."""
    obj = f"toy:{path.name}"
    done = int(((previous or {}).get(obj) or {}).get("lines", 0))
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines[done:], start=done):
        note_id, email, subject = line.split(" ", 2)
        yield ActivityRecord(
            source="toy", source_id=note_id, kind="note", subject=subject,
            occurred_at=T0 + timedelta(hours=number),
            participants=[Participant(email=email, role="from")],
        )  # fmt: skip
    yield Checkpoint(obj, {"lines": len(lines)})
