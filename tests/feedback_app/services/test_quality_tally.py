"""The quality tallies: stored sums plus a live part give exactly the figures of a full read, whatever was closed, rescored or deleted."""

import random
from datetime import timedelta, timezone as dt_timezone

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.db.models import F
from django.utils import timezone

from feedback_app.models import AgreementTally, Comparison, Role, PreferenceLabel, Prompt, QualityTallied, RaterPairTally, RaterTally
from feedback_app.selectors.quality import agreement_over_time, agreement_summary, people_agreement, quality_tally, rater_label_rows, rater_quality, rater_trust
from feedback_app.selectors.quality_rows import agreement_of_rows, tally_of_rows
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.services.labeling import NothingToUndo, label_undo_last
from feedback_app.services.quality import comparison_mark_gold
from feedback_app.stats.agreement import alpha_of_coincidences
from feedback_app.services.quality_tally import CLOSE_AFTER, quality_tally_close, quality_tally_rescored

pytestmark = pytest.mark.django_db


def figures(tally=None) -> dict:
    quality = rater_quality(tally=tally)
    agreement = agreement_summary(tally=tally)
    alphas = {k: agreement.pop(k) for k in ("alpha_ordinal", "alpha_nominal", "mean_kappa")}
    kappas = agreement.pop("kappas")
    return {"raters": quality, "agreement": agreement, "alphas": alphas, "kappas": kappas, "people": people_agreement(tally=tally)}


def full_read() -> dict:
    """The figures from every label, as before any tally existed."""
    return figures(tally_of_rows(rater_label_rows(campaign_id=1)))


def assert_same(got: dict, expected: dict) -> None:
    assert got["raters"] == expected["raters"]
    assert got["agreement"] == expected["agreement"] and got["people"] == expected["people"]
    for name, value in expected["alphas"].items():
        assert got["alphas"][name] == pytest.approx(value, abs=1e-9)
    assert [(k["raters"], k["n"], k["percent"]) for k in got["kappas"]] == [(k["raters"], k["n"], k["percent"]) for k in expected["kappas"]]
    assert [k["kappa"] for k in got["kappas"]] == pytest.approx([k["kappa"] for k in expected["kappas"]])
    assert rater_trust() == {r: q["trust"] for r, q in expected["raters"].items()}


@pytest.fixture
def history(make_user):
    """Raters' labels on comparisons completed hours ago, an hour ago, minutes ago, and open ones (some gold); the first two raters
    share three comparisons completed long ago and two open ones, so their κ needs both parts."""
    rng = random.Random(7)
    raters = [make_user() for _ in range(5)]
    now = timezone.now()

    def make(raters_of, completed_at, *, gold=""):
        prompt = Prompt.objects.create(text="Where is my parcel?")
        a = prompt.responses.create(text="It left the depot today." * rng.choice((1, 2)))
        b = prompt.responses.create(text="It left the depot today.")
        c = Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, required_labels=len(raters_of), label_count=len(raters_of),
                                      completed_at=completed_at, status="complete" if completed_at else "open", is_gold=bool(gold),
                                      gold_winner=gold, rm_prob_a_wins=rng.choice((None, 0.5, 0.2, 0.9)))
        for rater in raters_of:
            PreferenceLabel.objects.create(comparison=c, rater=rater, winner=rng.choice(("a", "a", "b", "tie", "both_bad")),
                                           strength=rng.choice((1, 2, 3)), a_on_left=rng.choice((True, False, None)),
                                           time_on_task_ms=rng.choice((None, 776, 2384, 8901, 28705)))  # bucket edges: stored exactly
        return c

    for i in range(3):
        make(raters[:2], now - timedelta(hours=5, minutes=i))
    for i in range(2):
        make(raters[:2], None)
    for i in range(40):
        when = rng.choice((now - timedelta(hours=6, minutes=i), now - timedelta(hours=2, minutes=i), now - timedelta(minutes=5 + i), None))
        make(rng.sample(raters, rng.choice((1, 2, 3, 4))), when)
    gold = make(raters[:4], None, gold="a")  # gold pairs stay open; their labels are tallied as they are made
    PreferenceLabel.objects.filter(comparison=gold, rater__in=raters[:3]).update(created_at=now - timedelta(hours=5))
    return now


