"""The local generative judge: a chat model folder (JUDGE_MODEL) that answers the rubric's questions, through rm_trainer."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings

from feedback_app.training_bridge.holder import ModelHolder


def judge_chat_answers(*, model_folder: str, questions: Sequence[list[dict]], models: ModelHolder) -> list[str]:
    """Return the local judge's greedy answer text to each question (chat messages), at most JUDGE_MAX_TOKENS long."""
    from rm_trainer.chat import chat_replies

    return chat_replies(models.judge_generator(model_folder), questions, max_new_tokens=settings.JUDGE_MAX_TOKENS)
