"""Keeping comparisons ready: each active campaign's active policy writes candidates, its reward model picks a pair.

Each campaign is served in turn, one round each: a campaign's prompts are answered only by its own
policy line and chosen among by its own reward model. One round: claim up to SUPPLY_BATCH_PROMPTS
prompts that need a comparison (each claim is a lease on the prompt row, so two workers never
generate for the same prompt), generate SUPPLY_CANDIDATES replies for each in one batched pass, score them with the active reward model,
let the selection strategy choose the pair to show (among the complete replies when at least two
are complete: a reply that hit the token budget is cut off mid-sentence), and store the two replies and the
comparison with its provenance (policy version, reward-model version, strategy, score); each
stored reply says whether it was truncated. A share of the prompts (the campaign's arena_share) goes
to the arena instead: the active policy against an earlier one, one reply each, served in the
active policy's serving mode (services.serving). With AI feedback on, standard comparisons wait for
the routing judge's verdict before anyone sees them (services.ai_routing): the reward-model judge
answers here, with the models this round loaded; the others on the "judge" queue. A round asked to
stop (its worker is stopping) ends between two sampled tokens, stores nothing and gives its prompts back.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from feedback_app import events, training_bridge
from feedback_app.models import Campaign, Comparison, Judge, PolicyVersion, Prompt, Response, VersionStatus
from feedback_app.selectors.judges import judge_routing
from feedback_app.selectors.campaigns import campaign_get, campaign_ids_supplied
from feedback_app.selectors.supply import campaign_has_prompts, open_comparison_count, prompts_needing_comparisons
from feedback_app.selectors.training import reward_model_active
from feedback_app.services.ai_routing import comparisons_judge_and_route
from feedback_app.services.serving import Serving, policy_serving
from feedback_app.services.versions import policy_active_or_base

logger = logging.getLogger(__name__)
GENERATION_LEASE = timedelta(minutes=15)


def comparisons_supply(*, now: datetime | None = None, models: training_bridge.ModelHolder | None = None,
                       should_stop: Callable[[], bool] | None = None) -> int:
    """Generate comparisons until each active campaign has SUPPLY_OPEN_TARGET open; return how many were made.

    A pass makes one round per campaign below its target; another pass starts while the last one made comparisons and
    fewer than SUPPLY_TASK_SECONDS have passed since the first began (0: one pass), so raters who label faster than a
    round every beat are not left waiting for the next beat. ``models`` is the worker's holder of loaded models; without
    one, the rounds load their own. ``should_stop()`` (cheap: it is asked after every sampled token) answering True ends
    the round in progress, storing nothing of it, and starts no other.
    """
    models = models or training_bridge.ModelHolder()
    began = time.monotonic()
    made = 0
    while True:
        made_now = 0
        for pk in campaign_ids_supplied():
            if should_stop is not None and should_stop():
                return made + made_now
            made_now += campaign_supply(campaign=campaign_get(campaign_id=pk), now=now or timezone.now(), models=models,
                                        should_stop=should_stop)
        made += made_now
        if not made_now or time.monotonic() - began >= settings.SUPPLY_TASK_SECONDS:
            return made


def campaign_supply(*, campaign: Campaign, now: datetime, models: training_bridge.ModelHolder,
                    should_stop: Callable[[], bool] | None = None) -> int:
    """One round for ``campaign``: its policy answers its prompts until SUPPLY_OPEN_TARGET of its comparisons are open; a
    round that ``should_stop`` ended makes none, and its prompts are free for the next."""
    missing = settings.SUPPLY_OPEN_TARGET - open_comparison_count(campaign_id=campaign.pk, cap=settings.SUPPLY_OPEN_TARGET)
    if missing <= 0 or campaign.state != Campaign.State.ACTIVE or not campaign_has_prompts(campaign_id=campaign.pk):
        return 0
    policy = policy_active_or_base(campaign_id=campaign.pk)
    prompts = prompts_claim_for_generation(policy=policy, limit=min(missing, settings.SUPPLY_BATCH_PROMPTS), now=now)
    if not prompts:
        return 0
    try:
        return _supply_round(campaign=campaign, policy=policy, prompts=prompts, models=models, should_stop=should_stop)
    except training_bridge.GenerationStopped:
        logger.info("campaign %s: the worker is stopping; its round stopped while sampling, and its %d prompt(s) are given back",
                    campaign.slug, len(prompts))
        return 0
    finally:
        Prompt.objects.filter(pk__in=[p.pk for p in prompts]).update(generation_lease_until=None)


@transaction.atomic
def prompts_claim_for_generation(*, policy: PolicyVersion, limit: int, now: datetime) -> list[Prompt]:
    """Lease up to ``limit`` prompts of the policy's campaign that need a comparison from ``policy`` to this worker."""
    ids = list(
        prompts_needing_comparisons(policy=policy, now=now)
        .select_for_update(skip_locked=True, of=("self",))
        .values_list("pk", flat=True)[:limit]
    )
    Prompt.objects.filter(pk__in=ids).update(generation_lease_until=now + GENERATION_LEASE)
    return list(Prompt.objects.filter(pk__in=ids).order_by("id"))


