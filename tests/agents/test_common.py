import torch

from agents.common import take_rows


def test_take_rows_matches_indexing_and_keeps_channels_last_images_channels_last():
    torch.manual_seed(0)
    index = torch.tensor([5, 0, 5, 2])
    images = torch.randint(0, 256, (6, 4, 7, 7), dtype=torch.uint8)
    channels_last = images.contiguous(memory_format=torch.channels_last)
    for x in (images, channels_last, torch.randn(6), torch.randn(6, 3), torch.randn(3, 6).T):
        torch.testing.assert_close(take_rows(x, index), x[index])
    assert take_rows(channels_last, index).is_contiguous(memory_format=torch.channels_last)
