"""Adding a source is one reader module and one declaration: the toy source in
tests/toy_source.py, declared here, gets `oppkit sync toy`, an agent and a sync function."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from oppkit.cli import agent_main, main
from oppkit.config import Settings
from oppkit.sources.catalog import agents, find_source, register, sources_of, unregister
from oppkit.sources.declaration import Source, cli_option, existing_path, resolve
from oppkit.sync import run_source
from tests.support import INTERNAL, count

TOY = Source(
    name="txt",
    agent="toy",
    help="notes from a text file",
    reader="tests.toy_source:read_notes",
    options=(cli_option("--toy-file", "a text file of notes", type=Path, metavar="PATH"),),
    trigger="--toy-file",
    check=existing_path("notes file"),
)


@pytest.fixture
def toy() -> Iterator[Source]:
    register(TOY)
    yield TOY
    unregister(TOY.key)
    assert "toy" not in agents()  # nothing leaks into other tests


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text(
        "n1 bob.buyer@acme-robotics.example Pilot kick-off\n"
        "n2 ava.patel@northwind.example Pricing call\n"
    )
    return path


def test_a_declared_source_is_a_sync_command(toy, notes, db_url, capsys):
    assert main(["sync", "toy", "--toy-file", str(notes), "--db", db_url]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("toy: read 2, written 2, skipped 0, errors 0")
    assert count(db_url) == 2


def test_a_declared_source_is_an_agent(toy, notes, db_url, capsys):
    argv = ["--toy-file", str(notes), "--once", "--db", db_url]
    assert agent_main("toy", argv) == 0
    assert agent_main("toy", argv) == 0  # resumes from its cursor: nothing read again
    first, again = capsys.readouterr().out.splitlines()
    assert first.startswith("toy: read 2, written 2")
    assert again.startswith("toy: read 0, written 0")
    assert count(db_url) == 2


def test_run_source_writes_and_resumes_without_duplicates(toy, notes, db_url):
    settings = Settings(database_url=db_url, internal_domains=INTERNAL)
    assert run_source("toy/txt", notes, settings=settings).written == 2
    assert run_source("toy/txt", notes, settings=settings).read == 0
    with notes.open("a") as fh:
        fh.write("n3 bob.buyer@acme-robotics.example Follow-up\n")
    assert run_source("toy/txt", notes, settings=settings).read == 1
    assert count(db_url) == 3


def test_the_command_asks_for_its_trigger_and_checks_the_target(toy, sqlite_url, capsys):
    assert main(["sync", "toy", "--db", sqlite_url]) == 2
    assert "give --toy-file PATH" in capsys.readouterr().err
    assert main(["sync", "toy", "--toy-file", "/no/such.txt", "--db", sqlite_url]) == 2
    assert "notes file not found: /no/such.txt" in capsys.readouterr().err


def test_credentials_and_shared_options_come_from_the_declarations(sqlite_url, capsys, monkeypatch):
    monkeypatch.delenv("OPPKIT_IMAP_PASSWORD", raising=False)
    monkeypatch.setenv("OPPKIT_IMAP_USER", "ava")
    assert main(["sync", "mail", "--imap-host", "127.0.0.1", "--db", sqlite_url]) == 2
    assert "IMAP needs --imap-user (or OPPKIT_IMAP_USER) and OPPKIT_IMAP_PASSWORD" in (
        capsys.readouterr().err
    )
    for agent in ("mail", "calendar"):  # --ews-* is declared once, offered by both
        assert main(["sync", agent, "--ews-url", "https://x/EWS", "--db", sqlite_url]) == 2
        assert "--ews-url needs at least one --ews-mailbox" in capsys.readouterr().err
    assert main(["sync", "calendar", "--db", sqlite_url]) == 2
    assert "give --ics PATH, --caldav-url URL or --ews-url URL" in capsys.readouterr().err


def test_every_built_in_declaration_resolves():
    assert list(agents()) == ["salesforce", "mail", "calendar", "salesforce-export"]
    assert [s.name for s in sources_of("mail")] == ["file", "imap", "ews"]
    assert [s.name for s in sources_of("calendar")] == ["ics", "caldav", "ews"]
    for agent in agents():
        for source in sources_of(agent):
            assert callable(resolve(source.reader))
            assert source.targets is None or callable(resolve(source.targets))
    assert find_source("salesforce/api").lock_wait_from == "wait"


def test_the_declarations_load_no_client_library():
    code = (
        "import sys, oppkit.sources.catalog, oppkit.sync, oppkit.cli;"
        "oppkit.cli.build_parser();"
        "print([m for m in ('simple_salesforce', 'exchangelib', 'caldav', 'imaplib')"
        " if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
