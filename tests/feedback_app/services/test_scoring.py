"""The reward model's judgements of comparisons, in chunks (the model itself is a test double here)."""

import pytest

from feedback_app import tasks, training_bridge
from feedback_app.models import Comparison, PreferenceLabel, RewardModelVersion
from feedback_app.services.scoring import comparisons_rm_score

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
