"""Private stays private: the doors a probe found, each closed, and taking someone off a
deal. On SQLite and PostgreSQL, with data from a real Salesforce export sync.

In the export, "Globex secret" is Ben's private deal; "Globex expansion" is Ben's public
deal on the same account, with Hank (a customer) as a contact role; "Acme pilot" is Ava's.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import oppkit
from oppkit import actions
from oppkit.db.engine import connect_engine
from oppkit.digest import build_digests, period_for
from oppkit.sources.records import ActivityRecord, Participant
from oppkit.sync import SyncRunner, sync_salesforce_export
from tests.workflow_support import TEST_WORKFLOW

AVA, BEN = "ava.patel@northwind.example", "ben.okafor@northwind.example"
HANK = "hank@globex.example"  # a customer: a contact role on Globex expansion
NOW = "2026-03-09T07:00:00Z"


@pytest.fixture
def org(db_url: str, settings, export: Path) -> str:
    sync_salesforce_export(export, settings=settings)
    return db_url


def _note_on(db_url: str, settings, deal_ref: str, subject: str) -> None:
    week = period_for("weekly", NOW)
    note = ActivityRecord(
        source="salesforce", source_id=f"00T{abs(hash(subject)) % 10**15:015d}", kind="call",
        subject=subject, occurred_at=week.start + timedelta(days=1), opportunity_ref=deal_ref,
        owner_ref="005000000000002AAA", participants=[Participant(HANK, "Hank Globex", "who")],
    )  # fmt: skip
    SyncRunner(connect_engine(db_url), settings, agent="test").run([note])


def test_removing_a_member_of_a_private_deal_withdraws_access_at_once(org: str, settings):
    ben, ava = oppkit.connect(org, user=BEN), oppkit.connect(org, user=AVA)
    actions.add_member(ben, "Globex secret", AVA, role="Analyst")
    ava.follow("Globex secret", AVA, frequency="weekly")
    _note_on(org, settings, "006000000000004AAA", "board pack for the merger")
    assert "Globex secret" in set(ava.opportunities()["name"])
    assert [m.to for m in build_digests(ben, "weekly", NOW)] == [AVA]  # her digest is due

    with pytest.raises(actions.NotAllowed, match="owner"):
        actions.remove_member(ava, "Globex secret", AVA)  # only the owner takes people off
    assert actions.remove_member(ben, "Globex secret", AVA) == 1

    ava = oppkit.connect(org, user=AVA)
    assert "Globex secret" not in set(ava.opportunities()["name"])
    with pytest.raises(oppkit.NotFoundError):
        ava.timeline(opportunity="Globex secret")
    assert build_digests(ben, "weekly", NOW) == []  # the digest due now no longer carries it
    members = ben.people(opportunity="Globex secret")
    assert AVA not in set(members["email"])


def test_only_the_owner_changes_a_members_role(org: str):
    ben, ava = oppkit.connect(org, user=BEN), oppkit.connect(org, user=AVA)
    actions.set_member_role(ben, "Globex expansion", HANK, "Decision maker")
    roles = ben.people(opportunity="Globex expansion").set_index("email")["role"]
    assert roles[HANK] == "Decision maker"
    with pytest.raises(actions.NotAllowed, match="owner"):
        actions.set_member_role(ava, "Globex expansion", HANK, "Nobody")
    with pytest.raises(oppkit.NotFoundError, match="not a member"):
        actions.set_member_role(ben, "Globex expansion", AVA, "Buyer")


def test_following_is_for_colleagues_unless_the_owner_invites_a_guest(org: str, settings):
    ben, ava = oppkit.connect(org, user=BEN), oppkit.connect(org, user=AVA)
    with pytest.raises(PermissionError, match="outside the company"):
        ava.follow("Globex expansion", "spy@competitor.example")  # anyone, any address: no
    with pytest.raises(PermissionError, match="outside the company"):
        ben.follow("Globex expansion", HANK)  # even the owner must say so explicitly
    with pytest.raises(PermissionError, match="user"):
        oppkit.connect(org).follow("Globex expansion", AVA)  # someone must be adding them
    with pytest.raises(PermissionError, match="outside the company"):
        ava.follow("Globex expansion", HANK, external=True)  # Ava is not the owner

    # Hank is a contact role (a member) and follows on his own: no digest with our notes
    engine = connect_engine(org)
    from sqlalchemy import insert, select

    from oppkit.db.schema import opportunities, opportunity_people, people

    with engine.begin() as conn:
        deal = conn.scalar(
            select(opportunities.c.id).where(opportunities.c.name == "Globex expansion")
        )
        hank = conn.scalar(select(people.c.id).where(people.c.email == HANK))
        conn.execute(insert(opportunity_people).values(
            opportunity_id=deal, person_id=hank, kind="follower", digest_frequency="weekly",
            source="local", source_id="self-made",
        ))  # fmt: skip
    _note_on(org, settings, "006000000000003AAA", "internal: their budget is soft")
    assert build_digests(ben, "weekly", NOW) == []

    ben.follow("Globex expansion", HANK, frequency="weekly", external=True)  # invited
    assert [m.to for m in build_digests(ben, "weekly", NOW)] == [HANK]


def test_a_new_deal_does_not_reveal_a_private_one_on_its_account(org: str, tmp_path: Path):
    """The entry step depends on the account being known, never on its deals: Ava's deal
    on Globex, whose only deal left is Ben's secret, enters exactly where it enters once
    the secret is gone too, and where a deal on an account without any deal does."""
    path = tmp_path / "workflow.toml"
    path.write_text(TEST_WORKFLOW, encoding="utf-8")
    ava = oppkit.connect(org, user=AVA)
    ava.workflow.load(path)
    engine = connect_engine(org)
    from sqlalchemy import insert, update

    from oppkit.db.schema import accounts, opportunities

    def drop(*names: str) -> None:
        with engine.begin() as conn:
            conn.execute(
                update(opportunities).where(opportunities.c.name.in_(names)).values(is_deleted=True)
            )

    with engine.begin() as conn:  # an account oppkit knows, with no deal at all
        conn.execute(insert(accounts).values(name="Initech", domain="initech.example",
                                             source="mail", source_id="initech.example"))  # fmt: skip
    drop("Globex analytics", "Globex expansion")  # Globex: only the secret deal is left
    with_secret = ava.workflow.deal(ava.workflow.create("Globex pilot", account="globex.example"))
    drop("Globex secret")
    without = ava.workflow.deal(ava.workflow.create("Globex trial", account="globex.example"))
    dealless = ava.workflow.deal(ava.workflow.create("Initech pilot", account="initech.example"))
    assert with_secret["step"] == without["step"] == dealless["step"] == "Review"
    ben = oppkit.connect(org, user=BEN)
    other = ben.workflow.create("Globex renewal", account="globex.example")
    assert ben.workflow.deal(other)["step"] == "Review"


def test_names_fold_unicode_case_and_a_bool_is_no_id(org: str):
    ben = oppkit.connect(org, user=BEN)
    ben.workflow  # noqa: B018 - the Kit is usable
    engine = connect_engine(org)
    from sqlalchemy import update

    from oppkit.db.schema import accounts

    with engine.begin() as conn:
        conn.execute(update(accounts).where(accounts.c.name == "Globex").values(name="Ärzte GmbH"))
    assert set(ben.timeline(account="ärzte gmbh")["account"]) <= {"Ärzte GmbH"}
    assert len(ben.opportunities(account="ÄRZTE GMBH")) == 3
    with pytest.raises(oppkit.NotFoundError):
        ben.timeline(opportunity=True)  # not the deal with id 1
    with pytest.raises(oppkit.NotFoundError):
        ben.timeline(opportunity=10_000)  # an id that does not exist is not found either
