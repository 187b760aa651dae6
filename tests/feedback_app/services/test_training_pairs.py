"""Pairs kept per comparison by the worker: always what a full aggregation of the labels makes, and only what changed made anew."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from feedback_app import training_bridge
from feedback_app.models import Comparison, PreferenceLabel, Prompt
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.services import training_data, training_pairs
from feedback_app.services.labeling import label_undo_last
from feedback_app.services.quality_tally import quality_tally_close
from feedback_app.services.training_data import labels_for_training
from feedback_app.services.training_pairs import pairs_for_training
from feedback_app.training_bridge.conversion import preference_pairs as aggregate_all  # not counted by ``made``

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("new_worker")]


@pytest.fixture
def studio(make_user, make_judge):
    """Twelve completed comparisons of three raters (one with a rewrite, one with an AI label), one open, a gold pair."""
    now = timezone.now()
    raters = [make_user() for _ in range(3)]
    version = make_judge().versions.get()

    def make(completed_at, winners, *, text="Where is my parcel?"):
        prompt = Prompt.objects.create(text=text, context=[{"role": "user", "content": "Hello"}])
        a, b = prompt.responses.create(text=f"It left today ({text})."), prompt.responses.create(text="It is lost.")
        c = Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, required_labels=len(winners), label_count=len(winners),
                                      completed_at=completed_at, status="complete" if completed_at else "open")
        for rater, (winner, strength) in zip(raters, winners):
            PreferenceLabel.objects.create(comparison=c, rater=rater, winner=winner, strength=strength)
        return c

    patterns = [[("a", 3), ("a", 1)], [("a", 2), ("b", 3), ("b", 1)], [("tie", 1), ("a", 2)], [("both_bad", 1), ("b", 2)]]
    old = [make(now - timedelta(hours=5, minutes=i), patterns[i % 4], text=f"Question {i}") for i in range(12)]
    rewrite = old[0].prompt.responses.create(text="It left the depot today; it arrives tomorrow.")
    PreferenceLabel.objects.filter(comparison=old[0], rater=raters[0]).update(rewrite=rewrite, edited_text=rewrite.text)
    PreferenceLabel.objects.create(comparison=old[5], judge_version=version, winner="a", strength=2)
    open_ = make(None, [("b", 2)])
    gold = make(None, [("a", 2), ("b", 1)])
    Comparison.objects.filter(pk=gold.pk).update(is_gold=True, gold_winner="a", status="open")
    PreferenceLabel.objects.filter(comparison=gold).update(created_at=now - timedelta(hours=4))
    return {"now": now, "old": old, "open": open_, "gold": gold, "raters": raters, "version": version}


def expected(*, through_label_id=None, exclude_prompt_ids=None, **made):
    """What a refit made before: every label aggregated, and the facts worked out per pair."""
    labels, data_range = labels_for_training(through_label_id=through_label_id, exclude_prompt_ids=exclude_prompt_ids)
    pairs = aggregate_all(labels, **made)
    return pairs, training_bridge.pair_facts(pairs), data_range


def assert_same(*, through_label_id=None, exclude_prompt_ids=None, purpose="reward", **made):
    got = pairs_for_training(through_label_id=through_label_id, exclude_prompt_ids=exclude_prompt_ids, purpose=purpose, **made)
    pairs, facts, data_range = expected(through_label_id=through_label_id, exclude_prompt_ids=exclude_prompt_ids, **made)
    assert got.pairs == pairs and got.data_range == data_range
    assert np.array_equal(got.facts.digests, facts.digests) and np.array_equal(got.facts.validation, facts.validation)
    assert got.facts.fraction == facts.fraction
    return got


@pytest.fixture
def made(monkeypatch):
    """The comparisons whose pairs are made, call by call of ``preference_pairs`` inside ``training_pairs``."""
    calls = []
    aggregate = training_bridge.preference_pairs

    def counting(labels, **kwargs):
        labels = list(labels)
        calls.extend({label.comparison.pk for label in labels})
        return aggregate(labels, **kwargs)

    monkeypatch.setattr(training_pairs.training_bridge, "preference_pairs", counting)
    yield calls
    monkeypatch.undo()


def live_ids(studio):
    return {studio["open"].pk, studio["gold"].pk}


def test_the_pairs_are_those_of_every_label_aggregated_and_a_later_refit_makes_only_the_live_ones(studio, made, caplog):
    assert_same()  # no tallies yet: everything is live and made
    assert set(made) == {c.pk for c in studio["old"]} | live_ids(studio)
    quality_tally_close(now=studio["now"])
    made.clear()
    got = assert_same()  # the first refit after the close makes every kept comparison once
    assert len(made) == 14 and any(p.pair_id.startswith(f"{studio['old'][0].pk}-rewrite-") for p in got.pairs)
    made.clear()
    caplog.set_level("INFO", logger="feedback_app.services.training_pairs")
    got = assert_same()
    assert set(made) == live_ids(studio)  # the kept ones are taken as they are
    assert f"campaign 1 reward pairs: {len(got.pairs)} from {got.data_range['n_labels']} labels; 0 kept comparisons made anew, 3 labels (live or gold) made afresh" in caplog.text


def test_a_rater_judge_or_verdict_that_changes_makes_only_its_comparisons_anew(studio, made):
    quality_tally_close(now=studio["now"])
    pairs_for_training()
    rater, old, version = studio["raters"][2], studio["old"], studio["version"]
    theirs = set(PreferenceLabel.objects.filter(rater=rater).values_list("comparison_id", flat=True))
    for change in ({"weights": {rater.pk: 0.4}}, {"weights": {rater.pk: 0.4}, "ai_weights": {version.pk: 0.5}},
                   {"weights": {rater.pk: 0.4}, "ai_weights": {version.pk: 0.5}, "verdicts": {old[3].pk: "a"}},
                   {"weights": {rater.pk: 0.0}, "ai_weights": {version.pk: 0.5}, "verdicts": {old[3].pk: "a"}},
                   {}):
        made.clear()
        assert_same(**change)
        made.clear()
        assert_same(**change)  # the same again: nothing kept is made
        assert set(made) == live_ids(studio)
    made.clear()
    assert_same(weights={rater.pk: 0.4})
    assert set(made) - live_ids(studio) == theirs - {studio["gold"].pk}
    made.clear()
    assert_same(weights={rater.pk: 0.4}, ai_weights={version.pk: 0.5})
    assert set(made) - live_ids(studio) == {old[5].pk}
    made.clear()
    assert_same(weights={rater.pk: 0.4}, ai_weights={version.pk: 0.5}, verdicts={old[3].pk: "b"})
    assert set(made) - live_ids(studio) == {old[3].pk}


def test_exclusions_undos_and_new_completions_keep_the_pairs_those_of_a_full_aggregation(studio, undoable_completion, undoable_label, made):
    now, raters = studio["now"], studio["raters"]
    comparison, latecomer, _ = undoable_completion(raters[0], now=now)
    quality_tally_close(now=now)
    pairs_for_training()
    Comparison.objects.filter(pk=studio["old"][1].pk).update(excluded=True)
    assert_same()
    # an undo reopens a kept comparison: read live, then kept again when it completes anew
    label_undo_last(rater=latecomer, campaign=campaign_default(), now=now)
    assert_same()
    undoable_label(comparison, raters[1], winner="a", at=now + timedelta(minutes=1))
    Comparison.objects.filter(pk=comparison.pk).update(status="complete", label_count=2, completed_at=now + timedelta(minutes=1))
    quality_tally_close(now=now + timedelta(minutes=5))
    made.clear()
    assert_same()
    assert comparison.pk in made
    training_data.forget()  # a worker that starts: the kept labels from the file, every pair made once
    assert_same()


def test_an_undone_kept_gold_label_is_left_out_beside_an_excluded_gold_pair(studio, make_user, undoable_label):
    """The kept gold labels are counted against the database's across every gold pair, the excluded ones too."""
    rater = make_user()
    undoable_label(studio["gold"], rater, winner="b", at=studio["now"] - timedelta(minutes=3))
    other = studio["old"][2]
    Comparison.objects.filter(pk=other.pk).update(is_gold=True, gold_winner="a", status="open", completed_at=None, excluded=True)
    # one of its labels kept (as gold labels are, once made), as many as the other pair's undone: the counts over all gold pairs tell
    PreferenceLabel.objects.filter(pk=PreferenceLabel.objects.filter(comparison=other).first().pk).update(created_at=studio["now"] - timedelta(hours=4))
    quality_tally_close(now=studio["now"])
    assert_same()
    label_undo_last(rater=rater, campaign=campaign_default(), now=studio["now"])
    got = assert_same()
    assert got.data_range["n_labels"] == PreferenceLabel.objects.exclude(comparison=other).count()


