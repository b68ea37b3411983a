"""`oppkit demo`: the synthetic organisation goes through the real syncs into a database."""

from __future__ import annotations

from pathlib import Path

import oppkit
from oppkit.cli import main


def test_demo_builds_a_database_a_notebook_can_use(tmp_path: Path, capsys):
    assert main(["demo", "--no-lab", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "salesforce-export: read" in out and "mail: read" in out and "calendar: read" in out
    assert "errors 0" in out
    url = f"sqlite:///{(tmp_path / 'demo' / 'oppkit-demo.sqlite').resolve()}"
    assert url in out

    kit = oppkit.connect(url)
    opps = kit.opportunities()
    assert len(opps) >= 15
    assert opps["is_private"].sum() == 0  # the private deal is not shown without its owner
    pipeline = kit.pipeline()
    assert pipeline["count"].sum() == (opps["stage_status"] == "open").sum()
    timeline = kit.timeline()
    assert set(timeline["kind"]) >= {"email", "meeting", "call", "task"}
    emails = timeline[timeline["kind"] == "email"]
    assert emails["opportunity"].notna().mean() > 0.5  # most mail found its deal
    assert set(emails["direction"]) == {"inbound", "outbound", "internal"}
    people = kit.people()
    assert people["email"].is_unique
    assert (people["email"] == people["email"].str.lower()).all()
    assert people["name"].str.contains("ü|ë|Ø|ö", regex=True).any()  # RFC 2047 names decoded


def test_demo_twice_gives_the_same_rows(tmp_path: Path, capsys):
    args = ["demo", "--no-lab", "--out", str(tmp_path / "demo")]
    assert main(args) == 0
    url = f"sqlite:///{(tmp_path / 'demo' / 'oppkit-demo.sqlite').resolve()}"
    first = (len(oppkit.connect(url).timeline()), len(oppkit.connect(url).people()))
    assert main(args) == 0
    assert (len(oppkit.connect(url).timeline()), len(oppkit.connect(url).people())) == first
