"""The tier comparison's training sets: random pairs with one noisy draw each, and every pair by the noiseless preference."""

from __future__ import annotations

import pytest

from bench.tier_ceiling import every_pair, noisy_pairs, parse
from rm_trainer.data import DEFAULT_STRENGTH_MARGINS


def _train() -> list[dict]:
    texts = ["ok", "a fuller reply", "the fullest reply of them all", "ok"]
    return [{"prompt": f"request {k}", "replies": [{"text": t} for t in texts]} for k in range(3)]


def _longer(prompt: str, a: str, b: str) -> str:
    return "a" if len(a) > len(b) else "b" if len(b) > len(a) else "tie"


def test_every_pair_keeps_the_judges_order_and_drops_pairs_it_scores_equal():
    """Per prompt 6 pairs of 4 replies, less the equal pair: the longer reply is always the chosen one."""
    pairs = every_pair(_train(), _longer)
    assert len(pairs) == 3 * 5
    assert all(len(p.chosen) > len(p.rejected) and p.margin == DEFAULT_STRENGTH_MARGINS[1] for p in pairs)
    assert len({p.pair_id for p in pairs}) == len(pairs)


def test_noisy_pairs_follow_each_draw_drop_both_bad_and_fit_ties_as_ties():
    """A draw for B swaps the sides; a tie has no margin; "both_bad" teaches nothing; the same seed, the same set."""
    answers, shown = iter([("b", 3), ("tie", 1), ("both_bad", 1), ("a", 1)]), []

    def judge(prompt, a, b, rng):
        shown.append((a, b))
        return next(answers)

    pairs = noisy_pairs(_train(), judge, 4, seed=0)
    assert len(pairs) == 3
    first, tie, last = pairs
    assert (first.chosen, first.rejected) == shown[0][::-1] and (last.chosen, last.rejected) == shown[3]
    assert first.margin == DEFAULT_STRENGTH_MARGINS[2] and not first.tie
    assert tie.tie and tie.margin == 0.0
    assert last.margin == DEFAULT_STRENGTH_MARGINS[0]
    again = noisy_pairs(_train(), lambda p, a, b, rng: ("a", 1), 4, seed=0)
    assert [p.prompt for p in again] == [p.prompt for p in noisy_pairs(_train(), lambda p, a, b, rng: ("a", 1), 4, seed=0)]


def test_parse_names_what_is_wrong():
    with pytest.raises(SystemExit):
        parse(["--tiers", "fast,huge"])
    with pytest.raises(SystemExit):
        parse(["--full-epochs", "0"])
    assert parse(["--full-epochs", "2"]).full_epochs == [2]
