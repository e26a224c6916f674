"""The GPU path: seconds per epoch against a plain PyTorch loop on the GPU.

Issue 17's GPU target: per-epoch time of the default ``DenoisingAutoencoder``
and ``BottleneckClassifier`` on 60,000 images at least 3x faster than a
plain PyTorch GPU loop that keeps the data on the device, refits still
bit-identical, images per second and GPU utilisation printed.

Implementations, every one on ``--device`` (a CUDA GPU) in the same process,
each fitted for ``--epochs`` epochs per round, rounds interleaved in a
rotating order, the median seconds per epoch shown:

- the estimators at their defaults (``early_stopping=False`` and a patience
  longer than the fit, so that every one trains on all rows for exactly
  ``--epochs`` epochs), with CUDA graphs (the default) and without them
  (``denoisenet._training.CUDA_GRAPHS = False``), and the classifier with
  ``neighbor_weight=0`` (a plain cross-entropy network, as the plain loop
  is; the default also builds the neighbour graph and trains on twice the
  rows a step);
- plain loops: the same network, Adam, batch size and noise, the data
  copied to the GPU once, shuffled with ``torch.randperm`` on the GPU, one
  Python-launched step per batch (the PyTorch tutorial's loop).

GPU utilisation is the share of one epoch's wall time that the GPU spent
in kernels (torch.profiler's CUDA kernel time over the epoch's seconds); it
is approximate (the profiler adds some overhead) and printed per
implementation. "Bit-identical" refits the graphed estimators with the same
``random_state`` and compares their outputs exactly.

Without a CUDA device the script says so and measures nothing;
``--device cpu`` runs it through on the CPU as a dry run (no verdict), to
check the script before a GPU session spends its time on it.

    python benchmarks/bench_gpu.py                 # 60,000 images, 3 rounds
    python benchmarks/bench_gpu.py --epochs 2 --rounds 2 --n-samples 20000
    python benchmarks/bench_gpu.py --device cpu --n-samples 2000 --epochs 1 --rounds 1
"""

import argparse
import copy
import time

import _common
import numpy as np
import torch
from torch import nn

from denoisenet import BottleneckClassifier, DenoisingAutoencoder, _training

TARGET_SPEEDUP = 3.0


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def estimator_fit(make, X, y, epochs, graphs):
    """A fit callable of ``make(max_iter=..)`` with CUDA graphs on or off."""

    def fit():
        before = _training.CUDA_GRAPHS
        _training.CUDA_GRAPHS = graphs
        try:
            est = make(
                max_iter=epochs,
                n_iter_no_change=epochs + 1,
                early_stopping=False,
                random_state=0,
            )
            est.fit(X) if y is None else est.fit(X, y)
        finally:
            _training.CUDA_GRAPHS = before
        sync(est.device)
        return est

    return fit


