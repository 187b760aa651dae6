import math

import numpy as np
import pytest

from rm_trainer.config import SelectionConfig
from rm_trainer.selection import pair_scores, select_pairs, win_probabilities

# Four candidates, three members. All members agree 0 > 1 > 3 by wide gaps, and 2 is where they
# disagree: member 0 puts it on top, member 2 near the bottom.
CONTESTED = np.array([
    [4.0, 2.0, 6.0, -4.0],
    [4.0, 2.0, 3.0, -4.0],
    [4.0, 2.0, 0.0, -4.0],
])


def test_win_probabilities_are_the_sigmoid_of_reward_differences():
    p = win_probabilities(np.array([[1.0, 0.0]]))
    assert p[0, 0, 1] == pytest.approx(1 / (1 + math.exp(-1)))
    assert p[0, 0, 1] + p[0, 1, 0] == pytest.approx(1.0)


def test_members_that_agree_on_a_coin_flip_score_zero():
    """Identical candidates under every member: the label carries no information about the members."""
    assert pair_scores(np.zeros((3, 2)))[0, 1] == pytest.approx(0.0)


def test_a_single_member_scores_closeness_to_one_half():
    scores = pair_scores(np.array([[0.0, 0.1, 3.0]]))
    assert scores[0, 1] == pytest.approx(math.log(2), abs=1e-2)
    assert scores[0, 1] > scores[0, 2]


def test_uncertain_picks_the_pair_the_members_disagree_on():
    (pair,) = select_pairs([CONTESTED], SelectionConfig(strategy="uncertain"))
    assert 2 in (pair.i, pair.j) and pair.strategy == "uncertain"
    assert pair.score == pytest.approx(pair_scores(CONTESTED).max())


def test_uncertain_prefers_disagreement_to_agreed_ties():
    # 0 and 1 tie under every member; 2 and 3 are contested.
    rewards = np.array([[0.0, 0.0, 2.0, -2.0], [0.0, 0.0, -2.0, 2.0]])
    (pair,) = select_pairs([rewards], SelectionConfig())
    assert (pair.i, pair.j) == (2, 3)
    assert pair.p_i_wins == pytest.approx(0.5)


def test_best_vs_worst_takes_the_extremes_of_the_mean_reward():
    (pair,) = select_pairs([CONTESTED], SelectionConfig(strategy="best_vs_worst"))
    assert (pair.i, pair.j) == (0, 3)
    assert pair.p_i_wins > 0.99


def test_thompson_picks_two_distinct_arms_that_some_member_ranks_first():
    firsts = set(np.argmax(CONTESTED, axis=1))
    pairs = select_pairs([CONTESTED] * 50, SelectionConfig(strategy="thompson", seed=1))
    assert all(p.i != p.j for p in pairs)
    assert {p.i for p in pairs} <= firsts and {p.j for p in pairs} <= firsts


def test_thompson_falls_back_to_the_runner_up_when_members_agree():
    rewards = np.array([[3.0, 1.0, 2.0], [3.0, 1.0, 2.0]])
    (pair,) = select_pairs([rewards], SelectionConfig(strategy="thompson", extra={"max_tries": 3}))
    assert (pair.i, pair.j) == (0, 2)


@pytest.mark.parametrize("strategy", ["uncertain", "thompson", "best_vs_worst", "random"])
def test_the_same_seed_gives_the_same_pairs(strategy):
    rng = np.random.default_rng(0)
    rewards = [rng.normal(size=(5, 6)) for _ in range(20)]
    first = select_pairs(rewards, SelectionConfig(strategy=strategy, seed=7))
    assert select_pairs(rewards, SelectionConfig(strategy=strategy, seed=7)) == first
    if strategy in ("thompson", "random"):
        assert select_pairs(rewards, SelectionConfig(strategy=strategy, seed=8)) != first


def test_random_picks_distinct_candidates_within_range():
    pairs = select_pairs([np.zeros((2, 3))] * 30, SelectionConfig(strategy="random"))
    assert all(p.i != p.j and 0 <= min(p.i, p.j) and max(p.i, p.j) < 3 for p in pairs)
    assert len({(p.i, p.j) for p in pairs}) > 1


def test_a_prompt_with_fewer_than_two_candidates_gets_none():
    for strategy in ("uncertain", "thompson", "best_vs_worst", "random"):
        assert select_pairs([np.zeros((3, 1)), CONTESTED], SelectionConfig(strategy=strategy))[0] is None


def test_diversity_skips_a_pair_that_repeats_a_chosen_contrast():
    """The same prompt twice: the second copy is asked about another contrast."""
    embeddings = np.eye(4)
    first, second = select_pairs([CONTESTED, CONTESTED], SelectionConfig(diversity=0.9), [embeddings, embeddings])
    assert {first.i, first.j} != {second.i, second.j}
    assert first.score >= second.score


def test_without_embeddings_or_with_diversity_one_nothing_is_skipped():
    pairs = select_pairs([CONTESTED, CONTESTED], SelectionConfig())
    assert (pairs[0].i, pairs[0].j) == (pairs[1].i, pairs[1].j)
    embeddings = np.eye(4)
    pairs = select_pairs([CONTESTED, CONTESTED], SelectionConfig(diversity=1.0), [embeddings, embeddings])
    assert (pairs[0].i, pairs[0].j) == (pairs[1].i, pairs[1].j)


def test_diversity_falls_back_to_the_least_redundant_pair():
    """Two candidates only, asked twice: the one pair there is is still returned."""
    rewards = CONTESTED[:, [0, 2]]
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0]])
    first, second = select_pairs([rewards, rewards], SelectionConfig(diversity=0.5), [embeddings, embeddings])
    assert {first.i, first.j} == {second.i, second.j} == {0, 1}
