"""What AI feedback reads: the routing judge, cached verdicts, a judge's audits, its trust gate and the AI labels' training weights.

All per campaign: a campaign may turn AI feedback off (Campaign.ai_feedback), and a judge is trusted
in a campaign by that campaign's audits, against that campaign's raters' agreement with each other.

An audit is a decisive label (A or B) a rater gave on a comparison the judge also gave a verdict on
(not an abstention): comparisons routed to people while the judge is untrusted, the audit share of
AI-labelled ones, and back-filled ones. The gate reads the audits of verdicts at least as confident
as the judge's threshold (those are the verdicts that become labels), over the judge's newest
AI_AUDIT_WINDOW audits, across its versions (the reward-model judge has a version per reward model).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, OuterRef, Subquery

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Comparison, Judge, PreferenceLabel, Verdict
from feedback_app.selectors.campaigns import campaign_cached
from feedback_app.selectors.quality import people_agreement


def judge_routing(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> Judge | None:
    """Return the enabled judge that routes the campaign's new comparisons, when AI feedback is on in the studio and the campaign; else None."""
    if not settings.AI_FEEDBACK or not campaign_cached(campaign_id=campaign_id).ai_feedback:
        return None
    return Judge.objects.filter(routing=True, enabled=True).first()


def judge_get(*, name: str) -> Judge | None:
    """Return the judge named ``name``, if any."""
    return Judge.objects.filter(name=name).first()


def verdict_cached(*, judge_version_id: int, cache_key: str) -> Verdict | None:
    """Return a verdict this judge version already gave on the same prompt and replies, if any."""
    return Verdict.objects.filter(judge_version_id=judge_version_id, cache_key=cache_key).order_by("id").first()


def comparisons_to_backfill(*, judge_version_id: int, campaign_id: int = DEFAULT_CAMPAIGN_ID, limit: int | None = None) -> list[Comparison]:
    """Return the campaign's comparisons a rater labelled A or B that this judge version has not judged, oldest first, with their texts."""
    labelled = PreferenceLabel.objects.filter(rater__isnull=False, winner__in=["a", "b"], campaign_id=campaign_id).values("comparison_id")
    comparisons = (Comparison.objects.filter(pk__in=labelled).exclude(verdicts__judge_version_id=judge_version_id)
                   .select_related("prompt", "response_a", "response_b").order_by("id"))
    return list(comparisons[:limit] if limit else comparisons)


def judge_audits(*, judge: Judge, campaign_id: int = DEFAULT_CAMPAIGN_ID, min_confidence: float = 0.0, limit: int | None = None) -> list[dict]:
    """Return the judge's audits in the campaign, newest first: its choice and confidence against each decisive rater label.

    A comparison judged by several of the judge's versions counts with its newest verdict that is not an abstention.
    """
    newest = (Verdict.objects.filter(comparison=OuterRef("comparison_id"), judge_version__judge=judge, abstained=False)
              .order_by("-id").values("choice", "confidence"))
    labels = (PreferenceLabel.objects.filter(rater__isnull=False, winner__in=["a", "b"], campaign_id=campaign_id)
              .annotate(verdict_choice=Subquery(newest.values("choice")[:1]), verdict_confidence=Subquery(newest.values("confidence")[:1]))
              .filter(verdict_choice__isnull=False, verdict_confidence__gte=min_confidence)
              .order_by("-id").values_list("comparison_id", "verdict_choice", "verdict_confidence", "winner"))
    if limit is not None:
        labels = labels[:limit]
    return [{"comparison_id": cid, "judge": choice, "confidence": confidence, "people": winner} for cid, choice, confidence, winner in labels]


@dataclass(frozen=True)
class JudgeTrust:
    """Whether a judge's labels count: its audited agreement against the bar, and why."""

    n_audits: int
    agreement: float | None
    required: float
    people_agreement: float | None
    trusted: bool
    reason: str


