"""Rows to rm_trainer's pairs, and rm_trainer's results to the site's metrics."""

import dataclasses

import pytest

from feedback_app import training_bridge
from feedback_app.selectors.campaigns import campaign_default


@pytest.mark.django_db
def test_preference_pairs_aggregate_per_comparison(make_user, make_comparisons):
    from feedback_app.models import PreferenceLabel
    from feedback_app.services.labeling import LabelSubmission, label_record
    from feedback_app.services.leasing import assignment_lease_next

    (comparison,) = make_comparisons(1, required_labels=3)
    for choice in ("left", "left", "left"):
        rater = make_user()
        a = assignment_lease_next(campaign=campaign_default(), rater=rater)
        label_record(campaign=campaign_default(), rater=rater, comparison_id=a.comparison_id, submission=LabelSubmission(choice=choice, strength=3))
    labels = PreferenceLabel.objects.select_related("comparison__prompt", "comparison__response_a", "comparison__response_b").order_by("comparison_id")
    (pair,) = training_bridge.preference_pairs(labels)
    assert pair.pair_id == str(comparison.pk) and pair.prompt == comparison.prompt.text
    assert {pair.chosen, pair.rejected} == {comparison.response_a.text, comparison.response_b.text}


def test_fit_results_become_the_site_s_metric_names():
    """A FitResult's validation figures are recorded as val_*, with the baseline under the same names."""
    from rm_trainer.train import FitResult

    from feedback_app.training_bridge import reward_fit_metrics, validation_summary

    result = FitResult(name="rm-1", path="/store/reward/rm-1", tier="fast", metrics={"accuracy": 0.75, "loss": 0.5, "ece": 0.1, "bins": [1], "n": 8},
                       baseline_metrics={"accuracy": 0.7, "loss": 0.6, "ece": 0.2, "n": 8}, n_train=32, n_validation=8, seconds=1.234,
                       manifest={"replay": {"warm_from": "rm-0", "new_pairs": 3}})
    metrics = reward_fit_metrics(result)
    assert metrics == {"val_accuracy": 0.75, "val_loss": 0.5, "val_ece": 0.1, "calibration": [1], "n_train": 32, "n_validation": 8,
                       "seconds": 1.23, "baseline": {"val_accuracy": 0.7, "val_loss": 0.6, "val_ece": 0.2, "n": 8}, "heads_warm_from": "rm-0"}
    assert reward_fit_metrics(dataclasses.replace(result, manifest={}))["heads_warm_from"] is None  # a full fit's manifest has none
    assert validation_summary(None) is None


def test_policy_update_metrics_record_the_mean_reply_lengths_of_both_policies():
    """The new version's mean reply tokens and characters are recorded, with its parent's beside them."""
    from rm_trainer.dpo import DPOResult, WinRate

    result = DPOResult(name="p1", path="/s/policy/p1", parent="p0", n_pairs=4, steps=2, seconds=3.0, manifest={},
                       metrics={"loss": 0.6, "reward_accuracy": 0.7, "beta": 0.1, "seconds_per_step": 1.5, "reference_seconds": 0.5})
    win = WinRate(win_rate=0.75, wins=3, ties=0, losses=1, n=4, mean_reward_gap=0.2, mean_reply_tokens=41.25,
                  mean_reply_chars=180.0, old_mean_reply_tokens=63.0, old_mean_reply_chars=270.5)
    metrics = training_bridge.policy_update_metrics(result, win)
    assert (metrics["mean_reply_tokens"], metrics["mean_reply_chars"]) == (41.2, 180.0)
    assert (metrics["parent_mean_reply_tokens"], metrics["parent_mean_reply_chars"]) == (63.0, 270.5)
    assert metrics["win_rate_vs_parent"] == 0.75


def test_policy_update_metrics_record_the_kl_to_the_base_rounded_to_4_digits():
    """The new version's KL to the base, per reply and per token, is recorded; without a base it stays None."""
    from rm_trainer.dpo import DPOResult, WinRate

    result = DPOResult(name="p1", path="/s/policy/p1", parent="p0", n_pairs=4, steps=2, seconds=3.0, manifest={}, metrics={})
    win = WinRate(win_rate=0.75, wins=3, ties=0, losses=1, n=4, mean_reward_gap=0.2, mean_reply_tokens=41.25,
                  kl_to_base=1.234567, kl_to_base_per_token=0.0299289)
    metrics = training_bridge.policy_update_metrics(result, win)
    assert (metrics["kl_to_base"], metrics["kl_to_base_per_token"]) == (1.2346, 0.0299)
    no_base = training_bridge.policy_update_metrics(result, WinRate(win_rate=0.5, wins=0, ties=2, losses=0, n=2, mean_reward_gap=0.0))
    assert (no_base["kl_to_base"], no_base["kl_to_base_per_token"]) == (None, None)


