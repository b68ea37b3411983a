"""The pandas ``.oppkit`` accessor: follow a frame to related records.

Why: in a notebook one filters a frame, then wants "the timeline of these". Frames from
a :class:`~oppkit.kit.Kit` remember where they came from, so the accessor can ask it.

Example::

    big = kit.opportunities().query("amount > 100_000")
    big.oppkit.timeline()        # every touch point on those deals
    big.oppkit.people()          # their members
    big.oppkit.assign_campaign("Spring webinar")
    kit.campaigns(active=True).oppkit.opportunities()   # the deals of those campaigns
"""

from __future__ import annotations

import pandas as pd

from .kit import Kit, kit_of


@pd.api.extensions.register_dataframe_accessor("oppkit")
class OppkitAccessor:
    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    @property
    def kind(self) -> str | None:
        """Which accessor made this frame: opportunities, timeline, people, accounts..."""
        return (self._frame.attrs.get("oppkit") or {}).get("frame")

    @property
    def kit(self) -> Kit:
        return kit_of(self._frame)

    def _ids(self, column: str = "id") -> list[int]:
        if column not in self._frame:
            raise ValueError(f"this frame has no {column!r} column")
        return [int(v) for v in self._frame[column].dropna().unique()]

    def timeline(self, **filters) -> pd.DataFrame:  # noqa: ANN003
        """The timeline of the opportunities, accounts or people in this frame."""
        kind = self.kind
        if kind == "opportunities":
            return self.kit.timeline(opportunity=self._ids(), **filters)
        if kind == "accounts":
            return self.kit.timeline(account=self._ids(), **filters)
        if kind == "people":
            return self.kit.timeline(person=self._frame["email"].dropna().tolist(), **filters)
        raise ValueError(f"no timeline for a {kind or 'plain'} frame")

    def people(self, **filters) -> pd.DataFrame:  # noqa: ANN003
        """Members of these opportunities, or people at these accounts."""
        kind = self.kind
        if kind == "opportunities":
            return self.kit.people(opportunity=self._ids(), **filters)
        if kind == "accounts":
            return self.kit.people(account=self._ids(), **filters)
        if kind == "campaigns":
            members = self.kit.campaign_members(campaign=self._ids())
            df = self.kit.people(**filters)
            return df[df["id"].isin(members["person_id"].dropna())]
        if kind == "timeline":
            return self.kit.people(**filters).pipe(
                lambda df: df[df["email"].isin(self._frame["sender"].dropna())]
            )
        raise ValueError(f"no people for a {kind or 'plain'} frame")

    def opportunities(self, **filters) -> pd.DataFrame:  # noqa: ANN003
        """Opportunities of these accounts (or linked from these timeline rows)."""
        kind = self.kind
        if kind == "accounts":
            return self.kit.opportunities(account=self._ids(), **filters)
        if kind == "campaigns":
            return self.kit.opportunities(campaign=self._ids(), **filters)
        if kind == "timeline":
            ids = set(self._ids("opportunity_id"))
            df = self.kit.opportunities(**filters)
            return df[df["id"].isin(ids)]
        raise ValueError(f"no opportunities for a {kind or 'plain'} frame")

    def assign_campaign(self, campaign):  # noqa: ANN001, ANN201
        """Stamp the opportunities of this frame with ``campaign`` (kit.campaigns.assign)."""
        if self.kind != "opportunities":
            raise ValueError(
                f"only opportunities take a campaign, not a {self.kind or 'plain'} frame"
            )
        return self.kit.campaigns.assign(self._ids(), campaign)

    def add_to_campaign(self, campaign, **options):  # noqa: ANN001, ANN003, ANN201
        """Add the people of this frame to ``campaign`` (kit.campaigns.add_contacts)."""
        if self.kind != "people":
            raise ValueError(f"only people join a campaign, not a {self.kind or 'plain'} frame")
        return self.kit.campaigns.add_contacts(self._ids(), campaign, **options)
