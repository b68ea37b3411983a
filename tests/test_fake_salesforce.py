"""The fake Salesforce REST API (tests/fakes/salesforce.py), driven by the real simple-salesforce
client over HTTPS: what the Salesforce sync agent's tests rely on."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from tests.fakes.salesforce import FakeOrg, FakeSalesforce, to18

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_environment_overrides(monkeypatch):
    """requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override ``session.verify``, and proxies
    from the environment would capture 127.0.0.1: the client must see only what the test sets."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.delenv("all_proxy", raising=False)


@pytest.fixture
def org() -> FakeOrg:
    return FakeOrg(now=T0)


@pytest.fixture
def fake(org):
    with FakeSalesforce(org) as server:
        yield server


def connect(fake: FakeSalesforce, *, via_proxy: bool = False, **kwargs) -> Salesforce:
    """Connect as the agent does: its own requests session trusting the test CA. Without login
    arguments, session-id auth against ``fake.url``; ``via_proxy`` routes the login hosts
    (login.salesforce.com, ...) through the fake's CONNECT tunnel."""
    session = requests.Session()
    session.verify = fake.ca_path
    if via_proxy:
        session.proxies.update(fake.proxies)
    if not kwargs:
        kwargs = {"instance_url": fake.url, "session_id": fake.session_id}
    return Salesforce(session=session, **kwargs)


def opportunity(org: FakeOrg, name: str, stage: str = "Prospecting", **fields) -> str:
    fields = {"CloseDate": "2026-03-31"} | fields
    return org.add("Opportunity", Name=name, StageName=stage, **fields)


def test_query_returns_records_with_salesforce_json_values(fake, org):
    acme = org.add("Account", Name="Acme")
    deal = opportunity(org, "Big deal", "Negotiation/Review", Amount=120000, AccountId=acme)
    opportunity(org, "Other deal")
    sf = connect(fake)

    result = sf.query(
        "SELECT Id, Name, Amount, CloseDate, IsClosed, Probability, AccountId, SystemModstamp "
        "FROM Opportunity WHERE StageName = 'negotiation/review'"
    )

    assert result["totalSize"] == 1 and result["done"] is True
    assert "nextRecordsUrl" not in result
    (record,) = result["records"]
    assert list(record) == ["attributes", "Id", "Name", "Amount", "CloseDate", "IsClosed"] + [
        "Probability",
        "AccountId",
        "SystemModstamp",
    ]
    assert record == {
        "attributes": {
            "type": "Opportunity",
            "url": f"/services/data/v59.0/sobjects/Opportunity/{deal}",
        },
        "Id": deal,
        "Name": "Big deal",
        "Amount": 120000.0,
        "CloseDate": "2026-03-31",
        "IsClosed": False,
        "Probability": 90.0,  # from the stage, as Salesforce fills it in
        "AccountId": acme,
        "SystemModstamp": "2026-01-01T10:00:00.000+0000",
    }


def test_ids_carry_the_key_prefix_of_their_object(org):
    prefixes = {
        "Account": "001",
        "Contact": "003",
        "User": "005",
        "Opportunity": "006",
        "Task": "00T",
        "Event": "00U",
        "Campaign": "701",
        "CampaignMember": "00v",
        "OpportunityContactRole": "00K",
        "OpportunityHistory": "008",
        "OpportunityStage": "01J",
        "OpportunityFieldHistory": "017",
    }
    for sobject, prefix in prefixes.items():
        record_id = org.add(sobject)
        assert record_id[:3] == prefix and len(record_id) == 18
        assert to18(record_id[:15]) == record_id  # a valid case-safe checksum


def test_query_all_iter_follows_next_records_url_over_a_consistent_snapshot(org):
    ids = [org.add("Account", Name=f"Account {i}") for i in range(5)]
    with FakeSalesforce(org, page_size=2) as fake:
        sf = connect(fake)
        first = sf.query("SELECT Id FROM Account ORDER BY Name")
        assert (first["totalSize"], first["done"], len(first["records"])) == (5, False, 2)
        assert re.fullmatch(r"/services/data/v59\.0/query/01g\w{15}-2", first["nextRecordsUrl"])

        org.add("Account", Name="Account 9")  # added after the query: not part of its result
        rows = list(sf.query_all_iter("SELECT Id, Name FROM Account ORDER BY Name"))
        second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)

        assert [r["Id"] for r in rows] == [*ids, rows[-1]["Id"]] and len(rows) == 6
        assert [r["Id"] for r in second["records"]] == ids[2:4]
        assert second["totalSize"] == 5 and second["done"] is False
        more = [
            p for _, p in fake.requests if re.fullmatch(r"/services/data/v59\.0/query/.+-\d+", p)
        ]
        assert [p.rsplit("-", 1)[1] for p in more] == ["2", "4", "2"]

        fake.expire_query_locators()
        with pytest.raises(SalesforceMalformedRequest) as err:
            sf.query_more(second["nextRecordsUrl"], identifier_is_url=True)
        assert err.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_query_all_includes_deleted_records_and_query_does_not(fake, org):
    keep, gone = org.add("Contact", LastName="Keep"), org.add("Contact", LastName="Gone")
    org.delete("Contact", gone)
    sf = connect(fake)

    live = sf.query_all("SELECT Id, IsDeleted FROM Contact")
    everything = sf.query_all("SELECT Id, Name, IsDeleted FROM Contact", include_deleted=True)

    assert [r["Id"] for r in live["records"]] == [keep]
    assert {r["Id"]: r["IsDeleted"] for r in everything["records"]} == {keep: False, gone: True}
    assert fake.call_count("/queryAll/?q=") == 1


