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

import numpy as np
import pandas as pd

FIELDS = {"stage": "stage", "won": "stage", "lost": "stage", "amount": "amount",
          "close date": "close_date"}  # fmt: skip


def as_of(
    deals: pd.DataFrame, changes: pd.DataFrame, stage_status: Mapping[str, str]
) -> pd.DataFrame:
    """``deals`` (id, stage, amount, close_date, stage_status...) as they were before the
    changes in ``changes`` (:func:`~oppkit.frames.review.changes_since`); ``existed`` is
    False for a deal created since. Set-wise: one pass per field, no loop per deal."""
    then = deals.copy()
    then["existed"] = ~then["id"].isin(
        changes.loc[changes["change"] == "new deal", "opportunity_id"]
    )
    moves = changes[changes["change"].isin(list(FIELDS))]
    if moves.empty:
        return then
    # changes come newest first: the last one per (deal, field) is the first after the baseline
    first = moves.assign(field=moves["change"].map(FIELDS)).drop_duplicates(
        ["opportunity_id", "field"], keep="last"
    )
    for field, rows in first.groupby("field"):
        old = pd.Series(rows["old"].to_numpy(), index=rows["opportunity_id"].to_numpy())
        if field == "amount":
            old = pd.to_numeric(old, errors="coerce")
        elif field == "close_date":
            old = pd.to_datetime(old, errors="coerce").dt.date.astype(object)
            old = old.where(old.notna(), None)
        hit = then["id"].isin(old.index).to_numpy()
        values = then[field].astype(object).to_numpy(copy=True)
        values[hit] = old.reindex(then["id"][hit]).to_numpy()
        then[field] = values
    then["stage_status"] = [
        stage_status.get(stage, status) if stage is not None else status
        for stage, status in zip(then["stage"], then["stage_status"], strict=True)
    ]
    return then


def markers(now: pd.DataFrame, then: pd.DataFrame, stage_rank: Mapping[str, int]) -> list[str]:
    """One text per deal of ``now``: what changed against ``then`` (same ids and order),
    e.g. ``"amount ↑ · pushed"``; "" when nothing did. Compared column by column; text
    is built only for the deals that changed."""
    existed = then["existed"].to_numpy(dtype=bool)
    stage_now, stage_then = now["stage"].astype(object), then["stage"].astype(object)
    stage_moved = (stage_now.fillna("") != stage_then.fillna("")).to_numpy()
    closed = (
        now["stage_status"].isin(["won", "lost"]).to_numpy()
        & (then["stage_status"] == "open").to_numpy()
    )
    ranks = pd.Series(stage_rank, dtype="int64")
    rank_now = stage_now.map(ranks).fillna(0).to_numpy()
    rank_then = stage_then.map(ranks).fillna(0).to_numpy()
    a = pd.to_numeric(then["amount"], errors="coerce").astype(float).to_numpy()
    b = pd.to_numeric(now["amount"], errors="coerce").astype(float).to_numpy()
    amount_moved = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    was = pd.to_datetime(then["close_date"], errors="coerce").to_numpy()
    is_ = pd.to_datetime(now["close_date"], errors="coerce").to_numpy()
    close_moved = ~((was == is_) | (pd.isna(was) & pd.isna(is_)))
    out = [""] * len(now)
    status = now["stage_status"].to_numpy()
    for i in np.flatnonzero(~existed | stage_moved | amount_moved | close_moved):
        if not existed[i]:
            out[i] = "new"
            continue
        seen = []
        if stage_moved[i]:
            if closed[i]:
                seen.append(str(status[i]))
            else:
                seen.append("stage forward" if rank_now[i] >= rank_then[i] else "stage back")
        if amount_moved[i]:
            seen.append("amount ↑" if np.nan_to_num(b[i]) > np.nan_to_num(a[i]) else "amount ↓")
        if close_moved[i]:
            later = pd.isna(was[i]) or (not pd.isna(is_[i]) and is_[i] > was[i])
            seen.append("pushed" if later else "pulled")
        out[i] = " · ".join(seen)
    return out


__all__ = ["as_of", "markers"]
