"""A judge's label-quality figures: agreement and κ with intervals, abstentions, position consistency, reliability; the notice."""

import pytest

from feedback_app.models import Verdict
from feedback_app.selectors.judge_quality import ai_feedback_notice, judge_quality, reliability_bins, reliability_charts

pytestmark = pytest.mark.django_db


def test_reliability_bins_split_the_audits_by_confidence():
    audits = [{"judge": "a", "people": "a", "confidence": 0.55}, {"judge": "a", "people": "b", "confidence": 0.58},
              {"judge": "b", "people": "b", "confidence": 0.95}, {"judge": "a", "people": "a", "confidence": 1.0}]
    bins = reliability_bins(audits)
    assert [(b["low"], b["n"]) for b in bins] == [(0.5, 2), (0.6, 0), (0.7, 0), (0.8, 0), (0.9, 2)]
    assert bins[0]["agreement"] == 0.5 and bins[4]["agreement"] == 1.0 and bins[1]["interval"] is None
    assert bins[4]["mean_confidence"] == 0.975 and bins[4]["interval"][1] == 1.0


def test_the_reliability_plot_has_a_point_per_bin_with_audits(make_judge, make_audits):
    """The plot's points: mean confidence against agreement, with the audits and the interval; empty bins are left out."""
    judge = make_judge("vllm")
    make_audits(judge, n=4, agree=3, confidence=0.85)
    (chart,) = reliability_charts([judge_quality(judge=judge)])
    assert chart["name"] == "vllm" and chart["threshold"] == judge.confidence_threshold
    (point,) = chart["points"]
    assert (point["x"], point["y"], point["n"]) == (0.85, 0.75, 4) and point["low"] < 0.75 < point["high"]


def test_a_judge_s_figures(make_judge, make_audits, make_comparisons, settings):
    """Agreement 3 of 4 with its intervals, κ, abstention rate by reason, position consistency over both-orders verdicts."""
    settings.AI_MIN_AUDITS = 50
    judge = make_judge()
    audited = make_audits(judge, n=4, agree=3)
    Verdict.objects.filter(comparison__in=audited[:2]).update(detail={"consistent": True})
    version = judge.versions.get()
    flipped, unparseable = make_comparisons(2)
    Verdict.objects.create(judge_version=version, comparison=flipped, cache_key="f", abstained=True, reason="flipped", detail={"consistent": False})
    Verdict.objects.create(judge_version=version, comparison=unparseable, cache_key="u", abstained=True, reason="unparseable")
    q = judge_quality(judge=judge)
    assert (q["n_audits"], q["agreement"], q["n_verdicts"], q["abstention_rate"]) == (4, 0.75, 6, round(2 / 6, 4))
    assert q["agreement_interval"][0] < 0.75 < q["agreement_interval"][1]
    assert q["abstentions"] == {"Flipped with the order": 1, "Unparseable answer": 1}
    assert q["position_consistency"] == round(2 / 3, 4) and q["position_n"] == 3
    assert not q["trust"].trusted and sum(b["n"] for b in q["reliability"]) == 4


def test_the_notice_says_when_the_routing_judge_is_switched_off(make_judge, make_audits, settings):
    settings.AI_MIN_AUDITS = 4
    assert "no enabled judge routes" in ai_feedback_notice()  # make_judge turned AI feedback on; no judge yet
    judge = make_judge("vllm")
    make_audits(judge, n=4, agree=1)
    assert "vllm is switched off by its audit" in ai_feedback_notice() and "every comparison goes to people" in ai_feedback_notice()
    make_audits(judge, n=4, agree=4)
    settings.AI_AUDIT_WINDOW = 4
    assert ai_feedback_notice() == ""
    settings.AI_FEEDBACK = False
    assert ai_feedback_notice() == ""
