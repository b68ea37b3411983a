"""A news feed of a deal's, an account's or a person's activities, filterable by kind and person.

Why one reusable widget: the opportunity view's Activities tab, an account page and a
person page all show the same feed. It reads once (``kit.timeline`` plus who took part)
and filters in memory, so changing a filter never goes back to the database.

Sized for a notebook: the feed shows a page at a time (25 items, Newer / Older and
"items 1–25 of 300") inside a scroll area of at most 420 px.

Example::

    feed = oppkit.TimelineView(kit, opportunity="Acme pilot")
    feed                                  # in a notebook: filters above the feed
    feed.kind_filter.value = "email"      # or use the dropdowns
    feed.person_filter.value = "bob.smith@acme-robotics.example"
    feed.shown                            # the activities the filters let through
    feed.page_items                       # those on the page shown (25 at most)
    feed.pager.older_button.click()       # the next 25
    feed.show_activity(4711)              # its page, highlighted
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import pandas as pd

from ..frames.timeline import participants
from .html import STYLE, esc
from .layout import FEED_HEIGHT, LAYOUT_STYLE, PAGE_SIZE, Pager, scroll_layout

if TYPE_CHECKING:
    from ..kit import Kit

ALL = "all"
KIND_COLORS = {
    "email": "#1e88e5", "meeting": "#8e24aa", "call": "#43a047", "note": "#f9a825",
    "task": "#6d4c41", "event": "#00897b", "sms": "#3949ab",
}  # fmt: skip


class TimelineView(widgets.VBox):
    """Activities newest first, with a kind and a person filter (see module docs).

    ``limit`` caps how many of the newest activities are read (default 500);
    ``page_size`` how many are drawn at a time, in a scroll area of ``max_height`` px.
    """

    def __init__(
        self,
        kit: Kit,
        *,
        opportunity: Any = None,
        account: Any = None,
        person: Any = None,
        limit: int | None = 500,
        page_size: int = PAGE_SIZE,
        max_height: int = FEED_HEIGHT,
    ) -> None:
        self.kit = kit
        self.scope = {"opportunity": opportunity, "account": account, "person": person}
        self.limit = limit
        self.kind_filter = widgets.Dropdown(description="Kind", options=[ALL], value=ALL)
        self.person_filter = widgets.Dropdown(
            description="Person", options=[("everyone", ALL)], value=ALL
        )
        self.count = widgets.HTML()
        self.feed = widgets.HTML(layout=scroll_layout(max_height))
        self.feed.add_class("oppkit-scroll")
        self.pager = Pager(page_size=page_size, on_change=self._draw_page)
        self.frame = pd.DataFrame()
        self.participants = pd.DataFrame(columns=["activity_id", "email", "name"])
        self.shown = pd.DataFrame()
        self.page_items = pd.DataFrame()
        self.highlight: int | None = None  # an activity opened from elsewhere (an alert)
        super().__init__(
            [
                widgets.HTML(STYLE + LAYOUT_STYLE),
                widgets.HBox(
                    [self.kind_filter, self.person_filter, self.count],
                    layout={"flex_flow": "row wrap"},
                ),
                self.pager,
                self.feed,
            ]
        )
        self.add_class("oppkit-timeline")
        self.refresh()
        self.kind_filter.observe(self._redraw, names="value")
        self.person_filter.observe(self._redraw, names="value")

    # --- data -------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the activities again (e.g. after a note was added) and redraw."""
        self.frame = self.kit.timeline(**self.scope, limit=self.limit)
        self.participants = participants(self.kit, self.frame["id"].tolist())
        kinds = sorted(self.frame["kind"].dropna().unique())
        kind = self.kind_filter.value
        self.kind_filter.options = [ALL, *kinds]
        self.kind_filter.value = kind if kind in kinds else ALL
        who = (
            self.participants.drop_duplicates("email")
            .assign(label=lambda d: d["name"].fillna(d["email"]) + " <" + d["email"] + ">")
            .sort_values("label")
        )
        person = self.person_filter.value
        self.person_filter.options = [
            ("everyone", ALL),
            *zip(who["label"], who["email"], strict=True),
        ]
        self.person_filter.value = person if person in set(who["email"]) else ALL
        self._redraw()

    def filtered(self, kind: str | None = None, person: str | None = None) -> pd.DataFrame:
        """The activities of one kind and/or with one person (an email) taking part."""
        df = self.frame
        if kind and kind != ALL:
            df = df[df["kind"] == kind]
        if person and person != ALL:
            ids = self.participants.loc[self.participants["email"] == person, "activity_id"]
            df = df[df["id"].isin(ids)]
        return df

    # --- drawing ----------------------------------------------------------------

    def _redraw(self, _change: Any = None, *, page: int = 0) -> None:
        self.shown = self.filtered(self.kind_filter.value, self.person_filter.value)
        total = len(self.frame)
        self.count.value = f"<span>{len(self.shown)} of {total} activities</span>"
        self.pager.reset(len(self.shown), page)
        self._draw_page()

    def _draw_page(self) -> None:
        start, end = self.pager.bounds
        self.page_items = self.shown.iloc[start:end]
        self.feed.value = feed_html(self.page_items, highlight=self.highlight)

    def show_activity(self, activity_id: int) -> bool:
        """Show one activity: filters cleared, its page drawn, the item highlighted.
        False when it is not in the feed (older than ``limit``, or not visible)."""
        if self.frame.empty or activity_id not in set(self.frame["id"]):
            return False
        self.highlight = int(activity_id)
        self.kind_filter.value = ALL  # each redraws only when it changes
        self.person_filter.value = ALL
        self.shown = self.filtered()
        position = int((self.shown["id"] == activity_id).to_numpy().argmax())
        self._redraw(page=position // self.pager.page_size)
        return True


def feed_html(df: pd.DataFrame, *, highlight: int | None = None) -> str:
    """The activities as a news feed (escaped); ``highlight``: an activity id to mark."""
    if df.empty:
        return "<p><i>No activities.</i></p>"
    items = []
    for row in df.itertuples(index=False):
        color = KIND_COLORS.get(row.kind, "#607d8b")
        who = row.sender_name if isinstance(row.sender_name, str) else row.sender
        direction = f" · {esc(row.direction)}" if isinstance(row.direction, str) else ""
        snippet = row.snippet if isinstance(row.snippet, str) else ""
        if len(snippet) > 280:
            snippet = snippet[:277] + "..."
        marked = " oppkit-highlight" if highlight is not None and row.id == highlight else ""
        items.append(
            f'<div class="oppkit-feed-item{marked}" data-activity="{int(row.id)}">'
            f'<span class="oppkit-kind" style="background:{color}">{esc(row.kind)}</span>'
            f"<b>{esc(row.subject)}</b>"
            f'<div class="meta">{esc(row.occurred_at)} · {esc(who)}{direction}'
            f" · {esc(row.source)}</div>"
            f"<div>{esc(snippet) if snippet else ''}</div></div>"
        )
    return "".join(items)
