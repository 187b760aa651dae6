"""The data that crosses the boundary between the site and the trainer.

A rater's judgement arrives as a ``LabelVote`` in terms of the two underlying responses
("a" and "b"), never in terms of the side they were shown on. ``aggregate_votes`` turns the
votes on each comparison into at most one ``PreferencePair``:

- Votes for "a" count +weight, votes for "b" count -weight; the sign of the sum picks the
  chosen response. The pair's weight is ``|sum| / number of votes`` (1.0 for a single vote of
  full trust, 1/3 for a 2-1 split), so contested pairs pull less on the model.
- The margin is the weighted mean of the strength margins of the votes on the winning side:
  a "much better" label asks the model for a larger reward gap than a "slightly better" one.
- Ties: a comparison whose votes cancel out, with at least one "tie" vote, becomes a pair with
  ``tie=True``; the trainer fits it with a soft target of 0.5 (equal rewards), which teaches
  the model that neither response is better rather than dropping the label.
- Both bad: a "both_bad" vote says nothing about which of the two is better, so it neither
  adds to nor subtracts from the sum; it does count in the number of votes (it dilutes
  agreement). A comparison whose only votes are "both_bad" yields no pair.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from rm_trainer.transcript import split_dialogues, turns_as_text

WINNERS = ("a", "b", "tie", "both_bad")
# Reward-gap margins for strengths 1 (slightly), 2 (clearly) and 3 (much better).
DEFAULT_STRENGTH_MARGINS: tuple[float, float, float] = (1 / 3, 2 / 3, 1.0)


@dataclass(frozen=True)
class LabelVote:
    """One rater's judgement of one comparison, in terms of the underlying responses."""

    comparison_id: str
    prompt: str
    response_a: str
    response_b: str
    winner: str  # one of WINNERS
    strength: int = 2  # 1 slightly, 2 clearly, 3 much better
    weight: float = 1.0  # the rater's trust, 0..1

    def __post_init__(self) -> None:
        if self.winner not in WINNERS:
            raise ValueError(f"winner must be one of {WINNERS}, got {self.winner!r}")
        if self.strength not in (1, 2, 3):
            raise ValueError(f"strength must be 1, 2 or 3, got {self.strength!r}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"weight must be within 0..1, got {self.weight!r}")


@dataclass(frozen=True)
class PreferencePair:
    """A training example: ``chosen`` should score above ``rejected`` by at least ``margin``."""

    pair_id: str
    prompt: str
    chosen: str
    rejected: str
    margin: float = 0.0
    weight: float = 1.0
    tie: bool = False  # True: the two are equally good; fitted with a target of 0.5
    # Pairs with the same key fall on the same side of the validation split (default: the pair's own id),
    # so a pair implied by another (a rater's rewrite of a compared reply) never validates what it trained.
    split_key: str = ""


def aggregate_votes(
    votes: Iterable[LabelVote],
    *,
    strength_margins: Sequence[float] = DEFAULT_STRENGTH_MARGINS,
) -> list[PreferencePair]:
    """Return one pair per comparison that the votes decide, in first-seen order."""
    grouped: dict[str, list[LabelVote]] = defaultdict(list)
    for vote in votes:
        grouped[vote.comparison_id].append(vote)
    pairs = []
    for comparison_id, group in grouped.items():
        pair = _aggregate_one(comparison_id, group, strength_margins)
        if pair is not None:
            pairs.append(pair)
    return pairs


def _aggregate_one(
    comparison_id: str, votes: list[LabelVote], strength_margins: Sequence[float]
) -> PreferencePair | None:
    first = votes[0]
    net = sum(v.weight for v in votes if v.winner == "a") - sum(v.weight for v in votes if v.winner == "b")
    n = len(votes)
    if net == 0:
        tie_weight = sum(v.weight for v in votes if v.winner == "tie")
        if tie_weight == 0:
            return None  # only both-bad votes, or an exact a/b split with no tie vote
        return PreferencePair(comparison_id, first.prompt, first.response_a, first.response_b,
                              margin=0.0, weight=tie_weight / n, tie=True)
    side = "a" if net > 0 else "b"
    winners = [v for v in votes if v.winner == side]
    total = sum(v.weight for v in winners)
    margin = sum(v.weight * strength_margins[v.strength - 1] for v in winners) / total if total else 0.0
    chosen, rejected = (first.response_a, first.response_b) if side == "a" else (first.response_b, first.response_a)
    return PreferencePair(comparison_id, first.prompt, chosen, rejected, margin=margin, weight=abs(net) / n)


def is_validation(pair_id: str, fraction: float) -> bool:
    """Return whether a pair belongs to the fixed validation split.

    The split depends only on the pair id, so a pair never moves between refits.
    """
    digest = hashlib.sha256(str(pair_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_pairs(pairs: Sequence[PreferencePair], fraction: float) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Return (train, validation) by ``is_validation`` of each pair's split key (or its id)."""
    train, validation = [], []
    for pair in pairs:
        (validation if is_validation(pair.split_key or pair.pair_id, fraction) else train).append(pair)
    return train, validation


def read_preference_file(path: str | Path, *, skip_bad: bool = False) -> tuple[list[PreferencePair], int]:
    """Read a TRL (``prompt``/``chosen``/``rejected``) or HH (``chosen``/``rejected`` dialogues) JSONL file.

    ``.gz`` files are read compressed; TRL's conversational form (lists of ``{"role", "content"}``)
    becomes HH-style turns. A pair's id is its 0-based line number. A bad line raises ValueError
    naming it, or with ``skip_bad`` is counted and skipped; returns (pairs, skipped lines).
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    pairs, skipped = [], 0
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if "prompt" in row:
                    prompt, chosen, rejected = (_turns_text(row[key]) for key in ("prompt", "chosen", "rejected"))
                else:
                    prompt, chosen, rejected = split_dialogues(row["chosen"], row["rejected"])
            except (ValueError, KeyError, TypeError) as exc:
                if not skip_bad:
                    raise ValueError(f"line {number}: {exc!s} ({type(exc).__name__})") from None
                skipped += 1
                continue
            pairs.append(PreferencePair(pair_id=str(number - 1), prompt=prompt, chosen=chosen, rejected=rejected))
    return pairs, skipped


def _turns_text(value: object) -> str:
    """Return a TRL field as text: a string as it is, a list of messages as HH-style turns."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) and isinstance(m.get("content"), str) and isinstance(m.get("role"), str) for m in value):
        return turns_as_text(value)
    raise TypeError("prompt, chosen and rejected must be strings or lists of {role, content} messages")
