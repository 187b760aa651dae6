"""What a rater can be given, and what they hold."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import NamedTuple

from django.db.models import QuerySet
from django.utils import timezone

from feedback_app.models import Assignment, Comparison, PreferenceLabel, Prompt, Response
from feedback_app.selectors import rows
from feedback_app.selectors.queue_head import queue_head_hint, queue_head_seen


def _active_leases(now: datetime) -> QuerySet[Assignment]:
    return Assignment.objects.filter(status=Assignment.Status.LEASED, lease_expires_at__gt=now)


# The fixed values of the statements below, written in as literals (rows.constant: the generic plan knows them).
_LEASED, _OPEN = rows.constant(Assignment.Status.LEASED.value), rows.constant(Comparison.Status.OPEN.value)


def leases_holding(comparison_column: str) -> str:
    """The FROM and WHERE of the unexpired, unlabelled leases (``l``) holding slots of the comparison whose id is
    ``comparison_column``; its one parameter is ``slots_held_params(now)``."""
    return (f"FROM {Assignment._meta.db_table} l WHERE l.comparison_id = {comparison_column} AND l.status = {_LEASED} "
            f"AND l.lease_expires_at > %s")


# How many leases hold slots of comparison ``c``, counted.
_SLOTS_HELD = f"(SELECT COUNT(*) {leases_holding('c.id')})"


# Whether comparison ``c`` has a slot free by the count its row keeps (``Comparison.leases_held``), written as the condition of
# the index of such comparisons (``comparison_slot_free``), so that the pick's walk reads that index and never the held ones.
_SLOT_FREE_BY_ROW = "c.label_count < (c.required_labels - c.leases_held)"

# Whether comparison ``c``'s row counts a lease that may have run out by now (the one parameter), and the comparison has fewer
# labels than it needs: from the first expiry of the leases counted on, the count may be high, and the comparison is a
# candidate; the lock-and-count of the lease decides. Read by the index of such rows (``comparison_recount_due``).
_RECOUNT_DUE = "c.leases_recount_at <= %s AND c.label_count < c.required_labels"


def slots_held_params(now: datetime) -> list:
    return [rows.timestamp(now)]


def active_lease_count(*, comparison_id: int, now: datetime) -> int:
    """Return how many unexpired, unlabelled leases hold a slot of the comparison (written out: every lease and label asks it)."""
    return rows.scalar(f"SELECT {_SLOTS_HELD} FROM {Comparison._meta.db_table} c WHERE c.id = %s", [*slots_held_params(now), comparison_id])


def assignment_current_for_rater(*, rater, campaign_id: int, now: datetime, other_than: int | None = None) -> Assignment | None:
    """Return the rater's oldest unexpired lease on an open comparison of the campaign (other than assignment ``other_than``), if any.

    Asked before every lease; written out like ``comparison_leasable_id``, and the row is loaded
    only when there is one.
    """
    return assignment_loaded(rows.scalar(*assignment_current_sql(rater=rater, campaign_id=campaign_id, now=now, other_than=other_than)))


def assignment_current_sql(*, rater, campaign_id: int, now: datetime, other_than: int | None = None) -> tuple[str, list]:
    """``assignment_current_for_rater``'s statement and its parameters: it selects the lease's id (or no row)."""
    assignment, comparison, prompt = Assignment._meta.db_table, Comparison._meta.db_table, Prompt._meta.db_table
    sql = (
        f"SELECT a.id FROM {assignment} a INNER JOIN {comparison} c ON c.id = a.comparison_id INNER JOIN {prompt} p ON p.id = c.prompt_id "
        f"WHERE a.rater_id = %s AND a.status = {_LEASED} AND a.lease_expires_at > %s AND c.status = {_OPEN} AND p.campaign_id = %s"
        f"{' AND a.id <> %s' if other_than is not None else ''} ORDER BY a.leased_at, a.id LIMIT 1"
    )
    return sql, [rater.pk, rows.timestamp(now), campaign_id, *([other_than] if other_than is not None else [])]


def assignment_loaded(assignment_id: int | None) -> Assignment | None:
    """Return the assignment ``assignment_id`` with its comparison and texts (``assignment_with_comparison``); None for None."""
    return None if assignment_id is None else assignment_with_comparison(assignment_id=assignment_id)


def _never_held() -> str:
    """The candidate ``c`` was never held by the rater (the one parameter): one probe of the (rater, comparison) index for
    each candidate the pick's walk reaches with a free slot, so a pick reads none of the rater's history but what it walks.

    Written ``COALESCE(probe, 0) <> 1``, not ``probe IS NULL``: PostgreSQL guesses that 0.5% of rows pass an ``IS NULL`` of a
    sub-query, and 99.5% an ``<>``. Most candidates were never held by the rater, and with the guess that almost none were,
    the generic plan of a walk that stops at the first one found read its whole stretch and sorted it, probing every row,
    wherever the statistics said that few comparisons were open (a studio whose comparisons are mostly complete): 0.35 ms
    a pick against 0.15 (``lease_pick --snapshot`` after its vacuum; bench/README, session 44).

    A scalar subquery, which PostgreSQL runs per row and never turns into a join. Before it, the rater's assignments were
    read into a hash: as a correlated ``NOT EXISTS``, every one of them (an anti-join), and then as ``NOT IN`` those from the
    queue's head on, which still read everything the rater labelled since the head while the head stayed open (a lease
    held there by a rater who walked away, or a comparison waiting for more labels than its raters can give): 40 rows at
    40 labels, a 20,000-label rater's history at 20,000. How far the walk itself goes is bounded by ``PICK_REACH``."""
    return f"COALESCE((SELECT 1 FROM {Assignment._meta.db_table} h WHERE h.rater_id = %s AND h.comparison_id = c.id), 0) <> 1"


