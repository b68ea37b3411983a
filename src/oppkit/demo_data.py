"""A synthetic sales organisation, written as the export files real systems produce.

``oppkit demo`` shows the product on "Northwind Analytics", a made-up analytics vendor with
ten customer accounts. :func:`write_demo_files` writes ``mail/<rep>.mbox`` (RFC 4155 mbox),
``calendar/<rep>.ics`` (RFC 5545) and ``salesforce/*.csv`` (a Salesforce Data Export: UTF-8,
RFC 4180, every field quoted, 18-character ids, ``2026-01-15T10:30:00.000Z``, ``true``).
The sync code reads them like any customer's export, so the awkward parts are there on
purpose: RFC 2047 names, an upper-case address, a message without Message-ID, HTML-only
mail, an auto-reply, a bounce, a PDF, messages in both mailboxes, cc'd people who are no
contact, a weekly meeting with an EXDATE, a cancelled meeting, a deleted Task.

Real life for matching and merging is there too: accounts with two open deals, each with
its own people and threads, and people on two deals; mail after a deal closed (within a
short grace it is still that deal's; long after, an old thread revived for another deal
or for account business); a customer forwarding our proposal to a colleague on the
account's other deal, and an internal forward; meetings both in a calendar and in
Salesforce (an Event with WhatId, one for an occurrence of the weekly series); emails
both in a mailbox and logged to Salesforce as Tasks ("Email: <subject>", one of them on
the account). ``truth.json`` beside the files says where each of them belongs (see
:mod:`oppkit.demo_truth`).

Output is deterministic for a given ``(seed, today)``; all dates are relative to ``today``.
"""

from __future__ import annotations

import csv
import html
import io
import json
import random
import re
import textwrap
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress

from .demo_truth import TRUTH_FILE, TRUTH_FORMAT


def _table(text: str) -> list[list[str]]:
    """Rows of a ``|``-separated table; an indented line adds a cell to the row above."""
    rows: list[list[str]] = []
    for line in text.strip("\n").splitlines():
        if line[:1].isspace():
            rows[-1].append(line.strip())
        elif line.strip() and not line.startswith("#"):
            rows.append([cell.strip() for cell in line.split("|")])
    return rows


