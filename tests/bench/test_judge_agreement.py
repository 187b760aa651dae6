"""The local-judge bench's bookkeeping: which pairs it asks about, abstentions, position consistency, agreement by confidence."""

from __future__ import annotations

import pytest

from bench.judge_agreement import parse, sample_pairs, summarise
from feedback_app.services.judge_protocol import Answer


def _pool() -> dict:
    replies = [{"text": t, "truncated": False} for t in ("short", "a longer reply", "the longest reply of all", "short")]
    return {"groups": [{"split": "train", "prompt": "p1", "replies": replies},
                       {"split": "heldout", "prompt": "p2", "replies": replies}]}


def _longer(prompt: str, a: str, b: str) -> str:
    return "a" if len(a) > len(b) else "b" if len(b) > len(a) else "tie"


def _orders(a_first: str, b_first: str) -> dict:
    """The detail of a verdict: the choice (in terms of A and B) when A was shown first, then when B was."""
    return {"orders": [{"shown_first": "a", "choice": a_first}, {"shown_first": "b", "choice": b_first}]}


def test_sample_pairs_takes_train_pairs_with_a_preference_only():
    """Held-out prompts are never asked about; a pair the judge scores equal is left out; the truth travels with the pair."""
    pairs = sample_pairs(_pool(), _longer, 100, seed=0)
    assert len(pairs) == 5  # 6 pairs of 4 replies, less the two equal "short" ones
    assert {p["prompt"] for p in pairs} == {"p1"}
    assert all(p["truth"] == _longer("p1", p["a"], p["b"]) for p in pairs)
    assert sample_pairs(_pool(), _longer, 2, seed=0) == pairs[:2]  # the same seed, the same order


def test_summarise_counts_abstentions_consistency_and_agreement_by_confidence():
    """Abstentions by reason; consistency over answers valid in both orders; agreement per band and threshold."""
    pairs = [{"truth": t} for t in "aabbab"]
    answers = [
        Answer(choice="a", confidence=0.95, detail=_orders("a", "a")),  # right
        Answer(choice="b", confidence=0.6, detail=_orders("b", "b")),  # wrong
        Answer(choice="b", confidence=0.8, detail=_orders("b", "b")),  # right
        Answer(reason="flipped", detail=_orders("a", "b")),
        Answer(reason="unparseable", detail={"raw": ["The first response is better.", "The first response is better."]}),
        Answer(reason="unparseable", detail={"raw": ["", ""]}),
    ]
    result = summarise(pairs, answers)
    assert result["verdicts"] == 3 and result["abstentions"] == {"flipped": 1, "unparseable": 2}
    assert result["abstention_rate"] == 0.5
    assert result["position_consistency"] == 0.75  # 3 of the 4 answered validly in both orders
    assert result["first_shown_chosen"] == 0.625  # of the 8 valid answers, 5 picked the reply shown first (the flip twice)
    assert result["agreement"] == 0.667 and result["agreement_interval"][0] < 0.667 < result["agreement_interval"][1]
    bands = {tuple(b["confidence"]): (b["verdicts"], b["agreement"]) for b in result["by_confidence"]}
    assert bands == {(0.5, 0.7): (1, 0.0), (0.7, 0.9): (1, 1.0), (0.9, 1.0): (1, 1.0)}
    at = {t["threshold"]: (t["coverage"], t["agreement"]) for t in result["by_threshold"]}
    assert at[0.5] == (0.5, 0.667) and at[0.7] == (0.333, 1.0) and at[0.9] == (0.167, 1.0)


def test_summarise_without_any_verdict_reports_none_not_zero():
    """A model that never answers validly has no agreement figure, no interval and no consistency."""
    result = summarise([{"truth": "a"}], [Answer(reason="unparseable", detail={"raw": ["", ""]})])
    assert result["agreement"] is None and result["agreement_interval"] is None
    assert result["position_consistency"] is None and result["first_shown_chosen"] is None
    assert result["abstention_rate"] == 1.0


def test_parse_rejects_a_pair_count_below_one():
    with pytest.raises(SystemExit):
        parse(["--pairs", "0"])


def test_prose_better_reads_the_reply_a_prose_answer_names_first():
    from bench.judge_agreement import prose_better

    assert prose_better("The first response is indeed better. The second is longer.") == 1
    assert prose_better("I think Response 2 is clearly better than response 1.") == 2
    assert prose_better("The second reply is better.") == 2
    assert prose_better("Both are good.") is None


def test_lenient_reading_counts_consistency_agreement_and_position_bias_of_unparseable_answers():
    """A model that always names the first shown reply flips with the order: read, never consistent, all first."""
    from bench.judge_agreement import lenient

    pairs = [{"truth": "a"}, {"truth": "b"}, {"truth": "a"}]
    answers = [Answer(reason="unparseable", detail={"raw": ["The first response is better.", "The first response is better."]}),
               Answer(reason="unparseable", detail={"raw": ["The second response is better.", "The first response is better."]}),
               Answer(reason="unparseable", detail={"raw": ["No idea.", "The first response is better."]})]
    result = lenient(pairs, answers)
    assert result == {"both_orders_read": 2, "consistent": 1, "agreement_of_consistent": 1.0, "first_shown_named": 0.75}
