import math
from statistics import NormalDist

import numpy as np
import pytest

from feedback_app.stats.ratings import bradley_terry, bradley_terry_bootstrap, trust_score, win_rate, wilson_interval

# Natural-log strengths of five players; 400·log10(e) ≈ 173.7 rating points per unit.
TRUE_STRENGTHS = {"p0": -1.5, "p1": -0.5, "p2": 0.0, "p3": 0.7, "p4": 1.5}


def synthetic_games(*, n: int, seed: int, tie_share: float = 0.1) -> list[tuple[str, str, float]]:
    """Return n games between random pairs, won as Bradley-Terry says, a share of them tied."""
    rng = np.random.default_rng(seed)
    names = list(TRUE_STRENGTHS)
    games = []
    for _ in range(n):
        first, second = rng.choice(names, size=2, replace=False)
        if rng.random() < tie_share:
            games.append((str(first), str(second), 0.5))
            continue
        first_wins = rng.random() < 1 / (1 + math.exp(TRUE_STRENGTHS[second] - TRUE_STRENGTHS[first]))
        games.append((str(first), str(second), 1.0 if first_wins else 0.0))
    return games


def test_bradley_terry_recovers_a_clear_ordering():
    """Ratings fitted on 1500 synthetic games rank the players as their true strengths do, roughly to scale."""
    ratings = bradley_terry(synthetic_games(n=1500, seed=1))
    assert sorted(ratings, key=ratings.get) == list(TRUE_STRENGTHS)
    # Ties pull ratings together a little, so the spread only roughly matches 400·log10(e)·3 ≈ 521.
    assert 350 < ratings["p4"] - ratings["p0"] < 600


def test_bradley_terry_centres_ratings_on_1000():
    """The ratings of players with games average 1000."""
    ratings = bradley_terry(synthetic_games(n=300, seed=2))
    assert np.mean(list(ratings.values())) == pytest.approx(1000)


def test_bradley_terry_is_on_an_elo_scale():
    """Winning 10 games for each one lost puts a player about 400 points ahead."""
    ratings = bradley_terry([("a", "b", 1)] * 900 + [("a", "b", 0)] * 90)
    # The one virtual tie each against the reference shrinks the 400 by about half a point.
    assert ratings["a"] - ratings["b"] == pytest.approx(400, abs=1)


def test_bradley_terry_counts_a_tie_as_half_a_win_each():
    """Two ties give the same ratings as one win each; only ties leave two players equal."""
    assert bradley_terry([("a", "b", 0.5), ("a", "b", 0.5)]) == pytest.approx(bradley_terry([("a", "b", 1), ("a", "b", 0)]))
    assert bradley_terry([("a", "b", 0.5)] * 3) == {"a": 1000.0, "b": 1000.0}


def test_bradley_terry_is_symmetric():
    """A 3–1 record mirrors around 1000, whichever way round games are written; a cycle leaves everyone level."""
    ratings = bradley_terry([("a", "b", 1)] * 3 + [("a", "b", 0)])
    assert ratings["a"] - 1000 == pytest.approx(1000 - ratings["b"])
    assert bradley_terry([("b", "a", 0)] * 3 + [("b", "a", 1)]) == pytest.approx(ratings)
    assert bradley_terry([("a", "b", 1), ("b", "c", 1), ("c", "a", 1)]) == pytest.approx({"a": 1000, "b": 1000, "c": 1000})


def test_bradley_terry_keeps_an_unbeaten_player_finite():
    """Thanks to the prior, a player who won every game still gets a finite rating."""
    ratings = bradley_terry([("a", "b", 1)] * 100)
    assert all(math.isfinite(rating) for rating in ratings.values())
    assert ratings["a"] > ratings["b"]


def test_bradley_terry_gives_listed_players_without_games_1000():
    """A listed player without games gets 1000 and does not move the others' mean; listed players come first."""
    ratings = bradley_terry([("a", "b", 1), ("b", "c", 1)], players=["z", "b"])
    assert list(ratings) == ["z", "b", "a", "c"]
    assert ratings["z"] == 1000.0
    assert (ratings["a"] + ratings["b"] + ratings["c"]) / 3 == pytest.approx(1000)
    assert bradley_terry([], players=["x", "y"]) == {"x": 1000.0, "y": 1000.0}


@pytest.mark.parametrize("game", [("a", "a", 1), ("a", "b", 0.3), ("a", "b", 2)])
def test_bradley_terry_rejects_malformed_games(game):
    """A player against itself, or a score other than 1, 0.5 or 0, raises ValueError."""
    with pytest.raises(ValueError):
        bradley_terry([game])


def test_bradley_terry_needs_a_positive_prior():
    """prior 0 raises ValueError instead of giving a winless player strength 0."""
    with pytest.raises(ValueError, match="prior"):
        bradley_terry([("a", "b", 1)], prior=0)


