"""The reward model's judgements of comparisons, in chunks (the model itself is a test double here)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_app import tasks, training_bridge
from feedback_app.models import DEFAULT_CAMPAIGN_ID, Comparison, PreferenceLabel, RewardModelVersion, RewardScoring
from feedback_app.services.scoring import SCORE_AFTER, ScoringUnavailable, comparisons_rm_score, responses_score_remote

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


def labelled(make_comparisons, rater, n: int, *, age: timedelta = 2 * SCORE_AFTER) -> list[Comparison]:
    """``n`` comparisons with one label each, given ``age`` ago (by default past the walk's wait for late commits)."""
    comparisons = make_comparisons(n)
    for c in comparisons:
        label = PreferenceLabel.objects.create(comparison=c, rater=rater, winner="a", strength=2)
        PreferenceLabel.objects.filter(pk=label.pk).update(created_at=timezone.now() - age)
        Comparison.objects.filter(pk=c.pk).update(label_count=1)
    return comparisons


def version_active(name: str) -> RewardModelVersion:
    RewardModelVersion.objects.filter(status="active", campaign_id=DEFAULT_CAMPAIGN_ID).update(status="retired")
    return RewardModelVersion.objects.create(name=name, path=f"reward/{name}", status="active")


def scored_by(version) -> set[int]:
    return set(Comparison.objects.filter(rm_prob_version=version).values_list("pk", flat=True))


def score_all() -> int:
    """Call until a call scores nothing; return how many were scored in all."""
    total = 0
    while done := comparisons_rm_score(batch=3, limit=3):
        total += done
    return total


def test_without_an_active_model_nothing_is_scored(make_comparisons, rater, judged):
    labelled(make_comparisons, rater, 2)
    assert comparisons_rm_score() == 0 and judged == []


def test_the_task_scores_a_chunk_at_a_time_until_none_is_left(make_comparisons, rater, judged, monkeypatch):
    """Each task scores one chunk and queues the next (eager here), so API scoring waits for a chunk at most."""
    labelled(make_comparisons, rater, 5)
    make_comparisons(1)  # unlabelled, not arena: the model has nothing to say about it yet
    version = version_active("rm-00001")
    monkeypatch.setattr(tasks, "RM_SCORE_CHUNK", 2)

    assert tasks.comparisons_rm_score.delay().get() == 2
    assert judged == [2, 2, 1]
    scored = Comparison.objects.filter(rm_prob_version=version)
    assert scored.count() == 5 and set(scored.values_list("rm_prob_a_wins", flat=True)) == {0.75}
    assert comparisons_rm_score() == 0  # judged once per version


def test_a_label_younger_than_the_wait_is_scored_once_it_is_older(make_comparisons, rater, judged):
    """The walk reads labels by id; a label's id is taken before it commits, so the walk waits SCORE_AFTER behind them."""
    old = labelled(make_comparisons, rater, 1)
    young = labelled(make_comparisons, rater, 1, age=timedelta(0))
    version = version_active("rm-00001")
    assert comparisons_rm_score() == 1 and scored_by(version) == {old[0].pk}
    assert comparisons_rm_score(now=timezone.now() + 2 * SCORE_AFTER) == 1 and scored_by(version) == {old[0].pk, young[0].pk}


def test_arena_pairs_are_scored_without_a_label(make_comparisons, judged):
    arena = make_comparisons(2)
    Comparison.objects.filter(pk__in=[c.pk for c in arena]).update(kind=Comparison.Kind.ARENA)
    version = version_active("rm-00001")
    assert comparisons_rm_score() == 2 and scored_by(version) == {c.pk for c in arena}
    assert comparisons_rm_score() == 0


def test_a_new_version_refreshes_old_scores_only_as_labels_arrive(make_comparisons, rater, judged, settings):
    """A new version scores the new labels' comparisons; the sweep refreshes RM_RESCORE_PER_LABEL old scores per new label."""
    settings.RM_RESCORE_PER_LABEL = 0  # the first version's labels buy no looks: the sweep starts from the first comparison
    old = labelled(make_comparisons, rater, 10)
    first = version_active("rm-00001")
    assert score_all() == 10
    settings.RM_RESCORE_PER_LABEL = 2
    second = version_active("rm-00002")
    assert score_all() == 0  # no new label: the old scores stay as they are
    new = labelled(make_comparisons, rater, 2)
    assert score_all() == 2 + 2 * 2  # the two new ones, and four old ones swept
    assert scored_by(second) == {c.pk for c in new} | {c.pk for c in old[:4]}
    assert scored_by(first) == {c.pk for c in old[4:]}


def test_the_sweep_goes_round_and_refreshes_every_old_score(make_comparisons, rater, judged, settings):
    """Round by round, by id: each label buys RM_RESCORE_PER_LABEL looks, at the active version's own scores too;
    past the last scored comparison the round starts again from the first."""
    settings.RM_RESCORE_PER_LABEL = 0
    old = labelled(make_comparisons, rater, 4)
    version_active("rm-00001")
    score_all()
    settings.RM_RESCORE_PER_LABEL = 3
    second = version_active("rm-00002")
    labelled(make_comparisons, rater, 1)  # 3 looks: old[0], old[1], old[2]
    score_all()
    assert {c.pk for c in old[:3]} <= scored_by(second) and old[3].pk not in scored_by(second)
    labelled(make_comparisons, rater, 1)  # 3 looks: old[3], then the two labelled since (the active version's already)
    score_all()
    assert {c.pk for c in old} <= scored_by(second)
    third = version_active("rm-00003")
    labelled(make_comparisons, rater, 1)  # 3 looks: its own comparison (just scored), then old[0] and old[1] in a new round
    score_all()
    assert {c.pk for c in old[:2]} <= scored_by(third) and not {c.pk for c in old[2:]} & scored_by(third)


def test_the_work_per_label_does_not_grow_with_the_scored_history(make_comparisons, rater, judged, settings):
    """A new version and five new labels cost the same scoring at 10 and at 60 old scored comparisons."""
    work = []
    for size in (10, 60):
        PreferenceLabel.objects.all().delete()
        Comparison.objects.all().delete()
        RewardScoring.objects.all().delete()
        settings.RM_RESCORE_PER_LABEL = 0
        labelled(make_comparisons, rater, size)
        version_active(f"rm-{size}-a")
        score_all()
        settings.RM_RESCORE_PER_LABEL = 2
        version_active(f"rm-{size}-b")
        labelled(make_comparisons, rater, 5)
        judged.clear()
        score_all()
        work.append(sum(judged))
    assert work == [5 + 5 * 2, 5 + 5 * 2]


def test_each_campaign_is_scored_by_its_own_version(make_comparisons, rater, judged, settings):
    """Two campaigns, each with its active version: each scores its own labelled and arena comparisons, and its sweep refreshes its own."""
    from feedback_app.models import Campaign, Prompt, Response

    settings.RM_RESCORE_PER_LABEL = 0
    other = Campaign.objects.create(slug="other", name="Other")
    mine = labelled(make_comparisons, rater, 2)
    theirs = []
    for i in range(2):
        prompt = Prompt.objects.create(text=f"Other campaign's request {i}", source="test", campaign=other)
        a, b = (Response.objects.create(prompt=prompt, text=f"{side} {i}") for side in ("yes", "no"))
        theirs.append(Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, kind=Comparison.Kind.ARENA if i else "standard"))
    label = PreferenceLabel.objects.create(comparison=theirs[0], campaign=other, rater=rater, winner="a", strength=2)
    PreferenceLabel.objects.filter(pk=label.pk).update(created_at=timezone.now() - 2 * SCORE_AFTER)
    Comparison.objects.filter(pk=theirs[0].pk).update(label_count=1)
    ours_1 = version_active("rm-00001")
    theirs_1 = RewardModelVersion.objects.create(name="other-rm-1", path="reward/other-rm-1", status="active", campaign=other)
    assert score_all() == 4
    assert scored_by(ours_1) == {c.pk for c in mine} and scored_by(theirs_1) == {c.pk for c in theirs}
    settings.RM_RESCORE_PER_LABEL = 4
    ours_2 = version_active("rm-00002")
    labelled(make_comparisons, rater, 1)  # four looks in our campaign: our two old scores and the new one
    score_all()
    assert {c.pk for c in mine} <= scored_by(ours_2) and scored_by(theirs_1) == {c.pk for c in theirs}


