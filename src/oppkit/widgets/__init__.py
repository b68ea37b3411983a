"""Notebook apps (ipywidgets): the opportunity view, the pipeline review, the timeline.

Why a subpackage imported on demand: ipywidgets and matplotlib take a while to import,
and agents that ``import oppkit`` never draw anything; ``oppkit.OpportunityView`` and
friends load this package on first use.

Example::

    import oppkit
    kit = oppkit.connect(user="anna.keller@northwind.example")
    oppkit.PipelineReview(kit)
    oppkit.OpportunityView(kit, "Acme Robotics — Predictive maintenance pilot")
    oppkit.TimelineView(kit, account="acme-robotics.example")
"""

from .deal_edit import DealEditForm
from .opportunity import OpportunityView, TransitionForm
from .pipeline import PipelineReview
from .timeline import TimelineView

__all__ = ["DealEditForm", "OpportunityView", "PipelineReview", "TimelineView", "TransitionForm"]
