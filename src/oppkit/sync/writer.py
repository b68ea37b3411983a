"""Writing one batch of source records: resolve references, then upsert.

Each ``write_*`` function takes the records of one kind and returns how many rows it
wrote plus the records it had to skip (with a reason). Records whose references point
at nothing (an opportunity that is not in the database) are skipped, never guessed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table, bindparam, update

from ..db.schema import (
    accounts,
    activities,
    activity_people,
    campaign_members,
    campaigns,
    opportunities,
    opportunity_people,
    people,
    stage_history,
    stages,
)
from ..db.upsert import insert_ignore, lookup, upsert
from ..identity import Resolver, domain_of, normalise_email
from ..matching import MATCHED_LINK, SOURCE_LINK, Matcher, follow_activities, rematch_opportunities
from ..sources.records import (
    AccountRecord,
    ActivityRecord,
    CampaignMemberRecord,
    CampaignRecord,
    Deleted,
    OpportunityChangeRecord,
    OpportunityMemberRecord,
    OpportunityRecord,
    PersonRecord,
    Skipped,
    StageRecord,
)
from .alert_writer import asks_question, rule_alerts, write_rule_alerts

SENDER_ROLES = ("from", "organizer")


KNOWN_LIMIT = 500_000  # upstream ids remembered per table before the memo starts over


@dataclass
class WriteContext:
    """What one run remembers between batches; :meth:`forget` after a rollback."""

    resolver: Resolver
    matcher: Matcher = field(default_factory=Matcher)
    # (table, key column) -> upstream id -> row id; rows never change their upstream id
    known: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    # deals written in this transaction -> whether their window may have changed (True)
    # or only their members (False); see rematch_touched
    touched: dict[int, bool] = field(default_factory=dict)

    def forget(self) -> None:
        """Drop everything cached: after a rollback, cached row ids may not exist."""
        self.resolver.forget()
        self.matcher.invalidate()
        self.known.clear()
        self.touched.clear()

    def touch(self, opportunity_ids, window: bool) -> None:  # noqa: ANN001
        for opp_id in opportunity_ids:
            if opp_id is not None:
                self.touched[opp_id] = self.touched.get(opp_id, False) or window


@dataclass
class WriteResult:
    written: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    def skip(self, reason: str, where: str) -> None:
        self.skipped.append(Skipped(reason, where))


def _known_ids(conn: Connection, ctx: WriteContext, table, column: str, refs) -> dict[str, int]:  # noqa: ANN001
    """Row id per upstream id in ``column``, remembered for the run (tasks repeat deals)."""
    memo = ctx.known.setdefault((table.name, column), {})
    wanted = {r for r in refs if r}
    missing = [r for r in wanted if r not in memo]
    if missing:
        if len(memo) + len(missing) > KNOWN_LIMIT:
            memo.clear()
            missing = list(wanted)
        if column == "source_id":
            found = lookup(
                conn, table, ("source", "source_id"), [("salesforce", r) for r in missing]
            )
            memo.update({k[1]: v for k, v in found.items()})
        else:
            memo.update(lookup(conn, table, column, missing))
    return {r: memo[r] for r in wanted if r in memo}


def _ids(conn: Connection, ctx: WriteContext, table, refs) -> dict[str, int]:  # noqa: ANN001
    """Row id per Salesforce id of rows that Salesforce created (source 'salesforce')."""
    return _known_ids(conn, ctx, table, "source_id", refs)


def _people_by_sfid(conn: Connection, ctx: WriteContext, refs) -> dict[str, int]:  # noqa: ANN001
    return _known_ids(conn, ctx, people, "salesforce_id", refs)


def write_stages(
    conn: Connection, ctx: WriteContext, records: Sequence[StageRecord]
) -> WriteResult:
    rows = [
        {
            "name": r.name,
            "status": r.status,
            "sort_order": r.sort_order,
            "probability": r.probability,
            "is_active": r.is_active,
            "source": r.source,
        }
        for r in records
    ]
    upsert(
        conn, stages, rows, ["name"], ["status", "sort_order", "probability", "is_active", "source"]
    )
    ctx.matcher.invalidate()
    return WriteResult(written=len(rows))


def _merge_upstream(
    conn: Connection,
    table,  # noqa: ANN001
    natural: str,
    items: list[tuple[dict, str | None]],
    by_sfid: dict[str, int],
    by_natural: dict[str, int],
) -> list[int]:
    """Write upstream rows onto the rows already known by their id or natural key.

    ``items`` are (values, natural key value). A row known by its Salesforce id (or else
    its natural key: an email, a domain) is updated in place; a new one is inserted and
    takes the natural key only if no other row holds it. Returns the positions of items
    deferred because an earlier item of this batch claims the same new natural key (the
    caller writes them again, when they merge onto that row).
    """
    updates: dict[tuple[str, ...], list[dict]] = {}
    inserts, claimed, deferred = [], set(), []
    for position, (values, key) in enumerate(items):
        existing = by_sfid.get(values["source_id"]) or (by_natural.get(key) if key else None)
        if existing:
            if key and by_natural.get(key) in (None, existing):
                values[natural] = key
            updates.setdefault(tuple(values), []).append({**values, "_id": existing})
        elif key and key in claimed:
            deferred.append(position)
        else:
            claimed.add(key)
            values[natural] = key if key not in by_natural else None
            inserts.append(values)
    for rows in updates.values():  # SET takes the columns of the rows' keys
        conn.execute(update(table).where(table.c.id == bindparam("_id")), rows)
    if inserts:
        update_columns = [k for k in inserts[0] if k != "source"]
        upsert(conn, table, inserts, ["source", "source_id"], update_columns)
    return deferred


def _latest_by_key(records):  # noqa: ANN001, ANN202
    """One record per (source, source_id), the last one seen (a page may repeat a row)."""
    return list({(r.source, r.source_id): r for r in records}.values())


def write_accounts(
    conn: Connection, ctx: WriteContext, records: Sequence[AccountRecord]
) -> WriteResult:
    """Upstream accounts; an account first seen by its email domain is merged, not doubled."""
    records = _latest_by_key(records)
    owners = _people_by_sfid(conn, ctx, [r.owner_ref for r in records])
    by_sfid = lookup(conn, accounts, "salesforce_id", [r.source_id for r in records])
    by_domain = lookup(conn, accounts, "domain", [r.domain for r in records if r.domain])
    items = [
        (
            {
                "name": r.name,
                "owner_id": owners.get(r.owner_ref),
                "industry": r.industry,
                "account_type": r.account_type,
                "salesforce_id": r.source_id if r.source == "salesforce" else None,
                "source": r.source,
                "source_id": r.source_id,
                "is_deleted": r.is_deleted,
            },
            r.domain,
        )
        for r in records
    ]
    deferred = _merge_upstream(conn, accounts, "domain", items, by_sfid, by_domain)
    ctx.resolver.by_domain.clear()
    if deferred:
        write_accounts(conn, ctx, [records[i] for i in deferred])
    return WriteResult(written=len(records))


def write_people(
    conn: Connection, ctx: WriteContext, records: Sequence[PersonRecord]
) -> WriteResult:
    """Contacts and users; merged with the person already known by the same email."""
    result = WriteResult()
    records = _latest_by_key(records)
    rules = ctx.resolver.rules
    account_ids = _ids(conn, ctx, accounts, [r.account_ref for r in records])
    emails = [normalise_email(r.email) for r in records]
    by_sfid = lookup(conn, people, "salesforce_id", [r.source_id for r in records])
    by_email = lookup(conn, people, "email", [e for e in emails if e])
    domain_accounts = ctx.resolver.accounts_for_domains(conn, {domain_of(e) for e in emails if e})
    items = []
    for r, email in zip(records, emails, strict=True):
        if r.email and not email:
            result.skip(f"unusable email {r.email!r}; kept without it", f"{r.source} {r.source_id}")
        domain = domain_of(email) if email else None
        values = {
            "name": r.name,
            "title": r.title,
            "account_id": account_ids.get(r.account_ref) or domain_accounts.get(domain),
            "is_internal": r.is_user or (domain is not None and rules.is_internal(domain)),
            "salesforce_id": r.source_id if r.source == "salesforce" else None,
            "source": r.source,
            "source_id": r.source_id,
            "is_deleted": r.is_deleted,
        }
        items.append((values, email))
    deferred = _merge_upstream(conn, people, "email", items, by_sfid, by_email)
    ctx.resolver.by_email.clear()
    result.written = len(records)
    if deferred:
        write_people(conn, ctx, [records[i] for i in deferred])
    return result


def write_campaigns(
    conn: Connection, ctx: WriteContext, records: Sequence[CampaignRecord]
) -> WriteResult:
    rows = [_columns_of(r, campaigns) for r in records]
    upsert(
        conn,
        campaigns,
        rows,
        ["source", "source_id"],
        [k for k in rows[0] if k not in ("source", "source_id")],
    )
    return WriteResult(written=len(rows))


@lru_cache(maxsize=64)
def _shared_fields(record_type: type, table: Table) -> tuple[str, ...]:
    return tuple(f.name for f in fields(record_type) if f.name in table.c)


def _columns_of(record: Any, table: Table) -> dict[str, Any]:
    """The record's fields that are columns of ``table``, as a row (a shallow copy:
    ``dataclasses.asdict`` deep-copies every value, a fifth of an opportunity's write)."""
    return {name: getattr(record, name) for name in _shared_fields(type(record), table)}


