"""A small workflow and row helpers shared by the workflow and lifecycle tests."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Engine, insert

from oppkit.db.engine import write_transaction
from oppkit.db.schema import accounts, activities, activity_people, opportunity_people, people
from oppkit.workflow import register_trigger

TEST_WORKFLOW = '''
[[stages]]
name = "Lead"
status = "open"
probability = 10

[[stages]]
name = "Proposal"
status = "open"
probability = 50

[[stages]]
name = "Won"
status = "won"
probability = 100

[[stages]]
name = "Lost"
status = "lost"
probability = 0

[[stages]]
name = "Parked"
status = "archived"

[[steps]]
name = "New"
stage = "Lead"
attributes = ["amount"]

[[steps]]
name = "Review"
stage = "Lead"

[[steps]]
name = "Upsell"
stage = "Lead"

[[steps]]
name = "Proposal sent"
stage = "Proposal"
attributes = ["amount", "close_date"]

[[steps]]
name = "Closed won"
stage = "Won"

[[steps]]
name = "Closed lost"
stage = "Lost"

[[steps]]
name = "Parked"
stage = "Parked"

[[transitions]]
name = "Send proposal"
from = "New"
to = "Proposal sent"
requires = ["amount", "close_date", "decision_maker"]

[[transitions.communications]]
channel = "email"
to = "{owner_email}"
subject = "Proposal for {name}"
body = """
{name}: {amount:,.0f} {currency} by {close_date}, decided by {decision_maker}.
"""
html = "<p>Proposal for <b>{name}</b> ({decision_maker})</p>"

[[transitions]]
name = "Start"
from = "Review"
to = "New"

[[transitions]]
name = "Park"
from = "New"
to = "Parked"

[[transitions]]
name = "Explode"
from = "New"
to = "Proposal sent"
triggers = ["create_invoice", "tests_boom"]

[[transitions]]
name = "Qualify up-sell"
from = "Upsell"
to = "Proposal sent"
requires = ["amount"]

[[transitions]]
name = "Close won"
from = "Proposal sent"
to = "Closed won"
requires = ["amount", "account"]
triggers = ["create_invoice", "create_registration", "issue_training_token"]

[[transitions]]
name = "Close lost"
from = "Proposal sent"
to = "Closed lost"

[[transitions]]
name = "Unpark"
from = "Parked"
to = "New"

[entries]
new_account = "New"
existing_account = "Review"

[follow_ons]
"Up-sell" = "Upsell"
'''


# TEST_WORKFLOW with stage actions (a letter of the same name on both open stages)
LEAD_ACTIONS = """
[[stages.actions]]
name = "Call back"
kind = "activity"
activity_kind = "call"
subject = "Call back about {activity_subject}"

[[stages.actions]]
name = "Send summary"
kind = "letter"
subject = "Lead summary: {name}"
template = "Intro for {name}."
"""
PROPOSAL_ACTIONS = '''
[[stages.actions]]
name = "Send summary"
kind = "letter"
subject = "Our {activity_kind} on {activity_date}: {name}"
template = """
Dear {contact_name},

thank you for meeting us about {name} ({amount:,.0f} {currency}).
Next: {next_steps}
"""

[[stages.actions]]
name = "Prepare the contract"
kind = "activity"
activity_kind = "task"
subject = "Contract for {name} ({account})"
'''
ACTIONS_WORKFLOW = TEST_WORKFLOW.replace(
    'name = "Lead"\nstatus = "open"\nprobability = 10\n',
    'name = "Lead"\nstatus = "open"\nprobability = 10\n' + LEAD_ACTIONS,
    1,
).replace(
    'name = "Proposal"\nstatus = "open"\nprobability = 50\n',
    'name = "Proposal"\nstatus = "open"\nprobability = 50\n' + PROPOSAL_ACTIONS,
    1,
)


@register_trigger("tests_boom")
def _boom(ctx) -> None:  # noqa: ANN001
    raise RuntimeError("the ERP is down")


def add_account(engine: Engine, name: str, domain: str) -> int:
    with write_transaction(engine) as conn:
        return conn.execute(
            insert(accounts)
            .values(name=name, domain=domain, source="mail", source_id=domain)
            .returning(accounts.c.id)
        ).scalar_one()


def add_person(
    engine: Engine, email: str, name: str | None = None, account_id: int | None = None,
    internal: bool = False,
) -> int:  # fmt: skip
    with write_transaction(engine) as conn:
        return conn.execute(
            insert(people)
            .values(email=email, name=name or email.split("@")[0].title(), account_id=account_id,
                    is_internal=internal, source="mail", source_id=email)
            .returning(people.c.id)
        ).scalar_one()  # fmt: skip


def add_member(engine: Engine, opportunity_id: int, person_id: int, role: str = "Buyer") -> None:
    with write_transaction(engine) as conn:
        conn.execute(
            insert(opportunity_people).values(
                opportunity_id=opportunity_id,
                person_id=person_id,
                kind="member",
                role=role,
                source="test",
                source_id=uuid.uuid4().hex,
            )  # fmt: skip
        )


def add_activity(
    engine: Engine, *, kind: str, when: datetime, direction: str | None = None,
    parts: list[tuple[int, str]] = (), is_auto: bool = False, status: str | None = None,
    subject: str = "hello", snippet: str = "", account_id: int | None = None,
) -> int:  # fmt: skip
    with write_transaction(engine) as conn:
        activity_id = conn.execute(
            insert(activities)
            .values(kind=kind, occurred_at=when, direction=direction, is_auto=is_auto,
                    status=status, subject=subject, snippet=snippet, account_id=account_id,
                    source="test", source_id=uuid.uuid4().hex)
            .returning(activities.c.id)
        ).scalar_one()  # fmt: skip
        for person_id, role in parts:
            conn.execute(
                insert(activity_people).values(
                    activity_id=activity_id, person_id=person_id, role=role
                )
            )
    return activity_id
