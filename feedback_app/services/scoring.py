"""Scoring responses with the active reward model: in a worker, or asked of a worker from the web (which never loads one)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from feedback_app import events, training_bridge
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


def comparisons_rm_score(*, batch: int = 256, limit: int = 256, models: training_bridge.ModelHolder | None = None) -> int:
    """Record each campaign's active reward model's P(A beats B) on the campaign's labelled and arena comparisons it has not judged.

    Runs in a worker, campaign by campaign, newest comparisons first, at most ``limit`` per call;
    returns how many were scored (0 without an active model). Texts go through the embedding
    cache, which the fits have filled with most of them.
    """
    models = models or training_bridge.ModelHolder()
    done = 0
    for version in reward_models_active():
        if done >= limit:
            break
        done += _comparisons_rm_score(version=version, batch=batch, limit=limit - done, models=models)
    return done


def _comparisons_rm_score(*, version, batch: int, limit: int, models: training_bridge.ModelHolder) -> int:
    from django.db.models import Q

    from feedback_app.models import Comparison

    pending = (
        Comparison.objects.filter(Q(label_count__gt=0) | Q(kind=Comparison.Kind.ARENA), prompt__campaign_id=version.campaign_id)
        .exclude(rm_prob_version=version)
        .select_related("prompt", "response_a", "response_b")
        .order_by("-id")
    )
    done = 0
    while done < limit:
        chunk = list(pending[:min(batch, limit - done)])
        if not chunk:
            break
        prob_a_wins = training_bridge.comparisons_prob_a_wins(
            version_name=version.name, version_path=version.path,
            items=[(c.prompt.text, c.prompt.context, c.response_a.text, c.response_b.text) for c in chunk], models=models,
        )
        before = {c.pk: c.rm_prob_a_wins for c in chunk}
        for comparison, p in zip(chunk, prob_a_wins):
            comparison.rm_prob_a_wins, comparison.rm_prob_version = round(p, 6), version
        with transaction.atomic():
            quality_tally_rescored(campaign_id=version.campaign_id, before=before, after={c.pk: c.rm_prob_a_wins for c in chunk})
            Comparison.objects.bulk_update(chunk, ["rm_prob_a_wins", "rm_prob_version"])
        done += len(chunk)
    return done


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
