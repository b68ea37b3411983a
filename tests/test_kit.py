"""The Kit and the pandas accessor as an analyst uses them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import oppkit
from oppkit.db.engine import connect_engine
from oppkit.sources.records import ActivityRecord
from oppkit.sync import SyncRunner, sync_mail, sync_salesforce_export
from tests.support import make_email, write_mbox

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def filled(db_url: str, settings, export: Path, tmp_path: Path) -> str:  # noqa: F811
    sync_salesforce_export(export, settings=settings)
    mails = [
        make_email(sender="juergen.mueller@acme-robotics.example", to=["ava.patel@northwind.example"],
                   subject="acme mail", body="x", when=T0, message_id="a@x"),
        make_email(sender="ben.okafor@northwind.example", to=["hank@globex.example"],
                   subject="private talk", body="x", when=T0 + timedelta(hours=1), message_id="p@x"),
    ]  # fmt: skip
    sync_mail(write_mbox(tmp_path / "m.mbox", mails), settings=settings)
    return db_url


def test_accessor_follows_frames_to_timeline_and_people(filled: str):
    kit = oppkit.connect(filled)
    acme = kit.opportunities().query("name == 'Acme pilot'")
    assert set(acme.oppkit.timeline()["subject"]) == {
        "acme mail",
        "Send contract",
        "Demo",
        "Call about pricing",
    }
    assert list(acme.oppkit.timeline(kind="email")["subject"]) == ["acme mail"]
    assert list(acme.oppkit.people()["email"]) == ["juergen.mueller@acme-robotics.example"]
    accounts = kit.accounts().query("domain == 'acme-robotics.example'")
    assert len(accounts.oppkit.opportunities()) == 1
    people = kit.people().query("email == 'hank@globex.example'")
    assert list(people.oppkit.timeline()["subject"]) == ["private talk"]
    with pytest.raises(ValueError, match="no timeline for a plain frame"):
        pd.DataFrame({"id": [1]}).oppkit.timeline()


def test_unknown_references_name_what_was_not_found(filled: str):
    kit = oppkit.connect(filled)
    with pytest.raises(oppkit.NotFoundError, match="no opportunity matches 'Nope'"):
        kit.timeline(opportunity="Nope")
    with pytest.raises(oppkit.NotFoundError, match="no person matches"):
        kit.timeline(person="nobody@nowhere.example")


def test_timeline_filters_by_time_and_kind(filled: str):
    kit = oppkit.connect(filled)
    later = kit.timeline(since="2026-03-01T12:30:00Z", until="2026-03-02")
    assert list(later["subject"]) == ["private talk"]
    assert set(kit.timeline(kind=["call", "meeting"])["kind"]) == {"call", "meeting"}
    assert len(kit.timeline(limit=2)) == 2


def test_activities_on_a_private_deal_are_hidden_from_others(filled: str, settings):
    private_call = ActivityRecord(
        source="salesforce", source_id="00T0000000000P1AAA", kind="call", subject="secret call",
        occurred_at=T0, opportunity_ref="006000000000004AAA", owner_ref="005000000000002AAA",
    )  # fmt: skip
    SyncRunner(connect_engine(filled), settings, agent="test").run([private_call])
    owner = oppkit.connect(filled, user="ben.okafor@northwind.example")
    outsider = oppkit.connect(filled, user="ava.patel@northwind.example")
    nobody = oppkit.connect(filled)
    assert "secret call" in set(owner.timeline()["subject"])
    assert list(owner.timeline(opportunity="Globex secret")["subject"]) == ["secret call"]
    for kit in (outsider, nobody):
        assert "secret call" not in set(kit.timeline()["subject"])
        assert "Globex secret" not in set(kit.opportunities()["name"])
        with pytest.raises(oppkit.NotFoundError):  # a guessed name tells nothing
            kit.stage_history(opportunity="Globex secret")


def test_a_notebook_reads_while_a_sync_holds_the_write_lock(sqlite_url: str):
    import time

    from sqlalchemy import insert

    from oppkit.db.engine import write_transaction
    from oppkit.db.schema import activities

    writer = connect_engine(sqlite_url)
    kit = oppkit.connect(sqlite_url)
    with write_transaction(writer) as conn:
        conn.execute(
            insert(activities).values(kind="note", occurred_at=T0, source="t", source_id="1")
        )
        started = time.perf_counter()
        assert kit.timeline().empty  # reads the last committed state, does not wait
        assert time.perf_counter() - started < 2
    assert len(kit.timeline()) == 1


def test_suggested_people_are_external_non_members_on_the_deals_threads(
    filled: str, settings, tmp_path: Path
):
    thread = [
        make_email(sender="juergen.mueller@acme-robotics.example", to=["ava.patel@northwind.example"],
                   cc=["tom.becker@acme-robotics.example", "ben.okafor@northwind.example"],
                   subject="pilot", body="x", when=T0, message_id="t1@x"),
        make_email(sender="tom.becker@acme-robotics.example", to=["ava.patel@northwind.example"],
                   cc=["mei@acme-robotics.example"], subject="Re: pilot", body="y",
                   when=T0 + timedelta(hours=1), message_id="t2@x", in_reply_to="t1@x"),
        make_email(sender="stranger@other.example", to=["ava.patel@northwind.example"],
                   subject="unrelated", body="z", when=T0, message_id="u@x"),
    ]  # fmt: skip
    sync_mail(write_mbox(tmp_path / "thread.mbox", thread), settings=settings)
    suggested = oppkit.connect(filled).suggested_people("Acme pilot")
    assert list(suggested["email"]) == [
        "tom.becker@acme-robotics.example",
        "mei@acme-robotics.example",
    ]
    assert list(suggested["messages"]) == [2, 1]
    assert list(suggested["sent"]) == [1, 0]
