"""Device selection and precision, shared by every part of pixelrl."""

from __future__ import annotations

import contextlib
import ctypes
import sys
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


PRECISIONS = ("auto", "bf16", "fp32", "tf32")
"""What a config's `precision` may ask for; `choose_precision` turns "auto" into one of the other three."""


def cuda_capability(device: torch.device) -> tuple[int, int]:
    """The (major, minor) compute capability of a CUDA device: the one thing the precision rules ask of a GPU
    (tests stand a fake GPU in here)."""
    return torch.cuda.get_device_capability(device)


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 autocast runs natively (fast) here: a CUDA GPU of compute capability 8.0 on (Ampere
    on), or a CPU with AVX512-BF16 / AMX. Elsewhere bf16 would be emulated and slower than float32."""
    if device.type == "cuda":
        return cuda_capability(device)[0] >= 8  # torch.cuda.is_bf16_supported() also counts emulation
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def tf32_supported(device: torch.device) -> bool:
    """Whether float32 matmuls and convolutions can run as TF32 here: the tensor cores of CUDA GPUs of
    compute capability 8.0 on (Ampere on). CPUs have no TF32."""
    return device.type == "cuda" and cuda_capability(device)[0] >= 8


_warned: set[tuple[str, str]] = set()  # (device type, precision) already warned about in this process


def choose_precision(device: torch.device, requested: str = "auto") -> str:
    """The precision a network runs at on `device`: "bf16" (bfloat16 autocast), "tf32" (float32 weights,
    matmuls and convolutions in TF32) or "fp32".

    "auto" is a rule. On CUDA: "tf32" where the GPU has it (Ampere on), else "fp32". bf16 is not the CUDA
    default because on an H200 bf16 autocast was slower than float32 at our batch sizes (the network alone:
    PPO 5,448 vs 7,294 agent steps/s, DQN 780 vs 967). On a CPU: "bf16" where it is native
    (`bf16_supported`: AVX512-BF16/AMX, measured faster there: docs/throughput.md), else "fp32".

    An explicit choice is honoured, except "tf32" where there is no TF32 (CPUs, GPUs before Ampere), which
    runs as "fp32". "bf16" where it is not native runs emulated, slower than fp32: one warning on stderr."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision {requested!r}: choose one of {', '.join(PRECISIONS)}")
    if requested == "auto":
        if device.type == "cuda":
            return "tf32" if tf32_supported(device) else "fp32"
        return "bf16" if bf16_supported(device) else "fp32"
    if requested == "tf32" and not tf32_supported(device):
        return "fp32"
    if requested == "bf16" and not bf16_supported(device) and (device.type, requested) not in _warned:
        _warned.add((device.type, requested))
        print(f"warning: bf16 is not native on this {device.type}, so it runs emulated, slower than fp32 "
              '(precision "auto" picks fp32 here)', file=sys.stderr)  # fmt: skip
    return requested


def set_tf32(device: torch.device, on: bool) -> None:
    """Let float32 matmuls and cuDNN convolutions on CUDA run as TF32, or keep both strictly float32 (torch's
    own default keeps matmuls in float32 but lets convolutions use TF32). These are process-wide torch
    flags: they hold for every network in the process, whoever set them last. No-op on other devices."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


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
