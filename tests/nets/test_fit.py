import torch

from nets import MLP, BackboneWithHead, CategoricalPolicyHead, accuracy, evaluate, fit


def overfitting_case(seed=0):
    # 40 training points with random labels: a wide MLP memorises them, so validation loss first
    # falls (real signal in half the labels) and then rises as it fits the noise.
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(240, 2, generator=g)
    y = (x[:, 0] > 0).long()
    flip = torch.rand(240, generator=g) < 0.4
    y[flip] = 1 - y[flip]
    model = BackboneWithHead(MLP((2,), hidden=(256, 256)), CategoricalPolicyHead(256, 2))
    return model, (x[:40], y[:40]), (x[40:], y[40:])


def test_fit_early_stops_and_restores_the_best_weights():
    torch.manual_seed(0)
    model, train, val = overfitting_case()
    history = fit(model, train, val, lr=3e-3, epochs=400, patience=15, batch_size=8, progress=False)
    assert history.stopped_early and history.epochs < 400
    assert history.epochs == history.best_epoch + 1 + 15
    best = min(history.val_loss)
    assert history.val_loss[history.best_epoch] == best
    assert history.val_loss[-1] > best  # it really overfitted after the best epoch
    # the model holds the best epoch's weights, not the last epoch's
    assert abs(evaluate(model, val)["loss"] - best) < 1e-5


def test_fit_learns_a_separable_problem_and_records_history():
    torch.manual_seed(0)
    x = torch.randn(400, 2)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = BackboneWithHead(MLP((2,), hidden=(32,)), CategoricalPolicyHead(32, 2))
    history = fit(
        model, (x[:300], y[:300]), (x[300:], y[300:]), epochs=30, patience=None, lr=1e-2,
        lr_schedule="linear", metrics={"accuracy": accuracy}, progress=False,
    )  # fmt: skip
    assert history.epochs == 30 and not history.stopped_early
    assert history.val_metrics["accuracy"][-1] > 0.95
    assert history.train_loss[-1] < history.train_loss[0] / 3
    assert history.lr[0] > history.lr[-1] > 0  # linear decay towards zero
    assert set(history.rows()[0]) == {"epoch", "train_loss", "lr", "val_loss", "val_accuracy"}


def test_fit_regression_with_mse_and_no_validation():
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 128).unsqueeze(1)
    y = 3 * x.squeeze(1) - 1
    lin = torch.nn.Linear(1, 1)
    model = torch.nn.Sequential(lin, torch.nn.Flatten(0))
    history = fit(model, (x, y), loss="mse", optimizer="sgd", lr=0.1, epochs=50, progress=False)
    assert history.val_loss == [] and history.best_epoch == 49
    assert abs(lin.weight.item() - 3) < 0.05 and abs(lin.bias.item() + 1) < 0.05


def test_fit_rejects_mismatched_data():
    import pytest

    model, train, _ = overfitting_case()
    with pytest.raises(ValueError, match="differ in length"):
        fit(model, (train[0], train[1][:5]), progress=False)
