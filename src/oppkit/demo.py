"""`oppkit demo`: a synthetic organisation, synced by the real agents, opened in JupyterLab.

Why: a new user should see the product working on believable data in one command. The
demo writes export files exactly as the upstream systems do (see :mod:`oppkit.demo_data`),
syncs them with the same code paths as real data, then starts JupyterLab on notebooks/
with ``OPPKIT_DATABASE_URL`` pointing at the demo database and ``OPPKIT_DEMO_FILES`` at the
export files (notebook 04 serves its Salesforce export as a fake org to write back to).

Example::

    files, url = build_demo(Path("/tmp/demo"))
    kit = oppkit.connect(url)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from platformdirs import user_data_dir

from .config import Settings
from .demo_data import DemoFiles, write_demo_files
from .errors import ConfigError
from .sync import sync_calendar, sync_mail, sync_salesforce_export
from .sync.runner import RunSummary

REPO_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
VOILA_TEMPLATES = Path(__file__).resolve().parent / "present"  # voila/templates/oppkit


def demo_folder() -> Path:
    return Path(user_data_dir("oppkit", appauthor=False)) / "demo"


def build_demo(
    out: Path,
    db: str | None = None,
    seed: int = 7,
    progress: bool | None = False,
    today: date | None = None,
) -> tuple[DemoFiles, str, list[RunSummary]]:
    """Write the demo files under ``out`` and sync them; returns (files, database URL, summaries).

    The Salesforce export goes first so that mail and meetings can be matched to the
    opportunities and contacts it brings. ``out/files/truth.json`` says where every
    record belongs (``benchmarks/matching_eval.py`` scores the database against it).
    """
    out.mkdir(parents=True, exist_ok=True)
    files = write_demo_files(out / "files", seed=seed, today=today)
    url = db or f"sqlite:///{(out / 'oppkit-demo.sqlite').resolve()}"
    settings = Settings(database_url=url, internal_domains=tuple(files.internal_domains))
    summaries = [
        sync_salesforce_export(files.salesforce_dir, db=url, settings=settings, progress=progress),
        sync_mail(files.mail_dir, db=url, settings=settings, progress=progress),
        sync_calendar(files.calendar_dir, db=url, settings=settings, progress=progress),
    ]
    return files, url, summaries


def scratch_copy(url: str | None = None) -> str:
    """A copy of a SQLite database (default: the configured one) in a temporary folder;
    its URL.

    Why: notebook 04 walks deals through the workflow and pushes them to a fake
    Salesforce. Run on the demo database itself, every run would leave another deal and
    moved stages behind; on a copy, the demo stays as it was. A database that is not a
    SQLite file (a team's PostgreSQL) is not copied: its URL comes back unchanged.

    >>> kit = oppkit.connect(scratch_copy(), user="anna.keller@northwind.example")
    """
    import sqlite3
    import tempfile

    from sqlalchemy.engine import make_url

    from .config import load_settings

    url = url or load_settings().resolved_database_url
    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return url
    copy = Path(tempfile.mkdtemp(prefix="oppkit-scratch-")) / Path(parsed.database).name
    with sqlite3.connect(parsed.database) as source, sqlite3.connect(copy) as target:
        source.backup(target)  # consistent even while an agent writes the original
    source.close()
    target.close()
    return f"sqlite:///{copy}"


def notebooks_folder() -> Path:
    for candidate in (REPO_NOTEBOOKS, Path.cwd() / "notebooks"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("no notebooks/ folder found; run `oppkit demo` from the oppkit checkout")


def run_demo(
    out: Path | None = None,
    db: str | None = None,
    open_lab: bool = True,
    seed: int = 7,
    lab_args: list[str] | None = None,
) -> int:
    """The `oppkit demo` command; returns the exit code."""
    out = (out or demo_folder()).expanduser()
    files, url, summaries = build_demo(out, db=db, seed=seed, progress=None)
    print(f"demo organisation: {files.company} ({', '.join(files.internal_domains)})")
    print(f"export files in {files.root}")
    for summary in summaries:
        print(summary.line())
    print(f"database: {url}")
    print(f"in a notebook: kit = oppkit.connect({url!r})")
    if not open_lab:
        return 0
    if shutil.which("jupyter") is None and not _has_module("jupyterlab"):
        raise ConfigError("JupyterLab is not installed: pip install 'oppkit[demo]'")
    env = dict(os.environ, OPPKIT_DATABASE_URL=url, OPPKIT_DEMO_FILES=str(files.root.resolve()))
    command = [sys.executable, "-m", "jupyterlab", "--notebook-dir", str(notebooks_folder())]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI machines often run as root
    print("starting JupyterLab (Ctrl+C to stop)...", flush=True)
    command += lab_args or []
    if os.name == "posix":  # become JupyterLab, so Ctrl+C and signals reach it directly
        os.execve(sys.executable, command, env)
    return subprocess.call(command, env=env)


def run_present(
    notebook: Path | None = None, db: str | None = None, voila_args: list[str] | None = None
) -> int:
    """The `oppkit present` command: a notebook as an app, without its code; the exit code.

    Why Voilà: a consultant shares the screen with a client. Voilà runs the notebook in
    its own kernel and shows only its markdown and outputs, the widgets live (filters,
    funnel, grid, downloads), with no code cells, no kernel menus and no file browser;
    its JavaScript comes from the installed packages (offline). JupyterLab's
    Presentation Mode only hides the side panels and keeps every code cell on screen.
    Default: notebooks/02_pipeline_review.ipynb on the configured (or demo) database.
    """
    if not _has_module("voila"):
        raise ConfigError("Voilà is not installed: pip install 'oppkit[demo]'")
    notebook = (notebook or notebooks_folder() / "02_pipeline_review.ipynb").expanduser()
    if not notebook.is_file():
        raise ConfigError(f"no notebook at {notebook}")
    env = dict(os.environ)
    if db:
        env["OPPKIT_DATABASE_URL"] = db
    elif "OPPKIT_DATABASE_URL" not in env and (demo_folder() / "oppkit-demo.sqlite").exists():
        env["OPPKIT_DATABASE_URL"] = f"sqlite:///{(demo_folder() / 'oppkit-demo.sqlite').resolve()}"
        env.setdefault("OPPKIT_DEMO_FILES", str((demo_folder() / "files").resolve()))
    # our template (no CDN links) is found through JUPYTER_PATH, before the installed ones
    env["JUPYTER_PATH"] = os.pathsep.join(
        [str(VOILA_TEMPLATES), *filter(None, [env.get("JUPYTER_PATH")])]
    )
    command = [sys.executable, "-m", "voila", str(notebook.resolve()), "--Voila.ip=127.0.0.1",
               "--strip_sources=True", "--template=oppkit", *(voila_args or [])]  # fmt: skip
    print(f"presenting {notebook.name} (Ctrl+C to stop)...", flush=True)
    if os.name == "posix":  # become Voilà, so Ctrl+C and signals reach it directly
        os.execve(sys.executable, command, env)
    return subprocess.call(command, env=env)


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