def test_a_run_that_fails_while_it_makes_pairs_leaves_nothing_half_made(studio, monkeypatch):
    quality_tally_close(now=studio["now"])
    rows = training_pairs._rows
    calls = []

    def failing(labels, made):
        calls.append(len(labels))
        if len(calls) == 1:
            raise MemoryError("out of memory")
        return rows(labels, made)

    monkeypatch.setattr(training_pairs, "_rows", failing)
    with pytest.raises(MemoryError):
        pairs_for_training()
    assert_same()


def test_a_bounded_read_cuts_kept_comparisons_at_its_label_and_keeps_them_whole(studio, made):
    ids = sorted(PreferenceLabel.objects.values_list("pk", flat=True))
    quality_tally_close(now=studio["now"])
    pairs_for_training()
    for bound in (ids[0], ids[5], ids[len(ids) // 2], ids[-2]):
        assert_same(through_label_id=bound)
    made.clear()
    assert_same()  # what a bounded read cut is whole again, and was not made anew
    assert set(made) == live_ids(studio)


def test_other_strength_margins_make_every_pair_anew(studio, settings, made):
    quality_tally_close(now=studio["now"])
    pairs_for_training()
    settings.STRENGTH_MARGINS = [0.0, 1.0, 3.0]
    made.clear()
    assert_same()
    assert len(made) == 14


def test_a_dpo_run_keeps_its_own_pairs_and_leaves_out_the_held_out_prompts(studio, made):
    """The policy's pairs weigh AI labels otherwise than the reward model's: each purpose keeps its own, so runs of both in one
    worker do not make each other's anew; held-out prompts are left out, kept or live."""
    quality_tally_close(now=studio["now"])
    version, old = studio["version"], studio["old"]
    held_out = [old[5].prompt_id, old[7].prompt_id, studio["open"].prompt_id]
    for _ in range(2):
        made.clear()
        assert_same()
        assert_same(purpose="policy", ai_weights={version.pk: 0.5}, exclude_prompt_ids=held_out)
    assert set(made) == live_ids(studio)  # the second round: only what is read live
    with pytest.raises(ValueError, match="purpose must be reward or policy"):
        pairs_for_training(purpose="judge")
