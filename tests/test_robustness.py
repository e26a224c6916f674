"""Robustness: hostile inputs, parameter validation, faults and persistence.

Hypothesis throws hostile data at every public estimator, at ``load_idx`` and
at the command line's argument parser. Every call must either raise a
ValueError or TypeError whose message names the problem (never an error from
inside torch), or give a result of the right shape with finite values; and
no call may modify its input.

The number of examples tried is counted and reported by the last test, so
that it shows in CI's output.
"""

import argparse
import ast
import collections
import contextlib
import copy
import functools
import gzip
import importlib
import inspect
import io
import math
import pickle
import pkgutil
import re
import struct
import sys
import tempfile
import traceback
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_array

import denoisenet
from denoisenet import (
    BottleneckClassifier,
    DenoisingAutoencoder,
    GaussianPixelNoise,
    MaskingNoise,
    SaltAndPepperNoise,
    _resources,
    _training,
)
from denoisenet._base import NeuralEstimatorBase
from denoisenet._networks import (
    ACTIVATIONS,
    autoencoder_parameter_count,
    bottleneck_parameter_count,
)
from denoisenet._resources import TRAINING_COPIES
from denoisenet.datasets import load_idx

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore:X has feature names:UserWarning"),
    pytest.mark.filterwarnings("ignore:X does not have valid feature names"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.DataConversionWarning"),
    # numpy's own warnings on the way to a clear error: sklearn's finiteness
    # check sums inf and -inf; scaling data beyond float32 overflows.
    pytest.mark.filterwarnings("ignore:invalid value encountered in reduce"),
    pytest.mark.filterwarnings("ignore:overflow encountered in subtract"),
]

# -- counting examples --------------------------------------------------------

EXAMPLES = collections.Counter()
COUNTED_TESTS = {
    "test_noise_transformers_survive_hostile_data",
    "test_autoencoder_survives_hostile_data",
    "test_classifier_survives_hostile_data",
    "test_classifier_survives_hostile_labels",
    "test_classifier_survives_hostile_sample_weights",
    "test_invalid_parameter_is_named_at_fit",
    "test_in_domain_extreme_parameters_never_leak_torch_errors",
    "test_fault_during_fit_leaves_a_usable_estimator",
    "test_tampered_pickle_is_refused_without_running_its_payload",
    "test_load_idx_survives_random_bytes",
    "test_load_idx_survives_garbled_headers",
    "test_cli_parser_exits_cleanly_or_gives_a_valid_namespace",
}
MIN_EXAMPLES = 3000


def tried(name):
    EXAMPLES[name] += 1


fuzz = functools.partial(
    settings,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)

TORCH_DIR = str(Path(torch.__file__).resolve().parent)
OOM_ERROR = getattr(torch, "OutOfMemoryError", None)


def _oom():
    if OOM_ERROR is not None:
        return OOM_ERROR("CUDA out of memory. Tried to allocate 2.00 GiB")
    return RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


# -- helpers ------------------------------------------------------------------


def attempt(call):
    """``(result, None)`` or ``(None, exception)``."""
    try:
        return call(), None
    except Exception as exc:
        return None, exc


def assert_clear_error(exc, context=""):
    """A ValueError/TypeError with a message, raised outside torch."""
    assert isinstance(exc, (ValueError, TypeError)), (
        f"{context}: {type(exc).__name__} instead of ValueError/TypeError: {exc!r}"
    )
    assert str(exc).strip(), f"{context}: {type(exc).__name__} without a message"
    frames = traceback.extract_tb(exc.__traceback__)
    assert frames
    last = str(Path(frames[-1].filename).resolve())
    assert not last.startswith(TORCH_DIR), (
        f"{context}: {type(exc).__name__} raised inside torch ({last}): {exc}"
    )


def fitted_attributes(estimator):
    return sorted(
        name for name in vars(estimator) if name.endswith("_") and name[0] != "_"
    )


def snapshot(X):
    if isinstance(X, pd.DataFrame | pd.Series):
        return X.copy(deep=True)
    if sp.issparse(X):
        return X.copy()
    if isinstance(X, np.ndarray):
        return (np.array(X, copy=True), X.flags.writeable)
    return copy.deepcopy(X)


def assert_unchanged(X, before):
    if isinstance(X, pd.DataFrame):
        pd.testing.assert_frame_equal(X, before, check_exact=True)
    elif isinstance(X, pd.Series):
        pd.testing.assert_series_equal(X, before, check_exact=True)
    elif sp.issparse(X):
        assert X.format == before.format
        for name in ("data", "indices", "indptr", "row", "col"):
            if hasattr(before, name):
                np.testing.assert_array_equal(getattr(X, name), getattr(before, name))
    elif isinstance(X, np.ndarray):
        copy_, writeable = before
        assert X.flags.writeable == writeable
        assert X.dtype == copy_.dtype and X.shape == copy_.shape
        if X.dtype.kind == "O":
            assert repr(X.tolist()) == repr(copy_.tolist())
        else:
            assert np.asarray(X).tobytes() == copy_.tobytes()
    else:
        assert repr(X) == repr(before)


def n_rows(X):
    shape = getattr(X, "shape", None)
    if shape is not None:
        return shape[0] if len(shape) else 1
    return len(X)


# -- hostile arrays -----------------------------------------------------------

ACCEPT, REJECT, EITHER = "accept", "reject", "either"

# Values are drawn by numpy from a seed that hypothesis picks: far faster
# than drawing every element through hypothesis, and the shapes, kinds and
# layouts (where the bugs live) still shrink.
VALUES = {
    "unit": lambda rng, shape: rng.random(shape),
    "pixels": lambda rng, shape: rng.integers(0, 256, shape).astype(np.float64),
    "wide": lambda rng, shape: rng.uniform(-1e6, 1e6, shape),
    "extreme": lambda rng, shape: rng.choice(
        [1e30, -1e30, 0.0, 1.0, 1e20, -1e20, 1e-30], shape
    ),
    "tiny": lambda rng, shape: rng.choice(
        [0.0, 5e-324, -5e-324, 1e-310, 1e-300, -1e-300, 1e-45], shape
    ),
    "beyond-float32": lambda rng, shape: rng.choice(
        [1e39, -1e39, 3.4e38, -3.4e38, 1e300, -1e300, 1.0], shape
    ),
}


def rngs():
    return st.integers(0, 2**32 - 1).map(np.random.default_rng)


@dataclass
class Hostile:
    """A hostile input and what an estimator should make of it."""

    kind: str
    X: object
    expect: str
    memmap_order: str | None = None  # written to a read-only memmap in the test

    def __repr__(self):
        X = self.X
        shown = f"{type(X).__name__} {getattr(X, 'dtype', '')} {shape_of(X)}"
        if isinstance(X, np.ndarray) and X.size <= 40:
            shown += f" {X.tolist()!r}"
        return f"Hostile({self.kind!r}, {shown}, {self.expect})"


@st.composite
def matrices(draw, min_rows=1, min_cols=1, values=None, dtype=np.float64, max_rows=20):
    n = draw(st.integers(min_rows, max_rows))
    d = draw(st.integers(min_cols, 16))
    name = values or draw(
        st.sampled_from(["unit", "pixels", "wide", "extreme", "tiny"])
    )
    X = VALUES[name](draw(rngs()), (n, d))
    return X.astype(dtype)


@st.composite
def numeric_frames(draw, poison=None):
    n = draw(st.integers(1, 12))
    d = draw(st.integers(1, 6))
    rng = draw(rngs())
    columns = {}
    for j in range(d):
        dtype = draw(
            st.sampled_from(
                ["float64", "float32", "int8", "int64", "uint8", "bool", "Int64"]
            )
        )
        if dtype == "bool":
            values = rng.random(n) < 0.5
        elif dtype in ("float64", "float32"):
            values = rng.uniform(-1e6, 1e6, n)
        else:
            values = rng.integers(0, 101, n)
        columns[f"c{j}"] = pd.Series(values).astype(dtype)
    if poison is not None:
        column = {
            "strings": pd.Series(["a", "b", "c"] * n)[:n].to_numpy(),
            "objects": pd.Series([{"x": 1}, [1], None] * n, dtype=object)[:n],
            "missing": pd.array([None] + [1.5] * (n - 1), dtype="Float64"),
            "dates": pd.date_range("2000-01-01", periods=n),
        }[poison]
        columns[draw(st.sampled_from([*columns, "extra"]))] = column
    return pd.DataFrame(columns)


def _accepting(draw):
    """An array of a kind every estimator must accept."""
    kind = draw(
        st.sampled_from(
            [
                "float64",
                "float32",
                "float16",
                "uint8",
                "int64",
                "bool",
                "fortran",
                "strided",
                "big-endian",
                "unaligned",
                "read-only",
                "memmap",
                "constant",
                "extreme",
                "single-sample",
                "list",
                "object-numbers",
                "frame",
            ]
        )
    )
    X = draw(matrices())
    memmap_order = None
    if kind == "float32":
        X = X.astype(np.float32)
    elif kind == "float16":
        X = draw(matrices(values=draw(st.sampled_from(["unit", "pixels"])))).astype(
            np.float16
        )
    elif kind == "uint8":
        X = draw(matrices(values="pixels")).astype(np.uint8)
    elif kind == "int64":
        X = draw(rngs()).integers(-(2**62), 2**62, size=X.shape)
    elif kind == "bool":
        X = X > np.median(X)
    elif kind == "fortran":
        X = np.asfortranarray(X.astype(draw(st.sampled_from([np.float32, np.float64]))))
    elif kind == "strided":
        X = X.astype(draw(st.sampled_from([np.float32, np.float64])))
        big = np.repeat(np.repeat(X, 2, axis=0), 2, axis=1)
        X = {
            "step": big[::2, ::2],
            "reversed": X[::-1, ::-1],
            "reversed-rows": X[::-1],
            "transposed": X.T,
            "broadcast": np.broadcast_to(X[:1], X.shape),
        }[
            draw(
                st.sampled_from(
                    ["step", "reversed", "reversed-rows", "transposed", "broadcast"]
                )
            )
        ]
    elif kind == "big-endian":
        X = draw(matrices(values="pixels")).astype(
            draw(st.sampled_from([">f4", ">f8", ">i4"]))
        )
    elif kind == "unaligned":
        data = X.astype(np.float32)
        buffer = b"\x00" + data.tobytes()
        X = np.frombuffer(buffer, np.float32, offset=1).reshape(data.shape)
    elif kind == "read-only":
        X = X.astype(draw(st.sampled_from([np.float32, np.float64])))
        X.flags.writeable = False
    elif kind == "memmap":
        X = X.astype(draw(st.sampled_from([np.float32, np.float64])))
        memmap_order = draw(st.sampled_from(["C", "F"]))
    elif kind == "constant":
        value = draw(st.sampled_from([0.0, 1.0, 0.5, 255.0, -3.0, 1e30, -1e30]))
        X = np.full(X.shape, value)
    elif kind == "extreme":
        X = draw(matrices(values="extreme"))
    elif kind == "single-sample":
        X = X[:1]
    elif kind == "list":
        X = X.tolist()
    elif kind == "object-numbers":
        X = X.astype(object)
    elif kind == "frame":
        X = draw(numeric_frames())
    return Hostile(kind, X, ACCEPT, memmap_order)


