"""Scoring responses with the active reward model: in a worker, or asked of a worker from the web (which never loads one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import takewhile

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from feedback_app import events, training_bridge
from feedback_app.models import Comparison, PreferenceLabel, RewardScoring
from feedback_app.models.campaigns import DEFAULT_CAMPAIGN_ID
from feedback_app.selectors.training import reward_model_active, reward_models_active
from feedback_app.services.quality_tally import quality_tally_rescored


class NoActiveRewardModel(Exception):
    pass


def responses_score(
    *, prompt: str, context: Sequence[dict], responses: Sequence[str], models: training_bridge.ModelHolder | None = None,
    campaign_id: int = DEFAULT_CAMPAIGN_ID,
) -> dict:
    """Return {"rewards", "reward_model_version"} from the campaign's reward model active right now.

    The active version is read for every call, so a swap is picked up by the next request;
    a request already holding the old scorer finishes with it. ``models`` is the worker's holder
    of loaded models; without one, the call loads its own.
    """
    version = reward_model_active(campaign_id=campaign_id)
    if version is None:
        raise NoActiveRewardModel("no reward model is active yet; train one first")
    rewards = training_bridge.reward_scores(
        version_name=version.name, version_path=version.path, prompt=prompt, context=context, responses=responses,
        models=models or training_bridge.ModelHolder(),
    )
    return {"rewards": rewards, "reward_model_version": version.name}


SCORE_AFTER = timedelta(seconds=10)  # a label this young may sit behind a lower id not committed yet: the walk waits for it
SWEEP_CREDIT_MAX = 1_000_000  # the sweep's credit banked while there is nothing old to look at
STEPS_PER_CALL = 16  # chunks a call looks at, scored or not, so a sweep over current scores ends too


def comparisons_rm_score(
    *, batch: int = 256, limit: int = 256, models: training_bridge.ModelHolder | None = None, now: datetime | None = None,
) -> int:
    """Let each campaign's active reward model judge (P(A beats B)) its newly labelled and arena comparisons, and refresh old judgements.

    Runs in a worker, campaign by campaign, a chunk of at most ``batch`` at a time, at most ``limit``
    comparisons a call; returns how many it scored (0 without an active model). Work per label
    stays flat as the campaign grows (``RewardScoring``):

    - **the walk**: the campaign's labels in id order, up to ``SCORE_AFTER`` ago; each one's
      comparison is scored unless the active version already did;
    - **arena pairs** no version has scored yet (their win rates need no label);
    - **the sweep**: round the campaign's scored comparisons by id, scoring again those an older (or
      another) version scored; it looks at ``RM_RESCORE_PER_LABEL`` of them for each of its labels walked.

    Texts go through the embedding cache, which the fits have filled with most of them. Two
    workers may run it at once: a chunk is stored only if the campaign's marks did not move
    meanwhile, and the tallies move from the scores as stored.
    """
    models = models or training_bridge.ModelHolder()
    now = now or timezone.now()
    done = 0
    for version in reward_models_active():
        if done >= limit:
            break
        done += _campaign_score(version=version, batch=batch, limit=limit - done, models=models, now=now)
    return done


def _campaign_score(*, version, batch: int, limit: int, models: training_bridge.ModelHolder, now: datetime) -> int:
    done = 0
    for _ in range(STEPS_PER_CALL):
        if done >= limit:
            break
        mark, _created = RewardScoring.objects.get_or_create(campaign_id=version.campaign_id)
        step = _step_plan(version=version, mark=mark, n=min(batch, limit - done), now=now)
        if step is None:
            break
        stored = _step_store(version=version, mark=mark, step=step, models=models)
        if stored is None:
            break  # another worker moved the marks: it carries on from there
        done += stored
    return done


@dataclass(frozen=True)
class _Step:
    comparison_ids: list[int]  # to score
    through_label_id: int  # the marks once they are scored
    swept_through_id: int
    sweep_credit: int


def _step_plan(*, version, mark: RewardScoring, n: int, now: datetime) -> _Step | None:
    """Return the next chunk and where it leaves the marks: new labels first, then unscored arena pairs, then the sweep.

    Each read is a range of one index in id order (the labels' primary key, the two partial indexes of
    comparisons), with the campaign told apart here: a campaign filter in SQL lets a planner without
    statistics (SQLite's) start from the campaign's every prompt or label instead.
    """
    campaign_id = version.campaign_id
    rows = list(PreferenceLabel.objects.filter(pk__gt=mark.through_label_id).order_by("pk")
                .values_list("pk", "comparison_id", "rater_id", "created_at", "campaign_id")[:n])
    rows = list(takewhile(lambda row: row[3] < now - SCORE_AFTER, rows))
    if rows:
        own = [row for row in rows if row[4] == campaign_id]
        labelled = {comparison_id for _pk, comparison_id, rater_id, _at, _c in own if rater_id is not None}
        credit = min(mark.sweep_credit + settings.RM_RESCORE_PER_LABEL * len(own), SWEEP_CREDIT_MAX)
        return _Step(_not_scored_by(version, labelled), rows[-1][0], mark.swept_through_id, credit)
    arena = [pk for pk, campaign in Comparison.objects.filter(kind=Comparison.Kind.ARENA, rm_prob_version__isnull=True)
             .order_by("-id").values_list("pk", "prompt__campaign_id")[:n] if campaign == campaign_id]
    if arena:
        return _Step(arena, mark.through_label_id, mark.swept_through_id, mark.sweep_credit)
    if not mark.sweep_credit:
        return None
    scan = list(Comparison.objects.filter(rm_prob_a_wins__isnull=False, pk__gt=mark.swept_through_id).order_by("pk")
                .values_list("pk", "rm_prob_version_id", "prompt__campaign_id")[:n])
    if not scan:  # the round is over: the next one starts from the first comparison
        return _Step([], mark.through_label_id, 0, mark.sweep_credit) if mark.swept_through_id else None
    own = [(pk, version_id) for pk, version_id, campaign in scan if campaign == campaign_id][:mark.sweep_credit]
    if len(own) == mark.sweep_credit:  # the credit ends inside this chunk: the round stops at its last look
        scan = [row for row in scan if row[0] <= own[-1][0]]
    stale = [pk for pk, version_id in own if version_id != version.pk]
    return _Step(stale, mark.through_label_id, scan[-1][0], mark.sweep_credit - len(own))


def _not_scored_by(version, comparison_ids: set[int]) -> list[int]:
    return sorted(Comparison.objects.filter(pk__in=comparison_ids).exclude(rm_prob_version=version).values_list("pk", flat=True))


def _step_store(*, version, mark: RewardScoring, step: _Step, models: training_bridge.ModelHolder) -> int | None:
    """Score the step's comparisons and store the scores with the marks it leaves; return how many, or None when the marks moved."""
    chunk = list(Comparison.objects.filter(pk__in=step.comparison_ids).select_related("prompt", "response_a", "response_b").order_by("pk"))
    prob_a_wins = training_bridge.comparisons_prob_a_wins(
        version_name=version.name, version_path=version.path,
        items=[(c.prompt.text, c.prompt.context, c.response_a.text, c.response_b.text) for c in chunk], models=models,
    ) if chunk else []
    scored = {c.pk: round(p, 6) for c, p in zip(chunk, prob_a_wins)}
    marks = ("through_label_id", "swept_through_id", "sweep_credit")
    with transaction.atomic():
        held = RewardScoring.objects.select_for_update().get(pk=mark.pk)
        if any(getattr(held, name) != getattr(mark, name) for name in marks):
            return None
        # the scores as stored now, which another worker may have changed since the chunk was read
        before = dict(Comparison.objects.filter(pk__in=scored).exclude(rm_prob_version=version).values_list("pk", "rm_prob_a_wins"))
        after = {pk: scored[pk] for pk in before}
        quality_tally_rescored(campaign_id=version.campaign_id, before=before, after=after)
        Comparison.objects.bulk_update([Comparison(pk=pk, rm_prob_a_wins=p, rm_prob_version=version) for pk, p in after.items()],
                                       ["rm_prob_a_wins", "rm_prob_version"])
        for name in marks:
            setattr(held, name, getattr(step, name))
        held.save(update_fields=marks)
    return len(after)


class ScoringUnavailable(Exception):
    """No score could be had: no worker answered in time, or the worker had no active model."""


def responses_score_remote(*, prompt: str, context: Sequence[dict], responses: Sequence[str], timeout: float,
                           campaign_id: int = DEFAULT_CAMPAIGN_ID) -> dict:
    """Return ``responses_score``'s answer as computed by a worker on the 'score' queue.

    Waits at most ``timeout`` seconds; raises ScoringUnavailable when no worker answered in
    time or the worker had no active reward model. Called from web processes, which never load
    a model themselves.
    """
    from celery.exceptions import TimeoutError as CeleryTimeout

    try:
        result = events.reward_score_requested(prompt=prompt, context=list(context), responses=list(responses), campaign_id=campaign_id).get(timeout=timeout)
    except CeleryTimeout:
        raise ScoringUnavailable(f"no scoring worker answered within {timeout:g} s (queue 'score')") from None
    if "error" in result:
        raise ScoringUnavailable(result["error"])
    return result
