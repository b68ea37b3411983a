"""Data as of: how fresh each source behind an app is, with a badge when one is not.

Why: the most common complaint about synced CRMs is the silent stall ("synced" shown
while nothing arrives for days). Both apps say, per source, when its data last arrived
and flag a source that is stale (older than its schedule allows) or failing (its last
run failed), from ``kit.sync_status()``. Targets and errors are escaped.

Example::

    FreshnessBar(kit).html.value   # 'Data as of: mail/file 19:13 UTC (3m ago) ...'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as widgets
import pandas as pd

from ..frames.freshness import describe_age
from .html import esc

if TYPE_CHECKING:
    from ..kit import Kit

BADGE = (
    "<span class='oppkit-stale' title='{title}' style='background:#c62828;color:white;"
    "border-radius:3px;padding:0 4px;margin-left:4px'>&#9888; {label}</span>"
)


def freshness_html(status: pd.DataFrame) -> str:
    """One line: each source's last success and age, a badge when stale or failing."""
    if status.empty:
        return "<div class='oppkit-freshness'>Data as of: no sync has run yet</div>"
    parts = []
    for row in status.itertuples(index=False):
        name = row.name if isinstance(row.name, str) and row.name else f"{row.agent}/{row.source}"
        if pd.isna(row.last_success):
            when = "no data yet"
        else:
            when = f"{row.last_success:%Y-%m-%d %H:%M} UTC ({describe_age(row.age)} ago)"
        part = f"<span title='{esc(row.target)}'>{esc(name)}: {esc(when)}</span>"
        if bool(row.stale) or bool(row.failing):
            label = "failing" if bool(row.failing) else "stale"
            part += BADGE.format(title=esc(row.warning), label=label)
        parts.append(part)
    return "<div class='oppkit-freshness'>Data as of: " + " · ".join(parts) + "</div>"


class FreshnessBar(widgets.HTML):
    """``kit.sync_status()`` as one line of HTML; :meth:`refresh` reads it again."""

    def __init__(self, kit: Kit) -> None:
        super().__init__()
        self.kit = kit
        self.status = pd.DataFrame()
        self.refresh()

    def refresh(self) -> None:
        self.status = self.kit.sync_status()
        self.value = freshness_html(self.status)

    @property
    def warnings(self) -> list[str]:
        """The sources flagged stale or failing, with why."""
        flagged = (
            self.status[self.status["stale"] | self.status["failing"]]
            if len(self.status)
            else self.status
        )
        return [str(w) for w in flagged.get("warning", [])]


__all__ = ["FreshnessBar", "freshness_html"]
