"""What the lease's pick costs while many raters hold leases at the head of the queue: the slots read from the comparison's
row (``Comparison.leases_held``) against the leases counted one comparison at a time, side by side in one run.

Every lease starts with a pick: the campaign's oldest open comparison the rater never held with a free slot. The
comparisons at the head of the queue are the ones other raters hold. The pick used to walk past them, counting each one's
leases with a subquery, then reading the count the comparison's row keeps; it now walks an index of the comparisons whose
row has a slot free, and never meets them. The slow pass of a lease still counts (``exact``), walking past them, so the two
are the pick with a different slot test, timed here in alternating blocks on a scratch database (SQLite, or
``DATABASE_URL``) with ``--held`` leases held by as many raters.

With ``--history N`` it first gives a second rater N labelled comparisons, complete, before the queue's head (a rater who
has worked for months), and times that rater's pick against the picker's, who has none, in alternating blocks:
the pick probes a rater's assignments only for the comparisons it walks, so the two should cost the same. With
``--pinned`` the queue's head is a comparison held by a rater who walked away (an unexpired lease, never labelled), and
the history comes after it: the head stays where it is while everything after it is labelled. With ``--ahead`` the
history's comparisons stay open, each waiting for two more labels (a rater far ahead of the others): the rater's pick is
the first comparison after them, the picker's the head.

With ``--snapshot K[,K...]`` another session holds a snapshot open (a ``REPEATABLE READ`` transaction that has read a row,
as a backup's ``pg_dump`` or a long report holds one) while the queue's first comparisons are completed, K in all by each
step, the head moving on past them; the picker's pick is timed after each step, and again once the snapshot is let go,
before and after one row is written elsewhere. On PostgreSQL the completed comparisons' entries stay in the queue's index
while any snapshot can still see them open; once none can, the next scan marks them dead, but only in a backend that has
seen a transaction id taken since (a write anywhere: in a labelling studio, the next label). Each step also times the
workers' two counts of open comparisons, the supply's and the dashboard's, which read the queue from its start.

    .venv/bin/python -m bench.lease_pick --held 2000
    DATABASE_URL=postgres://... .venv/bin/python -m bench.lease_pick --held 50 --held 2000
    DATABASE_URL=postgres://... .venv/bin/python -m bench.lease_pick --history 20000 --comparisons 25000 --held 50
    DATABASE_URL=postgres://... .venv/bin/python -m bench.lease_pick --history 20000 --pinned --comparisons 25000 --held 50
    DATABASE_URL=postgres://... .venv/bin/python -m bench.lease_pick --history 20000 --ahead --comparisons 25000 --held 50
    DATABASE_URL=postgres://... .venv/bin/python -m bench.lease_pick --snapshot 2000,10000,20000 --comparisons 25000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench.label_profile import fill, setup, statistics_refresh

PICKER = "pick-none"  # the rater whose picks are timed, who holds nothing


def hold(first: int, held_before: int) -> None:
    """Give ``first - held_before`` more raters one unexpired lease each, on the queue's first open comparisons that no lease
    holds (after the ``held_before`` held before), and count them into the comparisons' rows as the leases themselves would."""
    from feedback_app.models import Comparison

    ids = list(Comparison.objects.filter(status=Comparison.Status.OPEN, leases_held=0).order_by("id").values_list("id", flat=True)[:first - held_before])
    _leases_held(ids, [f"pick-holder-{held_before + i}" for i in range(len(ids))])


