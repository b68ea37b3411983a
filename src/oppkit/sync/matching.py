"""Linking a touch point to an opportunity when the source does not say which.

Rule (precision over recall): if the activity's account has exactly one open opportunity,
link it; if it has several, link the one whose members took part, when exactly one did;
otherwise link the account only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import Connection, and_, or_, select

from ..db.schema import opportunities, opportunity_people, stages


class OpportunityMatcher:
    """Open opportunities per account with their members, loaded once per run."""

    def __init__(self) -> None:
        self._by_account: dict[int, list[tuple[int, set[int]]]] | None = None

    def invalidate(self) -> None:
        self._by_account = None

    def _load(self, conn: Connection) -> dict[int, list[tuple[int, set[int]]]]:
        closed = select(stages.c.name).where(stages.c.status != "open")
        rows = conn.execute(
            select(opportunities.c.id, opportunities.c.account_id).where(
                opportunities.c.account_id.is_not(None),
                opportunities.c.is_deleted.is_(False),
                or_(opportunities.c.stage.is_(None), opportunities.c.stage.not_in(closed)),
            )
        ).all()
        members: dict[int, set[int]] = defaultdict(set)
        for opp_id, person_id in conn.execute(
            select(opportunity_people.c.opportunity_id, opportunity_people.c.person_id).where(
                and_(opportunity_people.c.is_deleted.is_(False))
            )
        ):
            members[opp_id].add(person_id)
        by_account: dict[int, list[tuple[int, set[int]]]] = defaultdict(list)
        for opp_id, account_id in rows:
            by_account[account_id].append((opp_id, members.get(opp_id, set())))
        return by_account

    def match(self, conn: Connection, account_id: int | None, people: Iterable[int]) -> int | None:
        """The one opportunity this account + people point at, or None."""
        if account_id is None:
            return None
        if self._by_account is None:
            self._by_account = self._load(conn)
        candidates = self._by_account.get(account_id, [])
        if len(candidates) == 1:
            return candidates[0][0]
        taking_part = set(people)
        engaged = [opp_id for opp_id, members in candidates if members & taking_part]
        return engaged[0] if len(engaged) == 1 else None
