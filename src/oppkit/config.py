"""Settings from oppkit.toml and OPPKIT_* environment variables.

Why: the same settings serve the CLI, the agents and notebooks. The environment wins
over the file. Secrets are never read from the file into the database; every source
reads them from the environment through :func:`env_setting`, the one way oppkit reads an
``OPPKIT_*`` variable.

Example::

    settings = load_settings()
    settings.internal_domains  # ['northwind.example']
    env_setting("IMAP_PASSWORD")  # the value of OPPKIT_IMAP_PASSWORD, or None
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir

from .errors import ConfigError


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    internal_domains: tuple[str, ...] = ()
    config_path: Path | None = None
    extra: dict = field(default_factory=dict)  # the whole file; [smtp] is read by mailout

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or default_database_url()


def env_setting(name: str, default: str | None = None) -> str | None:
    """The value of the environment variable ``OPPKIT_<name>``, or ``default`` when unset.

    Why: sources, the CLI and settings all read credentials and overrides the same way, so
    every variable keeps the ``OPPKIT_`` prefix and secrets never come from anywhere else.
    An empty value is returned as it is (an empty password is still a password).

    Example::

        password = env_setting("CALDAV_PASSWORD")  # OPPKIT_CALDAV_PASSWORD
    """
    return os.environ.get(f"OPPKIT_{name}", default)


def default_database_url() -> str:
    """An SQLite file in the user's data folder."""
    folder = Path(user_data_dir("oppkit", appauthor=False))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'oppkit.sqlite'}"


def _split_domains(value: str | list[str] | None) -> tuple[str, ...]:
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    return tuple(sorted({d.strip().lower().lstrip("@") for d in items if d.strip()}))


def _find_config_file() -> Path | None:
    explicit = env_setting("CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"OPPKIT_CONFIG points at {path}, which is not a file")
        return path
    candidate = Path.cwd() / "oppkit.toml"
    return candidate if candidate.is_file() else None


def load_settings(database_url: str | None = None) -> Settings:
    """Settings from (in order of precedence) arguments, environment, oppkit.toml."""
    path = _find_config_file()
    data: dict = {}
    if path:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    section = data.get("oppkit", data)
    url = database_url or env_setting("DATABASE_URL") or section.get("database_url")
    domains = env_setting("INTERNAL_DOMAINS") or section.get("internal_domains")
    return Settings(
        database_url=url,
        internal_domains=_split_domains(domains),
        config_path=path,
        extra=data,
    )


def salesforce_table(settings: Settings | None = None) -> dict[str, Any]:
    """The ``[salesforce]`` table of oppkit.toml (empty without one)."""
    settings = settings or load_settings()
    table = (settings.extra or {}).get("salesforce") or {}
    if not isinstance(table, dict):
        raise ConfigError(f"{settings.config_path}: [salesforce] must be a table")
    return table


def write_back_enabled(settings: Settings | None = None) -> bool:
    """Whether changes to Salesforce-owned fields are pushed (else refused); default off.

    ``OPPKIT_SALESFORCE_WRITE_BACK`` (1/0, true/false) wins over ``[salesforce]
    write_back`` in oppkit.toml.
    """
    value: Any = env_setting("SALESFORCE_WRITE_BACK")
    where = "OPPKIT_SALESFORCE_WRITE_BACK"
    if value in (None, ""):
        value, where = (
            salesforce_table(settings).get("write_back", False),
            "[salesforce] write_back",
        )
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{where} must be true or false, not {value!r}")


STATUS_KINDS = ("contact", "account")
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def status_field(kind: str, settings: Settings | None = None) -> str | None:
    """The Salesforce field that holds a contact's or account's lifecycle status; None
    when the team has named none (the default): then the status is neither read nor pushed.

    ``OPPKIT_SF_CONTACT_STATUS_FIELD`` / ``OPPKIT_SF_ACCOUNT_STATUS_FIELD`` win over
    ``[salesforce] contact_status_field`` / ``account_status_field`` in oppkit.toml, e.g.
    ``"Lifecycle_Status__c"``. The name goes into SOQL and REST paths: only a plain API
    field name is taken.

    Example::

        status_field("contact")  # "Lifecycle_Status__c", or None
    """
    if kind not in STATUS_KINDS:
        raise ValueError(f"kind must be one of {', '.join(STATUS_KINDS)}")
    value: Any = env_setting(f"SF_{kind.upper()}_STATUS_FIELD")
    where = f"OPPKIT_SF_{kind.upper()}_STATUS_FIELD"
    if value in (None, ""):
        value = salesforce_table(settings).get(f"{kind}_status_field")
        where = f"[salesforce] {kind}_status_field"
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or not _FIELD_NAME.fullmatch(value.strip()):
        raise ConfigError(f"{where} must be a Salesforce field's API name, not {value!r}")
    return value.strip()


CALENDAR_MONTHS = {"past_months": 12, "future_months": 6}


def calendar_months(settings: Settings | None = None) -> tuple[int, int]:
    """How far calendars are expanded: (months back, months ahead) of now; default (12, 6).

    Recurring meetings are expanded into occurrences within this window (one-off meetings
    are kept whenever they are). ``OPPKIT_CALENDAR_PAST_MONTHS`` and
    ``OPPKIT_CALENDAR_FUTURE_MONTHS`` win over ``[calendar] past_months`` and
    ``future_months`` in oppkit.toml; each is a whole number, 0 or more.

    Example::

        calendar_months()  # (12, 6)
    """
    settings = settings or load_settings()
    table = (settings.extra or {}).get("calendar") or {}
    if not isinstance(table, dict):
        raise ConfigError(f"{settings.config_path}: [calendar] must be a table")
    months = []
    for key, default in CALENDAR_MONTHS.items():
        value: Any = env_setting(f"CALENDAR_{key.upper()}")
        where = f"OPPKIT_CALENDAR_{key.upper()}"
        if value in (None, ""):
            value, where = table.get(key, default), f"[calendar] {key}"
        try:
            number = int(str(value).strip()) if not isinstance(value, bool | float) else -1
        except ValueError:
            number = -1
        if number < 0:
            raise ConfigError(
                f"{where} must be a whole number of months (0 or more), not {value!r}"
            )
        months.append(number)
    return months[0], months[1]
