"""Ratings from pairwise games (Bradley-Terry on an Elo-like scale, win rates) and rater trust.

A game is (player_i, player_j, score_i): score 1 when i won, 0 when j won, 0.5 for a tie.
Players are any hashable names: policies, models, prompts' responses.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from statistics import NormalDist

import numpy as np

Game = tuple[Hashable, Hashable, float]

CENTRE = 1000.0
SCALE = 400.0  # as in Elo: 400 points is odds of 10 to 1
SCORES = (0, 0.5, 1)
TOLERANCE = 1e-10  # largest change of any log-strength at which the MM iteration has converged


def bradley_terry(games: Sequence[Game], *, players: Sequence[Hashable] | None = None, iterations: int = 10_000, prior: float = 1.0) -> dict[Hashable, float]:
    """Return each player's Bradley-Terry rating, 400·log10(strength), shifted so that the mean is 1000.

    Strengths are fitted by Hunter's (2004) MM algorithm, with a tie counting as half a win for each
    side. Each player also plays `prior` virtual ties against a fixed reference of strength 1, so a
    player who won (or lost) every game keeps a finite rating and groups that never met share one
    scale. The mean is over players with at least one game; a player without games gets 1000.
    Players come in the order of `players`, then any others in order of first appearance. The
    iteration stops at convergence or after `iterations` updates.
    """
    roster = _roster(games=games, players=players)
    first, second, scores = _encode(games=games, roster=roster)
    strengths = _fit_strengths(first=first, second=second, scores=scores, size=len(roster), iterations=iterations, prior=prior)
    ratings = _ratings(strengths=strengths, game_counts=_game_counts(first=first, second=second, size=len(roster)))
    return dict(zip(roster, ratings.tolist()))


def bradley_terry_bootstrap(
    games: Sequence[Game],
    *,
    players: Sequence[Hashable] | None = None,
    samples: int = 200,
    seed: int = 0,
    level: float = 0.95,
    prior: float = 1.0,
) -> dict[Hashable, dict]:
    """Return each player's rating with a percentile interval from resampling games with replacement.

    Entries are {"rating", "low", "high", "games"}: the rating from all games (as bradley_terry),
    the bounds holding `level` of the resampled ratings between them, and the player's number of
    games. A resample in which a player has no game does not count towards that player's interval;
    a player without games has low and high None. Being a percentile interval, it need not be
    centred on the rating. The same seed gives the same result.
    """
    roster = _roster(games=games, players=players)
    first, second, scores = _encode(games=games, roster=roster)
    counts = _game_counts(first=first, second=second, size=len(roster))
    fit = {"size": len(roster), "iterations": 10_000, "prior": prior}
    ratings = _ratings(strengths=_fit_strengths(first=first, second=second, scores=scores, **fit), game_counts=counts)
    rng = np.random.default_rng(seed)
    resampled = np.full((samples if len(first) else 0, len(roster)), np.nan)
    for row in resampled:
        pick = rng.integers(0, len(first), size=len(first))
        picked_counts = _game_counts(first=first[pick], second=second[pick], size=len(roster))
        strengths = _fit_strengths(first=first[pick], second=second[pick], scores=scores[pick], **fit)
        row[:] = np.where(picked_counts > 0, _ratings(strengths=strengths, game_counts=picked_counts), np.nan)
    tail = 100 * (1 - level) / 2
    result = {}
    for position, player in enumerate(roster):
        column = resampled[:, position]
        column = column[~np.isnan(column)]
        low, high = np.percentile(column, [tail, 100 - tail]).tolist() if counts[position] and column.size else (None, None)
        result[player] = {"rating": float(ratings[position]), "low": low, "high": high, "games": int(counts[position])}
    return result


def win_rate(games: Sequence[Game], *, player: Hashable, opponent: Hashable) -> dict | None:
    """Return player's record against opponent, a tie counting half in "rate"; None if they never met.

    The record is {"rate", "wins", "ties", "losses", "n"}; games in either order count.
    """
    record = {1: 0, 0.5: 0, 0: 0}
    for first, second, score in games:
        _check_score(score)
        if (first, second) == (player, opponent):
            record[score] += 1
        elif (first, second) == (opponent, player):
            record[1 - score] += 1
    wins, ties, losses = record[1], record[0.5], record[0]
    n = wins + ties + losses
    if n == 0:
        return None
    return {"rate": (wins + ties / 2) / n, "wins": wins, "ties": ties, "losses": losses, "n": n}


def trust_score(
    *,
    gold_correct: int,
    gold_n: int,
    consensus_agree: int,
    consensus_n: int,
    prior_mean: float = 0.7,
    prior_strength: float = 5.0,
    gold_weight: float = 2.0,
) -> float:
    """Return a rater's smoothed accuracy in [0, 1] from gold answers and agreement with consensus.

    The estimate is (prior_mean·prior_strength + gold_weight·gold_correct + consensus_agree) /
    (prior_strength + gold_weight·gold_n + consensus_n): the prior acts as prior_strength ratings at
    prior_mean, and a gold item counts gold_weight times because it is ground truth while consensus
    is only the other raters. A rater with no evidence gets prior_mean.
    """
    if not (0 <= gold_correct <= gold_n and 0 <= consensus_agree <= consensus_n):
        raise ValueError("counts must satisfy 0 <= correct <= n")
    if not (0 <= prior_mean <= 1 and prior_strength > 0 and gold_weight >= 0):
        raise ValueError("need 0 <= prior_mean <= 1, prior_strength > 0 and gold_weight >= 0")
    evidence = gold_weight * gold_correct + consensus_agree
    weight = gold_weight * gold_n + consensus_n
    return (prior_mean * prior_strength + evidence) / (prior_strength + weight)


def wilson_interval(successes: int, n: int, *, level: float = 0.95) -> tuple[float, float] | None:
    """Return the Wilson score interval for a proportion of successes out of n; None when n is 0."""
    if not 0 <= successes <= n:
        raise ValueError("need 0 <= successes <= n")
    if n == 0:
        return None
    z = NormalDist().inv_cdf(0.5 + level / 2)
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half_width = z / (1 + z * z / n) * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    # At 0 or n successes one bound is exactly 0 or 1; rounding would leave it a hair off.
    low = 0.0 if successes == 0 else centre - half_width
    high = 1.0 if successes == n else centre + half_width
    return low, high


def _check_score(score: float) -> None:
    """Reject a score other than 1, 0.5 or 0."""
    if score not in SCORES:
        raise ValueError(f"a game's score must be 1, 0.5 or 0, not {score!r}")


def _roster(*, games: Sequence[Game], players: Sequence[Hashable] | None) -> list[Hashable]:
    """Return the listed players, then those who appear only in games, each once."""
    return list(dict.fromkeys([*(players or ()), *(name for first, second, _ in games for name in (first, second))]))


def _encode(*, games: Sequence[Game], roster: list[Hashable]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the games as arrays: first player's index, second player's index, first player's score."""
    index = {player: position for position, player in enumerate(roster)}
    for first, second, score in games:
        _check_score(score)
        if first == second:
            raise ValueError(f"{first!r} cannot play against itself")
    first = np.array([index[game[0]] for game in games], dtype=int)
    second = np.array([index[game[1]] for game in games], dtype=int)
    scores = np.array([game[2] for game in games], dtype=float)
    return first, second, scores


