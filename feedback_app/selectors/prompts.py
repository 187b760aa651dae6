"""How prompts read as text."""

from __future__ import annotations

from collections.abc import Sequence

_SPEAKER = {"user": "Human", "assistant": "Assistant", "system": "System"}


def prompt_as_text(*, text: str, context: Sequence[dict[str, str]]) -> str:
    """Return the prompt as one string: the text alone, or with its conversation as an HH transcript.

    A prompt with context reads "\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nHuman: <text>\\n\\nAssistant:",
    the form of Anthropic's HH-RLHF data, so an HH import exports to what it was.
    """
    if not context:
        return text
    turns = "".join(f"\n\n{_SPEAKER.get(turn['role'], turn['role'].title())}: {turn['content']}" for turn in context)
    return f"{turns}\n\nHuman: {text}\n\nAssistant:"
