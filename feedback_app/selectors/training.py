"""What the trainer reads: labels, versions, held-out prompts."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Max, Min

from feedback_app import training_bridge
from feedback_app.models import PolicyVersion, PreferenceLabel, Prompt, RewardModelVersion, VersionStatus

HELD_OUT_FRACTION = 0.2


def reward_model_active() -> RewardModelVersion | None:
    """Return the active reward model, if any."""
    return RewardModelVersion.objects.filter(status=VersionStatus.ACTIVE).first()


def policy_active() -> PolicyVersion | None:
    """Return the active policy, if any."""
    return PolicyVersion.objects.filter(status=VersionStatus.ACTIVE).first()


def reward_model_latest_full() -> RewardModelVersion | None:
    """Return the newest full-tier reward version (any status), the warm start of the next one."""
    return RewardModelVersion.objects.filter(tier="full").order_by("-id").first()


def labels_for_training(*, exclude_prompt_ids: list[int] | None = None) -> tuple[Iterator[PreferenceLabel], dict]:
    """Return the labels up to now, ordered by comparison, and the range they cover.

    The range is fixed first, so labels that arrive during the fit are left for the next one.
    """
    bounds = PreferenceLabel.objects.aggregate(first=Min("id"), last=Max("id"))
    labels = PreferenceLabel.objects.filter(pk__lte=bounds["last"] or 0, comparison__excluded=False)
    if exclude_prompt_ids:
        labels = labels.exclude(comparison__prompt_id__in=exclude_prompt_ids)
    labels = labels.select_related("comparison__prompt", "comparison__response_a", "comparison__response_b").order_by("comparison_id", "id")
    data_range = {"first_label_id": bounds["first"], "last_label_id": bounds["last"], "n_labels": labels.count()}
    return labels.iterator(chunk_size=2000), data_range


def rater_weights() -> dict[int, float]:
    """Return each rater's weight in training (1.0 for everyone not listed); see selectors.quality."""
    from feedback_app.selectors.quality import rater_weights as weights

    return weights()


def verdicts() -> dict[int, str]:
    """Return the adjudicated answer of every comparison an admin decided, by comparison id."""
    from feedback_app.models import Comparison

    return dict(Comparison.objects.exclude(adjudicated_winner="").filter(excluded=False).values_list("pk", "adjudicated_winner"))


def prompts_held_out(*, limit: int) -> list[Prompt]:
    """Return up to ``limit`` prompts of the fixed held-out split, on which policies are compared."""
    chosen = []
    for pk in Prompt.objects.exclude(import_batch__published=False).order_by("id").values_list("pk", flat=True).iterator(chunk_size=5000):
        if training_bridge.is_held_out(f"prompt-{pk}", HELD_OUT_FRACTION):
            chosen.append(pk)
            if len(chosen) >= limit:
                break
    return list(Prompt.objects.filter(pk__in=chosen).order_by("id"))
