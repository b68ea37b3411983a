"""What a source declaration is: the one place a source says how it is run.

Why: the ``oppkit sync <agent>`` commands, the agents in agents/ and the ``sync_*``
functions are all derived from one :class:`Source` per source, so adding a source is one
module in sources/ (its reader), one declaration in :mod:`oppkit.sources.catalog` and an
agent script of a few lines. A declaration is plain data: its reader and target builder
are ``"module:function"`` strings resolved only when a run starts, so importing the
declarations never loads simple-salesforce, exchangelib, caldav or imaplib.

Example::

    Source(
        name="file",                        # the sync_state ``source`` label
        agent="mail",                       # `oppkit sync mail`, agents/mail_agent.py
        help="emails from mbox / .eml exports",
        reader="oppkit.sources.mail:read_mail",  # (target, cursors) -> records
        options=(cli_option("--mbox", "an mbox file ... (repeatable)", action="append",
                            type=Path, metavar="PATH"),),
        trigger="--mbox",                   # runs when given; each value is one run
        check=existing_path("mailbox"),
        after_run=("refresh_unanswered",),
    )
"""

from __future__ import annotations

import argparse
import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..config import Settings
from ..errors import ConfigError

# What the CLI parsed for one agent, after environment fallbacks (attributes by dest).
SourceOptions = argparse.Namespace
# (options, settings) -> the targets to run, one run each (a generator runs them lazily).
TargetBuilder = Callable[[SourceOptions, Settings], Iterable[Any]]
# (target, the runner's last committed cursors) -> records.
Reader = Callable[[Any, Mapping[str, dict]], Iterable[Any]]


@dataclass(frozen=True)
class Option:
    """One command-line option of a source, as data.

    ``flag`` is ``--name`` or, for a positional argument, a bare name. ``env`` names an
    ``OPPKIT_<env>`` variable used when the flag is not given (never for a secret: secrets
    are only ever read from the environment by the source's target builder).
    """

    flag: str
    help: str | None
    env: str | None = None
    argparse_kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def dest(self) -> str:
        """The attribute name argparse gives the value (``--imap-host`` -> ``imap_host``)."""
        return self.argparse_kwargs.get("dest") or self.flag.lstrip("-").replace("-", "_")

    @property
    def usage(self) -> str:
        """How the option is written in a message, e.g. ``--imap-host HOST``."""
        metavar = self.argparse_kwargs.get("metavar")
        return f"{self.flag} {metavar}" if metavar and self.flag.startswith("-") else self.flag

    def add_to(self, parser: argparse.ArgumentParser | Any) -> None:  # also an argument group
        parser.add_argument(self.flag, help=self.help, **self.argparse_kwargs)


def cli_option(
    flag: str, help: str | None, *, env: str | None = None, **argparse_kwargs: Any
) -> Option:
    """An :class:`Option`; keyword arguments go to ``ArgumentParser.add_argument``.

    Example::

        cli_option("--imap-port", "default 993 (tls) or 143", type=int)
    """
    return Option(flag, help, env, MappingProxyType(argparse_kwargs))


@dataclass(frozen=True)
class OptionGroup:
    """Options shown together under a title; a group shared by several sources (the
    ``--ews-*`` options of Exchange mail and calendar) is declared once and added once."""

    title: str
    options: tuple[Option, ...]


