"""A reward refit: the first version goes live, later ones pass the promotion gate or stay candidates.

The trainer is the FakeFit of conftest.py; the real one runs in tests/scenarios/test_loop_with_real_models.py.
"""

import pytest

from feedback_app.models import AuditEntry, PreferenceLabel, RewardModelVersion, TrainingRun
from feedback_app.services.reward_refit import reward_promotion_decision
from feedback_app.selectors.campaigns import campaign_default

pytestmark = pytest.mark.django_db


def test_first_version_is_promoted(labelled, fake_fit, run_now):
    run = run_now()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    version = run.reward_model_version
    assert version.status == "active" and version.name == f"rm-{run.pk:05d}" and version.path == f"reward/{version.name}"
    assert version.data_range["n_pairs"] == 6 and version.data_range["last_label_id"] == PreferenceLabel.objects.latest("id").pk
    assert run.metrics["val_accuracy"] == 0.8 and run.metrics["promoted"] and "no reward model was active" in run.metrics["gate"]
    assert run.progress["phase"] == "done" and run.worker == "w1" and run.finished_at
    assert AuditEntry.objects.filter(action="rewardmodelversion.promote", target=version.name).exists()


def test_gate_keeps_a_worse_model_as_candidate(labelled, fake_fit, run_now):
    first = run_now().reward_model_version
    fake_fit.accuracy, fake_fit.baseline_accuracy = 0.6, 0.8
    second = run_now()
    assert fake_fit.calls[-1]["baseline"] == first.path and fake_fit.calls[-1]["parent"] == first.name
    assert second.reward_model_version.status == "candidate" and not second.metrics["promoted"]
    first.refresh_from_db()
    assert first.status == "active"
    fake_fit.accuracy = 0.79  # within the tolerance of 0.02
    assert run_now().reward_model_version.status == "active"
    first.refresh_from_db()
    assert first.status == "retired"
    assert RewardModelVersion.objects.filter(status="active").count() == 1


def test_promotion_decision():
    assert reward_promotion_decision(new={"accuracy": 0.7}, baseline=None)[0]
    assert reward_promotion_decision(new={"accuracy": 0.70}, baseline={"accuracy": 0.71, "n": 10_000})[0]
    assert not reward_promotion_decision(new={"accuracy": 0.60}, baseline={"accuracy": 0.71, "n": 10_000})[0]
    assert not reward_promotion_decision(new={"accuracy": None}, baseline={"accuracy": 0.71, "n": 100})[0]
    # On 25 pairs one standard error of 0.8 is 0.08: a drop to 0.74 is noise, to 0.70 is not.
    assert reward_promotion_decision(new={"accuracy": 0.74}, baseline={"accuracy": 0.80, "n": 25})[0]
    assert not reward_promotion_decision(new={"accuracy": 0.70}, baseline={"accuracy": 0.80, "n": 25})[0]


def test_too_few_labels_is_a_clear_failure(fake_fit, run_now):
    run = run_now()
    assert run.status == TrainingRun.Status.FAILED and "only 0 decided comparison(s)" in run.error and not fake_fit.calls


def test_a_refit_learns_the_pairs_a_rewrite_implies(labelled, fake_fit, run_now, make_comparisons, make_user):
    """Six decided comparisons and one more with a rewrite: 7 pairs, and 2 more for the rewrite over each reply."""
    from feedback_app.services.labeling import LabelSubmission, label_record
    from feedback_app.services.leasing import assignment_lease_next

    (comparison,) = make_comparisons(1)
    rater = make_user()
    assert assignment_lease_next(campaign=campaign_default(), rater=rater).comparison_id == comparison.pk
    label_record(campaign=campaign_default(), rater=rater, comparison_id=comparison.pk, submission=LabelSubmission(choice="left", edited_text="It ships on Monday."))
    run = run_now()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert fake_fit.calls[-1]["n"] == 9 and run.reward_model_version.data_range["n_pairs"] == 9
    assert fake_fit.calls[-1]["facts"] == 9  # each pair's digest and split, kept with the pairs, go with them


