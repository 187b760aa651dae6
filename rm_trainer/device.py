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


def bf16_native(device: torch.device) -> bool:
    """Return whether ``device`` multiplies bf16 natively: CUDA, or a CPU with AMX tiles."""
    if device.type == "cuda":
        return True
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, hence the guard
    return device.type == "cpu" and amx is not None and bool(amx())


def native_autocast(device: torch.device, *, bf16: bool = True) -> contextlib.AbstractContextManager:
    """Return a bf16 autocast context where bf16 is native (CUDA, AMX CPUs) and ``bf16``, a no-op elsewhere.

    On an AMX CPU this runs a MiniLM encoder about 2.5x faster than float32; without AMX, bf16
    is emulated and slower, so float32 stays.
    """
    if bf16 and bf16_native(device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