def _rejecting(draw):
    """An array of a kind every estimator must reject."""
    kind = draw(
        st.sampled_from(
            [
                "nan",
                "inf",
                "no-rows",
                "no-columns",
                "1-d",
                "3-d",
                "0-d",
                "complex",
                "sparse",
                "strings",
                "objects",
                "ragged",
                "frame-strings",
                "frame-objects",
                "frame-missing",
            ]
        )
    )
    X = draw(matrices())
    if kind in ("nan", "inf"):
        bad = [np.nan] if kind == "nan" else [np.inf, -np.inf]
        mask = draw(rngs()).random(X.shape) < draw(st.sampled_from([0.0, 0.3, 1.0]))
        mask.flat[draw(st.integers(0, X.size - 1))] = True
        X[mask] = draw(st.sampled_from(bad))
        with np.errstate(over="ignore"):  # float16 overflows to inf: still bad
            X = X.astype(draw(st.sampled_from([np.float16, np.float32, np.float64])))
    elif kind == "no-rows":
        X = X[:0]
    elif kind == "no-columns":
        X = X[:, :0]
    elif kind == "1-d":
        X = X[0]
    elif kind == "3-d":
        X = X[:, :, None]
    elif kind == "0-d":
        X = np.asarray(X[0, 0])
    elif kind == "complex":
        X = X + 1j * draw(st.sampled_from([0.0, 1.0]))
    elif kind == "sparse":
        make = draw(
            st.sampled_from([sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.csr_array])
        )
        X = make(X)
    elif kind == "strings":
        words = ["", "a", "nan", "inf", "x1", "1e", "NaN", "-", "ab c", "\u00e9"]
        X = draw(rngs()).choice(words, X.shape)
        X.flat[0] = draw(st.sampled_from(["a", "x", "", "1,5", "0x1"]))
    elif kind == "objects":
        junk = st.sampled_from([None, "a", {"x": 1}, [1, 2], object(), b"x"])
        X = X.astype(object)
        X.flat[draw(st.integers(0, X.size - 1))] = draw(junk)
    elif kind == "ragged":
        X = X.tolist()
        X.append([1.0] * (len(X[0]) + 1))
    else:
        X = draw(numeric_frames(poison=kind.removeprefix("frame-")))
    return Hostile(kind, X, REJECT)


def _unsure(draw):
    """Inputs an estimator may accept or reject, but never mishandle."""
    kind = draw(
        st.sampled_from(
            ["beyond-float32", "numeric-strings", "subnormal", "frame-dates"]
        )
    )
    X = draw(matrices())
    if kind == "frame-dates":  # datetime64 alone converts to float
        X = draw(numeric_frames(poison="dates"))
    elif kind == "beyond-float32":
        X = VALUES["beyond-float32"](draw(rngs()), X.shape)
    elif kind == "numeric-strings":
        X = X.astype(str)
    else:
        X = draw(matrices(values="tiny"))
    return Hostile(kind, X, EITHER)


@st.composite
def hostile_arrays(draw):
    """Hostile inputs of many kinds, with what is expected of each."""
    maker = draw(st.sampled_from([_accepting, _accepting, _rejecting, _unsure]))
    return maker(draw)


@contextlib.contextmanager
def materialized(case):
    """The case's input; a memmap on a temporary file if the case says so."""
    if case.memmap_order is None:
        yield case.X
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "X.dat"
        data = np.asarray(case.X)
        writer = np.memmap(
            path, dtype=data.dtype, mode="w+", shape=data.shape, order=case.memmap_order
        )
        writer[:] = data
        writer.flush()
        del writer
        X = np.memmap(
            path, dtype=data.dtype, mode="r", shape=data.shape, order=case.memmap_order
        )
        yield X
        del X


def shape_of(X):
    return np.asarray(X, dtype=object).shape if isinstance(X, list) else X.shape


# -- the estimators under test ------------------------------------------------

TINY = {"hidden_layer_sizes": (8, 2, 8), "max_iter": 1, "device": "cpu"}


def make_dae(**params):
    return DenoisingAutoencoder(**{**TINY, "random_state": 0, **params})


def make_clf(**params):
    return BottleneckClassifier(**{**TINY, "random_state": 0, **params})


NOISE_MAKERS = {
    "gaussian": lambda: GaussianPixelNoise(random_state=0),
    "gaussian-unclipped": lambda: GaussianPixelNoise(3.0, clip=None, random_state=0),
    "gaussian-zero": lambda: GaussianPixelNoise(0.0, clip=None, random_state=1),
    "salt-and-pepper": lambda: SaltAndPepperNoise(0.5, random_state=0),
    "masking": lambda: MaskingNoise(0.5, value=-2.0, random_state=0),
}


def clean_data(n_samples, n_features, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n_samples, n_features))
    y = np.arange(n_samples) % 2
    return X, y


@functools.cache
def fitted(family, n_features):
    """An estimator fitted on clean data with ``n_features`` (shared, read-only)."""
    X, y = clean_data(12, n_features)
    if family == "dae":
        return make_dae(max_iter=2).fit(X)
    if family == "clf":
        return make_clf(max_iter=2).fit(X, y)
    return NOISE_MAKERS[family]().fit(X)


def prediction_features(case):
    """The number of features to fit on before predicting on ``case.X``."""
    shape = shape_of(case.X)
    return shape[1] if len(shape) == 2 and shape[1] > 0 else 3


def check_outcome(case, estimator, run, check, context, shared=False):
    """Run ``run()`` on the case; check its error or its result.

    A ``shared`` (already fitted) estimator must come out as it went in.
    """
    before = snapshot(case.X)
    state = dict(vars(estimator))
    result, exc = attempt(run)
    assert_unchanged(case.X, before)
    if shared:
        assert vars(estimator).keys() == state.keys()
        assert all(vars(estimator)[k] is v for k, v in state.items())
    if exc is not None:
        assert case.expect != ACCEPT, f"{context}: {case!r} rejected: {exc!r}"
        assert_clear_error(exc, f"{context} on {case!r}")
        return None
    assert case.expect != REJECT, f"{context}: {case!r} was accepted"
    check(result)
    return result


def assert_finite_array(out, shape, context=""):
    assert isinstance(out, np.ndarray), context
    assert out.shape == shape, f"{context}: shape {out.shape}, expected {shape}"
    assert out.dtype in (np.float32, np.float64), context
    assert np.isfinite(out).all(), f"{context}: non-finite output {out!r}"


# -- hostile data: noise transformers -----------------------------------------


@pytest.mark.filterwarnings("ignore:X has values:UserWarning")
@fuzz(max_examples=450)
@given(
    case=hostile_arrays(),
    noise=st.sampled_from(sorted(NOISE_MAKERS)),
    predict=st.booleans(),
)
def test_noise_transformers_survive_hostile_data(case, noise, predict):
    tried("test_noise_transformers_survive_hostile_data")
    with materialized(case) as X:
        case = Hostile(case.kind, X, case.expect)
        if predict:
            transformer = fitted(noise, prediction_features(case))
        else:
            transformer = NOISE_MAKERS[noise]()

        stage = []

        def run():
            if not predict:
                transformer.fit(X)
                stage.append("fitted")
            return transformer.transform(X)

        def check(out):
            reference = check_array(X, dtype=out.dtype)
            assert_finite_array(out, reference.shape, noise)
            if noise == "gaussian":
                assert ((out >= 0) & (out <= 1)).all()
            elif noise == "gaussian-zero":
                np.testing.assert_array_equal(out, reference)
            elif noise == "salt-and-pepper":
                assert ((out == reference) | (out == 0) | (out == 1)).all()
            elif noise == "masking":
                assert ((out == reference) | (out == -2)).all()

        result = check_outcome(case, transformer, run, check, noise, shared=predict)
        if result is None and not predict and not stage:
            assert fitted_attributes(transformer) == [], "a failed fit left attributes"


# -- hostile data: the auto-encoder -------------------------------------------


@fuzz(max_examples=220)
@given(case=hostile_arrays(), predict=st.booleans())
def test_autoencoder_survives_hostile_data(case, predict):
    tried("test_autoencoder_survives_hostile_data")
    with materialized(case) as X:
        # Batch normalisation (the default) cannot train on one row.
        if not predict and case.expect == ACCEPT and n_rows(X) < 2:
            case = Hostile("one-row", X, REJECT)
        else:
            case = Hostile(case.kind, X, case.expect)
        if predict:
            dae = fitted("dae", prediction_features(case))
        else:
            dae = make_dae()

        stage = []

        def run():
            if not predict:
                dae.fit(X)
                stage.append("fitted")
            codes = dae.encode(X)
            return dae.transform(X), codes, dae.score(X), dae.decode(codes)

        def check(result):
            out, codes, score, decoded = result
            shape = np.shape(X)
            assert_finite_array(out, shape, "transform")
            assert_finite_array(codes, (shape[0], 2), "encode")
            assert_finite_array(decoded, shape, "decode")
            assert math.isfinite(score) and score <= 0
            assert math.isfinite(dae.data_min_) and math.isfinite(dae.data_range_)
            assert dae.data_range_ > 0

        context = "DenoisingAutoencoder"
        result = check_outcome(case, dae, run, check, context, shared=predict)
        if result is None and not predict and not stage:
            assert fitted_attributes(dae) == [], "a failed fit left attributes"


# -- hostile data: the classifier ---------------------------------------------


@fuzz(max_examples=220)
@given(case=hostile_arrays(), predict=st.booleans())
def test_classifier_survives_hostile_data(case, predict):
    tried("test_classifier_survives_hostile_data")
    with materialized(case) as X:
        y = np.arange(n_rows(X)) % 2
        if not predict and case.expect == ACCEPT and len(y) < 2:
            case = Hostile("single-class", X, REJECT)
        else:
            case = Hostile(case.kind, X, case.expect)
        if predict:
            clf = fitted("clf", prediction_features(case))
        else:
            clf = make_clf()

        stage = []

        def run():
            if not predict:
                clf.fit(X, y)
                stage.append("fitted")
            return clf.predict_proba(X), clf.predict(X), clf.transform(X)

        def check(result):
            proba, labels, codes = result
            n = np.shape(X)[0]
            assert_finite_array(proba, (n, 2), "predict_proba")
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
            assert set(labels.tolist()) <= set(clf.classes_.tolist())
            assert_finite_array(codes, (n, 2), "transform")
            assert 0.0 <= clf.score(X, np.arange(n) % 2) <= 1.0

        context = "BottleneckClassifier"
        result = check_outcome(case, clf, run, check, context, shared=predict)
        if result is None and not predict and not stage:
            assert fitted_attributes(clf) == [], "a failed fit left attributes"


