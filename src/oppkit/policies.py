"""Policies: local records of an account with the deal they came from.

Why: a policy sold through a deal should be found from the deal (``kit.links``) and the
deal from the policy. Policies are oppkit's own (source ``oppkit``); one linked to a
private deal is seen by the deal's owner and members only.

Example::

    p = kit.policies.create("POL-2026-0042", name="Fleet cover", opportunity="Acme pilot",
                            premium=1200.0, start_date="2026-12-01")
    kit.policies(account="acme-robotics.example")
    kit.policies.link("POL-2026-0042", "Acme expansion")
"""

from __future__ import annotations

import numbers
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, insert, select, update

from . import frames
from .agreements import as_day
from .cases import one_account
from .db.engine import write_transaction
from .db.schema import policies
from .errors import OppkitError
from .scope import NotFoundError, ScopeLike, scope_of

__all__ = ["Policies"]

SOURCE = "oppkit"


class Policies:
    """``kit.policies``: call it for the policies frame; ``.create`` and ``.link``."""

    def __init__(self, scope: ScopeLike) -> None:
        self.scope = scope_of(scope)

    def __call__(self, *, opportunity: Any = None, account: Any = None) -> pd.DataFrame:
        """The policies frame (:func:`oppkit.frames.policies`).

        >>> kit.policies(opportunity="Acme pilot")
        """
        return frames.policies(self.scope, opportunity=opportunity, account=account)

    def create(
        self, policy_number: str, *, name: str | None = None, policy_type: str | None = None,
        status: str | None = None, account: Any = None, opportunity: Any = None,
        start_date: date | str | None = None, end_date: date | str | None = None,
        premium: float | None = None,
    ) -> int:  # fmt: skip
        """Record a policy of an account, linked to a deal (``opportunity``) if given; its id.

        >>> kit.policies.create("POL-2026-0042", opportunity="Acme pilot", premium=1200.0)
        """
        number = " ".join(str(policy_number or "").split())
        if not number or len(number) > 60:
            raise OppkitError("a policy needs a number (1 to 60 characters)")
        deal_id = self.scope.opportunity_id(opportunity) if opportunity is not None else None
        start, end = as_day(start_date), as_day(end_date)
        if start is not None and end is not None and end < start:
            raise OppkitError("a policy cannot end before it starts")
        if premium is not None and (
            isinstance(premium, bool) or not isinstance(premium, numbers.Real)
        ):
            raise OppkitError("a premium is a number")
        now = datetime.now(UTC)
        with write_transaction(self.scope.engine) as conn:
            account_id = one_account(conn, self.scope, account, deal_id)
            return conn.execute(
                insert(policies)
                .values(
                    policy_number=number,
                    name=name,
                    policy_type=policy_type,
                    status=status,
                    account_id=account_id,
                    opportunity_id=deal_id,
                    start_date=start,
                    end_date=end,
                    premium=None if premium is None else float(premium),
                    source=SOURCE,
                    source_id=f"policy:{uuid.uuid4().hex}",
                    created_at=now,
                    updated_at=now,
                )  # fmt: skip
                .returning(policies.c.id)
            ).scalar_one()

    def link(self, policy: Any, opportunity: Any) -> None:
        """Link a policy to a deal of its account (``opportunity=None`` unlinks it).

        >>> kit.policies.link("POL-2026-0042", "Acme pilot")
        """
        deal_id = self.scope.opportunity_id(opportunity) if opportunity is not None else None
        with write_transaction(self.scope.engine) as conn:
            row = self._find(conn, policy)
            account_id = (
                one_account(conn, self.scope, row.account_id, deal_id)
                if deal_id is not None else row.account_id
            )  # fmt: skip
            conn.execute(
                update(policies)
                .where(policies.c.id == row.id)
                .values(opportunity_id=deal_id, account_id=account_id, updated_at=datetime.now(UTC))
            )

    def _find(self, conn: Connection, policy: Any) -> Any:
        if isinstance(policy, pd.DataFrame):
            if len(policy) != 1:
                raise NotFoundError(f"give one policy, not {len(policy)}")
            policy = int(policy["id"].iloc[0])
        if isinstance(policy, pd.Series):
            policy = int(policy["id"])
        stmt = select(policies).where(
            policies.c.is_deleted.is_(False),
            policies.c.opportunity_id.is_(None)
            | policies.c.opportunity_id.not_in(self.scope.hidden_opportunities()),
        )
        if isinstance(policy, numbers.Integral) and not isinstance(policy, bool):
            found = conn.execute(stmt.where(policies.c.id == int(policy))).all()
        elif isinstance(policy, str) and policy.strip():
            found = conn.execute(stmt.where(policies.c.policy_number == policy.strip())).all()
        else:
            raise NotFoundError(f"no policy matches {policy!r} (give an id or a number)")
        if not found:
            raise NotFoundError(f"no policy matches {policy!r}")
        if len(found) > 1:
            raise NotFoundError(f"{len(found)} policies match {policy!r}; use the id")
        return found[0]
