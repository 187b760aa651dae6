"""The tier comparison's training sets: random pairs with one noisy draw each, turned into the pairs a refit trains on."""

from __future__ import annotations

import pytest

from bench.strategy_efficacy import label_sides
from bench.tier_ceiling import noisy_labels, parse, preference_pairs
from rm_trainer.data import DEFAULT_STRENGTH_MARGINS


class _Sim:
    """The part of ``Simulation`` the training sets use: train groups, a judge draw per pair, every pair's label."""

    def __init__(self, answers=()) -> None:
        texts = ["ok", "a fuller reply", "the fullest reply of them all", "ok"]
        self.train = [{"prompt": f"request {k}", "replies": [{"text": t} for t in texts]} for k in range(3)]
        self.answers, self.shown = iter(answers), []

    def label(self, group, i, j, rng):
        self.shown.append((group["replies"][i]["text"], group["replies"][j]["text"]))
        choice, strength = next(self.answers)
        return {"group": id(group), "i": i, "j": j, "choice": choice, "strength": strength, "truncated": 0}


def test_noisy_labels_turn_into_pairs_as_a_refit_reads_them():
    """A draw for B swaps the sides; a tie has no margin; "both_bad" teaches nothing; the strength sets the margin."""
    sim = _Sim([("b", 3), ("tie", 1), ("both_bad", 1), ("a", 1)])
    pairs = preference_pairs(sim, noisy_labels(sim, 4, seed=0))
    assert len(pairs) == 3
    first, tie, last = pairs
    assert (first.chosen, first.rejected) == sim.shown[0][::-1] and (last.chosen, last.rejected) == sim.shown[3]
    assert first.margin == DEFAULT_STRENGTH_MARGINS[2] and not first.tie
    assert tie.tie and tie.margin == 0.0
    assert last.margin == DEFAULT_STRENGTH_MARGINS[0]
    assert len({p.pair_id for p in pairs}) == 3


def test_noisy_labels_are_the_same_for_the_same_seed():
    def prompts(seed: int) -> list[str]:
        sim = _Sim([("a", 1)] * 5)
        return [sim.train.index(next(g for g in sim.train if id(g) == lab["group"])) for lab in noisy_labels(sim, 5, seed)]

    assert prompts(0) == prompts(0)


def test_label_sides_reads_the_chosen_and_rejected_reply_of_a_label():
    assert label_sides({"i": 1, "j": 3, "choice": "a", "strength": 2}) == (1, 3, False, DEFAULT_STRENGTH_MARGINS[1])
    assert label_sides({"i": 1, "j": 3, "choice": "b", "strength": 1}) == (3, 1, False, DEFAULT_STRENGTH_MARGINS[0])
    assert label_sides({"i": 1, "j": 3, "choice": "tie", "strength": 1}) == (1, 3, True, 0.0)


def test_parse_names_what_is_wrong():
    with pytest.raises(SystemExit):
        parse(["--tiers", "fast,huge"])
    with pytest.raises(SystemExit):
        parse(["--full-epochs", "0"])
    assert parse(["--full-epochs", "2"]).full_epochs == [2]
