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


# --- interactions: result types, interaction types, message templates --------------------

DEFAULT_RESULT_TYPES = ("Reached", "Not reached", "Left a message", "Call back",
                        "Meeting booked", "Not interested", "Done")  # fmt: skip
DEFAULT_INTERACTION_TYPES = ("call", "meeting", "visit", "email", "sms", "task", "letter")


@dataclass(frozen=True)
class MessageTemplate:
    """A message template of ``[interactions.templates.NAME]`` (one language of it)."""

    body: str
    subject: str | None = None
    html: str | None = None


def interactions_table(settings: Settings | None = None) -> dict[str, Any]:
    """The ``[interactions]`` table of oppkit.toml (empty without one)."""
    settings = settings or load_settings()
    table = (settings.extra or {}).get("interactions") or {}
    if not isinstance(table, dict):
        raise ConfigError(f"{settings.config_path}: [interactions] must be a table")
    return table


def _names(
    settings: Settings | None, key: str, default: tuple[str, ...], size: int
) -> tuple[str, ...]:
    settings = settings or load_settings()
    value = interactions_table(settings).get(key)
    if value is None:
        return default
    where = f"{settings.config_path}: [interactions] {key}"
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a list of names")
    names, seen = [], set()
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item.strip()) > size:
            raise ConfigError(f"{where}: {item!r} is not a name (1 to {size} characters)")
        if item.strip().casefold() in seen:
            raise ConfigError(f"{where}: {item.strip()!r} is listed twice")
        seen.add(item.strip().casefold())
        names.append(item.strip())
    return tuple(names)


def result_types(settings: Settings | None = None) -> tuple[str, ...]:
    """The result types an interaction's result may have: ``[interactions] result_types``
    in oppkit.toml (a list of names), else :data:`DEFAULT_RESULT_TYPES`.

    Example::

        result_types()  # ('Reached', 'Not reached', 'Left a message', ...)
    """
    return _names(settings, "result_types", DEFAULT_RESULT_TYPES, 60)


def interaction_types(settings: Settings | None = None) -> tuple[str, ...]:
    """The types a planned interaction may have: ``[interactions] types`` in oppkit.toml,
    else :data:`DEFAULT_INTERACTION_TYPES` (call, meeting, visit, email, sms, task, letter)."""
    return _names(settings, "types", DEFAULT_INTERACTION_TYPES, 40)


_TEMPLATE_KEYS = ("subject", "body", "html")


def message_templates(
    settings: Settings | None = None,
) -> dict[str, dict[str | None, MessageTemplate]]:
    """Message templates by name, each by language (None: the default one).

    ``[interactions.templates.NAME]`` holds ``body`` and optionally ``subject`` and
    ``html`` (``str.format`` placeholders); a sub-table per language holds the same keys
    in that language (``[interactions.templates.NAME.de]``); what a language leaves out
    comes from the default.

    Example::

        message_templates()["thank_you"]["de"].subject  # "Danke, {first_name}"
    """
    settings = settings or load_settings()
    table = interactions_table(settings).get("templates") or {}
    where = f"{settings.config_path}: [interactions.templates]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of templates")
    found: dict[str, dict[str | None, MessageTemplate]] = {}
    for name, spec in table.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{where} {name!r} must be a table (body, subject, html)")
        default = _template(spec, f"{where} {name!r}", None)
        variants: dict[str | None, MessageTemplate] = {None: default}
        for key, value in spec.items():
            if key in _TEMPLATE_KEYS:
                continue
            if not isinstance(value, dict):
                raise ConfigError(
                    f"{where} {name!r}: {key!r} is neither subject, body, html nor a language table"
                )
            variants[key.lower()] = _template(value, f"{where} {name!r}.{key}", default)
        found[name] = variants
    return found


def _template(spec: dict, where: str, default: MessageTemplate | None) -> MessageTemplate:
    values = {}
    for key in _TEMPLATE_KEYS:
        value = spec.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be text")
        values[key] = value if value is not None else getattr(default, key, None)
    if not values["body"]:
        raise ConfigError(f"{where} needs a body")
    return MessageTemplate(**values)


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