# How far, in comparison ids, the pick walks probing whether the rater held each candidate (``_never_held``): from the queue's
# head, and then from this far behind the last comparison the rater ever held, after which none was held. Without the
# bound, a rater far ahead (each comparison waits for labels of raters who have not come to it) had every pick walk
# everything they had labelled: 43 ms at 20,000 (bench/README, session 42).
PICK_REACH = 100


def _queue(alias: str, read_by: str = "") -> str:
    """The FROM and WHERE of the campaign's (the one parameter) open comparisons but gold pairs, as ``alias`` (``read_by``:
    ``_indexed_by``)."""
    return (f"FROM {Comparison._meta.db_table} {alias}{read_by} INNER JOIN {Prompt._meta.db_table} {alias}p ON {alias}p.id = {alias}.prompt_id "
            f"WHERE {alias}.status = {_OPEN} AND NOT {alias}.is_gold AND {alias}p.campaign_id = %s")


def _indexed_by(vendor: str, index: str) -> str:
    """SQLite's clause that has a statement read its table by ``index`` (an error where it cannot), where its planner, which
    keeps no statistics of an expression, would read the queue's index instead and sort; PostgreSQL's picks the index."""
    return f" INDEXED BY {index}" if vendor == "sqlite" else ""


# The queue's head: the campaign's (the first parameter) oldest open comparison but gold pairs from the id of the second on
# (``queue_head_hint``), as the WITH of the pick's statements.
_HEAD_WITH = f"WITH head AS (SELECT q.id {_queue('q')} AND q.id >= %s ORDER BY q.id LIMIT 1) "
HEAD_READ = "(SELECT id FROM head)"  # the head that WITH read, as a value (the lease's RETURNING selects it)

# The last comparison of the campaign (the second parameter) but gold pairs that the rater (the first) ever held, or 0: their
# assignments walked from the last back, each probed for its campaign (a scalar subquery, run per row, so the planner cannot
# read the whole campaign's comparisons instead), to the first of the campaign's.
_LAST_HELD = (f"COALESCE((SELECT h.comparison_id FROM {Assignment._meta.db_table} h WHERE h.rater_id = %s AND (SELECT 1 FROM "
              f"{Comparison._meta.db_table} hc INNER JOIN {Prompt._meta.db_table} hp ON hp.id = hc.prompt_id WHERE hc.id = h.comparison_id "
              f"AND hp.campaign_id = %s AND NOT hc.is_gold) IS NOT NULL ORDER BY h.comparison_id DESC LIMIT 1), 0)")