def _game_counts(*, first: np.ndarray, second: np.ndarray, size: int) -> np.ndarray:
    """Return each player's number of games."""
    return np.bincount(first, minlength=size) + np.bincount(second, minlength=size)


def _fit_strengths(*, first: np.ndarray, second: np.ndarray, scores: np.ndarray, size: int, iterations: int, prior: float) -> np.ndarray:
    """Return Bradley-Terry strengths by MM, with `prior` virtual ties against a reference of strength 1.

    Hunter's update is γ_i ← W_i / Σ_j n_ij / (γ_i + γ_j); the reference adds prior/2 to W_i and
    prior / (γ_i + 1) to the sum, and being fixed it also pins the scale. Only the weak prior sees
    the common scale of all strengths, so plain MM creeps along it; each update is followed by the
    best common rescaling, which keeps every step uphill and the fixed point unchanged.
    """
    if prior <= 0:
        raise ValueError("prior must be positive, or a player with no wins has strength 0")
    wins = np.bincount(first, weights=scores, minlength=size) + np.bincount(second, weights=1 - scores, minlength=size) + prior / 2
    met = np.zeros((size, size))
    np.add.at(met, (first, second), 1)
    met += met.T
    strengths = np.ones(size)
    for _ in range(iterations):
        updated = wins / ((met / (strengths[:, None] + strengths[None, :])).sum(axis=1) + prior / (strengths + 1))
        updated = updated * _best_common_scale(updated)
        converged = np.max(np.abs(np.log(updated / strengths)), initial=0.0) < TOLERANCE
        strengths = updated
        if converged:
            break
    return strengths


def _best_common_scale(strengths: np.ndarray) -> float:
    """Return the c that maximises the prior's likelihood of c·γ (the games' likelihood ignores c).

    With every player tied against the reference, the optimum has Σ_i c·γ_i / (c·γ_i + 1) = n/2;
    solve for log c by Newton's method, whose objective here is concave.
    """
    log_strengths = np.log(strengths)
    shift = 0.0
    for _ in range(100):
        shares = 1 / (1 + np.exp(-(log_strengths + shift)))
        step = float((shares.sum() - len(shares) / 2) / (shares * (1 - shares)).sum())
        shift -= max(-2.0, min(2.0, step))  # a bounded step cannot overshoot far where the slope is flat
        if abs(step) < 1e-12:
            break
    return math.exp(shift)


def _ratings(*, strengths: np.ndarray, game_counts: np.ndarray) -> np.ndarray:
    """Return 400·log10(strength), shifted so players with games average 1000; others get 1000."""
    ratings = SCALE * np.log10(strengths)
    played = game_counts > 0
    if played.any():
        ratings = ratings - ratings[played].mean() + CENTRE
    ratings[~played] = CENTRE
    return ratings
