import torch
from torch import nn

import nets

CPU = torch.device("cpu")


def autocast_forward(net: nn.Module | nets.InferenceCopy, obs: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode(), nets.autocast(CPU, True):
        return net(obs)[0].float()


def test_inference_copy_acts_like_the_network_and_follows_its_updates():
    """The bf16 copy gives the network's own autocast outputs (the same bf16 weights), keeps the network
    in float32, and picks up fused Adam's steps and a loaded state without being told."""
    torch.manual_seed(0)
    net = nets.ActorCritic((4, 84, 84), 6, (64,))
    optimizer = nets.make_optimizer("adam", net.parameters(), 0.01)  # fused: versions stay as they were
    fast = nets.InferenceCopy(net, bf16=True, optimizer=optimizer)
    obs = torch.randint(0, 256, (4, 4, 84, 84), dtype=torch.uint8)
    first_conv = next(m for m in fast.inference_net.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in net.parameters())
    before = autocast_forward(fast, obs)
    torch.testing.assert_close(before, autocast_forward(net, obs), atol=0.02, rtol=0.02)

    for _ in range(3):
        net(obs)[0].logsumexp(-1).sum().backward()
        optimizer.step()
    after = autocast_forward(fast, obs)
    assert not torch.allclose(after, before, atol=0.05)
    torch.testing.assert_close(after, autocast_forward(net, obs), atol=0.02, rtol=0.02)

    other = nets.ActorCritic((4, 84, 84), 6, (64,))
    net.load_state_dict(other.state_dict())
    loaded = autocast_forward(fast, obs)
    torch.testing.assert_close(loaded, autocast_forward(other, obs), atol=0.02, rtol=0.02)


def test_inference_copy_without_bf16_is_the_network_and_follows_train_and_eval():
    net = nn.Sequential(nn.Linear(8, 64), nn.Dropout(0.5), nn.Linear(64, 2))
    assert nets.InferenceCopy(net, bf16=False).inference_net is net
    fast = nets.InferenceCopy(net, bf16=True)
    x = torch.randn(16, 8)
    net.eval()
    with nets.autocast(CPU, True):
        assert torch.equal(fast(x), fast(x))  # dropout off, as in the network
        net.train()
        assert not torch.equal(fast(x), fast(x))
        assert not fast(x).requires_grad
