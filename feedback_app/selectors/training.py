"""What training reads: the active versions, the labels up to now, verdicts, and the prompts to hold out from."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Max, Min

from feedback_app.models import DEFAULT_CAMPAIGN_ID, Comparison, PolicyVersion, PreferenceLabel, Prompt, RewardModelVersion, VersionStatus


def version_active(*, model: type[RewardModelVersion] | type[PolicyVersion]) -> RewardModelVersion | PolicyVersion | None:
    """Return the active version of a kind (``RewardModelVersion`` or ``PolicyVersion``), if any."""
    return model.objects.active().first()


def version_by_name(*, model: type[RewardModelVersion] | type[PolicyVersion], name: str) -> RewardModelVersion | PolicyVersion | None:
    """Return the version of a kind named ``name``, if any."""
    return model.objects.filter(name=name).first()


def reward_model_active() -> RewardModelVersion | None:
    """Return the active reward model, if any."""
    return version_active(model=RewardModelVersion)


def policy_active() -> PolicyVersion | None:
    """Return the active policy, if any."""
    return version_active(model=PolicyVersion)


def policy_names_with_weights() -> list[str]:
    """Return the names of the policy versions that still have their weights (not pruned), newest first."""
    return list(PolicyVersion.objects.exclude(status=VersionStatus.PRUNED).order_by("-id").values_list("name", flat=True))


def reward_model_latest_full() -> RewardModelVersion | None:
    """Return the newest full-tier reward version (any status), the warm start of the next one."""
    return RewardModelVersion.objects.filter(tier="full").order_by("-id").first()


def labels_for_training(*, exclude_prompt_ids: list[int] | None = None) -> tuple[Iterator[PreferenceLabel], dict]:
    """Return the default campaign's labels up to now, ordered by comparison, and the range they cover.

    The range is fixed first, so labels that arrive during the fit are left for the next one. The
    reward-model and policy lines are the default campaign's: another campaign's labels never train them.
    """
    campaign_labels = PreferenceLabel.objects.filter(comparison__prompt__campaign_id=DEFAULT_CAMPAIGN_ID)
    bounds = campaign_labels.aggregate(first=Min("id"), last=Max("id"))
    labels = campaign_labels.filter(pk__lte=bounds["last"] or 0, comparison__excluded=False)
    if exclude_prompt_ids:
        labels = labels.exclude(comparison__prompt_id__in=exclude_prompt_ids)
    labels = labels.select_related("comparison__prompt", "comparison__response_a", "comparison__response_b", "rewrite").order_by("comparison_id", "id")
    data_range = {"first_label_id": bounds["first"], "last_label_id": bounds["last"], "n_labels": labels.count()}
    return labels.iterator(chunk_size=2000), data_range


def verdicts() -> dict[int, str]:
    """Return the adjudicated answer of every comparison an admin decided, by comparison id."""
    return dict(Comparison.objects.exclude(adjudicated_winner="").filter(excluded=False).values_list("pk", "adjudicated_winner"))


def prompt_ids_published() -> Iterator[int]:
    """Return the ids of the default campaign's prompts raters can see (not staged by an unfinished import), in id order, streamed."""
    return Prompt.objects.filter(campaign_id=DEFAULT_CAMPAIGN_ID).exclude(import_batch__published=False).order_by("id").values_list("pk", flat=True).iterator(chunk_size=5000)
