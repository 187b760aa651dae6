"""What training reads: the active versions, verdicts, and the prompts to hold out from (the labels: ``services.training_data``)."""

from __future__ import annotations

from collections.abc import Iterator

from feedback_app.models import (
    DEFAULT_CAMPAIGN_ID, Comparison, Judge, PolicyVersion, PreferenceLabel, Prompt, RewardModelVersion, TrainingRun, VersionStatus,
)
from feedback_app.selectors import rows


def training_run_pending(*, campaign_id: int, kind: str, running_only_if_auto: bool = False) -> bool:
    """Return whether a run of the campaign's ``kind`` is queued or running (with ``running_only_if_auto``: queued, or running
    and started automatically).

    Written out, with its fixed values as literals (``rows.constant``): a label asks it on every tenth of a refit's N.
    """
    running = f"r.status = {rows.constant(TrainingRun.Status.RUNNING.value)}"
    if running_only_if_auto:
        running += f" AND r.trigger = {rows.constant(TrainingRun.Trigger.AUTO.value)}"
    sql = (f"SELECT 1 FROM {TrainingRun._meta.db_table} r WHERE r.campaign_id = %s AND r.kind = {rows.constant(kind)} "
           f"AND (r.status = {rows.constant(TrainingRun.Status.QUEUED.value)} OR ({running})) LIMIT 1")
    return rows.scalar(sql, [campaign_id]) is not None


def version_active(*, model: type[RewardModelVersion] | type[PolicyVersion], campaign_id: int = DEFAULT_CAMPAIGN_ID) -> RewardModelVersion | PolicyVersion | None:
    """Return the active version of a kind (``RewardModelVersion`` or ``PolicyVersion``) in a campaign's line, if any."""
    return model.objects.active().filter(campaign_id=campaign_id).first()


def version_by_name(*, model: type[RewardModelVersion] | type[PolicyVersion], name: str) -> RewardModelVersion | PolicyVersion | None:
    """Return the version of a kind named ``name``, if any."""
    return model.objects.filter(name=name).first()


def reward_model_active(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> RewardModelVersion | None:
    """Return the campaign's active reward model, if any."""
    return version_active(model=RewardModelVersion, campaign_id=campaign_id)


def reward_model_live(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> bool:
    """Return whether the campaign has an active reward model, without loading its row and metrics (the policy cadence asks
    it after every tenth of N labels)."""
    return RewardModelVersion.objects.active().filter(campaign_id=campaign_id).exists()


def policy_active(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> PolicyVersion | None:
    """Return the campaign's active policy, if any."""
    return version_active(model=PolicyVersion, campaign_id=campaign_id)


def reward_models_active() -> list[RewardModelVersion]:
    """Return the active reward model of every campaign that has one, by campaign."""
    return list(RewardModelVersion.objects.active().order_by("campaign_id"))


def policy_names_with_weights(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> list[str]:
    """Return the names of the campaign's policy versions that still have their weights (not pruned), newest first."""
    return list(PolicyVersion.objects.filter(campaign_id=campaign_id).exclude(status=VersionStatus.PRUNED).order_by("-id").values_list("name", flat=True))


def reward_model_latest_full(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> RewardModelVersion | None:
    """Return the campaign's newest full-tier reward version (any status), the warm start of the next one."""
    return RewardModelVersion.objects.filter(tier="full", campaign_id=campaign_id).order_by("-id").first()


def reward_data_through(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> int:
    """Return the id of the last label the campaign's newest reward version (any status) learned from; 0 before its first."""
    newest = RewardModelVersion.objects.filter(campaign_id=campaign_id).order_by("-id").values_list("data_range", flat=True).first() or {}
    return newest.get("last_label_id") or 0


def reward_labels_unlearned(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, cap: int | None = None) -> int:
    """Return how many of the campaign's labels arrived after its newest reward version's data, counting at most ``cap``.

    These are what the next refit would learn: a reward-model judge's labels never train a reward model (selectors.judges),
    so they are not counted.
    """
    labels = _reward_labels_unlearned(campaign_id=campaign_id)
    return (labels[:cap] if cap else labels).count()


def reward_refit_through(*, campaign_id: int = DEFAULT_CAMPAIGN_ID, at_most: int) -> int | None:
    """Return the id of the last label a fast refit learns from when it may take at most ``at_most`` new labels: the
    ``at_most``-th of those ``reward_labels_unlearned`` counts, or None when fewer arrived (or ``at_most`` is 0: no bound)."""
    if not at_most:
        return None
    return _reward_labels_unlearned(campaign_id=campaign_id).values_list("id", flat=True)[at_most - 1:at_most].first()


def _reward_labels_unlearned(*, campaign_id: int):
    """The campaign's labels after its newest reward version's data that a refit learns from, oldest first."""
    return (PreferenceLabel.objects.filter(pk__gt=reward_data_through(campaign_id=campaign_id), campaign_id=campaign_id)
            .exclude(judge_version__judge__kind=Judge.Kind.REWARD_MODEL).order_by("id"))


def verdicts(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> dict[int, str]:
    """Return the adjudicated answer of every comparison of the campaign an admin decided, by comparison id."""
    return dict(Comparison.objects.exclude(adjudicated_winner="").filter(excluded=False, prompt__campaign_id=campaign_id)
                .values_list("pk", "adjudicated_winner"))


def prompt_ids_published(*, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> Iterator[int]:
    """Return the ids of the campaign's prompts raters can see (not staged by an unfinished import), in id order, streamed."""
    return Prompt.objects.filter(campaign_id=campaign_id).exclude(import_batch__published=False).order_by("id").values_list("pk", flat=True).iterator(chunk_size=5000)
