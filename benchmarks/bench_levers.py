"""Speed levers for the denoising network, measured against the matmul peak.

For the default denoising network's layers (784-256-128-256-784, ReLU, sigmoid,
without the batch normalisation the estimator adds by default,
MSE, Adam, fresh clipped Gaussian noise per batch), a plain PyTorch loop is
timed for one epoch over ``--n-samples`` images at each batch size of
``--batch-sizes``, in fp32 and, where the CPU runs bf16 matrix products
natively, under ``torch.autocast("cpu", dtype=torch.bfloat16)``; beside it,
the same loop without the noise draw (what noise costs) and
``DenoisingAutoencoder.fit`` for one epoch at the same batch size. Each
cell is the best of ``--repeat`` epochs after one warm-up epoch; "share of
peak" divides ``6 x n_samples x weights`` FLOPs per epoch by the epoch time
and by the fp32 ``torch.mm`` peak measured in the same run (2048 x 2048,
the larger of a measurement before and one after).

This shows where the ceiling is on a given machine: the speed issue asks
for >= 75% of the fp32 peak and 2x scikit-learn's MLPRegressor at the same
batch size.

Run it from the repository root::

    python benchmarks/bench_levers.py --threads 2
"""

import argparse
import itertools
import time
import warnings

import _common
import torch
from torch import nn

from denoisenet import DenoisingAutoencoder

SIZES = (784, 256, 128, 256, 784)


def network():
    layers = []
    for i, (a, b) in enumerate(itertools.pairwise(SIZES)):
        layers += [nn.Linear(a, b), nn.ReLU() if i < len(SIZES) - 2 else nn.Sigmoid()]
    return nn.Sequential(*layers)


def plain_epoch(model, optimizer, X, batch_size, *, noise=True, bf16=False):
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(X.shape[0], generator=generator)
    start = time.perf_counter()
    for i in range(0, X.shape[0], batch_size):
        clean = X[order[i : i + batch_size]]
        if noise:
            noisy = torch.randn(clean.shape, generator=generator).mul_(0.3)
            noisy.add_(clean).clamp_(0.0, 1.0)
        else:
            noisy = clean
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.mse_loss(model(noisy).float(), clean)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def best_of(function, repeat):
    function()  # warm-up
    return min(function() for _ in range(repeat))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=20000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    cfg = parser.parse_args(argv)
    cfg.threads, limiter = _common.limit_threads(cfg.threads)
    _common.print_environment(cfg.threads)
    _common.quiet_convergence_warnings()
    warnings.filterwarnings("ignore", message="The given NumPy array is not")
    bf16 = bool(torch.backends.mkldnn.is_available()) and bool(
        torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )
    print(f"native bf16 matrix products (oneDNN): {bf16}")
    X_np, _, _ = _common.load_images("train", cfg.n_samples)
    X = torch.from_numpy(X_np)
    # The peak drifts on shared machines: measured before and after, the
    # larger counts (as in bench_autoencoder.py).
    peak = _common.measure_matmul_peak(cfg.threads)
    flops = 6 * X.shape[0] * _common.dense_weight_count(SIZES)
    rows = []
    for batch_size in cfg.batch_sizes:
        cases = {
            "plain loop fp32": {"noise": True},
            "plain loop fp32, no noise draw": {"noise": False},
        }
        cases["plain loop bf16 autocast"] = {"noise": True, "bf16": True}
        for name, options in cases.items():
            torch.manual_seed(0)
            model = network()
            optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
            seconds = best_of(
                lambda m=model, o=optimizer, kw=options, b=batch_size: plain_epoch(
                    m, o, X, b, **kw
                ),
                cfg.repeat,
            )
            rows.append([name, batch_size, seconds])
        dae = DenoisingAutoencoder(
            noise=0.3, max_iter=1, batch_size=batch_size, random_state=0, device="cpu"
        )

        def fit(estimator=dae):
            start = time.perf_counter()
            estimator.fit(X_np)
            return time.perf_counter() - start

        rows.append(["DenoisingAutoencoder.fit, 1 epoch", batch_size, best_of(fit, 1)])
    peak = max(peak, _common.measure_matmul_peak(cfg.threads))
    print(f"fp32 torch.mm peak: {peak:.0f} GFLOP/s")
    _common.print_table(
        ["case", "batch", "s / epoch", "share of peak"],
        [
            [name, str(b), f"{s:.3f}", f"{100 * flops / s / (peak * 1e9):.0f}%"]
            for name, b, s in rows
        ],
    )
    limiter.restore_original_limits()


if __name__ == "__main__":
    main()