# -- hostile labels and sample weights ----------------------------------------


@st.composite
def hostile_labels(draw, n):
    """Labels for ``n`` samples (n >= 4), with what the classifier should do."""
    kind = draw(
        st.sampled_from(
            [
                "ints",
                "negative-ints",
                "huge-ints",
                "uint64",
                "strings",
                "floats-integral",
                "float16",
                "bool",
                "column",
                "list",
                "categorical",
                "nan",
                "inf",
                "continuous",
                "single-class",
                "too-short",
                "too-long",
                "empty",
                "scalar",
                "multi-column",
                "objects-mixed",
                "complex",
                "nullable-missing",
                "3-d",
            ]
        )
    )
    base = np.arange(n) % draw(st.integers(2, 4))
    base = base[draw(st.permutations(range(n)))]
    y = {
        "ints": base,
        "negative-ints": base - 7,
        "huge-ints": base + (2**62),
        "uint64": base.astype(np.uint64) + np.uint64(2**64 - 8),
        "strings": np.array(["cat", "dog", "ému", ""])[base],
        "floats-integral": base.astype(np.float64) * 1e10,
        "float16": base.astype(np.float16),
        "bool": base % 2 == 0,
        "column": base[:, None],
        "list": base.tolist(),
        "categorical": pd.Series(pd.Categorical(np.array(list("abcd"))[base])),
        "nan": np.where(np.arange(n) == 0, np.nan, base),
        "inf": np.where(np.arange(n) == 0, np.inf, base),
        "continuous": base + np.linspace(0.1, 0.9, n),
        "single-class": np.zeros(n, dtype=int),
        "too-short": base[:-1],
        "too-long": np.append(base, 0),
        "empty": np.array([], dtype=int),
        "scalar": np.array(1),
        "multi-column": np.stack([base, base], axis=1),
        "objects-mixed": np.array([0, "a", None, 1.5] * n, dtype=object)[:n],
        "complex": base + 1j,
        "nullable-missing": pd.Series([None, *base[1:].tolist()], dtype="Int64"),
        "3-d": base[:, None, None],
    }[kind]
    accepted = {
        "ints",
        "negative-ints",
        "huge-ints",
        "uint64",
        "strings",
        "floats-integral",
        "float16",
        "bool",
        "column",
        "list",
        "categorical",
    }
    return kind, y, ACCEPT if kind in accepted else REJECT


@fuzz(max_examples=200)
@given(data=st.data(), n=st.integers(4, 16), partial=st.booleans())
def test_classifier_survives_hostile_labels(data, n, partial):
    tried("test_classifier_survives_hostile_labels")
    X, _ = clean_data(n, 5)
    kind, y, expect = data.draw(hostile_labels(n), label="labels")
    before = snapshot(y)
    clf = make_clf()

    def run():
        if partial:
            try:
                classes = np.unique(np.ravel(np.asarray(y)))
            except TypeError:  # labels that do not sort
                classes = None
            if classes is not None:
                return clf.partial_fit(X, y, classes=classes)
        return clf.fit(X, y)

    _, exc = attempt(run)
    assert_unchanged(y, before)
    if exc is not None:
        assert expect == REJECT, f"labels {kind} {y!r} rejected: {exc!r}"
        assert_clear_error(exc, f"labels {kind}")
        assert fitted_attributes(clf) == []
        return
    assert expect == ACCEPT, f"labels {kind} {y!r} accepted"
    labels = clf.predict(X)
    given_labels = set(np.ravel(np.asarray(y)).tolist())
    assert set(clf.classes_.tolist()) == given_labels
    assert set(labels.tolist()) <= given_labels
    assert np.isfinite(clf.predict_proba(X)).all()


@fuzz(max_examples=200)
@given(
    kind=st.sampled_from(
        [
            "ones",
            "integers",
            "some-zeros",
            "positive",
            "list",
            "nan",
            "inf",
            "negative",
            "zeros",
            "one-class",
            "too-short",
            "2-d",
            "strings",
            "huge",
            "tiny",
            "subnormal",
            "scalar",
            "scalar-int",
            "scalar-zero",
            "scalar-nan",
            "scalar-negative",
        ]
    ),
    n=st.integers(4, 16),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    alpha=st.sampled_from([0.0, 1e-4, 1.0]),
)
def test_classifier_survives_hostile_sample_weights(kind, n, scale, alpha):
    tried("test_classifier_survives_hostile_sample_weights")
    X, y = clean_data(n, 4)
    ones = np.ones(n)
    weights = {
        "ones": ones * scale,
        "integers": (np.arange(n) % 3 + 1).astype(np.int64),
        "some-zeros": np.where(np.arange(n) < 2, 0.0, scale),
        "positive": np.linspace(0.1, 2.0, n) * scale,
        "list": (ones * scale).tolist(),
        "nan": np.where(np.arange(n) == 1, np.nan, ones),
        "inf": np.where(np.arange(n) == 1, np.inf, ones),
        "negative": np.where(np.arange(n) == 1, -scale, ones),
        "zeros": np.zeros(n),
        "one-class": (y == 0).astype(float),
        "too-short": ones[:-1],
        "2-d": np.ones((n, 2)),
        "strings": np.array(["heavy"] * n),
        "huge": ones * 1e300,
        "tiny": ones * 1e-300,
        "subnormal": ones * 1e-44,
        # One number weighs every sample alike, as scikit-learn accepts it.
        "scalar": scale,
        "scalar-int": 3,
        "scalar-zero": 0.0,
        "scalar-nan": np.float64("nan"),
        "scalar-negative": -scale,
    }[kind]
    accepted = ("ones", "integers", "some-zeros", "positive", "list", "scalar")
    if kind in (*accepted, "huge", "scalar-int"):
        # Weights beyond float32's range train too: the loss is a weighted
        # mean, computed on the weights scaled by a power of two.
        expect = ACCEPT
    elif kind in ("tiny", "subnormal"):
        # As many rows as 1e-300 samples: the L2 penalty (alpha over the
        # weight of a batch) overflows unless alpha is 0.
        expect = EITHER
    else:
        expect = REJECT
    before = snapshot(weights)
    clf = make_clf(alpha=alpha)
    _, exc = attempt(lambda: clf.fit(X, y, sample_weight=weights))
    assert_unchanged(weights, before)
    if exc is not None:
        assert expect != ACCEPT, f"sample_weight {kind} rejected: {exc!r}"
        assert_clear_error(exc, f"sample_weight {kind}")
        assert fitted_attributes(clf) == []
        return
    assert expect != REJECT, f"sample_weight {kind} accepted"
    assert np.isfinite(clf.predict_proba(X)).all()
    assert all(math.isfinite(v) for v in clf.loss_curve_)


# -- parameter validation -----------------------------------------------------

NAN_INF = st.sampled_from(
    [math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("inf")]
)
NOT_NUMBERS = st.sampled_from(
    [None, "1", "0.1", "", "auto", "nan", b"1", [1], (0.5,), {"a": 1}, 1j, object()]
)
BOOLS = st.sampled_from([True, False, np.True_, np.False_])
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
HUGE_INT = st.sampled_from([10**400, -(10**400)])


def not_auto(value):
    return not (isinstance(value, str) and value == "auto")


def invalid_ints(low):
    return st.one_of(
        st.integers(max_value=low - 1),
        FLOATS,  # 5.0 is a float, not an int
        NAN_INF,
        NOT_NUMBERS.filter(not_auto),
        BOOLS,
        st.just(np.float64(3.0)),
    )


def invalid_reals(low=0.0, high=None, closed_low=True):
    below = st.floats(max_value=low, exclude_max=closed_low, allow_nan=False)
    parts = [below, NAN_INF, NOT_NUMBERS, BOOLS, HUGE_INT]
    parts.append(st.integers(max_value=math.ceil(low) - (1 if closed_low else 0)))
    if high is not None:
        parts.append(st.floats(min_value=high, allow_nan=False))
        parts.append(st.integers(min_value=math.ceil(high)))
    return st.one_of(parts)


INVALID_BOOL = st.one_of(
    st.integers(), st.sampled_from(["True", "yes", "", None, 1.0, [True], np.int64(1)])
)
INVALID_RANDOM_STATE = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=2**32),
    FLOATS,
    NAN_INF,
    st.sampled_from(["0", "seed", "", [0], b"0", 1j, True, False, np.True_]),
)
INVALID_LAYERS = st.one_of(
    st.integers(max_value=0),
    st.sampled_from(
        [(), [], (0,), (8, 0), (8, -2), (8, 2.0), (True,), True, False, None, 2.0]
    ),
    st.sampled_from(["abc", "", [None], (math.nan,), [[8]], (8, "2")]),
    st.lists(st.integers(1, 64), max_size=3).flatmap(
        lambda good: st.one_of(st.integers(max_value=0), st.floats(), st.none()).map(
            lambda bad: (*good, bad)
        )
    ),
    # One-shot and unordered iterables: a check that read them would use
    # them up (or take them in any order) before fit built the network.
    st.builds(lambda: (size for size in (8, 2, 8))),
    st.builds(lambda: iter([8, 2])),
    st.builds(lambda: map(int, [8, 2])),
    st.builds(lambda: {8, 2}),
    st.builds(lambda: {8: 1, 2: 1}),
)
INVALID_SHAPES = st.one_of(
    st.sampled_from([(0, 4), (4,), (4, 4, 1), (-1, -1), (2.0, 2), "44", 4, True]),
    st.sampled_from([(4, None), ((4,), 4), (-2, 4), np.array([[2, 2]])]),
    st.builds(lambda: (side for side in (2, 3))),
    st.builds(lambda: iter([2, 3])),
)
INVALID_ACTIVATION = st.one_of(
    st.text(max_size=8).filter(lambda s: s not in ACTIVATIONS),
    st.sampled_from(["RELU", "Relu", " relu", "softmax", None, 1, ["relu"], b"relu"]),
)
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")
INVALID_DEVICE = st.one_of(
    st.text(max_size=8).filter(lambda s: not DEVICE_PATTERN.fullmatch(s)),
    st.sampled_from(
        ["gpu", "CUDA", "cuda:", "cuda:x", "cuda:\u0663", "cpu ", "meta", None, 0, 1.5]
    ),
    st.just(torch.device("meta")),
)
INVALID_NOISE = st.one_of(
    # None (no noise) and 'auto' are valid values of noise.
    invalid_reals().filter(
        lambda v: v is not None and not (isinstance(v, str) and v == "auto")
    ),
    st.sampled_from([GaussianPixelNoise, StandardScaler(), [0.2], "gaussian"]),
)

