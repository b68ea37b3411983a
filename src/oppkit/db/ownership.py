"""Who owns each column of a synced row: the one rule between a sync and a person.

A row that a source syncs (a Salesforce Opportunity, a mailbox's message) is also a row
people work on in oppkit. Without a rule the next sync silently undoes their work. The
rule: every column has one owner. A sync writes only the columns its source owns; the
columns oppkit owns it writes when it creates the row (a first value, e.g. a deal that
is private in Salesforce arrives private) and never again. The sync writer
(:mod:`oppkit.sync.writer`) and the Kit (which says what is pending, what may be
edited) both read this module; nothing else decides it.

Salesforce owns what it syncs of a deal (name, stage, amount, close date, probability,
owner, account, campaign, type, lead source, its custom fields); a change to one of
those made in oppkit goes back to Salesforce (write-back) or is refused.

Example::

    from oppkit.db.ownership import synced_columns
    synced_columns("opportunities", ["name", "amount", "is_private"])  # ["name", "amount"]
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, literal_column

from .schema import activities, stages

PERSON_LINK = "person"  # activities.opportunity_link: a person chose the deal (or none)

# outbound_changes.status: a change to a Salesforce-owned field on its way there
PENDING, CONFLICT, PUSHED, DROPPED = "pending", "conflict", "pushed", "dropped"
WAITING = (PENDING, CONFLICT)  # not in Salesforce yet: shown beside Salesforce's value

# Columns of synced tables that oppkit owns: a sync sets them on insert, never after.
OPPKIT_OWNED: dict[str, frozenset[str]] = {
    # privacy (oppkit.actions.set_private), the workflow step (oppkit.workflow)
    "opportunities": frozenset({"is_private", "step", "step_id", "process"}),
    # the process a campaign's deals run (oppkit.campaigns)
    "campaigns": frozenset({"process"}),
    # the lifecycle stage and its manual lock (oppkit.workflow.lifecycle)
    "accounts": frozenset({"lifecycle_stage", "stage_locked"}),
    "people": frozenset({"lifecycle_stage", "stage_locked"}),
    # a stage's place in the one funnel (oppkit.funnel numbers it; Salesforce's own
    # order is source_order)
    "stages": frozenset({"sort_order"}),
    # notes on an agreement (oppkit.agreements); the rest of a synced Contract is Salesforce's
    "agreements": frozenset({"description"}),
}

# Fields of a Salesforce Opportunity a person may change in oppkit, and the Salesforce
# field each goes to: with write-back on they are pushed, else refused (never kept
# locally only to be overwritten by the next sync).
SALESFORCE_EDITABLE: dict[str, str] = {
    "name": "Name",
    "stage": "StageName",
    "amount": "Amount",
    "close_date": "CloseDate",
    "probability": "Probability",
    "next_step": "NextStep",
    # the deal's campaign (oppkit.campaigns.assign): oppkit's campaign id here, the
    # campaign's Salesforce Id on the wire (oppkit.sync.salesforce_push)
    "campaign_id": "CampaignId",
}

# A contact's or account's lifecycle stage is oppkit's (OPPKIT_OWNED above); the field
# of its Salesforce record that holds its status (named in settings:
# oppkit.config.status_field) is Salesforce's. With write-back on, a stage set in oppkit
# whose status differs from Salesforce's is queued as this field of outbound_changes.
LIFECYCLE_STATUS = "lifecycle_status"

# Rows a person settled in oppkit keep these columns whatever a sync reports: an
# activity whose deal a person chose (oppkit.actions.link_activity).
KEPT_WHILE: dict[str, tuple[ColumnElement[bool], frozenset[str]]] = {
    "activities": (
        # a constant in the SQL (not a parameter): the bulk upsert binds row values only
        activities.c.opportunity_link == literal_column(f"'{PERSON_LINK}'"),
        frozenset({"account_id", "opportunity_id", "opportunity_link"}),
    ),
    # a stage the workflow defines (it may share its name with a Salesforce stage): what
    # it is (open, won...) and its probability are the workflow's
    "stages": (
        stages.c.source == literal_column("'workflow'"),
        frozenset({"status", "probability", "source"}),
    ),
}


def synced_columns(table: str, columns: Iterable[str]) -> list[str]:
    """Of ``columns``, those a sync may update on an existing row of ``table``."""
    owned = OPPKIT_OWNED.get(table, frozenset())
    return [c for c in columns if c not in owned]


def kept(table: str) -> tuple[ColumnElement[bool], frozenset[str]] | None:
    """(condition on the stored row, columns) a sync leaves as they are while it holds."""
    return KEPT_WHILE.get(table)


__all__ = [
    "CONFLICT",
    "DROPPED",
    "PENDING",
    "PUSHED",
    "WAITING",
    "KEPT_WHILE",
    "LIFECYCLE_STATUS",
    "OPPKIT_OWNED",
    "PERSON_LINK",
    "SALESFORCE_EDITABLE",
    "kept",
    "synced_columns",
]
