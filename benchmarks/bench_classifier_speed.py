"""Training speed of ``BottleneckClassifier``: seconds per epoch.

``BottleneckClassifier()`` at its defaults (Fashion-MNIST's 60,000
training images by default: batches of 128 anchors, each with one of its
graph neighbours, so 256 rows a step, and the neighbour term) is timed per
epoch beside

(a) the same classifier with the neighbour term as autograd ops (the
    implementation before its gradient was written in closed form: the
    anchor of that change; same loss, same rows, same everything else);
(b) the same classifier with ``neighbor_weight=0`` (128 rows a step, no
    graph): what the neighbour term costs;
(c) scikit-learn's ``MLPClassifier`` with the same hidden layers
    (the default's), Adam, learning rate and batch size (128 rows a step).

The classifiers' seconds are those of their epochs alone (``fit``'s
neighbour graph, built once per fit, is left out: it is timed on its own);
MLPClassifier's are its fit's. Every fit runs ``--epochs`` epochs without
early stopping; the implementations take turns in an order that rotates
from round to round (``--rounds``), after one warm-up fit each, and the
table shows medians. Ratios are per round, then the median. The share of
the fp32 ``torch.mm`` peak (measured in the same run) counts ``6 x rows x
weights`` FLOPs per epoch (forward, and the two products of the backward).

Run it from the repository root::

    python benchmarks/bench_classifier_speed.py --epochs 1 --rounds 12

Many short rounds suit a machine whose speed drifts within a run (a shared
VM): each round's ratio compares fits a few seconds apart.
"""

import argparse
import time
import warnings
from unittest import mock

import _common
import torch
from sklearn.neural_network import MLPClassifier

from denoisenet import BottleneckClassifier, bottleneck
from denoisenet import _training as training

HIDDEN = BottleneckClassifier().hidden_layer_sizes
BC_NAME = "BottleneckClassifier()"
AUTOGRAD_NAME = "(a) neighbour term by autograd"
NO_TERM_NAME = "(b) neighbor_weight=0"
MLP_NAME = "(c) sklearn MLPClassifier"


def autograd_neighbor_loss(adjacency, z, weights):
    """The neighbour term as it was written before (autograd ops)."""
    p = bottleneck._graph_affinities(adjacency, weights).to(z.dtype)
    sq = (z * z).sum(1)
    log_kernel = -torch.log1p((sq[:, None] + sq[None, :] - 2 * z @ z.T).clamp_min(0))
    pairs = 1.0 - torch.eye(z.shape[0], dtype=z.dtype, device=z.device)
    if weights is not None:
        present = (weights > 0).to(z.dtype)
        pairs = pairs * (present[:, None] * present[None, :])
    log_norm = torch.log((torch.exp(log_kernel) * pairs).sum().clamp_min(1e-12))
    return -(p * (log_kernel - log_norm)).sum() + torch.special.xlogy(p, p).sum()


