"""The HH-RLHF transcript format: a conversation as "\\n\\nHuman: ...\\n\\nAssistant: ..." text, and back.

Anthropic's HH-RLHF data writes a dialogue as one string of turns, each "\\n\\n<Speaker>: <text>".
The reward model reads prompts in that form, the site exports them in it, and HH imports are
split from it; this module is the one place that knows the format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

SPEAKERS = {"user": "Human", "assistant": "Assistant", "system": "System"}
ASSISTANT_CUE = "\n\nAssistant:"
_TURN = re.compile(r"\n\n(Human|Assistant): ")


def turns_as_text(turns: Sequence[Mapping[str, str]]) -> str:
    """Return role/content turns as HH text, each "\\n\\n<Speaker>: <content>" (an unknown role is title-cased)."""
    return "".join(f"\n\n{SPEAKERS.get(turn['role'], turn['role'].title())}: {turn['content']}" for turn in turns)


def prompt_as_text(*, text: str, context: Sequence[Mapping[str, str]]) -> str:
    """Return a prompt as one string: the text alone, or with its conversation as an HH transcript.

    A prompt with context reads "\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nHuman: <text>\\n\\nAssistant:",
    the form of Anthropic's HH-RLHF data, so an HH import exports to what it was.
    """
    if not context:
        return text
    return f"{turns_as_text(context)}\n\nHuman: {text}{ASSISTANT_CUE}"


def text_as_turns(dialogue: str) -> list[dict[str, str]]:
    """Split an HH transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") into role/content turns.

    A trailing empty "Assistant:" (the reply still to be written) is dropped.
    """
    parts = _TURN.split(dialogue if dialogue.endswith(" ") or not dialogue.endswith(":") else dialogue + " ")
    turns = []
    for speaker, content in zip(parts[1::2], parts[2::2]):
        turns.append({"role": "user" if speaker == "Human" else "assistant", "content": content.strip()})
    if turns and turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
        turns.pop()
    return turns


def split_dialogues(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Return (prompt, chosen reply, rejected reply) of an HH-RLHF pair of whole dialogues.

    The prompt is the shared prefix up to and including its last "\\n\\nAssistant:"; the
    replies are the remainders, without their leading whitespace. Raise ValueError when the
    two dialogues share no Assistant turn.
    """
    shared = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        shared += 1
    end = chosen.rfind(ASSISTANT_CUE, 0, shared)
    if end < 0:
        raise ValueError(f"the two dialogues share no {ASSISTANT_CUE!r} turn, so there is no common prompt")
    end += len(ASSISTANT_CUE)
    return chosen[:end], chosen[end:].lstrip(), rejected[end:].lstrip()