COMMON_INVALID = {
    "hidden_layer_sizes": INVALID_LAYERS,
    "activation": INVALID_ACTIVATION,
    "alpha": invalid_reals(),
    "batch_size": invalid_ints(1),
    "learning_rate_init": invalid_reals(closed_low=False),
    "max_iter": invalid_ints(1),
    "early_stopping": INVALID_BOOL,
    "validation_fraction": invalid_reals(0.0, 1.0, closed_low=False),
    "n_iter_no_change": invalid_ints(1),
    "tol": invalid_reals(),
    "shuffle": INVALID_BOOL,
    "random_state": INVALID_RANDOM_STATE,
    "verbose": st.one_of(
        st.integers(max_value=-1), st.floats(), NOT_NUMBERS, st.just(np.float32(1))
    ),
    "warm_start": INVALID_BOOL,
    "device": INVALID_DEVICE,
}
COMMON_INVALID["conv_channels"] = INVALID_LAYERS
COMMON_INVALID["image_shape"] = INVALID_SHAPES
INVALID_PARAMS = [
    *[(make_dae, name, s) for name, s in COMMON_INVALID.items()],
    (make_dae, "noise", INVALID_NOISE),
    *[(make_clf, name, s) for name, s in COMMON_INVALID.items()],
    (make_clf, "noise", INVALID_NOISE),
    (make_clf, "neighbor_weight", invalid_reals()),
    (make_clf, "n_neighbors", invalid_ints(1)),
    (GaussianPixelNoise, "std", invalid_reals()),
    (
        GaussianPixelNoise,
        "clip",
        st.one_of(
            st.tuples(st.floats(1, 10), st.floats(-10, 0.99)),
            st.sampled_from(
                [(math.nan, 1), (0, math.inf), (0,), (0, 1, 2), "01", 1.0, (True, 1)]
            ),
            st.sampled_from([("0", 1), np.array([0.0, 1.0]), [None, 1], (0, 10**400)]),
        ),
    ),
    (GaussianPixelNoise, "random_state", INVALID_RANDOM_STATE),
    (SaltAndPepperNoise, "amount", invalid_reals(0.0, 1.0).filter(lambda v: v != 1)),
    (SaltAndPepperNoise, "low", st.one_of(NAN_INF, NOT_NUMBERS, BOOLS, HUGE_INT)),
    (SaltAndPepperNoise, "high", st.one_of(NAN_INF, NOT_NUMBERS, BOOLS, HUGE_INT)),
    (SaltAndPepperNoise, "random_state", INVALID_RANDOM_STATE),
    (MaskingNoise, "fraction", invalid_reals(0.0, 1.0).filter(lambda v: v != 1)),
    (MaskingNoise, "value", st.one_of(NAN_INF, NOT_NUMBERS, BOOLS, HUGE_INT)),
    (MaskingNoise, "random_state", INVALID_RANDOM_STATE),
]


@fuzz(max_examples=600)
@given(data=st.data(), which=st.integers(0, len(INVALID_PARAMS) - 1))
def test_invalid_parameter_is_named_at_fit(data, which):
    tried("test_invalid_parameter_is_named_at_fit")
    make, name, strategy = INVALID_PARAMS[which]
    value = data.draw(strategy, label=name)
    estimator = make()
    estimator.set_params(**{name: value})
    # __init__ and set_params store the value as it is; fit judges it.
    assert estimator.get_params(deep=False)[name] is value
    X, y = clean_data(6, 3)
    with pytest.raises(ValueError) as info:
        if isinstance(estimator, BottleneckClassifier):
            estimator.fit(X, y)
        else:
            estimator.fit(X)
    message = str(info.value)
    assert f"'{name}' parameter" in message, message
    assert repr(value) in message, message
    assert type(estimator).__name__ in message
    assert fitted_attributes(estimator) == []
    assert estimator.get_params(deep=False)[name] is value


EXTREME_VALID = {
    "alpha": [0, 0.0, 1e-300, 1e10, 1e38, 1e300, 10**30, Fraction(1, 10**4)],
    "learning_rate_init": [5e-324, 1e-300, 1e-30, 10.0, 1e30, 1e38, 1e300, 1],
    "tol": [0, 0.0, 1e300, np.float32(1e-4), Fraction(1, 10)],
    "batch_size": [1, 10**30, np.int8(2), "auto"],
    "max_iter": [1, np.uint8(2), 3],
    "n_iter_no_change": [1, 10**30, np.int64(2)],
    "validation_fraction": [5e-324, 1e-3, 0.5, 0.999, 1 - 1e-16, Fraction(1, 3)],
    "early_stopping": [True, False, np.True_],
    "random_state": [0, 2**32 - 1, np.uint32(5), None, "rs", "rng"],
    "hidden_layer_sizes": [1, (1,), (1, 1, 1), np.array([3, 1]), [16, 2, 16]],
    "activation": sorted(ACTIVATIONS),
    "device": ["cpu", "auto", "cuda", "cuda:7", "cuda:" + "9" * 20, "mps", "torch-cpu"],
    "shuffle": [True, False, np.False_],
    "warm_start": [True, np.True_],
}
EXTREME_DAE = {
    "noise": [
        0,
        0.0,
        None,
        1e300,
        10**30,
        GaussianPixelNoise(std=0),
        GaussianPixelNoise(std=5, clip=None),
        GaussianPixelNoise(std=1e30, clip=(-1e300, 1e300)),
        SaltAndPepperNoise(amount=1.0),
        SaltAndPepperNoise(low=-1e30, high=1e30),
        MaskingNoise(fraction=1.0, value=1e300),
    ]
}
EXTREME_CLF = {
    "noise": ["auto", *EXTREME_DAE["noise"]],
    "neighbor_weight": [0, 1e-30, 1.0, 1e10, 1e300, Fraction(1, 2)],
    "n_neighbors": [1, np.int64(3), 10**30],
}


def _resolve_extreme(value):
    if isinstance(value, str) and value == "rs":
        return np.random.RandomState(0)
    if isinstance(value, str) and value == "rng":
        return np.random.default_rng(0)
    if isinstance(value, str) and value == "torch-cpu":
        return torch.device("cpu")
    return copy.deepcopy(value)


@fuzz(max_examples=120)
@given(
    family=st.sampled_from(["dae", "clf"]),
    data=st.data(),
    X_kind=st.sampled_from(["unit", "pixels", "extreme"]),
)
def test_in_domain_extreme_parameters_never_leak_torch_errors(family, data, X_kind):
    """Values inside every domain: a fit, or a clear error; never torch's."""
    tried("test_in_domain_extreme_parameters_never_leak_torch_errors")
    domains = {**EXTREME_VALID, **(EXTREME_DAE if family == "dae" else EXTREME_CLF)}
    names = data.draw(
        st.lists(st.sampled_from(sorted(domains)), min_size=1, max_size=3, unique=True)
    )
    params = {
        n: _resolve_extreme(data.draw(st.sampled_from(domains[n]))) for n in names
    }
    params.setdefault("max_iter", 2)
    X = data.draw(matrices(min_rows=6, max_rows=12, values=X_kind))
    y = np.arange(len(X)) % 2
    estimator = (make_dae if family == "dae" else make_clf)(**params)

    _, exc = attempt(lambda: estimator.fit(*((X,) if family == "dae" else (X, y))))
    if exc is not None:
        assert_clear_error(exc, f"{family} fit with {params}")
        assert fitted_attributes(estimator) == []
        return
    assert all(math.isfinite(v) for v in estimator.loss_curve_)
    predict = estimator.transform if family == "dae" else estimator.predict_proba
    result, exc = attempt(lambda: (predict(X), estimator.transform(X)))
    if exc is not None:  # a fit that diverged in its very last step
        assert_clear_error(exc, f"{family} predict with {params}")
        return
    out, codes = result
    assert np.isfinite(out).all(), f"{family} with {params}: non-finite output"
    assert np.isfinite(codes).all()


def test_no_private_sklearn_imports():
    """denoisenet uses scikit-learn's public API only (DESIGN.md, house style 2)."""
    package_dir = Path(denoisenet.__file__).parent
    for info in pkgutil.walk_packages(denoisenet.__path__, "denoisenet."):
        with contextlib.suppress(ImportError):  # an optional dependency
            importlib.import_module(info.name)
    modules = {
        name: module
        for name, module in list(sys.modules.items())
        if name == "denoisenet" or name.startswith("denoisenet.")
    }
    files = {Path(inspect.getsourcefile(m)).resolve() for m in modules.values()}
    files |= {p.resolve() for p in package_dir.rglob("*.py")}
    assert len(files) >= 8
    offenders = []
    for path in sorted(files):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            found = []
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found = [node.module] + [
                    f"{node.module}.{alias.name}" for alias in node.names
                ]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if re.fullmatch(r"sklearn(\.\w+)+", node.value):
                    found = [node.value]
            for name in found:
                parts = name.split(".")
                if parts[0] == "sklearn" and any(p.startswith("_") for p in parts):
                    offenders.append(f"{path.name}:{node.lineno}: {name}")
    assert offenders == [], offenders


# -- faults during fit --------------------------------------------------------

FAULTS = ["out-of-memory", "cuda-error", "memory-error", "keyboard", "nan-loss"]


def _fault(kind):
    return {
        "out-of-memory": _oom,
        "cuda-error": lambda: RuntimeError("CUDA error: an illegal memory access"),
        "memory-error": MemoryError,
        "keyboard": KeyboardInterrupt,
    }[kind]()


def _expected_error(kind):
    return {
        "out-of-memory": OOM_ERROR or RuntimeError,
        "cuda-error": RuntimeError,
        "memory-error": MemoryError,
        "keyboard": KeyboardInterrupt,
        "nan-loss": _training.NonFiniteLossError,
    }[kind]


def _weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _fit(estimator, X, y, partial):
    if isinstance(estimator, BottleneckClassifier):
        if partial:
            return estimator.partial_fit(X, y, classes=[0, 1])
        return estimator.fit(X, y)
    return estimator.partial_fit(X) if partial else estimator.fit(X)


def _steps_per_epoch(estimator, n, batch_size):
    """Optimiser steps in one epoch over ``n`` rows.

    With batch normalisation a last batch of one row joins the one before.
    The classifier's neighbour term adds a neighbour to every row of a
    batch, so that no batch has one row.
    """
    if getattr(estimator, "neighbor_weight", 0) > 0:
        return math.ceil(n / min(batch_size, n))
    steps = math.ceil(n / min(batch_size, n))
    if getattr(estimator, "batch_norm", False) and steps > 1 and n % batch_size == 1:
        steps -= 1
    return steps


def _assert_usable(estimator, X, pickled=False):
    if isinstance(estimator, BottleneckClassifier):
        assert np.isfinite(estimator.predict_proba(X)).all()
    out = estimator.transform(X)
    assert np.isfinite(out).all()
    if pickled:
        clone = pickle.loads(pickle.dumps(estimator))
        np.testing.assert_array_equal(clone.transform(X), out)


