"""Which prompts need new comparisons."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Comparison, PolicyVersion, Prompt
from feedback_app.selectors.campaigns import comparisons_in_campaign

WAITING = (Comparison.Status.OPEN, Comparison.Status.JUDGING)


def open_comparison_count(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, statuses: tuple[str, ...] = WAITING, cap: int | None = None) -> int:
    """Return how many of the campaign's comparisons are waiting for labels (or, with AI feedback on, for the judge first), or
    are in ``statuses``; with ``cap``, counting stops there (the answer is at most ``cap``).

    Every dashboard push and supply check asks it, so both cap it: the supply needs to know only whether SUPPLY_OPEN_TARGET
    are open, and the dashboard shows "10000+" past its cap. Uncapped, prompts ``IN`` the campaign, so PostgreSQL picks the
    plan by the sizes; still, a backlog of 250,000 open comparisons (a big import) cost a push 250 ms, a hash of all the
    campaign's prompts. Capped, each status is read by itself, oldest first (the open ones that are not gold pairs through
    the lease's index), until the cap.
    """
    if cap is None:
        prompts = Prompt.objects.filter(campaign_id=campaign_id).values("pk")
        return Comparison.objects.filter(status__in=statuses, prompt_id__in=prompts).count()
    parts = []
    for status in statuses:  # the open ones in two, so those that are not gold pairs are read through the lease's index
        parts += [Q(status=status, is_gold=False), Q(status=status, is_gold=True)] if status == Comparison.Status.OPEN else [Q(status=status)]
    counted = 0
    for part in parts:
        # each comparison's prompt looked up: a join had PostgreSQL hash the campaign's every prompt (32 ms at a million labels)
        counted += comparisons_in_campaign(Comparison.objects.filter(part), campaign_id=campaign_id).order_by("id")[:cap - counted].count()
        if counted >= cap:
            break
    return counted


def campaign_has_prompts(*, campaign_id: int) -> bool:
    """Return whether the campaign has a prompt raters can see (not staged by an unfinished import)."""
    return Prompt.objects.filter(campaign_id=campaign_id).exclude(import_batch__published=False).exists()


def prompts_needing_comparisons(*, policy: PolicyVersion, now: datetime) -> QuerySet[Prompt]:
    """Return the prompts of the policy's campaign with no open comparison and too few from ``policy``, least served first.

    Prompts another worker holds (an unexpired generation lease) are left out. A policy answers
    only its own campaign's prompts.
    """
    from django.conf import settings

    def count(queryset):
        return Coalesce(Subquery(queryset.order_by().values("prompt").annotate(n=Count("id")).values("n"), output_field=IntegerField()), Value(0))

    per_prompt = Comparison.objects.filter(prompt=OuterRef("pk"))
    return (
        Prompt.objects.filter(campaign_id=policy.campaign_id).exclude(Exists(per_prompt.filter(status__in=WAITING)))
        .exclude(import_batch__published=False)  # an import still staging
        .filter(Q(generation_lease_until__isnull=True) | Q(generation_lease_until__lt=now))
        .annotate(from_policy=count(per_prompt.filter(policy_version=policy)), served=count(per_prompt))
        .filter(from_policy__lt=settings.SUPPLY_PER_PROMPT_PER_POLICY)
        .order_by("served", "id")
    )