def test_bradley_terry_bootstrap_intervals_contain_the_rating():
    """Every interval holds the rating from all games, and each entry counts the player's games."""
    games = synthetic_games(n=400, seed=3)
    result = bradley_terry_bootstrap(games, samples=100)
    assert {player: entry["rating"] for player, entry in result.items()} == pytest.approx(bradley_terry(games))
    for player, entry in result.items():
        assert entry["low"] < entry["rating"] < entry["high"]
        assert entry["games"] == sum(player in game[:2] for game in games)


def test_bradley_terry_bootstrap_intervals_shrink_with_more_games():
    """Four times the games give intervals about half as wide."""
    games = synthetic_games(n=300, seed=4)
    few = bradley_terry_bootstrap(games, samples=100)
    many = bradley_terry_bootstrap(games * 4, samples=100)
    for player in TRUE_STRENGTHS:
        ratio = (many[player]["high"] - many[player]["low"]) / (few[player]["high"] - few[player]["low"])
        assert 0.3 < ratio < 0.7


def test_bradley_terry_bootstrap_is_deterministic_by_seed():
    """The same seed gives the same intervals; another seed gives others."""
    games = synthetic_games(n=200, seed=5)
    assert bradley_terry_bootstrap(games, samples=50, seed=7) == bradley_terry_bootstrap(games, samples=50, seed=7)
    assert bradley_terry_bootstrap(games, samples=50, seed=7) != bradley_terry_bootstrap(games, samples=50, seed=8)


def test_bradley_terry_bootstrap_has_no_interval_without_games():
    """A player without games gets rating 1000 and no bounds."""
    result = bradley_terry_bootstrap([("a", "b", 1)] * 5, players=["z"], samples=20)
    assert result["z"] == {"rating": 1000.0, "low": None, "high": None, "games": 0}
    assert bradley_terry_bootstrap([], players=["x"]) == {"x": {"rating": 1000.0, "low": None, "high": None, "games": 0}}


def test_win_rate_reads_games_from_the_players_side():
    """Games in either order count, other games do not, and a tie is half a win."""
    games = [("a", "b", 1), ("b", "a", 1), ("b", "a", 0), ("a", "b", 0.5), ("a", "c", 1), ("c", "b", 0)]
    # a vs b: win, loss, win, tie → (2 + ½) / 4.
    assert win_rate(games, player="a", opponent="b") == {"rate": 0.625, "wins": 2, "ties": 1, "losses": 1, "n": 4}
    assert win_rate(games, player="b", opponent="a") == {"rate": 0.375, "wins": 1, "ties": 1, "losses": 2, "n": 4}


def test_win_rate_is_none_when_the_players_never_met():
    """No game between the two gives None."""
    assert win_rate([("a", "b", 1)], player="a", opponent="c") is None


def test_trust_score_weights_gold_double():
    """Gold 5/5 and consensus 8/10 give (0.7·5 + 2·5 + 8) / (5 + 2·5 + 10) = 0.86."""
    assert trust_score(gold_correct=5, gold_n=5, consensus_agree=8, consensus_n=10) == pytest.approx(21.5 / 25)
    # One wrong gold answer costs more than one disagreement: 3.5/7 against 3.5/6.
    assert trust_score(gold_correct=0, gold_n=1, consensus_agree=0, consensus_n=0) == pytest.approx(0.5)
    assert trust_score(gold_correct=0, gold_n=0, consensus_agree=0, consensus_n=1) == pytest.approx(3.5 / 6)


def test_trust_score_starts_at_the_prior_and_approaches_the_evidence():
    """No evidence gives prior_mean; much evidence tends to the observed rate, always inside [0, 1]."""
    assert trust_score(gold_correct=0, gold_n=0, consensus_agree=0, consensus_n=0) == 0.7
    assert trust_score(gold_correct=0, gold_n=0, consensus_agree=0, consensus_n=0, prior_mean=0.4) == 0.4
    assert trust_score(gold_correct=0, gold_n=1000, consensus_agree=0, consensus_n=1000) == pytest.approx(0, abs=0.002)
    assert trust_score(gold_correct=1000, gold_n=1000, consensus_agree=1000, consensus_n=1000) == pytest.approx(1, abs=0.001)


def test_trust_score_rejects_impossible_counts():
    """More correct answers than items raises ValueError."""
    with pytest.raises(ValueError):
        trust_score(gold_correct=3, gold_n=2, consensus_agree=0, consensus_n=0)


def test_wilson_interval_by_formula():
    """0 of 10 gives (0, z²/(10 + z²)); 5 of 10 is symmetric about one half."""
    z = NormalDist().inv_cdf(0.975)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(z * z / (10 + z * z)))
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(1 - high) and low < 0.5 < high


def test_wilson_interval_narrows_with_n_and_widens_with_level():
    """More trials narrow the interval; a higher level widens it; n = 0 gives None."""
    def width(interval):
        return interval[1] - interval[0]

    assert width(wilson_interval(30, 100)) < width(wilson_interval(3, 10))
    assert width(wilson_interval(3, 10, level=0.99)) > width(wilson_interval(3, 10))
    assert wilson_interval(0, 0) is None
