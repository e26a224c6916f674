"""The ``device="cuda"`` path; skipped where torch sees no CUDA device."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from denoisenet import BottleneckClassifier, DenoisingAutoencoder

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400].astype(np.float32), y[:400]


@cuda
def test_autoencoder_trains_and_transforms_on_the_gpu(digits):
    X, _ = digits
    dae = DenoisingAutoencoder((32, 8, 32), max_iter=5, device="cuda", random_state=0)
    dae.fit(X)
    assert next(dae.module_.parameters()).device.type == "cuda"
    out = dae.transform(X)
    assert isinstance(out, np.ndarray) and out.shape == X.shape
    assert np.isfinite(out).all()
    assert np.isfinite(dae.score(X))
    # Same seed on the same device: the same weights.
    again = DenoisingAutoencoder(
        (32, 8, 32), max_iter=5, device="cuda", random_state=0
    ).fit(X)
    np.testing.assert_allclose(again.transform(X), out, atol=1e-5)


@cuda
def test_bottleneck_trains_and_predicts_on_the_gpu(digits):
    X, y = digits
    clf = BottleneckClassifier(
        (64, 2, 32),
        max_iter=40,
        learning_rate_init=0.01,
        device="cuda",
        random_state=0,
    ).fit(X, y)
    assert next(clf.module_.parameters()).device.type == "cuda"
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert clf.transform(X).shape == (len(X), 2)
    assert clf.score(X, y) > 0.5


@cuda
def test_sample_weights_train_on_the_gpu(digits, helpers):
    # The weights reach the device as the float32 tensor of the CPU path
    # (they were numpy there once, which has no .to(device)); scaled by a
    # power of two they train the same network.
    X, y = digits
    weights = np.linspace(0.5, 3.0, len(y))
    fits = [
        BottleneckClassifier(
            (32, 2, 16), max_iter=3, alpha=0.0, device="cuda", random_state=0
        ).fit(X, y, sample_weight=w)
        for w in (weights, weights * 2.0**40)
    ]
    assert helpers.state_dicts_equal(fits[0].module_, fits[1].module_)
    assert np.isfinite(fits[0].predict_proba(X)).all()


@cuda
@pytest.mark.parametrize("estimator", ["dae", "clf"])
def test_conv_networks_refit_bit_identically_on_the_gpu(digits, estimator):
    # cuDNN is held to deterministic fp32 algorithms during fit and
    # prediction, so an int seed gives the same model on the same GPU.
    X, y = digits
    params = {
        "architecture": "conv",
        "conv_channels": (8, 16),
        "max_iter": 3,
        "device": "cuda",
        "random_state": 0,
    }
    if estimator == "dae":
        make = lambda: DenoisingAutoencoder((32, 8, 32), **params).fit(X)  # noqa: E731
    else:
        make = lambda: BottleneckClassifier((32, 2, 16), **params).fit(X, y)  # noqa: E731
    first, second = make(), make()
    assert next(first.module_.parameters()).device.type == "cuda"
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    # The GPU's answer agrees with the CPU's for the same weights.
    on_cpu = pickle.loads(pickle.dumps(first)).set_params(device="cpu")
    np.testing.assert_allclose(on_cpu.transform(X), first.transform(X), atol=1e-4)


def _fit_recording_steppers(make, monkeypatch):
    from denoisenet._training import _Stepper

    made, original = [], _Stepper.for_fit

    def for_fit(*args):
        made.append(original(*args))
        return made[-1]

    monkeypatch.setattr(_Stepper, "for_fit", staticmethod(for_fit))
    return make(), made


@cuda
@pytest.mark.parametrize("estimator", ["dae", "clf", "clf-pairs"])
def test_cuda_graphs_replay_the_step_and_refit_bit_identically(
    digits, estimator, monkeypatch
):
    # Dense networks on the GPU: full batches are replayed from a CUDA
    # graph (see denoisenet._training._Stepper), refits stay bit-identical,
    # and the result agrees with eager steps (_training.CUDA_GRAPHS off).
    from denoisenet import _training

    X, y = digits
    params = {"batch_size": 64, "max_iter": 8, "device": "cuda", "random_state": 0}
    if estimator == "dae":
        make = lambda: DenoisingAutoencoder((32, 8, 32), **params).fit(X)  # noqa: E731
    else:
        weight = 0.0 if estimator == "clf" else 0.3  # 0.3: neighbour pairs
        make = lambda: BottleneckClassifier(  # noqa: E731
            (32, 2, 16), neighbor_weight=weight, **params
        ).fit(X, y)
    first, steppers = _fit_recording_steppers(make, monkeypatch)
    second = make()
    assert steppers[0].capture == "cuda" and steppers[0].captures >= 1
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    monkeypatch.setattr(_training, "CUDA_GRAPHS", False)
    eager = make()
    np.testing.assert_allclose(eager.loss_curve_, first.loss_curve_, rtol=1e-4)


@cuda
def test_a_gpu_model_unpickles_and_predicts_without_a_gpu(digits, tmp_path):
    X, y = digits
    clf = BottleneckClassifier(
        (32, 2, 16), max_iter=5, device="cuda", random_state=0
    ).fit(X, y)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(clf))
    np.save(tmp_path / "X.npy", X)
    expected = clf.predict_proba(X)
    np.save(tmp_path / "expected.npy", expected)
    code = (
        "import pickle, sys, numpy as np, torch\n"
        "assert not torch.cuda.is_available()\n"
        f"clf = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        "clf.set_params(device='cpu')\n"
        f"X = np.load({str(tmp_path / 'X.npy')!r})\n"
        f"expected = np.load({str(tmp_path / 'expected.npy')!r})\n"
        "np.testing.assert_allclose(clf.predict_proba(X), expected, atol=1e-4)\n"
        "print('ok')\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_pickled_state_holds_only_cpu_tensors(digits):
    # What makes a GPU model load on a CPU-only machine: the state is saved
    # from the CPU, whatever device the module lives on.
    import io

    X, y = digits
    clf = BottleneckClassifier((16, 2, 8), max_iter=2, random_state=0).fit(X, y)
    state = clf.__getstate__()
    weights = torch.load(io.BytesIO(state["module_"]), weights_only=True)
    assert all(t.device.type == "cpu" for t in weights.values())


@cuda
def test_inference_on_another_device_leaves_the_stored_weights_in_place(digits):
    # Fitted on the GPU and asked on the CPU (and the other way round): the
    # answer comes from a copy, and module_ stays where fit put it.
    X, y = digits
    clf = BottleneckClassifier((32, 2, 16), max_iter=3, device="cuda", random_state=0)
    clf.fit(X, y)
    on_gpu = clf.predict_proba(X)
    clf.set_params(device="cpu")
    np.testing.assert_allclose(clf.predict_proba(X), on_gpu, atol=1e-4)
    assert next(clf.module_.parameters()).device.type == "cuda"
    dae = DenoisingAutoencoder((32, 8, 32), max_iter=2, device="cpu", random_state=0)
    on_cpu = dae.fit(X).transform(X)
    dae.set_params(device="cuda")
    np.testing.assert_allclose(dae.transform(X), on_cpu, atol=1e-3)
    assert next(dae.module_.parameters()).device.type == "cpu"
    dae.set_params(device=f"cuda:{torch.cuda.device_count()}")
    with pytest.raises(ValueError, match="CUDA device"):
        dae.transform(X)
    assert next(dae.module_.parameters()).device.type == "cpu"


@cuda
def test_a_network_larger_than_the_gpu_is_refused_before_allocating(digits):
    X, _ = digits
    free, _ = torch.cuda.mem_get_info()
    # One hidden layer whose training copies need about twice the free memory.
    width = 2 * free // (7 * 4 * 2 * X.shape[1]) + 1
    dae = DenoisingAutoencoder((width,), max_iter=1, device="cuda")
    before = torch.cuda.memory_allocated()
    with pytest.raises(ValueError, match="available on cuda"):
        dae.fit(X)
    assert torch.cuda.memory_allocated() == before