def plain_fit(template, X, y, epochs, batch_size, lr, noise, device):
    """The tutorial's loop on ``copy.deepcopy(template)``, data on the GPU."""

    def fit():
        model = copy.deepcopy(template).to(device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        X_d = torch.as_tensor(X, device=device)
        y_d = None if y is None else torch.as_tensor(y, device=device)
        n = X_d.shape[0]
        for _ in range(epochs):
            order = torch.randperm(n, device=device)
            for start in range(0, n, batch_size):
                rows = order[start : start + batch_size]
                clean = X_d[rows]
                if y_d is None:
                    noisy = (clean + noise * torch.randn_like(clean)).clamp_(0, 1)
                    loss = nn.functional.mse_loss(model(noisy), clean)
                else:
                    loss = nn.functional.cross_entropy(model(clean), y_d[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        sync(device)
        return model

    return fit


def busy_share(fit):
    """Share of ``fit``'s wall time that the GPU spent in kernels."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        fit()
        wall = time.perf_counter() - start
    kernel_us = sum(e.self_device_time_total for e in prof.key_averages())
    return kernel_us / 1e6 / wall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--n-samples", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    cfg = parser.parse_args(argv)
    if min(cfg.n_samples, cfg.epochs, cfg.rounds) < 1:
        parser.error("--n-samples, --epochs and --rounds must be >= 1")
    _common.print_environment(torch.get_num_threads())
    device = torch.device(cfg.device)
    dry_run = device.type == "cpu"
    if dry_run:
        print("DRY RUN on the CPU: the script's paths, no GPU figures")
    elif device.type != "cuda" or not torch.cuda.is_available():
        print(f"no CUDA device ({cfg.device!r}): nothing measured")
        return
    else:
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    _common.quiet_convergence_warnings()
    X, y, _ = _common.load_images("train", cfg.n_samples)
    n, epochs = X.shape[0], cfg.epochs

    dae = lambda **p: DenoisingAutoencoder(device=cfg.device, **p)  # noqa: E731
    clf = lambda **p: BottleneckClassifier(device=cfg.device, **p)  # noqa: E731
    clf0 = lambda **p: BottleneckClassifier(  # noqa: E731
        device=cfg.device, neighbor_weight=0.0, **p
    )
    dae_ref = estimator_fit(dae, X[:512], None, 1, True)()
    clf_ref = estimator_fit(clf0, X[:512], y[:512], 1, True)()
    dae_batch = DenoisingAutoencoder()._batch_size(n)
    clf_batch = BottleneckClassifier()._batch_size(n)
    print(
        f"{n:,} images; batches: auto-encoder {dae_batch}, classifier "
        f"{clf_batch} rows; {epochs} epoch(s) a fit, {cfg.rounds} round(s)"
    )
    cases = {
        "DAE": estimator_fit(dae, X, None, epochs, True),
        "DAE, no graphs": estimator_fit(dae, X, None, epochs, False),
        "DAE plain loop": plain_fit(
            dae_ref.module_,
            X,
            None,
            epochs,
            dae_batch,
            dae_ref.learning_rate_init,
            dae_ref.noise,
            device,
        ),
        "BC": estimator_fit(clf, X, y, epochs, True),
        "BC neighbor_weight=0": estimator_fit(clf0, X, y, epochs, True),
        "BC neighbor_weight=0, no graphs": estimator_fit(clf0, X, y, epochs, False),
        "BC plain loop": plain_fit(
            clf_ref.module_,
            X,
            y,
            epochs,
            clf_batch,
            clf_ref.learning_rate_init,
            None,
            device,
        ),
    }
    for fit in cases.values():  # warm-up: kernels, allocator, cuBLAS
        fit()
    names = list(cases)
    seconds = {name: [] for name in names}
    for r in range(cfg.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            cases[name]()
            seconds[name].append((time.perf_counter() - start) / epochs)
        print(f"  round {r + 1}/{cfg.rounds} done", flush=True)
    busy = {name: 0.0 if dry_run else busy_share(fit) for name, fit in cases.items()}

    rows, met = [], True
    for name in names:
        s = _common.median(seconds[name])
        anchor = "DAE plain loop" if name.startswith("DAE") else "BC plain loop"
        speedup = _common.median(seconds[anchor]) / s
        if name in ("DAE", "BC"):
            met &= speedup >= TARGET_SPEEDUP
        rows.append(
            [
                name + (" *" if name in ("DAE", "BC") else ""),
                f"{s:.3f}",
                f"{n / s:,.0f}",
                f"{speedup:.2f}x",
                f"{busy[name]:.0%}",
            ]
        )
    _common.print_table(
        ["case", "s / epoch", "images / s", "vs plain loop", "GPU busy"], rows
    )
    print("* counts for the target")

    same = []
    for name, make, args in (
        ("DAE", dae, (X, None)),
        ("BC neighbor_weight=0", clf0, (X, y)),
    ):
        a = estimator_fit(make, *args, 2, True)().transform(X[:2000])
        b = estimator_fit(make, *args, 2, True)().transform(X[:2000])
        same.append(np.array_equal(a, b))
        print(f"refit bit-identical ({name}, CUDA graphs): {same[-1]}")
    if dry_run:
        print("dry run: no verdict")
        return
    print(
        f"target: the default estimators >= {TARGET_SPEEDUP:g}x the plain GPU "
        f"loop per epoch, refits bit-identical: {_common.verdict(met and all(same))}"
    )


if __name__ == "__main__":
    main()
