import torch

from rm_trainer.device import bf16_native, native_autocast


def test_native_autocast_follows_the_hardware():
    """bf16 autocast is on exactly where bf16 is native and asked for; float32 elsewhere."""
    cpu = torch.device("cpu")
    x = torch.ones(4, 4)
    with native_autocast(cpu, bf16=False):
        assert (x @ x).dtype == torch.float32
    with native_autocast(cpu, bf16=True):
        assert (x @ x).dtype == (torch.bfloat16 if bf16_native(cpu) else torch.float32)


def test_cuda_counts_as_native():
    """CUDA devices always multiply bf16 natively."""
    assert bf16_native(torch.device("cuda"))