# the columns of a deal that decide when it was live and to which account it belongs
WINDOW_COLUMNS = ("account_id", "created_at", "stage", "close_date", "is_deleted")


def write_opportunities(
    conn: Connection, ctx: WriteContext, records: Sequence[OpportunityRecord]
) -> WriteResult:
    account_ids = _ids(conn, ctx, accounts, [r.account_ref for r in records])
    owners = _people_by_sfid(conn, ctx, [r.owner_ref for r in records])
    campaign_ids = _ids(conn, ctx, campaigns, [r.campaign_ref for r in records])
    rows = []
    for r in records:
        row = _columns_of(r, opportunities)
        row.update(
            account_id=account_ids.get(r.account_ref),
            owner_id=owners.get(r.owner_ref),
            campaign_id=campaign_ids.get(r.campaign_ref),
        )
        rows.append(row)
    keys = [(row["source"], row["source_id"]) for row in rows]
    before = lookup(conn, opportunities, ("source", "source_id"), keys, "id", *WINDOW_COLUMNS)
    upsert(
        conn,
        opportunities,
        rows,
        ["source", "source_id"],
        [k for k in rows[0] if k not in ("source", "source_id")],
    )
    # a deal whose account, stage, dates or deletion changed may change what matches it
    moved = [
        (key, before[key][0] if key in before else None)
        for key, row in zip(keys, rows, strict=True)
        if key not in before or tuple(before[key][1:]) != tuple(row[c] for c in WINDOW_COLUMNS)
    ]
    if moved:
        new = lookup(
            conn, opportunities, ("source", "source_id"), [k for k, i in moved if i is None]
        )
        ctx.touch([i if i is not None else new.get(k) for k, i in moved], window=True)
    ctx.matcher.invalidate()
    return WriteResult(written=len(rows))


