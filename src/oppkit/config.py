"""Settings from oppkit.toml and OPPKIT_* environment variables.

Why: the same settings serve the CLI, the agents and notebooks. The environment wins
over the file. Secrets are never read from the file into the database; sources read
them from the environment themselves.

Example::

    settings = load_settings()
    settings.internal_domains  # ['northwind.example']
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

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
    explicit = os.environ.get("OPPKIT_CONFIG")
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
    url = database_url or os.environ.get("OPPKIT_DATABASE_URL") or section.get("database_url")
    domains = os.environ.get("OPPKIT_INTERNAL_DOMAINS") or section.get("internal_domains")
    return Settings(
        database_url=url,
        internal_domains=_split_domains(domains),
        config_path=path,
        extra=data,
    )
