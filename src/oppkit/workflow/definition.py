"""Workflow files: read TOML, validate everything, write to the database, export back.

Why a file: a team keeps its sales process under version control and reviews changes
like code. ``oppkit workflow load FILE`` validates the whole file and names every
problem (one per line) before anything is written; ``oppkit workflow export`` writes
the definition in the database back as the same format, so the two round-trip.

Format (see ``default_workflow.toml`` in this package for a complete one)::

    [[stages]]                      # open stages in funnel order; won, lost, archived
    name = "Qualification"
    status = "open"
    probability = 20
    salesforce = ["Needs Analysis"]   # Salesforce stages that are this stage too
    arrive_at = "Discovery"           # where a deal arriving in them from Salesforce stands
    [[stages.actions]]                # what a meeting or call on a deal in this stage leads to
    name = "Schedule follow-up call"  #   (oppkit.stage_actions; the stage above is theirs)
    kind = "activity"                 # activity: a new activity on the deal's timeline
    activity_kind = "call"            #   task, call, meeting or note
    subject = "Follow-up: {activity_subject}"
    [[stages.actions]]
    name = "Send meeting summary letter"
    kind = "letter"                   # letter: a letter rendered from the templates
    subject = "Summary of our meeting on {activity_date}"
    template = '''
    Dear {contact_name}, thank you for meeting us about {name} ...'''

    [[stage_actions]]                 # an action on a stage the file does not define
    stage = "Id. Decision Makers"     # (one already in the database, synced from Salesforce)
    name = "Map the buying committee"
    kind = "activity"
    activity_kind = "task"
    subject = "Who decides on {name}?"

    [[steps]]
    name = "Discovery"
    stage = "Qualification"
    attributes = ["amount", "close_date"]     # what the step shows

    [[transitions]]
    name = "Qualify"
    from = "Discovery"
    to = "Qualified"
    requires = ["amount", "close_date"]
    triggers = ["create_account"]
    [[transitions.communications]]
    channel = "email"
    to = "{owner_email}"
    subject = "{name} is qualified"
    body = "Next: a proposal for {amount:,.0f} {currency}."

    [entries]
    new_account = "New lead"
    existing_account = "Account review"

    [follow_ons]
    "Up-sell" = "Up-sell discovery"

    [processes."Webinar follow-up"]   # optional: more processes, each with its entries
    new_account = "Webinar lead"      # (a campaign names the process its deals run)
    existing_account = "Webinar lead"

    [[lifecycle.contact]]            # optional: the defaults apply without [lifecycle]
    name = "Engaged"
    category = "in progress"
    external_status = "Working - Contacted"
    [[lifecycle.rules]]
    kind = "contact"
    event = "reply_received"
    stage = "Engaged"

A step may also name a stage that is already in the database (synced from Salesforce).
A stage without ``arrive_at`` places arriving deals at its first step. Loading places
every synced deal (:func:`oppkit.funnel.place_deals`) and numbers one funnel
(:func:`oppkit.funnel.renumber`): the workflow's order, each stage followed by the
Salesforce stages mapped onto it, then the Salesforce stages it does not know.
"""

from __future__ import annotations

import json
import tomllib
from collections import deque
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from ..db.schema import (
    follow_ons,
    lifecycle_rules,
    lifecycle_stages,
    opportunities,
    process_entries,
    stage_actions,
    stage_arrivals,
    stages,
    steps,
    transitions,
    workflow_entries,
)
from .communications import template_problem
from .model import (
    ACTION_ACTIVITY_KINDS,
    ACTION_KINDS,
    CATEGORIES,
    CHANNELS,
    CLOSED,
    ENTRY_KINDS,
    EVENTS,
    LIFECYCLE_KINDS,
    STAGE_STATUSES,
    Communication,
    Definition,
    InvalidWorkflow,
    LifecycleRule,
    LifecycleStage,
    Stage,
    StageAction,
    Step,
    Transition,
)
from .triggers import trigger_known

STAGE_SOURCE = "workflow"


def default_workflow_text() -> str:
    """The workflow file shipped with oppkit."""
    return resources.files("oppkit.workflow").joinpath("default_workflow.toml").read_text("utf-8")


# --- parsing ------------------------------------------------------------------------


