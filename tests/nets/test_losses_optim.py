import math

import pytest
import torch

import nets
from nets import cross_entropy, get_loss, huber, lr_factor, make_optimizer, mse


def test_losses_against_hand_computed_values():
    pred, target = torch.tensor([0.0, 2.0, -3.0]), torch.tensor([0.5, 0.0, 0.0])
    assert mse(pred, target).item() == pytest.approx((0.25 + 4 + 9) / 3)
    # Huber (delta=1): 0.5*0.5^2, then |e|-0.5 for the large errors
    assert huber(pred, target).item() == pytest.approx((0.125 + 1.5 + 2.5) / 3)
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    labels = torch.tensor([0, 1])
    # -log(1/2) and -log(1/4)
    assert cross_entropy(logits, labels).item() == pytest.approx((math.log(2) + math.log(4)) / 2)


def test_weights_scale_each_sample_as_advantages_do():
    logits = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([0, 1])
    weighted = cross_entropy(logits, labels, weights=torch.tensor([2.0, -1.0]))
    assert weighted.item() == pytest.approx((2 * math.log(2) - math.log(2)) / 2)


def test_unknown_names_are_rejected_with_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        get_loss("hinge")
    with pytest.raises(ValueError, match="choose one of"):
        make_optimizer("lbfgs", [torch.nn.Parameter(torch.zeros(1))], 1e-3)
    with pytest.raises(ValueError, match="learning rate must be positive"):
        make_optimizer("adam", [torch.nn.Parameter(torch.zeros(1))], 0.0)


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam", "adamw"])
def test_every_optimizer_minimises_a_quadratic(name):
    w = torch.nn.Parameter(torch.tensor([3.0, -2.0]))
    opt = make_optimizer(name, [w], lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    assert w.abs().max().item() < 0.1


def test_weight_decay_shrinks_weights_without_a_loss():
    w = torch.nn.Parameter(torch.ones(3))
    opt = make_optimizer("sgd", [w], lr=0.1, weight_decay=0.5, momentum=0.0)
    w.grad = torch.zeros(3)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((3,), 0.95))


def test_lr_schedules():
    assert lr_factor("constant", 0.7) == 1.0
    assert lr_factor("linear", 0.25) == pytest.approx(0.75)
    assert lr_factor("cosine", 0.0) == pytest.approx(1.0)
    assert lr_factor("cosine", 0.5) == pytest.approx(0.5)
    assert lr_factor("cosine", 1.0) == pytest.approx(0.0)
    assert lr_factor(lambda p: 2 * p, 0.3) == pytest.approx(0.6)


def test_entropy_of_uniform_and_certain_distributions_and_weights():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]])
    per_row = torch.tensor([math.log(4), 0.0])
    torch.testing.assert_close(nets.entropy(logits), per_row.mean())
    torch.testing.assert_close(nets.entropy(logits, weights=torch.tensor([2.0, 0.0])), per_row[0])