def _supply_round(*, campaign: Campaign, policy: PolicyVersion, prompts: list[Prompt], models: training_bridge.ModelHolder,
                  should_stop: Callable[[], bool] | None) -> int:
    seed = int(timezone.now().timestamp())
    rng = random.Random(seed)
    opponent = arena_opponent(policy=policy, rng=rng)
    n_arena = round(len(prompts) * campaign.arena_share) if opponent else 0
    rng.shuffle(prompts)
    made = (_arena_round(campaign=campaign, policy=policy, opponent=opponent, prompts=prompts[:n_arena], seed=seed, models=models,
                         should_stop=should_stop) if n_arena else 0)
    return made + _standard_round(campaign=campaign, policy=policy, prompts=prompts[n_arena:], seed=seed, models=models, should_stop=should_stop)


def arena_opponent(*, policy: PolicyVersion, rng: random.Random) -> PolicyVersion | None:
    """Return an earlier policy of the same campaign's line to pit against ``policy``: its parent half the time, else any earlier one."""
    earlier = list(PolicyVersion.objects.filter(campaign_id=policy.campaign_id).exclude(pk=policy.pk).filter(created_at__lte=policy.created_at).order_by("id")
                   .exclude(status=VersionStatus.PRUNED))  # retention removed their weights
    if not earlier:
        return None
    parent = next((v for v in earlier if v.pk == policy.parent_id), None)
    return parent if parent is not None and rng.random() < 0.5 else rng.choice(earlier)


def _arena_round(*, campaign: Campaign, policy: PolicyVersion, opponent: PolicyVersion, prompts: list[Prompt], seed: int,
                 models: training_bridge.ModelHolder, should_stop: Callable[[], bool] | None) -> int:
    """One reply from each policy per prompt, both in the active policy's serving mode; raters see them in a random order.

    The opponent answers in the same mode, reranked by the same reward model, so a vote compares
    the two versions' weights, not the tiers (a reranked child against a sampled parent would hide
    a worse DPO step from the rollback gate). Each comparison records that mode (policy_mode) and
    the reward model that reranked (reward_model_version).
    """
    serving = policy_serving(version=policy)
    inputs = [(p.text, p.context) for p in prompts]
    new, old = (_arena_replies(version=v, serving=serving, inputs=inputs, seed=seed, models=models, should_stop=should_stop)
                for v in (policy, opponent))
    made = 0
    with transaction.atomic():
        for prompt, mine, mine_cut, theirs, theirs_cut in zip(prompts, *new, *old):
            if not mine or not theirs or not mine[0] or not theirs[0] or mine[0] == theirs[0]:
                continue
            a = Response.objects.create(prompt=prompt, source=Response.Source.POLICY, text=mine[0], policy_version=policy, truncated=mine_cut[0])
            b = Response.objects.create(prompt=prompt, source=Response.Source.POLICY, text=theirs[0], policy_version=opponent, truncated=theirs_cut[0])
            Comparison.objects.create(prompt=prompt, response_a=a, response_b=b, required_labels=campaign.required_labels,
                                      kind=Comparison.Kind.ARENA, policy_version=policy, selection_strategy="arena",
                                      policy_mode=serving.mode, reward_model_version=serving.reward)
            made += 1
        if made:
            events.comparisons_supplied(count=made, campaign_id=campaign.pk)
    return made


