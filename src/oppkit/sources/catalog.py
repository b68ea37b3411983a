"""Every source oppkit can sync, declared once; the CLI, agents and sync functions follow.

Why: a source is added by writing its reader (one module in sources/), declaring it here
and adding agents/<agent>_agent.py (``sys.exit(agent_main("<agent>"))``). Importing this
module is cheap: readers are named by ``"module:function"`` and loaded when a run starts.

Example::

    from oppkit.sources.catalog import find_source, sources_of
    [s.name for s in sources_of("mail")]   # ['file', 'imap', 'ews']
    find_source("calendar/ews").lock_key(server)   # 'ews-calendar:https://...'

Tests (and plugins) may :func:`register` a source and :func:`unregister` it again.
"""

from __future__ import annotations

from pathlib import Path

from .declaration import (
    OptionGroup,
    Source,
    cli_option,
    comma_list,
    existing_folder,
    existing_path,
    parse_duration,
)

_SF_CREDENTIALS = (
    "SF_INSTANCE_URL", "SF_SESSION_ID", "SF_USERNAME", "SF_PASSWORD", "SF_SECURITY_TOKEN",
    "SF_DOMAIN", "SF_CONSUMER_KEY", "SF_CONSUMER_SECRET", "SF_PRIVATE_KEY_FILE",
)  # fmt: skip

SALESFORCE_API = Source(
    name="api",
    agent="salesforce",
    help="a Salesforce org through its REST API",
    reader="oppkit.sources.salesforce:read_org",
    targets="oppkit.sources.salesforce:salesforce_orgs",
    options=(
        cli_option(
            "--instance-url",
            "org URL for an existing session (OPPKIT_SF_INSTANCE_URL)",
            env="SF_INSTANCE_URL",
        ),
        cli_option(
            "--session-id",
            "an existing session token; prefer OPPKIT_SF_SESSION_ID (not shown in ps)",
        ),
        cli_option(
            "--objects",
            "comma-separated objects to sync (default: all oppkit reads)",
            type=comma_list,
        ),
        cli_option(
            "--overlap",
            "re-read window before the last SystemModstamp (default 5m)",
            type=parse_duration,
            metavar="DURATION",
        ),
        cli_option(
            "--wait",
            "wait this long for another agent on the same org to finish (default: exit)",
            type=parse_duration,
            default=0.0,
            metavar="DURATION",
        ),
    ),
    lock=lambda org: f"salesforce:{org.describe()}",
    lock_wait_from="wait",
    environment=_SF_CREDENTIALS,
    before_run=("push_salesforce_changes",),  # write-back: push before the pull
    after_run=("check_agreements",),  # expiring Contracts: alerts on the account's deals
)

MAIL_FILES = Source(
    name="file",
    agent="mail",
    help="emails from mbox / .eml exports",
    reader="oppkit.sources.mail:read_mail",
    options=(
        cli_option(
            "--mbox",
            "an mbox file, an .eml file or a folder of them (repeatable)",
            action="append",
            type=Path,
            metavar="PATH",
        ),
    ),
    trigger="--mbox",
    check=existing_path("mailbox"),
    after_run=("refresh_unanswered",),
)

IMAP_OPTIONS = OptionGroup(
    "IMAP (password from OPPKIT_IMAP_PASSWORD)",
    (
        cli_option("--imap-host", "IMAP server host", metavar="HOST"),
        cli_option("--imap-port", "default 993 (tls) or 143", type=int),
        cli_option("--imap-user", "login name (default OPPKIT_IMAP_USER)", env="IMAP_USER"),
        cli_option("--imap-security", None, choices=["tls", "starttls", "none"], default="tls"),
        cli_option("--imap-folder", "folder to sync (repeatable; default INBOX and Sent)",
                   action="append", metavar="FOLDER"),
        cli_option("--imap-ca-file", "CA file to trust for the server's certificate"),
        cli_option("--exclude-sender", "leave out mail from this sender (repeatable)",
                   action="append", default=[], metavar="EMAIL"),
        cli_option("--exclude-domain", "leave out mail to or from this domain (repeatable)",
                   action="append", default=[], metavar="DOMAIN"),
    ),
)  # fmt: skip

MAIL_IMAP = Source(
    name="imap",
    agent="mail",
    help="emails from an IMAP mailbox, by UIDVALIDITY + UID",
    reader="oppkit.sources.imap:read_imap",
    targets="oppkit.sources.imap:imap_servers",
    options=(IMAP_OPTIONS,),
    trigger="--imap-host",
    lock=lambda server: f"imap:{server.describe()}",
    environment=("IMAP_USER", "IMAP_PASSWORD"),
    after_run=("refresh_unanswered",),
)

