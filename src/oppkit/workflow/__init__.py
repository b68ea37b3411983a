"""Workflow and lifecycle: a team's sales process, described once, enforced and drawn.

Example::

    kit = oppkit.connect(user="ava.patel@northwind.example")
    kit.workflow.load("our_workflow.toml")      # or load() for the default
    kit.workflow.transition("Acme pilot", "Send proposal", amount=5000, close_date="2026-12-31")
    kit.lifecycle.apply_rules()

See :mod:`.definition` for the file format, :mod:`.engine` for transitions,
:mod:`.triggers` and :mod:`.communications` for what transitions do, :mod:`.lifecycle`
for contact and account stages and :mod:`.graph` for the drawing.
"""

from .communications import OutboxMessage, register_sender
from .model import (
    IncompleteTransition,
    InvalidWorkflow,
    TransitionNotAvailable,
    TriggerFailed,
    WorkflowError,
)
from .triggers import TriggerContext, register_trigger

__all__ = [
    "IncompleteTransition",
    "InvalidWorkflow",
    "OutboxMessage",
    "TransitionNotAvailable",
    "TriggerContext",
    "TriggerFailed",
    "WorkflowError",
    "register_sender",
    "register_trigger",
]