def test_incremental_window_on_system_modstamp_orders_ties_by_id(fake, org):
    old = opportunity(org, "old")
    org.advance(minutes=5)
    tie_a, tie_b = org.add_many(
        "Opportunity",
        [{"Name": n, "StageName": "Qualification", "CloseDate": "2026-04-30"} for n in "ba"],
    )
    org.advance(minutes=5)
    org.update("Opportunity", old, Amount=5)  # the update moves it to the end of the window
    sf = connect(fake)

    rows = sf.query_all(
        "SELECT Id, SystemModstamp FROM Opportunity "
        "WHERE SystemModstamp >= 2026-01-01T10:05:00Z ORDER BY SystemModstamp, Id"
    )["records"]
    resumed = sf.query_all(
        "SELECT Id FROM Opportunity WHERE SystemModstamp > 2026-01-01T10:05:00.000+0000 OR "  # noqa: S608
        f"(SystemModstamp = 2026-01-01T10:05:00.000+0000 AND Id > '{tie_a}') "
        "ORDER BY SystemModstamp, Id"
    )["records"]

    assert [r["Id"] for r in rows] == [tie_a, tie_b, old]
    assert [r["SystemModstamp"][11:19] for r in rows] == ["10:05:00", "10:05:00", "10:10:00"]
    assert [r["Id"] for r in resumed] == [tie_b, old]


def test_soql_filters_and_ordering(fake, org):
    a = opportunity(org, "Alpha", Amount=100)
    b = opportunity(org, "Beta", "Closed Won", CloseDate="2026-01-31")
    c = opportunity(org, "Gamma", "Closed Lost", Amount=300, NextStep="call")
    sf = connect(fake)

    def ids(where: str, tail: str = "") -> list[str]:
        soql = f"SELECT Id FROM Opportunity WHERE {where} ORDER BY Name{tail}"  # noqa: S608
        return [r["Id"] for r in sf.query_all(soql)["records"]]

    assert ids("StageName IN ('closed won', 'Closed Lost')") == [b, c]
    assert ids("StageName NOT IN ('Prospecting')") == [b, c]
    assert ids("Name LIKE 'a%'") == [a]
    assert ids("Amount = null") == [b]
    assert ids("Amount != null AND Amount >= 100.5") == [c]
    assert ids("IsClosed = true AND IsWon = false") == [c]
    assert ids("CloseDate < 2026-03-01") == [b]
    assert ids("NextStep != 'call'") == [a, b]  # SOQL's != keeps nulls
    assert ids(f"Id = '{c[:15]}'") == [c]  # 15-character Ids match too
    assert ids("NOT Name = 'Alpha'") == [b, c]
    assert ids("Name = 'Alpha' OR (Amount > 200 AND StageName = 'Closed Lost')") == [a, c]
    assert ids("Name > 'A'", " LIMIT 1 OFFSET 1") == [b]
    assert sf.query("SELECT COUNT() FROM Opportunity WHERE IsClosed = true")["totalSize"] == 2
    by_amount = sf.query_all("SELECT Amount FROM Opportunity ORDER BY Amount DESC")["records"]
    assert [r["Amount"] for r in by_amount] == [300.0, 100.0, None]  # DESC puts nulls last


