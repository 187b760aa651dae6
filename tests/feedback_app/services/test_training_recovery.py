"""The loop heals itself: lost run messages are sent again, lost refit triggers come back.

Celery is eager here; a message is "lost" by replacing the send with one that drops it, and the
broker's answer (is the message waiting?) is set by the test, except in the last two tests,
which ask a real Redis.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError

from feedback_app import broker, events, tasks
from feedback_app.models import RewardModelVersion, TrainingRun
from feedback_app.services.auto_refit import training_auto_refit_if_due
from feedback_app.services.training_recovery import _training_run_resend, training_loop_heal, training_runs_resend_lost

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_says(monkeypatch):
    """Set what the broker answers to "is this run's message waiting?" (None: it cannot tell)."""
    answer = {"value": None}
    monkeypatch.setattr(broker, "task_message_waiting", lambda *, task, args=(), queue=None: answer["value"])
    return answer


@pytest.fixture
def sent(monkeypatch):
    """Record the runs sent to the workers instead of running them."""
    ids = []
    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: ids.append(args[0]))
    return ids


def test_a_lost_automatic_refit_is_sent_again_and_runs(settings, labelled, fake_fit, broker_says, monkeypatch,
                                                      django_capture_on_commit_callbacks):
    """The reproduction: the refit's message is dropped, so it stays queued and no refit is ever queued again, until the reaper."""
    settings.REFIT_EVERY_N_LABELS = 5
    dropped = []
    with monkeypatch.context() as m:
        m.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: dropped.append(args[0]))  # the broker lost it
        with django_capture_on_commit_callbacks(execute=True):
            run = training_auto_refit_if_due()
    assert dropped == [run.pk] and training_auto_refit_if_due() is None  # the rule waits for the lost run

    broker_says["value"] = False
    result = training_loop_heal(now=timezone.now() + timedelta(seconds=settings.TRAINING_RESEND_AFTER + 1))
    run.refresh_from_db()
    assert result["resent"] == 1 and run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert run.enqueue_count == 2 and run.enqueue_failed_at is None and len(fake_fit.calls) == 1
    assert RewardModelVersion.objects.get().status == "active"


def test_the_reaper_queues_a_refit_whose_trigger_was_lost(settings, labelled, sent, django_capture_on_commit_callbacks):
    """Labels trigger refits after commit; if that trigger is lost, the next reap queues the refit with no person."""
    settings.REFIT_EVERY_N_LABELS = 5
    assert not TrainingRun.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert training_loop_heal()["refits_queued"] == 1
    run = TrainingRun.objects.get()
    assert run.trigger == "auto" and run.status == "queued" and sent == [run.pk]
    assert training_loop_heal()["refits_queued"] == 0  # one pending automatic run of a kind


def test_a_run_waiting_behind_a_long_run_is_never_failed(broker_says, sent, settings):
    """A day behind a running run: its message waits in the queue, so nothing is sent; when the broker cannot tell, a few are."""
    settings.TRAINING_RESEND_AFTER = 120  # blind re-sends double from this, capped at 64 times it
    start = timezone.now()
    long_run = TrainingRun.objects.create(kind="reward_full", status="running", worker="gpu@a", heartbeat_at=start)
    waiting = TrainingRun.objects.create(kind="reward_fast", enqueued_at=start, enqueue_count=1)
    for answer, most in ((True, 0), (None, 20)):
        broker_says["value"] = answer
        sent.clear()
        for minute in range(0, 24 * 60, 5):
            now = start + timedelta(minutes=minute)
            TrainingRun.objects.filter(pk=long_run.pk).update(heartbeat_at=now)
            training_loop_heal(now=now)
        waiting.refresh_from_db()
        assert waiting.status == "queued" and not waiting.error
        assert len(sent) <= most and set(sent) <= {waiting.pk}
    assert len(sent) >= 5  # unsure of the broker, it kept trying, at doubling intervals


