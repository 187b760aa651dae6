"""Routing new comparisons with AI feedback: the judge's verdict comes first, then the comparison is labelled, audited or offered.

A comparison the supply makes while AI feedback is on waits (status "judging", unseen by raters)
until the routing judge gave its verdict. Then, while the judge's audit gate trusts it, a verdict
at least as confident as the judge's threshold becomes an AI label (source ``ai:<judge>``, the
judge's version, no rater, strength "slightly": the weakest margin) and the comparison is complete;
AI_AUDIT_SHARE of those also go to people, as any other pair. Abstentions, unsure verdicts and
everything the judge judges while untrusted go to people, and become its audits.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from feedback_app import events, training_bridge
from feedback_app.models import Comparison, Judge, PreferenceLabel, Verdict
from feedback_app.selectors.judges import judge_routing, judge_trust
from feedback_app.services.judges import JudgeUnavailable
from feedback_app.services.verdicts import verdicts_give

logger = logging.getLogger(__name__)
Route = Comparison.Route


def comparisons_judge_and_route(*, comparison_ids: Sequence[int], models: training_bridge.ModelHolder | None = None,
                                rng: random.Random | None = None) -> Counter:
    """Ask the routing judge about the comparisons still waiting among ``comparison_ids``, then route each; return the routes taken.

    Without a routing judge (AI feedback off, or none enabled), or when it cannot judge, they go to people.
    """
    waiting = list(Comparison.objects.filter(pk__in=comparison_ids, status=Comparison.Status.JUDGING)
                   .select_related("prompt", "response_a", "response_b"))
    if not waiting:
        return Counter()
    judge = judge_routing()
    if judge is None:
        return Counter(comparison_route(comparison_id=c.pk, judge=None, verdict=None, trusted=False) for c in waiting)
    try:
        verdicts = verdicts_give(judge=judge, comparisons=waiting, models=models)
    except JudgeUnavailable as exc:
        logger.warning("judge %s cannot judge (%s): %d comparison(s) go to people", judge.name, exc, len(waiting))
        return Counter(comparison_route(comparison_id=c.pk, judge=judge, verdict=None, trusted=False) for c in waiting)
    trusted = judge_trust(judge=judge).trusted
    rng = rng or random.Random()
    return Counter(comparison_route(comparison_id=c.pk, judge=judge, verdict=verdicts.get(c.pk), trusted=trusted, rng=rng) for c in waiting)


@transaction.atomic
def comparison_route(*, comparison_id: int, judge: Judge | None, verdict: Verdict | None, trusted: bool,
                     rng: random.Random | None = None, now: datetime | None = None) -> str:
    """Route one waiting comparison on ``verdict`` and return its route; one that is not waiting any more keeps its own."""
    comparison = Comparison.objects.select_for_update(of=("self",)).filter(pk=comparison_id).first()
    if comparison is None or comparison.status != Comparison.Status.JUDGING:
        return comparison.route if comparison is not None else ""
    now = now or timezone.now()
    confident = (judge is not None and verdict is not None and not verdict.abstained and trusted
                 and verdict.confidence is not None and verdict.confidence >= judge.confidence_threshold)
    if not confident:
        comparison.route = Route.PEOPLE if judge is not None else Route.NONE
        comparison.status = Comparison.Status.OPEN
    else:
        PreferenceLabel.objects.get_or_create(comparison=comparison, judge_version__isnull=False, defaults={
            "judge_version_id": verdict.judge_version_id, "winner": verdict.choice, "strength": PreferenceLabel.Strength.SLIGHTLY,
        })
        if (rng or random).random() < settings.AI_AUDIT_SHARE:
            comparison.route, comparison.status = Route.AUDIT, Comparison.Status.OPEN
        else:
            comparison.route, comparison.status, comparison.completed_at = Route.AI, Comparison.Status.COMPLETE, now
    comparison.judging_since = None
    comparison.save(update_fields=["route", "status", "completed_at", "judging_since"])
    if comparison.status == Comparison.Status.OPEN:
        events.comparisons_supplied(count=1)
    return comparison.route


def comparisons_judging_reap(*, now: datetime | None = None) -> dict:
    """Send comparisons that waited past AI_JUDGING_TIMEOUT_SECONDS (or wait with AI feedback off) to people; ask
    the judge again about the rest that waited over a minute (their message may be lost). Return the counts."""
    now = now or timezone.now()
    waiting = Comparison.objects.filter(status=Comparison.Status.JUDGING)
    judge = judge_routing()
    late = waiting if judge is None else waiting.filter(judging_since__lt=now - timedelta(seconds=settings.AI_JUDGING_TIMEOUT_SECONDS))
    released = [comparison_route(comparison_id=pk, judge=judge, verdict=None, trusted=False, now=now) for pk in late.values_list("pk", flat=True)]
    again = list(waiting.filter(judging_since__lt=now - timedelta(seconds=60)).values_list("pk", flat=True)) if judge is not None else []
    if again:
        events.comparisons_await_judge(comparison_ids=again)
    return {"released": len(released), "asked_again": len(again)}
