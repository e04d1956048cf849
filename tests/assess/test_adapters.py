"""Model adapters: output kinds detected, class counts inferred, scikit-learn models converted exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from garrison.assess import GradientUnavailableError, OutputKind, SklearnModel, TorchModel, as_model
from garrison.assess.adapters import detect_output_kind
from garrison.core.errors import GarrisonError, InputError
from tests.assess.conftest import fit_quietly


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_torch_module_logits_detected_and_classes_inferred(mlp: Any, digits: Any) -> None:
    model = as_model(mlp)
    assert isinstance(model, TorchModel)
    x = digits[2]
    scores = model.scores(x)
    assert model.output_kind is OutputKind.LOGITS
    assert model.n_classes == 10
    with torch.no_grad():
        np.testing.assert_allclose(scores, mlp(torch.as_tensor(x)).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.probabilities(x), softmax(scores), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(model.predict(torch.as_tensor(x)), model.predict(x))


def test_softmax_module_is_read_as_probabilities(mlp: Any, digits: Any) -> None:
    wrapped = TorchModel(torch.nn.Sequential(mlp, torch.nn.Softmax(dim=1)))
    logits = TorchModel(mlp)
    x, y = digits[2], digits[3]
    np.testing.assert_array_equal(wrapped.predict(x), logits.predict(x))
    assert wrapped.output_kind is OutputKind.PROBABILITIES
    np.testing.assert_allclose(wrapped.probabilities(x), logits.probabilities(x), atol=1e-5)
    with pytest.raises(GarrisonError, match="outputs probabilities, not logits"):
        wrapped.logits(x)
    # the log of probabilities is the log-softmax of the logits: same cross-entropy gradient
    np.testing.assert_allclose(wrapped.gradient(x[:8], y[:8]), logits.gradient(x[:8], y[:8]), atol=1e-4)


def test_log_softmax_module_is_read_as_log_probabilities(mlp: Any, digits: Any) -> None:
    model = TorchModel(torch.nn.Sequential(mlp, torch.nn.LogSoftmax(dim=1)))
    model.predict(digits[2])
    assert model.output_kind is OutputKind.LOG_PROBABILITIES


def test_detect_output_kind_table() -> None:
    assert detect_output_kind(np.array([[0.2, 0.8], [0.5, 0.5]])) is OutputKind.PROBABILITIES
    assert detect_output_kind(np.log(np.array([[0.2, 0.8], [0.5, 0.5]]))) is OutputKind.LOG_PROBABILITIES
    assert detect_output_kind(np.array([[0.2, 0.7], [0.5, 0.5]])) is OutputKind.LOGITS
    assert detect_output_kind(np.array([[3.0, -1.0]])) is OutputKind.LOGITS
    with pytest.raises(InputError):
        detect_output_kind(np.zeros((2, 3, 4)))


def test_torch_gradient_matches_finite_differences(mlp: Any, digits: Any) -> None:
    model = TorchModel(mlp)
    x, y = digits[2][:4].astype(np.float64), digits[3][:4]
    g = model.gradient(x, y)
    assert g.shape == x.shape
    h = 1e-2
    for j in (10, 27, 44):
        xp, xm = x.copy(), x.copy()
        xp[:, j] += h
        xm[:, j] -= h
        lp = -np.log(model.probabilities(xp)[np.arange(4), y])
        lm = -np.log(model.probabilities(xm)[np.arange(4), y])
        np.testing.assert_allclose(g[:, j], (lp - lm) / (2 * h), rtol=0.05, atol=1e-3)


class _ViewNet(torch.nn.Module):
    """A conv net that flattens with ``view``, which a channels-last tensor with 2 channels cannot take."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(2 * 4 * 4, 3)
        self.conv = torch.nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(x.view(len(x), -1))
        return out


def _conv_net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 3),
    ).eval()


def test_conv_net_is_fed_channels_last_with_the_same_scores_and_gradients() -> None:
    net = _conv_net()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = np.array([0, 1, 2, 0, 1, 2])
    model = TorchModel(net)
    model.ensure_probed(x)
    assert model._channels_last
    with torch.no_grad():
        plain = net(x).numpy()
    np.testing.assert_allclose(model.scores(x), plain, rtol=1e-5, atol=1e-6)
    xg = x.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(net(xg), torch.as_tensor(y), reduction="sum")
    (expected,) = torch.autograd.grad(loss, xg)
    np.testing.assert_allclose(model.gradient(x, y), expected.numpy(), rtol=1e-4, atol=1e-6)
    assert next(net.parameters()).is_contiguous()  # the user's module keeps its own layout
    assert not net[2]._forward_hooks  # the pooling hook lives only during a call