def _arena_replies(*, version: PolicyVersion, serving: Serving, inputs: list, seed: int, models: training_bridge.ModelHolder,
                   should_stop: Callable[[], bool] | None) -> training_bridge.Candidates:
    if serving.reward is None:
        return training_bridge.candidates_generate(policy_name=version.name, policy_path=version.path, prompts=inputs, n=1, seed=seed,
                                                   models=models, should_stop=should_stop)
    return training_bridge.replies_rerank(
        policy_name=version.name, policy_path=version.path, reward_name=serving.reward.name, reward_path=serving.reward.path, prompts=inputs,
        n=settings.RERANK_SAMPLES, seed=seed, max_new_tokens=settings.GENERATION_MAX_NEW_TOKENS, temperature=settings.GENERATION_TEMPERATURE,
        models=models, should_stop=should_stop,
    )


def _standard_round(*, campaign: Campaign, policy: PolicyVersion, prompts: list[Prompt], seed: int, models: training_bridge.ModelHolder,
                    should_stop: Callable[[], bool] | None) -> int:
    if not prompts:
        return 0
    reward = reward_model_active(campaign_id=campaign.pk)
    inputs = [(p.text, p.context) for p in prompts]
    generated = training_bridge.candidates_generate(
        policy_name=policy.name, policy_path=policy.path, prompts=inputs, n=settings.SUPPLY_CANDIDATES, seed=seed, models=models,
        should_stop=should_stop,
    )
    pools = [candidate_pool(flags) for flags in generated.truncated]
    strategy = policy.selection_strategy if reward is not None else "random"
    picks = training_bridge.pairs_choose(
        reward_name=reward.name if reward else None, reward_path=reward.path if reward else None,
        prompts=inputs, candidates=[[texts[k] for k in pool] for texts, pool in zip(generated.texts, pools)],
        strategy=strategy, seed=seed, models=models,
    )
    judge = judge_routing(campaign_id=campaign.pk)
    made = []
    with transaction.atomic():
        for prompt, texts, flags, pool, pick in zip(prompts, generated.texts, generated.truncated, pools, picks):
            if pick is None:
                logger.info("prompt %s: fewer than two distinct candidates; skipped this round", prompt.pk)
                continue
            i, j, score = pool[pick[0]], pool[pick[1]], pick[2]
            a = Response.objects.create(prompt=prompt, source=Response.Source.POLICY, text=texts[i], policy_version=policy, truncated=flags[i])
            b = Response.objects.create(prompt=prompt, source=Response.Source.POLICY, text=texts[j], policy_version=policy, truncated=flags[j])
            made.append(Comparison.objects.create(
                prompt=prompt, response_a=a, response_b=b, required_labels=campaign.required_labels,
                policy_version=policy, reward_model_version=reward, selection_strategy=strategy, selection_score=score,
                status=Comparison.Status.JUDGING if judge else Comparison.Status.OPEN, judging_since=timezone.now() if judge else None,
            ).pk)
        if made and judge is None:
            events.comparisons_supplied(count=len(made), campaign_id=campaign.pk)
        elif made and judge.kind != Judge.Kind.REWARD_MODEL:
            events.comparisons_await_judge(comparison_ids=made)
    if made and judge is not None and judge.kind == Judge.Kind.REWARD_MODEL:
        comparisons_judge_and_route(comparison_ids=made, models=models)
    return len(made)


def candidate_pool(truncated: list[bool]) -> list[int]:
    """Return the indices the pair is chosen from: the complete candidates when at least two are, else all."""
    complete = [k for k, cut in enumerate(truncated) if not cut]
    return complete if len(complete) >= 2 else list(range(len(truncated)))
