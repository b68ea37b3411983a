"""Saved reports: a filter over people, kept by name, that fills a campaign each run.

Why: marketing keeps asking the same question ("data people at manufacturers we spoke
to this month") and wants the answer in a campaign, every week, without anyone running
SQL or a notebook. A saved report is that question (a filter of
:mod:`oppkit.people_filter`) with a campaign. Each run finds the people and adds them to
the campaign with :meth:`oppkit.campaigns.Campaigns.add_contacts` (a deal per contact in
the campaign's process, unless ``create_deals = false``), and says how many it found and
added, and who got no deal and why (a contact without an account). Adding is idempotent,
so a report may run as often as it likes: a person already in the campaign is found again
but not added again, and gets no second deal.

Saved reports live in oppkit.toml beside ``[[agents]]`` (no table in the database, so no
migration), written by hand, by ``oppkit report add`` or by :meth:`Reports.save`::

    [[reports]]
    name = "webinar-leads"                      # how commands name it
    campaign = "Spring webinar"                 # a campaign's name or id
    where = { account_industry = "Manufacturing", title_contains = ["data", "analytics"],
              active_within_days = 30 }         # (one line in the file)
    create_deals = true                         # optional (default true)
    owner = "ava.patel@northwind.example"       # optional: who owns the deals it creates

Example::

    kit.reports()                               # the saved reports
    kit.reports.preview({"title_contains": "data"})   # who a filter finds (a people frame)
    kit.reports.run("webinar-leads").line()     # 'report webinar-leads: 12 found, 3 added...'
    kit.reports.save("cfo-list", "Budget roundtable", {"title_contains": "cfo"})
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import tomllib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from .campaigns import Campaigns, NoDeal
from .config import Settings, load_settings
from .db.schema import campaigns
from .errors import ConfigError
from .people_filter import describe, filter_conditions, matching_people, parse_where
from .scope import NotFoundError, ScopeLike, scope_of
from .workflow.processes import entry_step_id

__all__ = ["REPORT_KEYS", "ReportRun", "Reports", "SavedReport", "report_entries", "save_report"]

REPORT_KEYS = ("name", "campaign", "where", "create_deals", "owner")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class SavedReport:
    """A named filter over people and the campaign its runs fill.

    ``where`` is checked and made plain on creation (:func:`oppkit.people_filter.parse_where`);
    ConfigError names the first problem.

    >>> SavedReport("cfo-list", "Budget roundtable", {"title_contains": "cfo"})
    """

    name: str
    campaign: str | int
    where: Mapping[str, Any] = field(default_factory=dict)
    create_deals: bool = True
    owner: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or _CONTROL.search(self.name):
            raise ConfigError(f"a report needs a name (one line of text), not {self.name!r}")
        object.__setattr__(self, "name", self.name.strip())
        campaign = self.campaign
        if isinstance(campaign, str) and campaign.strip().isdigit():
            campaign = int(campaign.strip())
        if isinstance(campaign, str) and campaign.strip():
            campaign = campaign.strip()
        elif isinstance(campaign, bool) or not isinstance(campaign, int):
            raise ConfigError(f"campaign must be a campaign's name or id, not {self.campaign!r}")
        object.__setattr__(self, "campaign", campaign)
        object.__setattr__(self, "where", parse_where(self.where))
        if not isinstance(self.create_deals, bool):
            raise ConfigError(f"create_deals must be true or false, not {self.create_deals!r}")
        if self.owner is not None and (not isinstance(self.owner, str) or not self.owner.strip()):
            raise ConfigError(f"owner must be an email, not {self.owner!r}")

    def toml(self) -> str:
        """The report as a ``[[reports]]`` table of oppkit.toml."""
        lines = ["[[reports]]", f"name = {_toml(self.name)}", f"campaign = {_toml(self.campaign)}"]
        where = ", ".join(f"{key} = {_toml(value)}" for key, value in self.where.items())
        lines.append(f"where = {{ {where} }}" if where else "where = {}")
        lines.append(f"create_deals = {_toml(self.create_deals)}")
        if self.owner is not None:
            lines.append(f"owner = {_toml(self.owner)}")
        return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    """A TOML value: a string (JSON's escapes are TOML's too), integer, boolean or array."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


# --- [[reports]] in oppkit.toml ---------------------------------------------------------


@dataclass
class _Entry:
    number: int
    name: str | None
    report: SavedReport | None
    problems: list[str]