@fuzz(max_examples=60)
@given(
    family=st.sampled_from(["dae", "clf"]),
    fault=st.sampled_from(FAULTS),
    warm=st.booleans(),
    partial=st.booleans(),
    n=st.integers(4, 10),
    batch_size=st.integers(2, 6),
    fail_at=st.integers(1, 8),
)
def test_fault_during_fit_leaves_a_usable_estimator(
    family, fault, warm, partial, n, batch_size, fail_at
):
    """An OOM-style error, Ctrl-C or a NaN loss on the Nth step of a fit.

    An exception leaves the estimator exactly as it was before the fit (the
    same attribute objects, bit-identical weights); Ctrl-C after a completed
    epoch keeps that epoch and warns. Either way, a later fit works.
    """
    tried("test_fault_during_fit_leaves_a_usable_estimator")
    X, y = clean_data(n, 5, seed=n)
    make = make_dae if family == "dae" else make_clf
    estimator = make(max_iter=2, batch_size=batch_size, warm_start=warm, tol=0.0)
    if warm:
        _fit(estimator, X, y, partial=False)
    before = dict(vars(estimator))
    weights = _weights(estimator.module_) if warm else None
    curve = list(estimator.loss_curve_) if warm else None
    n_iter = estimator.n_iter_ if warm else 0

    real_step = _training.train_step
    calls = []

    def faulty_step(*args, **kwargs):
        calls.append(1)
        if len(calls) != fail_at:
            return real_step(*args, **kwargs)
        if fault == "nan-loss":
            real_step(*args, **kwargs)
            return torch.tensor(math.nan)
        raise _fault(fault)

    steps_per_epoch = _steps_per_epoch(estimator, n, batch_size)
    epochs = 1 if partial else 2
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        mp.setattr(_training, "train_step", faulty_step)
        try:
            _fit(estimator, X, y, partial)
            raised = None
        except BaseException as exc:  # KeyboardInterrupt included
            raised = exc
    interrupted = [m for m in w if "interrupted" in str(m.message)]

    if fail_at > epochs * steps_per_epoch:  # no fault: a normal fit
        assert raised is None, repr(raised)
        assert estimator.n_iter_ == n_iter + epochs
    elif fault == "keyboard" and fail_at > steps_per_epoch:
        # Ctrl-C after at least one completed epoch keeps the last one.
        completed = (fail_at - 1) // steps_per_epoch
        assert raised is None, repr(raised)
        assert interrupted, "no warning about the interruption"
        assert estimator.n_iter_ == n_iter + completed
        assert len(estimator.loss_curve_) == estimator.n_iter_
        assert all(math.isfinite(v) for v in estimator.loss_curve_)
    else:
        assert isinstance(raised, _expected_error(fault)), repr(raised)
        # The fit left nothing behind: the same attributes, the same objects.
        assert vars(estimator).keys() == before.keys()
        assert all(vars(estimator)[k] is before[k] for k in before)
        if warm:
            after = _weights(estimator.module_)
            assert all(torch.equal(after[k], weights[k]) for k in weights)
            assert estimator.loss_curve_ == curve
            assert estimator.n_iter_ == n_iter
        else:
            assert fitted_attributes(estimator) == []
    if hasattr(estimator, "module_"):
        _assert_usable(estimator, X)

    # And a fit after the failure works as usual.
    _fit(estimator, X, y, partial=False)
    assert estimator.n_iter_ >= 1
    _assert_usable(estimator, X, pickled=True)


# -- persistence safety -------------------------------------------------------

PAYLOAD_CALLS = []


def _payload_side_effect(tag):
    """What a malicious pickle would run; here it only leaves a trace."""
    PAYLOAD_CALLS.append(tag)
    return tag


class _Payload:
    def __reduce__(self):
        return (_payload_side_effect, ("pwned",))


class _Smuggled:
    """An arbitrary class: weights_only loading must not import it either."""

    def __init__(self):
        self.weights = torch.zeros(2)


