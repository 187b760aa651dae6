"""The human arena record of one policy against another, counted vote by vote."""

from __future__ import annotations

from django.db.models import Q

from feedback_app.models import Comparison, PreferenceLabel


def arena_record(*, player: str, opponent: str, mode: str | None = None) -> dict[str, int]:
    """Return {"wins", "losses", "ties", "both_bad"} of policy ``player`` against ``opponent`` from human arena votes.

    Votes on comparisons in either order count (A/B is from ``player``'s side); imported and AI
    labels (no rater) do not. ``mode`` keeps only the comparisons served in that mode
    (Comparison.policy_mode: "sample", "rerank", or "" for those made before modes were recorded);
    None counts every mode, as the rollback gate does: a trained version's votes accumulate whichever
    way it was served.
    """
    pairing = (Q(comparison__response_a__policy_version__name=player, comparison__response_b__policy_version__name=opponent)
               | Q(comparison__response_a__policy_version__name=opponent, comparison__response_b__policy_version__name=player))
    if mode is not None:
        pairing &= Q(comparison__policy_mode=mode)
    votes = PreferenceLabel.objects.filter(pairing, comparison__kind=Comparison.Kind.ARENA, rater__isnull=False).values_list(
        "comparison__response_a__policy_version__name", "winner")
    record = {"wins": 0, "losses": 0, "ties": 0, "both_bad": 0}
    for first, winner in votes:
        if winner in ("a", "b"):
            record["wins" if (winner == "a") == (first == player) else "losses"] += 1
        else:
            record["ties" if winner == "tie" else "both_bad"] += 1
    return record
