"""One funnel: the order of every stage, and where each deal stands in the workflow.

Why shared (not in ``oppkit.workflow`` or ``oppkit.sync``): both a workflow load and a
Salesforce sync change stages and deals, and both must leave the same answer.

* :func:`renumber`: the workflow's order wins. Each workflow stage is followed by the
  Salesforce stages it maps onto itself (``[[stages]] salesforce = [...]``); Salesforce
  stages the workflow does not know follow, in Salesforce's own relative order
  (``stages.source_order``). Every stage gets its own place: no two share one.
* :func:`place_deals`: a deal whose Salesforce stage maps to a workflow stage
  (``stage_arrivals``) stands at that stage's arrival step, unless its step is already
  one of that workflow stage's (a person moved it there). A deal whose stage change
  waits to be pushed (write-back) stays where the person put it. Every move writes a
  stage_history row saying where it came from.

Example::

    with write_transaction(engine) as conn:
        renumber(conn)
        placed, unplaced = place_deals(conn, origin="sync")
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from .db.ownership import WAITING
from .db.schema import opportunities, outbound_changes, stage_arrivals, stages, steps
from .history import record_history

WORKFLOW = "workflow"  # stages.source of a stage the workflow defines
CHUNK = 500


def renumber(conn: Connection) -> None:
    """Give every stage its place in the one funnel (see the module docstring)."""
    rows = conn.execute(
        select(
            stages.c.id, stages.c.name, stages.c.source, stages.c.sort_order, stages.c.source_order
        )  # fmt: skip
    ).all()
    if not rows:
        return
    mapped_to = dict(
        conn.execute(
            select(stage_arrivals.c.stage_name, stages.c.name)
            .join(steps, steps.c.id == stage_arrivals.c.step_id)
            .join(stages, stages.c.id == steps.c.stage_id)
        ).all()
    )
    big = 1 << 30

    def own_order(row) -> tuple:  # noqa: ANN001
        order = row.source_order if row.source_order is not None else row.sort_order
        return (order if order is not None else big, row.name)

    workflow = sorted(
        (r for r in rows if r.source == WORKFLOW),
        key=lambda r: (r.sort_order if r.sort_order is not None else big, r.name),
    )
    workflow_names = {r.name for r in workflow}
    others = sorted((r for r in rows if r.source != WORKFLOW), key=own_order)
    ordered = []
    for stage in workflow:
        ordered.append(stage)
        ordered += [r for r in others if mapped_to.get(r.name) == stage.name]
    ordered += [r for r in others if mapped_to.get(r.name) not in workflow_names]
    changes = [
        {"_id": r.id, "_order": place}
        for place, r in enumerate(ordered, start=1)
        if r.sort_order != place
    ]
    for change in changes:
        conn.execute(
            update(stages).where(stages.c.id == change["_id"]).values(sort_order=change["_order"])
        )


@dataclass
class Placement:
    """What :func:`place_deals` did: deals moved to a step, deals it could not place."""

    placed: list[int]
    unplaced: list[tuple[int, str, str | None]]  # (id, name, stage)


def place_deals(
    conn: Connection,
    opportunity_ids: Iterable[int] | None = None,
    *,
    origin: str,
    force: bool = False,
    by_id: int | None = None,
) -> Placement:
    """Put deals (these, or every deal) at the workflow step their stage arrives at.

    ``force``: place them even when a stage change of theirs waits to be pushed (the
    person dropped it, or kept Salesforce's value in a conflict).
    """
    arrivals = {
        name: (step_id, step_name, stage_name)
        for name, step_id, step_name, stage_name in conn.execute(
            select(stage_arrivals.c.stage_name, steps.c.id, steps.c.name, stages.c.name)
            .join(steps, steps.c.id == stage_arrivals.c.step_id)
            .join(stages, stages.c.id == steps.c.stage_id)
        )
    }
    if not arrivals:
        return Placement([], [])
    step_stage = dict(
        conn.execute(
            select(steps.c.id, stages.c.name).join(stages, stages.c.id == steps.c.stage_id)
        ).all()
    )
    status = dict(conn.execute(select(stages.c.name, stages.c.status)).all())
    columns = (
        opportunities.c.id, opportunities.c.name, opportunities.c.stage,
        opportunities.c.step, opportunities.c.step_id,
    )  # fmt: skip
    base = select(*columns).where(opportunities.c.is_deleted.is_(False))
    if opportunity_ids is None:
        found = list(conn.execute(base))
    else:
        ids, found = sorted(set(opportunity_ids) - {None}), []
        for start in range(0, len(ids), CHUNK):
            found += conn.execute(base.where(opportunities.c.id.in_(ids[start : start + CHUNK])))
    waiting = set()
    if not force and found:
        ids = [r.id for r in found]
        for start in range(0, len(ids), CHUNK):
            waiting |= set(
                conn.scalars(
                    select(outbound_changes.c.opportunity_id).where(
                        outbound_changes.c.opportunity_id.in_(ids[start : start + CHUNK]),
                        outbound_changes.c.field == "stage",
                        outbound_changes.c.status.in_(WAITING),
                    )
                )
            )
    result = Placement([], [])
    for deal in found:
        arrival = arrivals.get(deal.stage)
        if arrival is None:
            if deal.step_id is None and status.get(deal.stage, "open") == "open":
                result.unplaced.append((deal.id, deal.name, deal.stage))
            continue
        step_id, step_name, workflow_stage = arrival
        if deal.id in waiting or (
            deal.step_id is not None and step_stage.get(deal.step_id) == workflow_stage
        ):
            continue  # already in that stage (a person moved it), or a push is on its way
        conn.execute(
            update(opportunities)
            .where(opportunities.c.id == deal.id)
            .values(step_id=step_id, step=step_name)
        )
        record_history(conn, deal.id, [("step", deal.step, step_name)], origin=origin, by_id=by_id)
        result.placed.append(deal.id)
    return result


__all__ = ["Placement", "place_deals", "renumber"]
