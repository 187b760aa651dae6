"""A reward refit of one campaign's line: fit on its labels so far, gate against its active model on the same pairs, record the version."""

from __future__ import annotations

import math
from functools import partial

from django.conf import settings
from django.db import transaction

from feedback_app import training_bridge
from feedback_app.models import RewardModelVersion, TrainingRun
from feedback_app.selectors.judges import ai_label_weights, ai_labels_counted
from feedback_app.selectors.quality import rater_weights
from feedback_app.selectors.training import reward_model_active, reward_model_latest_full, reward_refit_through, verdicts
from feedback_app.services.auto_refit import training_auto_refit_if_due
from feedback_app.services.training_pairs import pairs_for_training
from feedback_app.services.training_runs import RunMonitor, TrainingError, training_run_succeed
from feedback_app.services.versions import version_activate


def reward_refit_run(*, run: TrainingRun, monitor: RunMonitor, models: training_bridge.ModelHolder) -> None:
    """Carry out a claimed reward run; the new version goes live when ``reward_promotion_decision`` allows."""
    tier = "full" if run.kind == TrainingRun.Kind.REWARD_FULL else "fast"
    campaign_id = run.campaign_id
    # a fast refit learns at most REFIT_MAX_NEW_LABELS labels more than the version before: behind its labels (more arrive than
    # its encoder embeds), each refit would take all that came during the last and outlast it; bounded, versions keep coming
    through = reward_refit_through(campaign_id=campaign_id, at_most=settings.REFIT_MAX_NEW_LABELS) if tier == "fast" else None
    # AI labels of trusted judges count, a reward-model judge's never (the model would learn its own verdicts back)
    ai_weights = ai_label_weights(purpose="reward", campaign_id=campaign_id)
    # the pairs kept per comparison by this worker: only those that changed since its last refit are made anew
    data = pairs_for_training(campaign_id=campaign_id, through_label_id=through, weights=rater_weights(campaign_id=campaign_id),
                              verdicts=verdicts(campaign_id=campaign_id), ai_weights=ai_weights)
    pairs, data_range = data.pairs, data.data_range
    if len(pairs) < 2:
        raise TrainingError(f"only {len(pairs)} decided comparison(s) in the campaign so far; a reward model needs at least 2")
    active = reward_model_active(campaign_id=campaign_id)
    warm = reward_model_latest_full(campaign_id=campaign_id) if tier == "full" and settings.REWARD_FULL_WARM_START else None
    # a fast refit starts from the active fast version's heads: it trains on the pairs they have not learned (new or changed since)
    # and a bounded sample of those they have, or fits cold where that cannot serve (rm_trainer.replay says why in the manifest)
    warm_heads = active if tier == "fast" and active is not None and active.tier == "fast" else None
    name = training_bridge.checkpoint_name_free("reward", f"rm-{run.pk:05d}")
    result = training_bridge.reward_fit(
        pairs=pairs, tier=tier, name=name, parent=active.name if active else None,
        baseline_path=active.path if active else None, warm_start_path=warm.path if warm else None,
        progress=monitor.progress, should_stop=monitor.should_stop, models=models,
        warm_heads_path=warm_heads.path if warm_heads else None, facts=data.facts,
    )
    promote, reason = reward_promotion_decision(new=result.metrics, baseline=result.baseline_metrics)
    metrics = {**training_bridge.reward_fit_metrics(result), "promoted": promote, "gate": reason,
               "ai_labels": ai_labels_counted(weights=ai_weights, last_label_id=data_range["last_label_id"], campaign_id=campaign_id)}
    with transaction.atomic():
        version = RewardModelVersion.objects.create(
            name=name, campaign_id=campaign_id, path=f"reward/{name}", parent=active, tier=tier, backbone=result.manifest.get("backbone", ""),
            metrics=metrics, manifest=result.manifest, data_range={**data_range, "n_pairs": len(pairs), "bounded": through is not None},
        )
        if through is not None:  # labels are waiting: the next refit is asked for now, not when the next labels arrive
            transaction.on_commit(partial(training_auto_refit_if_due, campaign_id=campaign_id), robust=True)
        if promote:
            version_activate(version=version, user=None, action="promote", reason=f"training run {run.pk}: {reason}")
        training_run_succeed(run=run, metrics=metrics, reward_model_version=version)


def reward_promotion_decision(*, new: dict, baseline: dict | None) -> tuple[bool, str]:
    """Return (promote, why): promote unless the new model is worse than the active one on the same pairs.

    "Worse" means lower validation accuracy by more than PROMOTION_TOLERANCE or by more than
    one standard error of that accuracy, whichever is larger: on a few dozen validation pairs
    accuracy moves by several points from noise alone, and a gate tighter than the noise would
    refuse good models at random.
    """
    if baseline is None:
        return True, "no reward model was active"
    new_acc, old_acc, n = new.get("accuracy"), baseline.get("accuracy"), baseline.get("n") or new.get("n") or 0
    if new_acc is None or old_acc is None or not n:
        return False, "no validation pairs to compare on; kept as a candidate"
    allowed = max(settings.PROMOTION_TOLERANCE, math.sqrt(max(old_acc * (1 - old_acc), 0.0) / n))
    if new_acc >= old_acc - allowed:
        return True, f"validation accuracy {new_acc:.3f} vs active {old_acc:.3f} on {n} pairs (allowed drop {allowed:.3f})"
    return False, f"validation accuracy {new_acc:.3f} is worse than the active {old_acc:.3f} on {n} pairs by more than {allowed:.3f}"