def test_closed_in_steps_the_figures_are_those_of_a_full_read(history):
    expected = full_read()
    assert_same(figures(), expected)  # nothing closed yet: all live
    assert quality_tally_close(now=history - timedelta(hours=4)) > 0  # the oldest comparisons
    assert RaterPairTally.objects.exists()
    assert_same(figures(), expected)
    assert quality_tally_close(now=history + timedelta(minutes=30)) > 0  # up to the hour-old ones
    assert_same(figures(), expected)
    assert quality_tally_close(now=history + timedelta(minutes=30)) == 0  # nothing new: nothing added twice
    assert_same(figures(), expected)


def test_a_comparison_is_tallied_once_it_completed_a_minute_ago(history):
    quality_tally_close(now=history)
    through = QualityTallied.objects.get().through
    assert through == history - CLOSE_AFTER
    tallied = sum(RaterTally.objects.values_list("counts__n_labels", flat=True))
    assert tallied == PreferenceLabel.objects.filter(rater__isnull=False, comparison__completed_at__lt=through).count() + 3  # and 3 gold ones


def test_deleting_a_tallied_label_drops_the_tallies_and_the_next_close_rebuilds_them(history):
    quality_tally_close(now=history)
    label = PreferenceLabel.objects.filter(rater__isnull=False, comparison__completed_at__lt=history - timedelta(hours=3)).first()
    label.delete()
    assert not QualityTallied.objects.exists() and not RaterTally.objects.exists()
    expected = full_read()
    assert_same(figures(), expected)
    quality_tally_close(now=history)
    assert_same(figures(), expected)


def test_deleting_a_label_of_a_comparison_not_tallied_keeps_the_tallies(history):
    quality_tally_close(now=history)
    PreferenceLabel.objects.filter(rater__isnull=False, comparison__completed_at__isnull=True).first().delete()
    assert QualityTallied.objects.exists()
    assert_same(figures(), full_read())


def test_making_a_tallied_comparison_gold_drops_the_tallies(history, make_user):
    quality_tally_close(now=history)
    tallied = Comparison.objects.filter(completed_at__lt=history - timedelta(hours=3)).first()
    comparison_mark_gold(comparison=tallied, winner="a", user=make_user(Role.ADMIN))
    assert not QualityTallied.objects.exists()
    assert_same(figures(), full_read())


def test_rescoring_moves_the_tallied_reward_model_counts(history):
    quality_tally_close(now=history)
    rng = random.Random(3)
    comparisons = list(Comparison.objects.filter(label_count__gte=1))
    before = {c.pk: c.rm_prob_a_wins for c in comparisons}
    after = {c.pk: rng.choice((0.1, 0.5, 0.7)) for c in comparisons}
    with transaction.atomic():
        quality_tally_rescored(campaign_id=1, before=before, after=after)
        for c in comparisons:
            c.rm_prob_a_wins = after[c.pk]
        Comparison.objects.bulk_update(comparisons, ["rm_prob_a_wins"])
    assert_same(figures(), full_read())


def test_reading_the_figures_does_not_grow_with_the_tallied_history(history, make_user):
    quality_tally_close(now=history)
    with CaptureQueriesContext(connection) as before:
        quality_tally()
    rater = make_user()
    prompt = Prompt.objects.create(text="Can I change my address?")
    a, b = prompt.responses.create(text="Yes."), prompt.responses.create(text="No.")
    for _ in range(20):
        c = Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, label_count=1, status="complete",
                                      completed_at=history - CLOSE_AFTER + timedelta(seconds=30))
        PreferenceLabel.objects.create(comparison=c, rater=rater, winner="a")
    quality_tally_close(now=history + timedelta(minutes=1))
    RaterTally.objects.get(rater=rater)  # tallied, not live
    with CaptureQueriesContext(connection) as after:
        quality_tally()
    assert len(after) == len(before)


