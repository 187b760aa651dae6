"""A rater's rewrite: a reply as the rater would have written it, stored as a ``human_edit`` response.

A rewrite starts from the reply the rater chose (a or b), from the one they name (a tie: either;
both bad: either, or none, written from scratch). It says the rewrite is better than both
replies, which training and the TRL export read as extra pairs (``training_bridge.rewrite_pairs``).
A text that is the same as one of the two replies, once line endings and the white space around
it are set aside, is not a rewrite: the label is stored without one.
"""

from __future__ import annotations

from feedback_app.models import Comparison, Response, Winner


def rewrite_text_normal(text: str) -> str:
    """Return ``text`` as a rewrite stores it: newlines as "\\n", no white space around it."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def rewrite_start(*, comparison: Comparison, winner: str, edited_from: str) -> Response | None:
    """Return the reply a rewrite starts from: the chosen one for a or b, else the one ``edited_from`` ("a", "b" or "") names."""
    side = winner if winner in (Winner.A, Winner.B) else edited_from
    return {Winner.A: comparison.response_a, Winner.B: comparison.response_b}.get(side)


def rewrite_create(*, comparison: Comparison, text: str, start: Response | None) -> Response | None:
    """Store ``text`` as a rewrite on ``comparison``'s prompt; return None when it is no rewrite (blank, or one of the replies).

    Call inside the transaction that writes the label, so that the two commit together.
    """
    text = rewrite_text_normal(text)
    if not text or text in (rewrite_text_normal(comparison.response_a.text), rewrite_text_normal(comparison.response_b.text)):
        return None
    return Response.objects.create(prompt_id=comparison.prompt_id, text=text, source=Response.Source.HUMAN_EDIT, edited_from=start)


def rewrite_delete(*, response_id: int | None) -> None:
    """Delete a withdrawn label's rewrite (None: it had none). Call after deleting the label, in its transaction."""
    if response_id is not None:
        Response.objects.filter(pk=response_id, source=Response.Source.HUMAN_EDIT).delete()