def judge_trust(*, judge: Judge, campaign_id: int = DEFAULT_CAMPAIGN_ID, people: tuple[float | None, int] | None = None) -> JudgeTrust:
    """Return the trust gate of ``judge`` in the campaign: trusted while, over at least AI_MIN_AUDITS confident audits, it agrees with
    people at least as often as people agree with each other minus AI_AGREEMENT_MARGIN (AI_MIN_AGREEMENT without overlap)."""
    audits = judge_audits(judge=judge, campaign_id=campaign_id, min_confidence=judge.confidence_threshold, limit=settings.AI_AUDIT_WINDOW)
    n = len(audits)
    agreement = sum(a["judge"] == a["people"] for a in audits) / n if n else None
    people_rate, _ = people if people is not None else people_agreement(campaign_id=campaign_id)
    if people_rate is None:
        required, bar = settings.AI_MIN_AGREEMENT, f"AI_MIN_AGREEMENT {settings.AI_MIN_AGREEMENT:.0%} (no overlap between raters yet)"
    else:
        required = max(0.0, people_rate - settings.AI_AGREEMENT_MARGIN)
        bar = f"the raters' own agreement {people_rate:.0%} minus {settings.AI_AGREEMENT_MARGIN:.0%}"
    if n < settings.AI_MIN_AUDITS:
        return JudgeTrust(n, agreement, required, people_rate, False, f"measuring: {n} of {settings.AI_MIN_AUDITS} audits so far")
    trusted = agreement >= required
    verb = "at least" if trusted else "below"
    return JudgeTrust(n, agreement, required, people_rate, trusted,
                      f"agrees with people {agreement:.0%} over its newest {n} audits, {verb} {required:.0%} ({bar})")


def ai_label_weights(*, purpose: str, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> dict[int, float]:
    """Return the training weight of each judge version's labels for ``purpose`` ("reward" or "policy") in the campaign's models.

    AI_LABEL_WEIGHT for judges the campaign's gate trusts, 0 for the rest (versions not listed weigh 0 too).
    A reward-model judge's labels never train a reward model (it would learn its own verdicts back);
    they may train the policy. With AI_FEEDBACK off, in the studio or the campaign, no AI label counts.
    """
    if purpose not in ("reward", "policy"):
        raise ValueError(f"purpose must be reward or policy, got {purpose!r}")
    if not settings.AI_FEEDBACK or not campaign_cached(campaign_id=campaign_id).ai_feedback:
        return {}
    judges = (Judge.objects.filter(versions__labels__isnull=False, versions__labels__campaign_id=campaign_id)
              .distinct().prefetch_related("versions"))
    people = people_agreement(campaign_id=campaign_id)
    weights = {}
    for judge in judges:
        usable = (not (purpose == "reward" and judge.kind == Judge.Kind.REWARD_MODEL)
                  and judge_trust(judge=judge, campaign_id=campaign_id, people=people).trusted)
        for version in judge.versions.all():
            weights[version.pk] = settings.AI_LABEL_WEIGHT if usable else 0.0
    return weights


def ai_labels_counted(*, weights: dict[int, float], last_label_id: int | None, exclude_prompt_ids: list[int] | None = None,
                      campaign_id: int = DEFAULT_CAMPAIGN_ID) -> dict[str, int]:
    """Return how many of the campaign's AI labels up to ``last_label_id`` count in a fit with ``weights`` (``ai_label_weights``), by label source.

    A training run records it, so each model says which judges taught it and with how many labels.
    """
    counted = [pk for pk, weight in weights.items() if weight > 0]
    if not counted or last_label_id is None:
        return {}
    labels = PreferenceLabel.objects.filter(pk__lte=last_label_id, judge_version_id__in=counted, comparison__excluded=False,
                                            campaign_id=campaign_id)
    if exclude_prompt_ids:
        labels = labels.exclude(comparison__prompt_id__in=exclude_prompt_ids)
    rows = labels.values_list("judge_version__judge__name").annotate(n=Count("id")).order_by("judge_version__judge__name")
    return {f"ai:{name}": n for name, n in rows}
