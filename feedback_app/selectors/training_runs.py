"""Reading training runs: the recent ones and one by id, with their versions and requester."""

from __future__ import annotations

from django.db.models import QuerySet

from feedback_app.models import TrainingRun


def _runs() -> QuerySet[TrainingRun]:
    return TrainingRun.objects.select_related("reward_model_version", "policy_version", "requested_by")


def training_runs_recent(*, limit: int, campaign_id: int | None = None) -> list[TrainingRun]:
    """Return the ``limit`` newest training runs (of one campaign, or of all with None), newest first."""
    runs = _runs() if campaign_id is None else _runs().filter(campaign_id=campaign_id)
    return list(runs.order_by("-id")[:limit])


def training_run_get(*, run_id: int) -> TrainingRun | None:
    """Return the training run ``run_id``, or None if there is none."""
    return _runs().filter(pk=run_id).first()


def reward_run_running() -> bool:
    """Return whether a reward refit (either tier) is running now."""
    return TrainingRun.objects.filter(kind__in=(TrainingRun.Kind.REWARD_FAST, TrainingRun.Kind.REWARD_FULL),
                                      status=TrainingRun.Status.RUNNING).exists()