@pytest.mark.parametrize("block", [torch.no_grad, torch.inference_mode])
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(make_dae, id="dae"),
        pytest.param(lambda: make_dae(activation="tanh"), id="dae-tanh"),
        pytest.param(make_clf, id="clf"),
    ],
)
def test_fit_inside_a_no_grad_block_trains_as_outside(block, make):
    """A fit called inside the caller's ``torch.no_grad()`` or
    ``inference_mode()`` trains as it would outside (it failed with torch's
    "does not require grad" for autograd-trained networks), and its
    weights can be trained further outside the block."""
    rng = np.random.default_rng(0)
    X = rng.random((40, 12), dtype=np.float32)
    y = np.arange(40) % 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with block():
            inside = make().fit(X, y)
        inside.partial_fit(X, y)
        outside = make().fit(X, y)
        outside.partial_fit(X, y)
    for mine, theirs in zip(
        inside.module_.state_dict().values(),
        outside.module_.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(mine, theirs)


@contextlib.contextmanager
def _torch_default(which):
    """torch's default dtype or device set as a user's program may set it."""
    if which == "float64":
        before = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            yield
        finally:
            torch.set_default_dtype(before)
    else:
        # A GPU user's torch.set_default_device("cuda"), on a machine
        # without one: any tensor made without a device lands on "meta",
        # which holds no data, and the call fails.
        torch.set_default_device(which)
        try:
            yield
        finally:
            torch.set_default_device(None)


def _everything_a_model_answers(X, y):
    """Fits (neighbour term, training noise, early stopping, a pickle round
    trip, partial_fit), then every answer, of every estimator."""
    answers = [
        noise(random_state=0).fit_transform(X)
        for noise in (GaussianPixelNoise, SaltAndPepperNoise, MaskingNoise)
    ]
    conv = {"architecture": "conv", "conv_channels": (4,), "image_shape": (3, 4)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for make, params in (
            (make_dae, {}),
            (make_dae, {"activation": "tanh", "early_stopping": True}),
            (make_dae, conv),
            (make_clf, {"early_stopping": True}),
            (make_clf, conv),
        ):
            model = make(max_iter=2, **params)
            if make is make_clf:
                model.fit(X, y, sample_weight=np.linspace(0.5, 1.5, len(y)))
            else:
                model.fit(X)
            model = pickle.loads(pickle.dumps(model))
            model.partial_fit(X, y)
            codes = model.transform(X)
            answers += [codes, model.score(X, y), model.loss_curve_]
            if make is make_clf:
                answers += [model.predict(X), model.predict_proba(X)]
                answers.append(model.decode(codes))
            else:
                answers.append(model.decode(model.encode(X)))
            with torch.no_grad():
                answers.append(model.to_torch()(torch.from_numpy(X)).numpy())
    return answers


@pytest.mark.parametrize("which", ["float64", "meta"])
def test_torch_defaults_set_by_the_caller_change_nothing(which):
    """A caller's ``torch.set_default_dtype(torch.float64)`` (common in
    scientific code) or ``torch.set_default_device(...)``: the networks stay
    float32 on the estimator's device (they were built float64 and refused
    the float32 batches), every tensor the package makes names its device,
    and every random draw is the one it would be (the classifier's choice of
    neighbours drew float64 numbers): the answers are bit for bit the
    defaults'."""
    rng = np.random.default_rng(0)
    X = rng.random((60, 12), dtype=np.float32)
    y = np.arange(60) % 3
    expected = _everything_a_model_answers(X, y)
    with _torch_default(which):
        answers = _everything_a_model_answers(X, y)
    for mine, theirs in zip(answers, expected, strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_every_torch_load_passes_weights_only_true():
    package_dir = Path(denoisenet.__file__).parent
    calls = []
    for path in sorted(package_dir.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else None
            owner = getattr(func, "value", None)
            if name == "load" and isinstance(owner, ast.Name) and owner.id == "torch":
                keywords = {k.arg: k.value for k in node.keywords}
                safe = keywords.get("weights_only")
                calls.append((path.name, node.lineno))
                assert isinstance(safe, ast.Constant) and safe.value is True, (
                    f"{path.name}:{node.lineno}: torch.load without weights_only=True"
                )
            # pickle and torch.load(..., weights_only=False) in disguise
            if isinstance(func, ast.Attribute) and isinstance(owner, ast.Name):
                assert (owner.id, func.attr) not in {
                    ("pickle", "load"),
                    ("pickle", "loads"),
                    ("torch", "_load"),
                }, f"{path.name}:{node.lineno}"
    assert calls, "no torch.load call found: the test lost its subject"


@st.composite
def malicious_states(draw):
    """A state dict with a live payload hidden somewhere inside."""
    payload = draw(st.sampled_from([_Payload, _Smuggled]))()
    leaves = st.sampled_from([torch.zeros(3), torch.ones(2, 2), 1, "x", None])
    tree = draw(
        st.recursive(
            leaves,
            lambda children: st.one_of(
                st.lists(children, max_size=3),
                st.dictionaries(st.sampled_from(["w", "b", "state"]), children),
            ),
            max_leaves=6,
        )
    )
    where = draw(st.sampled_from(["top", "list", "dict"]))
    if where == "top":
        return payload
    if where == "list":
        return [tree, payload]
    return {"weight": tree, "bias": payload}


@functools.cache
def _fitted_for_pickling(family):
    X, y = clean_data(10, 4)
    return make_dae().fit(X) if family == "dae" else make_clf().fit(X, y)


@fuzz(max_examples=30)
@given(
    family=st.sampled_from(["dae", "clf"]),
    key=st.sampled_from(["module_", "_optimizer_state"]),
    state=malicious_states(),
    route=st.sampled_from(["pickle", "setstate"]),
)
def test_tampered_pickle_is_refused_without_running_its_payload(
    family, key, state, route
):
    tried("test_tampered_pickle_is_refused_without_running_its_payload")
    estimator = _fitted_for_pickling(family)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    tampered = estimator.__getstate__()
    tampered[key] = payload
    PAYLOAD_CALLS.clear()
    if route == "pickle":
        cls = type(estimator)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(cls, "__getstate__", lambda self: tampered)
            blob = pickle.dumps(estimator)
        with pytest.raises(pickle.UnpicklingError):
            pickle.loads(blob)
    else:
        fresh = type(estimator).__new__(type(estimator))
        with pytest.raises(pickle.UnpicklingError):
            fresh.__setstate__(tampered)
    assert PAYLOAD_CALLS == [], "the pickled payload ran"
    # The untampered state still loads.
    clone = pickle.loads(pickle.dumps(estimator))
    X, _ = clean_data(10, 4)
    np.testing.assert_array_equal(clone.transform(X), estimator.transform(X))


def test_the_malicious_payload_is_live_under_full_unpickling():
    """The control for the test above: its payload does run when trusted."""
    buffer = io.BytesIO()
    torch.save({"weight": _Payload()}, buffer)
    PAYLOAD_CALLS.clear()
    torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    assert PAYLOAD_CALLS == ["pwned"]
    PAYLOAD_CALLS.clear()


# -- a fitted model is never lost ---------------------------------------------
#
# Parameters set after fit are checked where inference reads them, and no
# call that fails (or diverges) changes the fitted state; sizes are refused
# before anything is allocated, and so is a tampered persisted state.

COUNTED_TESTS |= {
    "test_parameters_set_after_fit_are_checked_where_used",
    "test_a_diverging_continuation_keeps_the_previous_model",
    "test_network_sizes_are_checked_against_memory_before_allocating",
    "test_tampered_network_arguments_are_refused_before_allocating",
    "test_classifier_survives_hostile_classes",
}

# Devices that pass the parameter check but may be absent from this machine.
UNUSABLE_DEVICES = st.sampled_from(
    ["cuda", "cuda:7", "cuda:" + "9" * 20, "mps", torch.device("cuda", 3)]
)
NOISE_CLASSES = {
    "gaussian": GaussianPixelNoise,
    "salt-and-pepper": SaltAndPepperNoise,
    "masking": MaskingNoise,
}
# (family, parameter, the methods that read it after fit)
READ_AFTER_FIT = [
    ("dae", "device", ("transform", "encode", "decode", "score")),
    ("dae", "noise", ("score",)),
    ("dae", "random_state", ("score",)),
    ("clf", "device", ("predict", "predict_proba", "transform", "score")),
    *[
        (family, name, ("transform",))
        for make, name, _ in INVALID_PARAMS
        for family, cls in NOISE_CLASSES.items()
        if make is cls
    ],
]


def _invalid_after_fit(family, name):
    make = {"dae": make_dae, "clf": make_clf, **NOISE_CLASSES}[family]
    return next(s for m, n, s in INVALID_PARAMS if m is make and n == name)


def _inference(estimator, method, X, y):
    if method == "decode":
        return estimator.decode(estimator.encode(X))
    if method == "score" and isinstance(estimator, BottleneckClassifier):
        return estimator.score(X, y)
    return getattr(estimator, method)(X)


def _fitted_state(estimator):
    """Every attribute, with tensors (weights, Adam's moments) cloned."""
    state = {}
    for name, value in vars(estimator).items():
        if isinstance(value, torch.nn.Module):
            value = _weights(value)
        elif name == "_optimizer_state":
            value = copy.deepcopy(value)
        state[name] = value
    return state


def _assert_same_state(estimator, before, objects):
    """The same fitted attributes, the same objects, bit-identical tensors
    (parameters, which the test itself changed, aside)."""
    params = estimator.get_params(deep=False)
    assert vars(estimator).keys() == before.keys()
    assert all(vars(estimator)[k] is objects[k] for k in objects if k not in params)
    after = _fitted_state(estimator)
    for name, value in before.items():
        if isinstance(value, dict) and name in ("module_", "_optimizer_state"):
            assert _tensors_equal(after[name], value), name


def _tensors_equal(a, b):
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(_tensors_equal, a, b))
    return a == b


@fuzz(max_examples=250)
@given(data=st.data(), which=st.integers(0, len(READ_AFTER_FIT) - 1))
def test_parameters_set_after_fit_are_checked_where_used(data, which):
    """set_params after fit: inference refuses a bad value, names it, and
    changes nothing; set back, the estimator answers as before, bit for bit.
    """
    tried("test_parameters_set_after_fit_are_checked_where_used")
    family, name, methods = READ_AFTER_FIT[which]
    method = data.draw(st.sampled_from(methods), label="method")
    unusable = name == "device" and data.draw(st.booleans(), label="unusable")
    strategy = UNUSABLE_DEVICES if unusable else _invalid_after_fit(family, name)
    value = data.draw(strategy, label=name)
    X, y = clean_data(12, 4)
    estimator = pickle.loads(pickle.dumps(fitted(family, 4)))
    reference = _inference(estimator, method, X, y)
    original = estimator.get_params(deep=False)[name]
    objects = dict(vars(estimator))
    before = _fitted_state(estimator)

    estimator.set_params(**{name: value})
    result, exc = attempt(lambda: _inference(estimator, method, X, y))
    context = f"{family}.{method} after set_params({name}={value!r})"
    if unusable and exc is None:  # a device this machine has
        assert np.all(np.isfinite(result)), context
    else:
        assert exc is not None, f"{context} was accepted"
        assert_clear_error(exc, context)
        assert isinstance(exc, ValueError), context
        if not unusable:
            assert f"'{name}' parameter" in str(exc), str(exc)
            assert repr(value) in str(exc), str(exc)
    _assert_same_state(estimator, before, objects)
    estimator.set_params(**{name: original})
    again = _inference(estimator, method, X, y)
    np.testing.assert_array_equal(again, reference)


def _poison_last_step(kind, last):
    """A train_step that, on its ``last`` call, leaves the weights (or Adam's
    moments) non-finite behind a finite loss."""
    real_step = _training.train_step
    calls = []

    def step(module, optimizer, *args, **kwargs):
        loss = real_step(module, optimizer, *args, **kwargs)
        calls.append(1)
        if len(calls) == last:
            with torch.no_grad():
                if kind == "nan-weights":
                    next(module.parameters()).view(-1)[0] = math.nan
                else:
                    state = next(iter(optimizer.state.values()))
                    state["exp_avg_sq"].view(-1)[0] = math.inf
        return loss

    return step


@fuzz(max_examples=60)
@given(
    family=st.sampled_from(["dae", "clf"]),
    how=st.sampled_from(["warm_start", "partial_fit", "fit"]),
    cause=st.sampled_from(["huge-step", "nan-weights", "inf-moments"]),
    learning_rate=st.sampled_from([1e10, 1e20, 1e30, 1e38]),
    n=st.integers(4, 10),
    batch_size=st.integers(2, 6),
)
def test_a_diverging_continuation_keeps_the_previous_model(
    family, how, cause, learning_rate, n, batch_size
):
    """A refit, warm refit or partial_fit that ends in non-finite weights
    raises and leaves the estimator exactly as it was: the same objects,
    bit-identical weights and optimizer state, loss curve and epoch count.
    """
    tried("test_a_diverging_continuation_keeps_the_previous_model")
    X, y = clean_data(n, 5, seed=n)
    make = make_dae if family == "dae" else make_clf
    estimator = make(max_iter=2, batch_size=batch_size, tol=0.0)
    _fit(estimator, X, y, partial=False)
    estimator.set_params(warm_start=how == "warm_start")
    objects = dict(vars(estimator))
    before = _fitted_state(estimator)
    reference = estimator.transform(X)

    epochs = 1 if how == "partial_fit" else 2
    last = epochs * _steps_per_epoch(estimator, n, batch_size)
    with pytest.MonkeyPatch.context() as mp:
        if cause == "huge-step":
            estimator.set_params(learning_rate_init=learning_rate)
        else:
            mp.setattr(_training, "train_step", _poison_last_step(cause, last))
        _, exc = attempt(lambda: _fit(estimator, X, y, how == "partial_fit"))
    if exc is None:
        # Only a huge step may happen to stay finite; the model must then work.
        assert cause == "huge-step"
        _assert_usable(estimator, X)
        return
    # A step too large for float32 is refused up front; any other
    # divergence is found after training.
    expected = ValueError if cause == "huge-step" else _training.NonFiniteLossError
    assert isinstance(exc, expected), repr(exc)
    assert "learning_rate_init" in str(exc)
    _assert_same_state(estimator, before, objects)
    np.testing.assert_array_equal(estimator.transform(X), reference)


@st.composite
def network_sizes(draw):
    """Network parameters from tiny to absurd, with the architecture."""
    small = st.lists(st.integers(1, 300), min_size=1, max_size=3).map(tuple)
    absurd = st.sampled_from([10**6, 10**9, 10**12, 10**20, 10**40, 2**63, 2**64])
    sizes = draw(st.one_of(small, small, absurd.map(lambda s: (s, 2))))
    params = {"hidden_layer_sizes": sizes, "architecture": "dense"}
    if draw(st.booleans()):
        channels = draw(st.one_of(small, absurd.map(lambda s: (s,))))
        params.update(architecture="conv", conv_channels=channels)
    return params


def _expected_count(family, params, n_features, side):
    args = {
        "n_features": n_features,
        "hidden_layer_sizes": params["hidden_layer_sizes"],
        "architecture": params["architecture"],
        "image_shape": (side, side),
        "conv_channels": params.get("conv_channels", ()),
    }
    # batch_norm=True: both estimators' default.
    if family == "dae":
        return autoencoder_parameter_count(batch_norm=True, **args)
    return bottleneck_parameter_count(n_outputs=2, batch_norm=True, **args)


@fuzz(max_examples=80)
@given(
    family=st.sampled_from(["dae", "clf"]),
    params=network_sizes(),
    limit=st.integers(2**10, 2**26),
)
def test_network_sizes_are_checked_against_memory_before_allocating(
    family, params, limit
):
    """With the device's free memory set to ``limit`` bytes: a network whose
    training copies exceed it is refused with its size and the limit before
    anything is built; one within it is built, with that many parameters."""
    tried("test_network_sizes_are_checked_against_memory_before_allocating")
    X, y = clean_data(8, 16)
    count = _expected_count(family, params, 16, 4)
    needed = count * TRAINING_COPIES * 4
    estimator = (make_dae if family == "dae" else make_clf)(**params)
    built = []
    real_module = NeuralEstimatorBase._module
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_resources, "available_memory", lambda device: limit)
        mp.setattr(
            NeuralEstimatorBase,
            "_module",
            lambda self, *a: built.append(1) or real_module(self, *a),
        )
        _, exc = attempt(lambda: _fit(estimator, X, y, partial=False))
    if needed > limit:
        assert exc is not None, f"{params}: {needed} bytes > {limit} accepted"
        assert_clear_error(exc, repr(params))
        message = str(exc)
        assert f"{count:,} parameters" in message, message
        assert _resources.format_bytes(limit) in message, message
        assert built == [], "the network was built before the check"
        assert fitted_attributes(estimator) == []
        return
    assert exc is None, repr(exc)
    assert sum(p.numel() for p in estimator.module_.parameters()) == count


@st.composite
def tampered_states(draw, state):
    """``state`` (an estimator's __getstate__) with its network arguments,
    or what they must agree with, changed as an attacker might."""
    state = dict(state)
    args = dict(state["_network_args"])
    hostile = st.one_of(
        st.integers(-3, 10**30),
        HUGE_INT,
        st.floats(),
        st.text(max_size=6),
        st.none(),
        BOOLS,
        st.lists(st.integers(-2, 10**21), max_size=3).map(tuple),
        st.lists(st.integers(1, 40), min_size=1, max_size=3),
        st.sampled_from(
            [(10**6, 10**6), (10**20,), (2**63,), "relu", "tanh", "conv", (2, 2)]
        ),
        st.sampled_from([np.int64(4), [np.int64(8), 2], {"a": 1}, b"x", (8, 2.0)]),
    )
    kind = draw(st.sampled_from(["replace", "replace", "drop", "add", "whole"]))
    if kind == "replace":
        args[draw(st.sampled_from(sorted(args)))] = draw(hostile)
    elif kind == "drop":
        del args[draw(st.sampled_from(sorted(args)))]
    elif kind == "add":
        args[draw(st.sampled_from(["bogus", "n_outputs", "__class__"]))] = draw(hostile)
    else:
        target = draw(st.sampled_from(["_network_args", "n_features_in_", "classes_"]))
        state[target] = draw(hostile)
        return state
    state["_network_args"] = args
    return state


@fuzz(max_examples=150)
@given(
    data=st.data(),
    family=st.sampled_from(["dae", "clf"]),
    route=st.sampled_from(["pickle", "setstate"]),
)
def test_tampered_network_arguments_are_refused_before_allocating(data, family, route):
    """A persisted state whose network arguments were changed loads only if
    they describe a network that fit could have built and that fits in
    memory; nothing larger than the limit is ever allocated, and every
    refusal is a clear error of the package's own."""
    tried("test_tampered_network_arguments_are_refused_before_allocating")
    estimator = _fitted_for_pickling(family)
    tampered = data.draw(tampered_states(estimator.__getstate__()), label="state")
    limit = 2**26
    allocated = []
    real_to_empty = torch.nn.Module.to_empty

    def to_empty(module, *args, **kwargs):
        allocated.append(sum(p.numel() for p in module.parameters()) * 4)
        return real_to_empty(module, *args, **kwargs)

    if route == "pickle":
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(type(estimator), "__getstate__", lambda self: tampered)
            blob = pickle.dumps(estimator)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_resources, "available_memory", lambda device: limit)
        mp.setattr(torch.nn.Module, "to_empty", to_empty)
        if route == "pickle":
            loaded, exc = attempt(lambda: pickle.loads(blob))
        else:
            loaded = type(estimator).__new__(type(estimator))
            _, exc = attempt(lambda: loaded.__setstate__(tampered))
    assert all(size <= limit for size in allocated), allocated
    X, _ = clean_data(10, 4)
    if exc is None:
        # A change that fit could have made (a list for a tuple, a numpy
        # int, another activation): the model loads and answers.
        out = loaded.transform(X)
        assert np.isfinite(out).all()
        return
    assert isinstance(exc, (pickle.UnpicklingError, ValueError)), repr(exc)
    message = str(exc)
    assert "tampered" in message or "parameters" in message, message
    frames = traceback.extract_tb(exc.__traceback__)
    assert not str(Path(frames[-1].filename).resolve()).startswith(TORCH_DIR)


@st.composite
def hostile_classes(draw, y):
    """``classes`` for partial_fit beside labels ``y``, with the verdict."""
    labels = np.unique(y)
    kind = draw(
        st.sampled_from(
            [
                "exact",
                "superset",
                "duplicates",
                "list",
                "empty",
                "single",
                "nan",
                "inf",
                "none",
                "2-d",
                "scalar",
                "missing-a-label",
                "mixed-types",
            ]
        )
    )
    classes = {
        "exact": labels,
        "superset": np.append(labels, labels.max() + 5),
        "duplicates": np.concatenate([labels, labels]),
        "list": labels.tolist(),
        "empty": [],
        "single": labels[:1],
        "nan": np.append(labels.astype(float), np.nan),
        "inf": np.append(labels.astype(float), np.inf),
        "none": [*labels.tolist(), None],
        "2-d": labels[None, :],
        "scalar": labels[0],
        "missing-a-label": labels[1:],
        "mixed-types": [*labels.tolist(), "a", None],
    }[kind]
    accepted = {"exact", "superset", "duplicates", "list"}
    return kind, classes, ACCEPT if kind in accepted else REJECT


@fuzz(max_examples=120)
@given(data=st.data(), n=st.integers(4, 12), n_classes=st.integers(2, 4))
def test_classifier_survives_hostile_classes(data, n, n_classes):
    """partial_fit's ``classes``: a clear error, or a fit that predicts
    labels among the given classes only."""
    tried("test_classifier_survives_hostile_classes")
    X, _ = clean_data(n, 4)
    y = np.arange(n) % n_classes
    kind, classes, expect = data.draw(hostile_classes(y), label="classes")
    before = snapshot(classes)
    clf = make_clf()
    _, exc = attempt(lambda: clf.partial_fit(X, y, classes=classes))
    assert_unchanged(classes, before)
    if exc is not None:
        assert expect == REJECT, f"classes {kind} {classes!r} rejected: {exc!r}"
        assert_clear_error(exc, f"classes {kind}")
        assert "classes" in str(exc), str(exc)
        assert fitted_attributes(clf) == []
        return
    assert expect == ACCEPT, f"classes {kind} {classes!r} accepted"
    assert set(clf.classes_.tolist()) == set(np.ravel(classes).tolist())
    assert set(clf.predict(X).tolist()) <= set(clf.classes_.tolist())


@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("dae", {"hidden_layer_sizes": (10**6, 10**6)}),
        ("clf", {"hidden_layer_sizes": (10**20,)}),
        # Far beyond any host: 10**7 channels needed about 23 GB, which a
        # 24 GB machine with little else running could hold.
        ("dae", {"architecture": "conv", "conv_channels": (10**9,)}),
        ("clf", {"architecture": "conv", "conv_channels": (16, 2**64)}),
    ],
)
def test_impossible_sizes_are_refused_with_the_size_and_the_limit(family, params):
    """The sizes from the report, against this machine's real memory."""
    X, y = clean_data(8, 16)
    estimator = (make_dae if family == "dae" else make_clf)(**params)
    with pytest.raises(ValueError) as info:
        _fit(estimator, X, y, partial=False)
    assert_clear_error(info.value)
    message = str(info.value)
    assert re.search(r"[\d,]+ parameters, which need [\d.e+]+ [KMGTPE]iB", message)
    assert re.search(r"more than (the [\d.]+ [KMGTPE]?i?B|the largest)", message)
    assert "Overflow" not in message and "overflow" not in message
    assert fitted_attributes(estimator) == []