@dataclass(frozen=True)
class Source:
    """One source: its name, the agent it belongs to, its options, how it runs.

    * ``name`` -- the ``source`` label of its sync_state and rows (file, imap, ews, ...).
    * ``agent`` -- the command and agent that run it: ``oppkit sync <agent>`` and
      agents/<agent>_agent.py run every source of that agent, in declaration order. The
      first source of an agent gives the command its help text.
    * ``reader`` -- ``(target, cursors) -> records``, as ``"module:function"`` or a callable.
    * ``options`` -- its CLI options (an :class:`Option` or a shared :class:`OptionGroup`).
    * ``trigger`` -- the flag that turns the source on (none: it always runs). When an
      agent's sources all have triggers and none is given, the command asks for one.
    * ``targets`` -- ``(options, settings) -> targets``, one run each; without it, each
      value of the trigger is a target (several ``--mbox`` paths give several runs).
    * ``check`` -- validates and normalises one target before its run (a path exists).
    * ``lock`` -- the lock key for a target: one agent at a time per key (none: no lock).
    * ``lock_wait_from`` -- the option whose value is how long to wait for that lock.
    * ``environment`` -- the ``OPPKIT_*`` variables (without the prefix) it reads for
      credentials, shown in the command's help.
    * ``after_run`` -- names of hooks the sync package runs after a run (sources know no
      SQL, so they name them; :mod:`oppkit.sync.declared_sources` resolves them).
    * ``before_run`` -- names of hooks run first, under the run's lock, with (engine,
      target, settings): Salesforce's pushes the changes people made before it pulls.
    """

    name: str
    agent: str
    help: str
    reader: str | Reader
    options: tuple[Option | OptionGroup, ...] = ()
    trigger: str | None = None
    targets: str | TargetBuilder | None = None
    check: Callable[[Any], Any] | None = None
    lock: Callable[[Any], str] | None = None
    lock_wait_from: str | None = None
    environment: tuple[str, ...] = ()
    after_run: tuple[str, ...] = ()
    before_run: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.trigger is not None and self.trigger_option() is None:
            raise ValueError(f"source {self.key}: trigger {self.trigger} is not one of its options")
        if self.targets is None and self.trigger is None:
            raise ValueError(f"source {self.key} needs targets= or a trigger")

    @property
    def key(self) -> str:
        """``agent/name``, unique among sources (``ews`` serves both mail and calendar)."""
        return f"{self.agent}/{self.name}"

    def trigger_option(self) -> Option | None:
        return next((o for o in self.all_options() if o.flag == self.trigger), None)

    def all_options(self) -> list[Option]:
        found: list[Option] = []
        for item in self.options:
            found.extend(item.options if isinstance(item, OptionGroup) else (item,))
        return found

    def is_given(self, options: SourceOptions) -> bool:
        """Whether this source runs for these options (its trigger is set, or it has none)."""
        trigger = self.trigger_option()
        return trigger is None or bool(getattr(options, trigger.dest, None))

    def targets_for(self, options: SourceOptions, settings: Settings) -> Iterable[Any]:
        """The targets these options name, one run each."""
        if self.targets is not None:
            return resolve(self.targets)(options, settings)
        value = getattr(options, self.trigger_option().dest)
        return list(value) if isinstance(value, list | tuple) else [value]

    def checked(self, target: Any) -> Any:
        return self.check(target) if self.check is not None else target

    def lock_key(self, target: Any) -> str | None:
        return self.lock(target) if self.lock is not None else None

    def read(self, target: Any, cursors: Mapping[str, dict]) -> Iterable[Any]:
        """The reader's records for one target, resuming from ``cursors``."""
        return resolve(self.reader)(target, cursors)


def resolve(ref: str | Callable) -> Callable:
    """A callable from ``"package.module:function"`` (imported now), or the callable itself."""
    if callable(ref):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def target_label(target: Any) -> str | None:
    """What a run syncs, as ``sync_runs.target`` records it and ``oppkit status`` shows it.

    A path as an absolute path; a server, account or org by its ``describe()`` (user@host,
    an org URL: never a secret); anything else is not named (None).
    """
    if isinstance(target, str | Path):
        return str(Path(target).expanduser().resolve())
    describe = getattr(target, "describe", None)
    return describe() if callable(describe) else None


def existing_path(what: str) -> Callable[[str | Path], Path]:
    """A ``check``: the path (``~`` expanded) must exist, else ``<what> not found: <path>``."""

    def check(path: str | Path) -> Path:
        path = Path(path).expanduser()
        if not path.exists():
            raise ConfigError(f"{what} not found: {path}")
        return path

    return check


def existing_folder(what: str) -> Callable[[str | Path], Path]:
    """A ``check``: like :func:`existing_path`, and the path must be a folder."""
    exists = existing_path(what)

    def check(path: str | Path) -> Path:
        path = exists(path)
        if not path.is_dir():
            raise ConfigError(f"not a folder: {path}")
        return path

    return check


# --- option value types ---------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``15m``, ``1h30m`` or ``90s``."""
    parts = _DURATION.findall(text.strip().lower())
    if not parts or _DURATION.sub("", text.strip().lower()).strip():
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 15m, 1h, 30s)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def comma_list(text: str) -> list[str]:
    """``"Opportunity, Task"`` -> ``["Opportunity", "Task"]``."""
    return [item.strip() for item in text.split(",") if item.strip()]
