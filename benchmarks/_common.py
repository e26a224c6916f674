"""Helpers shared by the benchmark scripts of this folder.

Not a module of the package: the scripts import it as ``_common`` because
Python puts the folder of the script it runs on ``sys.path``.

- :func:`limit_threads` gives torch (``torch.set_num_threads``) and the BLAS
  and OpenMP pools of numpy, scipy and scikit-learn (threadpoolctl) one
  thread count, so every anchor of a comparison runs with the same number.
- :func:`print_environment` prints versions, threads, CPUs and the CPU model.
- :func:`load_images` reads Fashion-MNIST from the local IDX files, or
  stands in random data with a loud note when they are missing.
- :func:`measure_matmul_peak` measures this machine's fp32 matrix-product
  speed in the same run, the yardstick of the "share of peak" columns.
- :func:`time_call`, :func:`print_table`, :func:`verdict` and
  :func:`dense_weight_count` do what their names say.
"""

import itertools
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np
import sklearn
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from denoisenet.datasets import load_fashion_mnist

N_FEATURES = 784
N_CLASSES = 10


def limit_threads(threads=None):
    """Use ``threads`` threads in torch and in numpy's/sklearn's pools.

    ``None`` keeps torch's default (``torch.get_num_threads()``) and gives
    the same count to the other pools. Returns ``(threads, limiter)``; the
    limiter stays in force as long as the caller keeps a reference (and
    until ``limiter.restore_original_limits()``).
    """
    if threads is None:
        threads = torch.get_num_threads()
    if threads < 1:
        raise ValueError(f"threads must be >= 1; got {threads}")
    torch.set_num_threads(threads)
    limiter = threadpool_limits(limits=threads)
    return threads, limiter


def cpu_model():
    """The CPU's model name, as /proc/cpuinfo or the platform module gives it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_environment(threads):
    """Versions, thread counts, CPU count and model, on a few lines."""
    print(
        f"python {platform.python_version()} ({sys.platform}), "
        f"numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
        f"torch {torch.__version__}"
    )
    try:
        import skorch

        print(f"skorch {skorch.__version__}")
    except ImportError:
        print("skorch not installed")
    cpus = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cpus
    print(f"CPU model: {cpu_model()}")
    print(
        f"CPUs: {cpus} (usable by this process: {usable}); threads: {threads} "
        f"(torch.get_num_threads() = {torch.get_num_threads()}, "
        f"interop {torch.get_num_interop_threads()})"
    )
    pools = ", ".join(
        f"{p.get('internal_api')}:{p.get('num_threads')}" for p in threadpool_info()
    )
    print(f"thread pools (threadpoolctl): {pools or 'none found'}")
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
    print(f"torch CPU capability: {capability}")


def load_images(subset, n_samples=None, *, seed=0):
    """Fashion-MNIST's ``subset`` ("train" or "test"), first ``n_samples`` rows.

    Returns ``(X, y, real)``: ``X`` float32 in [0, 1] of shape
    ``(n, 784)``, ``y`` int64, ``real`` False when the IDX files were
    missing and random data stand in (then every accuracy is chance level
    and the script says so in capitals).
    """
    try:
        # FASHION_MNIST_HOME: a folder of the four IDX files, for machines
        # without Debian's dataset-fashion-mnist package.
        X, y = load_fashion_mnist(
            subset, data_home=os.environ.get("FASHION_MNIST_HOME"), download=False
        )
    except (FileNotFoundError, ValueError) as exc:
        n = n_samples or (60000 if subset == "train" else 10000)
        bar = "!" * 72
        print(bar)
        print(f"!! Fashion-MNIST ({subset}) NOT AVAILABLE: {exc}".splitlines()[0])
        print(f"!! USING RANDOM UNIFORM STAND-IN DATA of shape ({n}, {N_FEATURES}).")
        print("!! Timings are meaningful; accuracies and maps are NOT.")
        print(bar)
        rng = np.random.default_rng(seed + (0 if subset == "train" else 1))
        X = rng.random((n, N_FEATURES), dtype=np.float32)
        y = rng.integers(0, N_CLASSES, size=n, dtype=np.int64)
        return X, y, False
    if n_samples is not None:
        if n_samples > X.shape[0]:
            print(f"Fashion-MNIST {subset} has {X.shape[0]} images; using them all")
        X, y = X[:n_samples], y[:n_samples]
    X = np.ascontiguousarray(X, dtype=np.float32)
    print(f"data: Fashion-MNIST {subset}, X {X.shape} {X.dtype}, y {y.shape}")
    return X, y, True


def measure_matmul_peak(threads=None, *, n=2048, repeat=10):
    """This machine's fp32 matrix-product speed now, in GFLOP/s.

    The best of ``repeat`` calls of ``torch.mm`` on two ``n x n`` float32
    matrices (``2 n^3`` FLOPs each) after one warm-up call. ``threads``,
    when given, is set with ``torch.set_num_threads`` first.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator)
    b = torch.randn(n, n, generator=generator)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    best = min(time_call(lambda: torch.mm(a, b, out=out), repeat=repeat))
    return 2.0 * n**3 / best / 1e9


def time_call(function, *, repeat=5, warmup=0):
    """Seconds of each of ``repeat`` calls of ``function()`` (perf_counter)."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def rotating_rounds(names, run, rounds):
    """``run(name)``, seconds per epoch, for every name in each of ``rounds``
    rounds, in an order that rotates by one from round to round (no
    implementation always runs first, or after the same one); prints each
    round. Returns ``{name: [seconds of each round]}``."""
    names = list(names)
    seconds = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seconds[name].append(run(name))
        shown = ", ".join(
            f"{name.split(' ')[0]} {seconds[name][-1]:.3f}" for name in names
        )
        print(f"  round {r + 1}/{rounds}: s/epoch {shown}", flush=True)
    return seconds


def paired_ratios(values, base):
    """Round by round, ``values`` over ``base`` (times measured side by side)."""
    return [v / b for v, b in zip(values, base, strict=True)]


def median(values):
    return float(statistics.median(values))


def dense_weight_count(sizes):
    """Number of weights (not biases) of dense layers between ``sizes``."""
    return sum(a * b for a, b in itertools.pairwise(sizes))


def verdict(met):
    return "MET" if met else "NOT MET"


def print_table(headers, rows):
    """Print ``rows`` (sequences of already formatted cells) under ``headers``.

    The first column is left-aligned, the others right-aligned.
    """
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [
        max([len(str(h)), *(len(row[i]) for row in rows)])
        for i, h in enumerate(headers)
    ]

    def line(cells):
        first = f"{cells[0]:<{widths[0]}}"
        rest = (f"{c:>{w}}" for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    print(line([str(h) for h in headers]))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def quiet_convergence_warnings():
    """Silence ConvergenceWarning: the benchmarks cap epochs on purpose."""
    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