def write_members(
    conn: Connection, ctx: WriteContext, records: Sequence[OpportunityMemberRecord]
) -> WriteResult:
    result = WriteResult()
    opp_ids = _ids(conn, ctx, opportunities, [r.opportunity_ref for r in records])
    person_ids = _people_by_sfid(conn, ctx, [r.person_ref for r in records])
    rows = []
    for r in records:
        opp, person = opp_ids.get(r.opportunity_ref), person_ids.get(r.person_ref)
        if not opp or not person:
            result.skip("member of an unknown opportunity or person", f"{r.source} {r.source_id}")
            continue
        rows.append(
            {
                "opportunity_id": opp,
                "person_id": person,
                "kind": "member",
                "role": r.role,
                "is_primary": r.is_primary,
                "source": r.source,
                "source_id": r.source_id,
                "is_deleted": r.is_deleted,
            }
        )
    before = lookup(
        conn, opportunity_people, ("source", "source_id"),
        [(row["source"], row["source_id"]) for row in rows],
        "opportunity_id", "person_id", "is_deleted",
    )  # fmt: skip
    upsert(
        conn,
        opportunity_people,
        rows,
        ["source", "source_id"],
        ["opportunity_id", "person_id", "role", "is_primary", "is_deleted"],
    )
    for row in rows:
        old = before.get((row["source"], row["source_id"]))
        if old is None or tuple(old) != (
            row["opportunity_id"],
            row["person_id"],
            row["is_deleted"],
        ):
            ctx.touch([row["opportunity_id"], old[0] if old else None], window=False)
    ctx.matcher.invalidate()
    result.written = len(rows)
    return result


