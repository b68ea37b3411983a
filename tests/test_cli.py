"""The `oppkit` command and the agents as a user runs them: output, exit codes, faults."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import oppkit
from oppkit.cli import main, parse_duration
from oppkit.db.engine import create_oppkit_engine, head_revision
from tests.support import (
    big_mbox,
    count,
    make_email,
    run_cli,
    wait_for_checkpoint,
    write_mbox,
)

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def test_init_creates_the_schema_at_the_url_given(sqlite_url: str, capsys):
    assert main(["init", "--db", sqlite_url]) == 0
    assert "database ready" in capsys.readouterr().out
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == head_revision()
        assert conn.scalar(text("PRAGMA journal_mode")) == "wal"
    with create_oppkit_engine(sqlite_url).connect() as conn:
        assert conn.scalar(text("PRAGMA foreign_keys")) == 1
        assert conn.scalar(text("PRAGMA busy_timeout")) == 30000


def test_database_url_comes_from_the_environment(
    sqlite_url: str, tmp_path: Path, monkeypatch, capsys
):
    monkeypatch.setenv("OPPKIT_DATABASE_URL", sqlite_url)
    mbox = write_mbox(tmp_path / "m.mbox", [make_email(sender="a@globex.example", to=["ava.patel@northwind.example"], subject="s", body="b", when=T0, message_id="x@y")])  # fmt: skip
    assert main(["sync", "mail", "--mbox", str(mbox)]) == 0
    assert "mail: read 1, written 1, skipped 0, errors 0" in capsys.readouterr().out
    assert len(oppkit.connect().timeline()) == 1


def test_default_database_is_a_file_in_the_users_data_folder(tmp_path: Path, capsys):
    assert main(["init"]) == 0
    assert (tmp_path / "xdg" / "oppkit" / "oppkit.sqlite").exists()


def test_oppkit_toml_sets_domains_and_database(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("OPPKIT_INTERNAL_DOMAINS")
    db = tmp_path / "from-toml.sqlite"
    (tmp_path / "oppkit.toml").write_text(
        f'database_url = "sqlite:///{db}"\ninternal_domains = ["globex.example"]\n'
    )
    monkeypatch.chdir(tmp_path)
    mbox = write_mbox(tmp_path / "m.mbox", [make_email(sender="a@globex.example", to=["b@globex.example"], subject="s", body="b", when=T0, message_id="x@y")])  # fmt: skip
    assert main(["sync", "mail", "--mbox", str(mbox)]) == 0
    assert oppkit.connect().timeline()["direction"].tolist() == ["internal"]
    assert db.exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["sync", "mail", "--mbox", "/no/such.mbox"], 2, "mailbox not found: /no/such.mbox"),
        (["sync", "calendar", "--ics", "/no/such.ics"], 2, "calendar not found"),
        (["sync", "salesforce-export", "/no/such/dir"], 2, "Salesforce export folder not found"),
        (["--db", "postgresql://nobody@127.0.0.1:1/x", "init"], 1, "cannot reach the database"),
        (["--db", "nonsense", "init"], 2, "not a database URL"),
        (["sync", "mail"], 2, "give --mbox PATH, --imap-host HOST or --ews-url URL"),
        (["sync", "nothing"], 2, "invalid choice"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code(args, code, message, sqlite_url: str):
    if "--db" not in args:
        args = ["--db", sqlite_url, *args]
    result = run_cli(*args)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback():
    result = run_cli("--debug", "sync", "mail", "--mbox", "/no/such.mbox")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_agent_script_runs_once(sqlite_url: str, tmp_path: Path):
    mbox = big_mbox(tmp_path / "m.mbox", 5)
    result = subprocess.run(
        [sys.executable, str(REPO / "agents" / "mail_agent.py"), "--mbox", str(mbox), "--once", "--db", sqlite_url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "mail: read 5, written 5" in result.stdout
    assert count(sqlite_url) == 5


def test_parse_duration():
    assert parse_duration("15m") == 900
    assert parse_duration("1h30m") == 5400
    with pytest.raises(Exception, match="not a duration"):
        parse_duration("soon")


def test_killed_sync_resumes_without_loss_or_duplicates(db_url: str, tmp_path: Path):
    n = 12_000  # several seconds of work: the sync commits (every 2 s) well before the end
    mbox = big_mbox(tmp_path / "big.mbox", n)
    proc = subprocess.Popen(
        [sys.executable, "-m", "oppkit.cli", "--db", db_url, "sync", "mail", "--mbox", str(mbox)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    wait_for_checkpoint(db_url, proc)
    proc.kill()  # SIGKILL: no clean-up runs
    proc.wait()
    done_before = count(db_url)
    assert 0 < done_before < n

    result = run_cli("--db", db_url, "sync", "mail", "--mbox", str(mbox))
    assert result.returncode == 0, result.stderr
    read = int(result.stdout.split("read ")[1].split(",")[0])
    assert read < n  # resumed from the checkpoint, not from the start
    assert count(db_url) == n


def test_two_syncs_at_once_never_duplicate(db_url: str, tmp_path: Path):
    n = 1500
    mbox = big_mbox(tmp_path / "big.mbox", n)
    copy = tmp_path / "copy.mbox"  # the same messages in a second mailbox
    copy.write_bytes(mbox.read_bytes())
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "oppkit.cli",
                "--db",
                db_url,
                "sync",
                "mail",
                "--mbox",
                str(path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for path in (mbox, copy)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert count(db_url) == n
    kit = oppkit.connect(db_url)
    people = kit.people()
    assert people["email"].is_unique
    assert len(kit.accounts()) == 7