# Shared by Exchange mail and Exchange calendar: one set of --ews-* options for both.
EXCHANGE_OPTIONS = OptionGroup(
    "Exchange (password from OPPKIT_EWS_PASSWORD, OAuth secret from OPPKIT_EWS_CLIENT_SECRET)",
    (
        cli_option("--ews-url", "EWS endpoint, e.g. https://mail.example.com/EWS/Exchange.asmx",
                   metavar="URL"),
        cli_option("--ews-mailbox", "mailbox (repeatable)", action="append", metavar="EMAIL"),
        cli_option("--ews-user", "login (default OPPKIT_EWS_USER)", env="EWS_USER"),
        cli_option("--ews-auth", None, choices=["ntlm", "basic", "oauth2", "noauth"],
                   default="ntlm"),
        cli_option("--ews-impersonation", "service account impersonation", action="store_true"),
        cli_option("--ews-folder", "default inbox and sent", action="append", metavar="FOLDER"),
        cli_option("--ews-ca-file", "CA file to trust for the server's certificate"),
    ),
)  # fmt: skip
_EWS_CREDENTIALS = (
    "EWS_USER", "EWS_PASSWORD", "EWS_CLIENT_ID", "EWS_CLIENT_SECRET", "EWS_TENANT_ID"
)  # fmt: skip

MAIL_EXCHANGE = Source(
    name="ews",
    agent="mail",
    help="emails from Exchange mailboxes, by EWS sync state",
    reader="oppkit.sources.exchange:read_exchange_mail",
    targets="oppkit.sources.exchange:exchange_servers",
    options=(EXCHANGE_OPTIONS,),
    trigger="--ews-url",
    lock=lambda server: f"ews-mail:{server.endpoint}",
    environment=_EWS_CREDENTIALS,
    after_run=("refresh_unanswered",),
)

CALENDAR_FILES = Source(
    name="ics",
    agent="calendar",
    help="meetings from .ics calendars",
    reader="oppkit.sources.ics:read_calendars",
    options=(
        cli_option(
            "--ics",
            "an .ics file or a folder of .ics files (repeatable)",
            action="append",
            type=Path,
            metavar="PATH",
        ),
    ),
    trigger="--ics",
    check=existing_path("calendar"),
)

CALENDAR_CALDAV = Source(
    name="caldav",
    agent="calendar",
    help="meetings from a CalDAV account, by sync-token",
    reader="oppkit.sources.caldav_source:read_caldav_account",
    targets="oppkit.sources.caldav_source:caldav_accounts",
    options=(
        OptionGroup(
            "CalDAV (password from OPPKIT_CALDAV_PASSWORD)",
            (
                cli_option("--caldav-url", "CalDAV server or principal URL", metavar="URL"),
                cli_option(
                    "--caldav-user", "login (default OPPKIT_CALDAV_USER)", env="CALDAV_USER"
                ),
                cli_option(
                    "--caldav-calendar", "only these calendars", action="append", metavar="NAME"
                ),
                cli_option("--caldav-ca-file", "CA file to trust for the server's certificate"),
            ),
        ),
    ),
    trigger="--caldav-url",
    lock=lambda account: f"caldav:{account.describe()}",
    environment=("CALDAV_USER", "CALDAV_PASSWORD"),
)

CALENDAR_EXCHANGE = Source(
    name="ews",
    agent="calendar",
    help="meetings from Exchange calendars, over a window",
    reader="oppkit.sources.exchange:read_exchange_calendar",
    targets="oppkit.sources.exchange:exchange_servers",
    options=(EXCHANGE_OPTIONS,),
    trigger="--ews-url",
    lock=lambda server: f"ews-calendar:{server.endpoint}",
    environment=_EWS_CREDENTIALS,
)

SALESFORCE_EXPORT = Source(
    name="csv",
    agent="salesforce-export",
    help="a Salesforce Data Export folder of CSV files",
    reader="oppkit.sources.salesforce_export:read_export",
    options=(cli_option("directory", "folder with Account.csv, Opportunity.csv, ...", type=Path),),
    trigger="directory",
    check=existing_folder("Salesforce export folder"),
    after_run=("check_agreements",),
)

_SOURCES: dict[str, Source] = {
    s.key: s
    for s in (
        SALESFORCE_API,
        MAIL_FILES,
        MAIL_IMAP,
        MAIL_EXCHANGE,
        CALENDAR_FILES,
        CALENDAR_CALDAV,
        CALENDAR_EXCHANGE,
        SALESFORCE_EXPORT,
    )
}


def register(source: Source) -> Source:
    """Add a source (after the built-in ones); its agent's command gains it at once."""
    if source.key in _SOURCES:
        raise ValueError(f"a source {source.key} is already declared")
    _SOURCES[source.key] = source
    return source


def unregister(key: str) -> None:
    """Remove a registered source, e.g. ``unregister("toy/txt")`` when a test ends."""
    _SOURCES.pop(key, None)


def find_source(key: str) -> Source:
    """The source declared as ``agent/name``, e.g. ``find_source("mail/imap")``."""
    try:
        return _SOURCES[key]
    except KeyError:
        raise KeyError(f"no source {key!r}; declared: {', '.join(_SOURCES)}") from None


def sources_of(agent: str) -> list[Source]:
    """The sources one agent runs, in the order they run."""
    return [s for s in _SOURCES.values() if s.agent == agent]


def agents() -> dict[str, str]:
    """Every agent with its help text (the help of its first source), in declared order."""
    found: dict[str, str] = {}
    for source in _SOURCES.values():
        found.setdefault(source.agent, source.help)
    return found