def write_changes(
    conn: Connection, ctx: WriteContext, records: Sequence[OpportunityChangeRecord]
) -> WriteResult:
    result = WriteResult()
    opp_ids = _ids(conn, ctx, opportunities, [r.opportunity_ref for r in records])
    changed_by = _people_by_sfid(conn, ctx, [r.changed_by_ref for r in records])
    rows = []
    for r in records:
        opp = opp_ids.get(r.opportunity_ref)
        if not opp:
            result.skip("history of an unknown opportunity", f"{r.source} {r.source_id}")
            continue
        rows.append(
            {
                "opportunity_id": opp,
                "field": r.field,
                "old_value": r.old_value,
                "new_value": r.new_value,
                "changed_at": r.changed_at,
                "changed_by_id": changed_by.get(r.changed_by_ref),
                "source": r.source,
                "source_id": r.source_id,
            }
        )
    before = lookup(
        conn, stage_history, ("source", "source_id"),
        [(row["source"], row["source_id"]) for row in rows], "new_value", "changed_at",
    )  # fmt: skip
    upsert(
        conn,
        stage_history,
        rows,
        ["source", "source_id"],
        ["old_value", "new_value", "changed_at", "changed_by_id"],
    )
    ctx.touch(
        [
            row["opportunity_id"]
            for row in rows
            if row["field"] == "stage"
            and before.get((row["source"], row["source_id"]))
            not in [(row["new_value"], row["changed_at"])]
        ],
        window=True,
    )  # a stage change may close (or reopen) a deal
    ctx.matcher.invalidate()
    result.written = len(rows)
    return result


def write_campaign_members(
    conn: Connection, ctx: WriteContext, records: Sequence[CampaignMemberRecord]
) -> WriteResult:
    result = WriteResult()
    campaign_ids = _ids(conn, ctx, campaigns, [r.campaign_ref for r in records])
    person_ids = _people_by_sfid(conn, ctx, [r.person_ref for r in records])
    rows = []
    for r in records:
        campaign, person = campaign_ids.get(r.campaign_ref), person_ids.get(r.person_ref)
        if not campaign or not person:
            result.skip(
                "campaign member of an unknown campaign or person", f"{r.source} {r.source_id}"
            )
            continue
        rows.append(
            {
                "campaign_id": campaign,
                "person_id": person,
                "status": r.status,
                "source": r.source,
                "source_id": r.source_id,
                "is_deleted": r.is_deleted,
            }
        )
    upsert(
        conn,
        campaign_members,
        rows,
        ["source", "source_id"],
        ["campaign_id", "person_id", "status", "is_deleted"],
    )
    result.written = len(rows)
    return result


