"""Small building blocks: orthogonal init and input checking shared by the backbones."""

from __future__ import annotations

import math

import torch
from torch import nn

RELU_GAIN = math.sqrt(2.0)  # He-style gain for ReLU layers, as in the baselines' orthogonal init


def orthogonal_(module: nn.Module, gain: float = RELU_GAIN) -> nn.Module:
    """Orthogonal weights and zero biases on every Linear/Conv layer of `module` (Saxe et al. 2014)."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.orthogonal_(m.weight, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def check_obs(name: str, obs: torch.Tensor, obs_shape: tuple[int, ...], lead_dims: int = 1) -> None:
    """Fail with a message naming the expected and the received shape/dtype, before any maths runs."""
    expected = ("B",) * lead_dims + tuple(obs_shape)
    shape_ok = obs.ndim == lead_dims + len(obs_shape) and tuple(obs.shape[lead_dims:]) == tuple(obs_shape)
    dtype_ok = obs.dtype == torch.uint8 or obs.is_floating_point()
    if not (shape_ok and dtype_ok):
        raise ValueError(
            f"{name} expects observations of shape {_fmt(expected)} (uint8 pixels or float), "
            f"received shape {tuple(obs.shape)} {str(obs.dtype).removeprefix('torch.')}; "
            f"check the env's observation space or build {name} with obs_shape={tuple(obs.shape[lead_dims:])}"
        )


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def to_float(obs: torch.Tensor, *, scale: bool = True) -> torch.Tensor:
    """uint8 pixels become [0, 1] floats here, on the device, so buffers and transfers stay 4x smaller.
    Under autocast the result is already in autocast's dtype (bfloat16), and images (B, C, H, W) come out
    channels-last, the layout the convolutions use. `scale=False` keeps 0..255 (see `PixelConv2d`)."""
    # Under autocast, cast once straight to its dtype, and lay images out channels-last before the cast:
    # converting then re-laying out float copies cost ~30% of a PPO update on CPU.
    device = obs.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
    if obs.ndim == 4:
        obs = obs.contiguous(memory_format=torch.channels_last)
    if obs.dtype == torch.uint8 and scale:
        return obs.to(dtype).mul_(1 / 255)
    return obs.to(dtype)


class PixelConv2d(nn.Conv2d):
    """A backbone's first convolution, fed the observation as it arrives. uint8 pixels are read as [0, 1]
    by scaling the weights instead of the pixels, conv(x / 255, W) = conv(x, W / 255): one multiply per
    weight (8k) instead of one per input value (7M in a PPO minibatch, ~5% of its training step on CPU).
    Float inputs are taken as already scaled."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.dtype != torch.uint8:
            return super().forward(to_float(obs))
        # 0..255 are exact in bfloat16 (8 significant bits), so the unscaled cast loses nothing.
        return self._conv_forward(to_float(obs, scale=False), self.weight * (1 / 255), self.bias)
