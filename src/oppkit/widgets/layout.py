"""Sizes and shared CSS that keep the apps inside a notebook: scroll areas, pagers, buttons
whose text always fits.

Why one module: a notebook output has no height of its own, so every list an app shows
sits in a scroll area of a fixed maximum height (:func:`scroll_layout`), long lists are
paged (:class:`Pager`), and buttons size to their text (:func:`fit_button`: auto width,
wrapping, the full text as tooltip) instead of cutting it.

Example::

    from oppkit.widgets.layout import LAYOUT_STYLE, Pager, fit_button, scroll_layout
    feed = widgets.HTML(layout=scroll_layout(420))
    pager = Pager(300, page_size=25)          # pager.label.value: 'items 1–25 of 300'
    button = fit_button("Negotiate → Negotiation")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

FEED_HEIGHT = 420  # px: the news feed's scroll area
LIST_HEIGHT = 360  # px: alerts and tasks, people
FORMS_HEIGHT = 480  # px: the workflow tab's transition forms
GRAPH_HEIGHT = 460  # px: a graph drawn inside the deal view
PAGE_SIZE = 25  # feed items a page
FIT_CLASS = "oppkit-fit"

LAYOUT_STYLE = f"""
<style>
.oppkit-opportunity-view{{max-width:100%;box-sizing:border-box}}
.oppkit-opportunity-view .widget-tab, .oppkit-opportunity-view .jupyter-widget-tab{{max-width:100%}}
.oppkit-scroll{{overflow:auto;box-sizing:border-box}}
button.{FIT_CLASS}, .{FIT_CLASS}.jupyter-button, .{FIT_CLASS}.widget-button{{
  width:auto;max-width:100%;height:auto;min-height:28px;white-space:normal;
  overflow:visible;text-overflow:clip;line-height:1.3;padding:4px 10px;text-align:center}}
.oppkit-overdue{{display:inline-block;background:#fdecea;color:#a61b1b;border-radius:3px;
  padding:0 4px;font-size:11px;font-weight:600}}
.oppkit-required{{color:#b71c1c;font-weight:600}}
.oppkit-confirm{{border:1px solid #f0c36d;background:#fffbea;border-radius:4px;padding:6px 8px}}
.oppkit-feed-item.oppkit-highlight{{background:#fff8e1;outline:2px solid #f0c36d}}
.oppkit-pager-label{{font-size:12px;color:#444;padding:0 8px}}
.oppkit-source{{font-size:11px;color:#444}}
</style>
"""


def scroll_layout(max_height: int, **more: Any) -> widgets.Layout:
    """A layout that scrolls past ``max_height`` px (both ways) and never gets wider than
    its container."""
    return widgets.Layout(max_height=f"{max_height}px", overflow="auto", max_width="100%", **more)


def fit_button(text: str, *, tooltip: str | None = None, **kwargs: Any) -> widgets.Button:
    """A button as wide as its text (wrapping when the row is narrower), the full text
    (or ``tooltip``) as its tooltip."""
    button = widgets.Button(
        description=text,
        tooltip=tooltip or text,
        layout=widgets.Layout(
            width="auto", max_width="100%", height="auto", align_self="flex-start"
        ),
        **kwargs,
    )
    button.add_class(FIT_CLASS)
    return button


class Pager(widgets.HBox):
    """Newer / Older buttons and "items 1–25 of 300" for a list shown a page at a time.

    ``on_change`` runs after the page changed (by a button or :meth:`show`).
    """

    def __init__(
        self, total: int = 0, *, page_size: int = PAGE_SIZE,
        on_change: Callable[[], Any] | None = None,
    ) -> None:  # fmt: skip
        self.page_size = page_size
        self.total = total
        self.page = 0
        self.on_change = on_change
        self.newer_button = fit_button("◀ Newer", tooltip="newer items")
        self.older_button = fit_button("Older ▶", tooltip="older items")
        self.label = widgets.HTML()
        self.label.add_class("oppkit-pager-label")
        self.newer_button.on_click(lambda _b: self.show(self.page - 1))
        self.older_button.on_click(lambda _b: self.show(self.page + 1))
        super().__init__(
            [self.newer_button, self.label, self.older_button],
            layout={"align_items": "center", "flex_flow": "row wrap"},
        )
        self.add_class("oppkit-pager")
        self.reset(total)

    @property
    def pages(self) -> int:
        """How many pages (at least one)."""
        return max(1, -(-self.total // self.page_size))

    @property
    def bounds(self) -> tuple[int, int]:
        """The page's first and past-last positions (0-based)."""
        start = self.page * self.page_size
        return start, min(start + self.page_size, self.total)

    def reset(self, total: int, page: int = 0) -> None:
        """A new list of ``total`` items, at ``page`` (without running ``on_change``)."""
        self.total = total
        self.page = min(max(page, 0), self.pages - 1)
        self._draw()

    def show(self, page: int) -> None:
        """Go to ``page`` (clamped), then run ``on_change``."""
        self.page = min(max(page, 0), self.pages - 1)
        self._draw()
        if self.on_change is not None:
            self.on_change()

    def _draw(self) -> None:
        start, end = self.bounds
        self.label.value = f"items {start + 1}–{end} of {self.total}" if self.total else "no items"
        self.newer_button.disabled = self.page == 0
        self.older_button.disabled = self.page >= self.pages - 1
        self.layout.display = "flex" if self.total > self.page_size else "none"
