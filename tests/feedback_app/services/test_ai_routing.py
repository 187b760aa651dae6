"""Routing with AI feedback: confident verdicts of a trusted judge become AI labels, an audit share also goes to people,
the rest go to people; comparisons that wait too long are released."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_app import training_bridge
from feedback_app.models import Comparison, PreferenceLabel, RewardModelVersion, Verdict
from feedback_app.selectors.labeling import comparison_leasable_id
from feedback_app.selectors.quality import rater_quality
from feedback_app.services.ai_routing import comparisons_judge_and_route, comparisons_judging_reap
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.models import DEFAULT_CAMPAIGN_ID

pytestmark = pytest.mark.django_db


@pytest.fixture
def probabilities(monkeypatch):
    """The reward-model judge's (P(A beats B), spread) per comparison, by response A's text; (0.95, 0.0) when not set."""
    answers = {}

    def judge(*, version_name, version_path, items, models):
        return [answers.get(a, (0.95, 0.0)) for _, _, a, _ in items]

    monkeypatch.setattr(training_bridge, "comparisons_rm_judge", judge)
    return answers


@pytest.fixture
def rm_judge(make_judge, make_audits, settings):
    """A trusted reward-model judge (one agreeing audit, AI_MIN_AUDITS 1) of the active reward model rm-1, threshold 0.8."""
    settings.AI_MIN_AUDITS, settings.AI_AUDIT_SHARE = 1, 0.0
    RewardModelVersion.objects.create(name="rm-1", path="reward/rm-1", status="active")
    judge = make_judge("rm", kind="reward_model")
    judge.versions.update(version="rm-1")
    make_audits(judge, n=1, agree=1)
    return judge


def _waiting(make_comparisons, n=1):
    comparisons = make_comparisons(n)
    Comparison.objects.filter(pk__in=[c.pk for c in comparisons]).update(status="judging", judging_since=timezone.now())
    return [c.pk for c in comparisons]


def test_a_confident_verdict_becomes_an_ai_label_and_completes_the_comparison(rm_judge, probabilities, make_comparisons, rater):
    """The AI label names the judge's version, has no rater, fills no rater slot and the comparison is not offered."""
    (cid,) = _waiting(make_comparisons)
    assert comparisons_judge_and_route(comparison_ids=[cid]) == {"ai": 1}
    comparison = Comparison.objects.get(pk=cid)
    assert comparison.status == "complete" and comparison.route == "ai" and comparison.label_count == 0 and comparison.completed_at
    label = PreferenceLabel.objects.get(comparison=comparison)
    assert label.rater is None and label.judge_version.version == "rm-1" and label.winner == "a" and label.label_source == "ai"
    assert label.judge_version.label == "ai:rm"
    assert comparison_leasable_id(campaign_id=DEFAULT_CAMPAIGN_ID, rater=rater, now=timezone.now()) is None  # the only comparison is not offered


def test_the_audit_share_goes_to_people_like_any_other_pair(rm_judge, probabilities, make_comparisons, rater, settings):
    """An audited comparison keeps its AI label, is leased and labelled as usual; the AI label counts in no rater's figures."""
    settings.AI_AUDIT_SHARE = 1.0
    (cid,) = _waiting(make_comparisons)
    assert comparisons_judge_and_route(comparison_ids=[cid]) == {"audit": 1}
    assignment = assignment_lease_next(campaign=campaign_default(), rater=rater)
    assert assignment.comparison_id == cid
    label_record(campaign=campaign_default(), rater=rater, comparison_id=cid, submission=LabelSubmission(choice="left" if assignment.a_on_left else "right"))
    comparison = Comparison.objects.get(pk=cid)
    assert comparison.status == "complete" and comparison.label_count == 1 and comparison.labels.count() == 2
    assert rater_quality()[rater.pk]["n_labels"] == 1


def test_the_audit_share_is_a_share(rm_judge, probabilities, make_comparisons, settings):
    """With AI_AUDIT_SHARE 0.1, about a tenth of the AI-labelled comparisons are audited (seeded)."""
    settings.AI_AUDIT_SHARE = 0.1
    ids = _waiting(make_comparisons, 200)
    routes = comparisons_judge_and_route(comparison_ids=ids, rng=random.Random(3))
    assert routes["ai"] + routes["audit"] == 200 and 8 <= routes["audit"] <= 35


