"""Device selection shared by every part of pixelrl."""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator

import numpy
import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn "auto" | "cpu" | "cuda" | "cuda:N" into a torch.device; "auto" prefers CUDA when present."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was asked for but CUDA is not available; use device='cpu' or 'auto'"
        )
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return torch.device(device)


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 autocast runs natively (fast) here: CUDA with bf16 (Ampere on), or a CPU with
    AVX512-BF16 / AMX. Elsewhere bf16 would be emulated and slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """bfloat16 autocast on `device` when `enabled` (weights, losses and optimiser state stay float32)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run a block with `n` intra-op threads. Small-batch inference gains nothing from more threads, and
    on a busy machine extra OpenMP threads wait on each other: 50 ms instead of 3 ms per step here."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so the same seed gives the same CPU run."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def keep_freed_memory() -> bool:
    """Make glibc's malloc serve blocks up to 32 MB from its heap and never give the heap back, for this
    whole process. By default each large tensor of a training step (activations, gradients, the cast
    input) gets fresh pages from the OS and faults them in; kept pages are reused instead. On 2 cores this
    took a PPO update on Pong from 572 to 477 ms. The cost is that the process does not shrink after its
    peak. Returns False where the C library is not glibc (nothing changes)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the allocator this process runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    # 32 MB is the largest mmap threshold glibc accepts on 64-bit machines; the trim threshold is an int.
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def to_device(array: numpy.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """numpy (or a tensor) -> tensor on `device` without changing the dtype (uint8 pixels stay uint8 until
    the net)."""
    if isinstance(array, torch.Tensor):
        return array.to(device, non_blocking=True)
    return torch.from_numpy(numpy.ascontiguousarray(array)).to(device, non_blocking=True)
