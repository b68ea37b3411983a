"""oppkit: sales opportunities as DataFrames, widgets and graphs in a notebook.

Example::

    import oppkit
    kit = oppkit.connect()                 # OPPKIT_DATABASE_URL or the default SQLite file
    kit.opportunities().head()
    kit.timeline(opportunity="Acme Robotics — Predictive maintenance pilot")
"""

from . import accessor as _accessor  # noqa: F401  (registers the .oppkit accessor)
from .config import Settings, load_settings
from .errors import ConfigError, DatabaseError, OppkitError, SourceError
from .kit import Kit, NotFoundError, connect

__version__ = "0.1.0"
_WIDGETS = ("OpportunityView", "PipelineReview", "TimelineView")
__all__ = [
    "ConfigError",
    "DatabaseError",
    "Kit",
    "NotFoundError",
    "OpportunityView",
    "OppkitError",
    "PipelineReview",
    "Settings",
    "SourceError",
    "TimelineView",
    "connect",
    "load_settings",
]


def __getattr__(name: str) -> object:
    """The notebook apps load ipywidgets and matplotlib only when first used."""
    if name in _WIDGETS:
        from . import widgets

        return getattr(widgets, name)
    if name == "actions":
        import importlib

        return importlib.import_module(".actions", __name__)
    raise AttributeError(f"module 'oppkit' has no attribute {name!r}")
