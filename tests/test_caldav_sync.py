"""`oppkit sync calendar --caldav-url` end to end: a real Radicale, the CLI, both backends."""

from __future__ import annotations

import os
import subprocess
import sys

import caldav
import pytest

import oppkit
from tests.fakes.radicale_server import RadicaleServer

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//test//EN
BEGIN:VEVENT
UID:{uid}
DTSTART:20260310T100000Z
DTEND:20260310T110000Z
SUMMARY:{summary}
ORGANIZER;CN=Ava Patel:mailto:ava.patel@northwind.example
ATTENDEE;CN=Bob Buyer;PARTSTAT=ACCEPTED:mailto:Bob.Buyer@acme-robotics.example
END:VEVENT
END:VCALENDAR
"""


@pytest.fixture(scope="module")
def radicale(tmp_path_factory):
    with RadicaleServer(tmp_path_factory.mktemp("radicale")) as server:
        yield server


def sync(db_url: str, server: RadicaleServer, user: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPPKIT_CALDAV_PASSWORD": "any"}
    return subprocess.run(
        [sys.executable, "-m", "oppkit.cli", "--db", db_url, "sync", "calendar", "--caldav-url", server.url,
         "--caldav-user", user],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_caldav_calendar_syncs_through_the_cli(db_url, radicale, request):
    user = f"ava{abs(hash(request.node.nodeid)) % 10**6}"
    client = caldav.DAVClient(radicale.url, username=user, password="any")
    calendar = client.principal().make_calendar(name="Work")
    calendar.save_event(EVENT.format(uid="demo-1@x", summary="Acme demo"))
    first = sync(db_url, radicale, user)
    assert first.returncode == 0, first.stderr
    assert "calendar: read 1, written 1" in first.stdout
    again = sync(db_url, radicale, user)
    assert "calendar: read 0" in again.stdout
    calendar.save_event(EVENT.format(uid="demo-2@x", summary="Acme follow-up"))
    assert "calendar: read 1" in sync(db_url, radicale, user).stdout
    meetings = oppkit.connect(db_url).timeline(person="bob.buyer@acme-robotics.example")
    assert sorted(meetings["subject"]) == ["Acme demo", "Acme follow-up"]
    assert set(meetings["account"]) == {"Acme Robotics"}
