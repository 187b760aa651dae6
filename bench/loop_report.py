"""The loop bench's figures: the judge's win rate with its interval, the API's timestamps, a round in a line."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable


def win_rate(prefer: Callable[[str, str, str], str], prompts: list[str], new: list[str], base: list[str]) -> dict[str, Any]:
    """Return the judge's noiseless win rate of ``new`` over ``base`` (win 1, tie ½) with its 95% Wilson interval."""
    from feedback_app.stats.ratings import wilson_interval

    outcomes = [prefer(p, a, b) for p, a, b in zip(prompts, new, base)]
    wins, ties = outcomes.count("a"), outcomes.count("tie")
    n = len(outcomes)
    low, high = wilson_interval(wins + ties / 2, n)
    return {"win_rate": (wins + ties / 2) / n, "ci": [round(low, 3), round(high, 3)], "wins": wins, "ties": ties,
            "losses": n - wins - ties, "n": n}


def parse_time(value: str) -> float:  # an API timestamp as seconds since the epoch
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def print_round(r: Any) -> None:
    """Print a round of the loop bench (a ``loop_efficacy.Round``) and its training runs."""
    wr = "—" if r.win_rate_vs_base is None else f"{r.win_rate_vs_base:.3f} [{r.win_rate_ci[0]:.2f}, {r.win_rate_ci[1]:.2f}]"
    agree = "—" if r.rm_judge_agreement is None else f"{r.rm_judge_agreement:.3f}"
    cut = "—" if r.truncated_share is None else f"{r.truncated_share:.1%}"
    tiers = ", ".join(f"{mode} {tier['win_rate']:.3f}" for mode, tier in r.tiers.items())
    print(f"labels {r.labels_human:4d}  policy {r.policy} ({r.serving_mode})  rm {r.reward_model}  agreement {agree}  "
          f"win vs base {wr}  tiers [{tiers}]  cut off {cut}  seconds {r.seconds}", flush=True)
    for run in r.runs:
        print(f"    run {run['id']} {run['kind']} {run['status']} {run['seconds']} s promoted={run['promoted']} {run['metrics']} {run['error']}", flush=True)
