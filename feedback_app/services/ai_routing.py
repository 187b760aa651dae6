"""Routing new comparisons with AI feedback: the judge's verdict comes first, then the comparison is labelled, audited or offered.

A comparison the supply makes while AI feedback is on waits (status "judging", unseen by raters)
until the routing judge gave its verdict. Then, while the judge's audit gate trusts it, a verdict
at least as confident as the judge's threshold becomes an AI label (source ``ai:<judge>``, the
judge's version, no rater, strength "slightly": the weakest margin) and the comparison is complete;
AI_AUDIT_SHARE of those also go to people, as any other pair. Abstentions, unsure verdicts and
everything the judge judges while untrusted go to people, and become its audits. All of it per
campaign: the campaign's switch (Campaign.ai_feedback), its audit share, its judge trust.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from feedback_app import events, training_bridge
from feedback_app.models import Comparison, Judge, PreferenceLabel, Verdict
from feedback_app.selectors.campaigns import campaign_cached
from feedback_app.selectors.judges import judge_routing, judge_trust
from feedback_app.selectors.queue_head import queue_head_forget
from feedback_app.services.judges import JudgeUnavailable
from feedback_app.services.verdicts import verdicts_give

logger = logging.getLogger(__name__)
Route = Comparison.Route


def comparisons_judge_and_route(*, comparison_ids: Sequence[int], models: training_bridge.ModelHolder | None = None,
                                rng: random.Random | None = None) -> Counter:
    """Ask the routing judge about the comparisons still waiting among ``comparison_ids``, then route each; return the routes taken.

    Without a routing judge (AI feedback off in the studio or the comparison's campaign, or no judge
    enabled), or when it cannot judge, they go to people.
    """
    waiting = list(Comparison.objects.filter(pk__in=comparison_ids, status=Comparison.Status.JUDGING)
                   .select_related("prompt", "response_a", "response_b"))
    by_campaign = defaultdict(list)
    for comparison in waiting:
        by_campaign[comparison.prompt.campaign_id].append(comparison)
    rng = rng or random.Random()
    return sum((_judge_and_route(campaign_id=cid, waiting=group, models=models, rng=rng) for cid, group in by_campaign.items()), Counter())


def _judge_and_route(*, campaign_id: int, waiting: list[Comparison], models, rng: random.Random) -> Counter:
    judge = judge_routing(campaign_id=campaign_id)
    if judge is None:
        return Counter(comparison_route(comparison_id=c.pk, judge=None, verdict=None, trusted=False) for c in waiting)
    try:
        verdicts = verdicts_give(judge=judge, comparisons=waiting, models=models, campaign_id=campaign_id)
    except JudgeUnavailable as exc:
        logger.warning("judge %s cannot judge (%s): %d comparison(s) go to people", judge.name, exc, len(waiting))
        return Counter(comparison_route(comparison_id=c.pk, judge=judge, verdict=None, trusted=False) for c in waiting)
    trusted = judge_trust(judge=judge, campaign_id=campaign_id).trusted
    return Counter(comparison_route(comparison_id=c.pk, judge=judge, verdict=verdicts.get(c.pk), trusted=trusted, rng=rng) for c in waiting)


@transaction.atomic
def comparison_route(*, comparison_id: int, judge: Judge | None, verdict: Verdict | None, trusted: bool,
                     rng: random.Random | None = None, now: datetime | None = None) -> str:
    """Route one waiting comparison on ``verdict`` and return its route; one that is not waiting any more keeps its own."""
    comparison = Comparison.objects.select_for_update(of=("self",)).select_related("prompt").filter(pk=comparison_id).first()
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
            "campaign_id": comparison.prompt.campaign_id,
        })
        if (rng or random).random() < campaign_cached(campaign_id=comparison.prompt.campaign_id).audit_share:
            comparison.route, comparison.status = Route.AUDIT, Comparison.Status.OPEN
        else:
            comparison.route, comparison.status, comparison.completed_at = Route.AI, Comparison.Status.COMPLETE, now
    comparison.judging_since = None
    comparison.save(update_fields=["route", "status", "completed_at", "judging_since"])
    if comparison.status == Comparison.Status.OPEN:
        queue_head_forget(comparison.prompt.campaign_id)
        events.comparisons_supplied(count=1, campaign_id=comparison.prompt.campaign_id)
    return comparison.route


def comparisons_judging_reap(*, now: datetime | None = None) -> dict:
    """Send comparisons that waited past AI_JUDGING_TIMEOUT_SECONDS (or wait with AI feedback off) to people; ask
    the judge again about the rest that waited over a minute (their message may be lost). Return the counts."""
    now = now or timezone.now()
    released, again = 0, []
    for campaign_id in Comparison.objects.filter(status=Comparison.Status.JUDGING).order_by().values_list("prompt__campaign_id", flat=True).distinct():
        waiting = Comparison.objects.filter(status=Comparison.Status.JUDGING, prompt__campaign_id=campaign_id)
        judge = judge_routing(campaign_id=campaign_id)
        late = waiting if judge is None else waiting.filter(judging_since__lt=now - timedelta(seconds=settings.AI_JUDGING_TIMEOUT_SECONDS))
        released += len([comparison_route(comparison_id=pk, judge=judge, verdict=None, trusted=False, now=now) for pk in late.values_list("pk", flat=True)])
        again += list(waiting.filter(judging_since__lt=now - timedelta(seconds=60)).values_list("pk", flat=True)) if judge is not None else []
    if again:
        events.comparisons_await_judge(comparison_ids=again)
    return {"released": released, "asked_again": len(again)}