# Upstream object -> (table, column holding its id): where a deletion lands.
DELETABLE = {
    "Account": (accounts, "salesforce_id"),
    "Contact": (people, "salesforce_id"),
    "User": (people, "salesforce_id"),
    "Opportunity": (opportunities, "source_id"),
    "OpportunityContactRole": (opportunity_people, "source_id"),
    "Campaign": (campaigns, "source_id"),
    "CampaignMember": (campaign_members, "source_id"),
    "Task": (activities, "source_id"),
    "Event": (activities, "source_id"),
}


def write_deletions(conn: Connection, ctx: WriteContext, records: Sequence[Deleted]) -> WriteResult:
    """Mark deleted upstream records; rows stay (history keeps pointing at them) but hide."""
    result = WriteResult()
    for object_name, table, column, window in (
        ("Opportunity", opportunities, "id", True),
        ("OpportunityContactRole", opportunity_people, "opportunity_id", False),
    ):
        keys = [(r.source, r.source_id) for r in records if r.object == object_name]
        if keys:
            found = lookup(conn, table, ("source", "source_id"), keys, column)
            ctx.touch(found.values(), window=window)
    for r in records:
        target = DELETABLE.get(r.object)
        if target is None:
            result.skip(
                f"deletion of an unsupported object {r.object}", f"{r.source} {r.source_id}"
            )
            continue
        table, column = target
        cond = table.c[column] == r.source_id
        if column == "source_id":
            cond = cond & (table.c.source == r.source)
        result.written += conn.execute(update(table).where(cond).values(is_deleted=True)).rowcount
    ctx.matcher.invalidate()
    return result


def _direction(senders: list, others: list) -> str:  # noqa: ANN001
    everyone = senders + others
    if everyone and all(p.is_internal for p in everyone):
        return "internal"
    if senders:
        return "outbound" if senders[0].is_internal else "inbound"
    return "outbound" if any(p.is_internal for p in everyone) else "inbound"


def _account_of(senders: list, others: list) -> int | None:  # noqa: ANN001
    """The customer account: the sender's if external, else the most frequent recipient's."""
    for p in senders:
        if not p.is_internal and p.account_id:
            return p.account_id
    counts = Counter(p.account_id for p in others if not p.is_internal and p.account_id)
    return counts.most_common(1)[0][0] if counts else None


