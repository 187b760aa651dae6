import pytest
import torch

from rm_trainer.device import autocast, bf16_native, native_autocast, resolve_device

CPU = torch.device("cpu")


@pytest.fixture
def amx(monkeypatch):
    """Set what torch says about the CPU's AMX tiles and AVX-512 BF16 instructions (True, False, or None for a torch
    without the probe)."""

    def set_to(amx_tiles: bool | None, avx512_bf16: bool | None = None) -> None:
        for probe, value in (("_is_amx_tile_supported", amx_tiles), ("_is_avx512_bf16_supported", avx512_bf16)):
            if value is None:
                monkeypatch.delattr(torch.cpu, probe, raising=False)
            else:
                monkeypatch.setattr(torch.cpu, probe, lambda value=value: value, raising=False)

    return set_to


@pytest.mark.parametrize(("amx_tiles", "avx512_bf16", "native"), [
    (True, False, True), (False, True, True), (True, None, True), (None, True, True),
    (False, False, False), (None, None, False), (None, False, False),
])
def test_a_cpu_is_bf16_native_with_amx_tiles_or_avx512_bf16(amx, amx_tiles, avx512_bf16, native):
    """A torch without one of the private probes counts as without those instructions rather than failing."""
    amx(amx_tiles, avx512_bf16)
    assert bf16_native(CPU) is native


def test_native_autocast_multiplies_in_bf16_exactly_where_it_is_native_and_asked_for(amx):
    x = torch.ones(4, 4)
    amx(True)
    with native_autocast(CPU, bf16=True):
        assert (x @ x).dtype == torch.bfloat16
    with native_autocast(CPU, bf16=False):
        assert (x @ x).dtype == torch.float32
    amx(False)
    with native_autocast(CPU, bf16=True):
        assert (x @ x).dtype == torch.float32  # emulated bf16 is slower: float32 stays


def test_plain_autocast_is_a_no_op_on_cpu():
    x = torch.ones(4, 4)
    with autocast(CPU, bf16=True):
        assert (x @ x).dtype == torch.float32


def test_resolve_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == CPU and resolve_device("cpu") == CPU
    with pytest.raises(ValueError, match="'cuda:1' asked for, but CUDA is not available"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda") and resolve_device("cuda:1") == torch.device("cuda:1")
