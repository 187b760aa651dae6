"""Export a policy as one plain transformers folder that any serving stack (vLLM, TGI) loads as it is.

``export_merged`` loads a policy the way the generator does (a policy checkpoint's LoRA chain
merged into its "full" root, in float32; see ``rm_trainer.generator.load_causal_lm``) and writes
the merged weights as safetensors, the config, the tokenizer and a generation_config whose
``eos_token_id`` lists every end-of-turn token the generator stops on. The folder is written
under a temporary name beside ``out`` and renamed at the end, so ``out`` is never half written.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rm_trainer.generator import load_causal_lm, stop_token_ids


def export_merged(folder: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write the merged model and tokenizer of the policy in ``folder`` into the new folder ``out``; return ``out``.

    Raise FileExistsError, before loading anything, when ``out`` exists and is not an empty folder.
    """
    out = Path(out)
    _refuse_occupied(out)
    model, tokenizer = load_causal_lm(folder)
    stops = list(stop_token_ids(tokenizer, model))
    model.generation_config.eos_token_id = stops
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        _refuse_occupied(out)  # something may have appeared there while the weights were written
        if out.exists():
            out.rmdir()  # an empty folder given as the target
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _refuse_occupied(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} already exists and is not an empty folder; export into a new folder")