def write_activities(
    conn: Connection, ctx: WriteContext, records: Sequence[ActivityRecord]
) -> WriteResult:
    """Timeline rows plus who took part; one row per (source, source_id) across mailboxes."""
    result = WriteResult()
    records = list({(r.source, r.source_id): r for r in records}.values())
    named: dict[str, str | None] = {}
    for r in records:
        for p in r.participants:
            email = normalise_email(p.email)
            if email and not named.get(email):
                named[email] = p.name
    persons = ctx.resolver.people_for_emails(conn, named) if named else {}
    sf = [r for r in records if r.source == "salesforce"]
    opp_ids = _ids(conn, ctx, opportunities, [r.opportunity_ref for r in sf])
    sf_accounts = _ids(conn, ctx, accounts, [r.account_ref for r in sf])
    sf_people = _people_by_sfid(conn, ctx, [x for r in sf for x in (*r.person_refs, r.owner_ref)])
    sf_people_info: dict[int, tuple] | None = None  # read once, if a record lacks its account

    rows, links, parts = [], {}, []
    for r in records:
        takes_part = []  # (person_id, role, response)
        senders, others = [], []
        for p in r.participants:
            ref = persons.get(normalise_email(p.email) or "")
            if ref is None:
                continue
            takes_part.append((ref.id, p.role, p.response))
            (senders if p.role in SENDER_ROLES else others).append(ref)
        for who in r.person_refs:
            if sf_people.get(who):
                takes_part.append((sf_people[who], "who", None))
        owner_id = sf_people.get(r.owner_ref) if r.owner_ref else None
        if owner_id:
            takes_part.append((owner_id, "owner", None))

        account_id = sf_accounts.get(r.account_ref) or _account_of(senders, others)
        if account_id is None and takes_part:
            if sf_people_info is None:
                sf_people_info = lookup(
                    conn, people, "id", sf_people.values(), "account_id", "is_internal"
                )
            for pid, _role, _resp in takes_part:
                acc, internal = sf_people_info.get(pid, (None, True))
                if acc and not internal:
                    account_id = acc
                    break
        parts.append((takes_part, senders, others, owner_id, account_id))
    ctx.matcher.prepare(
        conn,
        {p[4] for r, p in zip(records, parts, strict=True) if not opp_ids.get(r.opportunity_ref)},
    )
    for r, (takes_part, senders, others, owner_id, account_id) in zip(records, parts, strict=True):
        opportunity_id, link = opp_ids.get(r.opportunity_ref), SOURCE_LINK
        if opportunity_id is None:
            opportunity_id = ctx.matcher.match(
                conn, account_id, r.occurred_at, [pid for pid, _, _ in takes_part], r.subject
            )
            link = MATCHED_LINK if opportunity_id is not None else None
        if r.source == "salesforce":
            direction = "outbound" if owner_id else None
        else:
            direction = _direction(senders, others)
        rows.append(
            {
                "kind": r.kind,
                "subject": r.subject,
                "snippet": r.snippet,
                "occurred_at": r.occurred_at,
                "duration_minutes": r.duration_minutes,
                "direction": direction,
                "thread_id": r.thread_id,
                "account_id": account_id,
                "opportunity_id": opportunity_id,
                "opportunity_link": link,
                "sender_id": senders[0].id if senders else owner_id,
                "owner_id": owner_id,
                "location": r.location,
                "is_planned": r.is_planned,
                "status": r.status,
                "is_auto": r.is_auto,
                "asks_question": direction == "inbound" and not r.is_auto and asks_question(r.text),
                "attachments": [asdict(a) for a in r.attachments] or None,
                "source": r.source,
                "source_id": r.source_id,
                "is_deleted": r.is_deleted,
            }
        )
        links[(r.source, r.source_id)] = takes_part
    upsert(
        conn,
        activities,
        rows,
        ["source", "source_id"],
        [k for k in rows[0] if k not in ("source", "source_id")] if rows else [],
    )
    ids = lookup(conn, activities, ("source", "source_id"), list(links))
    ap_rows = [
        {"activity_id": ids[key], "person_id": pid, "role": role, "response": response}
        for key, parts in links.items()
        if key in ids
        for pid, role, response in dict.fromkeys(parts)
    ]
    insert_ignore(conn, activity_people, ap_rows)
    texts = {(r.source, r.source_id): r.text for r in records if r.text}  # CRM tasks: none
    write_rule_alerts(
        conn,
        (
            alert
            for row in rows
            if (key := (row["source"], row["source_id"])) in texts and key in ids
            for alert in rule_alerts(row, ids[key], texts[key])
        ),
    )
    follow_activities(conn, ids.values())  # alerts stored before their activity had a deal
    result.written = len(rows)
    return result


def rematch_touched(conn: Connection, ctx: WriteContext) -> int:
    """After a batch: match again the activities the deals written in it may affect.

    Runs in the batch's transaction, after every writer, so the deals, their members and
    their stage history are all written; the batch's own activities were matched against
    them already. Returns how many activities moved.
    """
    if not ctx.touched:
        return 0
    windows = [opp_id for opp_id, window in ctx.touched.items() if window]
    members = [opp_id for opp_id, window in ctx.touched.items() if not window]
    ctx.touched.clear()
    moved = rematch_opportunities(conn, windows, matcher=ctx.matcher)
    return moved + rematch_opportunities(conn, members, members_only=True, matcher=ctx.matcher)


__all__ = [
    "WriteContext",
    "WriteResult",
    "rematch_touched",
    "write_accounts",
    "write_activities",
    "write_campaign_members",
    "write_campaigns",
    "write_changes",
    "write_deletions",
    "write_members",
    "write_opportunities",
    "write_people",
    "write_stages",
]
