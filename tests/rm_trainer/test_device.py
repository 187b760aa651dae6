import pytest
import torch

from rm_trainer.device import autocast, bf16_native, native_autocast, resolve_device

CPU = torch.device("cpu")


@pytest.fixture
def amx(monkeypatch):
    """Set what torch says about the CPU's AMX tiles (True, False, or None for a torch without the probe)."""

    def set_to(supported: bool | None) -> None:
        if supported is None:
            monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
        else:
            monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: supported, raising=False)

    return set_to


@pytest.mark.parametrize(("supported", "native"), [(True, True), (False, False), (None, False)])
def test_a_cpu_is_bf16_native_only_with_amx_tiles(amx, supported, native):
    """A torch without the private AMX probe counts as no AMX rather than failing."""
    amx(supported)
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
