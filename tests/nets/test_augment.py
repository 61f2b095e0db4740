import pytest
import torch

from nets import compose, gaussian_noise, random_crop, random_flip, random_shift


def labelled_images(dtype=torch.uint8):
    # Image i is filled with the value 10*i: any mixing of samples would show up as a wrong value.
    labels = torch.arange(8)
    images = (labels * 10).view(-1, 1, 1, 1).expand(8, 3, 12, 12).to(dtype).contiguous()
    return images, labels


@pytest.mark.parametrize(
    "augment",
    [
        lambda x: random_shift(x, pad=2),
        lambda x: random_flip(x, p=1.0),
        lambda x: compose(lambda y: random_shift(y, 1), lambda y: random_flip(y, 0.5))(x),
    ],
)
def test_augmentation_keeps_dtype_shape_and_labels(augment):
    images, labels = labelled_images()
    out = augment(images)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    # every pixel of image i still carries its label's value, so labels stay aligned
    torch.testing.assert_close(out.amax(dim=(1, 2, 3)), (labels * 10).to(torch.uint8))
    torch.testing.assert_close(out.amin(dim=(1, 2, 3)), (labels * 10).to(torch.uint8))


def test_random_shift_moves_content_by_at_most_pad_pixels():
    x = torch.zeros(64, 1, 9, 9, dtype=torch.uint8)
    x[:, :, 4, 4] = 255  # one bright pixel in the centre
    out = random_shift(x, pad=2, generator=torch.Generator().manual_seed(0))
    rows, cols = (out[:, 0] == 255).nonzero()[:, 1], (out[:, 0] == 255).nonzero()[:, 2]
    assert (out[:, 0] == 255).sum(dim=(1, 2)).eq(1).all()
    assert (rows - 4).abs().max() <= 2 and (cols - 4).abs().max() <= 2
    assert len({(int(r), int(c)) for r, c in zip(rows, cols, strict=True)}) > 5  # offsets really vary


def test_random_crop_returns_windows_of_the_image():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    out = random_crop(x, (4, 4))
    assert out.shape == (2, 1, 4, 4)
    for i in range(2):
        top, left = divmod(int(out[i, 0, 0, 0] - x[i, 0, 0, 0]), 6)
        torch.testing.assert_close(out[i], x[i, :, top : top + 4, left : left + 4])
    with pytest.raises(ValueError, match="larger than the images"):
        random_crop(x, (7, 7))


def test_flip_mirrors_left_right():
    x = torch.arange(4, dtype=torch.float32).view(1, 1, 1, 4)
    torch.testing.assert_close(random_flip(x, p=1.0), x.flip(-1))
    torch.testing.assert_close(random_flip(x, p=0.0), x)


def test_noise_keeps_uint8_in_range_and_float_dtype():
    images, _ = labelled_images()
    noisy = gaussian_noise(images, std=0.5)
    assert noisy.dtype == torch.uint8 and noisy.shape == images.shape
    assert (noisy.int() - images.int()).abs().sum() > 0
    floats = gaussian_noise(torch.zeros(4, 1, 5, 5), std=0.1)
    assert floats.dtype == torch.float32 and 0.02 < floats.std().item() < 0.2
