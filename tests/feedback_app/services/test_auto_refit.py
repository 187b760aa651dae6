"""When a reward refit is due by itself: the cheap check per label, then the count after the label commits."""

import pytest
from django.db import IntegrityError, transaction

from feedback_app.selectors.campaigns import campaign_default
from feedback_app.models import TrainingRun
from feedback_app.services.auto_refit import refit_ask_after_commit, refit_check_due, training_auto_refit_if_due

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_broker(monkeypatch):
    from feedback_app import tasks

    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: None)


def test_the_count_is_checked_on_every_tenth_of_n_labels(settings):
    """Off at 0; every label below 10 (5 → every 1); every N/10 labels above (50 → every 5)."""
    settings.REFIT_EVERY_N_LABELS = 0
    assert not any(refit_check_due(label_id=i, campaign=campaign_default()) for i in range(1, 101))
    settings.REFIT_EVERY_N_LABELS = 5
    assert all(refit_check_due(label_id=i, campaign=campaign_default()) for i in range(1, 101))
    settings.REFIT_EVERY_N_LABELS = 50
    assert [i for i in range(1, 31) if refit_check_due(label_id=i, campaign=campaign_default())] == [5, 10, 15, 20, 25, 30]


def test_the_question_is_asked_once_the_label_commits_and_only_when_due(settings, labelled, no_broker, django_capture_on_commit_callbacks):
    """Nothing is counted inside the label's transaction, nor on a label the check skips; a rolled-back label asks nothing."""
    settings.REFIT_EVERY_N_LABELS = 50  # checked on label ids divisible by 5
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        refit_ask_after_commit(label_id=7, campaign=campaign_default())
    assert callbacks == []
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        refit_ask_after_commit(label_id=10, campaign=campaign_default())
    assert len(callbacks) == 1 and not TrainingRun.objects.exists()
    settings.REFIT_EVERY_N_LABELS = 5  # 6 labels exist: due
    callbacks[0]()
    assert TrainingRun.objects.get().trigger == "auto"


def test_automatic_refit_every_n_labels(settings, labelled, no_broker):
    settings.REFIT_EVERY_N_LABELS = 10
    assert training_auto_refit_if_due() is None  # 6 labels so far
    settings.REFIT_EVERY_N_LABELS = 5
    run = training_auto_refit_if_due()
    assert run.trigger == "auto" and run.kind == "reward_fast"
    assert training_auto_refit_if_due() is None  # one automatic run pending at a time
    assert TrainingRun.objects.filter(trigger="auto").count() == 1


def test_no_refit_when_switched_off(settings, labelled, no_broker):
    settings.REFIT_EVERY_N_LABELS = 0
    assert training_auto_refit_if_due() is None and not TrainingRun.objects.exists()


def test_the_automatic_rule_is_one_pending_run_per_kind(settings, labelled, no_broker):
    """An automatic run of another kind does not hold back a refit; a queued refit of any trigger does."""
    settings.REFIT_EVERY_N_LABELS = 5
    TrainingRun.objects.create(kind="policy_dpo", trigger="auto", status="running")
    manual = TrainingRun.objects.create(kind="reward_fast", trigger="manual")
    assert training_auto_refit_if_due() is None  # the queued manual refit takes these labels
    TrainingRun.objects.filter(pk=manual.pk).update(status="running")
    run = training_auto_refit_if_due()
    assert run.kind == "reward_fast" and run.trigger == "auto"
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingRun.objects.create(kind="reward_fast", trigger="auto", status="running")


def test_a_reward_model_judge_s_labels_make_no_refit_due(settings, make_judge, make_comparisons, no_broker):
    """Labels that can never train a reward model do not count towards REFIT_EVERY_N_LABELS; a remote judge's do."""
    from feedback_app.models import PreferenceLabel

    settings.REFIT_EVERY_N_LABELS = 3
    rm_judge, remote = make_judge("rm", kind="reward_model", routing=False), make_judge("remote")
    comparisons = make_comparisons(6)
    for comparison in comparisons[:3]:
        PreferenceLabel.objects.create(comparison=comparison, judge_version=rm_judge.versions.get(), winner="a")
    assert training_auto_refit_if_due() is None
    for comparison in comparisons[3:]:
        PreferenceLabel.objects.create(comparison=comparison, judge_version=remote.versions.get(), winner="a")
    assert training_auto_refit_if_due().trigger == "auto"