class EpochTimer:
    """Wraps ``_training.run_epoch`` and sums the seconds of its calls."""

    def __init__(self):
        self.seconds = 0.0
        self.epochs = 0
        self._run_epoch = training.run_epoch

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._run_epoch(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.epochs += 1


def fit_classifier(X, y, epochs, cfg, **params):
    """Seconds per epoch of a ``BottleneckClassifier`` fit, epochs alone."""
    timer = EpochTimer()
    with mock.patch.object(training, "run_epoch", timer):
        BottleneckClassifier(
            max_iter=epochs,
            n_iter_no_change=epochs + 1,
            early_stopping=False,
            random_state=cfg.seed,
            **params,
        ).fit(X, y)
    if timer.epochs != epochs:
        raise RuntimeError(f"the classifier ran {timer.epochs} epochs, not {epochs}")
    return timer.seconds / epochs


def fit_autograd_term(X, y, epochs, cfg):
    with mock.patch.object(bottleneck, "_neighbor_loss", autograd_neighbor_loss):
        return fit_classifier(X, y, epochs, cfg)


def fit_mlp(X, y, epochs, cfg):
    defaults = BottleneckClassifier()
    mlp = MLPClassifier(
        hidden_layer_sizes=HIDDEN,
        batch_size=defaults._batch_size(X.shape[0]),
        learning_rate_init=defaults.learning_rate_init,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        random_state=cfg.seed,
    )
    start = time.perf_counter()
    mlp.fit(X, y)
    seconds = time.perf_counter() - start
    if mlp.n_iter_ != epochs:
        raise RuntimeError(f"MLPClassifier ran {mlp.n_iter_} epochs, not {epochs}")
    return seconds / epochs


IMPLEMENTATIONS = {
    BC_NAME: fit_classifier,
    AUTOGRAD_NAME: fit_autograd_term,
    NO_TERM_NAME: lambda X, y, epochs, cfg: fit_classifier(
        X, y, epochs, cfg, neighbor_weight=0
    ),
    MLP_NAME: fit_mlp,
}


def graph_seconds(X, y, cfg):
    """Seconds of one fit's neighbour graph (scikit-learn's exact search)."""
    data = training.TrainingData(
        torch.from_numpy(X), torch.arange(X.shape[0]), torch.from_numpy(y)
    )
    n_neighbors = BottleneckClassifier().n_neighbors
    start = time.perf_counter()
    bottleneck.neighbor_graph(data, n_neighbors, cfg.seed)
    return time.perf_counter() - start


def measure(X, y, cfg):
    warm = min(X.shape[0], 2000)
    for fit in IMPLEMENTATIONS.values():
        fit(X[:warm], y[:warm], 1, cfg)
    return _common.rotating_rounds(
        IMPLEMENTATIONS,
        lambda name: IMPLEMENTATIONS[name](X, y, cfg.epochs, cfg),
        cfg.rounds,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per fit")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    cfg = parser.parse_args(argv)
    if min(cfg.n_samples, cfg.epochs, cfg.rounds) < 1:
        parser.error("--n-samples, --epochs and --rounds must be >= 1")
    warnings.filterwarnings("ignore", category=UserWarning)
    _common.quiet_convergence_warnings()
    threads, _limiter = _common.limit_threads(cfg.threads)
    _common.print_environment(threads)

    X, y, _ = _common.load_images("train", cfg.n_samples, seed=cfg.seed)
    n = X.shape[0]
    batch = BottleneckClassifier()._batch_size(n)
    weights = _common.dense_weight_count([X.shape[1], *HIDDEN, 10])
    print(
        f"network {X.shape[1]}-{'-'.join(map(str, HIDDEN))}-10, {weights:,} "
        f"weights; batch {batch} (anchors; with the neighbour term each comes "
        "with a neighbour)"
    )
    peak_start = _common.measure_matmul_peak(threads)
    print(f"fp32 torch.mm 2048^3 peak at start: {peak_start:.1f} GFLOP/s")
    graph = graph_seconds(X, y, cfg)
    print(f"the neighbour graph of {n} images, once per fit: {graph:.2f} s")
    print(
        f"{cfg.rounds} round(s) of {cfg.epochs} epoch(s) each, order rotating, "
        "after one warm-up fit per implementation"
    )
    seconds = measure(X, y, cfg)
    peak = max(peak_start, _common.measure_matmul_peak(threads))
    print(f"fp32 torch.mm peak: {peak:.1f} GFLOP/s (the larger of start and end)")

    rows_per_epoch = {BC_NAME: 2 * n, AUTOGRAD_NAME: 2 * n}
    ratios = {
        name: _common.paired_ratios(values, seconds[BC_NAME])
        for name, values in seconds.items()
    }
    table = []
    for name, values in seconds.items():
        gflop = 6 * rows_per_epoch.get(name, n) * weights / 1e9
        med = _common.median(values)
        paired = _common.median(ratios[name])
        table.append(
            [
                name,
                f"{med:.3f}",
                f"{min(values):.3f}",
                f"{paired:.2f}x",
                f"{gflop / med:.1f}",
                f"{100 * gflop / med / peak:.0f}%",
            ]
        )
    print()
    _common.print_table(
        ["training", "s/epoch", "best", f"vs {BC_NAME}", "GFLOP/s", "of peak"], table
    )
    print()
    print(
        "per-round (a) / BottleneckClassifier(): "
        + ", ".join(f"{r:.3f}" for r in ratios[AUTOGRAD_NAME])
        + f"; median {_common.median(ratios[AUTOGRAD_NAME]):.3f}x"
    )


if __name__ == "__main__":
    main()