# --- agreements, cases: option sets and the Salesforce fields they read -----------------

DEFAULT_AGREEMENT_TYPES = ("Framework agreement", "Service contract", "Maintenance", "License",
                           "Contract")  # fmt: skip
FALLBACK_AGREEMENT_TYPE = "Contract"  # a synced Contract whose type field is absent or empty
DEFAULT_EXPIRING_DAYS = 60
DEFAULT_CONTRACT_TYPE_FIELD = "Type__c"


def agreements_table(settings: Settings | None = None) -> dict[str, Any]:
    """The ``[agreements]`` table of oppkit.toml (empty without one)."""
    settings = settings or load_settings()
    table = (settings.extra or {}).get("agreements") or {}
    if not isinstance(table, dict):
        raise ConfigError(f"{settings.config_path}: [agreements] must be a table")
    return table


def agreement_types(settings: Settings | None = None) -> tuple[str, ...]:
    """The types an agreement may have: ``[agreements] types`` in oppkit.toml (a list of
    names), else :data:`DEFAULT_AGREEMENT_TYPES`.

    Example::

        agreement_types()  # ('Framework agreement', 'Service contract', ...)
    """
    settings = settings or load_settings()
    value = agreements_table(settings).get("types")
    if value is None:
        return DEFAULT_AGREEMENT_TYPES
    where = f"{settings.config_path}: [agreements] types"
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a list of names")
    names: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item.strip()) > 60:
            raise ConfigError(f"{where}: {item!r} is not a name (1 to 60 characters)")
        if item.strip().casefold() in {n.casefold() for n in names}:
            raise ConfigError(f"{where}: {item.strip()!r} is listed twice")
        names.append(item.strip())
    return tuple(names)


def expiring_days(settings: Settings | None = None) -> int:
    """How many days before its end an agreement counts as expiring (an alert on the
    account's open deals): ``[agreements] expiring_days``, default 60."""
    settings = settings or load_settings()
    value = agreements_table(settings).get("expiring_days", DEFAULT_EXPIRING_DAYS)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(
            f"{settings.config_path}: [agreements] expiring_days must be a whole number of "
            f"days (0 or more), not {value!r}"
        )
    return value


def _field_setting(
    key: str, env: str, default: str | None, settings: Settings | None
) -> str | None:
    value: Any = env_setting(env)
    where = f"OPPKIT_{env}"
    if value in (None, ""):
        value, where = salesforce_table(settings).get(key, default), f"[salesforce] {key}"
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or not _FIELD_NAME.fullmatch(value.strip()):
        raise ConfigError(f"{where} must be a Salesforce field's API name, not {value!r}")
    return value.strip()


def contract_type_field(settings: Settings | None = None) -> str | None:
    """The Contract field that holds an agreement's type: ``OPPKIT_SF_CONTRACT_TYPE_FIELD``
    or ``[salesforce] contract_type_field``, default ``Type__c``. Where the org (or the
    export) lacks it, or a Contract leaves it empty, the agreement's type is
    :data:`FALLBACK_AGREEMENT_TYPE`.

    Example::

        contract_type_field()  # "Type__c"
    """
    return _field_setting(
        "contract_type_field", "SF_CONTRACT_TYPE_FIELD", DEFAULT_CONTRACT_TYPE_FIELD, settings
    )


def case_opportunity_field(settings: Settings | None = None) -> str | None:
    """The Case field that names its opportunity (a lookup such as ``Opportunity__c``):
    ``OPPKIT_SF_CASE_OPPORTUNITY_FIELD`` or ``[salesforce] case_opportunity_field``. None
    (the default): a synced Case belongs to its account only; oppkit never guesses a deal.
    """
    return _field_setting("case_opportunity_field", "SF_CASE_OPPORTUNITY_FIELD", None, settings)