def test_describe_lists_fields_and_an_absent_object_is_not_found(fake, org):
    sf = connect(fake)

    described = sf.Opportunity.describe()
    fields = {f["name"]: f for f in described["fields"]}
    history = {f["name"] for f in sf.OpportunityFieldHistory.describe()["fields"]}
    del org.fields["OpportunityFieldHistory"]  # an org without field history tracking

    assert (described["name"], described["keyPrefix"], described["queryable"]) == (
        "Opportunity",
        "006",
        True,
    )
    assert (fields["StageName"]["type"], fields["StageName"]["nillable"]) == ("picklist", False)
    assert fields["Amount"]["type"] == "currency" and fields["SystemModstamp"]["type"] == "datetime"
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert {"CreatedDate", "Field", "OldValue", "NewValue"} <= history
    assert "SystemModstamp" not in history
    with pytest.raises(SalesforceResourceNotFound) as err:
        sf.OpportunityFieldHistory.describe()
    assert err.value.status == 404 and err.value.content[0]["errorCode"] == "NOT_FOUND"
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query("SELECT Id FROM OpportunityFieldHistory")
    assert err.value.content[0]["errorCode"] == "INVALID_TYPE"


def test_unknown_or_dropped_column_is_invalid_field(fake, org):
    org.drop_field("Opportunity", "NextStep")
    sf = connect(fake)
    for soql in (
        "SELECT Id, Nope__c FROM Opportunity",
        "SELECT Id FROM Opportunity WHERE NextStep = 'call'",
    ):
        with pytest.raises(SalesforceMalformedRequest) as err:
            sf.query(soql)
        assert err.value.status == 400
        assert err.value.content[0]["errorCode"] == "INVALID_FIELD"
        assert err.value.content[0]["message"].startswith("No such column")


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = 'a' AND Type = 'b' OR Type = 'c'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE CreatedDate > 2026-01-01 10:00:00", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE CreatedDate > '2026-01-01T00:00:00Z'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Account WHERE CreatedDate > 2026-01-01", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Account WHERE Name = 5", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Account WHERE Description = 'long text'", "INVALID_FIELD"),
        ("SELECT Id, Owner.Name FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Accounts", "INVALID_TYPE"),
    ],
)  # fmt: skip
def test_bad_queries_get_salesforce_error_codes(fake, soql, code):
    with pytest.raises(SalesforceMalformedRequest) as err:
        connect(fake).query(soql)
    assert err.value.status == 400 and err.value.content[0]["errorCode"] == code


def test_deleted_and_updated_report_ids_in_the_window(fake, org):
    early, late, alive = (
        org.add("Task", Subject=s, Status="Open", Priority="Normal") for s in "abc"
    )
    org.advance(minutes=10)
    org.delete("Task", early)
    org.advance(hours=2)
    org.delete("Task", late)
    org.advance(minutes=1)
    sf = connect(fake)

    window = sf.Task.deleted(T0, T0 + timedelta(hours=1))
    everything = sf.Task.deleted(T0, org.now())
    updated = sf.Task.updated(T0, org.now())

    assert window["deletedRecords"] == [
        {"id": early, "deletedDate": "2026-01-01T10:10:00.000+0000"}
    ]
    assert window["latestDateCovered"] == "2026-01-01T11:00:00.000+0000"
    assert window["earliestDateAvailable"] <= "2026-01-01T10:00:00.000+0000"
    assert {d["id"] for d in everything["deletedRecords"]} == {early, late}
    assert updated["ids"] == [alive]
    with pytest.raises(SalesforceMalformedRequest):  # simple-salesforce sends naive ones zoneless
        sf.Task.deleted(datetime(2026, 1, 1, 10), datetime(2026, 1, 1, 11))
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Task.deleted(T0 - timedelta(days=31), T0)
    assert err.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_fail_next_503_fails_one_call_then_the_next_succeeds(fake, org):
    org.add("Account", Name="Acme")
    sf = connect(fake)
    fake.fail_next(503)

    with pytest.raises(SalesforceGeneralError) as err:
        sf.query("SELECT Id FROM Account")

    assert err.value.status == 503
    assert err.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert set(err.value.content[0]) == {"message", "errorCode"}
    assert sf.query("SELECT Id FROM Account")["totalSize"] == 1


