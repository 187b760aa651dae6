"""Asking a judge about comparisons: one verdict per judge version and comparison, cached by (version, prompt, replies).

A remote judge is asked through ``judge_remote``, a local one (JUDGE_MODEL) through the bridge's
chat model, both with ``judge_protocol``'s rubric, in both orders; only on the judge queue
(services.ai_routing, tasks) or from the command line, never in a web process.

The reward-model judge reads the active ensemble through the bridge: P(A beats B) and its members'
spread. Its verdict is the likelier side, its confidence that side's probability less the spread
(members that disagree make a verdict less sure), never below one half; a dead heat abstains. The
ensemble scores each reply on its own, so asking in the other order gives 1 − P: it is position
consistent by construction.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction

from feedback_app import training_bridge
from feedback_app.models import DEFAULT_CAMPAIGN_ID, Comparison, Judge, JudgeVersion, Verdict
from feedback_app.selectors.judges import verdict_cached
from feedback_app.selectors.training import reward_model_active
from feedback_app.services.judge_protocol import Answer, both_orders_answers
from feedback_app.services.judge_remote import ChatClient
from feedback_app.services.judges import JudgeUnavailable, judge_version_current
from feedback_app.services.labeling import LabelSubmission

logger = logging.getLogger(__name__)


def verdict_cache_key(*, prompt: str, context: Sequence[dict], response_a: str, response_b: str) -> str:
    """Return the hash that identifies a question to a judge: the prompt (with its context) and the two replies in order."""
    payload = json.dumps([prompt, list(context or []), response_a, response_b], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def rm_answer(*, prob_a_wins: float, spread: float) -> Answer:
    """Return the reward-model judge's answer from the ensemble's P(A beats B) and its members' spread."""
    detail = {"prob_a_wins": round(prob_a_wins, 6), "spread": round(spread, 6), "orders": "symmetric"}
    if prob_a_wins == 0.5:
        return Answer(reason=Verdict.Reason.TIE, detail=detail)
    choice = "a" if prob_a_wins > 0.5 else "b"
    return Answer(choice=choice, confidence=round(max(0.5, max(prob_a_wins, 1 - prob_a_wins) - spread), 6), detail=detail)


def verdicts_give(*, judge: Judge, comparisons: Sequence[Comparison], models: training_bridge.ModelHolder | None = None,
                  backfill: bool = False, campaign_id: int = DEFAULT_CAMPAIGN_ID) -> dict[int, Verdict]:
    """Return the judge's verdict on each comparison (all of campaign ``campaign_id``), by id: stored before, copied from the cache, or asked now.

    Raise JudgeUnavailable when the judge cannot judge at all (no active reward model, no endpoint).
    """
    version = judge_version_current(judge=judge, campaign_id=campaign_id)
    verdicts = {v.comparison_id: v for v in Verdict.objects.filter(judge_version=version, comparison__in=comparisons)}
    to_ask = []
    for comparison in comparisons:
        if comparison.pk in verdicts:
            continue
        key = verdict_cache_key(prompt=comparison.prompt.text, context=comparison.prompt.context,
                                response_a=comparison.response_a.text, response_b=comparison.response_b.text)
        hit = verdict_cached(judge_version_id=version.pk, cache_key=key)
        if hit is not None:
            answer = Answer(hit.choice, hit.confidence, hit.reason, {**hit.detail, "cached_from": hit.pk})
            verdicts[comparison.pk] = _verdict_store(version=version, comparison=comparison, key=key, answer=answer, backfill=backfill)
        else:
            to_ask.append((comparison, key))
    answers = _ask(judge=judge, version=version, comparisons=[c for c, _ in to_ask], models=models, campaign_id=campaign_id) if to_ask else []
    for (comparison, key), answer in zip(to_ask, answers):
        verdicts[comparison.pk] = _verdict_store(version=version, comparison=comparison, key=key, answer=answer, backfill=backfill)
    return verdicts


def _verdict_store(*, version: JudgeVersion, comparison: Comparison, key: str, answer: Answer, backfill: bool) -> Verdict:
    with transaction.atomic():
        return Verdict.objects.get_or_create(judge_version=version, comparison=comparison, defaults={
            "cache_key": key, "choice": answer.choice, "confidence": answer.confidence, "abstained": not answer.choice,
            "reason": answer.reason, "detail": answer.detail, "backfill": backfill,
        })[0]


def _ask(*, judge: Judge, version: JudgeVersion, comparisons: list[Comparison], models: training_bridge.ModelHolder | None,
         campaign_id: int) -> list[Answer]:
    items = [(c.prompt.text, c.prompt.context, c.response_a.text, c.response_b.text) for c in comparisons]
    if judge.kind == Judge.Kind.REWARD_MODEL:
        reward = reward_model_active(campaign_id=campaign_id)
        if reward is None or reward.name != version.version:
            raise JudgeUnavailable("the reward model changed while the judge was asked; ask again")
        scored = training_bridge.comparisons_rm_judge(version_name=reward.name, version_path=reward.path, items=items,
                                                      models=models or training_bridge.ModelHolder())
        return [rm_answer(prob_a_wins=p, spread=s) for p, s in scored]
    if judge.kind == Judge.Kind.REMOTE:
        if not settings.JUDGE_URL:
            raise JudgeUnavailable("JUDGE_URL is not set: there is no remote judge")
        if judge.remote_enabled_at is None:
            raise JudgeUnavailable(f"no admin has enabled the remote judge {judge.name} (it sends text off this machine)")
        return both_orders_answers(ask=ChatClient.from_settings().ask_many, items=items, criteria=LabelSubmission.criterion_names())
    # Judge.Kind.LOCAL: the chat model folder JUDGE_MODEL, loaded once per worker process
    if not settings.JUDGE_MODEL:
        raise JudgeUnavailable("JUDGE_MODEL is not set: there is no local judge")
    holder = models or training_bridge.ModelHolder()

    def ask(questions: list) -> list:
        return training_bridge.judge_chat_answers(model_folder=settings.JUDGE_MODEL, questions=questions, models=holder)

    return both_orders_answers(ask=ask, items=items, criteria=LabelSubmission.criterion_names())
