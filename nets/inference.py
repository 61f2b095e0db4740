"""How the agents run their networks fast, so that the algorithm files need not say it: `DeviceNet` (the
device's precision, float32 outputs) and `InferenceCopy` (bf16 weights cast once per update for acting)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from nets.device import autocast, choose_precision, set_tf32, to_device


class InferenceCopy:
    """Calls `net` for inference through a frozen copy whose convolution and linear weights are stored in
    bfloat16 when `bf16`. Under bf16 autocast, `net` itself would re-cast every float32 weight in every
    call: on the Nature CNN, acting for 4 envs on one core took 1.31 ms that way and 0.84 ms with the
    cast weights. Call it under `nets.autocast` as you would call `net`; with `bf16` off it is `net`.

    The copy is refreshed at the first call after `net` changes: after a step of `optimizer` (fused
    optimisers update weights without bumping their version counters), and after any other in-place
    change that does bump them (load_state_dict, unfused optimisers). `net`'s tensors must be updated in
    place, not replaced."""

    def __init__(self, net: nn.Module, bf16: bool, optimizer: torch.optim.Optimizer | None = None) -> None:
        self.net, self.bf16 = net, bf16
        self.inference_net = net
        if bf16:
            self.inference_net = copy.deepcopy(net).requires_grad_(False)
            for module in self.inference_net.modules():
                if isinstance(module, nn.Conv2d | nn.Linear):  # the layers autocast runs in bfloat16
                    module.to(torch.bfloat16)
            if optimizer is not None:
                optimizer.register_step_post_hook(self._mark_stale)
        # Listed once: walking the modules costs ~0.4 ms, a third of a small forward pass.
        self._sources = [*net.parameters(), *net.buffers()]
        self._copies = [*self.inference_net.parameters(), *self.inference_net.buffers()]
        self._versions: list[int] = []
        self._stale = True

    def _mark_stale(self, *_: Any) -> None:
        self._stale = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.bf16:
            versions = [t._version for t in self._sources]
            if self._stale or versions != self._versions:
                with torch.no_grad():
                    for dst, src in zip(self._copies, self._sources, strict=True):
                        dst.copy_(src)
                self._versions, self._stale = versions, False
            if self.inference_net.training != self.net.training:
                self.inference_net.train(self.net.training)
        return self.inference_net(*args, **kwargs)


class DeviceNet:
    """A network as an agent runs it: on its device, at one precision for acting and learning alike, with
    float32 outputs. `precision` is "auto" or an explicit choice, resolved by `choose_precision`;
    `self.precision` is what runs:
    - "bf16": bfloat16 autocast; weights, losses and the optimiser stay float32.
    - "tf32": float32 weights, with matmuls and convolutions on CUDA in TF32 (`set_tf32`). The TF32 switches
      are process-wide torch flags: building a DeviceNet on CUDA sets them (on for "tf32", off otherwise)
      for every network in the process.
    - "fp32": plain float32.

    `net(x)` is the training forward. `net.infer(x)` is a forward without gradients, for acting and for
    targets: `x` may be numpy, and under bf16 it goes through an `InferenceCopy` whose weights are cast
    to bf16 once per `optimizer` step instead of in every call."""

    def __init__(
        self, module: nn.Module, device: torch.device, precision: str, optimizer: Optimizer | None = None
    ) -> None:
        self.module, self.device = module, device
        self.precision = choose_precision(device, precision)
        set_tf32(device, self.precision == "tf32")
        self.inference = InferenceCopy(module, self.bf16, optimizer)

    @property
    def bf16(self) -> bool:
        """Whether the network runs under bfloat16 autocast."""
        return self.precision == "bf16"

    def __call__(self, *inputs: torch.Tensor) -> Any:
        with autocast(self.device, self.bf16):
            return _as_float(self.module(*inputs))

    @torch.no_grad()
    def infer(self, *inputs: Any) -> Any:
        with autocast(self.device, self.bf16):
            return _as_float(self.inference(*(to_device(x, self.device) for x in inputs)))


def _as_float(out: Any) -> Any:
    return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()
