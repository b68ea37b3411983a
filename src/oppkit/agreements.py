"""Agreements: an account's contracts, active or inactive by their dates, and the alerts
for the ones that end soon.

Why: before a new deal with a customer, the team checks what agreements the account has
and which end soon. ``kit.agreements`` reads them as a frame
(:func:`oppkit.frames.agreements`: active ones, the inactive on request) and makes the
few writes a person does:

- *create*: an agreement of one account: type (one of ``[agreements] types`` in
  oppkit.toml, required), start and end date, contract number, description; it is
  oppkit's own (source ``oppkit``).
- *update*: change those fields. A Salesforce Contract is an agreement too (synced,
  incremental and delete-aware); every column of it but the description is
  Salesforce's, so changing one is refused with a message saying to do it in Salesforce.
- *check*: the expiring-agreement alerts (:mod:`oppkit.agreement_alerts`), as after
  every Salesforce sync; a create or update checks at once, so a renewal made here
  resolves its alert in the same transaction.

Example::

    kit.agreements(account="acme-robotics.example")               # active ones
    kit.agreements(account="acme-robotics.example", include_inactive=True)
    kit.agreements.types                                           # ['Framework agreement', ...]
    a = kit.agreements.create("acme-robotics.example", "Service contract",
                              start_date="2026-01-01", end_date="2026-12-31",
                              contract_number="SC-1001")
    kit.agreements.update(a, end_date="2027-12-31")                # renewed: the alert resolves
"""

from __future__ import annotations

import numbers
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, insert, select, update

from . import frames
from .actions import NotAllowed
from .agreement_alerts import AgreementCheck, check_agreements
from .config import Settings, agreement_types, load_settings
from .db.engine import write_transaction
from .db.ownership import OPPKIT_OWNED
from .db.schema import agreements
from .errors import OppkitError
from .scope import NotFoundError, ScopeLike, scope_of

__all__ = ["EDITABLE", "Agreements", "as_day"]

SOURCE = "oppkit"
# what a person may set on an agreement; on a Salesforce Contract only what oppkit owns
EDITABLE = ("agreement_type", "start_date", "end_date", "contract_number", "description")
SALESFORCE_FIELDS = {"agreement_type": "the type field", "start_date": "StartDate",
                     "end_date": "EndDate", "contract_number": "ContractNumber"}  # fmt: skip