def row_lock_clause(lock: str) -> str:
    """The row lock clause for ``lock``: "" (none), "wait" or "skip" (``FOR UPDATE OF c [SKIP LOCKED]`` where the database has row
    locks; SQLite's writers are serialised by their IMMEDIATE transactions)."""
    if not lock or not rows.row_locks():
        return ""
    return "FOR UPDATE OF c" + (" SKIP LOCKED" if lock == "skip" else "")


_WITH_TEXTS = (f"INNER JOIN {Prompt._meta.db_table} p ON p.id = c.prompt_id INNER JOIN {Response._meta.db_table} ra ON ra.id = c.response_a_id "
               f"INNER JOIN {Response._meta.db_table} rb ON rb.id = c.response_b_id")


def _texts_set(comparison: Comparison, prompt: Prompt, response_a: Response, response_b: Response) -> Comparison:
    comparison.prompt, comparison.response_a, comparison.response_b = prompt, response_a, response_b
    return comparison


def comparison_with_texts(*, comparison_id: int, leases_at: datetime | None = None, beside: tuple[str, list, str] | None = None) -> Comparison:
    """Return the comparison with its prompt and responses joined in (one statement, written out: every lease loads one).

    With ``leases_at``, the same statement counts the unexpired, unlabelled leases holding its slots then, as
    ``comparison.active_leases`` (``active_lease_count``): read after a lock on the row, it is the count under that lock.
    ``beside`` is a caller's WITH clause, its parameters and a column of it: run in the same statement (a write of the
    caller's that needs this read's snapshot), its column's value comes back as ``comparison.beside``.
    """
    count = f", {_SLOTS_HELD}" if leases_at is not None else ""
    clause, clause_params, column = beside or ("", [], "")
    sql = (f"{clause} SELECT {rows.columns(Comparison, 'c')}, {rows.columns(Prompt, 'p')}, {rows.columns(Response, 'ra')}, "
           f"{rows.columns(Response, 'rb')}{count}{', ' + column if column else ''} FROM {Comparison._meta.db_table} c {_WITH_TEXTS} WHERE c.id = %s")
    params = slots_held_params(leases_at) if leases_at is not None else []
    found = rows.one(sql, [*clause_params, *params, comparison_id], Comparison, Prompt, Response, Response)
    if found is None:
        raise Comparison.DoesNotExist(f"no comparison {comparison_id}")
    comparison = _texts_set(*found[:4])
    if leases_at is not None:
        comparison.active_leases = found[4]
    if beside is not None:
        comparison.beside = found[-1]
    return comparison


def slot_free_sql(*, comparison_id: int, now: datetime) -> tuple[str, list]:
    """A condition and its parameters: the comparison has a slot free, counting the unexpired, unlabelled leases holding
    its slots ``now`` (``comparison_with_texts``'s ``active_leases``, in the same statement the same count)."""
    return (f"EXISTS (SELECT 1 FROM {Comparison._meta.db_table} c WHERE c.id = %s AND c.label_count + {_SLOTS_HELD} < c.required_labels)",
            [comparison_id, *slots_held_params(now)])


def comparison_leasable_id(*, rater, campaign_id: int, now: datetime, exclude_ids: list[int] = (), lock: str = "",
                           exact: bool = False) -> int | None:
    """Return the id of the campaign's oldest open comparison within reach that the rater never held and that still has a
    free slot, or None (``comparison_leasable_statements``, in order, from ``queue_head_hint``)."""
    for pick in comparison_leasable_statements(rater=rater, campaign_id=campaign_id, now=now, exclude_ids=exclude_ids, lock=lock, exact=exact):
        found, head = rows.tuples(*pick.select())[0]
        pick.head_read(head)
        if found is not None:
            return found
    return None


