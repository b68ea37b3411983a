"""oppkit: sales opportunities as DataFrames, widgets and graphs in a notebook."""
__version__ = "0.1.0"
