"""The deal's Sales tab (issue: the account's Sales tab): planned interactions with the
overdue ones marked, results, the account's agreements (ended ones on request) and the
deal's linked records, on SQLite and PostgreSQL; every value escaped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

import oppkit
from oppkit.db.engine import write_transaction
from oppkit.db.schema import opportunities
from tests.workflow_support import add_account, add_person

AVA = "ava.patel@northwind.example"
EVIL = "<img src=x onerror=alert(1)>"


def test_the_sales_tab_shows_plans_results_agreements_and_links(db_url: str):
    base = oppkit.connect(db_url)
    acme = add_account(base.engine, "Acme", "acme.example")
    add_person(base.engine, AVA, "Ava Patel", internal=True)
    with write_transaction(base.engine) as conn:
        deal = conn.execute(
            insert(opportunities).values(name="Acme pilot", account_id=acme, stage="Lead",
                                         source="oppkit", source_id=uuid.uuid4().hex)
            .returning(opportunities.c.id)
        ).scalar_one()  # fmt: skip
    kit = oppkit.connect(db_url, user=AVA)
    now = datetime.now(UTC)
    kit.interactions.plan(EVIL, "call", start=now - timedelta(days=2), account=acme,
                          opportunity=deal, assigned_to=AVA)  # fmt: skip
    kit.interactions.plan("Site visit", "visit", start=now + timedelta(days=3), account=acme)
    kind = kit.agreements.types[0]
    today = now.date()
    kit.agreements.create(acme, kind, start_date=today - timedelta(days=400),
                          end_date=today + timedelta(days=20), contract_number="C-1")  # fmt: skip
    kit.agreements.create(acme, kind, start_date=today - timedelta(days=900),
                          end_date=today - timedelta(days=10), contract_number="C-0")  # fmt: skip
    kit.policies.create("P-77", name="Fleet cover", opportunity=deal)

    view = oppkit.OpportunityView(kit, deal)
    tab = view.sales
    assert not tab.loaded  # nothing read before the tab is shown
    view.tabs.selected_index = view.tab_names.index("Sales")
    assert tab.loaded
    plans = tab.plans.value
    assert "Site visit" in plans and "&lt;img" in plans and EVIL not in plans
    assert '<span class="oppkit-flag">overdue</span>' in plans  # the call two days ago
    assert "C-1" in tab.agreements.value and "C-0" not in tab.agreements.value
    tab.include_inactive.value = True
    assert "C-0" in tab.agreements.value
    assert "P-77" in tab.links.value and "C-1" in tab.links.value
    assert tab.plans.layout.max_height and tab.plans.layout.overflow == "auto"
