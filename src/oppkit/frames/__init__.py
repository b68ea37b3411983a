"""Frames: the shared database as pandas DataFrames, as one user (a scope) may see it.

Each function takes a :class:`~oppkit.scope.Scope` or a Kit first; the Kit's accessors
(``kit.opportunities()``, ``kit.timeline()``...) are these functions with its scope bound.
Features that need a frame (digests, the pipeline review) call them directly.
"""

from .campaigns import campaign_activities, campaign_members, campaigns, leads
from .deals import alerts, open_tasks, opportunities, pipeline, stage_history, stages
from .freshness import sync_status
from .interactions import interactions
from .people import accounts, people, suggested_people
from .sales_tab import agreements, cases, links, policies
from .timeline import TIMELINE_COLUMNS, possible_deals, timeline

__all__ = [
    "TIMELINE_COLUMNS",
    "accounts",
    "agreements",
    "alerts",
    "campaign_activities",
    "campaign_members",
    "campaigns",
    "cases",
    "interactions",
    "leads",
    "links",
    "open_tasks",
    "opportunities",
    "people",
    "pipeline",
    "policies",
    "possible_deals",
    "stage_history",
    "stages",
    "suggested_people",
    "sync_status",
    "timeline",
]
