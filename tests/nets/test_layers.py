import torch

import nets
from nets.layers import to_float


def test_to_float_scales_pixels_and_casts_once_to_the_autocast_dtype():
    pixels = torch.tensor([0, 51, 255], dtype=torch.uint8).repeat(2, 4, 84, 28)  # (2, 4, 84, 84)
    plain = to_float(pixels)
    assert plain.dtype == torch.float32 and plain.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(plain[0, 0, 0, :3], torch.tensor([0.0, 0.2, 1.0]))
    with nets.autocast(torch.device("cpu"), True):
        fast = to_float(pixels)
    assert fast.dtype == torch.bfloat16 and fast.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast.float(), plain, atol=2e-3, rtol=0)  # bf16 keeps 8 significant bits
    vectors = torch.randn(3, 4)
    assert to_float(vectors).dtype == torch.float32 and to_float(vectors).shape == (3, 4)
