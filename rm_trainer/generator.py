"""The policy: a causal language model that writes candidate responses.

A policy loads from one of three places:
- a GGUF file in a folder (the default SmolLM2-135M-Instruct), dequantised to float32;
- a plain transformers folder of any local causal LM (e.g. Qwen2.5-0.5B-Instruct);
- a policy checkpoint of the store, kind "policy". Its manifest says its ``format``:
  "full" (a plain transformers model and tokenizer, written by ``materialise_base_policy``) or
  "lora" (a LoRA adapter written by ``rm_trainer.dpo``, whose manifest names its ``parent``
  version in the same kind folder). A "lora" version loads by walking the parent chain down to
  its "full" root and merging each adapter in order, root first, in float32.

Sampling is made reliable by: left padding with an explicit attention mask; a pad id that is a
real token; stopping on every end-of-turn token the tokenizer knows (not only ``eos``);
suppressing the other special tokens and the embedding rows past the tokenizer's vocabulary
(Qwen pads its embedding matrix; a sampled unused row decodes to nothing or to stray bytes);
a repetition penalty over the generated tokens only (the model's own prompt, its ``<|im_end|>``
turn ends and the left pads must not be penalised); bf16 weights only where bf16 is native
(CUDA, CPUs with AMX or AVX-512 BF16; see ``runtime_dtype``) and float32 logits for sampling; and the RNG seeded
from the config inside a fork, so a run never depends on, nor disturbs, the caller's RNG state. The token-by-token
loop is ``rm_trainer.decoding``'s: a row leaves the batch at its stop token, and a token is drawn among the top-k best.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from rm_trainer.config import GenerationConfig
from rm_trainer.decoding import Sampling, sample_rows
from rm_trainer.device import bf16_native, resolve_device
from rm_trainer.store import MANIFEST, CheckpointStore, read_manifest

POLICY_KIND = "policy"
END_OF_TURN_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|im_start|>", "<|eot_id|>", "<|end_of_text|>", "</s>")


@dataclass(frozen=True)
class PromptItem:
    """A prompt to answer, after the earlier turns of its conversation (if any)."""

    prompt: str
    context: tuple[Mapping[str, str], ...] = ()  # {"role": "user"|"assistant"|"system", "content": ...}

    def __post_init__(self) -> None:
        object.__setattr__(self, "context", tuple(self.context))
        for turn in self.context:
            if set(turn) != {"role", "content"}:
                raise ValueError(f"a context turn needs exactly 'role' and 'content', got {sorted(turn)}")


@dataclass(frozen=True)
class GenerationResult:
    """Cleaned texts per prompt, the raw samples, and what producing them cost."""

    texts: list[list[str]]  # per prompt: stripped, empties dropped, exact duplicates dropped
    raw: list[list[str]]  # per prompt: all n samples, stripped, in sampling order
    prompt_tokens: int
    new_tokens: int  # generated tokens up to and including each row's stop token
    seconds: float
    truncated: list[list[bool]] = field(default_factory=list)  # per text: no stop token within the budget
    raw_truncated: list[list[bool]] = field(default_factory=list)  # per raw sample, the same
    raw_lengths: list[list[int]] = field(default_factory=list)  # per raw sample: its tokens, the stop token included
    raw_ids: list[list[list[int]]] = field(default_factory=list)  # per raw sample: those token ids, as sampled

    @property
    def tokens_per_second(self) -> float:
        """Return the generated tokens per second of wall time."""
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


class Generator:
    """A causal LM and its tokenizer, ready to sample responses to chat prompts."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, device: str = "auto", bf16: bool = True) -> None:
        self.device = resolve_device(device)
        self.dtype = runtime_dtype(self.device, bf16)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer
        self.stop_ids = stop_token_ids(tokenizer, model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        self.suppressed_ids = suppressed_token_ids(tokenizer, model, self.stop_ids)

    @classmethod
    def load(cls, folder: str | os.PathLike[str], gguf_file: str | None = None, *, device: str = "auto", bf16: bool = True) -> Generator:
        """Return the generator of a GGUF file, a transformers folder or a policy checkpoint."""
        model, tokenizer = load_causal_lm(folder, gguf_file)
        return cls(model, tokenizer, device=device, bf16=bf16)

    def prompt_ids(self, items: Sequence[PromptItem], config: GenerationConfig) -> list[list[int]]:
        """Return the token ids of each item's chat prompt, keeping its last ``max_prompt_tokens``."""
        return [chat_prompt_ids(self.tokenizer, item, config.system_prompt)[-config.max_prompt_tokens:] for item in items]

    def generate(self, items: Sequence[PromptItem | str], n: int, config: GenerationConfig, *,
                 should_stop: Callable[[], bool] | None = None) -> list[list[str]]:
        """Return up to ``n`` distinct non-empty responses per item (see ``generate_with_stats``)."""
        return self.generate_with_stats(items, n, config, should_stop=should_stop).texts

    @torch.no_grad()
    def generate_with_stats(self, items: Sequence[PromptItem | str], n: int, config: GenerationConfig, *,
                            should_stop: Callable[[], bool] | None = None) -> GenerationResult:
        """Sample ``n`` responses per item, ``config.batch_size`` rows at a time.

        Each item is repeated ``n`` times and the rows are batched with left padding. The cleaned
        texts are stripped, and empty and exactly repeated samples of one prompt are dropped, so
        a prompt may get fewer than ``n``. ``temperature`` 0 decodes greedily. ``should_stop()``, asked
        after every token (so it should be cheap), answering True raises GenerationStopped.
        """
        items = [PromptItem(item) if isinstance(item, str) else item for item in items]
        rows = [ids for ids in self.prompt_ids(items, config) for _ in range(n)]
        samples: list[str] = []
        cut: list[bool] = []
        lengths: list[int] = []
        ids: list[list[int]] = []
        new_tokens = 0
        start = time.perf_counter()
        for begin in range(0, len(rows), config.batch_size):
            # Each batch seeded by itself: its draws do not depend on how long the batches before it ran (rows leave a
            # batch as they end, so a batch's draws depend on its rows' lengths), and one seed draws the same tokens
            # whatever the token budget.
            with seeded(self.device, config.seed + begin):
                texts, flags, sizes, tokens = self._sample_batch(rows[begin:begin + config.batch_size], config, should_stop)
            samples.extend(texts)
            ids.extend(tokens)
            cut.extend(flags)
            lengths.extend(sizes)
            new_tokens += sum(sizes)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        raw = [samples[k * n:(k + 1) * n] for k in range(len(items))]
        raw_truncated = [cut[k * n:(k + 1) * n] for k in range(len(items))]
        cleaned = [_clean(group, flags) for group, flags in zip(raw, raw_truncated)]
        return GenerationResult(
            texts=[list(kept) for kept in cleaned], raw=raw,
            prompt_tokens=sum(len(ids) for ids in rows), new_tokens=new_tokens, seconds=seconds,
            truncated=[list(kept.values()) for kept in cleaned], raw_truncated=raw_truncated,
            raw_lengths=[lengths[k * n:(k + 1) * n] for k in range(len(items))],
            raw_ids=[ids[k * n:(k + 1) * n] for k in range(len(items))],
        )

    def _sample_batch(
        self, rows: list[list[int]], config: GenerationConfig, should_stop: Callable[[], bool] | None = None,
    ) -> tuple[list[str], list[bool], list[int], list[list[int]]]:
        sampling = Sampling(
            max_new_tokens=config.max_new_tokens, stop_ids=self.stop_ids, temperature=config.temperature, top_k=config.top_k,
            top_p=config.top_p, repetition_penalty=config.repetition_penalty, suppressed_ids=tuple(self.suppressed_ids),
        )
        return self.replies_read(sample_rows(self.model, rows, self.pad_id, sampling, should_stop=should_stop))

    def replies_read(self, sampled: list[list[int]]) -> tuple[list[str], list[bool], list[int], list[list[int]]]:
        """Return, per row of sampled ids, its text (up to its first stop id), whether it ran out of budget, its length (the
        stop id included) and those ids."""
        texts, flags, sizes, tokens = [], [], [], []
        for row in sampled:
            stop = next((k for k, token in enumerate(row) if token in self.stop_ids), None)
            kept = row if stop is None else row[:stop]
            sizes.append(len(row) if stop is None else stop + 1)
            tokens.append(row[:sizes[-1]])
            texts.append(self.tokenizer.decode(kept, skip_special_tokens=True).strip())
            flags.append(stop is None)  # the budget ran out before the reply ended
        return texts, flags, sizes, tokens


@contextlib.contextmanager
def seeded(device: torch.device, seed: int) -> Iterator[None]:
    """Seed torch's global RNG for the block, then give the caller's RNG state back."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def runtime_dtype(device: torch.device, bf16: bool) -> torch.dtype:
    """Return bf16 when asked and the device multiplies bf16 natively (``bf16_native``), else float32.

    On a CPU with AMX, bf16 decodes a batch of 16 about 1.6x faster than float32 and batch 1 no
    slower; with AVX-512 BF16 (an AMD EPYC) a batch of 16 costs 1.45x less CPU; where bf16
    matmuls are emulated they are slower than float32.
    """
    return torch.bfloat16 if bf16 and bf16_native(device) else torch.float32


def chat_messages(item: PromptItem, system_prompt: str) -> list[dict[str, str]]:
    """Return the chat messages of an item: the system prompt (unless the context has one), context, prompt."""
    context = [dict(turn) for turn in item.context]
    system = [] if (context and context[0]["role"] == "system") or not system_prompt else [{"role": "system", "content": system_prompt}]
    return system + context + [{"role": "user", "content": item.prompt}]


def chat_prompt_ids(tokenizer: PreTrainedTokenizerBase, item: PromptItem, system_prompt: str) -> list[int]:
    """Return the token ids of an item's chat prompt, ending where the assistant's reply begins."""
    messages = chat_messages(item, system_prompt)
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
    # The template already holds any BOS it wants; adding special tokens again would double it.
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def stop_token_ids(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> tuple[int, ...]:
    """Return the ids that end a reply: EOS (tokenizer's and model's) and every known end-of-turn token."""
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    model_eos = model.generation_config.eos_token_id if model.generation_config is not None else None
    ids.extend([model_eos] if isinstance(model_eos, int) else list(model_eos or []))
    vocab = tokenizer.get_vocab()
    ids.extend(vocab[token] for token in END_OF_TURN_TOKENS if token in vocab)
    if not ids:
        raise ValueError("the tokenizer has no EOS or end-of-turn token, so a reply could never end")
    return tuple(dict.fromkeys(ids))


def suppressed_token_ids(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, stop_ids: Sequence[int]) -> list[int]:
    """Return the ids a reply must never contain: non-stop special tokens and unused embedding rows."""
    special = {i for i, token in tokenizer.added_tokens_decoder.items() if token.special} | set(tokenizer.all_special_ids)
    unused = range(len(tokenizer), model.get_input_embeddings().num_embeddings)
    return sorted((special - set(stop_ids)) | set(unused))


def load_causal_lm(folder: str | os.PathLike[str], gguf_file: str | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Return (model, tokenizer) on CPU from a GGUF file, a transformers folder or a policy checkpoint.

    A GGUF model is rebuilt as a plain model of its architecture (so it can be saved and wrapped
    by peft); a policy checkpoint's LoRA chain is merged, in float32.
    """
    folder = Path(folder)
    if gguf_file is not None:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
        quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
        return _plain_copy(quantized), tokenizer
    if not (folder / MANIFEST).exists():
        return AutoModelForCausalLM.from_pretrained(folder, dtype="auto"), AutoTokenizer.from_pretrained(folder)
    chain = policy_chain(folder)
    root = chain[0]
    model = AutoModelForCausalLM.from_pretrained(root, dtype=torch.float32)
    for adapter in chain[1:]:
        from peft import PeftModel  # peft is needed only for adapter versions

        with peft_quiet():
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model, AutoTokenizer.from_pretrained(root)


@contextlib.contextmanager
def peft_quiet() -> Iterator[None]:
    """Around a call into peft: peft 0.21 reads transformers 5's deprecated ``is_gradient_checkpointing``, a FutureWarning
    in every policy update's and every adapter load's log that says nothing about the studio."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def policy_chain(folder: str | os.PathLike[str]) -> list[Path]:
    """Return the folders from a policy checkpoint's "full" root down to ``folder`` itself."""
    chain = [Path(folder)]
    while (manifest := read_manifest(chain[-1])).get("format", "full") != "full":
        if len(chain) > 1000:
            raise ValueError(f"the parent chain of {folder} does not end in a full checkpoint")
        chain.append(chain[-1].parent / manifest["parent"])
    return chain[::-1]


def materialise_base_policy(
    store: CheckpointStore,
    name: str,
    folder: str | os.PathLike[str],
    gguf_file: str | None = None,
    *,
    manifest: dict[str, Any] | None = None,
) -> Path:
    """Write a GGUF or transformers model as a "full" policy version ``name`` and return its folder.

    The weights keep the source's dtype (float32 for a dequantised GGUF, so the checkpoint
    reproduces the GGUF model's outputs exactly); later DPO versions store only adapters on top.
    """
    model, tokenizer = load_causal_lm(folder, gguf_file)

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    source = {"folder": str(folder), "gguf_file": gguf_file}
    info = {"format": "full", "parent": None, "source": source, "architecture": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()), "dtype": str(model.dtype).removeprefix("torch.")}
    return store.write(POLICY_KIND, name, {**info, **(manifest or {})}, write)


def _plain_copy(model: PreTrainedModel) -> PreTrainedModel:
    """Return the same weights in a model of the same class built without the GGUF quantization config."""
    config_dict = model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(model.config).from_dict(config_dict)
    with torch.random.fork_rng():  # the throwaway random init must not move the caller's RNG
        plain = type(model)(config)
    plain.load_state_dict(model.state_dict())
    plain.tie_weights()
    plain.generation_config = model.generation_config
    return plain.eval()


def _clean(samples: list[str], truncated: list[bool]) -> dict[str, bool]:
    """Return each distinct non-empty sample, in order, with the truncated flag of its first copy."""
    kept: dict[str, bool] = {}
    for text, cut in zip(samples, truncated):
        if text and text not in kept:
            kept[text] = cut
    return kept
