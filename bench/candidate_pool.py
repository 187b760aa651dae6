"""One cached pool of base-policy candidates for Bitext requests, split into train and held-out prompts.

``build_pool`` samples the requests (``--data``'s ``instruction`` column only: the reference
replies stay with the judge), splits them once by ``seed`` into train prompts (whose candidate
pairs may be labelled) and held-out prompts (never labelled), and generates with the real base
policy (SmolLM2-135M-Instruct through ``rm_trainer.generator``, batched): ``candidates`` samples
per train prompt, and per held-out prompt ``candidates`` samples for best-of-n plus one more, the
base policy's own reply that best-of-n is judged against. A reply that hit ``max_new_tokens``
without a stop token is marked ``truncated``.

The pool is written as JSON under ``bench/out/`` (gitignored), named by a hash of everything
that decides its content, so a second run with the same settings reads it instead of generating.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_DATA = "../shared/data/bitext-customer-support/customer_support_sample.csv"
OUT_DIR = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True)
class PoolSpec:
    """Everything that decides a pool's content."""

    data: str = DEFAULT_DATA
    train_prompts: int = 40
    heldout_prompts: int = 24
    candidates: int = 4
    max_new_tokens: int = 128
    temperature: float = 0.8
    batch_size: int = 16
    seed: int = 0

    def key(self) -> str:
        """Return a short hash of the spec (the data file by name and size, not by path)."""
        fields = asdict(self)
        path = Path(self.data)
        fields["data"] = [path.name, path.stat().st_size if path.exists() else None]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def read_requests(path: str) -> list[tuple[str, str]]:
    """Return (instruction, intent) of every row of the Bitext CSV, in file order."""
    with open(path, newline="", encoding="utf-8") as f:
        return [(row["instruction"].strip(), row["intent"].strip()) for row in csv.DictReader(f) if row["instruction"].strip()]


def split_requests(requests: list[tuple[str, str]], spec: PoolSpec) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Return (train, held-out) requests: distinct instructions, shuffled once by ``spec.seed``."""
    unique = list(dict(requests).items())
    random.Random(spec.seed).shuffle(unique)
    need = spec.train_prompts + spec.heldout_prompts
    if need > len(unique):
        raise SystemExit(f"asked for {need} prompts, the data has {len(unique)} distinct requests")
    return unique[: spec.train_prompts], unique[spec.train_prompts : need]


def generate_pool(spec: PoolSpec, *, device: str = "auto", log=print) -> dict[str, Any]:
    """Generate the pool with the base policy; return it as a JSON-ready dict."""
    from rm_trainer.config import GenerationConfig, default_generator_source
    from rm_trainer.generator import Generator

    train, heldout = split_requests(read_requests(spec.data), spec)
    folder, gguf_file = default_generator_source()
    started = time.perf_counter()
    generator = Generator.load(folder, gguf_file, device=device)
    load_seconds = time.perf_counter() - started
    config = GenerationConfig(max_new_tokens=spec.max_new_tokens, temperature=spec.temperature,
                              batch_size=spec.batch_size, seed=spec.seed, device=device)
    groups = []
    seconds = 0.0
    new_tokens = 0
    for split, requests, n in (("train", train, spec.candidates), ("heldout", heldout, spec.candidates + 1)):
        for begin in range(0, len(requests), spec.batch_size):
            chunk = requests[begin : begin + spec.batch_size]
            result = generator.generate_with_stats([prompt for prompt, _ in chunk], n, config)
            seconds += result.seconds
            new_tokens += result.new_tokens
            for (prompt, intent), raw in zip(chunk, result.raw):
                groups.append({"split": split, "prompt": prompt, "intent": intent,
                               "replies": [{"text": text, "truncated": _hit_budget(generator, text, spec)} for text in raw]})
            log(f"generated {split} {begin + len(chunk)}/{len(requests)} prompts × {n} "
                f"({seconds:.0f} s, {new_tokens / max(seconds, 1e-9):.0f} tokens/s)")
    return {"spec": asdict(spec), "key": spec.key(), "device": str(generator.device), "dtype": str(generator.dtype),
            "seconds": {"load": round(load_seconds, 2), "generation": round(seconds, 2)}, "new_tokens": new_tokens,
            "groups": groups}


def _hit_budget(generator, text: str, spec: PoolSpec) -> bool:
    """Return whether a sample used the whole token budget (so it ended without a stop token)."""
    return len(generator.tokenizer.encode(text, add_special_tokens=False)) >= spec.max_new_tokens - 2


def load_or_generate(spec: PoolSpec, *, device: str = "auto", out_dir: Path = OUT_DIR, log=print) -> tuple[dict[str, Any], Path]:
    """Return the cached pool of ``spec`` and its file, generating and caching it first if there is none."""
    path = out_dir / f"strategy_pool_{spec.key()}.json"
    if path.exists():
        log(f"read the cached pool {path}")
        return json.loads(path.read_text()), path
    pool = generate_pool(spec, device=device, log=log)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(pool))
    tmp.replace(path)
    log(f"cached the pool in {path}")
    return pool, path
