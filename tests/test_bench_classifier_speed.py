"""benchmarks/bench_classifier_speed.py runs, times what it says, and leaves
the library as it found it (it swaps the neighbour term and wraps the
epochs for its anchors)."""

import importlib.util
from pathlib import Path

import pytest

from denoisenet import _training, bottleneck

SCRIPT = (
    Path(__file__).resolve().parent.parent / "benchmarks" / "bench_classifier_speed.py"
)


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bench_classifier_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_autograd_anchor_is_the_same_loss_and_gradient(bench):
    import torch

    generator = torch.Generator().manual_seed(1)
    adjacency = torch.rand(24, 24, generator=generator) < 0.2
    adjacency.fill_diagonal_(False)
    z = torch.randn(24, 2, generator=generator, dtype=torch.float64)
    grads = []
    for loss in (bottleneck._neighbor_loss, bench.autograd_neighbor_loss):
        codes = z.clone().requires_grad_()
        value = loss(adjacency, codes, None)
        value.backward()
        grads.append((value.detach(), codes.grad))
    assert torch.allclose(grads[0][0], grads[1][0], rtol=1e-12)
    assert torch.allclose(grads[0][1], grads[1][1], rtol=1e-10, atol=1e-12)


def test_the_script_times_every_implementation_and_restores_the_library(
    bench, capsys, monkeypatch
):
    import torch

    # The script's thread limits would outlive the call (torch's count and
    # threadpoolctl's limits are process-wide): the test keeps them as they are.
    monkeypatch.setattr(
        bench._common, "limit_threads", lambda threads: (torch.get_num_threads(), None)
    )
    term, run_epoch = bottleneck._neighbor_loss, _training.run_epoch
    bench.main(["--n-samples", "400", "--epochs", "2", "--rounds", "2"])
    out = capsys.readouterr().out
    for name in bench.IMPLEMENTATIONS:
        assert sum(line.startswith(name) for line in out.splitlines()) == 1
    assert "round 2/2" in out and "per-round (a) / BottleneckClassifier()" in out
    assert bottleneck._neighbor_loss is term
    assert _training.run_epoch is run_epoch


def test_the_epoch_timer_counts_the_epochs_it_times(bench, monkeypatch):
    calls = []
    monkeypatch.setattr(_training, "run_epoch", lambda *a, **k: calls.append(a))
    timer = bench.EpochTimer()
    timer(1, 2)
    timer(3)
    assert timer.epochs == 2 and timer.seconds >= 0 and calls == [(1, 2), (3,)]