def _leases_held(ids: list[int], usernames: list[str]) -> None:
    """Make a rater of each of ``usernames`` and give it an unexpired lease (an hour) on the comparison of ``ids`` beside it,
    counted into the comparisons' rows as the leases themselves would."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from feedback_app.models import Assignment
    from feedback_app.services.leasing import comparison_slots_recount

    now = timezone.now()
    raters = get_user_model().objects.bulk_create([get_user_model()(username=name) for name in usernames])
    Assignment.objects.bulk_create([Assignment(comparison_id=c, rater=r, a_on_left=True, leased_at=now, lease_expires_at=now + timedelta(hours=1))
                                    for c, r in zip(ids, raters)])
    for start in range(0, len(ids), 500):
        comparison_slots_recount(comparison_ids=ids[start:start + 500], now=now)


def give_history(count: int, *, pinned: bool = False, ahead: bool = False) -> None:
    """Give the rater "pick-history" ``count`` labelled assignments on the queue's first ``count`` comparisons, made complete;
    with ``pinned``, first a lease of the rater "pick-away" on the queue's first comparison, held for an hour, and the
    history on the ``count`` after it; with ``ahead``, the comparisons stay open, each with one label of three."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from feedback_app.models import Assignment, Comparison

    now = timezone.now()
    if pinned:
        _leases_held([Comparison.objects.filter(status=Comparison.Status.OPEN).order_by("id").values_list("id", flat=True).first()], ["pick-away"])
    ids = _first_unheld(count)
    if ahead:
        Comparison.objects.filter(id__in=ids).update(label_count=1, required_labels=3)
    else:
        _completed(ids)
    rater = get_user_model().objects.create(username="pick-history")
    Assignment.objects.bulk_create([Assignment(comparison_id=c, rater=rater, a_on_left=True, status=Assignment.Status.SUBMITTED, leased_at=now,
                                               lease_expires_at=now, finished_at=now) for c in ids], batch_size=5000)


