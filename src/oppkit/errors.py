"""Errors the CLI turns into exit codes: 2 for bad input from the user, 1 for failures."""


class OppkitError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(OppkitError):
    """Bad arguments or configuration (a missing file, an unknown option value)."""

    exit_code = 2


class SourceError(OppkitError):
    """An upstream system or file could not be read."""

    exit_code = 1


class DatabaseError(OppkitError):
    """The database could not be reached or migrated."""

    exit_code = 1
