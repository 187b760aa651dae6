"""Policy updates by themselves: every N labels and after a promoted reward model, never two at once."""

import pytest

from feedback_app.selectors.campaigns import campaign_default
from feedback_app.models import RewardModelVersion, TrainingRun
from feedback_app.services.policy_cadence import (
    policy_ask_after_commit, policy_auto_update_if_due, policy_check_due, policy_labels_since_last_run,
)
from feedback_app.services.training_runs import training_run_fail, training_run_request
from feedback_app.services.versions import version_activate

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """Record (run id, queue) of the runs sent to the workers."""
    from feedback_app import tasks

    log = []
    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: log.append((args[0], kw.get("queue"))))
    return log


def test_the_count_is_checked_on_every_tenth_of_n_labels(settings):
    settings.POLICY_EVERY_N_LABELS = 0
    assert not any(policy_check_due(label_id=i, campaign=campaign_default()) for i in range(1, 101))
    settings.POLICY_EVERY_N_LABELS = 200
    assert [i for i in range(1, 81) if policy_check_due(label_id=i, campaign=campaign_default())] == [20, 40, 60, 80]


def test_n_labels_queue_one_automatic_policy_update_sent_to_the_policy_queue(settings, labelled, reward_active, sent,
                                                                              django_capture_on_commit_callbacks):
    settings.POLICY_EVERY_N_LABELS = 7
    assert policy_auto_update_if_due() is None  # 6 labels so far
    settings.POLICY_EVERY_N_LABELS = 6
    with django_capture_on_commit_callbacks(execute=True):
        run = policy_auto_update_if_due()
    assert (run.kind, run.trigger, run.status) == ("policy_dpo", "auto", "queued") and sent == [(run.pk, "policy")]
    assert policy_auto_update_if_due() is None  # never two at once
    assert TrainingRun.objects.filter(kind="policy_dpo").count() == 1


def test_labels_are_counted_from_the_last_policy_run_even_a_failed_one(settings, labelled, reward_active, sent):
    settings.POLICY_EVERY_N_LABELS = 6
    run = policy_auto_update_if_due()
    training_run_fail(run_id=run.pk, error="no decided comparison to learn from yet")
    assert policy_labels_since_last_run() == 0
    assert policy_auto_update_if_due() is None  # not again on every reap: after 6 more labels


def test_the_count_stops_at_its_cap(labelled):
    """The due check asks whether N labels arrived: it counts no further, however many wait."""
    assert policy_labels_since_last_run() == 6
    assert [policy_labels_since_last_run(cap=cap) for cap in (1, 4, 6, 9)] == [1, 4, 6, 6]


def test_a_manual_policy_update_queued_or_running_holds_the_automatic_one_back(settings, labelled, sent):
    settings.POLICY_EVERY_N_LABELS = 6
    manual = training_run_request(kind="policy_dpo", trigger=TrainingRun.Trigger.MANUAL)
    TrainingRun.objects.filter(pk=manual.pk).update(status=TrainingRun.Status.RUNNING)
    TrainingRun.objects.filter(pk=manual.pk).update(created_at=manual.created_at.replace(year=2000))  # the labels came after it
    assert policy_auto_update_if_due() is None
    assert TrainingRun.objects.filter(kind="policy_dpo").count() == 1


def test_no_policy_update_is_queued_before_the_campaign_has_a_reward_model(settings, labelled, sent, django_capture_on_commit_callbacks):
    """A DPO run without an active reward model fails at once: none is queued, and the labels wait for the first one."""
    settings.POLICY_EVERY_N_LABELS = 6
    assert policy_auto_update_if_due() is None and not TrainingRun.objects.exists() and sent == []
    version = RewardModelVersion.objects.create(name="rm-00001", path="reward/rm-00001")
    version_activate(version=version, user=None, action="promote", reason="test")
    with django_capture_on_commit_callbacks(execute=True):
        run = policy_auto_update_if_due()  # the labels given meanwhile still count
    assert run.kind == "policy_dpo" and sent == [(run.pk, "policy")]


def test_off_when_n_is_zero(settings, labelled, sent):
    settings.POLICY_EVERY_N_LABELS = 0
    assert policy_auto_update_if_due() is None and not TrainingRun.objects.exists()


def test_the_question_is_asked_once_the_label_commits(settings, labelled, reward_active, sent, django_capture_on_commit_callbacks):
    settings.POLICY_EVERY_N_LABELS = 60  # checked on label ids divisible by 6
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        policy_ask_after_commit(label_id=7, campaign=campaign_default())
    assert callbacks == []
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        policy_ask_after_commit(label_id=12, campaign=campaign_default())
    assert len(callbacks) == 1 and not TrainingRun.objects.exists()
    settings.POLICY_EVERY_N_LABELS = 6  # 6 labels exist: due
    callbacks[0]()
    assert TrainingRun.objects.get().kind == "policy_dpo"


@pytest.mark.parametrize("enabled", [True, False])
def test_a_promoted_reward_model_queues_one_policy_update_when_the_setting_is_on(settings, sent, enabled,
                                                                                django_capture_on_commit_callbacks):
    settings.POLICY_AFTER_REWARD_PROMOTION = enabled
    first = RewardModelVersion.objects.create(name="rm-00001", path="reward/rm-00001")
    second = RewardModelVersion.objects.create(name="rm-00002", path="reward/rm-00002")
    with django_capture_on_commit_callbacks(execute=True):
        version_activate(version=first, user=None, action="promote", reason="test")
    with django_capture_on_commit_callbacks(execute=True):
        version_activate(version=second, user=None, action="promote", reason="test")  # while the first update waits
    for run in TrainingRun.objects.filter(kind="policy_dpo"):
        training_run_fail(run_id=run.pk, error="cancelled")
    with django_capture_on_commit_callbacks(execute=True):
        version_activate(version=first, user=None, action="rollback", reason="test")  # a rollback is no promotion
    runs = TrainingRun.objects.filter(kind="policy_dpo")
    assert runs.count() == (1 if enabled else 0)
    if enabled:
        assert runs.get().trigger == "auto" and [queue for _, queue in sent] == ["policy"]
