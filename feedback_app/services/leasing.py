"""Leasing comparisons to raters: the next comparison, the one held ready behind it, and the passes that pick and lock it.

The comparison row is the lock (``SELECT ... FOR UPDATE [SKIP LOCKED]`` on PostgreSQL; on SQLite
every write transaction starts with BEGIN IMMEDIATE and so holds the database's write lock), so two
raters never hold the same slot. A lease never holds one comparison's row while it waits for
another's: raters cannot deadlock.

The pick reads a comparison's free slots from its row (``Comparison.leases_held``), so it costs the
same however many leases are held, and it takes its slot there in the statement that locks the row
(``_hold_leasable``): on PostgreSQL a pick that meets a row another lease just filled sees it full
(the lock's recheck reads the row as committed). A label, skip or undo counts the leases again under
the row's lock, as does a lease whose row counted one that has expired. Where the quick pass finds
nothing, the slower one counts the leases themselves, so a count that drifted high never strands a
comparison.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from feedback_app.models import Assignment, Campaign, CampaignMember, Comparison
from feedback_app.selectors.labeling import (
    HEAD_READ,
    Pick,
    assignment_current_for_rater,
    assignment_loaded,
    comparison_gold_id,
    comparison_leasable_statements,
    comparison_with_texts,
    leases_holding,
    slot_free_sql,
    slots_held_params,
)
from feedback_app.selectors.rows import cursor, row_locks, timestamp
from feedback_app.services import rows
from feedback_app.services.qualification import qualification_status

_ID = f"{connection.ops.quote_name(Comparison._meta.db_table)}.{connection.ops.quote_name('id')}"


def _slots_recount(but: str) -> str:
    # Both columns from one pass over the leases (a row-valued SET: PostgreSQL, and SQLite since 3.15).
    return f"(leases_held, leases_recount_at) = (SELECT COUNT(*), MIN(l.lease_expires_at) {leases_holding(_ID)}{but})"


# The SET clause that counts a comparison's leases again into its row (``Comparison.leases_held``): with a label, skip or undo
# (and a lease whose row still counted an expired one), under the row's lock. Its parameters are ``slots_recount_params(now)``.
SLOTS_RECOUNT = _slots_recount("")
# The same, leaving one lease out (``slots_recount_params(now, but=its id)``): the label's own, which the statement that records
# the label marks labelled, but which that statement's recount, reading the rows as they were before it, still sees leased.
SLOTS_RECOUNT_BUT_ONE = _slots_recount(" AND l.id <> %s")


def slots_recount_params(now: datetime, *, but: int | None = None) -> list:
    return slots_held_params(now) if but is None else [*slots_held_params(now), but]


def comparison_slots_recount(*, comparison_ids: list[int], now: datetime) -> None:
    """Count the comparisons' leases again into their rows. Call holding their row locks (or with no lease under way)."""
    if comparison_ids:  # on the labeling path's prepared-statement cursor
        with cursor() as c:
            c.execute(f"UPDATE {Comparison._meta.db_table} SET {SLOTS_RECOUNT} WHERE id IN ({', '.join(['%s'] * len(comparison_ids))})",
                      [*slots_recount_params(now), *comparison_ids])


def assignment_lease_next(*, rater, campaign: Campaign, now: datetime | None = None) -> Assignment | None:
    """Return the rater's current lease in the campaign, or lease them its next comparison; None when none is left
    (or the campaign is archived: nothing there is labelled any more)."""
    now = now or timezone.now()
    with transaction.atomic():
        found = lease_next_without_waiting(rater=rater, campaign=campaign, now=now)
    return lease_settled(found, rater=rater, campaign=campaign, now=now)


def assignment_lease_ahead(*, rater, campaign: Campaign, shown: Assignment, now: datetime | None = None) -> Assignment | None:
    """Return the comparison the rater's page holds ready after ``shown``: their oldest other lease, else a new one.

    At most one lease ahead, under the same slot rules as any lease (it holds a slot until it is
    labelled, skipped or expires); None when LABEL_PREFETCH is off or nothing is left.
    """
    if not settings.LABEL_PREFETCH:
        return None
    now = now or timezone.now()
    with transaction.atomic():
        found = assignment_current_for_rater(rater=rater, campaign_id=campaign.pk, now=now, other_than=shown.pk)
        if found is None:
            found = _lease_new(rater=rater, campaign=campaign, now=now)
    return lease_settled(found, rater=rater, campaign=campaign, now=now)


