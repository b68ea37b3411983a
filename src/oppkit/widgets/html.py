"""HTML for widgets, built from untrusted values: every value goes through :func:`esc`.

Why: subjects, snippets, names and stages come from mailboxes and Salesforce. A
``widgets.HTML`` value is inserted into the page as markup, so a subject such as
``<img src=x onerror=alert(1)>`` would run in the reader's browser unless escaped.
Nothing here interpolates a value without :func:`esc`.

Example::

    from oppkit.widgets.html import esc, table
    esc("<b>")                                    # '&lt;b&gt;'
    table(df, ["name", "stage"], {"name": "Deal"})
"""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any

import pandas as pd

DASH = "—"

STYLE = """
<style>
.oppkit-table{border-collapse:collapse;font-size:12px;width:100%}
.oppkit-table th{text-align:left;border-bottom:2px solid #ccc;padding:3px 6px;background:#f6f6f6}
.oppkit-table td{border-bottom:1px solid #eee;padding:3px 6px;vertical-align:top;
  line-height:1.3}
.oppkit-table td p{margin:0}
.oppkit-table td.oppkit-num{text-align:right;white-space:nowrap}
.oppkit-table td.oppkit-when{white-space:nowrap}
.oppkit-flag{display:inline-block;background:#fdecea;color:#a61b1b;border-radius:3px;
  padding:0 4px;margin:1px;font-size:11px}
.oppkit-metric{display:inline-block;min-width:110px;margin:4px 12px 4px 0;padding:6px 10px;
  border:1px solid #ddd;border-radius:6px;background:#fafafa}
.oppkit-metric .label{font-size:11px;color:#666}
.oppkit-metric .value{font-size:18px;font-weight:600}
.oppkit-feed-item{border-bottom:1px solid #eee;padding:6px 2px}
.oppkit-feed-item .meta{font-size:11px;color:#666}
.oppkit-kind{display:inline-block;min-width:56px;font-size:11px;color:#fff;background:#607d8b;
  border-radius:3px;padding:0 4px;text-align:center;margin-right:6px}
.oppkit-missing input, .oppkit-missing textarea{border:2px solid #d32f2f !important}
.oppkit-missing{border:2px solid #d32f2f}
.oppkit-message-error{color:#b71c1c;font-weight:600}
.oppkit-message-ok{color:#1b5e20;font-weight:600}
.oppkit-pending{display:inline-block;background:#fff4e0;color:#8a5300;border-radius:3px;
  padding:0 4px;font-size:11px}
.oppkit-conflict{display:inline-block;background:#fdecea;color:#a61b1b;border-radius:3px;
  padding:0 4px;font-size:11px;font-weight:600}
</style>
"""


def is_missing(value: Any) -> bool:
    """None, NaN, NaT and pandas' NA all count as missing."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        return bool(pd.isna(value)) if not isinstance(value, (list, tuple, dict)) else False
    except (TypeError, ValueError):
        return False


def text(value: Any) -> str:
    """A value as plain text: missing values as "—", dates as YYYY-MM-DD."""
    if type(value) is str:
        return value
    if is_missing(value):
        return DASH
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def esc(value: Any) -> str:
    """The value as text, HTML-escaped (quotes too), safe inside elements and attributes."""
    return html.escape(text(value), quote=True)


def money(value: Any, currency: str | None = None) -> str:
    """A deal size as text: ``120,000`` (with the currency when known), or "—"."""
    if is_missing(value):
        return DASH
    out = f"{float(value):,.0f}"
    return f"{out} {currency}" if currency and not is_missing(currency) else out


def metric(label: str, value: Any) -> str:
    """One metric box (label over value), escaped."""
    return (
        f'<div class="oppkit-metric"><div class="label">{esc(label)}</div>'
        f'<div class="value">{esc(value)}</div></div>'
    )


def error_html(message: Any) -> str:
    """A message that something failed (escaped), shown in red."""
    return f'<span class="oppkit-message-error">{esc(message)}</span>'


def ok_html(message: Any) -> str:
    """A message that something worked (escaped), shown in green."""
    return f'<span class="oppkit-message-ok">{esc(message)}</span>'


def flags_html(flags: Iterable[str]) -> str:
    return "".join(f'<span class="oppkit-flag">{esc(f)}</span>' for f in flags)


def cell_text(value: Any) -> str:
    """A value as a table shows it: ``80000.0`` as ``80,000``, ``0.25`` as is, newlines in
    a text as spaces, missing as "—", dates as :func:`text`."""
    if isinstance(value, float) and not is_missing(value) and value.is_integer():
        return f"{value:,.0f}"
    if isinstance(value, str):
        return " ".join(value.split()) if "\n" in value or "\r" in value else value
    return text(value)


def _cell_open(value: Any) -> str:
    """A cell's opening tag: dates and numbers are never wrapped over two lines."""
    if isinstance(value, (date, datetime, pd.Timestamp)) and not is_missing(value):
        return '<td class="oppkit-when">'
    if isinstance(value, numbers.Number) and not isinstance(value, bool) and not is_missing(value):
        return '<td class="oppkit-num">'
    return "<td>"


def table(
    df: pd.DataFrame,
    columns: Iterable[str],
    labels: Mapping[str, str] | None = None,
    formatters: Mapping[str, Callable[[Any], str]] | None = None,
    empty: str = "Nothing to show.",
) -> str:
    """An escaped HTML table of ``columns``; a formatter returns ready (escaped) HTML.

    >>> table(opps, ["name", "amount"], {"amount": "Deal size"}, {"amount": lambda v: esc(money(v))})
    """
    columns = list(columns)
    labels = labels or {}
    formatters = formatters or {}
    if df.empty:
        return f"<p><i>{esc(empty)}</i></p>"
    head = "".join(f"<th>{esc(labels.get(c, c))}</th>" for c in columns)
    rows = []
    for record in df[columns].itertuples(index=False, name=None):
        cells = []
        for column, value in zip(columns, record, strict=True):
            fmt = formatters.get(column)
            cells.append(f"{_cell_open(value)}{fmt(value) if fmt else esc(cell_text(value))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table class="oppkit-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
