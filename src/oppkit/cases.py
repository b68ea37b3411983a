"""Cases linked to a deal: Salesforce Cases, and informal pending cases made in oppkit.

Why: a customer's open issues matter to the deal on their account. Salesforce Cases are
synced (incremental, delete-aware) onto their account; one names its deal only where the
org has a field for it (``[salesforce] case_opportunity_field``): oppkit never guesses a
deal. Before there is a formal case, a person notes a *pending* one on the deal here
(``open_pending``); when the formal cases exist, ``formalise`` hangs them under the
pending one and hands them its deal link (or, without any, makes the pending case formal
itself). Privacy as the deal's: a case on a private deal is seen by its owner and
members only.

Example::

    kit.cases(opportunity="Acme pilot")
    pending = kit.cases.open_pending("Sensor firmware crashes", opportunity="Acme pilot")
    kit.cases.formalise(pending, into=["00001026"])   # Salesforce case numbers (or ids)
"""

from __future__ import annotations

import numbers
import uuid
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, insert, select, update

from . import frames
from .db.engine import write_transaction
from .db.schema import cases, opportunities
from .errors import OppkitError
from .scope import NotFoundError, ScopeLike, as_list, scope_of

__all__ = ["PENDING", "Cases", "one_account"]

SOURCE = "oppkit"
PENDING, FORMALISED = "Pending", "Formalised"  # a pending case's status, before and after


class Cases:
    """``kit.cases``: call it for the cases frame; ``.open_pending`` and ``.formalise``."""

    def __init__(self, scope: ScopeLike) -> None:
        self.scope = scope_of(scope)

    def __call__(
        self, *, opportunity: Any = None, account: Any = None, include_closed: bool = True
    ) -> pd.DataFrame:
        """The cases frame (:func:`oppkit.frames.cases`).

        >>> kit.cases(account="acme-robotics.example")
        """
        return frames.cases(
            self.scope, opportunity=opportunity, account=account, include_closed=include_closed
        )

    def open_pending(
        self, subject: str, *, opportunity: Any = None, account: Any = None,
        contact: str | None = None, description: str | None = None,
        priority: str | None = None,
    ) -> int:  # fmt: skip
        """Note an informal pending case on a deal (or an account); its id.

        >>> kit.cases.open_pending("Sensor firmware crashes", opportunity="Acme pilot")
        """
        subject = " ".join(str(subject or "").split())
        if not subject:
            raise OppkitError("a case needs a subject")
        deal_id = self.scope.opportunity_id(opportunity) if opportunity is not None else None
        person_id = self.scope.person_ids(contact)[0] if contact else None
        now = datetime.now(UTC)
        with write_transaction(self.scope.engine) as conn:
            account_id = one_account(conn, self.scope, account, deal_id)
            return conn.execute(
                insert(cases)
                .values(
                    subject=subject,
                    status=PENDING,
                    priority=priority,
                    description=description,
                    account_id=account_id,
                    person_id=person_id,
                    opportunity_id=deal_id,
                    is_formal=False,
                    source=SOURCE,
                    source_id=f"case:{uuid.uuid4().hex}",
                    created_at=now,
                    updated_at=now,
                )  # fmt: skip
                .returning(cases.c.id)
            ).scalar_one()

    def formalise(self, case: Any, into: Any = None) -> list[int]:
        """Formalise a pending case: the formal cases ``into`` names (ids or case numbers)
        become its children and take its deal link; without ``into`` it becomes a formal
        case itself. The ids of the formal cases.

        >>> kit.cases.formalise(pending, into=["00001026"])
        """
        with write_transaction(self.scope.engine) as conn:
            row = self._find(conn, case)
            if row.is_formal:
                raise OppkitError(f"case {row.case_number or row.id} is formal already")
            now = datetime.now(UTC)
            if into is None:
                conn.execute(
                    update(cases)
                    .where(cases.c.id == row.id)
                    .values(
                        is_formal=True, status="New", case_number=f"P-{row.id:06d}", updated_at=now
                    )  # fmt: skip
                )
                return [row.id]
            children = [self._find(conn, ref) for ref in as_list(into)]
            for child in children:
                if not child.is_formal:
                    raise OppkitError(
                        f"case {child.id} is pending too: formalise into formal cases"
                    )
                if child.parent_id not in (None, row.id):
                    raise OppkitError(f"case {child.case_number or child.id} has a parent already")
                if child.account_id not in (None, row.account_id):
                    raise OppkitError(f"case {child.case_number or child.id} is another account's")
                if child.opportunity_id not in (None, row.opportunity_id):
                    raise OppkitError(
                        f"case {child.case_number or child.id} is linked to another deal"
                    )
                conn.execute(
                    update(cases)
                    .where(cases.c.id == child.id)
                    .values(
                        parent_id=row.id,
                        opportunity_id=row.opportunity_id,
                        account_id=row.account_id,
                        updated_at=now,
                    )  # fmt: skip
                )
            conn.execute(
                update(cases).where(cases.c.id == row.id).values(status=FORMALISED, updated_at=now)
            )
            return [child.id for child in children]

    def _find(self, conn: Connection, case: Any) -> Any:
        """The case ``case`` names (id, case number or a one-row frame) as this user may
        see it; NotFoundError otherwise."""
        if isinstance(case, pd.DataFrame):
            if len(case) != 1:
                raise NotFoundError(f"give one case, not {len(case)}")
            case = int(case["id"].iloc[0])
        if isinstance(case, pd.Series):
            case = int(case["id"])
        stmt = select(cases).where(
            cases.c.is_deleted.is_(False),
            (cases.c.opportunity_id.is_(None))
            | cases.c.opportunity_id.not_in(self.scope.hidden_opportunities()),
        )
        if isinstance(case, numbers.Integral) and not isinstance(case, bool):
            found = conn.execute(stmt.where(cases.c.id == int(case))).all()
        elif isinstance(case, str) and case.strip():
            found = conn.execute(stmt.where(cases.c.case_number == case.strip())).all()
        else:
            raise NotFoundError(f"no case matches {case!r} (give an id or a case number)")
        if not found:
            raise NotFoundError(f"no case matches {case!r}")
        if len(found) > 1:
            raise NotFoundError(f"{len(found)} cases match {case!r}; use the id")
        return found[0]


def one_account(conn: Connection, scope: Any, account: Any, deal_id: int | None) -> int | None:
    """The record's account: the one given, else its deal's; they must agree."""
    deal_account = conn.scalar(
        select(opportunities.c.account_id).where(opportunities.c.id == deal_id)
    ) if deal_id is not None else None  # fmt: skip
    if account is None:
        if deal_id is None:
            raise OppkitError("give opportunity= or account=")
        return deal_account
    found = list(dict.fromkeys(scope.account_ids(account)))
    if len(found) != 1:
        raise NotFoundError(f"{len(found)} accounts match {account!r}; use the id")
    if deal_account is not None and deal_account != found[0]:
        raise OppkitError("that deal is of another account")
    return found[0]
