"""Asking a judge: the reward-model judge's answer, one verdict per version and comparison, and the verdict cache."""

import pytest

from feedback_app import training_bridge
from feedback_app.models import Comparison, Judge, Prompt, Response, RewardModelVersion, Verdict
from feedback_app.services.judges import JudgeUnavailable, judge_version_current
from feedback_app.services.verdicts import rm_answer, verdict_cache_key, verdicts_give

pytestmark = pytest.mark.django_db


def test_the_reward_model_answer_is_the_likelier_side_less_the_spread():
    """Confidence is max(P, 1 − P) less the members' spread, never below one half; a dead heat abstains."""
    answer = rm_answer(prob_a_wins=0.2, spread=0.05)
    assert answer.choice == "b" and answer.confidence == pytest.approx(0.75) and answer.detail["orders"] == "symmetric"
    assert rm_answer(prob_a_wins=0.6, spread=0.3).confidence == 0.5
    tie = rm_answer(prob_a_wins=0.5, spread=0.0)
    assert tie.choice == "" and tie.reason == "tie"


def test_the_cache_key_covers_prompt_context_and_replies_in_order():
    key = verdict_cache_key(prompt="p", context=[], response_a="x", response_b="y")
    assert key == verdict_cache_key(prompt="p", context=[], response_a="x", response_b="y")
    assert key != verdict_cache_key(prompt="p", context=[], response_a="y", response_b="x")
    assert key != verdict_cache_key(prompt="p", context=[{"role": "user", "content": "hi"}], response_a="x", response_b="y")


@pytest.fixture
def asked(monkeypatch):
    calls = []

    def judge(*, version_name, version_path, items, models):
        calls.append((version_name, len(items)))
        return [(0.9, 0.01)] * len(items)

    monkeypatch.setattr(training_bridge, "comparisons_rm_judge", judge)
    return calls


def test_a_version_asks_once_and_the_same_texts_come_from_the_cache(make_judge, make_comparisons, asked):
    """A second call reads the stored verdicts; another comparison with the same texts copies the cached verdict unasked;
    a new reward model is a new version, asked afresh."""
    RewardModelVersion.objects.create(name="rm-1", path="reward/rm-1", status="active")
    judge = make_judge("rm", kind=Judge.Kind.REWARD_MODEL)
    (comparison,) = make_comparisons(1)
    first = verdicts_give(judge=judge, comparisons=[comparison])[comparison.pk]
    assert first.choice == "a" and first.confidence == pytest.approx(0.89) and first.judge_version.version == "rm-1"
    assert verdicts_give(judge=judge, comparisons=[comparison])[comparison.pk] == first and asked == [("rm-1", 1)]
    prompt = Prompt.objects.create(text=comparison.prompt.text)
    twin = Comparison.objects.create(prompt=prompt, response_a=Response.objects.create(prompt=prompt, text=comparison.response_a.text),
                                     response_b=Response.objects.create(prompt=prompt, text=comparison.response_b.text))
    copied = verdicts_give(judge=judge, comparisons=[twin])[twin.pk]
    assert copied.pk != first.pk and copied.choice == "a" and copied.detail["cached_from"] == first.pk and len(asked) == 1
    RewardModelVersion.objects.filter(name="rm-1").update(status="retired")
    RewardModelVersion.objects.create(name="rm-2", path="reward/rm-2", status="active")
    assert verdicts_give(judge=judge, comparisons=[comparison])[comparison.pk].judge_version.version == "rm-2"
    assert asked[-1] == ("rm-2", 1) and Verdict.objects.filter(comparison=comparison).count() == 2


def test_the_reward_model_judge_needs_an_active_reward_model(make_judge):
    with pytest.raises(JudgeUnavailable):
        judge_version_current(judge=make_judge("rm", kind=Judge.Kind.REWARD_MODEL))


def test_a_local_judge_asks_its_model_in_both_orders(make_judge, make_comparisons, settings, monkeypatch):
    """JUDGE_MODEL's answers go through the rubric's parser: consistent in both orders, a verdict; unset, the judge cannot judge."""
    asked = []

    def answers(*, model_folder, questions, models):
        asked.append((model_folder, len(questions)))
        return ['{"better": 2, "confidence": 0.85}', '{"better": 1, "confidence": 0.95}'] * (len(questions) // 2)

    monkeypatch.setattr(training_bridge, "judge_chat_answers", answers)
    judge = make_judge("qwen", kind=Judge.Kind.LOCAL)
    (comparison,) = make_comparisons(1)
    settings.JUDGE_MODEL = ""
    with pytest.raises(JudgeUnavailable, match="JUDGE_MODEL is not set"):
        verdicts_give(judge=judge, comparisons=[comparison])
    settings.JUDGE_MODEL = "/models/qwen"
    verdict = verdicts_give(judge=judge, comparisons=[comparison])[comparison.pk]
    assert (verdict.choice, verdict.confidence, verdict.detail["consistent"]) == ("b", 0.85, True) and asked == [("/models/qwen", 2)]


def test_a_real_tiny_local_model_s_unparseable_answers_are_abstentions(make_judge, make_comparisons, settings, tmp_path):
    """A tiny random Llama (built offline) writes no valid answer: the verdict abstains, "unparseable", and keeps what it wrote."""
    from tests.rm_trainer.tiny_llama import tiny_llama, tiny_tokenizer

    tiny_llama(max_positions=4096).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    settings.JUDGE_MODEL, settings.JUDGE_MAX_TOKENS, settings.TRAINING_DEVICE = str(tmp_path), 16, "cpu"
    (comparison,) = make_comparisons(1)
    verdict = verdicts_give(judge=make_judge("tiny", kind=Judge.Kind.LOCAL), comparisons=[comparison])[comparison.pk]
    assert verdict.abstained and verdict.reason == "unparseable" and len(verdict.detail["raw"]) == 2
