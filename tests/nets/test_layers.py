import torch

import nets
from nets.layers import PixelConv2d, to_float


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


def test_pixel_conv_reads_uint8_as_scaled_floats_with_the_same_gradients():
    torch.manual_seed(0)
    conv = PixelConv2d(4, 8, 3)
    pixels = torch.randint(0, 256, (2, 4, 10, 10), dtype=torch.uint8)
    scaled = pixels.float() / 255

    out = conv(pixels)
    out.square().sum().backward()
    grad_from_pixels = conv.weight.grad.clone()
    conv.weight.grad = None
    reference = torch.nn.functional.conv2d(scaled, conv.weight, conv.bias)
    reference.square().sum().backward()

    torch.testing.assert_close(out, reference)
    torch.testing.assert_close(grad_from_pixels, conv.weight.grad)
    torch.testing.assert_close(conv(scaled), reference)  # float input: taken as already in [0, 1]
    with nets.autocast(torch.device("cpu"), True):
        fast = conv(pixels)
    assert fast.dtype == torch.bfloat16
    torch.testing.assert_close(fast.float(), reference, atol=0.05, rtol=0.02)


def test_cnn_backbones_give_the_same_features_for_uint8_pixels_and_their_scaled_floats():
    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    for net in (nets.NatureCNN((4, 84, 84)), nets.ImpalaCNN((4, 84, 84))):
        # float round-off only (the division happens on the weights instead): 255x off would fail by far
        torch.testing.assert_close(net(pixels)[0], net(pixels.float() / 255)[0], atol=2e-4, rtol=1e-3)
