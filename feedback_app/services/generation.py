"""Replies of a policy version, for researchers: in a worker, or asked of a worker from the web (which never loads one).

A version answers in its serving mode unless another is asked for (services.serving): "sample"
(one sampled reply) or "rerank" (the best of RERANK_SAMPLES by the active reward model). Nothing
is stored: the prompts and replies go back to the caller only. The API's generate endpoint and
the versions page's samples form both call ``policy_replies_remote``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.conf import settings

from feedback_app import events, training_bridge
from feedback_app.models import PolicyVersion, ServingMode, VersionStatus
from feedback_app.selectors.training import version_by_name
from feedback_app.services.serving import RerankUnavailable, Serving, policy_serving


class GenerationRefused(Exception):
    """The request names a policy that cannot answer; ``code`` says why (the worker sends it back by name)."""

    code = "refused"


class PolicyNotFound(GenerationRefused):
    code = "not_found"


class PolicyPruned(GenerationRefused):
    code = "pruned"


class NoRewardModel(GenerationRefused):
    """Rerank was asked for, and no reward model is active to choose the best reply."""

    code = "no_reward_model"


class GenerationUnavailable(Exception):
    """No replies could be had: no worker answered in time, or the worker failed."""


REFUSALS = {cls.code: cls for cls in (PolicyNotFound, PolicyPruned, NoRewardModel)}


def policy_for_replies(*, policy_name: str) -> PolicyVersion:
    """Return the policy version named ``policy_name``; raise PolicyNotFound or PolicyPruned (its weights are gone)."""
    version = version_by_name(model=PolicyVersion, name=policy_name)
    if version is None:
        raise PolicyNotFound(f"no policy version named {policy_name!r}")
    if version.status == VersionStatus.PRUNED:
        raise PolicyPruned(f"{version.name} was pruned from the model store: its weights are gone")
    return version


def generation_options(*, seed: int | None = None, max_new_tokens: int | None = None, temperature: float | None = None) -> dict:
    """Return the sampling options with the defaults filled in: seed 0, GENERATION_MAX_NEW_TOKENS, GENERATION_TEMPERATURE."""
    return {
        "seed": 0 if seed is None else seed,
        "max_new_tokens": settings.GENERATION_MAX_NEW_TOKENS if max_new_tokens is None else max_new_tokens,
        "temperature": settings.GENERATION_TEMPERATURE if temperature is None else temperature,
    }


def _turns(prompts: Sequence[Mapping]) -> list[dict]:
    return [{"prompt": p["prompt"], "context": [dict(turn) for turn in p.get("context") or []]} for p in prompts]


def policy_serving_for_replies(*, version: PolicyVersion, mode: str | None) -> Serving:
    """Return how ``version`` answers a request for ``mode`` (None: its own serving mode); raise NoRewardModel for a rerank
    asked for while no reward model is active (its own rerank mode then samples)."""
    try:
        return policy_serving(version=version, mode=mode)
    except RerankUnavailable as exc:
        raise NoRewardModel(str(exc)) from None


def policy_replies(
    *, policy_name: str, prompts: Sequence[Mapping], mode: str | None = None, seed: int | None = None, max_new_tokens: int | None = None,
    temperature: float | None = None, models: training_bridge.ModelHolder | None = None,
) -> dict:
    """Return {"policy", "mode", "reward_model", "replies"}: one reply per {"prompt", "context"?}, in order, from that version.

    ``mode`` is "sample" or "rerank" (None: the version's serving mode); the answer names the mode
    used and the reward model that reranked (None when sampling). Runs where the model may load (a
    worker); ``models`` is the worker's holder of loaded models, without one the call loads its own.
    The same seed and options give the same replies. Raise PolicyNotFound, PolicyPruned or NoRewardModel.
    """
    version = policy_for_replies(policy_name=policy_name)
    serving = policy_serving_for_replies(version=version, mode=mode)
    inputs = [(p["prompt"], p["context"]) for p in _turns(prompts)]
    options = generation_options(seed=seed, max_new_tokens=max_new_tokens, temperature=temperature)
    models = models or training_bridge.ModelHolder()
    if serving.mode == ServingMode.RERANK:
        best = training_bridge.replies_rerank(
            policy_name=version.name, policy_path=version.path, reward_name=serving.reward.name, reward_path=serving.reward.path,
            prompts=inputs, n=settings.RERANK_SAMPLES, models=models, **options,
        )
        replies = [texts[0] if texts else "" for texts in best.texts]
    else:
        replies = training_bridge.replies_generate(policy_name=version.name, policy_path=version.path, prompts=inputs, models=models, **options)
    return {"policy": version.name, "mode": serving.mode, "reward_model": serving.reward.name if serving.reward else None, "replies": replies}


def policy_replies_or_error(*, policy_name: str, prompts: Sequence[Mapping], seed: int, max_new_tokens: int, temperature: float,
                            mode: str | None = None, models: training_bridge.ModelHolder | None = None) -> dict:
    """Return ``policy_replies``'s answer, or {"error": why, "code": GenerationRefused.code} (what the worker sends back)."""
    try:
        return policy_replies(policy_name=policy_name, prompts=prompts, mode=mode, seed=seed, max_new_tokens=max_new_tokens,
                              temperature=temperature, models=models)
    except GenerationRefused as exc:
        return {"error": str(exc), "code": exc.code}


def policy_replies_remote(
    *, policy_name: str, prompts: Sequence[Mapping], mode: str | None = None, seed: int | None = None, max_new_tokens: int | None = None,
    temperature: float | None = None, timeout: float,
) -> dict:
    """Return ``policy_replies``'s answer as computed by a worker on the 'score' queue.

    An unknown or pruned version, or a rerank without an active reward model, is refused here,
    before any worker is asked (PolicyNotFound, PolicyPruned, NoRewardModel); the worker is sent
    the mode decided here. Waits at most ``timeout`` seconds; raises GenerationUnavailable when no
    worker answered in time or the worker failed. Called from web processes, which never load
    a model themselves.
    """
    from celery.exceptions import TimeoutError as CeleryTimeout

    version = policy_for_replies(policy_name=policy_name)
    serving = policy_serving_for_replies(version=version, mode=mode)
    options = generation_options(seed=seed, max_new_tokens=max_new_tokens, temperature=temperature)
    try:
        result = events.policy_generate_requested(policy_name=version.name, prompts=_turns(prompts), mode=serving.mode,
                                                  **options).get(timeout=timeout)
    except CeleryTimeout:
        raise GenerationUnavailable(f"no worker answered within {timeout:g} s (queue 'score')") from None
    except GenerationRefused:
        raise
    except Exception as exc:  # the broker is down, or the worker raised (its exception comes back here)
        raise GenerationUnavailable(f"the worker could not generate: {type(exc).__name__}: {exc}") from exc
    if "error" in result:
        raise REFUSALS.get(result.get("code"), GenerationUnavailable)(result["error"])
    return result
