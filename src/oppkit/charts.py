"""Small helpers for matplotlib charts that show text from the database.

Why: matplotlib reads a label holding two ``$`` as mathtext and raises on bad math
(``"Save $5 on $10"`` is a parse error, not a label). Names of campaigns, deals and stages
come from Salesforce, mail and people, so every such text goes through :func:`plain_text`
before it becomes a label, a title or a legend entry. No matplotlib import here: importing
oppkit stays free of it.

Example::

    ax.set_xticks(range(len(names)), [plain_text(n) for n in names])
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["plain_text"]


def plain_text(value: Any, max_chars: int | None = None) -> str:
    """``value`` as a label matplotlib shows as written: every ``$`` escaped (no
    mathtext), ``None``/NA as an empty text, cut to ``max_chars`` with an ellipsis.

    >>> plain_text("Save $5 on $10")
    'Save \\\\$5 on \\\\$10'
    """
    missing = value is None or (not isinstance(value, str) and bool(pd.isna(value)))
    text = "" if missing else str(value)
    if max_chars is not None and len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    return text.replace("$", r"\$")
