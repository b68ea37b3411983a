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

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import pandas as pd
from sqlalchemy import String, or_, select, type_coerce

from ..db.schema import accounts, activities, activity_people, opportunities, people

if TYPE_CHECKING:
    from ..kit import Kit

SENDER_ROLES = ("from", "organizer", "owner")
RECEIVER_ROLES = ("to", "cc", "attendee", "who")
DIRECTED_KINDS = ("email", "sms")  # one side writes, the other reads
MUTUAL_KINDS = ("meeting", "call", "event")  # everyone present takes part
DEFAULT_HALF_LIFE_DAYS = 30.0

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
    """The raw material: one row per (activity, person, role), plus who the people are."""

    rows: pd.DataFrame  # activity_id, person_id, role, occurred_at, kind
    people: pd.DataFrame  # person_id, email, name, is_internal, account
    now: pd.Timestamp
    half_life_days: float


def load_interactions(
    kit: Kit,
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
    stmt = (
        select(
            activity_people.c.activity_id,
            activity_people.c.person_id,
            activity_people.c.role,
            # raw value: pandas parses a column at once, faster than a Python call per row
            type_coerce(activities.c.occurred_at, String).label("occurred_at"),
            activities.c.kind,
        )
        .select_from(
            activity_people.join(
                activities, activities.c.id == activity_people.c.activity_id
            ).outerjoin(opportunities, opportunities.c.id == activities.c.opportunity_id)
        )
        .where(
            activities.c.is_deleted.is_(False),
            activities.c.is_auto.is_(False),
            activities.c.kind.in_(DIRECTED_KINDS + MUTUAL_KINDS),
            activity_people.c.role.in_(SENDER_ROLES + RECEIVER_ROLES),
            or_(activities.c.opportunity_id.is_(None), kit._visible()),
        )
    )
    if opportunity is not None:
        stmt = stmt.where(activities.c.opportunity_id.in_(kit._opportunity_ids(opportunity)))
    if account is not None:
        ids = kit._account_ids(account)
        of_account = select(opportunities.c.id).where(opportunities.c.account_id.in_(ids))
        stmt = stmt.where(
            or_(activities.c.account_id.in_(ids), activities.c.opportunity_id.in_(of_account))
        )
    with kit.engine.connect() as conn:
        result = conn.execute(stmt)
        rows = pd.DataFrame(
            result.fetchall(), columns=["activity_id", "person_id", "role", "occurred_at", "kind"]
        )
    rows["occurred_at"] = pd.to_datetime(rows["occurred_at"], utc=True, format="mixed")
    stamp = _now(now, rows)
    rows = rows[rows["occurred_at"] <= stamp]
    ids = rows["person_id"].unique().tolist()
    person_rows: list = []
    if ids:
        with kit.engine.connect() as conn:
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
        person_rows, columns=["person_id", "email", "name", "is_internal", "account"]
    )
    persons["is_internal"] = persons["is_internal"].astype(bool)
    # a person without an email (a Salesforce contact) is still one node, keyed by id
    persons["email"] = persons["email"].fillna("person:" + persons["person_id"].astype(str))
    return Interactions(rows.reset_index(drop=True), persons, stamp, float(half_life_days))


def _now(now: datetime | str | None, rows: pd.DataFrame) -> pd.Timestamp:
    """``now`` as UTC; by default the newest interaction (or the clock when there is none)."""
    if now is not None:
        stamp = pd.Timestamp(now)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if len(rows):
        return rows["occurred_at"].max()
    return pd.Timestamp.now(tz="UTC")


def _decay(occurred_at: pd.Series, now: pd.Timestamp, half_life_days: float) -> np.ndarray:
    age_days = (now - occurred_at).dt.total_seconds().to_numpy() / 86400.0
    return np.power(0.5, np.clip(age_days, 0, None) / half_life_days)


def _score(sent: np.ndarray, received: np.ndarray, mutual: np.ndarray) -> np.ndarray:
    total = sent + received + mutual
    balanced = 2 * np.minimum(sent, received) + mutual
    with np.errstate(invalid="ignore", divide="ignore"):
        reciprocity = np.where(total > 0, balanced / total, 0.0)
    return np.round(total * (1 + reciprocity) / 2, 4)