def _sections(text: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """``== head | subject`` sections of ``who | text`` steps, where ``\\n`` breaks a line."""
    out: list[tuple[str, str, list[tuple[str, str]]]] = []
    for row in _table(text):
        if row[0].startswith("=="):
            out.append((row[0][2:].strip(), row[1], []))
        else:
            out[-1][2].append((row[0], re.sub(r"\s*\\n\s*", "\n", " ".join(row[1:]))))
    return out


COMPANY = "Northwind Analytics"
DOMAIN = "northwind.example"

# first | last | title | time zone. Anna and Ben export mail; they and David export calendars.
USERS = """
Anna  | Keller    | Account Executive                | Europe/Berlin
Ben   | Okafor    | Account Executive                | America/New_York
Carla | Reyes     | VP Sales                         | Europe/Berlin
David | Lindqvist | Solutions Engineer               | Europe/Berlin
Emma  | Schulz    | Sales Development Representative | Europe/Berlin
"""
MAILBOX_USERS, CALENDAR_USERS, SOLUTIONS_ENGINEER = (0, 1), (0, 1, 3), 3

# name | domain | industry | type | owner (user #, who also writes the mail) | time zone |
# how the customer's people send mail: text, alt (multipart/alternative) or html (HTML only)
#   contacts: "First Last, Title" separated by ";"; an <address> replaces first.last@domain
ACCOUNTS = """
Acme Robotics | acme-robotics.example | Manufacturing | Customer - Direct | 0 | Europe/Berlin | text
    Bob Smith, Head of Operations; Alice Novak, CTO; Carlos Diaz, Maintenance Lead;
    Mei Tanaka, Procurement Manager
Globex | globex.example | Energy | Customer - Direct | 0 | America/New_York | alt
    Hank Morgan, VP Operations; Sara Lindgren, Data Platform Lead; Omar Haddad, Procurement Lead
Initech | initech.example | Technology | Prospect | 1 | America/New_York | text
    Bill Lumbergh, Director of Operations; Peter Gibbons, Software Engineer;
    Priya Natarajan, Independent BI Consultant <priya.natarajan.bi@gmail.com>
Umbrella Health | umbrella-health.example | Healthcare | Prospect | 0 | Europe/Berlin | alt
    Zoë Ørsted, Head of Clinical Data; James Carter, CIO; Nina Petrova, Compliance Officer;
    Lukas Brandt, Data Engineer
Stark Logistics | stark-logistics.example | Transportation | Customer - Channel | 0 | Europe/Berlin | text
    Jürgen Müller, Head of Logistics IT; Paula Reed, COO; Tim Walker, Fleet Manager
Wayne Foods | wayne-foods.example | Food & Beverage | Customer - Direct | 1 | America/New_York | text
    Rachel Dawes, Supply Chain Director; Luke Fox, Finance Manager; Grace Kim, IT Manager;
    Marco Rossi, Category Manager
Hooli | hooli.example | Technology | Prospect | 0 | America/New_York | html
    Gavin Bell, SVP Marketing; Denise Wu, Marketing Analytics Manager
Tyrell Biotech | tyrell-bio.example | Biotechnology | Prospect | 1 | America/New_York | text
    Rachael Rosen, Lab Operations Director; Dan Chew, Research IT Lead
Cyberdyne Energy | cyberdyne.example | Energy | Customer - Direct | 1 | America/New_York | alt
    Miles Dyson, Director of Grid Engineering; Karen Lee, Procurement Lead;
    Tom Hughes, Security Architect
Vandelay Industries | vandelay.example | Retail | Customer - Channel | 1 | America/New_York | text
    Art Vandelay, CEO; José García, Head of Imports; Lisa Turner, Store Operations Manager;
    Kevin Park, BI Analyst; Helen Brooks, CFO
"""
# Customer people who are cc'd and invited, but are no Salesforce contact (account #: name).
NON_CONTACTS = {0: "Tom Becker", 1: "Lena Fischer", 8: "Raj Patel"}

# The standard Salesforce stages: label | default probability | open, won or lost
STAGES = [
    (n, int(p), kind)
    for n, p, kind in _table("""
Prospecting          | 10  | open
Qualification        | 10  | open
Needs Analysis       | 20  | open
Value Proposition    | 50  | open
Id. Decision Makers  | 60  | open
Perception Analysis  | 70  | open
Proposal/Price Quote | 75  | open
Negotiation/Review   | 90  | open
Closed Won           | 100 | won
Closed Lost          | 0   | lost
""")
]
_STAGE = {s[0]: i for i, s in enumerate(STAGES)}
_FORECAST = {"open": "Pipeline", "won": "Closed", "lost": "Omitted"}

# name | status | type | start day | end day | members as account.contact
CAMPAIGNS = _table("""
Predictive Maintenance Webinar | Completed   | Webinar    | -150 | -150 | 0.0 0.1 0.2 4.0 5.0
Data & Analytics Summit        | Completed   | Conference | -120 | -118 | 2.0 2.1 3.0 3.2 6.1
Life Sciences Roundtable       | In Progress | Conference | -60  | 30   | 7.0 7.1 3.3
""")
# campaign number -> budgeted cost, actual cost, expected revenue
CAMPAIGN_COSTS = {0: (15_000, 12_500, 200_000), 1: (60_000, 64_000, 500_000),
                  2: (20_000, 8_000, 150_000)}  # fmt: skip

# Leads: first last | email | company | title | status | lead source | campaign | converted
# into account.contact (the same email as the contact) and that deal, with the day
LEADS = _table("""
Nora Lindqvist  | nora.lindqvist@soylent.example  | Soylent Foods  | Head of Data    | Open - Not Contacted | Webinar    | 0 |
Raj Malhotra    | raj.malhotra@oscorp.example     | Oscorp         | CTO             | Working - Contacted  | Conference | 1 |
Elena Petrova   | elena.petrova@monarch.example   | Monarch Labs   | Lab Director    | Open - Not Contacted | Conference | 2 |
Tom Becker      | tom.becker@gringotts.example    | Gringotts Bank | Analyst         | Closed - Not Converted | Web      | 1 |
Acme contact    |                                 | Acme Robotics  |                 | Closed - Converted   | Webinar    | 0 | 0.0 acme-pm -140
Umbrella contact|                                 | Umbrella       |                 | Closed - Converted   | Conference | 1 | 3.0 umbrella-clin -100
""")


class _Opp(NamedTuple):
    key: str
    account: int
    topic: str
    stage: str
    amount: int | None
    close: int  # days from today
    owner: int
    contacts: tuple[int, ...]  # contact numbers in the account, primary first
    type: str
    source: str
    campaign: int | None
    created: int  # days from today
    private: bool


_TYPES = {"new": "New Customer", "up": "Existing Customer - Upgrade"}
_TYPES["repl"] = "Existing Customer - Replacement"
# key | account | topic | stage | amount | close day | owner | contacts (primary first) | type |
# lead source | campaign | created day | private
OPPORTUNITIES_TABLE = """
acme-pm         | 0 | Predictive maintenance pilot | Proposal/Price Quote | 120000 | 35  | 0 | 0 1 2 | up   | Seminar - Internal | 0 | -140 |
acme-fleet      | 0 | Fleet analytics expansion    | Qualification        | 60000  | 150 | 0 | 1 3   | up   | Web                |   | -30  |
globex-energy   | 1 | Energy forecasting platform  | Negotiation/Review   | 250000 | 20  | 0 | 0 1 2 | up   | Partner Referral   |   | -160 |
globex-dw       | 1 | Data warehouse migration     | Closed Won           | 80000  | -45 | 0 | 1     | new  | Partner Referral   |   | -170 |
initech-tps     | 2 | TPS report automation        | Needs Analysis       | 45000  | -10 | 1 | 0 2   | new  | Web                | 1 | -75  |
umbrella-clin   | 3 | Clinical trial dashboards    | Value Proposition    | 180000 | 90  | 0 | 0 1 2 | new  | Trade Show         | 1 | -100 |
umbrella-hipaa  | 3 | HIPAA audit analytics        | Prospecting          |        | 180 | 0 | 3     | new  | Web                |   | -12  |
stark-route     | 4 | Route optimisation           | Id. Decision Makers  | 320000 | 60  | 0 | 0 1   | up   | Partner Referral   |   | -150 |
stark-wh        | 4 | Warehouse sensor analytics   | Closed Lost          | 40000  | -30 | 0 | 0 2   | up   | Web                | 0 | -130 |
wayne-supply    | 5 | Supply chain visibility      | Perception Analysis  | 95000  | 45  | 1 | 0 2   | up   | Trade Show         |   | -90  |
wayne-board     | 5 | Board reporting pack         | Closed Won           | 15000  | -60 | 1 | 1     | up   | Phone Inquiry      |   | -120 | private
hooli-ad        | 6 | Ad-spend attribution         | Prospecting          | 400000 | 120 | 2 | 0     | new  | Partner Referral   |   | -8   |
hooli-churn     | 6 | Churn prediction model       | Closed Lost          | 30000  | -20 | 0 | 1 0   | new  | Web                | 1 | -110 |
tyrell-lab      | 7 | Lab throughput analytics     | Qualification        | 70000  | 100 | 1 | 0 1   | new  | Seminar - Internal | 2 | -50  |
cyber-grid      | 8 | Grid anomaly detection       | Negotiation/Review   | 210000 | 14  | 1 | 0 1 2 | up   | Partner Referral   |   | -170 |
cyber-renewal   | 8 | Annual platform renewal      | Closed Won           | 5000   | -15 | 1 | 1     | repl | Other              |   | -80  |
vandelay-import | 9 | Import demand forecasting    | Proposal/Price Quote | 55000  | 40  | 1 | 0 1 4 | up   | Web                |   | -95  |
vandelay-pos    | 9 | Retail POS analytics         | Needs Analysis       | 25000  | 75  | 1 | 2 3   | up   | Web                |   | -60  |
"""
_ROLES = ["Decision Maker", "Technical Buyer", "Economic Buyer"]

# Mail threads. "== name | subject", then steps "who | body": rep is the account owner, cust
# the opportunity's primary contact, cust2 its second contact. \n is a line break.
SCRIPTS = {
    name: (subject, steps)
    for name, subject, steps in _sections(r"""
== intro | {account} x Northwind Analytics: {topic}
rep   | Thanks for your time on the phone today. As promised, a short summary of how we help
        teams like yours with {topic_l}: we connect to the systems you already have, and your
        analysts get a first working model within a few weeks.\n\nWould a discovery session
        with your team next week work?
cust  | Thanks for the summary, that sounds relevant for us. {weekday} afternoon works on our
        side. I will bring the people who own the data.
rep   | Great, I have sent an invite for {weekday} at 15:00. Talk soon!
== discovery | Follow-up: discovery session
rep   | Thank you all for the open discussion today. My notes:\n\n- Goal: {topic_l} live for
        one business unit\n- Data: exports from your ERP plus operational logs\n- Success: fewer
        manual reports and a forecast the team trusts\n\nPlease correct me if I missed anything.
cust2 | Thanks, that matches my notes. One addition: we need the results in our existing BI
        tool, not in yet another portal.
rep   | Good point, that is how most of our customers run it. I will add it to the scope.
== data | Pilot data access
rep   | To prepare the pilot we need read access to a sample of the historical data; twelve
        months would be ideal. Who on your side can help with that?
cust  | I have asked our IT team. They will set up a read-only account, expect credentials early
        next week.
rep   | Perfect, thank you. We will use a dedicated environment for {account} only.
== value | Business case for {topic_l}
rep   | Here is the business case we discussed. Based on your numbers we estimate a payback
        period of about nine months.
cust  | Thanks. Our finance team will want to see the assumptions. Can we walk through them
        together?
rep   | Of course, I will bring the model to our next call.
== security | Security review: {account}
cust  | Before we can move forward our IT security team needs to review your platform. Could you
        send the security questionnaire? Ideally before the end of next week.
rep   | Certainly. You will have our completed questionnaire and the latest SOC 2 report by
        Thursday.
cust  | Received, thank you. I have forwarded everything to the security team.
== proposal | Proposal: {topic}
rep   | Please find our proposal for {topic_l} attached and summarised below. Total investment:
        {amount} for the first year, including onboarding and training.\n\nHappy to go through
        it on a call.
cust  | Thank you. We have questions on the pricing of additional users and on payment terms.
rep   | Additional users are billed quarterly at the same rate; payment terms are 30 days net.
        Does that work for you?
== contract | Contract redlines
cust  | Our legal team has reviewed the contract. Their comments:\n\n1. Liability cap at twelve
        months of fees\n2. Data processing addendum under EU law\n3. Termination notice of 60 days
rep   | Thanks for the redlines. Points 1 and 2 are fine with our legal team, point 3 needs a
        quick call. I'll send the revised contract by Friday.
cust  | Works for us. Talk on Friday.
rep   | The revised contract is ready for signature. Let me know if you need anything else.
== lost | Decision on {topic}
cust  | Thank you for all the work your team put in. Unfortunately we have decided not to move
        forward at this time. {reason}
rep   | Thank you for letting me know, and for the honest feedback. I will check back in a few
        months. Good luck with the project!
== postponed | Timeline for {topic_l}
cust  | I wanted to let you know that the project is postponed to next quarter. Store operations
        has other priorities right now.
rep   | Understood, thanks for being transparent. I will reach out again next quarter.
""")
}
# An open opportunity has the threads its stage has reached (stage number per thread).
_UNLOCK = dict(intro=0, discovery=1, data=2, value=3, security=4, proposal=6, contract=7)
_EXTRA_THREADS = {"vandelay-pos": ["postponed"]}
_LOST_REASONS = {
    "hooli-churn": "Honestly, we have a budget freeze until Q3.",
    "stark-wh": "We decided to extend the contract with our current vendor.",
}
_CC_OTHER_REP = {("acme-pm", "security"), ("acme-pm", "proposal"), ("cyber-grid", "contract")}
_CC_NON_CONTACT = {"discovery", "data", "security"}
# Mail also logged to Salesforce as an Email Task: the first message of these threads on
# Ben's deals (he logs his outgoing mail), and of two threads on Anna's.
_LOGGED_THREADS = {"intro", "proposal"}
_LOGGED_EXTRA = {("acme-pm", "proposal"), ("cyber-grid", "contract")}
# Days a closed deal's mail still belongs to it (signatures, hand-over, last questions).
GRACE_DAYS = 14

# Internal mail. "== days | subject", then "sender > to; cc | body" with first names.
INTERNAL = _sections(r"""
== -84 -49 -14 | Pipeline review: please update your deals
Carla > Anna, Ben; David, Emma | Hi team,\n\nplease update your opportunities before Thursday's
    pipeline review. I want close dates and next steps on everything in Proposal or later.
    \n\nThanks,\nCarla
Anna > Carla; Ben, David, Emma | Done for my deals. Globex is on track; Acme is waiting for the
    security review.\n\nAnna
Ben > Carla; Anna, David, Emma | Mine are updated too. Cyberdyne needs a discount approval, I'll
    send the details separately.\n\nBen
== -60 | Cover for Acme Robotics while I'm out
Anna > Ben | Hi Ben,\n\nI'm out from Monday for a week. Could you keep an eye on Acme? Bob Smith
    may ask about the pilot data access.\n\nThanks!\nAnna
Ben > Anna | Sure, no problem. Enjoy the time off!\n\nBen
Anna > Ben | Thanks, I owe you one.\n\nAnna
== -33 | Discount approval: Cyberdyne Energy
Ben > Carla | Hi Carla,\n\nCyberdyne is asking for 15% off the first year of the grid anomaly
    detection deal. They can sign this quarter.\n\nBen
Carla > Ben | Approved up to 15% if they sign this quarter.\n\nCarla
""")
# Where internal mail belongs (subject: opportunity key, account #); the rest: nowhere.
_INTERNAL_TRUTH = {
    "Cover for Acme Robotics while I'm out": (None, 0),  # the account, not one deal
    "Discount approval: Cyberdyne Energy": ("cyber-grid", 8),
}

# Meetings, organised by the account owner. Flags: all (every contact of the account and the
# non-contact), se (the solutions engineer), rep2 (the other account executive), onsite,
# cancelled, weekly (8 times, the third one excepted), sf (also logged as a Salesforce Event).
MEETINGS = _table("""
acme-pm         | discovery workshop      | -110 | 10 | 90  | all onsite sf
acme-pm         | technical deep dive     | -80  | 14 | 60  | se
acme-pm         | pilot review            | -45  | 11 | 60  | se rep2
acme-pm         | proposal review         | 5    | 15 | 45  | sf
acme-fleet      | intro call              | -20  | 9  | 30  |
globex-energy   | discovery workshop      | -115 | 16 | 90  | all sf
globex-energy   | technical deep dive     | -70  | 15 | 60  | se
globex-energy   | commercial negotiation  | -12  | 17 | 60  |
globex-energy   | weekly project sync     | -35  | 16 | 30  | weekly sf
globex-dw       | implementation kickoff  | -40  | 15 | 60  |
initech-tps     | discovery call          | -50  | 10 | 45  | all sf
initech-tps     | requirements workshop   | -18  | 13 | 90  | se
umbrella-clin   | discovery workshop      | -85  | 10 | 90  | all sf
umbrella-clin   | demo                    | -30  | 14 | 60  | se
umbrella-hipaa  | intro call              | 9    | 11 | 30  |
stark-route     | discovery workshop      | -100 | 9  | 120 | all onsite sf
stark-route     | technical deep dive     | -60  | 13 | 60  | se
stark-route     | decision makers meeting | -10  | 10 | 60  | rep2 sf
stark-wh        | demo                    | -90  | 15 | 45  |
wayne-supply    | discovery call          | -75  | 11 | 60  | all sf
wayne-supply    | solution presentation   | -25  | 14 | 60  | se
hooli-churn     | discovery call          | -95  | 12 | 45  | all
tyrell-lab      | intro call              | -35  | 10 | 30  | all sf
tyrell-lab      | discovery workshop      | 6    | 13 | 90  | cancelled
cyber-grid      | discovery workshop      | -105 | 10 | 90  | all sf
cyber-grid      | security review         | -55  | 11 | 60  | se
cyber-grid      | contract negotiation    | -8   | 14 | 45  | rep2 sf
cyber-renewal   | renewal check-in        | -30  | 16 | 30  |
vandelay-import | discovery call          | -80  | 10 | 60  | all
vandelay-import | proposal walkthrough    | 12   | 11 | 60  | se
vandelay-pos    | store visit             | -40  | 9  | 120 | onsite sf
""")
# Open to-dos due soon: opportunity, subject, due day
OPEN_TASKS = [
    ("globex-energy", "Send revised contract", 3),
    ("acme-pm", "Follow up on security questionnaire", 6),
    ("cyber-grid", "Prepare QBR deck", 13),
    ("tyrell-lab", "Check budget status", 20),
]
# Salesforce-only Events: owner, opportunity, subject, day, UTC hour, minutes (0: all day)
SF_ONLY_EVENTS = [
    (2, "globex-energy", "Executive dinner with Globex", -66, 19, 150),
    (4, "tyrell-lab", "SDR qualification call", -52, 15, 30),
    (0, "stark-route", "Logistics Expo: Stark Logistics booth", -95, 0, 0),
]

# The Data Export's files and columns.
SALESFORCE_FIELDS = {name: " ".join(cols).split() for name, *cols in _table("""
User                   | Id Email Name FirstName LastName Title IsActive UserRoleId
Account                | Id Name Website Industry Type OwnerId CreatedDate LastModifiedDate
                         SystemModstamp IsDeleted
Contact                | Id AccountId FirstName LastName Name Email Title OwnerId SystemModstamp
                         IsDeleted
OpportunityStage       | Id MasterLabel ApiName IsActive SortOrder IsClosed IsWon
                         DefaultProbability ForecastCategoryName
Opportunity            | Id Name AccountId OwnerId StageName Amount CloseDate Probability IsPrivate
                         IsClosed IsWon CampaignId Type LeadSource CreatedDate LastModifiedDate
                         SystemModstamp IsDeleted
OpportunityContactRole | Id OpportunityId ContactId Role IsPrimary IsDeleted
OpportunityHistory     | Id OpportunityId StageName Amount CloseDate Probability CreatedDate
                         CreatedById IsDeleted
Campaign               | Id Name Status Type StartDate EndDate IsActive ParentId BudgetedCost
                         ActualCost ExpectedRevenue IsDeleted
Lead                   | Id FirstName LastName Name Email Company Title Status LeadSource OwnerId
                         IsConverted ConvertedDate ConvertedAccountId ConvertedContactId
                         ConvertedOpportunityId CreatedDate SystemModstamp IsDeleted
CampaignMember         | Id CampaignId ContactId LeadId Status HasResponded FirstRespondedDate
                         IsDeleted
Task                   | Id WhoId WhatId AccountId OwnerId Subject Description ActivityDate Status
                         Priority IsClosed TaskSubtype CallType CallDurationInSeconds
                         CompletedDateTime CreatedDate SystemModstamp IsDeleted
Event                  | Id WhoId WhatId AccountId OwnerId Subject Description Location
                         StartDateTime EndDateTime DurationInMinutes ActivityDateTime
                         IsAllDayEvent CreatedDate SystemModstamp IsDeleted
""")}  # fmt: skip

_DAY = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_MON = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_ASCII = str.maketrans({"ü": "ue", "ø": "oe", "ë": "e", "é": "e", "í": "i"})
_PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


@dataclass
class DemoFiles:
    root: Path
    mail_dir: Path  # holds one .mbox file per mailbox
    calendar_dir: Path  # holds one .ics file per calendar
    salesforce_dir: Path  # Salesforce Data Export CSVs
    internal_domains: list[str]  # the demo company's own domains
    company: str


class _Account(NamedTuple):
    name: str
    domain: str
    industry: str
    type: str
    owner: int
    tz: str
    style: str
    contacts: list[tuple[str, str, str, str]]  # first, last, title, email


def _account(name: str, domain: str, *cells: str) -> _Account:
    industry, kind, owner, tz, style, *contact_lines = cells
    contacts = []
    for item in " ".join(contact_lines).split(";"):
        person, title = (s.strip() for s in item.split(",", 1))
        title, _, email = title.partition("<")
        first, last = person.split(" ", 1)
        email = email.strip(">") or f"{first}.{last}@{domain}".lower().translate(_ASCII)
        contacts.append((first, last, title.strip(), email))
    return _Account(name, domain, industry, kind, int(owner), tz, style, contacts)


def _opportunity(key: str, account: str, topic: str, stage: str, *cells: str) -> _Opp:
    amount, close, owner, contacts, kind, source, campaign, created, private = cells
    return _Opp(
        key, int(account), topic, stage, int(amount) if amount else None, int(close), int(owner),
        tuple(map(int, contacts.split())), _TYPES[kind], source,
        int(campaign) if campaign else None, int(created), private == "private",
    )  # fmt: skip


_ACCOUNTS = [_account(*row) for row in _table(ACCOUNTS)]
OPPORTUNITIES = [_opportunity(*row) for row in _table(OPPORTUNITIES_TABLE)]
_OPP = {o.key: o for o in OPPORTUNITIES}


@dataclass
class _Person:
    first: str
    last: str
    title: str
    email: str
    tz: str
    sf_id: str = ""

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


class _Ids:
    """Salesforce-style 18-character ids: key prefix, pod, counter, case checksum."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def __call__(self, prefix: str) -> str:
        n = self._counts[prefix] = self._counts.get(prefix, 0) + 1
        value = 1_000_000 + n * 104_729 + int.from_bytes(prefix.encode()) % 997 * 977
        digits = ""
        for _ in range(5):
            value, r = divmod(value, 62)
            digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[r] + digits
        id15 = f"{prefix}8d00000{digits}"
        flags = [sum(1 << j for j, c in enumerate(id15[i : i + 5]) if c.isupper()) for i in (0, 5)]
        flags.append(sum(1 << j for j, c in enumerate(id15[10:]) if c.isupper()))
        return id15 + "".join("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[f] for f in flags)


@dataclass
class _Org:
    today: date
    rng: random.Random
    ids: _Ids
    users: list[_Person]
    contacts: list[list[_Person]]  # per account
    extras: dict[int, _Person]  # the non-contacts, by account
    account_ids: list[str]
    opp_ids: dict[str, str]
    campaign_ids: list[str]
    seed: int = 7

    def at(self, days: float, hour: float = 0.0) -> datetime:
        """UTC time ``days`` from today at ``hour`` (UTC), to the minute."""
        dt = datetime.combine(self.today, time(0), UTC) + timedelta(days=days, hours=hour)
        return dt.replace(second=0, microsecond=0)

    def day(self, days: int) -> date:
        return self.today + timedelta(days=days)


def _build_org(seed: int, today: date) -> _Org:
    ids = _Ids()
    users = [
        _Person(f, la, t, f"{f}.{la}@{DOMAIN}".lower(), tz, ids("005"))
        for f, la, t, tz in _table(USERS)
    ]
    contacts = [[_Person(*c, a.tz, ids("003")) for c in a.contacts] for a in _ACCOUNTS]
    extras = {}
    for i, name in NON_CONTACTS.items():
        first, last = name.split()
        acct = _ACCOUNTS[i]
        extras[i] = _Person(first, last, "", f"{first}.{last}@{acct.domain}".lower(), acct.tz)
    account_ids = [ids("001") for _ in _ACCOUNTS]
    opp_ids = {o.key: ids("006") for o in OPPORTUNITIES}
    campaign_ids = [ids("701") for _ in CAMPAIGNS]
    rng = random.Random(seed)
    return _Org(today, rng, ids, users, contacts, extras, account_ids, opp_ids, campaign_ids, seed)


# --------------------------------------------------------------------------- mail


@dataclass
class _Mail:
    when: datetime
    sender: _Person
    people: set[str]  # lower-case addresses in From, To and Cc
    raw: bytes
    text: str  # the plain-text body, as a reply quotes it
    msg_id: str | None
    tag: str = ""  # "<opportunity key>:<thread name>": the deal's scripted thread it is in
    to: list[_Person] = field(default_factory=list)
    cc: list[_Person] = field(default_factory=list)
    deal: str | None = None  # truth: the opportunity key it belongs to
    account: int | None = None  # truth: the account it belongs to
    tags: list[str] = field(default_factory=list)  # truth: the awkward cases it shows
    subject: str = ""
    logged: str = ""  # "deal" or "account": also logged to Salesforce as an Email Task


def _wrap(text: str) -> str:
    return "\n".join(textwrap.fill(s, 72) if len(s) > 72 else s for s in text.split("\n"))


def _to_html(own: str, quote_header: str, quoted: str) -> str:
    parts = [f"<p>{html.escape(p)}</p>".replace("\n", "<br>\n") for p in own.split("\n\n")]
    if quote_header:
        quoted = html.escape(quoted).replace("\n", "<br>\n")
        parts.append(f"<div>{html.escape(quote_header)}</div>\n<blockquote>{quoted}</blockquote>")
    body = "\n".join(parts)
    return f'<html><head><meta charset="utf-8"></head><body>\n{body}\n</body></html>\n'


def _addresses(people: list[_Person]) -> list[Address]:
    return [Address(p.name, addr_spec=p.email) for p in people]


class _Mailer:
    """Builds messages with deterministic ids and MIME boundaries."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.count = rng, 0

    def message(
        self,
        sender: _Person,
        to: list[_Person],
        cc: list[_Person],
        subject: str,
        own: str,
        when: datetime,
        reply_to: _Mail | None = None,
        refs: list[str] | None = None,
        **options: str,
    ) -> _Mail:
        """``own`` is what the sender wrote; a reply quotes ``reply_to`` below it.

        Options: style (text, alt, html), pdf (attachment name), tag, no_id, and any other
        header to add.
        """
        self.count += 1
        style, pdf, tag = (options.pop(k, "") for k in ("style", "pdf", "tag"))
        text, header, quoted = _wrap(own), "", ""
        if reply_to:
            local = reply_to.when.astimezone(ZoneInfo(sender.tz))
            stamp = f"{_DAY[local.weekday()]}, {local.day} {_MON[local.month - 1]} {local.year}"
            header = f"On {stamp} at {local:%H:%M}, {reply_to.sender.name} wrote:"
            quoted = "\n".join(f"> {line}" if line else ">" for line in reply_to.text.split("\n"))
            text = f"{text}\n\n{header}\n{quoted}"
        msg = EmailMessage()
        msg["From"] = Address(sender.name, addr_spec=sender.email)
        msg["To"] = _addresses(to)
        if cc:
            msg["Cc"] = _addresses(cc)
        msg["Subject"] = subject
        msg["Date"] = format_datetime(when.astimezone(ZoneInfo(sender.tz)))
        msg_id = None
        if not options.pop("no_id", ""):
            domain = sender.email.rsplit("@", 1)[1].lower()
            msg_id = f"<{self.rng.getrandbits(48):012x}.{self.count:04d}@mail.{domain}>"
            msg["Message-ID"] = msg_id
        if refs:
            msg["In-Reply-To"], msg["References"] = refs[-1], " ".join(refs)
        for name, value in options.items():
            msg[name] = value
        html_body = _to_html(own, header, reply_to.text if reply_to else "")
        if style == "html":
            msg.set_content(html_body, subtype="html")
        else:
            msg.set_content(text)
            if style == "alt":
                msg.add_alternative(html_body, subtype="html")
        if pdf:
            msg.add_attachment(_PDF, maintype="application", subtype="pdf", filename=pdf)
        for i, part in enumerate(p for p in msg.walk() if p.is_multipart()):
            part.set_boundary(f"=_nw{self.count:04d}.{i}")
        people = {p.email.lower() for p in (sender, *to, *cc)}
        mail = _Mail(when, sender, people, msg.as_bytes(), text, msg_id, tag, list(to), list(cc))
        mail.subject = subject
        return mail

    def thread(
        self, subject: str, steps: list[_Step], start: datetime, **options: str
    ) -> list[_Mail]:
        """Each reply quotes the message before and carries In-Reply-To and References."""
        out: list[_Mail] = []
        refs: list[str] = []
        for i, (sender, to, cc, own, style) in enumerate(steps):
            prev = out[-1] if out else None
            mail = self.message(sender, to, cc, f"Re: {subject}" if i else subject, own, start,
                                prev, list(refs), style=style, **(options if i == 0 else {}))  # fmt: skip
            refs += [mail.msg_id] if mail.msg_id else []
            out.append(mail)
            start += timedelta(minutes=self.rng.randint(90, 1800))
        return out


_Step = tuple[_Person, list[_Person], list[_Person], str, str]  # from, to, cc, text, style


def _threads_for(opp: _Opp) -> list[str]:
    kind = STAGES[_STAGE[opp.stage]][2]
    if kind == "won":
        names = ["intro", "proposal", "contract"]
    elif kind == "lost":
        names = ["intro", "discovery", "lost"]
    else:
        names = [n for n, stage in _UNLOCK.items() if stage <= _STAGE[opp.stage]]
    return names + _EXTRA_THREADS.get(opp.key, [])


def _opportunity_mail(mailer: _Mailer, org: _Org, opp: _Opp) -> list[_Mail]:
    """The threads between the account owner and the opportunity's contacts."""
    acct, rng, everyone = _ACCOUNTS[opp.account], org.rng, org.contacts[opp.account]
    rep, other_rep = org.users[acct.owner], org.users[1 - acct.owner]
    people = [everyone[i] for i in opp.contacts]
    extra = org.extras.get(opp.account)
    closed = STAGES[_STAGE[opp.stage]][2] != "open"
    lo = max(opp.created, -150 if closed else -118) + 1
    hi = max(lo, min(opp.close - 6 if closed else -8, -8))
    currency = "EUR" if acct.tz == "Europe/Berlin" else "USD"
    names, out = _threads_for(opp), []
    for j, name in enumerate(names):
        subject, script = SCRIPTS[name]
        weekday = rng.choice(["Monday", "Tuesday", "Wednesday", "Thursday"])
        fmt = {"account": acct.name, "topic": opp.topic, "topic_l": opp.topic.lower()}
        fmt |= {"weekday": weekday, "reason": _LOST_REASONS.get(opp.key, "")}
        fmt["amount"] = f"{opp.amount or 0:,} {currency}"
        circle = people + ([p for p in everyone if p not in people] if name == "discovery" else [])
        circle += [extra] if extra and name in _CC_NON_CONTACT else []
        internal = [other_rep] if (opp.key, name) in _CC_OTHER_REP else []
        steps: list[_Step] = []
        addressee = people[0]
        for i, (who, body) in enumerate(script):
            body = body.format(**fmt)
            if who == "rep":
                hello = "Hi all," if name == "discovery" else f"Hi {addressee.first},"
                own = f"{hello}\n\n{body}\n\nBest,\n{rep.first}"
                if i == 0:  # an RFC 3676 signature on the first mail of a thread
                    own += (
                        f"\n\n-- \n{rep.name}\n{rep.title}, {COMPANY}\n+49 30 5550 10{acct.owner}0"
                    )
                cc = [p for p in circle if p is not addressee] + internal
                steps.append((rep, [addressee], cc, own, "text"))
            else:
                addressee = people[1] if who == "cust2" and len(people) > 1 else people[0]
                regards = rng.choice(["Best regards", "Thanks", "Kind regards"])
                own = f"Hi {rep.first},\n\n{body}\n\n{regards},\n{addressee.first}"
                cc = [p for p in circle if p is not addressee] + internal
                style = "alt" if addressee.email.endswith("@gmail.com") else acct.style
                steps.append((addressee, [rep], cc, own, style))
        day = lo + (hi - lo) * (j + 0.5) / len(names) + rng.uniform(-2, 2)
        start = org.at(int(min(max(day, lo), hi)), 7 + rng.uniform(0, 9))
        options = {"tag": f"{opp.key}:{name}"}
        if (opp.key, name) == ("acme-pm", "proposal"):
            options["pdf"] = "Northwind-Proposal-Acme-Robotics.pdf"
        thread = mailer.thread(subject.format(**fmt), steps, start, **options)
        for mail in thread:
            mail.deal, mail.account, mail.tags = opp.key, opp.account, ["thread"]
        out += thread
    return out


def _internal_mail(mailer: _Mailer, org: _Org) -> list[_Mail]:
    by_name = {u.first: u for u in org.users}
    out: list[_Mail] = []
    for days, subject, script in INTERNAL:
        steps: list[_Step] = []
        for who, body in script:  # "sender > to, to; cc, cc"
            sender, _, rest = who.partition(">")
            to, cc = (rest + ";").split(";")[:2]
            to, cc = ([by_name[n.strip()] for n in p.split(",") if n.strip()] for p in (to, cc))
            steps.append((by_name[sender.strip()], to, cc, body, "text"))
        deal, account = _INTERNAL_TRUTH.get(subject, (None, None))
        for day in days.split():
            thread = mailer.thread(subject, steps, org.at(int(day), 7 + org.rng.uniform(0, 8)))
            for mail in thread:
                mail.deal, mail.account, mail.tags = deal, account, ["internal"]
            out += thread
    return out


def _special_mail(mailer: _Mailer, org: _Org, mails: list[_Mail]) -> list[_Mail]:
    """The deliberately awkward messages."""
    anna, ben, c, at, send = org.users[0], org.users[1], org.contacts, org.at, mailer.message
    # An address in upper/mixed case, as the sender's mail client wrote it.
    bob, tom = replace(c[0][0], email="Bob.Smith@ACME-ROBOTICS.example"), [org.extras[0]]
    text = "Hi Anna,\n\nfor the site visit please register at gate 3, Tom will pick you up.\n\nBob"
    visit = send(bob, [anna], tom, "Site visit logistics", text, at(-41, 7.5))
    text, subject = "Hi Bob,\n\nperfect, see you there.\n\nAnna", "Re: Site visit logistics"
    reply = send(anna, [bob], tom, subject, text, at(-41, 9.25), visit, [visit.msg_id or ""])
    # RFC 2047 in From, non-ASCII text, and a body line starting with "From ".
    text = ("Hallo Anna,\n\nhere are my notes from the workshop.\n\nFrom our side the open "
            "points are:\n- read access to the TMS database\n- pricing for 40 depots\n\n"
            "Viele Grüße\nJürgen")  # fmt: skip
    notes = send(c[4][0], [anna], [c[4][1]], "Workshop notes", text, at(-97, 14.1))
    # An old mail system that sends no Message-ID.
    text = "Ben,\n\nFYI: Karen Lee now leads procurement for all grid projects.\n\nMiles"
    old = {"no_id": "yes", "X-Mailer": "Lotus Notes Release 8.5.3"}
    no_id = send(c[8][0], [ben], [], "Updated org chart", text, at(-64, 15.2), **old)
    # An out-of-office reply to Ben's first mail to Tyrell.
    anchor = next(m for m in mails if m.tag == "tyrell-lab:intro")
    text = ("Thank you for your message. I am out of the office with limited access to email. "
            "For urgent matters please contact Dan Chew.")  # fmt: skip
    auto = {"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"}
    ooo = send(c[7][0], [ben], [], "Automatic reply: Out of office", text,
               anchor.when + timedelta(minutes=2), None, [anchor.msg_id or ""], **auto)  # fmt: skip
    # A mail to a contact who has left Wayne Foods, and the bounce.
    gone = c[5][3]
    text = f"Hi {gone.first},\n\nare you still looking at category analytics for next year?\n\nBen"
    sent = send(ben, [gone], [], "Checking in: category analytics", text, at(-70, 16))
    bounce = _bounce(mailer, ben, gone, sent)
    truth = [(visit, "acme-pm", 0, "mixed-case address"), (reply, "acme-pm", 0, ""),
             (notes, "stark-route", 4, ""), (no_id, "cyber-grid", 8, "no Message-ID"),
             (ooo, "tyrell-lab", 7, "auto-reply"), (sent, None, 5, "account only"),
             (bounce, None, 5, "bounce")]  # fmt: skip
    for mail, deal, account, tag in truth:
        mail.deal, mail.account, mail.tags = deal, account, [tag] if tag else []
    return [visit, reply, notes, no_id, ooo, sent, bounce]


def _bounce(mailer: _Mailer, rep: _Person, gone: _Person, sent: _Mail) -> _Mail:
    """A delivery status notification (RFC 3464), as Postfix writes it."""
    mailer.count += 1
    when, boundary = sent.when + timedelta(minutes=1), f"=_bounce{mailer.count:04d}"
    msg_id = f"<{mailer.rng.getrandbits(48):012x}.{mailer.count:04d}@mx.{DOMAIN}>"
    headers = sent.raw.split(b"\n\n", 1)[0].decode("ascii")
    raw = f"""\
From: Mail Delivery System <MAILER-DAEMON@mx.{DOMAIN}>
To: {rep.email}
Subject: Undelivered Mail Returned to Sender
Date: {format_datetime(when)}
Message-ID: {msg_id}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
 boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{gone.email}>: host mx.wayne-foods.example said:
    550 5.1.1 User unknown (in reply to RCPT TO command)

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.{DOMAIN}

Final-Recipient: rfc822; {gone.email}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown

--{boundary}
Content-Type: text/rfc822-headers

{headers}

--{boundary}--
"""
    daemon = _Person("Mail Delivery", "System", "", "MAILER-DAEMON", "UTC")
    return _Mail(when, daemon, {rep.email}, raw.encode("ascii"), "", msg_id)


def _forwarded(original: _Mail) -> str:
    """The forwarded part of a message, as mail clients write it below the sender's note."""
    local = original.when.astimezone(ZoneInfo(original.sender.tz))
    stamp = f"{_DAY[local.weekday()]}, {local.day} {_MON[local.month - 1]} {local.year}"
    lines = ["---------- Forwarded message ---------",
             f"From: {original.sender.name} <{original.sender.email}>",
             f"Date: {stamp} at {local:%H:%M}", f"Subject: {original.subject}",
             "To: " + ", ".join(f"{p.name} <{p.email}>" for p in original.to)]  # fmt: skip
    if original.cc:
        lines.append("Cc: " + ", ".join(f"{p.name} <{p.email}>" for p in original.cc))
    return "\n".join(lines) + "\n\n" + original.text


def _harder_mail(mailer: _Mailer, org: _Org, mails: list[_Mail]) -> list[_Mail]:
    """Real life around the scripted threads; each message knows where it truly belongs.

    Mail after a deal closed (within the grace, it is still that deal's; long after, on an
    old thread, it is about another deal or the account), a customer forwarding our
    proposal to a colleague on the account's other deal, and an internal forward.
    """
    anna, ben, david, c = org.users[0], org.users[1], org.users[SOLUTIONS_ENGINEER], org.contacts
    rng, out = mailer.rng, []

    def thread(tag: str) -> list[_Mail]:
        return [m for m in mails + out if m.tag == tag]

    def reply(
        prev: _Mail, chain: list[_Mail], sender: _Person, to: list[_Person], cc: list[_Person],
        own: str, when: datetime, deal: str | None, account: int, tags: list[str],
    ) -> _Mail:  # fmt: skip
        subject = prev.subject if prev.subject.startswith("Re: ") else f"Re: {prev.subject}"
        refs = [m.msg_id for m in chain if m.msg_id]
        style = _ACCOUNTS[account].style if sender.email.endswith(_ACCOUNTS[account].domain) else ""
        mail = mailer.message(sender, to, cc, subject, own, when, prev, refs, style=style or "text")
        mail.tag, mail.deal, mail.account, mail.tags = prev.tag, deal, account, tags
        out.append(mail)
        return mail

    def later(prev: _Mail, day: int | None = None, hour: float = 0) -> datetime:
        """A while after ``prev``, and not before ``day`` at ``hour`` (UTC) when given."""
        soon = prev.when + timedelta(minutes=rng.randint(60, 300))
        return soon if day is None else max(soon, org.at(day, hour))

    # Globex's warehouse deal closed won; the signature and hand-over follow within days.
    dw, sara, hank = _OPP["globex-dw"], c[1][1], c[1][0]
    chain = thread("globex-dw:contract")
    grace = ["after close, in grace"]
    text = (f"Hi {anna.first},\n\nthe countersigned contract is with our procurement team; you "
            "will have it tomorrow. Who leads the implementation on your side?\n\nKind regards,"
            f"\n{sara.first}")  # fmt: skip
    m = reply(chain[-1], chain, sara, [anna], [], text, later(chain[-1], dw.close + 2, 14),
              "globex-dw", 1, grace)  # fmt: skip
    text = (f"Hi {sara.first},\n\nthank you, great news! {david.name} leads the implementation; "
            f"the kickoff invite follows.\n\nBest,\n{anna.first}")  # fmt: skip
    reply(m, [*chain, m], anna, [sara], [david], text, later(m, dw.close + 3, 9), "globex-dw", 1,
          grace)  # fmt: skip
    # Months later Sara revives the warehouse proposal thread, about the forecasting deal.
    chain = thread("globex-dw:proposal")
    revived = ["after close, long after", "old thread, other deal"]
    text = (f"Hi {anna.first},\n\nthe warehouse has run smoothly since go-live. A question for "
            "the forecasting project: could the forecasting platform read its inputs straight "
            "from the new warehouse instead of the ERP exports?\n\nKind regards,\n"
            f"{sara.first}")  # fmt: skip
    m = reply(chain[-1], chain, sara, [anna], [], text, later(chain[-1], -6, 15),
              "globex-energy", 1, revived)  # fmt: skip
    text = (f"Hi {sara.first},\n\nyes, it can read straight from the warehouse. I have copied "
            f"{hank.first} and will add it to the scope of the forecasting platform.\n\nBest,"
            f"\n{anna.first}")  # fmt: skip
    reply(m, [*chain, m], anna, [sara], [hank], text, later(m, -5, 8), "globex-energy", 1,
          revived)  # fmt: skip
    # Stark said no to the warehouse deal; Anna asks one more question a few days later.
    wh, jurgen = _OPP["stark-wh"], c[4][0]
    chain = thread("stark-wh:lost")
    text = (f"Hi {jurgen.first},\n\none last question for our records: was it mainly price, or "
            f"the features?\n\nBest,\n{anna.first}")  # fmt: skip
    m = reply(chain[-1], chain, anna, [jurgen], [], text, later(chain[-1], wh.close + 4, 8),
              "stark-wh", 4, grace)  # fmt: skip
    text = (f"Hi {anna.first},\n\nmainly that our current vendor already has sensors in all our "
            f"warehouses.\n\nViele Grüße\n{jurgen.first}")  # fmt: skip
    reply(m, [*chain, m], jurgen, [anna], [], text, later(m, wh.close + 5, 10), "stark-wh", 4,
          grace)  # fmt: skip
    # Wayne's board pack closed long ago; its contract thread comes back with account news.
    luke = c[5][1]
    chain = thread("wayne-board:contract")
    revived = ["after close, long after", "account only"]
    text = (f"Hi {ben.first},\n\nfor your records: from next month our invoices go to our new "
            f"shared service centre. Nothing else changes.\n\nThanks,\n{luke.first}")  # fmt: skip
    m = reply(chain[-1], chain, luke, [ben], [], text, later(chain[-1], -4, 14), None, 5,
              revived)  # fmt: skip
    text = (f"Hi {luke.first},\n\nnoted, I have passed it on to our billing team.\n\nBest,"
            f"\n{ben.first}")  # fmt: skip
    m = reply(m, [*chain, m], ben, [luke], [], text, later(m, -3, 13), None, 5, revived)
    m.logged = "account"  # Ben logs it to the account in Salesforce
    # Bob forwards our Acme proposal to Mei, who works on Acme's other deal; she replies all.
    bob, mei = c[0][0], c[0][3]
    original = thread("acme-pm:proposal")[0]
    forward = ["forward", "person on the other deal"]
    text = (f"Hi {mei.first},\n\nfor your procurement review, Northwind's proposal below. Could "
            f"you check the payment terms?\n\n{bob.first}\n\n{_forwarded(original)}")  # fmt: skip
    fwd = mailer.message(bob, [mei], [anna], f"Fwd: {original.subject}", text,
                         original.when + timedelta(hours=rng.randint(20, 30)))  # fmt: skip
    fwd.deal, fwd.account, fwd.tags = "acme-pm", 0, forward
    out.append(fwd)
    text = (f"Hi {anna.first},\n\nI handle procurement for this. Is the price fixed for the "
            f"first year?\n\nBest regards,\n{mei.first}")  # fmt: skip
    m = reply(fwd, [fwd], mei, [anna], [bob], text, later(fwd), "acme-pm", 0, forward)
    text = (f"Hi {mei.first},\n\nyes, the price is fixed for twelve months.\n\nBest,"
            f"\n{anna.first}")  # fmt: skip
    reply(m, [fwd, m], anna, [mei], [bob], text, later(m), "acme-pm", 0, forward)
    # Anna forwards Globex's security request to David, inside the company only.
    original = thread("globex-energy:security")[0]
    inside = ["forward", "internal"]
    text = (f"Hi {david.first},\n\ncould you take the security questionnaire for Globex? They "
            f"want it before the end of next week.\n\nThanks,\n{anna.first}\n\n"
            f"{_forwarded(original)}")  # fmt: skip
    fwd = mailer.message(anna, [david], [], f"Fwd: {original.subject}", text,
                         original.when + timedelta(minutes=rng.randint(20, 120)))  # fmt: skip
    fwd.deal, fwd.account, fwd.tags = "globex-energy", 1, inside
    out.append(fwd)
    text = f"Hi {anna.first},\n\non it; you will have a draft by Wednesday.\n\n{david.first}"
    reply(fwd, [fwd], david, [anna], [], text, later(fwd), "globex-energy", 1, inside)
    return out


def _all_mail(org: _Org) -> list[_Mail]:
    """Every message, each knowing the deal and account it belongs to."""
    mailer = _Mailer(org.rng)
    mails = [m for opp in OPPORTUNITIES for m in _opportunity_mail(mailer, org, opp)]
    mails += _internal_mail(mailer, org)
    mails += _special_mail(mailer, org, mails)
    # The harder cases draw on a random stream of their own, so what came before stays as it
    # was, and so do the calendars and the Salesforce export, which draw on org.rng after this.
    harder = _Mailer(random.Random(org.seed * 7919 + 1))
    harder.count = mailer.count
    mails += _harder_mail(harder, org, mails)
    firsts: dict[str, _Mail] = {}
    for mail in mails:
        if mail.tag:
            firsts.setdefault(mail.tag, mail)
    for tag, mail in firsts.items():
        key, name = tag.split(":")
        if (_OPP[key].owner == 1 and name in _LOGGED_THREADS) or (key, name) in _LOGGED_EXTRA:
            mail.logged = "deal"
    return mails


def write_mail(mail_dir: Path, org: _Org, mails: list[_Mail] | None = None) -> None:
    """One mbox per mailbox user, holding every message they sent or received."""
    mails = _all_mail(org) if mails is None else mails
    for user in (org.users[u] for u in MAILBOX_USERS):
        out = bytearray()
        for m in sorted((m for m in mails if user.email in m.people), key=lambda m: m.when):
            u = m.when.astimezone(UTC)
            stamp = f"{_DAY[u.weekday()]} {_MON[u.month - 1]} {u.day:2d} {u:%H:%M:%S} {u.year}"
            body = re.sub(rb"(?m)^From ", b">From ", m.raw)  # RFC 4155 escaping
            out += f"From {m.sender.email} {stamp}\n".encode() + body.rstrip(b"\n") + b"\n\n"
        (mail_dir / f"{user.email.split('@')[0]}.mbox").write_bytes(bytes(out))


# --------------------------------------------------------------------------- calendars


@dataclass
class _Meeting:
    uid: str
    opp: _Opp
    summary: str
    start: datetime  # in the organiser's time zone
    minutes: int
    attendees: list[tuple[_Person, str, str]]  # person, ROLE, PARTSTAT; the organiser first
    location: str
    flags: list[str]


def _meetings(org: _Org) -> list[_Meeting]:
    rng, out = org.rng, []
    for key, label, day, hour, minutes, *flags in MEETINGS:
        opp, flags = _OPP[key], " ".join(flags).split()
        acct, everyone = _ACCOUNTS[opp.account], org.contacts[opp.account]
        rep = org.users[acct.owner]
        start = time(int(hour), rng.choice((0, 0, 30)), tzinfo=ZoneInfo(rep.tz))
        start = datetime.combine(org.day(int(day)), start)
        people = [everyone[i] for i in opp.contacts]
        if "all" in flags:
            people += [p for p in everyone if p not in people]
            people += [org.extras[opp.account]] if opp.account in org.extras else []
        answers = ["ACCEPTED"] * 4 + ["TENTATIVE", "DECLINED"]
        if int(day) > 0:
            answers = ["NEEDS-ACTION", "ACCEPTED", "TENTATIVE"]
        attendees = [(rep, "CHAIR", "ACCEPTED")]
        attendees += [(p, "REQ-PARTICIPANT", rng.choice(answers)) for p in people]
        if "se" in flags:
            attendees.append((org.users[SOLUTIONS_ENGINEER], "OPT-PARTICIPANT", "ACCEPTED"))
        if "rep2" in flags:
            attendees.append((org.users[1 - acct.owner], "REQ-PARTICIPANT", "ACCEPTED"))
        if "onsite" in flags:
            location = f"{acct.name} HQ, room {rng.randint(1, 4)}.{rng.randint(1, 20):02d}"
        else:
            zoom = f"https://zoom.us/j/{rng.randint(10**9, 10**10 - 1)}"
            location = "Microsoft Teams Meeting" if acct.owner == 0 else zoom
        uid = f"{rng.getrandbits(64):016x}@{DOMAIN}"
        summary = f"{acct.name} — {label}"
        out.append(_Meeting(uid, opp, summary, start, int(minutes), attendees, location, flags))
    return out


def _vevent(m: _Meeting, stamp: datetime) -> Event:
    ev = Event()
    cancelled, start_utc = "cancelled" in m.flags, m.start.astimezone(UTC)
    ev.add("uid", m.uid)
    ev.add("dtstamp", stamp)
    ev.add("created", min(stamp, start_utc - timedelta(days=6)))
    ev.add("last-modified", stamp if cancelled else min(stamp, start_utc - timedelta(days=5)))
    ev.add("sequence", 1 if cancelled else 0)
    ev.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    ev.add("summary", m.summary)
    ev.add("dtstart", m.start)
    ev.add("dtend", m.start + timedelta(minutes=m.minutes))
    if "weekly" in m.flags:
        ev.add("rrule", {"freq": "weekly", "count": 8})
        ev.add("exdate", [m.start + timedelta(weeks=2)])
    ev.add("location", m.location)
    ev.add("description", f"Agenda:\n1. Introductions\n2. {m.opp.topic}\n3. Next steps")
    organizer = vCalAddress(f"mailto:{m.attendees[0][0].email}")
    organizer.params["CN"] = m.attendees[0][0].name
    ev.add("organizer", organizer)
    for person, role, answer in m.attendees:
        attendee = vCalAddress(f"mailto:{person.email}")
        attendee.params.update({"CN": person.name, "CUTYPE": "INDIVIDUAL", "ROLE": role})
        attendee.params.update({"PARTSTAT": answer, "RSVP": str(role != "CHAIR").upper()})
        ev.add("attendee", attendee)
    return ev


def write_calendars(calendar_dir: Path, org: _Org, meetings: list[_Meeting]) -> None:
    """One .ics per calendar user, with every meeting they organise or attend."""
    stamp = org.at(0, 6)
    for user in (org.users[u] for u in CALENDAR_USERS):
        cal = Calendar()
        cal.add("prodid", f"-//{COMPANY}//oppkit demo//EN")
        cal.add("version", "2.0")
        cal.add("calscale", "GREGORIAN")
        cal.add("x-wr-calname", user.name)
        cal.add("x-wr-timezone", user.tz)
        mine = [m for m in meetings if any(a[0] is user for a in m.attendees)]
        for m in sorted(mine, key=lambda m: m.start):
            cal.add_component(_vevent(m, stamp))
        cal.add_missing_timezones(org.day(-200), org.day(200))
        # icalendar adds them in set order, which differs between processes: sort them
        zones = [c for c in cal.subcomponents if c.name == "VTIMEZONE"]
        rest = [c for c in cal.subcomponents if c.name != "VTIMEZONE"]
        cal.subcomponents[:] = sorted(zones, key=lambda c: str(c["TZID"])) + rest
        (calendar_dir / f"{user.email.split('@')[0]}.ics").write_bytes(cal.to_ical())


# --------------------------------------------------------------------------- Salesforce


def _dt(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _b(value: bool) -> str:
    return "true" if value else "false"


def _money(amount: int | None) -> str:
    return f"{amount:.2f}" if amount is not None else ""


def _write_csv(sf_dir: Path, name: str, rows: list[list[object]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(SALESFORCE_FIELDS[name])
    writer.writerows(rows)
    (sf_dir / f"{name}.csv").write_bytes(buf.getvalue().encode("utf-8"))


def _history(org: _Org, opp: _Opp) -> list[tuple[datetime, str, int | None, date]]:
    """Snapshots (time, stage, amount, close date) that led to the opportunity's state."""
    kind = STAGES[_STAGE[opp.stage]][2]
    path = {"won": [*range(8), 8], "lost": [*range(4), 9]}.get(kind, range(_STAGE[opp.stage] + 1))
    path = [s for k, s in enumerate(path) if k in (0, len(path) - 1) or org.rng.random() < 0.7]
    rows = [[STAGES[s][0], opp.amount, opp.close] for s in path]
    if opp.key == "acme-pm":  # the amount grew once, with the proposal
        for row in rows[:-1]:
            row[1] = 90_000
    if opp.key == "stark-route":  # the close date was pushed twice
        mid = max(1, len(rows) // 2)
        for k, row in enumerate(rows):
            row[2] = opp.close - (45 if k < mid else 20)
        rows.insert(mid, [rows[mid - 1][0], opp.amount, opp.close - 20])
        rows.append([rows[-1][0], opp.amount, opp.close])
    start = org.at(opp.created, 9)
    end = max(start, org.at(opp.close if kind != "open" else -org.rng.randint(2, 20), 15))
    step = (end - start) / max(1, len(rows) - 1)
    return [(start + step * k, s, a, org.day(c)) for k, (s, a, c) in enumerate(rows)]


def _write_people(sf_dir: Path, org: _Org) -> None:
    """Users, accounts, contacts, stages, campaigns and their members."""
    users, cons, ids = org.users, org.contacts, org.ids
    rows: list[list[object]] = [
        [u.sf_id, u.email, u.name, u.first, u.last, u.title, "true", ""] for u in users
    ]
    _write_csv(sf_dir, "User", rows)
    accounts, contacts = [], []
    for i, a in enumerate(_ACCOUNTS):
        aid, owner = org.account_ids[i], users[a.owner].sf_id
        created, modified = _dt(org.at(-400 + 17 * i, 10)), _dt(org.at(-30 + 2 * i, 12))
        accounts.append([aid, a.name, f"https://www.{a.domain}", a.industry, a.type, owner,
                         created, modified, modified, "false"])  # fmt: skip
        for p in cons[i]:
            contacts.append([p.sf_id, aid, p.first, p.last, p.name, p.email, p.title, owner,
                             modified, "false"])  # fmt: skip
    _write_csv(sf_dir, "Account", accounts)
    _write_csv(sf_dir, "Contact", contacts)
    rows = []
    for k, (name, probability, kind) in enumerate(STAGES):
        closed, won = _b(kind != "open"), _b(kind == "won")
        rows.append(
            [ids("01J"), name, name, "true", k + 1, closed, won, probability, _FORECAST[kind]]
        )
    _write_csv(sf_dir, "OpportunityStage", rows)
    rows, members = [], []
    for k, (name, status, kind, start, end, who) in enumerate(CAMPAIGNS):
        cid, active = org.campaign_ids[k], _b(status == "In Progress")
        costs = (_money(c) for c in CAMPAIGN_COSTS[k])
        rows.append([cid, name, status, kind, org.day(int(start)), org.day(int(end)), active, "",
                     *costs, "false"])  # fmt: skip
        for a, c in (member.split(".") for member in who.split()):
            status = org.rng.choice(["Sent", "Responded"])
            responded = org.day(int(start) + 1) if status == "Responded" else ""
            members.append([ids("00v"), cid, cons[int(a)][int(c)].sf_id, "", status,
                            _b(bool(responded)), responded, "false"])  # fmt: skip
    _write_csv(sf_dir, "Campaign", rows)
    leads = _leads(org, members)
    _write_csv(sf_dir, "Lead", leads)
    _write_csv(sf_dir, "CampaignMember", members)


def _leads(org: _Org, members: list[list[object]]) -> list[list[object]]:
    """The demo's leads (open, not converted, converted into a contact and a deal); each
    is a member of its campaign (a converted one as the contact it became)."""
    rows = []
    for k, (name, email, company, title, status, source, campaign, converted) in enumerate(LEADS):
        lead_id, cid = org.ids("00Q"), org.campaign_ids[int(campaign)]
        first, last = name.split(" ", 1)
        created = org.at(-160 + 25 * k, 10)
        account = person = deal = day = ""
        if converted:
            where, key, on = converted.split()
            a, c = (int(n) for n in where.split("."))
            contact = org.contacts[a][c]
            first, last, email, title = contact.first, contact.last, contact.email, contact.title
            account, person, deal = org.account_ids[a], contact.sf_id, org.opp_ids[key]
            day, created = org.day(int(on)), org.at(int(on) - 20, 10)
        owner = org.users[k % len(org.users)].sf_id
        rows.append([lead_id, first, last, f"{first} {last}", email, company, title, status,
                     source, owner, _b(bool(converted)), day, account, person, deal,
                     _dt(created), _dt(created), "false"])  # fmt: skip
        if not converted:  # a converted lead's membership is its contact's
            members.append([org.ids("00v"), cid, "", lead_id, "Sent", "false", "", "false"])
    return rows


def _write_deals(sf_dir: Path, org: _Org) -> None:
    """Opportunities with their contact roles and history."""
    opps, roles, history = [], [], []
    for o in OPPORTUNITIES:
        oid, owner = org.opp_ids[o.key], org.users[o.owner].sf_id
        _, probability, kind = STAGES[_STAGE[o.stage]]
        snapshots = _history(org, o)
        modified = _dt(snapshots[-1][0] + timedelta(minutes=org.rng.randint(5, 600)))
        campaign = org.campaign_ids[o.campaign] if o.campaign is not None else ""
        opps.append([oid, f"{_ACCOUNTS[o.account].name} — {o.topic}", org.account_ids[o.account],
                     owner, o.stage, _money(o.amount), org.day(o.close), probability,
                     _b(o.private), _b(kind != "open"), _b(kind == "won"), campaign, o.type,
                     o.source, _dt(snapshots[0][0]), modified, modified, "false"])  # fmt: skip
        for k, c in enumerate(o.contacts):
            contact = org.contacts[o.account][c].sf_id
            roles.append([org.ids("00K"), oid, contact, _ROLES[k], _b(k == 0), "false"])
        for when, stage, amount, close in snapshots:
            history.append([org.ids("008"), oid, stage, _money(amount), close,
                            STAGES[_STAGE[stage]][1], _dt(when), owner, "false"])  # fmt: skip
    _write_csv(sf_dir, "Opportunity", opps)
    _write_csv(sf_dir, "OpportunityContactRole", roles)
    _write_csv(sf_dir, "OpportunityHistory", history)


def _logged_email_task(org: _Org, mail: _Mail, delay: int) -> list[object]:
    """An Email Task as Salesforce's Outlook integration logs a message ("Email: <subject>")."""
    acct = _ACCOUNTS[mail.account or 0]
    rep = org.users[acct.owner]
    outbound = mail.sender.email.endswith("@" + DOMAIN)
    who = (mail.to[0] if outbound else mail.sender).sf_id
    what = org.opp_ids[mail.deal] if mail.logged == "deal" and mail.deal else ""
    what = what or org.account_ids[mail.account or 0]
    done = mail.when + timedelta(minutes=delay)
    description = "\n".join([
        "To: " + "; ".join(p.email for p in mail.to),
        "CC: " + "; ".join(p.email for p in mail.cc),
        "BCC: ",
        "Attachment: " + ("Northwind-Proposal-Acme-Robotics.pdf" if mail.tag == "acme-pm:proposal"
                          and mail.subject.startswith("Proposal") else ""),
        "",
        f"Subject: {mail.subject}",
        "Body:",
        mail.text,
    ])  # fmt: skip
    return [org.ids("00T"), who, what, org.account_ids[mail.account or 0], rep.sf_id,
            f"Email: {mail.subject}", description, done.date(), "Completed", "Normal", "true",
            "Email", "", "", _dt(done), _dt(done), _dt(done), "false"]  # fmt: skip


def _write_activities(
    sf_dir: Path, org: _Org, meetings: list[_Meeting], mails: list[_Mail], truth: _Truth
) -> None:
    """Tasks (calls, emails, to-dos) and Events, on opportunities (one email on an account).

    Some Tasks log a message that is also in a mailbox, some Events a meeting that is also
    in a calendar: ``truth`` records them as one real-world event with the message or
    meeting.
    """
    ids, rng, at = org.ids, org.rng, org.at
    tasks = []
    for o in OPPORTUNITIES:
        who, oid, aid = (
            org.contacts[o.account][o.contacts[0]],
            org.opp_ids[o.key],
            org.account_ids[o.account],
        )
        closed = STAGES[_STAGE[o.stage]][2] != "open"
        first, last = max(o.created + 2, -118), min(o.close - 1, -2) if closed else -2
        for k, subtype in enumerate(("Call", "Email")):
            done = at(first + (k + 1) * (last - first) // 3, 9 + rng.uniform(0, 8))
            if subtype == "Call":
                step = rng.choice(["send pricing", "book demo", "confirm scope"])
                subject, call_type, seconds = (
                    f"Call with {who.first}",
                    "Outbound",
                    rng.randint(240, 2400),
                )
                notes = f'Discussed {o.topic} with {who.name}.\nNext step: "{step}", owner: us.'
            else:
                subject, call_type, seconds = f"Email: {o.topic} follow-up", "", ""
                notes = f"To: {who.email}\nSubject: {o.topic}\n\nHi {who.first}, as discussed..."
            tasks.append([ids("00T"), who.sf_id, oid, aid, org.users[o.owner].sf_id, subject,
                          notes, done.date(), "Completed", "Normal", "true", subtype, call_type,
                          seconds, _dt(done), _dt(done), _dt(done), "false"])  # fmt: skip
            kind = "call" if subtype == "Call" else "email"
            truth.salesforce("Task", tasks[-1][0], kind, done, subject, o.key, o.account,
                             ["salesforce only"])  # fmt: skip
    for key, subject, day in OPEN_TASKS:
        o, created = _OPP[key], _dt(at(-3, 10))
        who = org.contacts[o.account][o.contacts[0]].sf_id
        tasks.append([ids("00T"), who, org.opp_ids[key], org.account_ids[o.account],
                      org.users[o.owner].sf_id, subject, "", org.day(day), "Not Started", "High",
                      "false", "Task", "", "", "", created, created, "false"])  # fmt: skip
        truth.salesforce("Task", tasks[-1][0], "task", at(day), subject, key, o.account,
                         ["salesforce only", "planned"])  # fmt: skip
    # a duplicate call someone deleted: the same call as the first Task
    tasks.append([ids("00T"), *tasks[0][1:-1], "true"])
    truth.also(truth.get(("Task", tasks[0][0])), "Task", tasks[-1][0], deleted=True)
    delays = random.Random(org.seed * 7919 + 2)  # its own stream: org.rng stays as it was
    for mail in (m for m in mails if m.logged):
        tasks.append(_logged_email_task(org, mail, delays.choice((0, 0, 1, 2, 3, 95))))
        truth.also(truth.get(("mail", id(mail))), "Task", tasks[-1][0])
    _write_csv(sf_dir, "Task", tasks)

    events = [(m.attendees[0][0], m.opp, m.summary, m.start, m.minutes, m.location, m)
              for m in meetings if "sf" in m.flags]  # fmt: skip
    for u, key, subject, day, hour, minutes in SF_ONLY_EVENTS:
        place = "" if minutes else "Messe Berlin"
        start = at(day, hour)
        events.append((org.users[u], _OPP[key], subject, start, minutes or 1440, place, None))
    rows = []
    for owner, o, subject, start, minutes, location, meeting in events:
        created = _dt(min(at(-1, 8), start - timedelta(days=7)))
        end = _dt(start + timedelta(minutes=minutes))
        rows.append([ids("00U"), org.contacts[o.account][o.contacts[0]].sf_id, org.opp_ids[o.key],
                     org.account_ids[o.account], owner.sf_id, subject, f"Meeting about: {o.topic}",
                     location, _dt(start), end, minutes, _dt(start), _b(minutes == 1440), created,
                     created, "false"])  # fmt: skip
        if meeting is None:
            truth.salesforce("Event", rows[-1][0], "meeting", start, subject, o.key, o.account,
                             ["salesforce only"])  # fmt: skip
        else:  # the meeting's first occurrence, logged in Salesforce
            truth.also(truth.get(("meeting", meeting.uid, start)), "Event", rows[-1][0])
    _write_csv(sf_dir, "Event", rows)


# --------------------------------------------------------------------------- the truth


class _Truth:
    """Which deal every exported record belongs to, and which records are one event."""

    def __init__(self, org: _Org) -> None:
        self.org, self.events, self._by = org, [], {}
        # the contacts with a role on two or more deals
        roles = Counter(org.contacts[o.account][c].email for o in OPPORTUNITIES for c in o.contacts)
        self.two_deal_people = {email for email, n in roles.items() if n > 1}

    def _event(
        self,
        key: object,
        kind: str,
        when: datetime,
        subject: str,
        deal: str | None,
        account: int | None,
        tags: list[str],
        people: set[str],
        record: dict,
    ) -> None:
        if deal is not None:
            account = _OPP[deal].account
        tags = list(tags)
        if people & self.two_deal_people:
            tags.append("person on two deals")
        if (
            account is not None
            and len(_live_deals(account, (when.date() - self.org.today).days)) > 1
        ):
            tags.append("several live deals")
        self._by[key] = {
            "kind": kind,
            "occurred_at": _dt(when),
            "subject": subject,
            "opportunity_id": self.org.opp_ids[deal] if deal else None,
            "opportunity": deal,
            "account_id": None if account is None else self.org.account_ids[account],
            "tags": tags,
            "records": [record],
        }
        self.events.append(self._by[key])

    def mail(self, mail: _Mail, mailboxes: list[str]) -> None:
        record = {"source": "mail", "source_id": (mail.msg_id or "").strip("<>") or None,
                  "message_id": mail.msg_id, "mailboxes": mailboxes}  # fmt: skip
        self._event(("mail", id(mail)), "email", mail.when, mail.subject, mail.deal,
                    mail.account, mail.tags, mail.people, record)  # fmt: skip

    def meeting(self, m: _Meeting, calendars: list[str]) -> None:
        starts = [m.start]
        if "weekly" in m.flags:  # RRULE COUNT=8 and the third one excepted (EXDATE)
            starts = [m.start + timedelta(weeks=k) for k in range(8) if k != 2]
        tags = ["meeting"] + (["recurring"] if "weekly" in m.flags else [])
        tags += ["cancelled"] if "cancelled" in m.flags else []
        people = {p.email for p, _, _ in m.attendees}
        for start in starts:
            utc = start.astimezone(UTC)
            key = f"{m.uid}/{utc:%Y%m%dT%H%M%SZ}" if "weekly" in m.flags else m.uid
            record = {"source": "calendar", "source_id": key, "uid": m.uid,
                      "start": _dt(utc), "calendars": calendars}  # fmt: skip
            self._event(("meeting", m.uid, start), "meeting", utc, m.summary, m.opp.key,
                        m.opp.account, tags, people, record)  # fmt: skip

    def salesforce(
        self,
        obj: str,
        sf_id: str,
        kind: str,
        when: datetime,
        subject: str,
        deal: str | None,
        account: int | None,
        tags: list[str],
    ) -> None:
        record = {"source": "salesforce", "source_id": sf_id, "object": obj}
        self._event((obj, sf_id), kind, when, subject, deal, account, tags, set(), record)

    def get(self, key: object) -> dict:
        return self._by[key]

    def also(self, event: dict, obj: str, sf_id: str, deleted: bool = False) -> None:
        """Another Salesforce record of the same real-world event."""
        record = {"source": "salesforce", "source_id": sf_id, "object": obj}
        event["records"].append(record | ({"is_deleted": True} if deleted else {}))
        tag = "deleted copy" if deleted else "in Salesforce too"
        if tag not in event["tags"] and (deleted or event["records"][0]["source"] != "salesforce"):
            event["tags"].append(tag)

    def as_json(self, seed: int) -> dict:
        org = self.org
        events = sorted(self.events, key=lambda e: (e["occurred_at"], e["records"][0]["source"],
                                                    str(e["records"][0]["source_id"])))  # fmt: skip
        for n, event in enumerate(events, 1):
            event["event"] = f"e{n:04d}"
        return {
            "format": TRUTH_FORMAT,
            "about": "Where every exported email, meeting and Salesforce Task/Event belongs: "
            "one entry per real-world event, with every record (mail Message-ID, calendar "
            "UID + start, Salesforce Id) that reports it and the Salesforce Opportunity Id "
            "of its deal (null: the account only, or nothing).",
            "seed": seed,
            "today": org.today.isoformat(),
            "grace_days": GRACE_DAYS,
            "users": [u.email for u in org.users],
            "accounts": [
                {"id": org.account_ids[i], "name": a.name, "domain": a.domain}
                for i, a in enumerate(_ACCOUNTS)
            ],  # fmt: skip
            "opportunities": [
                {
                    "id": org.opp_ids[o.key],
                    "key": o.key,
                    "name": f"{_ACCOUNTS[o.account].name} — {o.topic}",
                    "account_id": org.account_ids[o.account],
                    "stage": o.stage,
                    "created": org.day(o.created).isoformat(),
                    "close_date": org.day(o.close).isoformat(),
                }
                for o in OPPORTUNITIES
            ],  # fmt: skip
            "events": [{"event": e.pop("event"), **e} for e in events],
        }


def _live_deals(account: int, day: int) -> list[str]:
    """The account's deals created by ``day`` and not closed before it."""
    return [o.key for o in OPPORTUNITIES if o.account == account and o.created <= day
            and (STAGES[_STAGE[o.stage]][2] == "open" or day <= o.close)]  # fmt: skip


def write_truth(out_dir: Path, org: _Org, truth: _Truth) -> Path:
    path = out_dir / TRUTH_FILE
    text = json.dumps(truth.as_json(org.seed), ensure_ascii=False, indent=1)
    path.write_bytes((text + "\n").encode("utf-8"))
    return path


# --------------------------------------------------------------------------- entry point


def write_demo_files(out_dir: Path, *, seed: int = 7, today: date | None = None) -> DemoFiles:
    """Write a deterministic synthetic organisation as export files under out_dir.

    Beside them, ``truth.json`` says where every message, meeting and Salesforce Task or
    Event belongs (see :mod:`oppkit.demo_truth`).
    """
    out_dir = Path(out_dir)
    mail_dir, calendar_dir, sf_dir = out_dir / "mail", out_dir / "calendar", out_dir / "salesforce"
    for folder in (mail_dir, calendar_dir, sf_dir):
        folder.mkdir(parents=True, exist_ok=True)
    org = _build_org(seed, today or date.today())
    meetings = _meetings(org)
    mails = _all_mail(org)
    write_mail(mail_dir, org, mails)
    write_calendars(calendar_dir, org, meetings)
    _write_people(sf_dir, org)
    _write_deals(sf_dir, org)
    truth = _Truth(org)
    for mail in mails:
        boxes = [f"{u.email.split('@')[0]}.mbox" for u in (org.users[i] for i in MAILBOX_USERS)]
        truth.mail(
            mail, [b for b in boxes if b.removesuffix(".mbox") + "@" + DOMAIN in mail.people]
        )
    for m in meetings:
        people = {p.email for p, _, _ in m.attendees}
        cals = [u.email.split("@")[0] + ".ics" for u in (org.users[i] for i in CALENDAR_USERS)]
        truth.meeting(m, [c for c in cals if c.removesuffix(".ics") + "@" + DOMAIN in people])
    _write_activities(sf_dir, org, meetings, mails, truth)
    write_truth(out_dir, org, truth)
    return DemoFiles(out_dir, mail_dir, calendar_dir, sf_dir, [DOMAIN], COMPANY)