def test_agreement_over_time_reads_the_tallied_days_and_adds_the_rest_live(history):
    def full_by_day() -> dict:
        rows = {}
        for row in rater_label_rows(campaign_id=1):
            completed_at = Comparison.objects.get(pk=row["comparison_id"]).completed_at
            if completed_at is not None:
                rows.setdefault(completed_at.astimezone(dt_timezone.utc).date().isoformat(), []).append(row)
        return {day: agreement_of_rows(day_rows) for day, day_rows in rows.items()}

    expected = {day: t for day, t in full_by_day().items() if t.n_units}
    for close_at in (None, history - timedelta(hours=4), history):
        if close_at is not None:
            quality_tally_close(now=close_at)
        days = {d["day"]: d for d in agreement_over_time(campaign_id=1)}
        assert set(days) == set(expected)
        for day, t in expected.items():
            assert days[day]["n_units"] == t.n_units and days[day]["percent_agreement"] == t.agreeing_pairs / t.pairs
            assert days[day]["alpha_ordinal"] == pytest.approx(alpha_of_coincidences(t.ordinal, level="ordinal"), abs=1e-9)
    assert AgreementTally.objects.filter(day__isnull=False).exists()
    AgreementTally.objects.filter(day__isnull=False).update(pairs=1, agreeing_pairs=1)  # the dashboard reads the rows, not the labels
    assert all(d["percent_agreement"] == 1 for d in agreement_over_time(campaign_id=1) if d["day"] < (history - CLOSE_AFTER).date().isoformat())


def test_a_close_in_small_steps_tallies_the_same(history):
    expected = full_read()
    assert quality_tally_close(now=history, step=3) == Comparison.objects.filter(completed_at__lt=history - CLOSE_AFTER).count()
    assert QualityTallied.objects.get().through == history - CLOSE_AFTER
    assert_same(figures(), expected)


def test_the_pairs_listed_are_those_sharing_the_most_and_the_mean_is_over_all(history, monkeypatch):
    from feedback_app.selectors import quality

    everything = agreement_summary()
    assert everything["n_kappa_pairs"] == len(everything["kappas"]) >= 2
    monkeypatch.setattr(quality, "KAPPA_PAIRS_SHOWN", 1)
    shown = agreement_summary()
    assert shown["n_kappa_pairs"] == everything["n_kappa_pairs"] and shown["mean_kappa"] == everything["mean_kappa"]
    assert [k["n"] for k in shown["kappas"]] == [max(k["n"] for k in everything["kappas"])]


def test_a_tallied_median_time_is_within_five_percent_below_the_true_one(history):
    PreferenceLabel.objects.filter(time_on_task_ms__isnull=False).update(time_on_task_ms=12_345)
    quality_tally_close(now=history + timedelta(days=1))  # everything completed is tallied
    true = full_read()["raters"]
    for rater_id, figures in rater_quality().items():
        if true[rater_id]["median_time_ms"] is not None:
            assert 12_345 / 1.05 <= figures["median_time_ms"] <= 12_345 == true[rater_id]["median_time_ms"]


def test_gold_labels_are_tallied_as_made_and_making_the_pair_ordinary_drops_the_tallies(history, make_user):
    from feedback_app.services.quality import comparison_unmark_gold

    expected = full_read()
    quality_tally_close(now=history)
    gold = Comparison.objects.get(is_gold=True)
    tallied = sum(n or 0 for n in RaterTally.objects.values_list("counts__gold_n", flat=True))
    assert tallied == 3  # the three made five hours ago; the fourth is read live
    assert_same(figures(), expected)
    comparison_unmark_gold(comparison=gold, user=make_user(Role.ADMIN))
    assert not QualityTallied.objects.exists()
    assert_same(figures(), full_read())