def person_scores(data: Interactions) -> pd.DataFrame:
    """One row per person: interactions, sent, received, meetings, last one, score."""
    rows = data.rows
    if rows.empty:
        return pd.DataFrame(columns=PERSON_COLUMNS)
    directed = rows["kind"].isin(DIRECTED_KINDS).to_numpy()
    sender = rows["role"].isin(SENDER_ROLES).to_numpy()
    weight = _decay(rows["occurred_at"], data.now, data.half_life_days)
    frame = pd.DataFrame(
        {
            "person_id": rows["person_id"],
            "activity_id": rows["activity_id"],
            "occurred_at": rows["occurred_at"],
            "sent": directed & sender,
            "received": directed & ~sender,
            "meetings": ~directed,
        }
    )
    frame["w_sent"] = weight * frame["sent"]
    frame["w_received"] = weight * frame["received"]
    frame["w_mutual"] = weight * frame["meetings"]
    # one person may hold two roles on one activity (to and cc): count the activity once
    per_activity = frame.groupby(["person_id", "activity_id"], sort=False).agg(
        occurred_at=("occurred_at", "first"),
        sent=("sent", "max"),
        received=("received", "max"),
        meetings=("meetings", "max"),
        w_sent=("w_sent", "max"),
        w_received=("w_received", "max"),
        w_mutual=("w_mutual", "max"),
    )
    per_person = per_activity.groupby(level="person_id").agg(
        interactions=("sent", "size"),
        sent=("sent", "sum"),
        received=("received", "sum"),
        meetings=("meetings", "sum"),
        last_interaction=("occurred_at", "max"),
        w_sent=("w_sent", "sum"),
        w_received=("w_received", "sum"),
        w_mutual=("w_mutual", "sum"),
    )
    per_person["score"] = _score(
        per_person["w_sent"].to_numpy(),
        per_person["w_received"].to_numpy(),
        per_person["w_mutual"].to_numpy(),
    )
    df = data.people.merge(per_person.reset_index(), on="person_id")
    for column in ("interactions", "sent", "received", "meetings"):
        df[column] = df[column].astype("int64")
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
    rows = rows.drop_duplicates(["activity_id", "person_id", "role"])
    sender = rows["role"].isin(SENDER_ROLES)
    senders = rows.loc[sender, ["activity_id", "person_id"]].drop_duplicates()
    receivers = rows.loc[~sender, ["activity_id", "person_id", "occurred_at", "kind"]]
    receivers = receivers.drop_duplicates(["activity_id", "person_id"])
    pairs = senders.merge(receivers, on="activity_id", suffixes=("_from", "_to"))
    unorganised = receivers[
        receivers["kind"].isin(MUTUAL_KINDS)
        & ~receivers["activity_id"].isin(senders["activity_id"])
    ]
    if len(unorganised):
        everyone = unorganised.merge(
            unorganised[["activity_id", "person_id"]], on="activity_id", suffixes=("_from", "_to")
        )
        everyone = everyone[everyone["person_id_from"] < everyone["person_id_to"]]
        pairs = pd.concat([pairs, everyone], ignore_index=True)
    pairs = pairs[pairs["person_id_from"] != pairs["person_id_to"]]
    if pairs.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    emails = data.people.set_index("person_id")["email"]
    names = data.people.set_index("person_id")["name"]
    src = emails.reindex(pairs["person_id_from"]).to_numpy()
    dst = emails.reindex(pairs["person_id_to"]).to_numpy()
    forward = src < dst
    weight = _decay(pairs["occurred_at"], data.now, data.half_life_days)
    directed = pairs["kind"].isin(DIRECTED_KINDS).to_numpy()
    frame = pd.DataFrame(
        {
            "email_a": np.where(forward, src, dst),
            "email_b": np.where(forward, dst, src),
            "occurred_at": pairs["occurred_at"].to_numpy(),
            "a_to_b": directed & forward,
            "b_to_a": directed & ~forward,
            "meetings": ~directed,
        }
    )
    frame["w_ab"] = weight * frame["a_to_b"]
    frame["w_ba"] = weight * frame["b_to_a"]
    frame["w_mutual"] = weight * frame["meetings"]
    grouped = frame.groupby(["email_a", "email_b"], sort=False).agg(
        a_to_b=("a_to_b", "sum"),
        b_to_a=("b_to_a", "sum"),
        meetings=("meetings", "sum"),
        last_interaction=("occurred_at", "max"),
        w_ab=("w_ab", "sum"),
        w_ba=("w_ba", "sum"),
        w_mutual=("w_mutual", "sum"),
    )
    df = grouped.reset_index()
    for column in ("a_to_b", "b_to_a", "meetings"):
        df[column] = df[column].astype("int64")
    df["interactions"] = df["a_to_b"] + df["b_to_a"] + df["meetings"]
    df["score"] = _score(df["w_ab"].to_numpy(), df["w_ba"].to_numpy(), df["w_mutual"].to_numpy())
    by_email = names.set_axis(emails.to_numpy())
    df["name_a"] = by_email.reindex(df["email_a"]).to_numpy()
    df["name_b"] = by_email.reindex(df["email_b"]).to_numpy()
    df["last_interaction"] = pd.to_datetime(df["last_interaction"], utc=True)
    df = df.sort_values(["score", "email_a", "email_b"], ascending=[False, True, True])
    return df[PAIR_COLUMNS].reset_index(drop=True)


def build_graph(persons: pd.DataFrame, pairs: pd.DataFrame) -> nx.Graph:
    """People as nodes (keyed by email), pairs as edges weighted by their interactions."""
    graph = nx.Graph()
    graph.add_nodes_from(
        (
            row.email,
            {
                "name": row.name,
                "email": row.email,
                "is_internal": bool(row.is_internal),
                "account": row.account,
                "engagement": float(row.score),
                "interactions": int(row.interactions),
                "sent": int(row.sent),
                "received": int(row.received),
                "meetings": int(row.meetings),
                "last_interaction": row.last_interaction,
            },
        )
        for row in persons.itertuples(index=False)
    )
    graph.add_edges_from(
        (
            row.email_a,
            row.email_b,
            {
                "weight": int(row.interactions),
                "a_to_b": int(row.a_to_b),
                "b_to_a": int(row.b_to_a),
                "meetings": int(row.meetings),
                "score": float(row.score),
                "last_interaction": row.last_interaction,
            },
        )
        for row in pairs.itertuples(index=False)
    )
    return graph
