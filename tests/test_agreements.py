"""Agreements: Salesforce Contracts synced (the real client against the wire-level fake org,
and the Data Export), expiring ones as alerts on the account's open deals, agreements made
and changed in oppkit. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

import oppkit
from oppkit.actions import NotAllowed
from oppkit.cli import main
from oppkit.config import Settings
from oppkit.errors import OppkitError
from oppkit.sync import sync_salesforce_export
from tests.fakes.salesforce import FakeOrg
from tests.support import small_org
from tests.support import sync_fake_salesforce as sync

TODAY = datetime.now(UTC).date()
T0 = datetime.combine(TODAY, datetime.min.time(), UTC) + timedelta(hours=9)
AVA = "ava.patel@northwind.example"
RULE = "agreement.expiring"

pytestmark = pytest.mark.usefixtures("sf_fast_retries")


@pytest.fixture
def org() -> FakeOrg:
    org = small_org(T0)
    org.add_field("Contract", "Type__c", "picklist")
    contract = org.add("Contract", AccountId=org.ids["acme"], StartDate=TODAY - timedelta(days=335),
                       EndDate=TODAY + timedelta(days=30), Status="Activated",
                       Type__c="Service contract")  # fmt: skip
    org.add("Contract", AccountId=org.ids["acme"], StartDate=date(2020, 1, 1),
            EndDate=date(2021, 12, 31), Status="Expired")  # fmt: skip
    org.ids["contract"] = contract
    return org


def expiring(kit: oppkit.Kit):  # noqa: ANN201
    found = kit.alerts()
    return found[found["rule"] == RULE]


def test_an_expiring_contract_alerts_the_open_deal_once_and_goes_with_the_contract(
    db_url, settings, fake, org
):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    alerts = expiring(kit)
    assert alerts[["opportunity", "status", "kind"]].values.tolist() == [
        ["Acme pilot", "open", "alert"]
    ]
    number = org.get("Contract", org.ids["contract"])["ContractNumber"]
    assert number in alerts["text"].iloc[0] and "Service contract" in alerts["text"].iloc[0]
    assert alerts["due_at"].iloc[0].date() == TODAY + timedelta(days=30)

    sync(db_url, settings, fake)  # again: still one alert
    assert len(expiring(kit)) == 1

    shown = kit.agreements(account="acme-robotics.example")
    assert shown[["agreement_type", "contract_number", "status", "days_left"]].values.tolist() == [
        ["Service contract", number, "active", 30]
    ]
    every = kit.agreements(account="acme-robotics.example", include_inactive=True)
    assert sorted(every["status"]) == ["active", "inactive"]
    assert set(every["agreement_type"]) == {"Service contract", "Contract"}  # empty type: fallback

    org.advance(minutes=1)
    org.delete("Contract", org.ids["contract"])
    sync(db_url, settings, fake)
    assert kit.agreements(account="acme-robotics.example").empty
    assert expiring(kit)["status"].tolist() == ["done"]  # the agreement is gone: resolved


def test_a_renewal_in_salesforce_resolves_the_alert(db_url, settings, fake, org):
    sync(db_url, settings, fake)
    org.advance(minutes=1)
    org.update("Contract", org.ids["contract"], EndDate=TODAY + timedelta(days=400))
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    assert expiring(kit)["status"].tolist() == ["done"]
    assert kit.agreements(account="acme-robotics.example")["days_left"].tolist() == [400]


def test_a_contract_field_is_salesforces_and_the_description_oppkits(db_url, settings, fake, org):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    number = kit.agreements()["contract_number"].iloc[0]
    with pytest.raises(
        NotAllowed, match=r"Salesforce Contract: end_date \(EndDate\) is Salesforce's"
    ):
        kit.agreements.update(number, end_date=TODAY + timedelta(days=900))
    kit.agreements.update(number, description="renewal talks <b>started</b>")
    org.advance(minutes=1)
    org.update("Contract", org.ids["contract"], Status="Activated")
    sync(db_url, settings, fake)  # a re-sync keeps oppkit's description
    assert kit.agreements()["description"].tolist() == ["renewal talks <b>started</b>"]


def test_agreements_made_here_types_dates_and_renewal(db_url, settings, fake, org):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    assert "Service contract" in kit.agreements.types
    with pytest.raises(OppkitError, match="is not one of"):
        kit.agreements.create("acme-robotics.example", "Handshake", start_date=TODAY)
    with pytest.raises(OppkitError, match="cannot end before it starts"):
        kit.agreements.create("acme-robotics.example", "License", start_date=TODAY,
                              end_date=TODAY - timedelta(days=1))  # fmt: skip
    lic = kit.agreements.create("acme-robotics.example", "license", start_date=TODAY,
                                end_date=TODAY + timedelta(days=10), contract_number="L-1")  # fmt: skip
    texts = expiring(kit)
    assert len(texts[texts["status"] == "open"]) == 2  # made here: alerted at once
    kit.agreements.update(lic, end_date=TODAY + timedelta(days=500))
    still = expiring(kit)
    assert still[still["status"] == "open"]["text"].str.contains("L-1").sum() == 0
    # a Service contract made here that ends later renews the synced one
    kit.agreements.create("acme-robotics.example", "Service contract",
                          start_date=TODAY + timedelta(days=31))  # fmt: skip
    assert (expiring(kit)["status"] == "done").all()


def test_configured_types_window_and_the_check_command(db_url, fake, org, tmp_path, monkeypatch):
    config = tmp_path / "oppkit.toml"
    config.write_text('[agreements]\ntypes = ["Rahmenvertrag", "Service contract"]\n'
                      "expiring_days = 20\n", encoding="utf-8")  # fmt: skip
    monkeypatch.setenv("OPPKIT_CONFIG", str(config))
    settings = oppkit.config.load_settings(db_url)
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    assert kit.agreements.types == ["Rahmenvertrag", "Service contract"]
    assert expiring(kit).empty  # 30 days away, the window is 20
    assert main(["agreements", "check", "--db", db_url,
                 "--today", (TODAY + timedelta(days=15)).isoformat()]) == 0  # fmt: skip
    assert len(expiring(kit)) == 1
    assert main(["agreements", "check", "--db", db_url,
                 "--today", (TODAY + timedelta(days=15)).isoformat()]) == 0  # fmt: skip
    assert len(expiring(kit)) == 1
    status = kit.sync_status()
    assert "agreements" in set(status["agent"])


def test_contracts_from_the_data_export(db_url, export, tmp_path):
    (export / "Contract.csv").write_text(
        "Id,AccountId,ContractNumber,StartDate,EndDate,Status,Type__c,IsDeleted\n"
        f"800000000000001AAA,001000000000001AAA,00000100,2025-01-01,"
        f"{(TODAY + timedelta(days=5)).isoformat()},Activated,Framework agreement,false\n"
        "800000000000002AAA,001000000000999AAA,00000101,2025-01-01,2026-01-01,Activated,,false\n",
        encoding="utf-8",
    )
    settings = Settings(database_url=db_url, internal_domains=("northwind.example",))
    summary = sync_salesforce_export(export, settings=settings)
    assert "'contract of an unknown account': 1" in repr(summary)
    kit = oppkit.connect(db_url)
    shown = kit.agreements()
    assert shown[["agreement_type", "contract_number"]].values.tolist() == [
        ["Framework agreement", "00000100"]
    ]
    deals = kit.opportunities(account=int(shown["account_id"].iloc[0]), open_only=True)
    assert set(expiring(kit)["opportunity"]) == set(deals["name"]) - {None}