def test_a_run_that_cannot_be_sent_for_long_is_failed(settings, broker_says, monkeypatch):
    broker_says["value"] = False
    start = timezone.now()
    run = TrainingRun.objects.create(kind="reward_fast", enqueued_at=start - timedelta(hours=1), enqueue_count=1)

    def broker_down(*, run_id, kind):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    monkeypatch.setattr(events, "training_run_resend", broker_down)
    assert training_runs_resend_lost(now=start) == 0
    run.refresh_from_db()
    assert run.status == "queued" and run.enqueue_failed_at == start
    later = start + timedelta(seconds=settings.TRAINING_RESEND_GIVE_UP)
    training_runs_resend_lost(now=later - timedelta(seconds=1))
    run.refresh_from_db()
    assert run.status == "queued"  # failing for not quite TRAINING_RESEND_GIVE_UP
    training_runs_resend_lost(now=later + timedelta(seconds=settings.TRAINING_RESEND_AFTER))
    run.refresh_from_db()
    assert run.status == "failed" and "could not be sent again" in run.error and "Connection refused" in run.error


def test_a_successful_send_clears_the_failure(broker_says, sent):
    broker_says["value"] = False
    now = timezone.now()
    run = TrainingRun.objects.create(kind="reward_fast", enqueued_at=now - timedelta(hours=1), enqueue_count=3,
                                     enqueue_failed_at=now - timedelta(minutes=10))
    assert training_runs_resend_lost(now=now) == 1
    run.refresh_from_db()
    assert sent == [run.pk] and run.enqueue_failed_at is None and run.enqueue_count == 4 and run.enqueued_at == now


def test_only_one_of_several_reapers_sends_and_claimed_runs_are_left_alone(broker_says, sent):
    broker_says["value"] = False
    now = timezone.now()
    run = TrainingRun.objects.create(kind="reward_fast")  # committed, its message never sent
    TrainingRun.objects.create(kind="reward_full", status="running", heartbeat_at=now)
    seen_by_both = TrainingRun.objects.get(pk=run.pk)
    assert _training_run_resend(seen_by_both, now=now) == 1
    assert _training_run_resend(seen_by_both, now=now) == 0  # the other reaper lost the claim
    assert training_runs_resend_lost(now=now) == 0  # just sent: not due
    assert sent == [run.pk]


def test_a_fresh_run_is_not_resent_before_its_first_message_could_arrive(broker_says, sent):
    broker_says["value"] = False
    now = timezone.now()
    TrainingRun.objects.create(kind="reward_fast", enqueued_at=now - timedelta(seconds=5), enqueue_count=1)
    assert training_runs_resend_lost(now=now) == 0 and sent == []


def test_the_reaper_reads_the_real_queue(broker_client, monkeypatch):
    """With its message in the Redis list of the gpu queue the run is left alone; once the list is emptied, it is sent."""
    resent = []
    monkeypatch.setattr(events, "training_run_resend", lambda *, run_id, kind: resent.append(run_id))
    now = timezone.now()
    run = TrainingRun.objects.create(kind="reward_fast", enqueued_at=now - timedelta(hours=5), enqueue_count=1)
    broker_client.send_task("feedback_app.tasks.training_run_execute", args=[run.pk], queue="gpu")
    assert training_runs_resend_lost(now=now) == 0 and resent == []
    broker_client.connection_for_write().default_channel.client.delete("gpu")  # Redis restarted without its data
    assert training_runs_resend_lost(now=now) == 1 and resent == [run.pk]


def test_the_reaper_looks_for_a_policy_run_in_the_policy_queue_and_resends_it_there(broker_client, monkeypatch):
    """A DPO run's message waits in the "policy" list: left alone there; once lost, it is sent again to "policy"."""
    sent = []
    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: sent.append((tuple(args), kw.get("queue"))))
    now = timezone.now()
    run = TrainingRun.objects.create(kind="policy_dpo", enqueued_at=now - timedelta(hours=5), enqueue_count=1)
    broker_client.send_task("feedback_app.tasks.training_run_execute", args=[run.pk], queue="policy")
    assert training_runs_resend_lost(now=now) == 0 and sent == []
    broker_client.connection_for_write().default_channel.client.delete("policy")
    assert training_runs_resend_lost(now=now) == 1 and sent == [((run.pk,), "policy")]


def test_the_reaper_queues_a_policy_update_that_is_due(settings, labelled, reward_active, sent):
    """A lost label trigger for a policy update comes back from the reaper, like a refit's."""
    settings.POLICY_EVERY_N_LABELS = 6
    result = training_loop_heal()
    assert result["policy_updates_queued"] == 1 and result["policies_rolled_back"] == 0
    assert TrainingRun.objects.get(kind="policy_dpo").trigger == "auto"
    assert training_loop_heal()["policy_updates_queued"] == 0
