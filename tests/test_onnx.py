"""denoisenet.onnx: skl2onnx converters, checked with onnxruntime.

Tolerances: the ONNX graphs compute in float32 like the estimators, so
outputs agree to float32 rounding (relative 1e-5); scikit-learn's own
steps (LogisticRegression) compute in float64 in Python and in float32 in
ONNX, so their probabilities agree to 1e-4.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline

from denoisenet import (
    BottleneckClassifier,
    DenoisingAutoencoder,
    GaussianPixelNoise,
    MaskingNoise,
    SaltAndPepperNoise,
)

skl2onnx = pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")
import denoisenet.onnx  # noqa: E402  (after the skips)


@pytest.fixture(scope="module", autouse=True)
def _registered():
    denoisenet.onnx.register()


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400].astype(np.float32), y[:400]


def _fit(est, X, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of short fits
        return est.fit(X, y)


def _run(onx, X):
    session = ort.InferenceSession(
        onx.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {session.get_inputs()[0].name: X})


def _assert_float32_close(actual, expected):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6 * scale)


def _assert_same_labels(labels, expected, proba):
    # Labels may differ only where the two best classes tie to rounding.
    top2 = np.sort(proba, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4
    np.testing.assert_array_equal(labels[clear], expected[clear])


def _dae(**kwargs):
    return DenoisingAutoencoder((32, 8, 32), max_iter=3, random_state=0, **kwargs)


def _clf(**kwargs):
    return BottleneckClassifier((32, 2, 16), max_iter=3, random_state=0, **kwargs)


def test_pipeline_from_the_issue(digits):
    X, y = digits
    pipe = _fit(make_pipeline(_dae(), LogisticRegression(max_iter=300)), X, y)
    onx = skl2onnx.to_onnx(pipe, X[:1], options={"zipmap": False})
    labels, proba = _run(onx, X)
    expected = pipe.predict_proba(X)
    np.testing.assert_allclose(proba, expected, atol=1e-4)
    _assert_same_labels(labels, pipe.predict(X), expected)


def test_pipeline_converts_with_default_zipmap(digits):
    X, y = digits
    pipe = _fit(make_pipeline(_dae(), LogisticRegression(max_iter=300)), X, y)
    _, proba = _run(skl2onnx.to_onnx(pipe, X[:1]), X)
    assert set(proba[0]) == set(pipe.classes_.tolist())


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("architecture", ["dense", "conv"])
def test_autoencoder_transform(digits, architecture, batch_norm):
    X, _ = digits
    dae = _dae(architecture=architecture, conv_channels=(4, 8), batch_norm=batch_norm)
    dae = _fit(dae, X)
    (out,) = _run(skl2onnx.to_onnx(dae, X[:1]), X)
    _assert_float32_close(out, dae.transform(X))


def test_autoencoder_on_data_outside_the_unit_range():
    rng = np.random.default_rng(0)
    X = rng.uniform(-50.0, 20.0, size=(150, 12)).astype(np.float32)
    dae = _fit(_dae(), X)
    (out,) = _run(skl2onnx.to_onnx(dae, X[:1]), X)
    _assert_float32_close(out, dae.transform(X))


@pytest.mark.parametrize("architecture", ["dense", "conv"])
@pytest.mark.parametrize("labels", ["int", "str"])
def test_classifier_label_and_probabilities(digits, architecture, labels):
    X, y = digits
    y = y.astype(str) if labels == "str" else y + 10
    clf = _fit(_clf(architecture=architecture, conv_channels=(4,)), X, y)
    _assert_converts_as_it_predicts(clf, X)


def _assert_converts_as_it_predicts(clf, X):
    onx = skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False})
    predicted, proba = _run(onx, X)
    expected = clf.predict_proba(X)
    _assert_float32_close(proba, expected)
    _assert_same_labels(predicted, clf.predict(X), expected)


def test_classifier_as_transformer_inside_a_pipeline(digits):
    X, y = digits
    pipe = _fit(make_pipeline(_clf(), KNeighborsClassifier()), X, y)
    options = {
        BottleneckClassifier: {"transform": True},
        KNeighborsClassifier: {"zipmap": False},
    }
    labels, _ = _run(skl2onnx.to_onnx(pipe, X[:1], options=options), X)
    # Only the map is compared exactly; the neighbours' votes follow it.
    (code,) = _run(skl2onnx.to_onnx(pipe[0], X[:1], options={"transform": True}), X)
    _assert_float32_close(code, pipe[0].transform(X))
    assert np.mean(labels == pipe.predict(X)) > 0.99


@pytest.mark.parametrize(
    "noise", [GaussianPixelNoise, SaltAndPepperNoise, MaskingNoise]
)
def test_noise_has_no_graph_and_says_what_to_do(digits, noise):
    X, _ = digits
    pipe = _fit(make_pipeline(noise(), _dae()), X)
    with pytest.raises(RuntimeError, match=r"has no ONNX graph.*pipe\[1:\]"):
        skl2onnx.to_onnx(pipe, X[:1])
    # The advice works.
    (out,) = _run(skl2onnx.to_onnx(pipe[1:], X[:1]), X)
    _assert_float32_close(out, pipe[1:].transform(X))


def test_register_is_idempotent_and_not_done_on_import():
    import subprocess
    import sys

    code = (
        "import sys, denoisenet; "
        "assert 'skl2onnx' not in sys.modules and 'onnx' not in sys.modules; "
        "import denoisenet.onnx; assert 'skl2onnx' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    denoisenet.onnx.register()
    denoisenet.onnx.register()


def test_an_unfitted_estimator_is_not_fitted(digits):
    from sklearn.exceptions import NotFittedError

    X, _ = digits
    # An AttributeError on n_features_in_, and skl2onnx's "No known ways to
    # retrieve the number of classes".
    for est in (_dae(), _clf()):
        with pytest.raises(NotFittedError):
            skl2onnx.to_onnx(est, X[:1])


def test_classifier_of_8_bit_images(digits):
    X, y = digits
    X8 = (X * 15).astype(np.uint8)
    # skl2onnx's check of classifier inputs refused uint8.
    _assert_converts_as_it_predicts(_fit(_clf(), X8, y), X8)


def test_labels_beyond_int64_are_refused_not_wrapped(digits):
    X, y = digits
    labels = np.where(y < 5, np.uint64(1), np.uint64(2**63 + 7))
    clf = _fit(_clf(), X, labels)
    with pytest.raises(NotImplementedError, match="int64"):
        skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False})