class Agreements:
    """``kit.agreements``: call it for the agreements frame; ``.create``, ``.update``,
    ``.check`` and ``.types`` (see the module docstring)."""

    def __init__(self, scope: ScopeLike, settings: Settings | None = None) -> None:
        self.scope = scope_of(scope)
        self._settings = settings

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def __call__(
        self, *, account: Any = None, include_inactive: bool = False, today: date | None = None
    ) -> pd.DataFrame:
        """The agreements frame: active ones by default, ended ones too with
        ``include_inactive`` (``today`` decides which have ended).

        >>> kit.agreements(account="acme-robotics.example", include_inactive=True)
        """
        return frames.agreements(
            self.scope, account=account, include_inactive=include_inactive, today=today
        )

    @property
    def types(self) -> list[str]:
        """The types an agreement may have (``[agreements] types`` in oppkit.toml)."""
        return list(agreement_types(self.settings))

    def create(
        self, account: Any, agreement_type: str, *, start_date: date | str,
        end_date: date | str | None = None, contract_number: str | None = None,
        description: str | None = None,
    ) -> int:  # fmt: skip
        """Make an agreement of one account; its id.

        >>> kit.agreements.create("acme-robotics.example", "Service contract",
        ...                       start_date="2026-01-01", end_date="2026-12-31")
        """
        found = list(dict.fromkeys(self.scope.account_ids(account)))
        if len(found) != 1:
            raise NotFoundError(f"{len(found)} accounts match {account!r}; use the id")
        values = self._checked(
            {"agreement_type": agreement_type, "start_date": start_date, "end_date": end_date,
             "contract_number": contract_number, "description": description}
        )  # fmt: skip
        if values["start_date"] is None:
            raise OppkitError("an agreement needs a start date")
        now = datetime.now(UTC)
        with write_transaction(self.scope.engine) as conn:
            agreement_id = conn.execute(
                insert(agreements)
                .values(
                    account_id=found[0],
                    source=SOURCE,
                    source_id=f"agreement:{uuid.uuid4().hex}",
                    created_at=now,
                    updated_at=now,
                    **values,
                )  # fmt: skip
                .returning(agreements.c.id)
            ).scalar_one()
            check_agreements(conn, self.settings)
        return agreement_id

    def update(self, agreement: Any, **changes: Any) -> None:
        """Change an agreement's type, dates, contract number or description. On a
        Salesforce Contract only the description is oppkit's: the rest is refused.

        >>> kit.agreements.update(a, end_date="2027-12-31")
        """
        unknown = sorted(set(changes) - set(EDITABLE))
        if unknown:
            raise OppkitError(f"an agreement has {', '.join(EDITABLE)}; not {', '.join(unknown)}")
        if not changes:
            return
        with write_transaction(self.scope.engine) as conn:
            row = self._find(conn, agreement)
            if row.source != SOURCE:
                theirs = [f for f in changes if f not in OPPKIT_OWNED.get("agreements", ())]
                if theirs:
                    fields = ", ".join(f"{f} ({SALESFORCE_FIELDS.get(f, f)})" for f in theirs)
                    raise NotAllowed(
                        f"agreement {row.contract_number or row.id} is a Salesforce Contract: "
                        f"{fields} {'is' if len(theirs) == 1 else 'are'} Salesforce's; change "
                        "it in Salesforce (the next sync brings it here)"
                    )
            merged = {f: getattr(row, f) for f in EDITABLE} | changes
            values = self._checked(merged)
            conn.execute(
                update(agreements)
                .where(agreements.c.id == row.id)
                .values(updated_at=datetime.now(UTC), **{f: values[f] for f in changes})
            )
            check_agreements(conn, self.settings)

    def check(self, today: date | None = None) -> AgreementCheck:
        """Open alerts for expiring agreements, resolve renewed or gone ones (as after
        every Salesforce sync and ``oppkit agreements check``).

        >>> kit.agreements.check().line()
        """
        with write_transaction(self.scope.engine) as conn:
            return check_agreements(conn, self.settings, today)

    # --- helpers --------------------------------------------------------------------

    def _checked(self, values: dict[str, Any]) -> dict[str, Any]:
        known = self.types
        wanted = str(values.get("agreement_type") or "").strip().casefold()
        chosen = next((t for t in known if t.casefold() == wanted), None)
        if chosen is None:
            raise OppkitError(
                f"agreement type {values.get('agreement_type')!r} is not one of: {', '.join(known)}"
            )
        start, end = as_day(values.get("start_date")), as_day(values.get("end_date"))
        if start is not None and end is not None and end < start:
            raise OppkitError("an agreement cannot end before it starts")
        number = " ".join(str(values.get("contract_number") or "").split()) or None
        if number is not None and len(number) > 60:
            raise OppkitError("a contract number has at most 60 characters")
        return {"agreement_type": chosen, "start_date": start, "end_date": end,
                "contract_number": number, "description": values.get("description")}  # fmt: skip

    def _find(self, conn: Connection, agreement: Any) -> Any:
        if isinstance(agreement, pd.DataFrame):
            if len(agreement) != 1:
                raise NotFoundError(f"give one agreement, not {len(agreement)}")
            agreement = int(agreement["id"].iloc[0])
        if isinstance(agreement, pd.Series):
            agreement = int(agreement["id"])
        stmt = select(agreements).where(agreements.c.is_deleted.is_(False))
        if isinstance(agreement, numbers.Integral) and not isinstance(agreement, bool):
            found = conn.execute(stmt.where(agreements.c.id == int(agreement))).all()
        elif isinstance(agreement, str) and agreement.strip():
            found = conn.execute(
                stmt.where(agreements.c.contract_number == agreement.strip())
            ).all()
        else:
            raise NotFoundError(f"no agreement matches {agreement!r} (give an id or a number)")
        if not found:
            raise NotFoundError(f"no agreement matches {agreement!r}")
        if len(found) > 1:
            raise NotFoundError(f"{len(found)} agreements match {agreement!r}; use the id")
        return found[0]


def as_day(value: Any) -> date | None:
    """A date from a date, a datetime or ``YYYY-MM-DD`` text (None for None or '')."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise OppkitError(f"not a date: {value!r} (give YYYY-MM-DD)") from None