def test_fail_next_counts_only_matching_paths(fake):
    sf = connect(fake)
    fake.fail_next(500, times=2, path_contains="/describe")

    assert sf.query("SELECT Id FROM Account")["totalSize"] == 0
    for _ in range(2):
        with pytest.raises(SalesforceGeneralError) as err:
            sf.Account.describe()
        assert err.value.content[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    assert sf.Account.describe()["name"] == "Account"


def test_fail_next_can_echo_the_request_headers_as_json_or_text(fake):
    sf = connect(fake)
    fake.fail_next(400, code="BAD_REQUEST", msg="rejected", echo_headers=True)
    fake.fail_next(502, msg="Bad gateway", echo_headers=True, text=True)

    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query("SELECT Id FROM Account")
    assert err.value.content[0]["errorCode"] == "BAD_REQUEST"
    message = err.value.content[0]["message"]
    assert message.startswith("rejected; request headers: ")
    assert f"Authorization: Bearer {fake.session_id}" in message
    with pytest.raises(SalesforceGeneralError) as err:
        sf.query("SELECT Id FROM Account")
    assert err.value.status == 502
    assert err.value.content.startswith("Bad gateway; request headers: ")
    assert fake.session_id in err.value.content
    assert sf.query("SELECT Id FROM Account")["totalSize"] == 0


def test_limit_exceeded_refuses_every_api_call(fake):
    sf = connect(fake)
    before = sf.restful("limits")["DailyApiRequests"]
    fake.limit_exceeded()

    for call in (lambda: sf.query("SELECT Id FROM Account"), sf.Account.describe):
        with pytest.raises(SalesforceRefusedRequest) as err:
            call()
        assert err.value.status == 403
        assert err.value.content == [
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ]
    fake.limit_exceeded(False)
    after = sf.restful("limits")["DailyApiRequests"]

    assert after["Max"] == before["Max"] and after["Remaining"] == before["Remaining"] - 1
    assert sf.api_usage["api-usage"].used == fake.api_used == 2  # Sforce-Limit-Info header


def test_the_daily_allowance_runs_out(org):
    with FakeSalesforce(org, daily_api_max=2) as fake:
        sf = connect(fake)
        sf.query("SELECT Id FROM Account")
        assert sf.restful("limits")["DailyApiRequests"] == {"Max": 2, "Remaining": 0}
        with pytest.raises(SalesforceRefusedRequest):
            sf.query("SELECT Id FROM Account")


def test_wrong_or_expired_session_is_refused(fake):
    with pytest.raises(SalesforceExpiredSession) as err:
        connect(fake, instance_url=fake.url, session_id="WRONG").query("SELECT Id FROM User")
    assert err.value.status == 401
    assert err.value.content[0]["errorCode"] == "INVALID_SESSION_ID"

    sf = connect(fake)
    assert sf.query("SELECT Id FROM User")["totalSize"] == 0
    fake.expire_session()
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM User")
    renewed = connect(fake, instance_url=fake.url, session_id=fake.issue_session())
    assert renewed.query("SELECT Id FROM User")["totalSize"] == 0


def test_drop_next_closes_the_connection_without_a_response(fake):
    sf = connect(fake)
    fake.drop_next(path_contains="/query/")

    with pytest.raises(requests.exceptions.ConnectionError):
        sf.query("SELECT Id FROM Account")

    assert sf.query("SELECT Id FROM Account")["totalSize"] == 0
    assert fake.call_count("/query/") == 2


def test_oauth_password_grant_returns_a_token_usable_for_queries(fake, org):
    org.add("Account", Name="Acme")
    session = requests.Session()
    session.verify = fake.ca_path
    form = {"grant_type": "password", "client_id": fake.consumer_key}
    form |= {"client_secret": fake.consumer_secret, "username": fake.username}
    form |= {"password": fake.password + fake.token}

    token = session.post(f"{fake.url}/services/oauth2/token", data=form).json()
    wrong = session.post(f"{fake.url}/services/oauth2/token", data=form | {"password": "nope"})
    sf = Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], session=session
    )

    assert token["token_type"] == "Bearer" and token["instance_url"] == fake.url
    assert sf.query("SELECT Name FROM Account")["records"][0]["Name"] == "Acme"
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "invalid_grant", "error_description": "authentication failure"}


def test_connected_app_logins_of_simple_salesforce_reach_the_fake_through_its_proxy(fake, org):
    org.add("Account", Name="Acme")
    app = {"consumer_key": fake.consumer_key, "consumer_secret": fake.consumer_secret}

    password_flow = connect(
        fake, via_proxy=True, username=fake.username, password=fake.password, **app
    )
    client_credentials = connect(fake, via_proxy=True, domain="acme.my", **app)

    for sf in (password_flow, client_credentials):
        assert sf.sf_instance == f"127.0.0.1:{fake.port}"
        assert sf.query("SELECT Id FROM Account")["totalSize"] == 1
    assert fake.tunnels[0] == "login.salesforce.com:443"
    assert "acme.my.salesforce.com:443" in fake.tunnels
    with pytest.raises(SalesforceAuthenticationFailed) as err:
        connect(fake, via_proxy=True, username=fake.username, password="nope", **app)
    assert err.value.code == "invalid_grant"