class Pick(NamedTuple):
    """One of the pick's statements, in parts, so that a caller may write it into its own: ``head``, a WITH clause that reads
    the queue's head (``_HEAD_WITH``, the parameters ``head_params``), and ``found``, a sub-query that selects the comparison
    found or NULL (``found_params``), which reads ``head`` from the id ``hint`` on, in the campaign ``campaign_id``."""

    head: str
    found: str
    head_params: list
    found_params: list
    campaign_id: int
    hint: int

    @property
    def head_clause(self) -> str:
        """``head`` as one clause of a WITH (``head AS (...)``), for a statement of the caller's with WITH clauses of its own."""
        return self.head.removeprefix("WITH ").rstrip()

    def select(self) -> tuple[str, list]:
        """The statement that selects the comparison found (or NULL) and the queue's head, with its parameters."""
        return f"{self.head}SELECT {self.found}, {HEAD_READ}", [*self.head_params, *self.found_params]

    def head_read(self, head: int | None) -> None:
        """Keep the head this statement read (``queue_head_seen``), for the process's next picks to walk from."""
        queue_head_seen(self.campaign_id, head, hint=self.hint)


def comparison_leasable_statements(*, rater, campaign_id: int, now: datetime, exclude_ids: list[int] = (), lock: str = "",
                                   exact: bool = False, hint: int | None = None) -> list[Pick]:
    """The pick's statements, to run in order until one finds a comparison: on PostgreSQL the one of ``comparison_leasable_sql``,
    on SQLite its walks apart (``comparison_leasable_picks``). A statement costs SQLite no round trip, and setting up the
    second walk at every pick cost it more than running it where the first finds none: the pick of a rater who holds nothing
    took 0.095 ms in one statement against 0.067-0.080 in two (``lease_pick``). Each reads the queue's head from ``hint``
    (None: ``queue_head_hint``), to be kept with ``Pick.head_read``."""
    hint = queue_head_hint(campaign_id, exact=exact) if hint is None else hint
    return _picks(rows.vendor() == "postgresql", rater=rater, campaign_id=campaign_id, now=now, exclude_ids=exclude_ids, lock=lock,
                  exact=exact, hint=hint)


def _picks(together: bool, *, rater, campaign_id: int, now: datetime, exclude_ids, lock: str, exact: bool, hint: int) -> list[Pick]:
    """The pick's statements (``_picks_written``): all its walks in one (``together``), or each stretch's in its own (the walk
    of the rows due a recount with the first's)."""
    walks = _picks_written(rows.vendor(), row_lock_clause(lock), exact, len(exclude_ids), PICK_REACH)
    head, last_held = [campaign_id, hint], [rater.pk, campaign_id]
    if exact:
        found = [rater.pk, *slots_held_params(now), *exclude_ids]
        params = [[campaign_id, *found], [campaign_id, *last_held, *found]]
    else:
        found = [rater.pk, *exclude_ids]
        params = [[campaign_id, *slots_held_params(now), *last_held, *found], [campaign_id, *found], [campaign_id, *last_held, *found]]
    walked = list(zip(walks, params))
    statements = [walked] if together else [walked[:-1], walked[-1:]]
    return [Pick(_HEAD_WITH, f"COALESCE({', '.join(walk for walk, _ in statement)})" if len(statement) > 1 else statement[0][0], head,
                 [p for _, walk_params in statement for p in walk_params], campaign_id, hint) for statement in statements]


