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
__all__ = [
    "ConfigError",
    "DatabaseError",
    "Kit",
    "NotFoundError",
    "OppkitError",
    "Settings",
    "SourceError",
    "connect",
    "load_settings",
]