# What _lease_new returns when the comparison it found free was locked by others, or turned out full once it held it
# (its pick saw the table as it was before another rater's lease committed): the caller ends its transaction, which lets
# go of that comparison, and ``_lease_waiting`` takes the slower way in a transaction of its own.
_BUSY = object()


# What ``lease_next_without_waiting`` is told when its caller has not read the rater's current lease.
UNREAD = object()


class PickBeside:
    """The rater's next pick, written into the statement that records their label (``label_record_and_lease_next``), where
    it can be: ``lease_pick_beside``. ``parts`` are its part of that statement, which takes the slot of the comparison found
    only where the rater holds no other lease (the statement's read of it); ``taken`` is told what they read. ``found``
    is then the id of that comparison, or None for none found (UNREAD until then). ``gold`` is the lease's gold draw, made
    once, before the label."""

    def __init__(self, *, pick: Pick | None, gold: bool, expires: datetime) -> None:
        self.pick, self.gold, self.expires, self.found = pick, gold, expires, UNREAD

    def parts(self, current_sql: str, current_params: list) -> tuple[list[tuple[str, list]], list[tuple[str, list]]]:
        """The WITH clauses (``rows.insert_then_update``'s ``withs``) that read the rater's other current lease (``current_sql``,
        ``assignment_current_sql``: once, for both its uses) and the queue's head, and take the found comparison's slot where
        the rater holds no other lease; and the reads that select what they read: the current lease's id, the comparison
        found and the head (for ``taken``)."""
        expiry = timestamp(self.expires)
        # CASE: the pick's sub-query (which locks the row it finds) runs only where the rater holds no other lease.
        found = f"CASE WHEN (SELECT id FROM other_lease) IS NULL THEN {self.pick.found} END"
        withs = [(f"other_lease AS ({current_sql})", current_params), (self.pick.head_clause, self.pick.head_params),
                 (f"picked AS ({_slot_hold_sql(found)} RETURNING id)", [expiry, expiry, *self.pick.found_params])]
        return withs, [("SELECT id FROM other_lease", []), ("SELECT id FROM picked", []), ("SELECT id FROM head", [])]

    def taken(self, found: int | None, head: int | None) -> None:
        self.found = found
        self.pick.head_read(head)


def lease_pick_beside(*, rater, campaign: Campaign, now: datetime) -> PickBeside | None:
    """The pick of the lease that follows the rater's label, to be written into the label's statement (one statement fewer
    a label): on PostgreSQL, in an active campaign that asks no qualification (whose status a gold label changes), where
    the lease's gold draw, made here, drew no gold pair. None where it cannot be; ``PickBeside.gold`` tells the lease the
    draw made."""
    if not row_locks() or campaign.state != Campaign.State.ACTIVE or campaign.qualification_pairs:
        return None
    expires = _lease_expiry(campaign=campaign, now=now)
    if random.random() < campaign.gold_rate:
        return PickBeside(pick=None, gold=True, expires=expires)
    (pick,) = comparison_leasable_statements(rater=rater, campaign_id=campaign.pk, now=now, lock="skip")
    return PickBeside(pick=pick, gold=False, expires=expires)


def lease_next_without_waiting(*, rater, campaign: Campaign, now: datetime, current_id=UNREAD, beside: PickBeside | None = None):
    """``assignment_lease_next``'s work without waiting for another transaction's row lock (``_BUSY`` where it would have
    to: pass what it returns to ``lease_settled`` once the transaction has ended); call inside a transaction.

    ``current_id`` is the id of the rater's current lease (or None) where the caller read it in this transaction, with
    ``assignment_current_sql`` (the label's statement does, beside its writes). ``beside`` is the pick that statement made
    (``lease_pick_beside``), if it made one."""
    if campaign.state == Campaign.State.ARCHIVED:
        return None
    current = (assignment_current_for_rater(rater=rater, campaign_id=campaign.pk, now=now) if current_id is UNREAD
               else assignment_loaded(current_id))
    if current is not None:
        return current
    if beside is not None and beside.found is not UNREAD:
        return _lease_found(rater=rater, campaign=campaign, now=now, beside=beside)
    return _lease_new(rater=rater, campaign=campaign, now=now, gold=None if beside is None else beside.gold)


def _lease_found(*, rater, campaign: Campaign, now: datetime, beside: PickBeside):
    """``_lease_new``'s lease of the comparison whose slot ``beside``'s pick took, expiring when that pick counted it to
    (``_BUSY`` where it found none, or the comparison was full once locked, as ``_lease_new``'s one pick)."""
    if beside.found is None:
        return _BUSY
    comparison = _slot_taken(rater=rater, found=beside.found, now=now, expires=beside.expires)
    if comparison is None:
        comparison_slots_recount(comparison_ids=[beside.found], now=now)
        return _BUSY
    return _lease_insert(rater=rater, campaign=campaign, comparison=comparison, now=now)


