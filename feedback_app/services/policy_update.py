"""A policy update: DPO from the active policy on the decided pairs, gated by its reward-model win rate on held-out prompts."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from feedback_app import training_bridge
from feedback_app.models import PolicyVersion, Prompt, TrainingRun
from feedback_app.selectors.quality import rater_weights
from feedback_app.selectors.training import labels_for_training, prompt_ids_published, reward_model_active, verdicts
from feedback_app.services.training_runs import RunMonitor, TrainingError, training_run_succeed
from feedback_app.services.versions import policy_active_or_base, version_activate

HELD_OUT_FRACTION = 0.2


def policy_update_run(*, run: TrainingRun, monitor: RunMonitor, models: training_bridge.ModelHolder) -> None:
    """Carry out a claimed DPO run; the new policy goes live when it beats its parent by POLICY_PROMOTION_WIN_RATE."""
    reward = reward_model_active()
    if reward is None:
        raise TrainingError("a DPO run needs an active reward model to judge the new policy; train one first")
    base = policy_active_or_base()
    held_out = prompts_held_out(limit=settings.DPO_EVAL_PROMPTS)
    labels, data_range = labels_for_training(exclude_prompt_ids=[p.pk for p in held_out])
    pairs = [p for p in training_bridge.preference_pairs(labels, weights=rater_weights(), verdicts=verdicts()) if not p.tie][-settings.DPO_MAX_PAIRS:]
    if not pairs:
        raise TrainingError("no decided comparisons outside the held-out prompts to learn from yet")
    if not held_out:
        raise TrainingError("no held-out prompts to evaluate the new policy on; import more prompts")
    name = f"policy-{run.pk:05d}"
    result = training_bridge.dpo_train(base_name=base.name, base_path=base.path, name=name, pairs=pairs,
                                       progress=monitor.progress, should_stop=monitor.should_stop)
    monitor.progress({"phase": "evaluate", "step": 0, "total_steps": 1})
    win = training_bridge.policy_win_rate(
        new_path=f"policy/{name}", old_name=base.name, old_path=base.path, reward_name=reward.name, reward_path=reward.path,
        prompts=[(p.text, p.context) for p in held_out], seed=run.pk, models=models,
    )
    promote = win.win_rate > settings.POLICY_PROMOTION_WIN_RATE
    metrics = {
        **training_bridge.policy_update_metrics(result, win), "judge": reward.name, "promoted": promote,
        "gate": f"reward-model win rate {win.win_rate:.3f} vs parent (needs > {settings.POLICY_PROMOTION_WIN_RATE})",
    }
    with transaction.atomic():
        version = PolicyVersion.objects.create(
            name=name, path=f"policy/{name}", parent=base, generator=base.generator, reward_model=reward,
            sampling=base.sampling, selection_strategy=settings.SELECTION_STRATEGY, metrics=metrics, manifest=result.manifest,
        )
        if promote:
            version_activate(version=version, user=None, action="promote", reason=f"training run {run.pk}: {metrics['gate']}")
        training_run_succeed(run=run, metrics={**metrics, "data_range": data_range}, policy_version=version)


def prompts_held_out(*, limit: int) -> list[Prompt]:
    """Return up to ``limit`` prompts of the fixed held-out split (rm_trainer's validation rule), on which policies are compared."""
    chosen = []
    for pk in prompt_ids_published():
        if training_bridge.is_validation(f"prompt-{pk}", HELD_OUT_FRACTION):
            chosen.append(pk)
            if len(chosen) >= limit:
                break
    return list(Prompt.objects.filter(pk__in=chosen).order_by("id"))