def test_soap_login_with_security_token_and_automatic_relogin(fake, org):
    org.add("Account", Name="Acme")
    user = {"username": fake.username, "password": fake.password}
    sf = connect(fake, via_proxy=True, security_token=fake.token, **user)

    assert sf.query("SELECT Id FROM Account")["totalSize"] == 1
    fake.expire_session()
    assert sf.query("SELECT Id FROM Account")["totalSize"] == 1  # re-logs in on INVALID_SESSION_ID
    assert fake.call_count("/services/Soap/u/59.0") == 2
    with pytest.raises(SalesforceAuthenticationFailed) as err:
        connect(fake, via_proxy=True, security_token="WRONG", **user)
    assert err.value.code == "INVALID_LOGIN"

    session = requests.Session()  # SalesforceLogin can also target the fake without a proxy
    session.verify = fake.ca_path
    session_id, instance = SalesforceLogin(
        security_token=fake.token, scratch_url=fake.url, session=session, **user
    )
    direct = Salesforce(session_id=session_id, instance=instance, session=session)
    assert direct.query("SELECT Id FROM Account")["totalSize"] == 1


def test_versions_and_other_api_versions(fake):
    versions = requests.get(f"{fake.url}/services/data/", verify=fake.ca_path).json()
    sf = connect(fake, instance_url=fake.url, session_id=fake.session_id, version="62.0")

    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions
    assert connect(fake).sf_version == "59.0"  # simple-salesforce's default
    assert sf.query("SELECT Id FROM OpportunityStage")["totalSize"] == 10  # the standard stages
    assert fake.requests[-1][1].startswith("/services/data/v62.0/query/")


# -- updates: PATCH /services/data/vXX.X/sobjects/{Object}/{Id} ---------------------------------


def http_date(value: datetime) -> str:
    """An HTTP date (RFC 7231), as the If-Unmodified-Since header takes it."""
    return format_datetime(value.astimezone(UTC), usegmt=True)


def stamp_of(sf: Salesforce, deal: str) -> datetime:
    soql = f"SELECT SystemModstamp FROM Opportunity WHERE Id = '{deal}'"  # noqa: S608
    value = sf.query(soql)["records"][0]["SystemModstamp"]
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


def test_update_sets_the_fields_moves_the_audit_fields_and_answers_204(fake, org):
    deal = opportunity(org, "Big deal", Amount=100, NextStep="call")
    other = opportunity(org, "Other deal")
    org.advance(minutes=5)
    sf = connect(fake)
    since = http_date(stamp_of(sf, deal))
    change = {"Amount": 5, "stagename": "Closed Won", "CloseDate": "2026-02-01", "NextStep": None}

    response = sf.Opportunity.update(
        deal, change, raw_response=True, headers={"If-Unmodified-Since": since}
    )
    fields = "Amount, StageName, IsWon, IsClosed, Probability, CloseDate, NextStep, "
    fields += "SystemModstamp, LastModifiedDate, LastModifiedById"
    soql = f"SELECT {fields} FROM Opportunity WHERE Id = '{deal}'"  # noqa: S608
    record = sf.query(soql)["records"][0]

    assert response.status_code == 204 and response.content == b""
    assert "Content-Type" not in response.headers
    assert {k: v for k, v in record.items() if k != "attributes"} == {
        "Amount": 5.0,
        "StageName": "Closed Won",
        "IsWon": True,  # derived from the stage, as Salesforce does
        "IsClosed": True,
        "Probability": 100.0,
        "CloseDate": "2026-02-01",
        "NextStep": None,
        "SystemModstamp": "2026-01-01T10:05:00.000+0000",
        "LastModifiedDate": "2026-01-01T10:05:00.000+0000",
        "LastModifiedById": org.user_id,
    }
    assert org.get("Opportunity", other)["SystemModstamp"] == T0
    assert ("PATCH", f"/services/data/v59.0/sobjects/Opportunity/{deal}") in fake.requests
    (patch,) = fake.patches
    assert (patch.id, patch.body) == (deal, change)
    assert since == "Thu, 01 Jan 2026 10:00:00 GMT"
    assert patch.headers["if-unmodified-since"] == since  # any case
    assert patch.headers["Content-Type"] == "application/json"

    org.advance(minutes=1)  # getUpdated covers whole minutes up to now
    updated = sf.Opportunity.updated(T0 + timedelta(minutes=1), org.now())
    incremental = sf.query_all(
        "SELECT Id FROM Opportunity WHERE SystemModstamp > 2026-01-01T10:00:00Z"
    )["records"]
    assert updated["ids"] == [deal]
    assert [r["Id"] for r in incremental] == [deal]


