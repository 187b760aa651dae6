"""Import what fits, scorers, generators and DPO runs need, and run nothing: for a process about to fork its workers.

A worker that imports these before it forks shares the imported code with its children and spares
each of them the import at its first model task (about 3 s of CPU). Nothing here computes: PyTorch
starts its thread pools at the first operation, and a pool started before a fork is not usable in
the child, so the first operation is left to the children.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Iterable

MODULES = ("rm_trainer.train", "rm_trainer.scorer", "rm_trainer.generator", "rm_trainer.dpo")


def libraries_import(model_folders: Iterable[str | os.PathLike[str]] = ()) -> list[str]:
    """Import rm_trainer's training and serving modules (torch, transformers and peft with them) and the transformers
    model class of each folder in ``model_folders`` (named by its config.json; no weights are read); return the
    classes' names. A folder without a config.json (a GGUF file's) is left to its first load."""
    for name in MODULES:
        importlib.import_module(name)
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    classes = []
    for folder in model_folders:
        if (Path(folder) / "config.json").is_file():
            classes.append(MODEL_MAPPING[type(AutoConfig.from_pretrained(folder))].__name__)
    return classes