def test_an_undo_takes_its_tallied_comparison_out_and_keeps_the_tallies(history, make_user, undoable_label):
    """A rater undoes a label minutes after it completed a comparison that a close has tallied since: the comparison's tally leaves,
    the tallies stay (no rebuild), and it is counted once more when it completes again."""
    raters = [make_user() for _ in range(3)]
    prompt = Prompt.objects.create(text="Can I pay in two parts?")
    a, b = prompt.responses.create(text="Yes, at checkout."), prompt.responses.create(text="No.")
    comparison = Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, required_labels=2, label_count=2, status="complete",
                                           completed_at=history, rm_prob_a_wins=0.8)
    undoable_label(comparison, raters[0], winner="a", at=history - timedelta(seconds=20))
    undoable_label(comparison, raters[1], winner="b", at=history)
    quality_tally_close(now=history + timedelta(minutes=3))
    generation = QualityTallied.objects.get().generation
    assert RaterTally.objects.filter(rater=raters[1]).exists()  # the comparison is tallied
    label_undo_last(rater=raters[1], campaign=campaign_default(), now=history + timedelta(minutes=3))
    assert QualityTallied.objects.get().generation == generation  # not dropped
    assert not RaterTally.objects.filter(rater=raters[1]).exists()  # a rater left with nothing is not listed
    assert_same(figures(), full_read())
    # another rater completes it again; the next close counts it once
    undoable_label(comparison, raters[2], winner="a", at=history + timedelta(minutes=4))
    Comparison.objects.filter(pk=comparison.pk).update(status="complete", label_count=2, completed_at=history + timedelta(minutes=4))
    quality_tally_close(now=history + timedelta(minutes=6))
    assert QualityTallied.objects.get().generation == generation
    assert_same(figures(), full_read())


def test_an_undo_of_a_tallied_gold_label_takes_that_label_out(history, make_user, undoable_label):
    rater = make_user()
    gold = Comparison.objects.get(is_gold=True)
    undoable_label(gold, rater, winner="b", at=history - timedelta(minutes=2))
    quality_tally_close(now=history)
    assert RaterTally.objects.get(rater=rater).counts["gold_n"] == 1
    label_undo_last(rater=rater, campaign=campaign_default(), now=history)
    assert QualityTallied.objects.exists() and not RaterTally.objects.filter(rater=rater).exists()
    assert_same(figures(), full_read())


def test_an_undo_of_a_comparison_not_yet_tallied_changes_nothing_stored(history, make_user, undoable_label):
    quality_tally_close(now=history)
    stored = sorted(RaterTally.objects.values_list("rater_id", "counts", "times"))
    rater = make_user()
    recent = Comparison.objects.filter(completed_at__isnull=True, is_gold=False).first()
    undoable_label(recent, rater)
    Comparison.objects.filter(pk=recent.pk).update(status="complete", completed_at=history, label_count=F("label_count") + 1,
                                                   required_labels=F("label_count") + 1)
    label_undo_last(rater=rater, campaign=campaign_default(), now=history + timedelta(seconds=30))
    assert sorted(RaterTally.objects.values_list("rater_id", "counts", "times")) == stored
    assert_same(figures(), full_read())


def test_a_refused_undo_leaves_the_tallies_as_they_were(history, make_user, undoable_label):
    raters = [make_user() for _ in range(2)]
    prompt = Prompt.objects.create(text="Is there a fee?")
    a, b = prompt.responses.create(text="No fee."), prompt.responses.create(text="Maybe.")
    comparison = Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, required_labels=2, label_count=2, status="complete",
                                           completed_at=history - timedelta(minutes=30))
    for rater in raters:
        undoable_label(comparison, rater, at=history - timedelta(minutes=30))
    quality_tally_close(now=history)
    stored = sorted(RaterTally.objects.values_list("rater_id", "counts", "times"))
    with pytest.raises(NothingToUndo, match="too old"):  # after the withdrawal: the transaction takes it back
        label_undo_last(rater=raters[1], campaign=campaign_default(), now=history)
    assert sorted(RaterTally.objects.values_list("rater_id", "counts", "times")) == stored
    assert_same(figures(), full_read())


def test_an_import_that_outlasts_the_settling_drops_the_tallies_a_close_made_past_it(history, django_capture_on_commit_callbacks):
    from feedback_app.services.imports import preferences_import

    quality_tally_close(now=history)
    QualityTallied.objects.update(through=timezone.now() + timedelta(hours=1))  # closes ran on while the import's transaction was open
    with django_capture_on_commit_callbacks(execute=True):
        preferences_import(data=b'{"prompt": "p", "chosen": "good", "rejected": "bad"}\n', filename="late.jsonl")
    assert not QualityTallied.objects.exists()  # dropped: the next close rebuilds them with the import's comparison