def comparison_leasable_sql(*, rater, campaign_id: int, now: datetime, exclude_ids: list[int] = (), lock: str = "",
                            exact: bool = False, hint: int = 0) -> tuple[str, list]:
    """Return the statement, and its parameters, that selects the id of the campaign's oldest open comparison within reach
    that the rater never held and that has a free slot (the lease's pick: ``services.leasing`` takes the slot in the same
    statement), and the queue's head.

    Within reach: the statement walks two stretches of the queue (``comparison_leasable_picks``), the second only where the
    first finds none (and before both, the comparisons in either whose row counts a lease that may have run out):
    ``PICK_REACH`` ids from the queue's head (its oldest open comparison), then everything from ``PICK_REACH`` ids behind
    the last comparison the rater ever held (every one after that they never held). So a pick probes at most about twice
    ``PICK_REACH`` comparisons for the rater's assignments, however far ahead of the head the rater is, and the head is
    always within reach: the queue's oldest comparison is offered to every rater who never held it. One in neither stretch
    that the rater passed while it was full, and that has a free slot again, is offered to them once the head comes within
    reach of it (the leases that keep the comparisons before it full end with a label or expire); to the raters who never
    came to it, at once. The head is read from ``hint`` on (``queue_head_hint``; 0: the queue's start).

    One statement, with the head read once for both (a WITH): as two statements, the second ran for two picks in three under
    ``label_load``, whose queue's head a few leases held from its warm-up keep in place, as leases of raters who walked
    away do in a studio, and cost the database 0.1-0.2 ms a label more (bench/README, session 42).

    The free slots are read from the comparison's row (``Comparison.leases_held``) and walked by an index of the comparisons
    with one (``_picks_written``), so the pick costs the same however many leases the raters hold; with ``exact``, the
    leases are counted instead (a row whose count drifted high is found too).
    ``lock`` is "" (no lock), "wait" or "skip" (``FOR UPDATE [SKIP LOCKED]`` of the comparison's row,
    where the database has row locks; SQLite's writers are serialised by its IMMEDIATE transactions); each walk runs only where
    those before it found none, so one row at most is locked.
    Written out, not built by the ORM: it runs for every lease, and building it was a third of a label's CPU.
    """
    (pick,) = _picks(True, rater=rater, campaign_id=campaign_id, now=now, exclude_ids=exclude_ids, lock=lock, exact=exact, hint=hint)
    return pick.select()


def comparison_leasable_picks(*, rater, campaign_id: int, now: datetime, exclude_ids: list[int] = (), lock: str = "",
                              exact: bool = False, hint: int = 0) -> tuple[tuple[str, list], tuple[str, list]]:
    """Return ``comparison_leasable_sql``'s two stretches as statements of their own, with their parameters (each reads the
    head itself, from ``hint``): the oldest comparison the rater never held with a free slot within ``PICK_REACH`` ids of the
    queue's head (after, without ``exact``, the comparisons within either stretch whose row counts a lease that may have run
    out), and the oldest from ``PICK_REACH`` ids behind the last comparison the rater ever held (past the first's stretch);
    each with the head."""
    first, second = _picks(False, rater=rater, campaign_id=campaign_id, now=now, exclude_ids=exclude_ids, lock=lock, exact=exact, hint=hint)
    return first.select(), second.select()


@functools.lru_cache(maxsize=64)
def _picks_written(vendor: str, locking: str, exact: bool, excluded: int, reach: int) -> tuple[str, ...]:
    """The pick's walks (each a ``Pick.found``), in the order they are tried, written once for each shape; each reads the
    head from the WITH written before it (``_HEAD_WITH``).

    The first stretch is bounded on both sides, by the head and ``reach`` ids past it, the second runs from past the first's
    on. Both start at the head, not at the queue's start, so neither visits the completed comparisons' entries before it
    (``queue_head_hint``). With both bounds PostgreSQL's generic plan used to read the stretch, sort it and probe every
    row (0.38 ms a pick against 0.14, session 42), until the test of the rater's assignments told the planner that most
    candidates pass it (``_never_held``). The head is the oldest open comparison, a look at the index.

    Without ``exact`` the stretches are walked by the index of the comparisons with a slot free by their row's count
    (``comparison_slot_free``): a pick reads none of those the raters hold, however many (it walked past every one before:
    1.13-1.30 ms a pick behind 2,000 held leases against 0.27-0.31 behind one on PostgreSQL; bench/README, session 50). The
    rows whose count may be high because a lease it counts has run out (``_RECOUNT_DUE``) are not in that index; they are
    walked first, within either stretch, by the index of rows counting leases (``comparison_recount_due``), the first to run
    out first: nearly always none, and a comparison whose lease ran out is the one a rater walked away from, which is
    finished first. With ``exact`` the leases are counted instead, one candidate at a time, along the queue's index (the
    slow pass, where the quick one found none). SQLite is told which index to read (``_indexed_by``)."""
    not_in = f" AND c.id NOT IN ({', '.join(['%s'] * excluded)})" if excluded else ""
    greatest = "GREATEST" if vendor == "postgresql" else "MAX"
    head = HEAD_READ
    first = f"c.id >= {head} AND c.id < {head} + {reach}"
    second = f"c.id > {greatest}({_LAST_HELD} - {reach}, {head} + {reach - 1})"
    free = f"c.label_count + {_SLOTS_HELD} < c.required_labels" if exact else _SLOT_FREE_BY_ROW
    found = f"AND {_never_held()} AND {free}{not_in} ORDER BY c.id LIMIT 1 {locking}"
    queue = _queue("c", "" if exact else _indexed_by(vendor, "comparison_slot_free"))
    walks = [f"(SELECT c.id {queue} AND {first} {found})", f"(SELECT c.id {queue} AND {second} {found})"]
    if exact:
        return tuple(walks)
    due = (f"(SELECT c.id {_queue('c', _indexed_by(vendor, 'comparison_recount_due'))} AND {_RECOUNT_DUE} AND c.id >= {head} "
           f"AND (c.id < {head} + {reach} OR {second}) AND {_never_held()}{not_in} ORDER BY c.leases_recount_at, c.id LIMIT 1 {locking})")
    return due, *walks


