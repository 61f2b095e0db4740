"""Image augmentation on batches (B, C, H, W). Each keeps the dtype (uint8 stays uint8), the shape and the
order of samples, so labels stay aligned with their images."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Augment = Callable[[torch.Tensor], torch.Tensor]


def random_shift(x: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad by repeating edge pixels, then crop back at a random offset per image (DrQ, Kostrikov et al.
    2020)."""
    b, _, h, w = x.shape
    padded = F.pad(x.float(), (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device="cpu").to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device="cpu").to(x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)[None]  # (B, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)[None]  # (B, W)
    idx = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return out.to(x.dtype)


def random_crop(
    x: torch.Tensor, size: Sequence[int], generator: torch.Generator | None = None
) -> torch.Tensor:
    """A random (h, w) window per image; the output is smaller than the input (crop, not shift)."""
    b, _, h, w = x.shape
    ch, cw = size
    if ch > h or cw > w:
        raise ValueError(f"crop size {tuple(size)} is larger than the images ({h}, {w})")
    top = torch.randint(0, h - ch + 1, (b,), generator=generator).tolist()
    left = torch.randint(0, w - cw + 1, (b,), generator=generator).tolist()
    windows = [x[i, :, t : t + ch, s : s + cw] for i, (t, s) in enumerate(zip(top, left, strict=True))]
    return torch.stack(windows)


def random_flip(x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability p (not for games or digits whose meaning flips)."""
    mask = (torch.rand(x.shape[0], generator=generator) < p).to(x.device)
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def gaussian_noise(
    x: torch.Tensor, std: float = 0.05, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add N(0, std) noise on the [0, 1] scale; uint8 images are rounded and clipped back to uint8."""
    noise = torch.randn(x.shape, generator=generator).to(x.device) * std
    if x.dtype == torch.uint8:
        return (x.float() + noise * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    return x + noise.to(x.dtype)


def compose(*augments: Augment) -> Augment:
    def apply(x: torch.Tensor) -> torch.Tensor:
        for aug in augments:
            x = aug(x)
        return x

    return apply
