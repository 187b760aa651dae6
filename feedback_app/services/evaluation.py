"""Evaluating a reward version on a file of labelled pairs that the studio never trained on."""

from __future__ import annotations

from pathlib import Path

from feedback_app import training_bridge
from feedback_app.models import RewardModelVersion, VersionStatus
from feedback_app.selectors.training import reward_model_active


class EvaluationError(Exception):
    """The evaluation cannot run; the message says why."""


def reward_model_evaluate_file(*, file: Path, reward_version: str | None = None, limit: int | None = None) -> dict:
    """Return {"accuracy", "n", "version", "loss", "ece"} of a reward version (default: the active one) on the
    pairs of a TRL or HH JSONL file (.gz too), the first ``limit`` of them if given."""
    model = RewardModelVersion.objects.filter(name=reward_version).first() if reward_version else reward_model_active()
    if model is None:
        raise EvaluationError(f"no reward version named {reward_version!r}" if reward_version else "no reward model is active yet; train one first")
    if model.status == VersionStatus.PRUNED:
        raise EvaluationError(f"{model.name} was pruned from the model store (its checkpoint folder is gone)")
    if not file.exists():
        raise EvaluationError(f"{file} does not exist")
    try:
        pairs = training_bridge.read_preference_file(file)
    except (ValueError, OSError, EOFError) as exc:
        raise EvaluationError(f"{file}: {exc}") from None
    pairs = pairs[:limit] if limit else pairs
    if not pairs:
        raise EvaluationError(f"{file} holds no pairs")
    metrics = training_bridge.pairs_evaluate(version_name=model.name, version_path=model.path, pairs=pairs, models=training_bridge.ModelHolder())
    return {"accuracy": metrics["accuracy"], "n": metrics["n"], "version": model.name, "loss": metrics.get("loss"), "ece": metrics.get("ece")}