def comparison_gold_id(*, rater, campaign_id: int, lock: str = "") -> int | None:
    """Return the id of the campaign's oldest open gold pair the rater never held, or None; ``lock`` as for ``comparison_leasable_id``.

    ``is_gold = TRUE``, not the bare column the ORM writes: SQLite uses its (is_gold, status) index
    only for a comparison, and without it walked every open comparison (54 ms at 250,000) for the
    few gold pairs. A literal, not a parameter: see ``rows.constant``.
    """
    comparison, prompt = Comparison._meta.db_table, Prompt._meta.db_table
    sql = (
        f"SELECT c.id FROM {comparison} c INNER JOIN {prompt} p ON p.id = c.prompt_id "
        f"WHERE c.is_gold = {rows.constant(True)} AND c.status = {_OPEN} AND p.campaign_id = %s "
        f"AND {_never_held()} ORDER BY c.id LIMIT 1 {row_lock_clause(lock)}"
    )
    return rows.scalar(sql, [campaign_id, rater.pk])


def labels_today_count(*, rater, campaign_id: int) -> int:
    """Return how many labels the rater gave the campaign since local midnight."""
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return PreferenceLabel.objects.filter(rater=rater, created_at__gte=start, campaign_id=campaign_id).count()


def labels_for_rater_newest(*, rater, campaign_id: int) -> QuerySet[PreferenceLabel]:
    """Return the rater's labels in the campaign, newest first."""
    return PreferenceLabel.objects.filter(rater=rater, campaign_id=campaign_id).order_by("-created_at", "-id")


def rater_has_undoable_label(*, rater, campaign_id: int, now: datetime, window_seconds: int) -> bool:
    """Return whether the rater's last label in the campaign may still be undone."""
    last = labels_for_rater_newest(rater=rater, campaign_id=campaign_id).values("created_at", "assignment_id").first()
    return bool(last and last["assignment_id"] and (now - last["created_at"]).total_seconds() <= window_seconds)


def assignment_held_by_rater(*, rater, comparison_id: int, now: datetime) -> Assignment | None:
    """Return the rater's unexpired lease on the comparison, with what the page shows joined in; None if not held."""
    return (
        _active_leases(now)
        .filter(rater=rater, comparison_id=comparison_id)
        .select_related("comparison__prompt", "comparison__response_a", "comparison__response_b")
        .first()
    )


def assignment_with_comparison(*, assignment_id: int) -> Assignment:
    """Return the assignment with its comparison, prompt and responses joined in (one statement, written out)."""
    sql = (f"SELECT {rows.columns(Assignment, 'a')}, {rows.columns(Comparison, 'c')}, {rows.columns(Prompt, 'p')}, {rows.columns(Response, 'ra')}, "
           f"{rows.columns(Response, 'rb')} FROM {Assignment._meta.db_table} a INNER JOIN {Comparison._meta.db_table} c ON c.id = a.comparison_id "
           f"{_WITH_TEXTS} WHERE a.id = %s")
    found = rows.one(sql, [assignment_id], Assignment, Comparison, Prompt, Response, Response)
    if found is None:
        raise Assignment.DoesNotExist(f"no assignment {assignment_id}")
    assignment, *texts = found
    assignment.comparison = _texts_set(*texts)
    return assignment
