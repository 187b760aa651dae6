"""A policy update of one campaign's line: online, iterative DPO from its active policy, gated by its reward-model win
rate on the campaign's held-out prompts.

A run learns from the labelled pairs (people's, the pairs their rewrites imply, and trusted AI
labels; held-out prompts left out) plus on-policy pairs: the policy being improved answers
training prompts DPO_ONLINE_SAMPLES times and the active reward model's best and worst reply make
a pair (``rm_trainer.online``). It trains from the active policy, or with DPO_FROM_BASE from the
base policy on all the data; either way the new version is judged against the active policy, the
one it would replace. The new version is served in POLICY_SERVING_MODE (rerank: the best of
RERANK_SAMPLES by the active reward model; see services.serving).
"""

from __future__ import annotations

import random

from django.conf import settings
from django.db import transaction

from feedback_app import training_bridge
from feedback_app.models import DEFAULT_CAMPAIGN_ID, PolicyVersion, Prompt, TrainingRun
from feedback_app.selectors.campaigns import campaign_get
from feedback_app.selectors.judges import ai_label_weights, ai_labels_counted
from feedback_app.selectors.quality import rater_weights
from feedback_app.selectors.training import prompt_ids_published, reward_model_active, verdicts
from feedback_app.services.training_pairs import pairs_for_training
from feedback_app.services.training_runs import RunMonitor, TrainingError, training_run_succeed
from feedback_app.services.versions import policy_active_or_base, policy_base, version_activate

HELD_OUT_FRACTION = 0.2


def policy_update_run(*, run: TrainingRun, monitor: RunMonitor, models: training_bridge.ModelHolder) -> None:
    """Carry out a claimed DPO run; the new policy goes live when it beats the active one by POLICY_PROMOTION_WIN_RATE."""
    campaign_id = run.campaign_id
    reward = reward_model_active(campaign_id=campaign_id)
    if reward is None:
        raise TrainingError("a DPO run needs an active reward model of the campaign to judge the new policy; train one first")
    active = policy_active_or_base(campaign_id=campaign_id)
    base = policy_base()  # every KL is measured to it
    parent = base if settings.DPO_FROM_BASE else active
    held_out = prompts_held_out(limit=settings.DPO_EVAL_PROMPTS, campaign_id=campaign_id)
    # labelled pairs: people's, and AI labels of trusted judges (a reward-model judge's too: the policy may learn them); kept per
    # comparison by this worker, made anew where something changed
    ai_weights = ai_label_weights(purpose="policy", campaign_id=campaign_id)
    data = pairs_for_training(campaign_id=campaign_id, exclude_prompt_ids=[p.pk for p in held_out], weights=rater_weights(campaign_id=campaign_id),
                              verdicts=verdicts(campaign_id=campaign_id), ai_weights=ai_weights, purpose="policy")
    pairs, data_range = data.pairs, data.data_range
    labelled = [p for p in pairs if not p.tie][-settings.DPO_MAX_PAIRS:]
    if not labelled:
        raise TrainingError("no decided comparisons outside the held-out prompts to learn from yet")
    if not held_out:
        raise TrainingError("no held-out prompts to evaluate the new policy on; import more prompts")
    online = []
    if settings.DPO_ONLINE_PROMPTS:
        online = training_bridge.online_pairs(
            policy_name=parent.name, policy_path=parent.path, reward_name=reward.name, reward_path=reward.path,
            prompts=[(p.text, p.context) for p in prompts_for_online_pairs(limit=settings.DPO_ONLINE_PROMPTS, seed=run.pk, campaign_id=campaign_id)],
            seed=run.pk, models=models, progress=monitor.progress, should_stop=monitor.should_stop,
        )
    name = training_bridge.checkpoint_name_free("policy", f"policy-{run.pk:05d}")
    result = training_bridge.dpo_train(base_name=parent.name, base_path=parent.path, name=name, pairs=labelled + online,
                                       progress=monitor.progress, should_stop=monitor.should_stop)
    monitor.progress({"phase": "evaluate", "step": 0, "total_steps": 1})
    win = training_bridge.policy_win_rate(
        new_path=f"policy/{name}", old_name=active.name, old_path=active.path, reward_name=reward.name, reward_path=reward.path,
        prompts=[(p.text, p.context) for p in held_out], seed=run.pk, models=models, base_name=base.name, base_path=base.path,
    )
    promote = win.win_rate > settings.POLICY_PROMOTION_WIN_RATE
    metrics = {
        **training_bridge.policy_update_metrics(result, win), "judge": reward.name, "promoted": promote,
        "n_human_pairs": len(labelled),  # the name consumers read: labelled pairs, with rewrites and trusted AI labels
        "n_online_pairs": len(online), "trained_from": parent.name, "compared_with": active.name,
        "ai_labels": ai_labels_counted(weights=ai_weights, last_label_id=data_range["last_label_id"], exclude_prompt_ids=[p.pk for p in held_out],
                                       campaign_id=campaign_id),
        "gate": f"reward-model win rate {win.win_rate:.3f} vs {active.name} (needs > {settings.POLICY_PROMOTION_WIN_RATE})",
        "paused_for_refits": {"pauses": monitor.pauses, "seconds": round(monitor.paused_seconds, 1)},
    }
    with transaction.atomic():
        version = PolicyVersion.objects.create(
            name=name, campaign_id=campaign_id, path=f"policy/{name}", parent=parent, generator=parent.generator, reward_model=reward,
            sampling=parent.sampling, selection_strategy=campaign_get(campaign_id=campaign_id).strategy, serving_mode=settings.POLICY_SERVING_MODE,
            metrics=metrics, manifest=result.manifest,
        )
        if promote:
            version_activate(version=version, user=None, action="promote", reason=f"training run {run.pk}: {metrics['gate']}")
        training_run_succeed(run=run, metrics={**metrics, "data_range": data_range}, policy_version=version)


def prompts_held_out(*, limit: int, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> list[Prompt]:
    """Return up to ``limit`` of the campaign's prompts in the fixed held-out split (rm_trainer's validation rule), on which its policies are compared."""
    chosen = []
    for pk in prompt_ids_published(campaign_id=campaign_id):
        if training_bridge.is_validation(f"prompt-{pk}", HELD_OUT_FRACTION):
            chosen.append(pk)
            if len(chosen) >= limit:
                break
    return list(Prompt.objects.filter(pk__in=chosen).order_by("id"))


def prompts_for_online_pairs(*, limit: int, seed: int, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> list[Prompt]:
    """Return up to ``limit`` of the campaign's published prompts outside the whole held-out split, drawn at random by ``seed``, in id order.

    Each run draws afresh (its seed is the run's id), so successive runs explore different prompts.
    """
    training = [pk for pk in prompt_ids_published(campaign_id=campaign_id) if not training_bridge.is_validation(f"prompt-{pk}", HELD_OUT_FRACTION)]
    chosen = random.Random(seed).sample(training, min(limit, len(training)))
    return list(Prompt.objects.filter(pk__in=chosen).order_by("id"))