def test_a_stale_if_unmodified_since_is_412_and_changes_nothing(fake, org):
    deal = opportunity(org, "deal", Amount=100)
    colleague = org.add("User", Username="c@example.com", LastName="Colleague", Email="c@x.org")
    sf = connect(fake)
    since = http_date(stamp_of(sf, deal))  # read at 10:00:00
    org.advance(seconds=1)
    org.update("Opportunity", deal, Amount=200, LastModifiedById=colleague)  # upstream
    before = org.get("Opportunity", deal)

    with pytest.raises(SalesforceGeneralError) as err:
        sf.Opportunity.update(deal, {"Amount": 5}, headers={"If-Unmodified-Since": since})

    assert err.value.status == 412
    assert err.value.content == [
        {
            "message": f"The requested resource has been modified since {since}",
            "errorCode": "PRECONDITION_FAILED",
        }
    ]
    assert org.get("Opportunity", deal) == before
    assert (before["Amount"], before["LastModifiedById"]) == (200.0, colleague)
    assert before["SystemModstamp"] == T0 + timedelta(seconds=1)

    fresh = http_date(stamp_of(sf, deal))  # re-read, then the update goes through
    assert sf.Opportunity.update(deal, {"Amount": 5}, headers={"If-Unmodified-Since": fresh}) == 204
    after = org.get("Opportunity", deal)
    assert (after["Amount"], after["LastModifiedById"]) == (5.0, org.user_id)
    with pytest.raises(SalesforceMalformedRequest) as err:  # documented: an invalid value is a 400
        sf.Opportunity.update(deal, {"Amount": 6}, headers={"If-Unmodified-Since": "2026-01-01"})
    assert err.value.content[0]["errorCode"] == "INVALID_HEADER_VALUE"
    assert org.get("Opportunity", deal) == after


def test_if_unmodified_since_compares_whole_seconds(fake, org):
    deal = opportunity(org, "deal")
    org.update("Opportunity", deal, SystemModstamp=T0 + timedelta(milliseconds=400))
    sf = connect(fake)
    header = {"If-Unmodified-Since": http_date(T0)}

    assert sf.Opportunity.update(deal, {"Amount": 1}, headers=header) == 204  # the same second
    org.advance(seconds=1)
    org.update("Opportunity", deal, Amount=2)
    with pytest.raises(SalesforceGeneralError) as err:
        sf.Opportunity.update(deal, {"Amount": 3}, headers=header)
    assert err.value.status == 412
    assert sf.Opportunity.update(deal, {"Amount": 4}) == 204  # unconditional
    assert org.get("Opportunity", deal)["Amount"] == 4.0


def _rule_on_amount(fake, deal):
    fake.add_validation_rule(
        "Opportunity", lambda r: r["Amount"] is not None and r["Amount"] < 0,
        "Amount cannot be negative", field="amount",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("setup", "change", "code", "message", "fields"),
    [
        pytest.param(
            None, {"Amount": 5, "Nope__c": 1}, "INVALID_FIELD",
            "No such column 'Nope__c' on sobject of type Opportunity", None,
            id="unknown field",
        ),
        pytest.param(
            None, {"Amount": 5, "IsWon": True, "systemmodstamp": "2026-01-01T11:00:00Z"},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "Unable to create/update fields: IsWon, SystemModstamp. Please check the security "
            "settings of this field and verify that it is read/write for your profile or "
            "permission set.", ["IsWon", "SystemModstamp"],
            id="read-only fields",
        ),
        pytest.param(
            _rule_on_amount, {"Amount": -1, "NextStep": "call"},
            "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Amount cannot be negative", ["Amount"],
            id="validation rule",
        ),
        pytest.param(
            lambda fake, deal: fake.lock_record("Opportunity", deal), {"Amount": 5},
            "ENTITY_IS_LOCKED", "This record is locked. If you need to edit it, contact your "
            "admin.", [],
            id="locked record",
        ),
        pytest.param(
            None, {"Amount": 5, "Name": None}, "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [Name]", ["Name"],
            id="required field",
        ),
        pytest.param(
            None, {"Amount": 5, "CloseDate": "next week"}, "JSON_PARSER_ERROR",
            'Cannot deserialize instance of date from VALUE_STRING value "next week" or request '
            "may be missing a required field", None,
            id="value of the wrong type",
        ),
    ],
)  # fmt: skip
def test_documented_update_errors_are_400s_that_change_nothing(
    fake, org, setup, change, code, message, fields
):
    deal = opportunity(org, "deal", Amount=100)
    org.advance(minutes=1)
    if setup:
        setup(fake, deal)
    before = org.get("Opportunity", deal)
    sf = connect(fake)

    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Opportunity.update(deal, change, headers={"If-Unmodified-Since": http_date(T0)})

    error = {"message": message, "errorCode": code} | ({} if fields is None else {"fields": fields})
    assert err.value.status == 400 and err.value.content == [error]
    assert org.get("Opportunity", deal) == before
    assert fake.patches[-1].body == change


