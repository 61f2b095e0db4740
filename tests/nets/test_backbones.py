import pytest
import torch

import nets
from nets import MLP, CategoricalPolicyHead, ImpalaCNN, LSTMCore, NatureCNN, QHead, ValueHead

B, A = 3, 6
PIXELS = (4, 84, 84)


def make_backbones():
    return {
        "mlp": (MLP((10,), hidden=(32, 32)), torch.randn(B, 10)),
        "nature": (NatureCNN(PIXELS), torch.randint(0, 256, (B, *PIXELS), dtype=torch.uint8)),
        "impala": (ImpalaCNN(PIXELS), torch.randint(0, 256, (B, *PIXELS), dtype=torch.uint8)),
        "lstm_mlp": (LSTMCore(MLP((10,), hidden=(16,)), hidden_size=8), torch.randn(B, 10)),
        "lstm_nature": (
            LSTMCore(NatureCNN(PIXELS), hidden_size=32),
            torch.randint(0, 256, (B, *PIXELS), dtype=torch.uint8),
        ),
    }


HEADS = {
    "q": lambda d: QHead(d, A),
    "dueling_q": lambda d: QHead(d, A, dueling=True),
    "policy": lambda d: CategoricalPolicyHead(d, A),
    "value": lambda d: ValueHead(d),
}


@pytest.mark.parametrize("head_name", HEADS)
@pytest.mark.parametrize("backbone_name", make_backbones())
def test_every_backbone_with_every_head_gives_float_outputs_of_the_right_shape(backbone_name, head_name):
    backbone, obs = make_backbones()[backbone_name]
    head = HEADS[head_name](backbone.out_dim)
    features, state = backbone(obs)
    assert features.shape == (B, backbone.out_dim) and features.dtype == torch.float32
    out = head(features)
    assert out.shape == ((B,) if head_name == "value" else (B, A))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    if isinstance(backbone, LSTMCore):
        h, c = state
        assert h.shape == c.shape == (1, B, backbone.out_dim)
    else:
        assert state is None


@pytest.mark.parametrize("backbone_name", make_backbones())
def test_gradients_reach_every_parameter(backbone_name):
    backbone, obs = make_backbones()[backbone_name]
    head = QHead(backbone.out_dim, A, dueling=True)
    if isinstance(backbone, LSTMCore):
        seq = torch.stack([obs, obs])  # (T=2, B, ...) with a reset in the middle
        features, _ = backbone(seq, done=torch.tensor([[0, 0, 0], [1, 0, 1]]))
    else:
        features, _ = backbone(obs)
    head(features).pow(2).mean().backward()
    for name, p in [*backbone.named_parameters(), *head.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_uint8_pixels_are_scaled_inside_the_network():
    cnn = NatureCNN(PIXELS)
    pixels = torch.randint(0, 256, (2, *PIXELS), dtype=torch.uint8)
    from_uint8, _ = cnn(pixels)
    from_float, _ = cnn(pixels.float() / 255.0)
    torch.testing.assert_close(from_uint8, from_float)


def test_lstm_state_is_zeroed_where_done():
    torch.manual_seed(0)
    core = LSTMCore(MLP((5,), hidden=(8,)), hidden_size=4)
    seq = torch.randn(6, 2, 5)  # (T, B, 5)
    done = torch.zeros(6, 2)
    done[3, 0] = 1  # env 0 starts a new episode at t=3
    out, _ = core(seq, core.initial_state(2), done)
    fresh, _ = core(seq[3:, :1])  # env 0 from t=3 with a zero state
    torch.testing.assert_close(out[3:, 0], fresh[:, 0])
    carried, _ = core(seq[:, 1:])  # env 1 never resets: same as one uninterrupted pass
    torch.testing.assert_close(out[:, 1], carried[:, 0])
    assert not torch.allclose(out[3:, 0], carried[3:, 0])


def test_lstm_single_steps_match_a_sequence():
    core = LSTMCore(MLP((5,), hidden=(8,)), hidden_size=4)
    seq = torch.randn(4, 3, 5)
    whole, _ = core(seq)
    state = core.initial_state(3)
    for t in range(4):
        step_out, state = core(seq[t], state)
        torch.testing.assert_close(step_out, whole[t])


def test_lstm_spans_between_episode_starts_match_stepping_one_by_one():
    # The fused spans must give what single steps give, with resets at t=0, mid-sequence and at the end.
    torch.manual_seed(1)
    core = LSTMCore(MLP((5,), hidden=(8,)), hidden_size=4)
    seq, done = torch.randn(7, 3, 5), torch.zeros(7, 3, dtype=torch.bool)
    done[0, 1] = done[2, 0] = done[2, 2] = done[5, 1] = done[6, 0] = True
    state = (torch.randn(1, 3, 4), torch.randn(1, 3, 4))
    whole, (h, c) = core(seq, state, done)
    step_state = state
    for t in range(7):
        step_out, step_state = core(seq[t], step_state, done[t])
        torch.testing.assert_close(step_out, whole[t])
    torch.testing.assert_close(h, step_state[0])
    torch.testing.assert_close(c, step_state[1])


def test_dueling_head_keeps_mean_advantage_at_the_value():
    head = QHead(8, A, dueling=True)
    feats = torch.randn(5, 8)
    q = head(feats)
    torch.testing.assert_close(q.mean(-1), head.value(feats).squeeze(-1))


@pytest.mark.parametrize(
    "backbone, bad",
    [
        (NatureCNN(PIXELS), torch.zeros(2, 84, 84, 4, dtype=torch.uint8)),
        (MLP((10,)), torch.zeros(2, 11)),
        (ImpalaCNN(PIXELS), torch.zeros(2, 3, 84, 84, dtype=torch.uint8)),
        (NatureCNN(PIXELS), torch.zeros(2, *PIXELS, dtype=torch.bool)),
    ],
)
def test_wrong_observation_shape_or_dtype_names_expected_and_received(backbone, bad):
    with pytest.raises(ValueError) as err:
        backbone(bad)
    msg = str(err.value)
    expected = "(B, " + ", ".join(map(str, backbone.obs_shape)) + ")"
    assert expected in msg and str(tuple(bad.shape)) in msg


def test_orthogonal_init_gives_orthogonal_weights():
    mlp = MLP((16,), hidden=(16,))
    w = mlp.net[1].weight / nets.layers.RELU_GAIN
    torch.testing.assert_close(w @ w.T, torch.eye(16), atol=1e-5, rtol=0)


def test_device_auto_resolves_to_an_available_device():
    dev = nets.resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        nets.resolve_device("tpu")