def _entries(settings: Settings) -> tuple[list[_Entry], list[str]]:
    raw = (settings.extra or {}).get("reports", [])
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        return [], ["reports must be an array of tables: [[reports]]"]
    entries: list[_Entry] = []
    names: set[str] = set()
    for number, table in enumerate(raw, start=1):
        name = table.get("name")
        name = name.strip() if isinstance(name, str) else None
        where = f"[[reports]] {number}" + (f" ({name})" if name else "")
        problems = [f"{where}: unknown key {key!r} (keys: {', '.join(REPORT_KEYS)})"
                    for key in table if key not in REPORT_KEYS]  # fmt: skip
        if "name" not in table:
            problems.append(f'{where}: no name (e.g. name = "webinar-leads")')
        elif name in names:
            problems.append(f"{where}: another report is called {name!r}")
        if "campaign" not in table:
            problems.append(f'{where}: no campaign (e.g. campaign = "Spring webinar")')
        report = None
        if not problems:
            try:
                report = SavedReport(**table)
            except ConfigError as exc:
                problems.append(f"{where}: {exc}")
        if name:
            names.add(name)
        entries.append(_Entry(number, name, report, problems))
    return entries, []


def report_entries(settings: Settings | None = None) -> tuple[list[SavedReport], list[str]]:
    """The ``[[reports]]`` of oppkit.toml, and one line per problem found in them."""
    entries, problems = _entries(settings or load_settings())
    return (
        [e.report for e in entries if e.report is not None],
        problems + [p for e in entries for p in e.problems],
    )


def save_report(report: SavedReport, path: Path) -> Path:
    """Append ``report`` to the oppkit.toml at ``path`` (made when missing), keeping
    everything already in it as it is; ConfigError when a report of that name is there.

    The file is replaced in one step (written beside it, then renamed), and only once the
    new text has been read back as TOML with the report in it.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        reports = tomllib.loads(text).get("reports", [])
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    if not isinstance(reports, list) or not all(isinstance(t, dict) for t in reports):
        raise ConfigError(f"{path}: reports must be an array of tables: [[reports]]")
    if any(str(t.get("name", "")).strip() == report.name for t in reports):
        raise ConfigError(
            f"{path} already has a report called {report.name!r}: edit or remove it there"
        )
    gap = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    new_text = text + gap + report.toml()
    try:
        written = tomllib.loads(new_text)["reports"][-1]
    except tomllib.TOMLDecodeError as exc:  # e.g. reports = [...] written inline
        raise ConfigError(
            f"{path}: cannot append a [[reports]] table to it ({exc}); add the report by hand"
        ) from exc
    if SavedReport(**written) != report:  # pragma: no cover - a bug in SavedReport.toml
        raise ConfigError(f"could not write report {report.name!r} to {path} faithfully")
    _replace(path, new_text)
    return path


def _replace(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        if path.exists():
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- running -------------------------------------------------------------------------


@dataclass
class ReportRun:
    """What one run of a report did: who it found (a people frame), the person ids it
    added to the campaign, the deals it created, the people it could give no deal
    (:class:`~oppkit.campaigns.NoDeal`: who and why). ``read``/``written``/``skipped`` are
    its counts as the agents' logs and ``oppkit status`` show them."""

    name: str
    campaign: str
    campaign_id: int
    people: pd.DataFrame
    added: list[int] = field(default_factory=list)
    deals: list[int] = field(default_factory=list)
    no_deal: list[NoDeal] = field(default_factory=list)

    @property
    def found(self) -> int:
        return len(self.people)

    def line(self) -> str:
        """``report NAME: N found, M added to CAMPAIGN, K deals created``, and when some
        found got no deal: ``, J without a deal (no account)``."""
        line = (
            f"report {self.name}: {self.found} found, {len(self.added)} added to "
            f"{self.campaign}, {len(self.deals)} deals created"
        )
        if not self.no_deal:
            return line
        reasons = sorted(Counter(n.reason for n in self.no_deal).items())
        why = ", ".join(f"{count} {reason}" for reason, count in reasons)
        why = reasons[0][0] if len(reasons) == 1 else why
        return f"{line}, {len(self.no_deal)} without a deal ({why})"

    @property
    def read(self) -> int:
        return self.found

    @property
    def written(self) -> int:
        return len(self.added)

    @property
    def skipped(self) -> int:
        return self.found - len(self.added)

    errors = 0