@pytest.mark.parametrize("name", ["hidden_layer_sizes", "conv_channels", "image_shape"])
def test_a_generator_parameter_is_refused_without_being_used_up(name):
    values = {
        "hidden_layer_sizes": (8, 2, 8),
        "conv_channels": (4,),
        "image_shape": (4, 4),
    }
    generator = (v for v in values[name])
    estimator = make_dae(architecture="conv", **{name: generator})
    with pytest.raises(ValueError, match="tuple or a list") as info:
        estimator.fit(clean_data(6, 16)[0])
    assert f"'{name}' parameter" in str(info.value)
    # The check did not consume it: the user's generator is intact.
    assert list(generator) == list(values[name])
    # The same values as a list or tuple fit.
    estimator.set_params(**{name: list(values[name])}).fit(clean_data(6, 16)[0])


# -- load_idx -----------------------------------------------------------------

IDX_TYPES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


def _load_bytes(content, name="data-idx"):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(content)
        result, exc = attempt(lambda: load_idx(path))
    if exc is not None:
        assert isinstance(exc, ValueError), f"{type(exc).__name__}: {exc}"
        assert str(path) in str(exc), f"the message does not name the file: {exc}"
    return result, exc


def _check_idx_array(array, content):
    assert isinstance(array, np.ndarray)
    assert array.dtype.isnative
    header = content[:4]
    assert array.ndim == header[3]
    assert array.itemsize == IDX_TYPES[header[2]]
    shape = struct.unpack(f">{header[3]}I", content[4 : 4 + 4 * header[3]])
    assert array.shape == shape


@fuzz(max_examples=400)
@given(
    content=st.one_of(
        st.binary(max_size=64),
        st.binary(max_size=64).map(lambda b: b"\x1f\x8b" + b),
        st.binary(max_size=64).map(lambda b: b"\x00\x00" + b),
    ),
    compress=st.booleans(),
)
def test_load_idx_survives_random_bytes(content, compress):
    tried("test_load_idx_survives_random_bytes")
    raw = content
    if compress:
        content = gzip.compress(content)
    array, _ = _load_bytes(content)
    if array is not None:
        _check_idx_array(array, raw)


@st.composite
def garbled_idx(draw):
    type_code = draw(st.sampled_from([*IDX_TYPES, 0x00, 0x07, 0x0A, 0x0F, 0xFF]))
    # Past numpy's 32 (64 since numpy 2) dimensions, up to the header's 255.
    ndim = draw(st.one_of(st.integers(0, 4), st.sampled_from([32, 33, 64, 65, 255])))
    sides = st.integers(0, 4) if ndim <= 4 else st.integers(1, 1)
    shape = draw(
        st.lists(
            st.one_of(sides, st.sampled_from([2**31, 2**32 - 1])),
            min_size=ndim,
            max_size=ndim,
        )
    )
    magic = draw(st.sampled_from([b"\x00\x00", b"\x00\x01", b"\x01\x00"]))
    header = (
        magic + bytes([type_code, ndim]) + b"".join(n.to_bytes(4, "big") for n in shape)
    )
    count = math.prod(shape) * IDX_TYPES.get(type_code, 1) if shape else 0
    body = bytes(min(count, 512)) + draw(st.binary(max_size=8))
    content = header + body
    cut = draw(st.one_of(st.none(), st.integers(0, len(content))))
    if cut is not None:
        content = content[:cut]
    flips = draw(
        st.lists(st.tuples(st.integers(0, 64), st.integers(0, 255)), max_size=3)
    )
    content = bytearray(content)
    for position, value in flips:
        if position < len(content):
            content[position] = value
    # Far more data than the header promises: what a gzip bomb does.
    content = bytes(content) + bytes(draw(st.sampled_from([0, 0, 0, 2**20 + 3])))
    mangle = draw(
        st.sampled_from(
            ["raw", "gzip", "gzip-truncated", "gzip-flipped", "gzip-twice", "gzip+junk"]
        )
    )
    if mangle != "raw":
        packed = bytearray(gzip.compress(content))
        if mangle == "gzip-truncated":
            packed = packed[: draw(st.integers(2, max(2, len(packed) - 1)))]
        elif mangle == "gzip-flipped":
            packed[draw(st.integers(2, len(packed) - 1))] ^= draw(st.integers(1, 255))
        elif mangle == "gzip-twice":  # two members, as `cat a.gz b.gz` makes
            more = draw(st.binary(max_size=8))
            packed += gzip.compress(more)
            content += more
        elif mangle == "gzip+junk":
            packed += draw(st.binary(min_size=1, max_size=8))
        return content, bytes(packed)
    return content, content


@fuzz(max_examples=300)
@given(garbled=garbled_idx())
def test_load_idx_survives_garbled_headers(garbled):
    tried("test_load_idx_survives_garbled_headers")
    raw, content = garbled
    array, _ = _load_bytes(content)
    if array is not None:
        _check_idx_array(array, raw)


# -- the command line's argument parsing --------------------------------------

try:
    from denoisenet import cli
