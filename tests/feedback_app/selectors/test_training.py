"""What training reads: the active version of a kind, labels up to now, verdicts, and the published prompts."""

import pytest

from feedback_app.models import Campaign, Comparison, ImportBatch, PolicyVersion, PreferenceLabel, Prompt, RewardModelVersion, TrainingRun
from feedback_app.selectors.training import (
    policy_active,
    policy_names_with_weights,
    prompt_ids_published,
    reward_labels_unlearned,
    reward_model_active,
    reward_model_live,
    reward_refit_through,
    training_run_pending,
    verdicts,
    version_active,
    version_by_name,
)
from feedback_app.services.training_data import labels_for_training

pytestmark = pytest.mark.django_db


def _label(comparison, rater, winner="a"):
    return PreferenceLabel.objects.create(comparison=comparison, rater=rater, winner=winner, strength=2)


def test_the_range_is_fixed_before_the_labels_are_read(make_comparisons, make_user):
    """A label written after the call (during the fit) is not read, and the range ends before it."""
    first, second = make_comparisons(2)
    raters = [make_user() for _ in range(3)]
    labels = [_label(second, raters[0]), _label(first, raters[1]), _label(second, raters[2], "b")]
    rows, data_range = labels_for_training()
    late = _label(first, raters[0])
    read = list(rows)
    assert [label.pk for label in read] == [labels[1].pk, labels[0].pk, labels[2].pk]  # by comparison, then id
    assert late.pk not in {label.pk for label in read}
    assert data_range == {"first_label_id": labels[0].pk, "last_label_id": labels[2].pk, "n_labels": 3}


def test_excluded_comparisons_and_given_prompts_are_left_out(make_comparisons, rater):
    kept, excluded, held_out = make_comparisons(3)
    for comparison in (kept, excluded, held_out):
        _label(comparison, rater)
    Comparison.objects.filter(pk=excluded.pk).update(excluded=True)
    rows, data_range = labels_for_training(exclude_prompt_ids=[held_out.prompt_id])
    assert [label.comparison_id for label in rows] == [kept.pk]
    assert data_range["n_labels"] == 1 and data_range["last_label_id"] == PreferenceLabel.objects.latest("id").pk


def test_no_labels_is_an_empty_range():
    rows, data_range = labels_for_training()
    assert list(rows) == [] and data_range == {"first_label_id": None, "last_label_id": None, "n_labels": 0}


def test_verdicts_are_the_adjudicated_answers_of_comparisons_still_in(make_comparisons):
    decided, undecided, excluded = make_comparisons(3)
    Comparison.objects.filter(pk=decided.pk).update(adjudicated_winner="b")
    Comparison.objects.filter(pk=excluded.pk).update(adjudicated_winner="a", excluded=True)
    assert verdicts() == {decided.pk: "b"}


@pytest.mark.parametrize("model", [RewardModelVersion, PolicyVersion])
def test_the_active_version_and_a_version_by_name(model):
    assert version_active(model=model) is None
    model.objects.create(name="v1", path="v/1", status="retired")
    live = model.objects.create(name="v2", path="v/2", status="active")
    model.objects.create(name="v3", path="v/3", status="candidate")
    assert version_active(model=model).pk == live.pk
    assert version_by_name(model=model, name="v3").status == "candidate" and version_by_name(model=model, name="v9") is None
    assert (reward_model_active() if model is RewardModelVersion else policy_active()).pk == live.pk
    assert (policy_active() if model is RewardModelVersion else reward_model_active()) is None  # kinds do not mix
    assert reward_model_live() is (model is RewardModelVersion)


def test_a_reward_model_is_live_only_while_one_of_the_campaigns_line_is_active():
    other = Campaign.objects.create(slug="other", name="Other")
    RewardModelVersion.objects.create(name="rm-a", path="r/a", status="candidate")
    RewardModelVersion.objects.create(name="rm-b", path="r/b", status="active", campaign=other)
    assert not reward_model_live() and reward_model_live(campaign_id=other.pk)
    RewardModelVersion.objects.filter(name="rm-b").update(status="retired")
    assert not reward_model_live(campaign_id=other.pk)