@pytest.mark.parametrize(("answer", "route"), [((0.85, 0.0), "ai"), ((0.85, 0.1), "people"), ((0.5, 0.0), "people"), ((0.1, 0.05), "ai")])
def test_the_confidence_threshold_decides(rm_judge, probabilities, make_comparisons, answer, route):
    """Confidence is the likelier side's probability less the members' spread; at the threshold (0.8) or above it labels,
    below it (or at a dead heat, an abstention) the comparison goes to people, open."""
    (cid,) = _waiting(make_comparisons)
    probabilities[Comparison.objects.get(pk=cid).response_a.text] = answer
    comparisons_judge_and_route(comparison_ids=[cid])
    comparison = Comparison.objects.get(pk=cid)
    assert comparison.route == route and comparison.status == ("complete" if route == "ai" else "open")
    assert PreferenceLabel.objects.filter(comparison=comparison).exists() == (route == "ai")
    assert Verdict.objects.filter(comparison=comparison).count() == 1


def test_an_untrusted_judge_sends_everything_to_people_and_its_verdicts_become_audits(make_judge, probabilities, make_comparisons, settings):
    """Below its gate every comparison is offered; the verdict is kept, so the people's labels measure the judge."""
    settings.AI_MIN_AUDITS = 50
    RewardModelVersion.objects.create(name="rm-1", path="reward/rm-1", status="active")
    make_judge("rm", kind="reward_model")
    ids = _waiting(make_comparisons, 3)
    assert comparisons_judge_and_route(comparison_ids=ids) == {"people": 3}
    assert Verdict.objects.filter(comparison_id__in=ids, choice="a").count() == 3 and not PreferenceLabel.objects.exists()


def test_routing_is_idempotent(rm_judge, probabilities, make_comparisons):
    """A redelivered message finds the comparisons routed and changes nothing; no second verdict or label is written."""
    ids = _waiting(make_comparisons, 2)
    comparisons_judge_and_route(comparison_ids=ids)
    assert comparisons_judge_and_route(comparison_ids=ids) == {}
    assert PreferenceLabel.objects.filter(judge_version__isnull=False).count() == 2 and Verdict.objects.filter(comparison_id__in=ids).count() == 2


def test_a_judge_that_cannot_judge_sends_the_comparisons_to_people(rm_judge, probabilities, make_comparisons):
    """With no active reward model the reward-model judge cannot judge: the comparisons are offered, unjudged."""
    RewardModelVersion.objects.update(status="retired")
    ids = _waiting(make_comparisons, 2)
    assert comparisons_judge_and_route(comparison_ids=ids) == {"people": 2}
    assert not Verdict.objects.filter(comparison_id__in=ids).exists()


def test_with_ai_feedback_off_waiting_comparisons_are_offered_unrouted(rm_judge, probabilities, make_comparisons, settings):
    """Comparisons left waiting when AI feedback was switched off are offered as before, with no route."""
    settings.AI_FEEDBACK = False
    ids = _waiting(make_comparisons, 2)
    assert comparisons_judge_and_route(comparison_ids=ids) == {"": 2}
    assert set(Comparison.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"open"}


def test_the_reaper_releases_late_comparisons_and_asks_again_about_lost_ones(rm_judge, make_comparisons, settings, monkeypatch):
    """Past AI_JUDGING_TIMEOUT_SECONDS a comparison goes to people; one waiting over a minute is sent to the judge again."""
    from feedback_app import events

    asked = []
    monkeypatch.setattr(events, "comparisons_await_judge", lambda *, comparison_ids: asked.extend(comparison_ids))
    settings.AI_JUDGING_TIMEOUT_SECONDS = 600
    late, lost, fresh = _waiting(make_comparisons, 3)
    now = timezone.now()
    Comparison.objects.filter(pk=late).update(judging_since=now - timedelta(seconds=601))
    Comparison.objects.filter(pk=lost).update(judging_since=now - timedelta(seconds=61))
    assert comparisons_judging_reap(now=now) == {"released": 1, "asked_again": 1}
    assert Comparison.objects.get(pk=late).route == "people" and asked == [lost]
    assert Comparison.objects.get(pk=fresh).status == "judging"
    settings.AI_FEEDBACK = False
    assert comparisons_judging_reap(now=now)["released"] == 2
