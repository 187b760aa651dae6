"""A label, once committed, queues a refit when REFIT_EVERY_N_LABELS arrived.

labeling.label_record → auto_refit.refit_ask_after_commit → (on commit) auto_refit.training_auto_refit_if_due →
training_runs.training_run_get_or_request → events.training_run_queued → (on commit) tasks.training_run_execute.
"""

import pytest

from feedback_app.models import TrainingRun
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.selectors.campaigns import campaign_default

pytestmark = pytest.mark.django_db


def test_labels_trigger_the_refit_after_commit(settings, make_user, make_comparisons, monkeypatch, django_capture_on_commit_callbacks):
    from feedback_app import tasks

    sent = []
    monkeypatch.setattr(tasks.training_run_execute, "apply_async", lambda args, **kw: sent.append(args[0]))
    settings.REFIT_EVERY_N_LABELS = 3
    rater = make_user()
    make_comparisons(4)
    for _ in range(4):
        with django_capture_on_commit_callbacks(execute=True):
            a = assignment_lease_next(campaign=campaign_default(), rater=rater)
            label_record(campaign=campaign_default(), rater=rater, comparison_id=a.comparison_id, submission=LabelSubmission(choice="left"))
    assert len(sent) == 1 and TrainingRun.objects.get().trigger == "auto"