def test_validation_rules_see_the_record_after_the_update_and_every_failing_rule_reports(fake, org):
    deal = opportunity(org, "deal")
    fake.add_validation_rule(
        "Opportunity", lambda r: r["IsWon"] and not r["Amount"], "A won deal needs an amount"
    )
    fake.add_validation_rule(
        "Opportunity", lambda r: r["IsClosed"] and not r["NextStep"], "Say why", field="NextStep"
    )
    sf = connect(fake)

    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Opportunity.update(deal, {"StageName": "Closed Won"})

    code = "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert err.value.content == [
        {"message": "A won deal needs an amount", "errorCode": code, "fields": []},
        {"message": "Say why", "errorCode": code, "fields": ["NextStep"]},
    ]
    assert org.get("Opportunity", deal)["StageName"] == "Prospecting"
    assert sf.Opportunity.update(deal, {"StageName": "Closed Lost", "NextStep": "lost"}) == 204
    assert org.get("Opportunity", deal)["IsClosed"] is True
    org.update("Opportunity", deal, StageName="Closed Won")  # upstream: no rules apply
    fake.lock_record("Opportunity", deal)
    with pytest.raises(SalesforceMalformedRequest):
        sf.Opportunity.update(deal, {"Amount": 1})
    fake.unlock_record("Opportunity", deal)
    assert sf.Opportunity.update(deal, {"Amount": 1}) == 204