def _lease_new(*, rater, campaign: Campaign, now: datetime, gold: bool | None = None):
    """Lease the rater a comparison of the campaign they never held (a gold pair at the gold rate: ``gold``, where the draw
    was made before); None when none is free or the campaign is not active, ``_BUSY`` when its one pick found nothing it
    could lock or a comparison full once locked. Call inside a transaction; it never waits for a row lock."""
    if campaign.state != Campaign.State.ACTIVE:
        return None
    qualifying = qualification_status(rater=rater, campaign=campaign)
    if qualifying == CampaignMember.Qualification.FAILED:
        return None
    comparison = None
    if qualifying == CampaignMember.Qualification.PENDING:  # the qualification's gold pairs first, and only them
        comparison = _lock_gold(rater=rater, campaign_id=campaign.pk)
        if comparison is None:
            return None
    elif random.random() < campaign.gold_rate if gold is None else gold:
        comparison = _lock_gold(rater=rater, campaign_id=campaign.pk)
    if comparison is None:
        expires = _lease_expiry(campaign=campaign, now=now)
        if not row_locks():  # SQLite: its writers take turns, so no row is locked by another
            comparison = (_lock_leasable(rater=rater, campaign_id=campaign.pk, now=now, expires=expires, lock="")
                          or _lock_leasable(rater=rater, campaign_id=campaign.pk, now=now, expires=expires, lock="", exact=True))
        else:
            comparison = _lock_leasable(rater=rater, campaign_id=campaign.pk, now=now, expires=expires, lock="skip", tries=1)
            if comparison is None:
                return _BUSY
    return None if comparison is None else _lease_insert(rater=rater, campaign=campaign, comparison=comparison, now=now)


def lease_settled(found, *, rater, campaign: Campaign, now: datetime) -> Assignment | None:
    """Return the lease ``lease_next_without_waiting`` (or ``_lease_new``) found, or, where it returned ``_BUSY``, the one
    ``_lease_waiting`` takes. Call after the transaction that found it has ended (which let go of any row it held)."""
    return _lease_waiting(rater=rater, campaign=campaign, now=now) if found is _BUSY else found


@transaction.atomic
def _lease_waiting(*, rater, campaign: Campaign, now: datetime) -> Assignment | None:
    """Lease the rater a free comparison after ``_lease_new`` returned ``_BUSY``: first any that no one holds locked, then
    waiting for those others hold.

    A transaction of its own, never inside one that holds a row lock, and each comparison it locks is locked in a
    savepoint that is rolled back if the comparison turns out full: so it never holds one row while it waits for
    another, and two raters cannot each hold what the other waits for (PostgreSQL's deadlock).
    """
    expires = _lease_expiry(campaign=campaign, now=now)
    comparison = (_lock_leasable(rater=rater, campaign_id=campaign.pk, now=now, expires=expires, lock="skip", let_go=True, exact=True)
                  or _lock_leasable(rater=rater, campaign_id=campaign.pk, now=now, expires=expires, lock="wait", let_go=True, exact=True))
    return None if comparison is None else _lease_insert(rater=rater, campaign=campaign, comparison=comparison, now=now)


def _lease_insert(*, rater, campaign: Campaign, comparison: Comparison, now: datetime) -> Assignment:
    # made where its slots were counted (_slot_taken); taken off the comparison, which the lease refers to from here: the
    # two referring to each other would be a cycle that only the garbage collector frees
    lease = comparison.__dict__.pop("lease", None)
    if lease is None:
        lease = rows.insert(_lease_new_row(rater=rater, comparison_id=comparison.pk, expires=_lease_expiry(campaign=campaign, now=now), now=now))
    lease.comparison = comparison
    if getattr(comparison, "slots_recount", False):  # its pick counted this lease on top of one that expired meanwhile
        comparison_slots_recount(comparison_ids=[comparison.pk], now=now)
    return lease


def _lease_new_row(*, rater, comparison_id: int, expires: datetime, now: datetime) -> Assignment:
    return Assignment(comparison_id=comparison_id, rater=rater, a_on_left=random.random() < 0.5, leased_at=now, lease_expires_at=expires)


def _lease_expiry(*, campaign: Campaign, now: datetime) -> datetime:
    return now + timedelta(seconds=campaign.lease_time)