def _rewritten(make_user, make_comparisons, *, choice: str, strength: int = 3, edited_from: str = ""):
    from feedback_app.models import Assignment, PreferenceLabel
    from feedback_app.services.labeling import LabelSubmission, label_record
    from feedback_app.services.leasing import assignment_lease_next

    (comparison,) = make_comparisons(1)
    rater = make_user()
    assignment = assignment_lease_next(campaign=campaign_default(), rater=rater)
    Assignment.objects.filter(pk=assignment.pk).update(a_on_left=True)  # left is A
    label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(
        choice=choice, strength=strength, edited_text="It ships tomorrow; tracking follows by email.", edited_from=edited_from))
    labels = PreferenceLabel.objects.select_related("comparison__prompt", "comparison__response_a", "comparison__response_b", "rewrite")
    return comparison, rater, list(labels)


@pytest.mark.django_db
@pytest.mark.parametrize(("choice", "edited_from", "margins"), [
    ("left", "", {"a": 0.0, "b": 1.0}),  # better than the chosen A (no margin known), than the beaten B by the label's
    ("right", "", {"a": 1.0, "b": 0.0}),
    ("tie", "left", {"a": 0.0, "b": 0.0}),
    ("both_bad", "", {"a": 0.0, "b": 0.0}),
])
def test_a_rewrite_implies_it_beats_both_replies(make_user, make_comparisons, choice, edited_from, margins):
    """Each choice gives two more pairs, rewrite over A and over B, on the comparison's side of the split."""
    comparison, _, labels = _rewritten(make_user, make_comparisons, choice=choice, edited_from=edited_from)
    pairs = training_bridge.preference_pairs(labels)
    implied = [p for p in pairs if p.chosen == labels[0].rewrite.text]
    assert len(pairs) == len(implied) + (choice in ("left", "right", "tie"))  # both bad decides nothing by itself
    by_rejected = {p.rejected: p for p in implied}
    assert set(by_rejected) == {comparison.response_a.text, comparison.response_b.text}
    assert by_rejected[comparison.response_a.text].margin == margins["a"] and by_rejected[comparison.response_b.text].margin == margins["b"]
    assert {p.split_key for p in implied} == {str(comparison.pk)} and all(not p.tie and p.weight == 1.0 for p in implied)


@pytest.mark.django_db
def test_rewrite_pairs_carry_the_rater_s_weight_and_none_for_an_untrusted_rater(make_user, make_comparisons):
    _, rater, labels = _rewritten(make_user, make_comparisons, choice="left")
    assert {p.weight for p in training_bridge.rewrite_pairs(labels[0], margins=(0.1, 0.2, 0.3), weight=0.5)} == {0.5}
    assert training_bridge.preference_pairs(labels, weights={rater.pk: 0.0}) == []


@pytest.mark.django_db
def test_an_ai_label_counts_with_its_judge_version_s_weight_and_not_without_one(make_user, make_comparisons, make_judge):
    """An AI label is a vote weighted by ``ai_weights`` (none: left out); a comparison with only an unweighted AI label
    makes no pair; a rater's label beside it keeps its own weight."""
    from feedback_app.models import PreferenceLabel

    judge = make_judge()
    version = judge.versions.get()
    ai_only, both = make_comparisons(2)
    PreferenceLabel.objects.create(comparison=ai_only, judge_version=version, winner="a")
    PreferenceLabel.objects.create(comparison=both, judge_version=version, winner="a")
    PreferenceLabel.objects.create(comparison=both, rater=make_user(), winner="a")

    def labels():
        return PreferenceLabel.objects.select_related("comparison__prompt", "comparison__response_a", "comparison__response_b").order_by(
            "comparison_id", "id")

    (pair,) = training_bridge.preference_pairs(labels())
    assert pair.pair_id == str(both.pk) and pair.weight == pytest.approx(1.0)
    weighted = training_bridge.preference_pairs(labels(), ai_weights={version.pk: 0.5})
    assert [p.pair_id for p in weighted] == [str(ai_only.pk), str(both.pk)]
    assert weighted[0].weight == pytest.approx(0.5) and weighted[1].weight == pytest.approx(0.75)
