"""The quality tallies: every rater's counts, the agreement sums and each pair of raters' table, kept over completed comparisons.

The quality page, ``/api/v1/stats/raters/`` and ``/agreement/``, rater trust (exports, training
weights) and the AI judges' bar read the stored tally plus a live one of what it leaves out
(``selectors.quality.quality_tally``), so their cost follows the backlog, not the history.

- ``quality_tally_close`` (beat, every 15 seconds) adds the comparisons that completed since the
  last close and at least ``CLOSE_AFTER`` (30 seconds) ago, so a transaction that completed one
  just before a close and committed after it is not missed (a labeling transaction stamps its
  time once it holds its locks, and commits within milliseconds). The live part the readers add
  is then 30 to 45 seconds of completions: a busy studio's quality page read a million labels
  live when it was an hour, and 200,000 when it was a campaign's undo window (ten minutes).
- A rater's undo takes their label out of the tallies if they hold it (``quality_tally_withdraw``):
  the comparison's tally as it stood, or a gold label's, is subtracted, and the reopened comparison
  is read live from then on, as every open one is. Otherwise a completed comparison's rater labels
  no longer change: over-collection is refused and an undo reopens the comparison first. An
  import, whose transaction may outlast a close, drops the tallies once it commits if a close
  passed it meanwhile (``quality_tally_reopen_after_commit``).
- Any other label deleted from a tallied comparison (an admin's delete, a cascade), or a tallied
  comparison made gold, drops the tallies (``quality_tally_reopen``); the next close rebuilds
  them, and until then every figure is read live, so none disagrees with the rows.
- A worker that scores comparisons with a new reward model moves the tallied labels' reward-model
  counts with it (``quality_tally_rescored``), in the transaction that stores the new scores.

Each step of a close, the rescoring, an undo's withdrawal and the reopening take the
``QualityTallied`` row's lock first, so they run one at a time; the rescoring and an undo take it
before any comparison's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone as dt_timezone

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from feedback_app.models import AgreementTally, Comparison, PreferenceLabel, QualityTallied, RaterPairTally, RaterTally
from feedback_app.selectors.label_tally import MARK_ID
from feedback_app.selectors.quality import gold_label_rows, rater_label_rows, rater_pairs_stored, stored_matrix
from feedback_app.selectors.quality_rows import QualityTally, pair_kappa, rm_counts, tally_of_rows

CLOSE_AFTER = timedelta(seconds=30)  # how long after it completes a comparison (or a gold label is made) it is tallied
EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
CHUNK = 2000  # comparisons whose labels are read at a time
STEP = 5000  # comparisons tallied per transaction


def quality_tally_close(*, now: datetime | None = None, step: int = STEP) -> int:
    """Add the comparisons completed since the last close and ``CLOSE_AFTER`` ago to the tallies; return how many.

    It works in steps of about ``step`` comparisons, oldest first, each its own transaction, so a
    rebuild (after a reopen, from the first comparison) never holds the lock long: on SQLite a
    transaction holds the one write lock, and the raters' labels wait for it.
    """
    until = (now or timezone.now()) - CLOSE_AFTER
    done = 0
    while True:
        added, more = _close_step(until=until, step=step)
        done += added
        if not more:
            return done


def _close_step(*, until: datetime, step: int) -> tuple[int, bool]:
    """Tally the next comparisons up to ``step`` of them (and any completed at the same instant as the last); return how many, and whether more wait."""
    with transaction.atomic():
        mark = QualityTallied.objects.select_for_update().filter(pk=MARK_ID).first()
        if mark is None:
            mark = QualityTallied.objects.create(pk=MARK_ID, through=EPOCH)
        if until <= mark.through:
            return 0, False
        window = Comparison.objects.filter(completed_at__gte=mark.through, completed_at__lt=until, label_count__gte=1)
        edge = window.order_by("completed_at").values_list("completed_at", flat=True)[step - 1:step].first()
        step_until = min(until, edge + timedelta(microseconds=1)) if edge is not None else until
        completed = list(window.filter(completed_at__lt=step_until).order_by().values_list("pk", "prompt__campaign_id", "completed_at"))
        by_day: dict[tuple, list[int]] = defaultdict(list)
        for pk, campaign_id, completed_at in completed:
            by_day[(campaign_id, completed_at.astimezone(dt_timezone.utc).date())].append(pk)
        tallies: dict[int, QualityTally] = defaultdict(QualityTally)
        for (campaign_id, day), pks in by_day.items():
            tally = QualityTally()
            for i in range(0, len(pks), CHUNK):
                tally.add(tally_of_rows(rater_label_rows(campaign_id=campaign_id, comparison_ids=pks[i:i + CHUNK]), bucket_times=True))
            _agreement_add(campaign_id=campaign_id, day=day, tally=tally)
            tallies[campaign_id].add(tally)
        # gold pairs stay open (each is shown to every rater): their labels are tallied as they are made, and are no units
        gold = Comparison.objects.filter(is_gold=True).order_by().values_list("prompt__campaign_id", flat=True).distinct()
        for campaign_id in gold:
            tallies[campaign_id].add(tally_of_rows(gold_label_rows(campaign_id=campaign_id, start=mark.through, end=step_until), bucket_times=True))
        for campaign_id, tally in tallies.items():
            _store(campaign_id=campaign_id, tally=tally)
        mark.through = step_until
        mark.save(update_fields=["through"])
    return len(completed), step_until < until


def _store(*, campaign_id: int, tally: QualityTally, sign: int = 1) -> None:
    """Add ``tally`` to the campaign's stored tallies (``sign`` -1: take it out). A rater or a pair of raters left with nothing is
    deleted, as a full read would not list them."""
    rows = {row.rater_id: row for row in RaterTally.objects.filter(campaign_id=campaign_id, rater_id__in=tally.raters)}
    new, empty = [], []
    for rater_id, counts in tally.raters.items():
        row = rows.get(rater_id) or RaterTally(campaign_id=campaign_id, rater_id=rater_id, counts={}, times={})
        row.counts = dict(_added(row.counts, counts, sign))
        times = _added({int(ms): n for ms, n in row.times.items()}, tally.times.get(rater_id, Counter()), sign)
        row.times = {str(ms): n for ms, n in sorted(times.items())}
        if not row.counts:
            empty.append(rater_id)
        elif row.pk is None:
            new.append(row)
    RaterTally.objects.bulk_update([row for row in rows.values() if row.counts], ["counts", "times"], batch_size=500)
    RaterTally.objects.bulk_create(new, batch_size=500)
    RaterTally.objects.filter(campaign_id=campaign_id, rater_id__in=empty).delete()

    _agreement_add(campaign_id=campaign_id, day=None, tally=tally, sign=sign)

    pairs = {(r1, r2): RaterPairTally(pk=pk, campaign_id=campaign_id, rater_1=r1, rater_2=r2, n=n, kappa=kappa, table=table)
             for pk, r1, r2, n, kappa, table in rater_pairs_stored(campaign_id=campaign_id, pairs=set(tally.rater_pairs))}
    new, shared, kappa_sum, kappa_n = [], 0, 0.0, 0
    for (rater_1, rater_2), table in tally.rater_pairs.items():
        row = pairs.get((rater_1, rater_2)) or RaterPairTally(campaign_id=campaign_id, rater_1=rater_1, rater_2=rater_2, n=0, table=[])
        merged = _added(stored_matrix(row.table), table, sign)
        # the pair's part in the sums behind the mean κ: out with its old table, in with the new one
        was_shared, old_kappa = pair_kappa(stored_matrix(row.table))
        is_shared, row.kappa = pair_kappa(merged)
        shared += is_shared - was_shared
        kappa_sum += (row.kappa or 0.0) - (old_kappa or 0.0)
        kappa_n += (row.kappa is not None) - (old_kappa is not None)
        row.table, row.n = _matrix_entries(merged), sum(merged.values())
        if row.pk is None and row.n:
            new.append(row)
    RaterPairTally.objects.bulk_update([row for row in pairs.values() if row.n], ["table", "n", "kappa"], batch_size=500)
    RaterPairTally.objects.bulk_create(new, batch_size=500)
    RaterPairTally.objects.filter(pk__in=[row.pk for row in pairs.values() if not row.n]).delete()
    AgreementTally.objects.filter(campaign_id=campaign_id, day__isnull=True).update(
        pairs_shared=F("pairs_shared") + shared, kappa_sum=F("kappa_sum") + kappa_sum, kappa_n=F("kappa_n") + kappa_n)


def _agreement_add(*, campaign_id: int, day, tally: QualityTally, sign: int = 1) -> None:
    """Add the tally's agreement sums to the campaign's row of ``day`` (None: of all days); ``sign`` -1 takes them out."""
    agreement, _ = AgreementTally.objects.get_or_create(campaign_id=campaign_id, day=day)
    agreement.n_units += sign * tally.n_units
    agreement.agreeing_pairs += sign * tally.agreeing_pairs
    agreement.pairs += sign * tally.pairs
    agreement.nominal = _matrix_entries(_added(stored_matrix(agreement.nominal), tally.nominal, sign))
    agreement.ordinal = _matrix_entries(_added(stored_matrix(agreement.ordinal), tally.ordinal, sign))
    agreement.save()


def _added(stored, counts: Counter, sign: int) -> Counter:
    """Return ``stored`` (a mapping) plus ``sign`` times ``counts``, without the entries that came to nothing (the coincidence
    matrices hold fractions: what a subtraction leaves of one is rounding)."""
    total = Counter(stored)
    for key, n in counts.items():
        total[key] += sign * n
    return Counter({key: n for key, n in total.items() if abs(n) > 1e-9})


def _matrix_entries(matrix: Counter) -> list:
    """Return a ``{(row, column): value}`` matrix as JSON can hold it (``selectors.quality.stored_matrix`` reads it back)."""
    return [[row, column, value] for (row, column), value in sorted(matrix.items(), key=lambda item: (str(item[0][0]), str(item[0][1])))]


def quality_tally_withdraw(*, label: PreferenceLabel, now: datetime | None = None) -> bool:
    """A rater undoes ``label`` (not yet deleted, its comparison not yet reopened): take it out of the tallies if they hold it;
    return whether they did.

    Call it in the undo's transaction before the comparison's lock (this takes the tallies' lock
    first, as a rescoring does), and have the label's deletion leave the tallies alone (no
    ``quality_tally_reopen``). A completed comparison leaves the tallies whole, with every label it
    had, since it is reopened and read live from then on; a gold pair's label leaves alone. What
    completed (or was made) in the last half of ``CLOSE_AFTER`` cannot have been tallied, nor can a
    close reach it before the undo commits, so no lock is taken for it; for anything older the
    tallies' lock is held to the commit.
    """
    state = Comparison.objects.filter(pk=label.comparison_id).values_list("completed_at", "is_gold", "prompt__campaign_id").first()
    if state is None:
        return False
    completed_at, is_gold, campaign_id = state
    tallied_at = label.created_at if is_gold else completed_at  # when a close takes it in
    if tallied_at is None or tallied_at >= (now or timezone.now()) - CLOSE_AFTER / 2:  # an undo must not wait for a close
        return False
    with transaction.atomic():
        mark = QualityTallied.objects.select_for_update().filter(pk=MARK_ID).first()
        if mark is None or tallied_at >= mark.through:
            return False
        rows = rater_label_rows(campaign_id=campaign_id, comparison_ids=[label.comparison_id])
        if is_gold:
            rows = [row for row in rows if row["rater_id"] == label.rater_id]
        tally = tally_of_rows(rows, bucket_times=True)
        if not is_gold:
            _agreement_add(campaign_id=campaign_id, day=completed_at.astimezone(dt_timezone.utc).date(), tally=tally, sign=-1)
        _store(campaign_id=campaign_id, tally=tally, sign=-1)
    return True


def quality_tally_reopen(*, comparison_id: int, label_created_at: datetime | None = None) -> bool:
    """A tallied comparison's labels changed: drop the tallies; return whether it was tallied.

    Tallied are a comparison completed before ``QualityTallied.through`` and a gold pair's labels
    made before it: ``label_created_at`` is the deleted label's, or None for a comparison made gold
    or ordinary again (all its labels). The next close rebuilds the tallies; until then the
    figures are read live.
    """
    # A close tallies only what completed or was made CLOSE_AFTER before it began: what is newer than half of it cannot be
    # tallied, nor can a close reach it before this transaction commits, and needs no lock.
    settled = timezone.now() - CLOSE_AFTER / 2
    if not _tallied(comparison_id=comparison_id, label_created_at=label_created_at, before=settled):
        return False
    return _tallies_drop(when=lambda through: _tallied(comparison_id=comparison_id, label_created_at=label_created_at, before=through))


def quality_tally_reopen_after_commit(*, completed_at: datetime) -> None:
    """Call in a transaction that completes comparisons at ``completed_at`` or later (an import, which may outlast
    ``CLOSE_AFTER``): once it commits, drop the tallies if a close passed that instant meanwhile, so they are counted."""
    transaction.on_commit(lambda: _tallies_drop(when=lambda through: through > completed_at))


def _tallies_drop(*, when) -> bool:
    """Drop the tallies (the next close rebuilds them) if ``when(the tallied instant)``; return whether they were dropped."""
    with transaction.atomic():
        mark = QualityTallied.objects.select_for_update().filter(pk=MARK_ID).first()
        if mark is None or not when(mark.through):
            return False
        mark.delete()
        for model in (RaterTally, AgreementTally, RaterPairTally):
            model.objects.all().delete()
    return True


def _tallied(*, comparison_id: int, label_created_at: datetime | None, before: datetime) -> bool:
    comparison = Comparison.objects.filter(pk=comparison_id).values("completed_at", "is_gold").first()
    if comparison is None:
        return False
    if comparison["completed_at"] is not None and comparison["completed_at"] < before:
        return True
    if not comparison["is_gold"]:
        return False
    if label_created_at is not None:
        return label_created_at < before
    return PreferenceLabel.objects.filter(comparison_id=comparison_id, rater__isnull=False, created_at__lt=before).exists()


def quality_tally_rescored(*, campaign_id: int, before: dict[int, float | None], after: dict[int, float]) -> None:
    """Comparisons were scored again (P(A wins) ``before`` → ``after``, by id): move their tallied labels' reward-model counts.

    Call it inside the transaction that stores the new scores, before storing them: it takes the
    tallies' lock, so a close reads either the old scores and counts or the new ones.
    """
    mark = QualityTallied.objects.select_for_update().filter(pk=MARK_ID).first()
    if mark is None:
        return
    tallied = set(Comparison.objects.filter(pk__in=list(after), completed_at__lt=mark.through).values_list("pk", flat=True))
    if not tallied:
        return
    moves: dict[int, Counter] = defaultdict(Counter)
    for row in PreferenceLabel.objects.filter(comparison_id__in=tallied, rater__isnull=False).values("comparison_id", "rater_id", "winner"):
        moves[row["rater_id"]].update(rm_counts(row, after[row["comparison_id"]]))
        moves[row["rater_id"]].subtract(rm_counts(row, before.get(row["comparison_id"])))
    rows = list(RaterTally.objects.select_for_update().filter(campaign_id=campaign_id, rater_id__in=moves))
    for row in rows:
        counts = Counter(row.counts)
        counts.update(moves[row.rater_id])
        row.counts = {key: n for key, n in counts.items() if n}
    RaterTally.objects.bulk_update(rows, ["counts"], batch_size=500)
