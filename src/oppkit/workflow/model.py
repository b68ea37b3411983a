"""The workflow's vocabulary: stages, steps, transitions, entries, follow-ons, lifecycle.

Why plain dataclasses: a definition is read from TOML, validated, written to the
database and read back; the engine, the graph and the exporter all share this one
in-memory shape and never parse TOML or SQL themselves.

Example::

    from oppkit.workflow.definition import parse_definition
    definition = parse_definition(toml_text)   # raises InvalidWorkflow listing every problem
    definition.step("Proposal sent").stage     # 'Proposal/Price Quote'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, OppkitError

STAGE_STATUSES = ("open", "won", "lost", "archived")
CLOSED = ("won", "lost")
ENTRY_KINDS = ("new_account", "existing_account")
CHANNELS = ("email", "sms")
LIFECYCLE_KINDS = ("contact", "account")
CATEGORIES = ("succeeded", "in progress", "not succeeded")
# Timeline events lifecycle rules react to (see oppkit.workflow.lifecycle).
EVENTS = (
    "email_sent", "reply_received", "meeting_booked", "bounce", "unsubscribe",
    "opportunity_opened", "opportunity_won",
)  # fmt: skip
# Opportunity attributes stored in columns of their own; any other name lives in
# opportunities.attributes (JSON). "account" and "owner" can be required, not set.
COLUMN_ATTRIBUTES = (
    "amount", "close_date", "probability", "currency", "opportunity_type", "lead_source",
)  # fmt: skip
REFERENCE_ATTRIBUTES = ("account", "owner")
# Stage actions (oppkit.stage_actions): what a person does from a meeting or call on a deal.
ACTION_KINDS = ("activity", "letter")
ACTION_ACTIVITY_KINDS = ("task", "call", "meeting", "note")  # what an activity action makes


class WorkflowError(OppkitError):
    """The workflow cannot do what was asked (nothing was changed)."""

    exit_code = 2


class InvalidWorkflow(ConfigError):
    """A workflow definition with problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"invalid workflow ({len(problems)} problem{'s' * (len(problems) != 1)}):\n"
            + "\n".join(problems)
        )


class IncompleteTransition(WorkflowError):
    """A transition refused because required attributes are missing; ``missing`` names them."""

    def __init__(self, transition: str, missing: list[str]) -> None:
        self.transition = transition
        self.missing = missing
        super().__init__(f"Incomplete transition {transition!r}: missing {', '.join(missing)}")


class TransitionNotAvailable(WorkflowError):
    """The transition does not leave the opportunity's current step."""


class TriggerFailed(OppkitError):
    """A trigger raised: the whole transition was rolled back."""

    exit_code = 1


@dataclass
class Stage:
    name: str
    status: str = "open"
    probability: float | None = None
    # Salesforce stages that are this stage too ("Needs Analysis" is Qualification), and
    # the step where a deal arriving in any of them from Salesforce is placed
    salesforce: list[str] = field(default_factory=list)
    arrive_at: str | None = None


@dataclass
class Step:
    name: str
    stage: str
    attributes: list[str] = field(default_factory=list)
    description: str | None = None


@dataclass
class Communication:
    """A message sent after a transition commits; templates use ``{placeholder}`` fields."""

    channel: str  # email / sms
    to: str
    body: str
    subject: str | None = None
    html: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Transition:
    name: str
    from_step: str
    to_step: str
    requires: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    communications: list[Communication] = field(default_factory=list)


@dataclass
class StageAction:
    """What a stage lets a person do from a meeting or call on a deal in it.

    ``kind`` ``activity``: a new activity of ``activity_kind`` titled ``subject`` (a
    template; ``template``, optional, becomes its text). ``kind`` ``letter``: a letter,
    ``subject`` and ``template`` rendered from the deal's values, ``{activity_subject}``
    and ``{activity_date}``.
    """

    stage: str
    name: str
    kind: str  # activity / letter
    activity_kind: str | None = None
    subject: str | None = None
    template: str | None = None


@dataclass
class LifecycleStage:
    kind: str  # contact / account
    name: str
    category: str  # succeeded / in progress / not succeeded
    external_status: str | None = None
    locks: bool = False


@dataclass
class LifecycleRule:
    kind: str
    event: str
    stage: str


@dataclass
class Definition:
    """A whole workflow: what a team keeps in its TOML file."""

    stages: list[Stage] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    entries: dict[str, str] = field(default_factory=dict)  # new_account / existing_account
    # named processes beside the default one: name -> {new_account: step, existing_account: step}
    processes: dict[str, dict[str, str]] = field(default_factory=dict)
    follow_ons: dict[str, str] = field(default_factory=dict)  # name -> step
    lifecycle_stages: list[LifecycleStage] = field(default_factory=list)
    lifecycle_rules: list[LifecycleRule] = field(default_factory=list)
    stage_actions: list[StageAction] = field(default_factory=list)  # in the file's order
    # after a load: open deals it could not place at a step (id, name, stage)
    unplaced: list[tuple[int, str, str | None]] = field(default_factory=list)

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def actions(self, stage: str) -> list[StageAction]:
        return [a for a in self.stage_actions if a.stage == stage]

    def outgoing(self, step: str) -> list[Transition]:
        return [t for t in self.transitions if t.from_step == step]

    def lifecycle(self, kind: str) -> list[LifecycleStage]:
        return [s for s in self.lifecycle_stages if s.kind == kind]
