"""Measurement code the benchmarks share: env steps/s, network seconds, the serial ceiling and the machine.

Timings are medians after a warm-up; every report records the machine (CPU model, cores, torch), since
figures from different machines must not be read as alike.
"""

from __future__ import annotations

import copy
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import envs
import nets


def measure_env_sps(game: str, backend: str, num_envs: int, seconds: float, seed: int = 0) -> float:
    """Agent steps per second (summed over the envs) of uniformly random actions, after a short warm-up."""
    venv = envs.make(game, num_envs, seed=seed, backend=backend)
    try:
        venv.reset()
        rng = np.random.default_rng(seed)
        n_actions = int(venv.single_action_space.n)
        for _ in range(20):
            venv.step(rng.integers(0, n_actions, num_envs))
        steps, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(50):
                venv.step(rng.integers(0, n_actions, num_envs))
            steps += 50 * num_envs
        return steps / elapsed
    finally:
        venv.close()


def median_seconds(fn: Callable[[], None], repeats: int = 10) -> float:
    fn()  # warm-up (allocations, oneDNN kernel selection)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def network_seconds(
    net: torch.nn.Module, batch: int, precision: str, device: torch.device, train: bool, forwards: int = 1,
    channels_last: bool = False, cast_once: bool = True,
) -> float:  # fmt: skip
    """Seconds for one forward (inference) or `forwards` forwards + backward + fused Adam (training) of
    `net` on a batch of random uint8 frames at `precision` (as nets.DeviceNet runs it): the compute floor,
    with no agent code around it. The frames are laid out as the agent feeds them: (B, C, H, W) as the env
    and the replay give them, or `channels_last` as the rollouts store them (no re-layout in the network,
    so a higher ceiling). Under bf16, forward-only passes read bf16 weights cast once (`nets.InferenceCopy`,
    as the agents act), or with `cast_once=False` let autocast cast the float32 weights in every call."""
    obs = torch.randint(0, 256, (batch, 4, 84, 84), dtype=torch.uint8, device=device)
    if channels_last:
        obs = obs.contiguous(memory_format=torch.channels_last)
    precision = nets.choose_precision(device, precision)
    nets.set_tf32(device, precision == "tf32")  # process-wide, as a DeviceNet sets it
    bf16 = precision == "bf16"
    if not train:
        act_net = nets.InferenceCopy(net, bf16 and cast_once)  # as the agents act: cast once, not per call

        @torch.inference_mode()
        def step() -> None:
            with nets.autocast(device, bf16):
                act_net(obs)
            _sync(device)

        return median_seconds(step)
    optimizer = nets.make_optimizer("adam", net.parameters(), 1e-4)
    target_net = nets.InferenceCopy(copy.deepcopy(net), bf16)  # DQN's frozen target, cast once as ours

    def step() -> None:
        with torch.no_grad(), nets.autocast(device, bf16):
            for _ in range(forwards - 1):  # DQN's target-network pass on the next observations
                target_net(obs)
        with nets.autocast(device, bf16):
            out = net(obs)
        loss = sum(o.float().square().mean() for o in (out if isinstance(out, tuple) else (out,)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)

    return median_seconds(step)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def serial_ceiling(env_sps: float, compute_sps: float) -> float:
    return 1 / (1 / env_sps + 1 / compute_sps)


def cpu_model() -> str:
    """The CPU's model name, so that figures from different machines are not read as alike."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    return {
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch_version(),
        "loadavg_1min_after": os.getloadavg()[0],  # other processes on the machine skew the numbers
    }


def torch_version() -> str:
    return torch.__version__
