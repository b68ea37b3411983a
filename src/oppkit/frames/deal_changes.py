"""Each deal as it stood at a baseline date, and a marker of what changed since.

Why: a reviewer asks "what is different since last week?" deal by deal, as Salesforce's
Pipeline Inspection and Clari show it: *new*, *moved in* or *moved out* of the view,
*amount up/down*, close date *pushed* or *pulled*, stage *forward/back*, *won*, *lost*.
The stage history holds every change with its old and new value, so the value a field
had at the baseline is the old value of its first change after the baseline (or today's
value when nothing changed). Owner and campaign are not in the history: they count as
today's.

Example::

    from oppkit.frames.review import changes_since
    changes = changes_since(kit, "2026-11-01", deals=frame)
    then = as_of(frame, changes, stage_status)       # the deals at the baseline
    frame["change"] = markers(frame, then, changes, stage_rank)
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

FIELDS = {"stage": "stage", "won": "stage", "lost": "stage", "amount": "amount",
          "close date": "close_date"}  # fmt: skip


def as_of(
    deals: pd.DataFrame, changes: pd.DataFrame, stage_status: Mapping[str, str]
) -> pd.DataFrame:
    """``deals`` (id, stage, amount, close_date, stage_status...) as they were before the
    changes in ``changes`` (:func:`~oppkit.frames.review.changes_since`); ``existed`` is
    False for a deal created since."""
    then = deals.copy()
    then["existed"] = True
    if changes.empty:
        return then
    index = {deal_id: i for i, deal_id in enumerate(then["id"])}
    new = changes[changes["change"] == "new deal"]
    then.loc[then["id"].isin(new["opportunity_id"]), "existed"] = False
    moves = changes[changes["change"].isin(list(FIELDS))]
    # changes come newest first: the last one per (deal, field) is the first after the baseline
    first = moves.assign(field=moves["change"].map(FIELDS)).drop_duplicates(
        ["opportunity_id", "field"], keep="last"
    )
    for deal_id, field, old in first[["opportunity_id", "field", "old"]].itertuples(
        index=False, name=None
    ):
        row = index.get(deal_id)
        if row is None:
            continue
        column = then.columns.get_loc(field)
        then.iat[row, column] = _typed(field, old)
    then["stage_status"] = [
        stage_status.get(stage, status) if stage is not None else status
        for stage, status in zip(then["stage"], then["stage_status"], strict=True)
    ]
    return then


def _typed(field: str, value: object) -> object:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if field == "amount":
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
    if field == "close_date":
        stamp = pd.to_datetime(value, errors="coerce")
        return None if pd.isna(stamp) else stamp.date()
    return value


def markers(now: pd.DataFrame, then: pd.DataFrame, stage_rank: Mapping[str, int]) -> list[str]:
    """One text per deal of ``now``: what changed against ``then`` (same ids and order),
    e.g. ``"amount ↑ · pushed"``; "" when nothing did."""
    out = []
    for cur, old in zip(now.itertuples(index=False), then.itertuples(index=False), strict=True):
        if not old.existed:
            out.append("new")
            continue
        seen: list[str] = []
        if cur.stage != old.stage:
            if cur.stage_status in ("won", "lost") and old.stage_status == "open":
                seen.append(str(cur.stage_status))
            else:
                ahead = stage_rank.get(cur.stage, 0) >= stage_rank.get(old.stage, 0)
                seen.append("stage forward" if ahead else "stage back")
        a, b = _number(old.amount), _number(cur.amount)
        if a != b:
            seen.append("amount ↑" if (b or 0) > (a or 0) else "amount ↓")
        was, is_ = _day(old.close_date), _day(cur.close_date)
        if was != is_:
            seen.append("pushed" if was is None or (is_ is not None and is_ > was) else "pulled")
        out.append(" · ".join(seen))
    return out


def _day(value: object) -> object:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date()  # type: ignore[arg-type]


def _number(value: object) -> float | None:
    if value is None or pd.isna(value):  # type: ignore[arg-type]
        return None
    return float(value)  # type: ignore[arg-type]


__all__ = ["as_of", "markers"]