def _lock_gold(*, rater, campaign_id: int) -> Comparison | None:
    """Lock and return a gold pair of the campaign the rater has not seen; gold pairs have no slot limit."""
    found = comparison_gold_id(rater=rater, campaign_id=campaign_id, lock="skip")
    return None if found is None else comparison_with_texts(comparison_id=found)


def _hold_leasable(*, rater, campaign_id: int, now: datetime, expires: datetime, exclude_ids: list[int], lock: str, exact: bool) -> int | None:
    """Pick a comparison with a free slot (``comparison_leasable_statements``, from ``queue_head_hint``), lock it and count the
    lease about to be made into its row, in one statement for each of the pick's; return its id, or None when none is free.
    The queue's head the pick read comes back with the row (``Pick.head_read``); with none found, it is not needed."""
    expiry = timestamp(expires)
    for pick in comparison_leasable_statements(rater=rater, campaign_id=campaign_id, now=now, exclude_ids=exclude_ids, lock=lock, exact=exact):
        sql = f"{pick.head}{_slot_hold_sql(pick.found)} RETURNING id, {HEAD_READ}"
        with cursor() as c:
            c.execute(sql, [*pick.head_params, expiry, expiry, *pick.found_params])
            found = c.fetchone()
        if found is not None:
            pick.head_read(found[1])
            return found[0]
    return None


def _slot_hold_sql(found: str) -> str:
    """The UPDATE that counts a lease about to be made (expiring at the first two parameters) into the row of the comparison
    that ``found`` (a pick's sub-query, ``Pick.found``) selects."""
    return (f"UPDATE {Comparison._meta.db_table} SET leases_held = leases_held + 1, leases_recount_at = CASE WHEN "
            f"leases_recount_at IS NULL OR leases_recount_at > %s THEN %s ELSE leases_recount_at END WHERE id = {found}")


def _slot_taken(*, rater, found: int, now: datetime, expires: datetime) -> Comparison | None:
    """Count the leases of comparison ``found``, whose row a pick locked and counted the lease in, again under the lock and make
    the lease where that count leaves a slot free; return the comparison, its ``lease`` made, or None where it is full."""
    # The filter ran before the lock was held; count again under it (a statement of its own sees the leases committed since).
    # On PostgreSQL the same statement makes the lease where that count leaves a slot free; on SQLite (None) the row is
    # inserted after it.
    lease = _lease_new_row(rater=rater, comparison_id=found, expires=expires, now=now)
    condition, condition_params = slot_free_sql(comparison_id=found, now=now)
    when = rows.insert_when(lease, condition, condition_params)
    comparison = comparison_with_texts(comparison_id=found, leases_at=now, beside=when)
    if comparison.label_count + comparison.active_leases >= comparison.required_labels:
        return None
    # the row's count was the leases' and now adds this one, unless a lease it counted has expired since
    comparison.slots_recount = comparison.leases_held != comparison.active_leases + 1 or comparison.leases_recount_at <= now
    if when is None:
        comparison.lease = rows.insert(lease)
    elif comparison.beside is not None:
        comparison.lease = rows.inserted(lease, comparison.beside)
    return comparison


def _lock_leasable(*, rater, campaign_id: int, now: datetime, expires: datetime, lock: str, tries: int | None = None,
                   let_go: bool = False, exact: bool = False) -> Comparison | None:
    """Lock and return a comparison with a slot free for ``rater``, its prompt and responses joined in, its row already
    counting the lease that will expire at ``expires``; None when none is found in ``tries`` picks (None: as many as it
    takes). ``lock`` and ``exact`` as for ``comparison_leasable_id``.

    Call inside a transaction. A comparison found full stays locked until the transaction ends, unless ``let_go``: then
    each is locked in a savepoint, rolled back when it turns out full, so none is held while the next is waited for.
    """
    tried: list[int] = []
    while tries is None or len(tried) < tries:
        mark = transaction.savepoint() if let_go else None
        found = _hold_leasable(rater=rater, campaign_id=campaign_id, now=now, expires=expires, exclude_ids=tried, lock=lock, exact=exact)
        if found is None:
            return None
        comparison = _slot_taken(rater=rater, found=found, now=now, expires=expires)
        if comparison is not None:
            return comparison
        if mark is not None:
            transaction.savepoint_rollback(mark)  # the lock and the count taken with it
        else:  # full once locked (its count had drifted low): count it right before the lock goes with the transaction
            comparison_slots_recount(comparison_ids=[found], now=now)
        tried.append(found)
    return None