except ImportError:  # the command line is optional for this suite
    cli = None

OPTIONS = [
    "study",
    "--dataset",
    "--data-home",
    "--noise-std",
    "--n-train",
    "--max-iter",
    "--seed",
    "--out",
    "--quiet",
    "--",
    "-",
    "--unknown",
    "-x",
    "--max",
    "--n",
    "--da",
]
HELP_OPTIONS = ["-h", "--help", "--version", "--vers"]
VALUES_CLI = st.one_of(
    st.sampled_from(
        [
            "digits",
            "mnist",
            "fashion-mnist",
            "MNIST",
            "0",
            "1",
            "-1",
            "0.3",
            "-0.0",
            "1e9",
            "1e999",
            "nan",
            "inf",
            "-inf",
            "",
            " ",
            "1_000",
            "\u0663",
            "0x10",
            "4294967295",
            "4294967296",
            "9" * 5000,
            "%s",
            "%(prog)s",
        ]
    ),
    st.text(max_size=12),
    st.integers().map(str),
    st.floats().map(repr),
)
ARGV_TOKEN = st.one_of(
    st.sampled_from(OPTIONS),
    VALUES_CLI,
    st.tuples(st.sampled_from(OPTIONS[1:8]), VALUES_CLI).map("=".join),
)


@functools.cache
def _parser():
    # Built once: parse_args leaves the parser as it was.
    return cli.build_parser()


def _asks_for_help_or_version(argv):
    for token in argv:
        if token == "--":
            return False
        option = token.split("=", 1)[0]
        if token.startswith("-h") or (
            len(option) > 2
            and ("--help".startswith(option) or "--version".startswith(option))
        ):
            return True
    return False


@fuzz(max_examples=500)
@given(
    argv=st.lists(ARGV_TOKEN, max_size=8),
    lead=st.sampled_from([[], ["study"]]),
    extra=st.one_of(st.just([]), st.sampled_from(HELP_OPTIONS).map(lambda h: [h])),
)
def test_cli_parser_exits_cleanly_or_gives_a_valid_namespace(argv, lead, extra):
    if cli is None or not hasattr(cli, "build_parser"):
        pytest.skip("denoisenet.cli has no build_parser")
    tried("test_cli_parser_exits_cleanly_or_gives_a_valid_namespace")
    argv = [*lead, *argv, *extra]
    parser = _parser()
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            args = parser.parse_args(argv)
            code = None
        except SystemExit as exc:
            code = exc.code
    if code is not None:
        if code == 0:
            assert _asks_for_help_or_version(argv), argv
            assert stdout.getvalue().strip()
        else:
            assert code == 2, (argv, code)
            assert "error:" in stderr.getvalue()
        return
    assert isinstance(args, argparse.Namespace)
    assert args.command in (None, "study")
    if args.command is None:
        return
    assert args.dataset in cli.DATASETS
    assert isinstance(args.noise_std, float) and math.isfinite(args.noise_std)
    assert args.noise_std >= 0
    for name in ("n_train", "max_iter"):
        value = getattr(args, name)
        assert value is None or (isinstance(value, int) and value >= 1)
    assert isinstance(args.seed, int) and 0 <= args.seed < 2**32
    assert isinstance(args.out, str)
    assert args.data_home is None or isinstance(args.data_home, str)
    assert isinstance(args.quiet, bool)


# -- failed calls change nothing, and name their cause --------------------------

SMALL = {
    DenoisingAutoencoder: {"hidden_layer_sizes": (16, 4, 16)},
    BottleneckClassifier: {"hidden_layer_sizes": (16, 2, 8)},
}


def small(cls, **params):
    return cls(**{**SMALL[cls], "max_iter": 2, "random_state": 0, **params})


def fit_args(cls, X, y):
    return (X, y) if cls is BottleneckClassifier else (X,)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cls", list(SMALL))
@pytest.mark.parametrize("how", ["partial_fit", "warm_start"])
def test_new_data_beyond_the_learned_scaling_is_named(cls, how, small_digits):
    # partial_fit and warm_start keep the first fit's range; data far beyond
    # it overflowed the float32 scaling (a numpy RuntimeWarning, then a NaN
    # loss blamed on learning_rate_init, or scikit-learn's "contains infinity"
    # from the neighbour search).
    X, y = small_digits
    est = small(cls, warm_start=how == "warm_start").fit(*fit_args(cls, X * 16, y))
    before = pickle.dumps(est)
    X_far = X * 16
    X_far[0, 0] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match=r"from 0 to 1e\+300, which the scaling"):
            getattr(est, "fit" if how == "warm_start" else how)(
                *fit_args(cls, X_far, y)
            )
        # Prediction names it too, without numpy's overflow warning first.
        with pytest.raises(ValueError, match="too far outside the range seen in fit"):
            est.transform(X_far)
    assert pickle.dumps(est) == before


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_new_values_beyond_float32_are_named_whatever_the_scaling(small_digits):
    # Scaled, 3.45e38 would be 1.15 of a range of 3e38; but the scaling casts
    # X to float32 first, where it is infinite.
    X = small_digits[0] * 3e38
    est = small(DenoisingAutoencoder).fit(X)
    X_new = X.copy()
    X_new[0, 0] = 3.45e38
    with pytest.raises(ValueError, match="which the scaling"):
        est.partial_fit(X_new)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_eight_bit_data_beyond_a_tiny_learned_range_is_named(small_digits):
    # 8-bit pixels fit any ordinary learned range without a pass over them;
    # a range of 1e-40 (set here: such data does not train) they do not.
    est = small(DenoisingAutoencoder).fit(small_digits[0])
    est.data_min_, est.data_range_ = 0.0, 1e-40
    est._check_scaled_range(np.zeros((4, 64), dtype=np.uint8))
    pixels = np.zeros((4, 64), dtype=np.uint8)
    pixels[0, 0] = 255
    with pytest.raises(ValueError, match="from 0 to 255, which the scaling"):
        est._check_scaled_range(pixels)


@pytest.mark.parametrize("cls", list(SMALL))
@pytest.mark.parametrize("kind", ["RandomState", "Generator"])
def test_a_failed_fit_leaves_a_random_state_instance_as_it_was(
    cls, kind, small_digits, helpers
):
    # The seeds were drawn before later checks (here alpha's float32 range;
    # the early-stopping split is another), so a failed fit advanced the
    # user's generator.
    X, y = small_digits

    def generator():
        return (
            np.random.RandomState(0)
            if kind == "RandomState"
            else np.random.default_rng(0)
        )

    est = small(cls, random_state=generator(), alpha=1e300)
    before = pickle.dumps(est)
    with pytest.raises(ValueError, match="'alpha' parameter"):
        est.fit(*fit_args(cls, X, y))
    assert pickle.dumps(est) == before
    # So the next fit is the one a fresh generator gives.
    est.set_params(alpha=1e-4).fit(*fit_args(cls, X, y))
    twin = small(cls, random_state=generator(), alpha=1e-4).fit(*fit_args(cls, X, y))
    assert helpers.state_dicts_equal(est.module_, twin.module_)


@pytest.mark.parametrize("cls", list(SMALL))
@pytest.mark.parametrize(
    ("noise", "name"),
    [
        (MaskingNoise(value=1e300), "value"),
        (SaltAndPepperNoise(high=-1e300), "high"),
        (GaussianPixelNoise(std=1e300, clip=None), "std"),
        (GaussianPixelNoise(std=1e300, clip=(0, 1e300)), "std"),
        (GaussianPixelNoise(clip=(1e39, 1e40)), "clip"),
    ],
)
def test_training_noise_beyond_float32_is_named(cls, noise, name, small_digits):
    # Valid for float64 images, but the network trains in float32: the
    # corrupted pixels were infinite and the NaN loss blamed the learning rate.
    X, y = small_digits
    est = small(cls, noise=noise)
    with pytest.raises(ValueError, match=f"'{name}' parameter of the noise"):
        est.fit(*fit_args(cls, X, y))
    assert vars(est).keys() == est.get_params(deep=False).keys()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_clipped_noise_of_any_std_trains(small_digits):
    X, _ = small_digits
    small(DenoisingAutoencoder, noise=GaussianPixelNoise(std=1e300)).fit(X)


@pytest.mark.parametrize("cls", list(SMALL))
def test_divergence_from_a_huge_alpha_names_alpha(cls, small_digits):
    X, y = small_digits
    with pytest.raises(
        _training.NonFiniteLossError, match=r"smaller alpha \(it is 1e\+38\)"
    ):
        small(cls, alpha=1e38).fit(*fit_args(cls, X, y))


# -- the count ----------------------------------------------------------------


def test_zz_report_example_count(capsys):
    total = sum(EXAMPLES.values())
    with capsys.disabled():
        print(
            f"\nrobustness suite: {total} hostile examples tried "
            f"({len(EXAMPLES)} property tests)"
        )
    if not COUNTED_TESTS <= set(EXAMPLES):
        pytest.skip("only part of the robustness suite ran")
    assert total >= MIN_EXAMPLES, dict(EXAMPLES)


# -- data that do not look like images ------------------------------------------


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cls", list(SMALL))
def test_per_feature_scaled_data_are_named(cls, digits):
    # A StandardScaler in front: the one range (-3 to 42 on the digits) left
    # most values in a narrow band; the noise swamped them and the
    # pipeline's accuracy fell to chance, without a word.
    from sklearn.pipeline import make_pipeline

    X, y = digits
    pipe = make_pipeline(StandardScaler(), small(cls, max_iter=1))
    with pytest.warns(UserWarning, match="StandardScaler in front") as caught:
        pipe.fit(*fit_args(cls, X, y))
    spread = [w for w in caught if "fills little" in str(w.message)]
    assert [w.filename for w in spread] == [__file__]
    # Images divided by 255 twice.
    with pytest.warns(UserWarning, match="divided by 255 twice"):
        small(cls, max_iter=1).fit(*fit_args(cls, X / 255, y))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cls", list(SMALL))
def test_images_in_any_units_fit_without_a_spread_warning(cls, small_digits):
    X, y = small_digits
    for images in (X, X * 16, (X * 255).astype(np.uint8)):
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message="X fills little")
            small(cls).fit(*fit_args(cls, images, y))


def test_warnings_of_a_fit_in_a_pipeline_point_at_the_callers_line(
    small_digits, tmp_path
):
    # A fixed stacklevel named scikit-learn's base.py (or joblib's memory.py
    # for a Pipeline with memory=) instead of the user's line.
    from joblib import Memory
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, _ = small_digits
    for memory in (None, Memory(tmp_path, verbose=0)):
        # Not the last step: with memory=, joblib caches its fit.
        pipe = make_pipeline(
            small(DenoisingAutoencoder, max_iter=1),
            FunctionTransformer(),
            memory=memory,
        )
        with pytest.warns(ConvergenceWarning) as caught:
            pipe.fit_transform(X)
        assert {w.filename for w in caught} == {__file__}
