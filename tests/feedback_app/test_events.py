"""After-commit events: a broker that is down never fails the write that triggered them."""

import pytest
from kombu.exceptions import OperationalError

from feedback_app import tasks
from feedback_app.models import TrainingRun
from feedback_app.services.training_runs import training_run_request

pytestmark = pytest.mark.django_db


def test_a_run_requested_while_the_broker_is_down_is_saved_and_the_request_does_not_fail(monkeypatch, django_capture_on_commit_callbacks, caplog):
    def broker_down(*args):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    monkeypatch.setattr(tasks.training_run_execute, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_request(kind=TrainingRun.Kind.REWARD_FAST, trigger=TrainingRun.Trigger.MANUAL)
    assert TrainingRun.objects.get(pk=run.pk).status == TrainingRun.Status.QUEUED
    assert "could not send feedback_app.tasks.training_run_execute" in caplog.text