def test_a_chunk_is_dropped_when_another_worker_moved_the_marks(make_comparisons, rater, judged):
    """Two workers on one campaign: the one that stores second finds the marks moved, stores nothing, and stops."""
    from feedback_app.services import scoring

    labelled(make_comparisons, rater, 2)
    version = version_active("rm-00001")
    mark, _ = RewardScoring.objects.get_or_create(campaign_id=version.campaign_id)
    step = scoring._step_plan(version=version, mark=mark, n=2, now=timezone.now())
    assert comparisons_rm_score() == 2  # the other worker
    assert scoring._step_store(version=version, mark=mark, step=step, models=None) is None
    assert RewardScoring.objects.get(pk=mark.pk).through_label_id == step.through_label_id


def test_rescoring_moves_the_tallies_from_the_scores_as_stored(make_comparisons, rater, judged, monkeypatch, settings):
    """The tallies move from the score each comparison holds when the chunk is stored, by the new one."""
    from feedback_app.services import scoring

    moves = []
    monkeypatch.setattr(scoring, "quality_tally_rescored", lambda *, campaign_id, before, after: moves.append((before, after)))
    settings.RM_RESCORE_PER_LABEL = 0
    (c,) = labelled(make_comparisons, rater, 1)
    version_active("rm-00001")
    score_all()
    settings.RM_RESCORE_PER_LABEL = 1  # the next label's one look: c, from the first comparison
    Comparison.objects.filter(pk=c.pk).update(rm_prob_a_wins=0.5)  # as another version's score would be
    version_active("rm-00002")
    labelled(make_comparisons, rater, 1)
    score_all()
    assert ({c.pk: 0.5}, {c.pk: 0.75}) in moves


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
