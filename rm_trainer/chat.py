"""A chat model answering whole conversations greedily: what a local generative judge says to its rubric."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rm_trainer.config import GenerationConfig
from rm_trainer.generator import Generator, PromptItem

JUDGE_PROMPT_TOKENS = 4096  # a rubric and two replies; the prompt is cut from the left only beyond this


def chat_replies(
    generator: Generator, conversations: Sequence[Sequence[Mapping[str, str]]], *, max_new_tokens: int, batch_size: int = 4,
) -> list[str]:
    """Return the model's greedy reply to each conversation (its own system turn, if any, then the turns; the last is the user's)."""
    items = [PromptItem(prompt=turns[-1]["content"], context=tuple(dict(t) for t in turns[:-1])) for turns in conversations]
    config = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0, repetition_penalty=1.0, batch_size=batch_size,
                              max_prompt_tokens=JUDGE_PROMPT_TOKENS, system_prompt="", device=str(generator.device))
    result = generator.generate_with_stats(items, 1, config)
    return [samples[0] if samples else "" for samples in result.raw]