def test_module_that_views_its_input_keeps_the_default_layout() -> None:
    model = TorchModel(_ViewNet().eval())
    x = torch.rand(5, 2, 4, 4)
    model.ensure_probed(x)
    assert not model._channels_last
    assert model.scores(x).shape == (5, 3)
    mlp_model = TorchModel(_conv_net()[3:])  # no convolution: never switched
    mlp_model.ensure_probed(torch.rand(2, 4, 4, 4))
    assert not mlp_model._channels_last


def test_torch_labels_must_be_class_indices_and_shapes_must_fit(mlp: Any, digits: Any) -> None:
    model = as_model(mlp)
    np.testing.assert_array_equal(model.label_indices(np.array([1.0, 3.0])), [1, 3])
    for bad in (np.array([1.5]), np.array(["a"]), np.array([np.nan]), np.array([-1])):
        with pytest.raises(InputError, match="class indices"):
            model.label_indices(bad)
    with pytest.raises(InputError, match=r"failed on inputs of shape \(2, 5\)"):
        model.scores(np.zeros((2, 5), np.float32))
    x = digits[2][:4]
    with pytest.raises(InputError, match="label 12 is not a class"):
        model.gradient(x, np.full(4, 12))


def test_logistic_regression_converted_exactly(logreg: Any, digits: Any) -> None:
    model = SklearnModel(logreg)
    x = digits[2]
    assert model.has_gradients
    assert model.output_kind is OutputKind.LOGITS
    np.testing.assert_allclose(model.scores(x), logreg.decision_function(x), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(model.predict(x), logreg.predict(x))
    assert np.abs(model.gradient(x[:5], digits[3][:5])).sum() > 0


def test_binary_logistic_regression_gets_two_scores(digits: Any) -> None:
    x, y = digits[0], digits[1]
    labels = np.where(y < 5, "low", "high")
    clf = fit_quietly(LogisticRegression(max_iter=60), x[:600], labels[:600])
    model = SklearnModel(clf)
    assert model.n_classes == 2
    np.testing.assert_array_equal(model.classes[model.predict(x)], clf.predict(x))
    np.testing.assert_allclose(model.probabilities(x), clf.predict_proba(x), atol=1e-5)
    np.testing.assert_array_equal(model.label_indices(np.array(["high", "low"])), [0, 1])
    with pytest.raises(InputError, match="labels not among"):
        model.label_indices(np.array(["medium"]))


def test_sklearn_mlp_converted_exactly(sk_mlp: Any, digits: Any) -> None:
    model = as_model(sk_mlp)
    x = digits[2]
    assert model.has_gradients
    np.testing.assert_array_equal(model.predict(x), sk_mlp.predict(x))
    np.testing.assert_allclose(softmax(model.scores(x)), sk_mlp.predict_proba(x), atol=1e-4)


@pytest.mark.parametrize("scaler", [StandardScaler, MinMaxScaler])
def test_scaler_pipeline_converted(scaler: Any, digits: Any) -> None:
    pipe = fit_quietly(
        make_pipeline(scaler(), LogisticRegression(max_iter=60)), digits[0][:600], digits[1][:600]
    )
    model = SklearnModel(pipe)
    assert model.has_gradients
    np.testing.assert_allclose(
        model.scores(digits[2]), pipe.decision_function(digits[2]), rtol=1e-3, atol=1e-3
    )


def test_random_forest_is_black_box(forest: Any, digits: Any) -> None:
    model = as_model(forest)
    x = digits[2]
    assert not model.has_gradients
    assert model.output_kind is OutputKind.PROBABILITIES
    np.testing.assert_allclose(model.probabilities(x), forest.predict_proba(x), atol=1e-6)
    np.testing.assert_array_equal(model.predict(x), forest.predict(x))
    with pytest.raises(GradientUnavailableError, match="no input gradients"):
        model.gradient(x, digits[3][:120])


def test_unsupported_objects_are_rejected() -> None:
    with pytest.raises(InputError, match="cannot assess"):
        as_model(object())
    with pytest.raises(InputError, match="no classes_"):
        SklearnModel(LogisticRegression())
