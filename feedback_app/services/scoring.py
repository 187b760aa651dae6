"""Scoring responses with the active reward model (runs in a worker, never in a web process)."""

from __future__ import annotations

from collections.abc import Sequence

from feedback_app import training_bridge
from feedback_app.selectors.training import reward_model_active


class NoActiveRewardModel(Exception):
    pass


def responses_score(*, prompt: str, context: Sequence[dict], responses: Sequence[str]) -> dict:
    """Return {"rewards", "reward_model_version"} from the reward model active right now.

    The active version is read for every call, so a swap is picked up by the next request;
    a request already holding the old scorer finishes with it.
    """
    version = reward_model_active()
    if version is None:
        raise NoActiveRewardModel("no reward model is active yet; train one first")
    rewards = training_bridge.reward_scores(version_name=version.name, version_path=version.path, prompt=prompt, context=context, responses=responses)
    return {"rewards": rewards, "reward_model_version": version.name}
