"""to_torch(): self-contained torch modules that answer as the estimators."""

import io
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

from denoisenet import BottleneckClassifier, DenoisingAutoencoder

# torch 2.9+ deprecates TorchScript (jit.script, trace, load) in favour of
# torch.export; the modules still work with both, which is what is tested.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.*` is deprecated:DeprecationWarning"
)

# (estimator, output of to_torch, the method it reproduces)
CASES = [
    ("dae", "transform", "transform"),
    ("dae", "encode", "encode"),
    ("conv_dae", "transform", "transform"),
    ("clf", "transform", "transform"),
    ("clf", "predict_proba", "predict_proba"),
    ("conv_clf", "predict_proba", "predict_proba"),
]


def _data(kind):
    if kind == "digits":  # integers 0 to 16: a real scaling to undo
        X, y = load_digits(return_X_y=True)
        return X[:300], y[:300]
    rng = np.random.default_rng(0)
    X = rng.uniform(-3.0, 5.0, size=(120, 16))
    return X, (X[:, 0] > 1.0).astype(int)


def _estimator(name):
    common = {"max_iter": 2, "random_state": 0, "device": "cpu"}
    conv = {"architecture": "conv", "image_shape": (4, -1)}
    return {
        "dae": DenoisingAutoencoder((16, 4, 16), **common),
        "conv_dae": DenoisingAutoencoder(
            (16, 4, 16), conv_channels=(4, 8), **conv, **common
        ),
        "clf": BottleneckClassifier((16, 2, 8), **common),
        "conv_clf": BottleneckClassifier(
            (16, 2, 8), conv_channels=(4,), **conv, **common
        ),
    }[name]


@pytest.fixture(scope="module")
def fitted():
    cache = {}

    def get(name, kind):
        if (name, kind) not in cache:
            X, y = _data(kind)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning: 2 epochs
                cache[name, kind] = _estimator(name).fit(X, y), X
        return cache[name, kind]

    return get


def _assert_float32_close(actual, expected):
    # float32 rounding of values of the size of ``expected``.
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("kind", ["digits", "random"])
@pytest.mark.parametrize(("name", "output", "method"), CASES)
def test_module_answers_as_the_estimator(fitted, name, output, method, kind):
    est, X = fitted(name, kind)
    module = est.to_torch(output)
    assert isinstance(module, torch.nn.Module) and not module.training
    with torch.no_grad():
        out = module(torch.as_tensor(X, dtype=torch.float32)).numpy()
    _assert_float32_close(out, getattr(est, method)(X.astype(np.float32)))


@pytest.mark.parametrize(("name", "output", "method"), CASES)
def test_scripted_traced_and_exported_modules_agree(fitted, name, output, method):
    est, X = fitted(name, "digits")
    module = est.to_torch(output)
    x = torch.as_tensor(X, dtype=torch.float32)
    with torch.no_grad():
        eager = module(x)
        scripted = torch.jit.script(module)(x)
        traced = torch.jit.trace(module, x[:5])(x)
        batch = torch.export.Dim("batch")
        program = torch.export.export(module, (x[:5],), dynamic_shapes=({0: batch},))
        exported = program.module()(x)
    for other in (scripted, traced, exported):
        torch.testing.assert_close(other, eager)


def test_scripted_module_saves_and_loads_without_denoisenet(fitted, tmp_path):
    est, X = fitted("clf", "digits")
    path = tmp_path / "clf.pt"
    torch.jit.script(est.to_torch("predict_proba")).save(str(path))
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        proba = loaded(torch.as_tensor(X, dtype=torch.float32)).numpy()
    _assert_float32_close(proba, est.predict_proba(X))


def test_torch_onnx_export_runs_in_onnxruntime(fitted):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    est, X = fitted("dae", "digits")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # dynamo=False: the TorchScript exporter, which needs no onnxscript.
        torch.onnx.export(
            est.to_torch(),
            (torch.zeros(1, X.shape[1]),),
            buffer,
            input_names=["X"],
            dynamic_axes={"X": {0: "batch"}},
            dynamo=False,
        )
    session = ort.InferenceSession(
        buffer.getvalue(), providers=["CPUExecutionProvider"]
    )
    (out,) = session.run(None, {"X": X.astype(np.float32)})
    _assert_float32_close(out, est.transform(X.astype(np.float32)))


def test_module_is_a_copy(fitted):
    est, X = fitted("dae", "digits")
    before = est.transform(X)
    module = est.to_torch()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.zero_()
        module.data_range.fill_(2.0)
    np.testing.assert_array_equal(est.transform(X), before)


def test_scaling_travels_in_the_state_dict(fitted):
    est, _ = fitted("clf", "digits")
    state = est.to_torch("predict_proba").state_dict()
    assert float(state["data_min"]) == est.data_min_
    assert float(state["data_range"]) == np.float32(est.data_range_)


def test_unknown_output_and_unfitted_estimator_raise(fitted):
    est, _ = fitted("dae", "digits")
    with pytest.raises(ValueError, match="output='predict_proba' is not one of"):
        est.to_torch("predict_proba")
    # A list was a TypeError ("unhashable type").
    with pytest.raises(ValueError, match=r"output=\['transform'\] is not one of"):
        est.to_torch(["transform"])
    with pytest.raises(NotFittedError):
        BottleneckClassifier().to_torch()
