"""Named processes: more than one way into the workflow, chosen per deal.

Why: a deal from a webinar is not worked like an inbound enquiry (seed 001's handling
options). A workflow file names processes beside its default ``[entries]``
(``[processes."Webinar follow-up"]``), each with its own entry steps, in the same graph
or in a graph of their own. A campaign may name the process its deals run; a deal
records the process it runs (``opportunities.process``; None is the default process).

Example::

    from oppkit.workflow.processes import entry_step_id
    entry_step_id(conn, "Webinar follow-up", "existing_account")
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from ..db.schema import process_entries, workflow_entries
from .model import WorkflowError


def process_names(conn: Connection) -> set[str]:
    """The named processes of the loaded workflow."""
    return set(conn.scalars(select(process_entries.c.process).distinct()))


def entry_step_id(conn: Connection, process: str | None, kind: str) -> int:
    """Where a new deal of ``process`` (None: the default) starts, for a new or an
    existing account; :class:`WorkflowError` when there is no such process or workflow."""
    if process is None:
        step_id = conn.scalar(
            select(workflow_entries.c.step_id).where(workflow_entries.c.kind == kind)
        )
        if step_id is None:
            raise WorkflowError("no workflow loaded: run `oppkit workflow load FILE` first")
        return step_id
    step_id = conn.scalar(
        select(process_entries.c.step_id).where(
            process_entries.c.process == process, process_entries.c.kind == kind
        )
    )
    if step_id is None:
        known = ", ".join(sorted(process_names(conn))) or "none"
        raise WorkflowError(f"no process {process!r} in the workflow (processes: {known})")
    return step_id
