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
    meetings = kit.timeline(kind="meeting")
    # the 13 meetings also logged as Salesforce Events show once, with both sources
    assert not meetings.duplicated(["occurred_at", "subject"]).any()
    assert (meetings["sources"] == "calendar,salesforce").sum() == 13
    assert set(meetings["sources"]) == {"calendar", "salesforce", "calendar,salesforce"}
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


def test_demo_opens_jupyterlab_on_the_notebooks_with_the_demo_database(tmp_path: Path):
    import json
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jcfg"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jrt"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "oppkit.cli", "demo", "--out", str(tmp_path / "demo"), "--",
         "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         "--IdentityProvider.token=", "--ServerApp.password="],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        contents = None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{base}/api/contents", timeout=2) as response:
                    contents = json.load(response)
                break
            except OSError:
                time.sleep(0.5)
        assert contents is not None, "JupyterLab did not start"
        names = {item["name"] for item in contents["content"]}
        assert {"01_quickstart.ipynb", "04_workflow.ipynb", "05_campaigns.ipynb"} <= names
        environ = Path(f"/proc/{proc.pid}/environ")  # Linux: what the kernels inherit
        if environ.exists():
            lab_env = dict(
                item.split("=", 1) for item in environ.read_text().split("\0") if "=" in item
            )
            assert lab_env["OPPKIT_DEMO_FILES"] == str((tmp_path / "demo" / "files").resolve())
            assert lab_env["OPPKIT_DATABASE_URL"].endswith("oppkit-demo.sqlite")
        with urllib.request.urlopen(f"{base}/lab", timeout=5) as response:
            assert response.status == 200
            assert "JupyterLab" in response.read().decode()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "mail: read" in out


def test_a_scratch_copy_leaves_the_demo_database_as_it_was(tmp_path: Path):
    """Notebook 04 moves deals: on a scratch copy, the demo keeps what it had (seen before:
    each run of notebook 04 added another deal to the shared demo database)."""
    from sqlalchemy import create_engine, func, insert, select

    from oppkit.db.schema import opportunities
    from oppkit.demo import scratch_copy
    from oppkit.kit import connect

    original = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    kit = connect(original)
    before = len(kit.opportunities())
    copy = scratch_copy(original)
    assert copy != original and copy.startswith("sqlite:///")
    engine = create_engine(copy)
    with engine.begin() as conn:
        conn.execute(insert(opportunities).values(name="Scratch", source="oppkit", source_id="s1"))
        assert conn.scalar(select(func.count()).select_from(opportunities)) == before + 1
    engine.dispose()
    assert len(connect(original).opportunities()) == before
    assert (
        scratch_copy("postgresql+psycopg://x@127.0.0.1/test")
        == "postgresql+psycopg://x@127.0.0.1/test"
    )
