"""The reward model's judgements of comparisons, in chunks (the model itself is a test double here)."""

import pytest

from feedback_app import tasks, training_bridge
from feedback_app.models import Comparison, PreferenceLabel, RewardModelVersion
from feedback_app.services.scoring import ScoringUnavailable, comparisons_rm_score, responses_score_remote

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged(monkeypatch):
    """Replace the model: P(A beats B) is 0.75 for every item; record the size of each call."""
    calls = []

    def p_a(*, version_name, version_path, items, models):
        calls.append(len(items))
        return [0.75] * len(items)

    monkeypatch.setattr(training_bridge, "comparisons_prob_a_wins", p_a)
    return calls


def labelled(make_comparisons, rater, n: int) -> list[Comparison]:
    comparisons = make_comparisons(n)
    for c in comparisons:
        PreferenceLabel.objects.create(comparison=c, rater=rater, winner="a", strength=2)
        Comparison.objects.filter(pk=c.pk).update(label_count=1)
    return comparisons


def test_without_an_active_model_nothing_is_scored(make_comparisons, rater, judged):
    labelled(make_comparisons, rater, 2)
    assert comparisons_rm_score() == 0 and judged == []


def test_the_task_scores_a_chunk_at_a_time_until_none_is_left(make_comparisons, rater, judged, monkeypatch):
    """Each task scores one chunk and queues the next (eager here), so API scoring waits for a chunk at most."""
    labelled(make_comparisons, rater, 5)
    make_comparisons(1)  # unlabelled, not arena: the model has nothing to say about it yet
    version = RewardModelVersion.objects.create(name="rm-00001", path="reward/rm-00001", status="active")
    monkeypatch.setattr(tasks, "RM_SCORE_CHUNK", 2)

    assert tasks.comparisons_rm_score.delay().get() == 2
    assert judged == [2, 2, 1]
    scored = Comparison.objects.filter(rm_prob_version=version)
    assert scored.count() == 5 and set(scored.values_list("rm_prob_a_wins", flat=True)) == {0.75}
    assert comparisons_rm_score() == 0  # judged once per version


def test_remote_scoring_answers_with_the_active_version(monkeypatch):
    """The worker's answer (eager here) comes back as it is: the rewards and the version that gave them."""
    RewardModelVersion.objects.create(name="rm-7", path="reward/rm-7", status="active")
    monkeypatch.setattr(training_bridge, "reward_scores", lambda *, responses, **_: [float(len(r)) for r in responses])
    result = responses_score_remote(prompt="Hi", context=[], responses=["a", "abc"], timeout=5)
    assert result == {"rewards": [1.0, 3.0], "reward_model_version": "rm-7"}


def test_remote_scoring_without_an_active_model_is_unavailable():
    """The worker's {"error": ...} becomes ScoringUnavailable with the same message."""
    with pytest.raises(ScoringUnavailable, match="^no reward model is active yet; train one first$"):
        responses_score_remote(prompt="Hi", context=[], responses=["a"], timeout=5)


def test_remote_scoring_that_no_worker_answers_is_unavailable(monkeypatch):
    """A wait that times out names the timeout and the queue."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    class Unanswered:
        def get(self, *, timeout):
            raise CeleryTimeout(f"waited {timeout}")

    monkeypatch.setattr(tasks.reward_score, "delay", lambda *args: Unanswered())
    with pytest.raises(ScoringUnavailable, match=r"^no scoring worker answered within 60 s \(queue 'score'\)$"):
        responses_score_remote(prompt="Hi", context=[], responses=["a"], timeout=60)