def _picks_alternated(picks: dict, *, rounds: int, block: int, same: bool = True) -> dict:
    """Run each pick of ``picks`` (name -> keyword arguments of ``comparison_leasable_id``, and ``from_start``: each pick reads
    the queue's head from its start, not from the head the process last read) ``rounds`` times, in alternating blocks of
    ``block``; return ms per pick by name (the median of its blocks) and, under "found", what each found. With ``same``,
    every pick must find the same comparison."""
    from django.utils import timezone

    from feedback_app.selectors.campaigns import campaign_default
    from feedback_app.selectors.labeling import comparison_leasable_id
    from feedback_app.selectors.queue_head import queue_head_forget

    campaign_id = campaign_default().pk
    found, per_block = {}, {name: [] for name in picks}
    for _ in range(max(1, rounds // block)):
        for name, kwargs in picks.items():
            kwargs = dict(kwargs)
            from_start = kwargs.pop("from_start", False)
            now = timezone.now()
            started = time.perf_counter()
            for _ in range(block):
                if from_start:  # as the one pick in HEAD_HINT_SECONDS of a process that reads the head from the queue's start
                    queue_head_forget(campaign_id)
                found[name] = comparison_leasable_id(campaign_id=campaign_id, now=now, **kwargs)
            per_block[name].append(1000 * (time.perf_counter() - started) / block)
    assert not same or len(set(found.values())) == 1, found  # the same comparison every way
    return {**{name: statistics.median(times) for name, times in per_block.items()}, "found": found}


def time_history(*, rounds: int, block: int = 25, ahead: bool = False) -> dict:
    """Time ``rounds`` picks of the rater with a history and of the picker, who has none (neither ever held the
    head), in alternating blocks; return ms per pick and the ratio. With ``ahead`` the rater's pick must be the first
    comparison after their history."""
    from django.contrib.auth import get_user_model

    from feedback_app.models import Assignment

    users = get_user_model().objects
    rater = users.get(username="pick-history")
    ms = _picks_alternated({"history": {"rater": rater}, "none": {"rater": users.get(username=PICKER)}}, rounds=rounds, block=block, same=not ahead)
    if ahead:
        last = Assignment.objects.filter(rater=rater).order_by("-comparison_id").values_list("comparison_id", flat=True).first()
        assert ms["found"]["history"] > last, (ms["found"], last)  # past everything the rater holds
    return {"history_ms": round(ms["history"], 3), "none_ms": round(ms["none"], 3), "history_over_none": round(ms["history"] / ms["none"], 2)}


def time_picks(*, rounds: int, block: int = 25) -> dict:
    """Time ``rounds`` picks of each kind (slots read from the row, or counted) for a rater who holds nothing, in alternating
    blocks; return ms per pick and the ratio."""
    from django.contrib.auth import get_user_model

    rater = get_user_model().objects.get(username=PICKER)
    ms = _picks_alternated({"row": {"rater": rater, "exact": False}, "counted": {"rater": rater, "exact": True}}, rounds=rounds, block=block)
    return {"row_ms": round(ms["row"], 3), "counted_ms": round(ms["counted"], 3), "counted_over_row": round(ms["counted"] / ms["row"], 2)}


def _first_unheld(count: int) -> list[int]:
    """The ids of the queue's first ``count`` open comparisons that no lease holds."""
    from feedback_app.models import Comparison

    return list(Comparison.objects.filter(status=Comparison.Status.OPEN, leases_held=0).order_by("id").values_list("id", flat=True)[:count])


def _completed(ids: list[int]) -> None:
    """Complete the comparisons ``ids`` as their labels would (one label of one)."""
    from django.utils import timezone

    from feedback_app.models import Comparison

    Comparison.objects.filter(id__in=ids).update(status=Comparison.Status.COMPLETE, label_count=1, required_labels=1, completed_at=timezone.now())


def complete_head(count: int) -> None:
    """Complete the queue's first ``count`` open comparisons no lease holds."""
    _completed(_first_unheld(count))


def time_under_snapshot(steps: list[int], *, rounds: int, block: int = 25) -> list[dict]:
    """With a snapshot held open by a session of its own, complete the queue's first comparisons in ``steps`` (each the number
    completed by then) and time the picker's pick after each, as a studio's picks run (from the queue's head the process
    last read) and from the queue's start (the one pick in ``HEAD_HINT_SECONDS`` that reads the head anew); then let the
    snapshot go and time them again, before and after one write elsewhere (``_write_once``). Return one row a step, then
    two for the snapshot let go (``completed``, ``snapshot_held``, ``pick_ms``, ``from_start_ms``; the second with
    ``written``), and on PostgreSQL one more after a VACUUM (ANALYZE) of the comparisons (``vacuumed``)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, connections

    from feedback_app.models import Comparison

    picker = get_user_model().objects.get(username=PICKER)
    picks = {"pick": {"rater": picker}, "from_start": {"rater": picker, "from_start": True}}

    def timed(completed: int, held: bool, **more) -> dict:
        ms = _picks_alternated(picks, rounds=rounds, block=block)
        return {"completed": completed, "snapshot_held": held, **more, "pick_ms": round(ms["pick"], 3), "from_start_ms": round(ms["from_start"], 3),
                **time_counts()}

    holder = connections.create_connection("default")
    holder.set_autocommit(False)
    try:
        with holder.cursor() as cursor:
            if holder.vendor == "postgresql":
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute(f"SELECT COUNT(*) FROM {Comparison._meta.db_table}")  # the snapshot is taken here, and held
        rows, done = [], 0
        for completed in [0, *steps]:
            complete_head(completed - done)
            done = completed
            rows.append(timed(completed, True))
    finally:
        holder.rollback()
        holder.close()
    rows.append(timed(done, False))
    _write_once()
    rows.append(timed(done, False, written=True))
    if connection.vendor == "postgresql":  # what autovacuum does once enough rows changed: vacuum, and analyze (due before)
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {Comparison._meta.db_table}")
        rows.append(timed(done, False, vacuumed=True))
    return rows


def time_counts(repeat: int = 9) -> dict:
    """Time the two counts of open comparisons that read the queue from its start, as the workers ask them: the supply's
    (``open_comparison_count`` capped at ``SUPPLY_OPEN_TARGET``, at each supply round) and the dashboard's (open ones only,
    capped at ``OPEN_SHOWN_UP_TO``, at each push); ms, the median of ``repeat`` each."""
    from django.conf import settings

    from feedback_app.models import DEFAULT_CAMPAIGN_ID, Comparison
    from feedback_app.selectors.dashboard import OPEN_SHOWN_UP_TO
    from feedback_app.selectors.supply import open_comparison_count

    counts = {"supply_count_ms": lambda: open_comparison_count(campaign_id=DEFAULT_CAMPAIGN_ID, cap=settings.SUPPLY_OPEN_TARGET),
              "dashboard_count_ms": lambda: open_comparison_count(campaign_id=DEFAULT_CAMPAIGN_ID, statuses=(Comparison.Status.OPEN,),
                                                                  cap=OPEN_SHOWN_UP_TO)}
    out = {}
    for name, count in counts.items():
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            count()
            times.append(1000 * (time.perf_counter() - started))
        out[name] = round(statistics.median(times), 3)
    return out


def _write_once() -> None:
    """Write one row, as a live studio's next label does: on PostgreSQL a backend recomputes which row versions nobody can
    see any more only once a transaction id has been taken since it last did, so until some session writes, a scan still
    takes the completed comparisons' entries for ones an old snapshot may need, and walks them (a quiet database)."""
    from django.db.models import F

    from feedback_app.models import Comparison

    first = Comparison.objects.filter(status=Comparison.Status.COMPLETE).order_by("id").values_list("id", flat=True).first()
    Comparison.objects.filter(pk=first).update(completed_at=F("completed_at"))


def _steps(text: str) -> list[int]:
    try:
        steps = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--snapshot takes counts separated by commas, such as 2000,10000; got {text!r}") from None
    if any(b <= a for a, b in zip([0, *steps], steps)):
        raise argparse.ArgumentTypeError(f"--snapshot takes rising counts above 0, such as 2000,10000; got {text!r}")
    return steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--held", type=int, action="append", help="leases held at the head of the queue (repeat for several; default 50, 2000)")
    p.add_argument("--comparisons", type=int, default=20_000, help="open comparisons in the queue")
    p.add_argument("--history", type=int, default=0, help="labelled comparisons of a second rater, before the head (0: none)")
    p.add_argument("--pinned", action="store_true", help="the head held by a rater who walked away, and the history after it")
    p.add_argument("--ahead", action="store_true", help="the history's comparisons stay open, each waiting for two more labels")
    p.add_argument("--snapshot", type=_steps, help="comparisons completed at the head under a held snapshot, by each step (rising, "
                   "separated by commas); times only the picker's pick")
    p.add_argument("--rounds", type=int, default=400)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    helds = sorted(args.held or [50, 2000])
    if args.snapshot and args.snapshot[-1] >= args.comparisons:
        p.error(f"--snapshot {args.snapshot[-1]} needs more --comparisons than that ({args.comparisons})")
    if not args.snapshot and helds[-1] + args.history >= args.comparisons:
        p.error(f"--held {helds[-1]} and --history {args.history} need more --comparisons than their sum ({args.comparisons})")
    with setup(os.environ.get("DATABASE_URL")):
        from django.db import connection

        fill(args.comparisons, PICKER)
        if args.snapshot:
            statistics_refresh()
            rows = time_under_snapshot(args.snapshot, rounds=args.rounds)
            for row in rows:
                state = ("held" if row["snapshot_held"] else "let go, and vacuumed" if row.get("vacuumed")
                         else "let go, and a row written since" if row.get("written") else "let go")
                print(f"{row['completed']:6d} completed at the head, the snapshot {state}: "
                      f"{row['pick_ms']:.3f} ms a pick, {row['from_start_ms']:.3f} from the queue's start; counts of the open ones: "
                      f"the supply's {row['supply_count_ms']:.3f} ms, the dashboard's {row['dashboard_count_ms']:.3f} ms")
            if args.json:
                args.json.write_text(json.dumps({"database": connection.vendor, "comparisons": args.comparisons, "snapshot": rows}, indent=1))
            return 0
        history = None
        if args.history:
            give_history(args.history, pinned=args.pinned, ahead=args.ahead)
        results, before = [], 0
        for held in helds:
            hold(held, before)
            before = held
            statistics_refresh()
            results.append({"held": held, **time_picks(rounds=args.rounds)})
            r = results[-1]
            print(f"{held:6d} leases held: slots read from the row {r['row_ms']:.3f} ms a pick, counted {r['counted_ms']:.3f} ms "
                  f"({r['counted_over_row']}x)")
            if args.history:
                history = {"labelled": args.history, "held": held, **time_history(rounds=args.rounds, ahead=args.ahead)}
                print(f"       a rater with {args.history} labelled comparisons: {history['history_ms']:.3f} ms a pick, "
                      f"one with none {history['none_ms']:.3f} ms ({history['history_over_none']}x)")
        out = {"database": connection.vendor, "comparisons": args.comparisons, "pinned": args.pinned, "ahead": args.ahead, "results": results, "history": history}
        if args.json:
            args.json.write_text(json.dumps(out, indent=1))
        return 0


if __name__ == "__main__":
    sys.exit(main())
