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
    """Return whether ``device`` multiplies bf16 natively: CUDA, or a CPU with AMX tiles or AVX-512 BF16 instructions.

    On a CPU this asks torch's own probes (private, hence the guard: a torch without one counts as
    without the instructions rather than failing). On a CPU with neither, bf16 is emulated and
    slower than float32.
    """
    if device.type == "cuda":
        return True
    return device.type == "cpu" and any(_cpu_has(probe) for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))


def _cpu_has(probe: str) -> bool:
    check = getattr(torch.cpu, probe, None)
    return check is not None and bool(check())


def native_autocast(device: torch.device, *, bf16: bool = True) -> contextlib.AbstractContextManager:
    """Return a bf16 autocast context where bf16 is native (``bf16_native``) and ``bf16``, a no-op elsewhere.

    A MiniLM encoder runs about 2.5x faster than float32 on an AMX CPU and 1.85x on AVX-512 BF16
    (an AMD EPYC); where bf16 is emulated it is slower, so float32 stays.
    """
    if bf16 and bf16_native(device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