def test_a_reward_model_judge_s_labels_never_refit_a_reward_model(labelled, fake_fit, run_now, make_judge, make_audits, make_comparisons, settings):
    """The circularity rule: a trusted reward-model judge's AI labels are left out of a refit; a trusted remote judge's count."""
    from feedback_app.models import PreferenceLabel

    settings.AI_MIN_AUDITS = 1
    rm_judge, remote = make_judge("rm", kind="reward_model", routing=False), make_judge("remote")
    for judge in (rm_judge, remote):
        make_audits(judge, n=1, agree=1)
    people = run_now()
    by_rm, by_remote = make_comparisons(2)
    PreferenceLabel.objects.create(comparison=by_rm, judge_version=rm_judge.versions.get(), winner="a")
    PreferenceLabel.objects.create(comparison=by_remote, judge_version=remote.versions.get(), winner="b")
    both = run_now()
    assert people.status == TrainingRun.Status.SUCCEEDED and fake_fit.calls[-1]["n"] == fake_fit.calls[0]["n"] + 1
    assert both.metrics["ai_labels"] == {"ai:remote": 1} and people.metrics["ai_labels"] == {}  # each model says which judges taught it


def test_a_fast_refit_behind_its_labels_learns_a_bounded_slice_and_asks_for_the_next(labelled, fake_fit, run_now, settings, monkeypatch,
                                                                                       django_capture_on_commit_callbacks):
    """REFIT_MAX_NEW_LABELS more than the version before, no more; the next refit is asked for once the version commits and takes
    the rest."""
    from feedback_app import tasks
    from feedback_app.selectors.training import reward_labels_unlearned

    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: None)
    settings.REFIT_MAX_NEW_LABELS, settings.REFIT_EVERY_N_LABELS = 4, 2
    ids = list(PreferenceLabel.objects.order_by("id").values_list("id", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        first = run_now()
    assert first.status == TrainingRun.Status.SUCCEEDED, first.error
    assert first.reward_model_version.data_range | {"n_pairs": None} == {"first_label_id": ids[0], "last_label_id": ids[3], "n_labels": 4,
                                                                        "n_pairs": None, "bounded": True}
    assert fake_fit.calls[-1]["n"] == 4 and reward_labels_unlearned() == 2
    asked = TrainingRun.objects.get(trigger=TrainingRun.Trigger.AUTO, status=TrainingRun.Status.QUEUED)  # the 2 left make one due
    from feedback_app.services.training import training_run_execute

    with django_capture_on_commit_callbacks(execute=True):
        training_run_execute(run_id=asked.pk, worker="w1")
    asked.refresh_from_db()
    assert asked.reward_model_version.data_range["last_label_id"] == ids[-1] and not asked.reward_model_version.data_range["bounded"]
    assert fake_fit.calls[-1]["n"] == 6 and reward_labels_unlearned() == 0
    assert not TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED).exists()  # an unbounded refit asks for nothing


def test_a_full_refit_learns_every_label(labelled, fake_fit, run_now, settings):
    settings.REFIT_MAX_NEW_LABELS = 1
    full = run_now("reward_full")
    assert full.reward_model_version.data_range["n_labels"] == 6 and not full.reward_model_version.data_range["bounded"]


def test_a_fast_refit_starts_from_the_active_fast_heads_and_a_full_version_s_never(labelled, fake_fit, run_now):
    """The active fast version's heads warm the next fast refit; a full refit, and a fast one after a full version, start cold."""
    first = run_now().reward_model_version
    assert fake_fit.calls[-1]["warm_heads"] is None
    run_now()
    assert fake_fit.calls[-1]["warm_heads"] == first.path and fake_fit.calls[-1]["n"] == 6
    full = run_now("reward_full").reward_model_version
    assert fake_fit.calls[-1]["warm_heads"] is None and full.status == "active"
    run_now()
    assert fake_fit.calls[-1]["warm_heads"] is None  # the active version's heads sit on its own fine-tuned encoder
