"""The GPU path's CUDA-graph step, checked on its CPU-side seams.

On a CUDA device, :class:`denoisenet._training._Stepper` captures the step
of full batches in a CUDA graph and replays it. ``capture="static"`` runs
the same path (copies into the graph's input tensors, warm-up, capture
after the warm-up, recapture when the learning rate changes, eager steps
for other batches) with the captured step run as a function: these tests
check that path on any machine. tests/test_gpu.py runs the real graphs
where a GPU is present.
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from denoisenet import BottleneckClassifier, DenoisingAutoencoder, _training
from denoisenet._training import GRAPH_WARMUP_STEPS, Objective, _Stepper


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300].astype(np.float32) / 16.0, y[:300]


def fit_with(capture, estimator, *args):
    """Fit ``estimator`` with steppers of ``capture``; return them too."""
    made = []

    def for_fit(module, optimizer, objective, generator, device):
        stepper = _Stepper(module, optimizer, objective, generator, capture)
        made.append(stepper)
        return stepper

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_Stepper, "for_fit", staticmethod(for_fit))
        estimator.fit(*args)
    return estimator, made


def assert_same_weights(a, b):
    a, b = a.module_.state_dict(), b.module_.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def dae():
    # 300 rows in batches of 64: four full batches and a short one an
    # epoch; with this tolerance the adaptive rate decays within 40 epochs.
    return DenoisingAutoencoder(
        (16, 8, 16),
        batch_size=64,
        max_iter=40,
        n_iter_no_change=2,
        tol=1e-2,
        early_stopping=False,
        random_state=0,
        device="cpu",
    )


def test_replayed_steps_train_the_autoencoder_bit_for_bit_as_eager_steps(digits):
    X, _ = digits
    eager, _ = fit_with(None, dae(), X)
    replayed, (stepper,) = fit_with("static", dae(), X)
    assert stepper.replay is not None
    # One capture, and one more for every change of the learning rate
    # (the replayed step holds the rate it was captured with).
    assert stepper.captures >= 2
    assert stepper.rates == tuple(g["lr"] for g in stepper.optimizer.param_groups)
    assert_same_weights(replayed, eager)
    assert replayed.loss_curve_ == eager.loss_curve_
    np.testing.assert_array_equal(replayed.transform(X), eager.transform(X))


# Fifteen epochs are enough to compare the paths; convergence is not tested.
quiet = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def bottleneck(**params):
    return BottleneckClassifier(
        (32, 2, 16),
        batch_size=64,
        max_iter=15,
        early_stopping=False,
        random_state=0,
        device="cpu",
        **params,
    )


@quiet
def test_replayed_steps_train_the_classifier_bit_for_bit(digits):
    X, y = digits
    # Without the neighbour term, every full batch is replayed.
    eager, _ = fit_with(None, bottleneck(neighbor_weight=0.0), X, y)
    replayed, (stepper,) = fit_with("static", bottleneck(neighbor_weight=0.0), X, y)
    assert stepper.captures >= 1
    assert_same_weights(replayed, eager)
    assert replayed.loss_curve_ == eager.loss_curve_


@quiet
def test_batches_of_neighbour_pairs_are_replayed_too(digits):
    X, y = digits
    eager, _ = fit_with(None, bottleneck(), X, y)
    replayed, (stepper,) = fit_with("static", bottleneck(), X, y)
    # Their graph comes as an adjacency of one shape for every full batch,
    # however many edges it holds, so the default classifier's step is
    # captured like any other.
    assert stepper.captures >= 1 and len(stepper.static) == 4
    assert stepper.static[3].dtype == torch.bool
    assert_same_weights(replayed, eager)
    assert replayed.loss_curve_ == eager.loss_curve_


def tiny_step(capture):
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    calls = []

    def loss(module, inputs, targets, weights):
        calls.append(inputs.shape[0])
        return ((module(inputs) - targets) ** 2).mean()

    stepper = _Stepper(module, optimizer, Objective(loss), torch.Generator(), capture)
    return stepper, module, calls


def batches(rows_per_batch, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.rand(rows, 3, generator=generator),
            torch.rand(rows, 1, generator=generator),
            None,
        )
        for rows in rows_per_batch
    ]


def test_the_step_is_captured_after_the_warm_up_and_short_batches_run_eagerly():
    sizes = [4] * (GRAPH_WARMUP_STEPS + 3) + [2, 4]
    stepper, module, _ = tiny_step("static")
    eager, eager_module, _ = tiny_step(None)
    for i, batch in enumerate(batches(sizes)):
        loss = stepper(batch)
        expected = eager(batch)
        assert torch.equal(loss, expected)
        # Warm-up steps first, then a capture that the next batches replay.
        assert (stepper.replay is not None) == (i >= GRAPH_WARMUP_STEPS)
    assert stepper.captures == 1 and stepper.warm_steps == GRAPH_WARMUP_STEPS
    # The replayed step reads the batch copied into its own tensors; the
    # short batch ran eagerly and left them alone.
    assert torch.equal(stepper.static[0], batches(sizes)[-1][0])
    assert torch.equal(module.weight, eager_module.weight)


def test_a_new_learning_rate_is_captured_again():
    stepper, _, _ = tiny_step("static")
    for batch in batches([4] * (GRAPH_WARMUP_STEPS + 2)):
        stepper(batch)
    assert stepper.captures == 1
    for group in stepper.optimizer.param_groups:
        group["lr"] /= 5
    stepper(batches([4])[0])
    assert stepper.captures == 2 and stepper.rates == (0.02,)


def test_the_plain_path_never_copies_a_batch():
    stepper, _, calls = tiny_step(None)
    for batch in batches([4] * (GRAPH_WARMUP_STEPS + 2)):
        stepper(batch)
    assert stepper.static is None and stepper.captures == 0
    assert calls == [4] * (GRAPH_WARMUP_STEPS + 2)


@pytest.mark.parametrize("switch", [True, False])
def test_one_switch_turns_the_graphs_on_and_off(monkeypatch, switch):
    monkeypatch.setattr(_training, "CUDA_GRAPHS", switch)
    module = torch.nn.Linear(3, 1)
    objective = Objective(lambda *args: None)
    for device, expected in [("cpu", None), ("cuda", "cuda" if switch else None)]:
        stepper = _Stepper.for_fit(module, None, objective, None, device)
        assert stepper.capture == expected


def test_noise_without_graph_safe_generators_stays_eager(monkeypatch):
    monkeypatch.delattr(torch.cuda.CUDAGraph, "register_generator_state", raising=False)
    noisy = Objective(lambda *args: None, corrupt=lambda x, g: x)
    clean = Objective(lambda *args: None)
    module = torch.nn.Linear(3, 1)
    assert _Stepper.for_fit(module, None, noisy, None, "cuda").capture is None
    assert _Stepper.for_fit(module, None, clean, None, "cuda").capture == "cuda"


class _FailingGraph:
    """Stands in for torch.cuda.graph: the capture fails as it begins."""

    def __init__(self, graph):
        pass

    def __enter__(self):
        raise RuntimeError("operation not permitted when stream is capturing")

    def __exit__(self, *exc):
        return False


class _FakeStream:
    def wait_stream(self, other):
        pass


def test_a_failed_capture_goes_on_with_eager_steps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "Stream", _FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", _FakeStream)
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: _NoOp())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: object())
    monkeypatch.setattr(torch.cuda, "graph", _FailingGraph)
    stepper, module, _ = tiny_step("cuda")
    eager, eager_module, _ = tiny_step(None)
    for batch in batches([4] * (GRAPH_WARMUP_STEPS + 3)):
        assert torch.equal(stepper(batch), eager(batch))
    assert stepper.capture is None and stepper.replay is None
    assert torch.equal(module.weight, eager_module.weight)


class _NoOp:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