class Reports:
    """``kit.reports``: call it for the saved reports; ``.run``, ``.preview`` and
    ``.save`` use them. ``settings`` (default: oppkit.toml of the current folder or
    ``OPPKIT_CONFIG``, read at each call) is where they are kept."""

    def __init__(self, scope: ScopeLike, settings: Settings | None = None) -> None:
        self.scope = scope_of(scope)
        self.settings = settings

    def _settings(self) -> Settings:
        return self.settings or load_settings()

    def __call__(self) -> pd.DataFrame:
        """The saved reports of oppkit.toml: name, campaign, where (as the file says
        it), create_deals, owner, and a problem (None for a report that can run)."""
        entries, problems = _entries(self._settings())
        if problems:
            raise ConfigError(problems[0])
        rows = [
            {
                "name": e.report.name if e.report else e.name,
                "campaign": e.report.campaign if e.report else None,
                "where": describe(e.report.where) if e.report else None,
                "create_deals": e.report.create_deals if e.report else None,
                "owner": e.report.owner if e.report else None,
                "problem": "; ".join(e.problems) or None,
            }
            for e in entries
        ]
        columns = ["name", "campaign", "where", "create_deals", "owner", "problem"]
        return self.scope.tag(pd.DataFrame(rows, columns=columns), "reports")

    def get(self, name: str) -> SavedReport:
        """The saved report called ``name``; ConfigError when there is none (or it has a
        problem), naming the ones there are."""
        settings = self._settings()
        entries, problems = _entries(settings)
        if problems:
            raise ConfigError(problems[0])
        for entry in entries:
            if entry.name == name.strip():
                if entry.report is None:
                    raise ConfigError(entry.problems[0])
                return entry.report
        where = settings.config_path or "oppkit.toml (none in this folder; or set OPPKIT_CONFIG)"
        known = ", ".join(e.name for e in entries if e.name) or "none"
        raise ConfigError(f"no report {name!r} in {where} (reports: {known})")

    def preview(
        self, report: str | SavedReport | Mapping[str, Any] | None = None, *,
        now: datetime | None = None,
    ) -> pd.DataFrame:  # fmt: skip
        """Who a saved report (by name), a report, or a filter finds now: a people frame.

        >>> kit.reports.preview({"account_industry": "Manufacturing", "active_within_days": 30})
        """
        if isinstance(report, str):
            report = self.get(report)
        if isinstance(report, SavedReport):
            return self._find(report, now)
        return matching_people(self.scope, report, now=now)

    def check(self, report: str | SavedReport) -> SavedReport:
        """Everything a run needs, checked without writing: the report (by name), its
        campaign, its filter's references, its owner and, when it creates deals, a
        workflow with an entry step for them. ConfigError (or a WorkflowError) says what
        is wrong.
        """
        if isinstance(report, str):
            report = self.get(report)
        _, _, process = self._campaign(report)
        try:
            filter_conditions(self.scope, report.where)
        except ConfigError as exc:
            raise ConfigError(f"report {report.name}: {exc}") from exc
        if report.owner is not None:
            try:
                self.scope.person_ids(report.owner)
            except NotFoundError as exc:
                raise ConfigError(f"report {report.name}: owner: {exc}") from exc
        if report.create_deals:
            with self.scope.engine.connect() as conn:
                entry_step_id(conn, process, "existing_account")
        return report

    def run(self, report: str | SavedReport, *, now: datetime | None = None) -> ReportRun:
        """Find the report's people and add them to its campaign (with a deal per contact
        unless ``create_deals`` is false; ``no_deal`` lists who could have none, and why).
        Idempotent: those already in it are found, not added, and get no second deal.
        Everything is checked first (:meth:`check`): a problem is a ConfigError and
        nothing is added.

        >>> kit.reports.run("webinar-leads").line()
        'report webinar-leads: 12 found, 3 added to Spring webinar, 2 deals created'
        """
        report = self.check(report)
        campaign_id, campaign_name, _ = self._campaign(report)
        found = self._find(report, now)
        added = Campaigns(self.scope).add_contacts(
            found, campaign_id, create_deals=report.create_deals, owner=report.owner
        )
        already = set(added.already)
        new = [int(i) for i in found["id"] if int(i) not in already]
        return ReportRun(
            report.name, campaign_name, campaign_id, found, new, added.opportunities,
            added.no_deal,
        )  # fmt: skip

    def save(
        self, name: str, campaign: str | int, where: Mapping[str, Any] | None = None, *,
        create_deals: bool = True, owner: str | None = None,
    ) -> SavedReport:  # fmt: skip
        """Check a report against the database (:meth:`check`) and append it to
        oppkit.toml (made in the current folder when there is none).

        >>> kit.reports.save("cfo-list", "Budget roundtable", {"title_contains": "cfo"})
        """
        report = self.check(SavedReport(name, campaign, where or {}, create_deals, owner))
        settings = self._settings()
        save_report(report, settings.config_path or Path.cwd() / "oppkit.toml")
        return report

    def _campaign(self, report: SavedReport) -> tuple[int, str, str | None]:
        try:
            ids = list(dict.fromkeys(self.scope.campaign_ids(report.campaign)))
        except NotFoundError:
            ids = []
        if not ids:
            raise ConfigError(
                f"report {report.name}: no campaign {report.campaign!r} "
                "(kit.campaigns.create makes one, or sync it from Salesforce)"
            )
        if len(ids) > 1:
            raise ConfigError(
                f"report {report.name}: {len(ids)} campaigns are called {report.campaign!r}; "
                "give its id"
            )
        with self.scope.engine.connect() as conn:
            row = conn.execute(
                select(campaigns.c.name, campaigns.c.process).where(campaigns.c.id == ids[0])
            ).one()
        return ids[0], row.name, row.process

    def _find(self, report: SavedReport, now: datetime | None) -> pd.DataFrame:
        try:
            return matching_people(self.scope, report.where, now=now)
        except ConfigError as exc:
            raise ConfigError(f"report {report.name}: {exc}") from exc