def test_published_prompts_leave_out_staged_imports():
    done = ImportBatch.objects.create(kind="prompts", filename="done.jsonl", sha256="done", published=True)
    staged = ImportBatch.objects.create(kind="prompts", filename="staged.jsonl", sha256="staged", published=False)
    loose = Prompt.objects.create(text="typed in", source="test")
    imported = Prompt.objects.create(text="imported", source="test", import_batch=done)
    Prompt.objects.create(text="staged", source="test", import_batch=staged)
    assert list(prompt_ids_published()) == [loose.pk, imported.pk]


@pytest.mark.django_db
def test_policy_names_with_weights_leave_out_pruned_versions_newest_first():
    """The versions the samples form offers: every status but pruned, newest first."""
    for name, status in [("policy-base", "retired"), ("policy-2", "pruned"), ("policy-3", "active"), ("policy-4", "candidate")]:
        PolicyVersion.objects.create(name=name, path=f"policy/{name}", status=status)
    assert policy_names_with_weights() == ["policy-4", "policy-3", "policy-base"]


def test_a_pending_run_is_one_queued_or_running_of_the_campaign_and_kind(researcher):
    kind, Status, Trigger = TrainingRun.Kind.REWARD_FAST, TrainingRun.Status, TrainingRun.Trigger
    assert not training_run_pending(campaign_id=1, kind=kind)
    run = TrainingRun.objects.create(kind=kind, requested_by=researcher, status=Status.RUNNING, trigger=Trigger.MANUAL)
    assert training_run_pending(campaign_id=1, kind=kind)
    assert not training_run_pending(campaign_id=1, kind=kind, running_only_if_auto=True)  # a manual refit running: the next is not on its way
    assert not training_run_pending(campaign_id=1, kind=TrainingRun.Kind.POLICY_DPO) and not training_run_pending(campaign_id=2, kind=kind)
    TrainingRun.objects.filter(pk=run.pk).update(trigger=Trigger.AUTO)
    assert training_run_pending(campaign_id=1, kind=kind, running_only_if_auto=True)
    TrainingRun.objects.filter(pk=run.pk).update(status=Status.QUEUED, trigger=Trigger.MANUAL)
    assert training_run_pending(campaign_id=1, kind=kind, running_only_if_auto=True)
    for finished in (Status.SUCCEEDED, Status.FAILED):
        TrainingRun.objects.filter(pk=run.pk).update(status=finished)
        assert not training_run_pending(campaign_id=1, kind=kind)


def test_the_labels_a_reward_model_has_not_learned_and_where_a_bounded_refit_stops(make_comparisons, make_user, make_judge):
    """Counted after the newest version's data (any status), up to a cap; a reward-model judge's labels never count."""
    comparisons = make_comparisons(7)
    labels = [_label(c, make_user()) for c in comparisons[:6]]
    judged = PreferenceLabel.objects.create(comparison=comparisons[6], judge_version=make_judge("rm", kind="reward_model").versions.get(), winner="a")
    assert reward_labels_unlearned() == 6 and [reward_labels_unlearned(cap=cap) for cap in (1, 5, 6, 9)] == [1, 5, 6, 6]
    assert reward_refit_through(at_most=2) == labels[1].pk and reward_refit_through(at_most=6) == labels[5].pk
    assert reward_refit_through(at_most=7) is None and reward_refit_through(at_most=0) is None  # fewer arrived; no bound
    RewardModelVersion.objects.create(name="rm-1", path="reward/rm-1", status="candidate", data_range={"last_label_id": labels[3].pk})
    assert reward_labels_unlearned() == 2 and reward_refit_through(at_most=1) == labels[4].pk
    assert reward_labels_unlearned(campaign_id=999) == 0 and judged.pk > labels[-1].pk