def _names(value: Any, where: str, problems: list[str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append(f"{where}: must be a list of names")
        return []
    return [v.strip() for v in value]


def _text(item: dict, key: str) -> str:
    value = item.get(key)
    return value.strip() if isinstance(value, str) else ""


def _tables(data: dict, key: str, problems: list[str]) -> list[dict]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        problems.append(f"{key}: must be an array of tables ([[{key}]])")
        return []
    return value


def _parse_lifecycle(data: dict, problems: list[str]) -> tuple[list, list]:
    section = data.get("lifecycle")
    if section is None:
        default = tomllib.loads(default_workflow_text())
        section = default["lifecycle"]
    lc_stages, rules = [], []
    for kind in LIFECYCLE_KINDS:
        seen: set[str] = set()
        for i, item in enumerate(_tables(section, kind, problems), start=1):
            name = _text(item, "name")
            where = f"lifecycle {kind} stage {name or f'#{i}'!r}"
            if not name:
                problems.append(f"{where}: has no name")
                continue
            if name in seen:
                problems.append(f"{where}: defined twice")
            seen.add(name)
            category = _text(item, "category")
            if category not in CATEGORIES:
                problems.append(
                    f"{where}: category {category!r} is not one of {', '.join(CATEGORIES)}"
                )
            lc_stages.append(
                LifecycleStage(
                    kind=kind,
                    name=name,
                    category=category,
                    external_status=_text(item, "external_status") or None,
                    locks=bool(item.get("locks", False)),
                )  # fmt: skip
            )
    for item in _tables(section, "rules", problems):
        kind, event, stage = _text(item, "kind"), _text(item, "event"), _text(item, "stage")
        where = f"lifecycle rule {kind or '?'} {event or '?'}"
        if kind not in LIFECYCLE_KINDS:
            problems.append(f"{where}: kind must be contact or account")
        if event not in EVENTS:
            problems.append(f"{where}: unknown event {event!r} (known: {', '.join(EVENTS)})")
        if not any(s.kind == kind and s.name == stage for s in lc_stages):
            problems.append(f"{where}: moves to unknown {kind} stage {stage!r}")
        rules.append(LifecycleRule(kind=kind, event=event, stage=stage))
    return lc_stages, rules


def _parse_communications(value: Any, where: str, problems: list[str]) -> list[Communication]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        problems.append(f"{where}: communications must be tables ([[transitions.communications]])")
        return []
    result = []
    for i, item in enumerate(value, start=1):
        here = f"{where} communication #{i}"
        channel = _text(item, "channel") or "email"
        if channel not in CHANNELS:
            problems.append(f"{here}: channel {channel!r} is not one of {', '.join(CHANNELS)}")
        comm = Communication(
            channel=channel, to=_text(item, "to"), body=item.get("body") or "",
            subject=item.get("subject"), html=item.get("html"),
        )  # fmt: skip
        if not comm.to:
            problems.append(f"{here}: has no recipient (to)")
        if not comm.body and not comm.html:
            problems.append(f"{here}: has no body")
        for field in ("to", "subject", "body", "html"):
            template = getattr(comm, field)
            if template and (problem := template_problem(template)):
                problems.append(f"{here}: {field}: {problem}")
        result.append(comm)
    return result


def _parse_action(item: dict, stage: str, i: int, problems: list[str]) -> StageAction:
    """One ``[[stages.actions]]`` (or ``[[stage_actions]]``) table; its problems listed."""
    name = _text(item, "name")
    where = f"stage {stage!r} action {name or f'#{i}'!r}"
    if not name:
        problems.append(f"{where}: has no name")
    kind = _text(item, "kind")
    if kind not in ACTION_KINDS:
        problems.append(f"{where}: kind {kind!r} is not one of {', '.join(ACTION_KINDS)}")
    texts: dict[str, str | None] = {}
    for key in ("activity_kind", "subject", "template"):
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"{where}: {key} must be text")
            value = None
        texts[key] = value if value and value.strip() else None
    activity_kind = texts["activity_kind"] and texts["activity_kind"].strip()
    known = ", ".join(ACTION_ACTIVITY_KINDS)
    if kind == "activity" and activity_kind is None:
        problems.append(f"{where}: has no activity_kind (one of {known})")
    elif kind == "activity" and activity_kind not in ACTION_ACTIVITY_KINDS:
        problems.append(f"{where}: activity_kind {activity_kind!r} is not one of {known}")
    elif kind == "letter" and activity_kind is not None:
        problems.append(f"{where}: a letter has no activity_kind")
    if kind in ACTION_KINDS and texts["subject"] is None:
        problems.append(f"{where}: has no subject")
    if kind == "letter" and texts["template"] is None:
        problems.append(f"{where}: has no template")
    for key in ("subject", "template"):
        if texts[key] and (problem := template_problem(texts[key])):
            problems.append(f"{where}: {key}: {problem}")
    subject = texts["subject"] and texts["subject"].strip()
    return StageAction(stage, name, kind, activity_kind, subject, texts["template"])


def _parse_actions(
    data: dict, stage_tables: list[tuple[str, Any]], known: set[str], problems: list[str]
) -> list[StageAction]:
    """The actions under each stage, then those naming a stage of the database."""
    found: list[tuple[str, dict]] = []
    for stage, value in stage_tables:
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            problems.append(f"stage {stage!r}: actions must be tables ([[stages.actions]])")
            continue
        for item in value:
            named = _text(item, "stage")
            if named and named != stage:
                problems.append(
                    f"stage {stage!r} action {_text(item, 'name')!r}: sits under stage "
                    f"{stage!r} but names stage {named!r}"
                )
            found.append((stage, item))
    for item in _tables(data, "stage_actions", problems):
        stage = _text(item, "stage")
        if not stage:
            problems.append(f"stage action {_text(item, 'name') or '?'!r}: has no stage")
            continue
        if stage not in known:
            problems.append(
                f"stage {stage!r} action {_text(item, 'name') or '?'!r}: stage {stage!r} is "
                "neither in the file nor in the database"
            )
        found.append((stage, item))
    result: list[StageAction] = []
    counts: dict[str, int] = {}
    for stage, item in found:
        counts[stage] = counts.get(stage, 0) + 1
        action = _parse_action(item, stage, counts[stage], problems)
        if action.name and any(a.stage == stage and a.name == action.name for a in result):
            problems.append(f"stage {stage!r} action {action.name!r}: defined twice")
        result.append(action)
    return result


def parse_definition(text: str, known_stages: dict[str, str] | None = None) -> Definition:
    """A validated :class:`Definition` from TOML text; raises :class:`InvalidWorkflow`.

    ``known_stages`` (name -> status) are stages already in the database that steps may
    use without defining them.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidWorkflow([f"not valid TOML: {exc}"]) from exc
    problems: list[str] = []
    definition = Definition()

    stage_tables: list[tuple[str, Any]] = []  # each stage's [[stages.actions]]
    for i, item in enumerate(_tables(data, "stages", problems), start=1):
        name = _text(item, "name")
        if not name:
            problems.append(f"stage #{i}: has no name")
            continue
        stage_tables.append((name, item.get("actions")))
        status = _text(item, "status") or "open"
        if status not in STAGE_STATUSES:
            problems.append(
                f"stage {name!r}: status {status!r} is not one of {', '.join(STAGE_STATUSES)}"
            )
        if definition.stage(name):
            problems.append(f"stage {name!r}: defined twice")
        probability = item.get("probability")
        if probability is not None and not isinstance(probability, (int, float)):
            problems.append(f"stage {name!r}: probability must be a number")
            probability = None
        probability = None if probability is None else float(probability)
        mapped = _names(item.get("salesforce"), f"stage {name!r} salesforce", problems)
        definition.stages.append(
            Stage(name, status, probability, mapped, _text(item, "arrive_at") or None)
        )
    statuses = {**(known_stages or {}), **{s.name: s.status for s in definition.stages}}
    mapped_by: dict[str, str] = {}
    for stage in definition.stages:
        for other in stage.salesforce:
            if other in mapped_by or (other != stage.name and definition.stage(other)):
                problems.append(f"stage {stage.name!r}: Salesforce stage {other!r} is mapped twice")
            mapped_by[other] = stage.name
    definition.stage_actions = _parse_actions(
        data, stage_tables, set(statuses) | set(mapped_by), problems
    )

    for i, item in enumerate(_tables(data, "steps", problems), start=1):
        name = _text(item, "name")
        if not name:
            problems.append(f"step #{i}: has no name")
            continue
        if definition.step(name):
            problems.append(f"step {name!r}: defined twice")
        stage = _text(item, "stage")
        if not stage:
            problems.append(f"step {name!r}: has no stage")
        elif stage not in statuses:
            problems.append(f"step {name!r}: belongs to unknown stage {stage!r}")
        definition.steps.append(
            Step(name, stage, _names(item.get("attributes"), f"step {name!r} attributes", problems),
                 item.get("description"))
        )  # fmt: skip
    step_names = {s.name for s in definition.steps}
    for stage in definition.stages:
        if stage.arrive_at is None:
            continue
        step = definition.step(stage.arrive_at)
        if step is None:
            problems.append(
                f"stage {stage.name!r}: arrive_at names missing step {stage.arrive_at!r}"
            )
        elif step.stage != stage.name:
            problems.append(
                f"stage {stage.name!r}: arrive_at step {stage.arrive_at!r} is of stage {step.stage!r}"
            )

    for i, item in enumerate(_tables(data, "transitions", problems), start=1):
        name = _text(item, "name")
        where = f"transition {name or f'#{i}'!r}"
        if not name:
            problems.append(f"{where}: has no name")
        source, target = _text(item, "from"), _text(item, "to")
        if source not in step_names:
            problems.append(f"{where}: comes from missing step {source!r}")
        if target not in step_names:
            problems.append(f"{where}: goes to missing step {target!r}")
        if any(t.name == name and t.from_step == source for t in definition.transitions):
            problems.append(f"{where}: defined twice from step {source!r}")
        triggers = _names(item.get("triggers"), f"{where} triggers", problems)
        for trigger in triggers:
            if not trigger_known(trigger):
                problems.append(
                    f"{where}: unknown trigger {trigger!r} (register it or write module:function)"
                )
        definition.transitions.append(
            Transition(
                name=name,
                from_step=source,
                to_step=target,
                requires=_names(item.get("requires"), f"{where} requires", problems),
                triggers=triggers,
                communications=_parse_communications(item.get("communications"), where, problems),
            )  # fmt: skip
        )

    entries = data.get("entries") or {}
    if not isinstance(entries, dict) or not any(_text(entries, k) for k in ENTRY_KINDS):
        problems.append("no entry: set [entries] new_account = STEP and existing_account = STEP")
    else:
        first = _text(entries, "new_account") or _text(entries, "existing_account")
        for kind in ENTRY_KINDS:
            step = _text(entries, kind) or first
            if step not in step_names:
                problems.append(f"entry {kind}: missing step {step!r}")
            definition.entries[kind] = step
        for kind in set(entries) - set(ENTRY_KINDS):
            problems.append(f"entry {kind!r}: unknown (use new_account and existing_account)")

    processes = data.get("processes") or {}
    if not isinstance(processes, dict):
        problems.append('processes: must be tables of [processes."Name"] entries')
        processes = {}
    for name, process in processes.items():
        where = f"process {name!r}"
        if not isinstance(process, dict) or not any(_text(process, k) for k in ENTRY_KINDS):
            problems.append(f"{where}: set new_account = STEP and existing_account = STEP")
            continue
        first = _text(process, "new_account") or _text(process, "existing_account")
        definition.processes[name] = {}
        for kind in ENTRY_KINDS:
            step = _text(process, kind) or first
            if step not in step_names:
                problems.append(f"{where}: entry {kind}: missing step {step!r}")
            definition.processes[name][kind] = step
        for kind in set(process) - set(ENTRY_KINDS):
            problems.append(
                f"{where}: entry {kind!r}: unknown (use new_account and existing_account)"
            )

    follow = data.get("follow_ons") or {}
    if not isinstance(follow, dict):
        problems.append("follow_ons: must be a table of name = step")
        follow = {}
    for name, step in follow.items():
        if not isinstance(step, str) or step.strip() not in step_names:
            problems.append(f"follow-on {name!r}: missing step {step!r}")
        definition.follow_ons[name] = str(step).strip()

    definition.lifecycle_stages, definition.lifecycle_rules = _parse_lifecycle(data, problems)
    problems.extend(_graph_problems(definition, statuses))
    if problems:
        raise InvalidWorkflow(problems)
    for stage in definition.stages:  # said once, as a load gives it back
        stage.arrive_at = arrival_steps(definition).get(stage.name)
    return definition


def arrival_steps(definition: Definition) -> dict[str, str]:
    """Salesforce stage name -> the step a deal arriving in it is placed at: each stage
    with steps (its ``arrive_at``, else its first step) for its own name and its
    ``salesforce`` names."""
    found: dict[str, str] = {}
    for stage in definition.stages:
        step = stage.arrive_at or next(
            (s.name for s in definition.steps if s.stage == stage.name), None
        )
        if step is None:
            continue
        for name in dict.fromkeys([stage.name, *stage.salesforce]):
            found.setdefault(name, step)
    return found


def reachable_steps(starts: list[str], edges: dict[str, list[str]]) -> set[str]:
    seen, todo = set(starts), deque(starts)
    while todo:
        for nxt in edges.get(todo.popleft(), []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _graph_problems(definition: Definition, statuses: dict[str, str]) -> list[str]:
    """Steps nobody can reach, and open steps from which no deal can ever close."""
    names = [s.name for s in definition.steps]
    forward: dict[str, list[str]] = {}
    backward: dict[str, list[str]] = {}
    for t in definition.transitions:
        if t.from_step in names and t.to_step in names:
            forward.setdefault(t.from_step, []).append(t.to_step)
            backward.setdefault(t.to_step, []).append(t.from_step)
    starts = [
        s
        for s in [*definition.entries.values(), *definition.follow_ons.values(),
                  *(step for p in definition.processes.values() for step in p.values()),
                  *(stage.arrive_at for stage in definition.stages if stage.arrive_at)]
        if s in names
    ]  # fmt: skip
    problems = []
    if starts:
        reachable = reachable_steps(starts, forward)
        problems += [
            f"step {n!r}: unreachable from any entry or follow-on"
            for n in names
            if n not in reachable
        ]
    closing = [s.name for s in definition.steps if statuses.get(s.stage) in CLOSED]
    can_close = reachable_steps(closing, backward)
    problems += [
        f"step {s.name!r}: open, but no won or lost stage can be reached from it"
        for s in definition.steps
        if statuses.get(s.stage) == "open" and s.name not in can_close
    ]
    return problems


def read_file(path: Path | str, conn: Connection | None = None) -> Definition:
    """Parse and validate a workflow file (stages already in ``conn``'s database count)."""
    text = Path(path).read_text(encoding="utf-8")
    known = dict(conn.execute(select(stages.c.name, stages.c.status)).all()) if conn else None
    return parse_definition(text, known)


# --- the database -------------------------------------------------------------------


def save(conn: Connection, definition: Definition) -> None:
    """Write ``definition`` (already validated) over the one in the database.

    Stages are upserted by name (shared with Salesforce); steps by name. A step left out
    of the file that opportunities still stand on is kept inactive, not deleted.
    """
    existing = dict(conn.execute(select(stages.c.name, stages.c.id)).all())
    # open stages first, in funnel order, then the closed ones
    ordered = sorted(definition.stages, key=lambda s: s.status != "open")
    for position, stage in enumerate(ordered, start=1):
        values = {
            "status": stage.status,
            "sort_order": position,
            "probability": stage.probability,
            "is_active": True,
            "source": STAGE_SOURCE,
        }
        if stage.name in existing:
            conn.execute(update(stages).where(stages.c.id == existing[stage.name]).values(**values))
        else:
            existing[stage.name] = conn.execute(
                insert(stages).values(name=stage.name, **values).returning(stages.c.id)
            ).scalar_one()

    conn.execute(delete(transitions))
    conn.execute(delete(workflow_entries))
    conn.execute(delete(process_entries))
    conn.execute(delete(follow_ons))
    step_ids = dict(conn.execute(select(steps.c.name, steps.c.id)).all())
    for i, step in enumerate(definition.steps, start=1):
        values = {
            "stage_id": existing[step.stage], "attributes": step.attributes or None,
            "description": step.description, "sort_order": i, "is_active": True,
        }  # fmt: skip
        if step.name in step_ids:
            conn.execute(update(steps).where(steps.c.id == step_ids[step.name]).values(**values))
        else:
            step_ids[step.name] = conn.execute(
                insert(steps).values(name=step.name, **values).returning(steps.c.id)
            ).scalar_one()
    kept = {s.name for s in definition.steps}
    for name, step_id in list(step_ids.items()):
        if name in kept:
            continue
        in_use = conn.scalar(
            select(opportunities.c.id).where(opportunities.c.step_id == step_id).limit(1)
        )
        if in_use:
            conn.execute(update(steps).where(steps.c.id == step_id).values(is_active=False))
        else:
            conn.execute(delete(steps).where(steps.c.id == step_id))
    for i, t in enumerate(definition.transitions, start=1):
        conn.execute(
            insert(transitions).values(
                name=t.name,
                from_step_id=step_ids[t.from_step],
                to_step_id=step_ids[t.to_step],
                required_attributes=t.requires or None,
                triggers=t.triggers or None,
                communications=[c.as_dict() for c in t.communications] or None,
                sort_order=i,
            )  # fmt: skip
        )
    for kind, step in definition.entries.items():
        conn.execute(insert(workflow_entries).values(kind=kind, step_id=step_ids[step]))
    for name, entries in definition.processes.items():
        for kind, step in entries.items():
            conn.execute(
                insert(process_entries).values(process=name, kind=kind, step_id=step_ids[step])
            )
    for name, step in definition.follow_ons.items():
        conn.execute(insert(follow_ons).values(name=name, step_id=step_ids[step]))
    conn.execute(delete(stage_arrivals))
    for name, step in arrival_steps(definition).items():
        conn.execute(insert(stage_arrivals).values(stage_name=name, step_id=step_ids[step]))

    conn.execute(delete(stage_actions))
    for i, a in enumerate(definition.stage_actions, start=1):
        conn.execute(
            insert(stage_actions).values(
                stage_name=a.stage,
                name=a.name,
                kind=a.kind,
                activity_kind=a.activity_kind,
                subject=a.subject,
                template=a.template,
                sort_order=i,
            )  # fmt: skip
        )

    conn.execute(delete(lifecycle_rules))
    conn.execute(delete(lifecycle_stages))
    for i, s in enumerate(definition.lifecycle_stages, start=1):
        conn.execute(
            insert(lifecycle_stages).values(
                kind=s.kind,
                name=s.name,
                category=s.category,
                external_status=s.external_status,
                locks=s.locks,
                sort_order=i,
            )  # fmt: skip
        )
    for r in definition.lifecycle_rules:
        conn.execute(insert(lifecycle_rules).values(kind=r.kind, event=r.event, stage=r.stage))


def load(conn: Connection) -> Definition:
    """The definition stored in the database (empty when none was loaded)."""
    definition = Definition()
    step_rows = conn.execute(
        select(steps.c.id, steps.c.name, stages.c.name.label("stage"), steps.c.attributes,
               steps.c.description)
        .join(stages, stages.c.id == steps.c.stage_id)
        .where(steps.c.is_active.is_(True))
        .order_by(steps.c.sort_order, steps.c.id)
    ).all()  # fmt: skip
    names = {r.id: r.name for r in step_rows}
    used = {r.stage for r in step_rows}
    for r in conn.execute(
        select(stages.c.name, stages.c.status, stages.c.probability, stages.c.source).order_by(
            stages.c.sort_order, stages.c.name
        )
    ):
        if r.source == STAGE_SOURCE or r.name in used:
            definition.stages.append(Stage(r.name, r.status, r.probability))
    arrivals = conn.execute(
        select(stage_arrivals.c.stage_name, steps.c.name, stages.c.name)
        .join(steps, steps.c.id == stage_arrivals.c.step_id)
        .join(stages, stages.c.id == steps.c.stage_id)
        .order_by(stage_arrivals.c.stage_name)
    ).all()
    source_order = dict(conn.execute(select(stages.c.name, stages.c.source_order)).all())
    for stage in definition.stages:
        mine = [(name, step) for name, step, owner in arrivals if owner == stage.name]
        stage.arrive_at = next((step for _name, step in mine), None)
        stage.salesforce = sorted(
            (name for name, _step in mine if name != stage.name),
            key=lambda n: (source_order.get(n) is None, source_order.get(n) or 0, n),
        )
    definition.stages.sort(key=lambda s: s.status != "open")  # stable: funnel order first
    for r in step_rows:
        definition.steps.append(Step(r.name, r.stage, list(r.attributes or []), r.description))
    for r in conn.execute(select(transitions).order_by(transitions.c.sort_order, transitions.c.id)):
        if r.from_step_id in names and r.to_step_id in names:
            definition.transitions.append(
                Transition(
                    name=r.name,
                    from_step=names[r.from_step_id],
                    to_step=names[r.to_step_id],
                    requires=list(r.required_attributes or []),
                    triggers=list(r.triggers or []),
                    communications=[Communication(**c) for c in r.communications or []],
                )  # fmt: skip
            )
    for kind, step_id in conn.execute(select(workflow_entries.c.kind, workflow_entries.c.step_id)):
        definition.entries[kind] = names.get(step_id, "")
    definition.entries = {k: definition.entries[k] for k in ENTRY_KINDS if k in definition.entries}
    for name, kind, step_id in conn.execute(
        select(
            process_entries.c.process, process_entries.c.kind, process_entries.c.step_id
        ).order_by(process_entries.c.process, process_entries.c.kind.desc())
    ):
        definition.processes.setdefault(name, {})[kind] = names.get(step_id, "")
    for name, step_id in conn.execute(
        select(follow_ons.c.name, follow_ons.c.step_id).order_by(follow_ons.c.id)
    ):
        definition.follow_ons[name] = names.get(step_id, "")
    for r in conn.execute(select(lifecycle_stages).order_by(lifecycle_stages.c.sort_order)):
        definition.lifecycle_stages.append(
            LifecycleStage(r.kind, r.name, r.category, r.external_status, bool(r.locks))
        )
    for r in conn.execute(select(lifecycle_rules).order_by(lifecycle_rules.c.id)):
        definition.lifecycle_rules.append(LifecycleRule(r.kind, r.event, r.stage))
    for r in conn.execute(
        select(stage_actions).order_by(stage_actions.c.sort_order, stage_actions.c.id)
    ):
        definition.stage_actions.append(
            StageAction(r.stage_name, r.name, r.kind, r.activity_kind, r.subject, r.template)
        )
    return definition


# --- export -------------------------------------------------------------------------


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    text = str(value)
    plain = all(ch in "\n\t" or 32 <= ord(ch) != 127 for ch in text) and "\r" not in text
    if "\n" in text and plain and "'''" not in text and not text.endswith("'"):
        return "'''\n" + text + "'''"  # a literal multi-line string reads like the message
    return json.dumps(text, ensure_ascii=False)  # JSON escapes are valid TOML escapes


def _table(header: str, items: dict[str, Any]) -> list[str]:
    lines = [header]
    lines += [f"{key} = {_value(v)}" for key, v in items.items() if v not in (None, [], "")]
    return lines + [""]


def _action_items(a: StageAction) -> dict[str, Any]:
    return {"name": a.name, "kind": a.kind, "activity_kind": a.activity_kind,
            "subject": a.subject, "template": a.template}  # fmt: skip


def export_text(definition: Definition) -> str:
    """The definition as a workflow file (the format :func:`parse_definition` reads)."""
    out = ["# oppkit workflow: load with `oppkit workflow load FILE`", ""]
    for s in definition.stages:
        out += _table(
            "[[stages]]",
            {"name": s.name, "status": s.status, "probability": s.probability,
             "salesforce": s.salesforce, "arrive_at": s.arrive_at},
        )  # fmt: skip
        for a in definition.actions(s.name):  # belongs to the [[stages]] just above
            out += _table("[[stages.actions]]", _action_items(a))
    defined = {s.name for s in definition.stages}
    for a in definition.stage_actions:
        if a.stage not in defined:
            out += _table("[[stage_actions]]", {"stage": a.stage, **_action_items(a)})
    for s in definition.steps:
        out += _table("[[steps]]", {"name": s.name, "stage": s.stage, "attributes": s.attributes,
                                    "description": s.description})  # fmt: skip
    for t in definition.transitions:
        out += _table(
            "[[transitions]]",
            {"name": t.name, "from": t.from_step, "to": t.to_step, "requires": t.requires,
             "triggers": t.triggers},
        )  # fmt: skip
        for c in t.communications:
            out += _table("[[transitions.communications]]", {
                "channel": c.channel, "to": c.to, "subject": c.subject, "body": c.body, "html": c.html,
            })  # fmt: skip
    out += _table("[entries]", dict(definition.entries))
    for name, entries in definition.processes.items():
        out += _table(f"[processes.{json.dumps(name, ensure_ascii=False)}]", dict(entries))
    out += _table(
        "[follow_ons]",
        {json.dumps(k, ensure_ascii=False): v for k, v in definition.follow_ons.items()},
    )
    if not definition.lifecycle_stages:
        out += ["[lifecycle]", ""]
    for s in definition.lifecycle_stages:
        out += _table(f"[[lifecycle.{s.kind}]]", {
            "name": s.name, "category": s.category, "external_status": s.external_status,
            "locks": s.locks or None,
        })  # fmt: skip
    for r in definition.lifecycle_rules:
        out += _table("[[lifecycle.rules]]", {"kind": r.kind, "event": r.event, "stage": r.stage})
    return "\n".join(out).rstrip("\n") + "\n"
