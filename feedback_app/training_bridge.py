"""The one door between the site and ``rm_trainer``.

ORM rows become rm_trainer's frozen dataclasses here, and results come back as plain values.
``rm_trainer`` is imported inside the functions, never at module level, so a web process that
imports this module does not load torch until it actually scores or trains.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rm_trainer.data import PreferencePair

    from feedback_app.models import PreferenceLabel


def split_hh_dialogue(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two HH dialogues into (shared prompt, chosen reply, rejected reply)."""
    from rm_trainer.data import split_hh_dialogue

    return split_hh_dialogue(chosen, rejected)


def labels_aggregate(labels: Sequence[PreferenceLabel], *, margins: Sequence[float], weights: dict[int, float] | None = None) -> PreferencePair | None:
    """Aggregate the labels of one comparison into the pair the trainer would learn from."""
    from rm_trainer.data import LabelVote, aggregate_votes

    if not labels:
        return None
    comparison = labels[0].comparison
    prompt = comparison.prompt
    from feedback_app.selectors.prompts import prompt_as_text

    text = prompt_as_text(text=prompt.text, context=prompt.context)
    votes = [
        LabelVote(
            comparison_id=str(comparison.pk),
            prompt=text,
            response_a=comparison.response_a.text,
            response_b=comparison.response_b.text,
            winner=label.winner,
            strength=label.strength,
            weight=(weights or {}).get(label.rater_id, 1.0),
        )
        for label in labels
    ]
    pairs = aggregate_votes(votes, strength_margins=tuple(margins))
    return pairs[0] if pairs else None