def test_updating_a_missing_or_deleted_record_is_not_found(fake, org):
    gone = opportunity(org, "gone")
    org.delete("Opportunity", gone)
    sf = connect(fake)

    absent = "The requested resource does not exist"
    cases = [
        (sf.Opportunity, to18("006Fk0000099999"), absent),
        (sf.Opportunity, "not-an-id",
         "Provided external ID field does not exist or is not accessible: not-an-id"),
        (sf.Nope__c, to18("a01Fk0000000001"), absent),  # no such object
    ]  # fmt: skip
    for sobject, record_id, message in cases:
        with pytest.raises(SalesforceResourceNotFound) as err:
            sobject.update(record_id, {"Name": "x"})
        assert err.value.status == 404
        assert err.value.content == [{"message": message, "errorCode": "NOT_FOUND"}]
    with pytest.raises(SalesforceResourceNotFound) as err:
        sf.Opportunity.update(gone, {"Name": "x"})
    assert err.value.content == [
        {"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}
    ]
    assert org.get("Opportunity", gone)["Name"] == "gone"


def test_describe_marks_system_and_derived_fields_read_only(fake):
    fields = {f["name"]: f for f in connect(fake).Opportunity.describe()["fields"]}

    read_only = ["Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate"]
    read_only += ["LastModifiedById", "SystemModstamp", "IsWon", "IsClosed", "ExpectedRevenue"]
    assert [n for n in read_only if fields[n]["updateable"]] == []
    writable = ["Name", "StageName", "Amount", "CloseDate", "NextStep", "OwnerId", "AccountId"]
    assert [n for n in writable if not fields[n]["updateable"]] == []


def test_faults_hit_updates_too_and_leave_the_record_alone(fake, org):
    deal = opportunity(org, "deal", Amount=100)
    org.advance(minutes=1)
    sf = connect(fake)
    header = {"If-Unmodified-Since": http_date(T0)}
    fake.fail_next(503, path_contains=f"/sobjects/Opportunity/{deal}")
    fake.drop_next(path_contains="/sobjects/Opportunity/")

    with pytest.raises(SalesforceGeneralError) as err:
        sf.Opportunity.update(deal, {"Amount": 5}, headers=header)
    assert err.value.status == 503
    assert err.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"
    with pytest.raises(requests.exceptions.ConnectionError):
        sf.Opportunity.update(deal, {"Amount": 5}, headers=header)
    assert org.get("Opportunity", deal)["Amount"] == 100.0
    assert org.get("Opportunity", deal)["SystemModstamp"] == T0

    assert sf.Opportunity.update(deal, {"Amount": 5}, headers=header) == 204  # the retry
    assert org.get("Opportunity", deal)["Amount"] == 5.0
    assert [p.headers["If-Unmodified-Since"] for p in fake.patches] == [
        header["If-Unmodified-Since"]
    ] * 3
    assert fake.call_count(f"/sobjects/Opportunity/{deal}") == 3


def test_an_org_loaded_from_a_data_export_keeps_its_ids_references_and_stamps(tmp_path):
    from oppkit.demo_data import write_demo_files

    folder = write_demo_files(tmp_path, seed=7).salesforce_dir
    org = FakeOrg.from_export(folder, now=T0)
    with (folder / "Opportunity.csv").open(encoding="utf-8-sig", newline="") as handle:
        exported = list(csv.DictReader(handle))
    with FakeSalesforce(org) as fake:
        sf = connect(fake)
        fields = "Id, Name, AccountId, OwnerId, StageName, Amount, IsClosed, SystemModstamp"
        records = sf.query_all(f"SELECT {fields} FROM Opportunity ORDER BY Id")["records"]  # noqa: S608
        tasks = sf.query_all("SELECT Id FROM Task")["totalSize"]
        all_tasks = sf.query_all("SELECT Id FROM Task", include_deleted=True)["totalSize"]
        stages = sf.query("SELECT Id, MasterLabel FROM OpportunityStage ORDER BY SortOrder")

    assert len(records) == len(exported)
    by_id = {r["Id"]: r for r in records}
    for row in exported:
        record = by_id[row["Id"]]  # the export's Id, not a new one
        assert (record["AccountId"], record["OwnerId"]) == (row["AccountId"], row["OwnerId"])
        assert (record["Name"], record["StageName"]) == (row["Name"], row["StageName"])
        assert record["Amount"] == (float(row["Amount"]) if row["Amount"] else None)
        assert record["IsClosed"] is (row["IsClosed"] == "true")
        stamp = datetime.fromisoformat(row["SystemModstamp"])
        assert record["SystemModstamp"] == stamp.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        assert "IsPrivate" not in org.get("Opportunity", row["Id"])  # the fake has no such field
    with (folder / "OpportunityStage.csv").open(encoding="utf-8-sig", newline="") as handle:
        exported_stages = [(r["Id"], r["MasterLabel"]) for r in csv.DictReader(handle)]
    assert [(r["Id"], r["MasterLabel"]) for r in stages["records"]] == exported_stages
    assert all_tasks == tasks + 1  # the one Task exported deleted is in the recycle bin
    users = org.records["User"].values()
    assert all(u["Username"] == u["Email"] for u in users)  # Salesforce always has one
    # what an export does not hold the org makes as it would: Ids and stamps of its own
    added = org.add("Opportunity", Name="New", StageName="Prospecting", CloseDate="2027-01-01")
    assert added not in by_id and org.get("Opportunity", added)["SystemModstamp"] == T0
    with pytest.raises(ValueError, match="exists already"):
        org.add("Opportunity", Id=exported[0]["Id"], Name="Twin", StageName="Prospecting")


def test_an_api_sync_of_an_org_loaded_from_an_export_lands_on_the_export_synced_rows(tmp_path):
    """The demo's export synced first, then the same records through the API: no duplicates,
    and what changed in the org arrives on the rows the export made."""
    from sqlalchemy import func, select

    import oppkit
    from oppkit.config import Settings
    from oppkit.db.engine import connect_engine
    from oppkit.db.schema import accounts, activities, opportunities, people, stage_history
    from oppkit.demo_data import write_demo_files
    from oppkit.sources.salesforce_client import SalesforceSettings
    from oppkit.sync import sync_salesforce, sync_salesforce_export

    files = write_demo_files(tmp_path / "demo", seed=7)
    url = f"sqlite:///{tmp_path / 'oppkit.sqlite'}"
    settings = Settings(database_url=url, internal_domains=tuple(files.internal_domains))
    sync_salesforce_export(files.salesforce_dir, db=url, settings=settings)
    tables = (opportunities, accounts, people, activities, stage_history)

    def counts() -> list[int]:
        engine = connect_engine(url)
        try:
            with engine.connect() as conn:
                return [conn.scalar(select(func.count()).select_from(t)) for t in tables]
        finally:
            engine.dispose()

    before = counts()
    org = FakeOrg.from_export(files.salesforce_dir)
    deal_id = next(
        r["Id"] for r in org.records["Opportunity"].values() if r["Name"].startswith("Hooli")
    )
    org.update("Opportunity", deal_id, Amount=432_000)  # someone, in Salesforce
    with FakeSalesforce(org) as fake:
        login = SalesforceSettings(instance_url=fake.url, session_id=fake.session_id,
                                   ca_bundle=fake.ca_path)  # fmt: skip
        summary = sync_salesforce(url, settings, salesforce=login)

    assert summary.errors == 0, summary.line()
    assert counts() == before  # every record landed on the row the export sync wrote
    deals = oppkit.connect(url).opportunities().set_index("source_id")
    assert deals.loc[deal_id, "amount"] == 432_000
    assert deals.loc[deal_id, "name"] == "Hooli — Ad-spend attribution"
