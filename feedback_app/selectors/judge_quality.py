"""How good each AI judge is, measured against people: what the label-quality page shows per judge.

Per judge, over all its audits (every confidence; see ``selectors.judges``): agreement with people
(percent with its 95% Wilson interval, Cohen's κ with its 95% interval, A and B as the categories),
the abstention rate and its reasons, position consistency (of the verdicts whose two orders both
parsed, the share that named the same reply; the reward-model judge is consistent by construction),
and a reliability table: agreement per confidence bin, so a researcher sets the threshold by looking.
"""

from __future__ import annotations

from collections import Counter

from django.conf import settings

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Judge, Verdict
from feedback_app.selectors.campaigns import campaign_cached
from feedback_app.selectors.judges import judge_audits, judge_routing, judge_trust
from feedback_app.selectors.quality import people_agreement
from feedback_app.stats.agreement import cohen_kappa, cohen_kappa_interval
from feedback_app.stats.ratings import wilson_interval

BIN_EDGES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def judge_quality(*, judge: Judge, campaign_id: int = DEFAULT_CAMPAIGN_ID, people: tuple[float | None, int] | None = None) -> dict:
    """Return the label-quality figures of one judge in the campaign (its verdicts, audits and trust there)."""
    people = people if people is not None else people_agreement(campaign_id=campaign_id)
    audits = judge_audits(judge=judge, campaign_id=campaign_id)
    agree = sum(a["judge"] == a["people"] for a in audits)
    judged, humans = [a["judge"] for a in audits], [a["people"] for a in audits]
    verdicts = Verdict.objects.filter(judge_version__judge=judge, comparison__prompt__campaign_id=campaign_id)
    reasons = Counter(verdicts.filter(abstained=True).values_list("reason", flat=True))
    n_verdicts = verdicts.count()
    consistent = verdicts.filter(detail__consistent=True).count()
    both_parsed = consistent + verdicts.filter(detail__consistent=False).count()
    return {
        "judge": judge,
        "trust": judge_trust(judge=judge, campaign_id=campaign_id, people=people),
        "n_verdicts": n_verdicts,
        "n_backfilled": verdicts.filter(backfill=True).count(),
        "n_audits": len(audits),
        "agreement": _rate(agree, len(audits)),
        "agreement_interval": wilson_interval(agree, len(audits)),
        "kappa": cohen_kappa(judged, humans),
        "kappa_interval": cohen_kappa_interval(judged, humans),
        "abstention_rate": _rate(sum(reasons.values()), n_verdicts),
        "abstentions": {Verdict.Reason(reason).label: n for reason, n in sorted(reasons.items())},
        "position_consistency": None if judge.kind == Judge.Kind.REWARD_MODEL else _rate(consistent, both_parsed),
        "position_n": both_parsed,
        "reliability": reliability_bins(audits),
    }


def reliability_charts(qualities: list[dict]) -> list[dict]:
    """Return the reliability plot's data per judge: each bin with audits as a point (mean confidence, agreement, audits)."""
    return [{"name": q["judge"].name, "threshold": q["judge"].confidence_threshold,
             "points": [{"x": b["mean_confidence"], "y": b["agreement"], "n": b["n"], "low": b["interval"][0], "high": b["interval"][1]}
                        for b in q["reliability"] if b["n"]]}
            for q in qualities]


def reliability_bins(audits: list[dict]) -> list[dict]:
    """Return, per confidence bin (0.5–0.6 … 0.9–1.0), the audits in it, their agreement with people and its 95% interval."""
    rows = []
    for low, high in zip(BIN_EDGES, BIN_EDGES[1:]):
        inside = [a for a in audits if low <= a["confidence"] < high or (high == 1.0 and a["confidence"] == 1.0)]
        agree = sum(a["judge"] == a["people"] for a in inside)
        rows.append({"low": low, "high": high, "n": len(inside), "agreement": _rate(agree, len(inside)),
                     "interval": wilson_interval(agree, len(inside)),
                     "mean_confidence": round(sum(a["confidence"] for a in inside) / len(inside), 4) if inside else None})
    return rows


def judges_quality(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, people: tuple[float | None, int] | None = None) -> list[dict]:
    """Return ``judge_quality`` in the campaign of every judge that is enabled or gave a verdict there, the routing one first
    (``people``: the raters' agreement, when the caller has it)."""
    judges = Judge.objects.filter(enabled=True) | Judge.objects.filter(versions__verdicts__comparison__prompt__campaign_id=campaign_id)
    judges = sorted(set(judges), key=lambda j: (not j.routing, j.pk))
    if not judges:
        return []
    people = people_agreement(campaign_id=campaign_id) if people is None else people
    return [judge_quality(judge=j, campaign_id=campaign_id, people=people) for j in judges]


def ai_feedback_notice(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> str:
    """Return what the campaign's dashboard says when AI feedback is on there and its routing judge's labels are not used ("" when they are)."""
    judge = judge_routing(campaign_id=campaign_id)
    if judge is None:
        on = settings.AI_FEEDBACK and campaign_cached(campaign_id=campaign_id).ai_feedback
        return "AI feedback is on, but no enabled judge routes: everything goes to people." if on else ""
    trust = judge_trust(judge=judge, campaign_id=campaign_id)
    if trust.trusted:
        return ""
    return (f"AI judge {judge.name} is switched off by its audit ({trust.reason}): its labels are not used in training and every "
            "comparison goes to people until its audits recover.")


def _rate(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None
