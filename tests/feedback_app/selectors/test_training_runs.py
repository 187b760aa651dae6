"""Reading training runs: the newest few, and one by id, with versions and requester joined in."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from feedback_app.models import RewardModelVersion, TrainingRun
from feedback_app.selectors.training_runs import training_run_get, training_runs_recent

pytestmark = pytest.mark.django_db


def test_recent_runs_are_the_newest_first_up_to_the_limit(researcher):
    runs = [TrainingRun.objects.create(kind=TrainingRun.Kind.REWARD_FAST, requested_by=researcher, status=TrainingRun.Status.SUCCEEDED) for _ in range(4)]
    assert [r.pk for r in training_runs_recent(limit=3)] == [runs[3].pk, runs[2].pk, runs[1].pk]
    assert training_runs_recent(limit=10)[-1].pk == runs[0].pk


def test_recent_runs_carry_their_version_and_requester_without_more_queries(researcher):
    version = RewardModelVersion.objects.create(name="rm-3", path="reward/rm-3")
    TrainingRun.objects.create(kind=TrainingRun.Kind.REWARD_FULL, requested_by=researcher, reward_model_version=version)
    with CaptureQueriesContext(connection) as queries:
        (run,) = training_runs_recent(limit=5)
        assert (run.reward_model_version.name, run.policy_version, run.requested_by.username) == ("rm-3", None, researcher.username)
    assert len(queries) == 1


def test_run_get_returns_the_run_or_none(researcher):
    run = TrainingRun.objects.create(kind=TrainingRun.Kind.POLICY_DPO, requested_by=researcher)
    with CaptureQueriesContext(connection) as queries:
        found = training_run_get(run_id=run.pk)
        assert found.pk == run.pk and found.requested_by == researcher
    assert len(queries) == 1
    assert training_run_get(run_id=run.pk + 1) is None


def test_reward_run_running_sees_running_refits_of_either_tier_only():
    from feedback_app.selectors.training_runs import reward_run_running

    assert not reward_run_running()
    TrainingRun.objects.create(kind="policy_dpo", status="running")
    TrainingRun.objects.create(kind="reward_fast", status="queued")
    TrainingRun.objects.create(kind="reward_full", status="succeeded")
    assert not reward_run_running()
    TrainingRun.objects.create(kind="reward_full", status="running")
    assert reward_run_running()
