"""Where the tensors live: CUDA when present (bf16 autocast there), CPU otherwise."""

from __future__ import annotations

import contextlib

import torch


def resolve_device(preference: str = "auto") -> torch.device:
    """Return the device for ``preference``: "auto", "cpu", "cuda" or "cuda:N"."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {preference!r} asked for, but CUDA is not available")
    return device


def autocast(device: torch.device, *, bf16: bool = True) -> contextlib.AbstractContextManager:
    """Return a bf16 autocast context on CUDA (when ``bf16``), a no-op context elsewhere."""
    if device.type == "cuda" and bf16:
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
