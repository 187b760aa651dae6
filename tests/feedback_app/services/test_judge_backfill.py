"""Back-filling a judge: verdicts on what people labelled, marked back-filled, once per version; never labels."""

import pytest

from feedback_app import training_bridge
from feedback_app.models import PreferenceLabel, RewardModelVersion, Verdict
from feedback_app.services.judge_backfill import judge_backfill, judge_backfill_request
from feedback_app.services.judges import JudgeUnavailable

pytestmark = pytest.mark.django_db


@pytest.fixture
def rm_judge(make_judge, monkeypatch):
    RewardModelVersion.objects.create(name="rm-1", path="reward/rm-1", status="active")
    monkeypatch.setattr(training_bridge, "comparisons_rm_judge", lambda *, version_name, version_path, items, models: [(0.9, 0.0)] * len(items))
    return make_judge("rm", kind="reward_model", routing=False)


def test_a_backfill_judges_the_decisively_labelled_comparisons_once(rm_judge, make_comparisons, make_user):
    """Comparisons with an A or B rater label are judged (a tie-only or unlabelled one is not); a second run finds nothing new."""
    rater = make_user()
    decided, tied, unlabelled = make_comparisons(3)
    PreferenceLabel.objects.create(comparison=decided, rater=rater, winner="b")
    PreferenceLabel.objects.create(comparison=tied, rater=rater, winner="tie")
    assert judge_backfill(judge=rm_judge) == {"a": 1}
    verdict = Verdict.objects.get()
    assert verdict.comparison == decided and verdict.backfill and not PreferenceLabel.objects.filter(judge_version__isnull=False).exists()
    assert judge_backfill(judge=rm_judge) == {}


def test_a_backfill_whose_worker_is_stopping_ends_between_batches_and_is_queued_to_go_on(rm_judge, make_comparisons, make_user,
                                                                                        django_capture_on_commit_callbacks, monkeypatch):
    """Asked before each batch: a stop after the first ends the back-fill with that batch's verdicts and queues it again;
    the next run judges the rest and nothing twice."""
    from feedback_app.services import judge_backfill as backfill

    monkeypatch.setattr(backfill, "BATCH", 2)
    rater = make_user()
    for comparison in make_comparisons(5):
        PreferenceLabel.objects.create(comparison=comparison, rater=rater, winner="a")
    asked = []
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert judge_backfill(judge=rm_judge, should_stop=lambda: asked.append(True) or len(asked) > 1) == {"a": 2}
    assert Verdict.objects.count() == 2 and len(callbacks) == 1  # the back-fill, queued again
    assert judge_backfill(judge=rm_judge, should_stop=lambda: False) == {"a": 3}
    assert Verdict.objects.count() == 5 and Verdict.objects.values("comparison").distinct().count() == 5


def test_a_disabled_judge_is_not_back_filled(rm_judge, django_capture_on_commit_callbacks):
    rm_judge.enabled = False
    rm_judge.save()
    with pytest.raises(JudgeUnavailable, match="disabled"):
        judge_backfill(judge=rm_judge)
    with pytest.raises(JudgeUnavailable):
        judge_backfill_request(judge=rm_judge)


def test_a_backfill_request_runs_on_the_judge_queue(rm_judge, make_comparisons, make_user, django_capture_on_commit_callbacks, settings):
    """The admin's request goes through events to the judge_backfill task, routed to the "judge" queue (eager in tests)."""
    PreferenceLabel.objects.create(comparison=make_comparisons(1)[0], rater=make_user(), winner="a")
    assert settings.CELERY_TASK_ROUTES["feedback_app.tasks.judge_backfill"] == {"queue": "judge"}
    assert settings.CELERY_TASK_ROUTES["feedback_app.tasks.comparisons_judge"] == {"queue": "judge"}
    with django_capture_on_commit_callbacks(execute=True):
        judge_backfill_request(judge=rm_judge)
    assert Verdict.objects.filter(backfill=True).count() == 1
