"""Who talks to whom: interactions read from ``activities`` + ``activity_people``, scored.

Why: an account is a web of people; the analyst wants to see who carries the
relationship, who only gets cc'd, and which threads went quiet. The graph and the
scores are computed with SQL filters and pandas group-bys (never a Python loop per
interaction), so 100,000 interactions stay well under a second.

Scores (per person and per pair) are "recent interactions, weighted by reciprocity":

* each interaction counts ``0.5 ** (age_days / half_life_days)`` as of ``now``
  (30 days ago counts half with the default half-life);
* emails (and SMS) are directed: ``sent`` and ``received`` are summed apart;
  meetings and calls count for both sides (they are mutual by nature);
* ``reciprocity = (2 * min(sent, received) + mutual) / total`` is 1 for a balanced
  conversation and 0 for one-way mail, and ``score = total * (1 + reciprocity) / 2``,
  so a one-way stream scores half of the same volume going both ways.

Example::

    rel = kit.relationship_graph(account="acme-robotics.example")
    rel.graph.nodes["ava.patel@northwind.example"]["engagement"]
    kit.engagement(account="acme-robotics.example", pairs=True).head()
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Connection,
    Float,
    Text,
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.sql import ColumnElement, Select

from ..db.schema import accounts, activities, activity_people, opportunities, people
from ..scope import ScopeLike, scope_of

SENDER_ROLES = ("from", "organizer", "owner")
RECEIVER_ROLES = ("to", "cc", "attendee", "who")
DIRECTED_KINDS = ("email", "sms")  # one side writes, the other reads
MUTUAL_KINDS = ("meeting", "call", "event")  # everyone present takes part
DEFAULT_HALF_LIFE_DAYS = 30.0
PACK = 1 << 32  # activity_id * PACK + person_id * 4 + sender flag (person ids below 2**30)

PERSON_COLUMNS = [
    "email", "name", "is_internal", "account", "interactions", "sent", "received",
    "meetings", "last_interaction", "score",
]  # fmt: skip
PAIR_COLUMNS = [
    "email_a", "email_b", "name_a", "name_b", "a_to_b", "b_to_a", "meetings", "interactions",
    "last_interaction", "score",
]  # fmt: skip


@dataclass
class Interactions:
    """The raw material: one row per (activity, person, role), plus who the people are.

    ``rows`` holds numbers only (fast to read and group): activity_id, person_id,
    is_sender, t (seconds since the epoch, UTC), directed (an email or SMS).
    """

    rows: pd.DataFrame
    people: pd.DataFrame  # person_id, email, name, is_internal, account
    now: pd.Timestamp
    half_life_days: float


def _epoch_seconds(dialect: str) -> ColumnElement:
    """occurred_at as float seconds since 1970 (stored as naive UTC on both databases)."""
    if dialect == "sqlite":
        # julianday is a float of days: exact to the millisecond SQLite stores, no finer
        return func.round((func.julianday(activities.c.occurred_at) - 2440587.5) * 86400.0, 3)
    return cast(extract("epoch", activities.c.occurred_at), Float)


def _numbers(conn: Connection, columns: list[ColumnElement], stmt: Select) -> np.ndarray:
    """The numeric ``columns`` over ``stmt``'s rows, as a float array (rows x columns).

    Why: the rows arrive as one comma-separated text (``group_concat`` / ``string_agg``)
    that numpy parses in C. Fetched one tuple at a time, 300,000 rows make the driver
    build a Python object per value: a third of the graph's time. Integers stay exact
    below 2**53 (activity ids times 2; seconds since 1970 to the millisecond).
    """
    text = cast(columns[0], Text)
    for column in columns[1:]:
        text = text.concat(",").concat(cast(column, Text))
    if conn.dialect.name == "postgresql":
        joined = func.string_agg(text, literal(","))
    else:
        joined = func.group_concat(text, literal(","))
    blob = conn.execute(stmt.with_only_columns(joined)).scalar()
    if not blob:
        return np.empty((0, len(columns)))
    return np.fromstring(blob, dtype=np.float64, sep=",").reshape(-1, len(columns))


def load_interactions(
    scope: ScopeLike,
    *,
    account: Any = None,
    opportunity: Any = None,
    now: datetime | str | None = None,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
) -> Interactions:
    """Participation rows of the interactions the Kit's user may see (privacy as timeline).

    Activities of a private opportunity count only for its owner and members; auto-replies,
    bounces and deleted rows never count; nothing after ``now`` counts.
    """
    scope = scope_of(scope)
    # Two reads: each activity once (its time and kind), then who took part as one packed
    # integer per row. The time is the costly column (parsed per row); reading it per
    # activity rather than per participant saves a third of the read.
    shown = and_(
        activities.c.is_deleted.is_(False),
        activities.c.is_auto.is_(False),
        activities.c.kind.in_(DIRECTED_KINDS + MUTUAL_KINDS),
        or_(activities.c.opportunity_id.is_(None), scope.visible()),
    )
    if opportunity is not None:
        shown = and_(shown, activities.c.opportunity_id.in_(scope.opportunity_ids(opportunity)))
    if account is not None:
        ids = scope.account_ids(account)
        of_account = select(opportunities.c.id).where(opportunities.c.account_id.in_(ids))
        shown = and_(
            shown,
            or_(activities.c.account_id.in_(ids), activities.c.opportunity_id.in_(of_account)),
        )
    joined = activities.outerjoin(opportunities, opportunities.c.id == activities.c.opportunity_id)
    acts = select(activities.c.id).select_from(joined).where(shown)
    act_key = cast(activities.c.id, BigInteger) * 2 + case(
        (activities.c.kind.in_(DIRECTED_KINDS), 1), else_=0
    )
    parts = (
        select(activity_people.c.activity_id)
        .select_from(activity_people.join(joined, activities.c.id == activity_people.c.activity_id))
        .where(shown, activity_people.c.role.in_(SENDER_ROLES + RECEIVER_ROLES))
    )
    # who took part: activity, person and sender? packed into one integer per row
    part_key = (
        cast(activity_people.c.activity_id, BigInteger) * literal(PACK, BigInteger)
        + activity_people.c.person_id * 4
        + case((activity_people.c.role.in_(SENDER_ROLES), 2), else_=0)
    )
    with scope.engine.connect() as conn:
        act = _numbers(conn, [act_key, _epoch_seconds(scope.engine.dialect.name)], acts)
        key = _numbers(conn, [part_key], parts)[:, 0].astype(np.int64)
    order = np.argsort(act[:, 0], kind="stable")
    act_key, act_t = act[order, 0].astype(np.int64), act[order, 1]
    activity_id = key // PACK
    # each participant's activity; a row whose activity a concurrent sync added between
    # the two reads has none and is left out
    act_id = act_key >> 1
    at = np.searchsorted(act_id, activity_id)
    found = at < len(act_id)
    found[found] = act_id[at[found]] == activity_id[found]
    key, activity_id, at = key[found], activity_id[found], at[found]
    rows = pd.DataFrame(
        {
            "activity_id": activity_id,
            "person_id": (key % PACK) // 4,
            "is_sender": (key & 2) > 0,
            "t": act_t[at],
            "directed": (act_key[at] & 1) > 0,
        }
    )
    stamp = _now(now, rows)
    rows = rows[rows["t"] <= stamp.timestamp() + 1e-3].reset_index(drop=True)
    ids = rows["person_id"].unique().tolist()
    person_rows: list = []
    if ids:
        with scope.engine.connect() as conn:
            for chunk in range(0, len(ids), 5000):
                person_rows += conn.execute(
                    select(
                        people.c.id,
                        people.c.email,
                        people.c.name,
                        people.c.is_internal,
                        accounts.c.name,
                    )  # fmt: skip
                    .select_from(people.outerjoin(accounts, accounts.c.id == people.c.account_id))
                    .where(people.c.id.in_(ids[chunk : chunk + 5000]))
                ).all()
    persons = pd.DataFrame(
        [tuple(r) for r in person_rows],
        columns=["person_id", "email", "name", "is_internal", "account"],
    )
    persons["is_internal"] = persons["is_internal"].astype(bool)
    # a person without an email (a Salesforce contact) is still one node, keyed by id
    persons["email"] = persons["email"].fillna("person:" + persons["person_id"].astype(str))
    return Interactions(rows, persons, stamp, float(half_life_days))


def _now(now: datetime | str | None, rows: pd.DataFrame) -> pd.Timestamp:
    """``now`` as UTC; by default the newest interaction (or the clock when there is none)."""
    if now is not None:
        stamp = pd.Timestamp(now)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if len(rows):
        return pd.Timestamp(round(rows["t"].max() * 1e6), unit="us", tz="UTC")
    return pd.Timestamp.now(tz="UTC")


def _decay(t: np.ndarray, now: pd.Timestamp, half_life_days: float) -> np.ndarray:
    age_days = (now.timestamp() - t) / 86400.0
    return np.power(0.5, np.clip(age_days, 0, None) / half_life_days)


def _stamps(t: pd.Series) -> pd.Series:
    return pd.to_datetime(np.round(t.to_numpy() * 1e6).astype("int64"), unit="us", utc=True)


def _score(sent: np.ndarray, received: np.ndarray, mutual: np.ndarray) -> np.ndarray:
    total = sent + received + mutual
    balanced = 2 * np.minimum(sent, received) + mutual
    with np.errstate(invalid="ignore", divide="ignore"):
        reciprocity = np.where(total > 0, balanced / total, 0.0)
    return np.round(total * (1 + reciprocity) / 2, 4)


def person_scores(data: Interactions) -> pd.DataFrame:
    """One row per person: interactions, sent, received, meetings, last one, score."""
    # one person may hold two roles on one activity (to and cc): count the activity once
    rows = data.rows.drop_duplicates(["person_id", "activity_id", "is_sender"])
    rows = rows.sort_values("is_sender", ascending=False).drop_duplicates(
        ["person_id", "activity_id"]
    )
    if rows.empty:
        return pd.DataFrame(columns=PERSON_COLUMNS)
    directed, sender = rows["directed"].to_numpy(), rows["is_sender"].to_numpy()
    weight = _decay(rows["t"].to_numpy(), data.now, data.half_life_days)
    sent, received, mutual = directed & sender, directed & ~sender, ~directed
    frame = pd.DataFrame(
        {
            "person_id": rows["person_id"].to_numpy(),
            "t": rows["t"].to_numpy(),
            "sent": sent.astype("int64"),
            "received": received.astype("int64"),
            "meetings": mutual.astype("int64"),
            "w_sent": weight * sent,
            "w_received": weight * received,
            "w_mutual": weight * mutual,
        }
    )
    per_person = frame.groupby("person_id").agg(
        interactions=("t", "size"),
        sent=("sent", "sum"),
        received=("received", "sum"),
        meetings=("meetings", "sum"),
        t=("t", "max"),
        w_sent=("w_sent", "sum"),
        w_received=("w_received", "sum"),
        w_mutual=("w_mutual", "sum"),
    )
    per_person["score"] = _score(
        per_person["w_sent"].to_numpy(),
        per_person["w_received"].to_numpy(),
        per_person["w_mutual"].to_numpy(),
    )
    per_person["last_interaction"] = _stamps(per_person["t"]).to_numpy()
    df = data.people.merge(per_person.reset_index(), on="person_id")
    df["last_interaction"] = pd.to_datetime(df["last_interaction"], utc=True)
    df = df.sort_values(["score", "email"], ascending=[False, True])
    return df[PERSON_COLUMNS].reset_index(drop=True)


def pair_scores(data: Interactions) -> pd.DataFrame:
    """One row per pair of people (``email_a`` < ``email_b``): mail each way, meetings, score.

    Emails go from the sender to each to/cc recipient; meetings and calls join the
    organizer (or owner) with each attendee, or every attendee pairwise when no one
    organised it.
    """
    rows = data.rows
    if rows.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    sender = rows["is_sender"].to_numpy()
    senders = rows.loc[sender, ["activity_id", "person_id"]].drop_duplicates()
    receivers = rows.loc[~sender, ["activity_id", "person_id", "t", "directed"]]
    receivers = receivers.drop_duplicates(["activity_id", "person_id"])
    pairs = senders.merge(receivers, on="activity_id", suffixes=("_from", "_to"))
    unorganised = receivers[
        ~receivers["directed"] & ~receivers["activity_id"].isin(senders["activity_id"])
    ]
    if len(unorganised):
        everyone = unorganised.merge(
            unorganised[["activity_id", "person_id"]], on="activity_id", suffixes=("_to", "_from")
        )
        everyone = everyone[everyone["person_id_from"] < everyone["person_id_to"]]
        pairs = pd.concat([pairs, everyone[pairs.columns]], ignore_index=True)
    pairs = pairs[pairs["person_id_from"] != pairs["person_id_to"]]
    if pairs.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    # order each pair by email: a is the smaller address
    rank = data.people.sort_values("email").reset_index(drop=True)
    position = pd.Series(rank.index.to_numpy(), index=rank["person_id"].to_numpy())
    src = position.reindex(pairs["person_id_from"].to_numpy()).to_numpy()
    dst = position.reindex(pairs["person_id_to"].to_numpy()).to_numpy()
    forward = src < dst
    directed = pairs["directed"].to_numpy()
    weight = _decay(pairs["t"].to_numpy(), data.now, data.half_life_days)
    a_to_b, b_to_a = directed & forward, directed & ~forward
    frame = pd.DataFrame(
        {
            "key": np.minimum(src, dst).astype("int64") * (1 << 32) + np.maximum(src, dst),
            "t": pairs["t"].to_numpy(),
            "a_to_b": a_to_b.astype("int64"),
            "b_to_a": b_to_a.astype("int64"),
            "meetings": (~directed).astype("int64"),
            "w_ab": weight * a_to_b,
            "w_ba": weight * b_to_a,
            "w_mutual": weight * ~directed,
        }
    )
    df = frame.groupby("key").sum()
    df["t"] = frame.groupby("key")["t"].max()
    df = df.reset_index()
    key = df["key"].to_numpy()
    a, b = key >> 32, key & 0xFFFFFFFF
    df["email_a"], df["email_b"] = rank["email"].to_numpy()[a], rank["email"].to_numpy()[b]
    df["name_a"], df["name_b"] = rank["name"].to_numpy()[a], rank["name"].to_numpy()[b]
    df["interactions"] = df["a_to_b"] + df["b_to_a"] + df["meetings"]
    df["score"] = _score(df["w_ab"].to_numpy(), df["w_ba"].to_numpy(), df["w_mutual"].to_numpy())
    df["last_interaction"] = _stamps(df["t"])
    df = df.sort_values(["score", "email_a", "email_b"], ascending=[False, True, True])
    return df[PAIR_COLUMNS].reset_index(drop=True)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while tens of thousands of attribute dicts are made.

    None of them can form a cycle, yet every 700 new objects the collector would walk the
    young heap again: with a big pandas session that is half the time of a graph build.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_graph(persons: pd.DataFrame, pairs: pd.DataFrame) -> nx.Graph:
    """People as nodes (keyed by email), pairs as edges weighted by their interactions."""
    with _collector_paused():
        return _build_graph(persons, pairs)


def _build_graph(persons: pd.DataFrame, pairs: pd.DataFrame) -> nx.Graph:
    graph = nx.Graph()
    node_columns = {
        "name": "name", "email": "email", "is_internal": "is_internal", "account": "account",
        "engagement": "score", "interactions": "interactions", "sent": "sent",
        "received": "received", "meetings": "meetings", "last_interaction": "last_interaction",
    }  # fmt: skip
    graph.add_nodes_from(
        zip(persons["email"].tolist(), _records(persons, node_columns), strict=True)
    )
    edge_columns = {
        "weight": "interactions", "a_to_b": "a_to_b", "b_to_a": "b_to_a",
        "meetings": "meetings", "score": "score", "last_interaction": "last_interaction",
    }  # fmt: skip
    graph.add_edges_from(
        zip(
            pairs["email_a"].tolist(),
            pairs["email_b"].tolist(),
            _records(pairs, edge_columns),
            strict=True,
        )
    )
    return graph


def _records(df: pd.DataFrame, columns: dict[str, str]) -> list[dict]:
    """Attribute dicts from whole columns (``tolist`` is C; a loop over rows is not)."""
    values = []
    for column in columns.values():
        series = df[column]
        if column == "last_interaction":
            values.append(list(pd.DatetimeIndex(series)))  # pandas Timestamps
        elif column == "is_internal":
            values.append([bool(v) for v in series.tolist()])
        else:
            values.append(series.tolist())
    keys = list(columns)
    return [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]
