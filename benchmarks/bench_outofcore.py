"""Out-of-core training: DenoisingAutoencoder.fit on a uint8 memmap.

A file of ``--n-samples`` 8-bit images of 784 pixels (2,000,000 by default:
1.5 GiB; 6.3 GiB as float32) is written to a temporary folder, built from
Fashion-MNIST's 60,000 training images (``_common.load_images``) tiled in a
fresh random order for every block, with independent noise of up to +-8
grey levels on every pixel (clipped to 0..255), so that no image repeats
exactly. It is opened read-only as a ``numpy.memmap`` and deleted at the
end.

1. Memory: the anonymous resident memory of this process (``RssAnon`` in
   ``/proc/self/status``: the heap, not the file's pages in the page cache)
   is sampled every 20 ms by a thread during one epoch of
   ``DenoisingAutoencoder(max_iter=1)`` at its defaults on the whole
   memmap. Target: the peak stays below 1 GiB (a float32 copy alone
   would take 6.3 GiB).
2. Speed: seconds per image of that epoch against one epoch on
   ``--subset`` rows (60,000 by default) held in memory as float32 in
   [0, 1], the fastest input the estimator takes. The subset's epoch and
   an epoch on the memmap's first ``--subset`` rows run in ``--rounds``
   interleaved rounds, half before and half after the big epoch (best of
   each; the spread shows how much the machine's speed drifted). Target:
   the big memmap epoch takes at most 1.3x the in-memory time per image.

The file is written just before the measurement, so its pages are in the
page cache: the figures are for a data set that fits the page cache but
not the process's own memory, not for a cold disk.

Run it from the repository root (a few minutes with ``--quick``)::

    python benchmarks/bench_outofcore.py --threads 1
    python benchmarks/bench_outofcore.py --threads 1 --quick   # 200,000 rows
"""

import argparse
import gc
import shutil
import tempfile
import threading
import time
from pathlib import Path

import _common
import numpy as np

from denoisenet import DenoisingAutoencoder

GiB = 2**30
TARGET_RSS = 1 * GiB
TARGET_RATIO = 1.3
QUICK_SAMPLES = 200_000
BLOCK = 50_000


def rss_anon():
    """Bytes of anonymous resident memory of this process (Linux)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status (Linux only)")


class PeakSampler:
    """Sample ``rss_anon()`` in a thread while the ``with`` block runs."""

    def __init__(self, interval=0.02):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_anon())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.peak = rss_anon()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon())


def write_memmap(path, n_samples, seed):
    """Write ``n_samples`` noisy tiled Fashion-MNIST images as uint8."""
    images, _, _ = _common.load_images("train")
    base = np.rint(images * 255).astype(np.int16)
    del images
    rng = np.random.default_rng(seed)
    out = np.memmap(path, dtype=np.uint8, mode="w+", shape=(n_samples, base.shape[1]))
    for start in range(0, n_samples, BLOCK):
        stop = min(start + BLOCK, n_samples)
        rows = rng.integers(0, len(base), size=stop - start)
        block = base[rows] + rng.integers(-8, 9, size=(stop - start, base.shape[1]))
        out[start:stop] = np.clip(block, 0, 255)
    out.flush()
    del out, base
    return np.memmap(path, dtype=np.uint8, mode="r", shape=(n_samples, 784))


def epoch_seconds(X, seed):
    """Seconds of one epoch of the default DenoisingAutoencoder on ``X``."""
    dae = DenoisingAutoencoder(max_iter=1, random_state=seed, device="cpu")
    start = time.perf_counter()
    dae.fit(X)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=2_000_000)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"use {QUICK_SAMPLES:,} rows instead of --n-samples",
    )
    parser.add_argument("--subset", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dir", default=None, help="folder for the temporary file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n_samples = QUICK_SAMPLES if args.quick else args.n_samples
    if min(n_samples, args.subset, args.rounds) < 1 or args.subset > n_samples:
        parser.error("need 1 <= --subset <= rows, and --rounds >= 1")

    threads, _limiter = _common.limit_threads(args.threads)
    _common.print_environment(threads)
    _common.quiet_convergence_warnings()
    folder = Path(tempfile.mkdtemp(prefix="denoisenet-outofcore-", dir=args.dir))
    try:
        start = time.perf_counter()
        X = write_memmap(folder / "pixels.u8", n_samples, args.seed)
        gc.collect()
        print(
            f"memmap: {X.shape} uint8, {X.nbytes / GiB:.2f} GiB on disk "
            f"({X.nbytes * 4 / GiB:.2f} GiB as float32), written in "
            f"{time.perf_counter() - start:.0f} s to {folder}"
        )
        run(X, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def subset_round(subset, head, seed, times):
    times["in-memory float32"].append(epoch_seconds(subset, seed))
    times["memmap uint8"].append(epoch_seconds(head, seed))


def run(X, args):
    n_samples = X.shape[0]
    subset = np.ascontiguousarray(X[: args.subset], dtype=np.float32)
    subset /= 255
    head = X[: args.subset]
    times = {"in-memory float32": [], "memmap uint8": []}
    # Warm-up: torch's kernels and thread pools, outside the measurements.
    epoch_seconds(X[:2000], args.seed)
    # Rounds on the subsets before and after the big epoch, so that a
    # drift of the machine's speed shows in their spread.
    before = (args.rounds + 1) // 2
    for _ in range(before):
        subset_round(subset, head, args.seed, times)
    gc.collect()
    baseline = rss_anon()
    with PeakSampler() as sampler:
        big = epoch_seconds(X, args.seed)
    print(
        f"1 epoch on the {n_samples:,}-row memmap: {big:.1f} s, "
        f"{big / n_samples * 1e6:.1f} us/image; RssAnon before "
        f"{baseline / 2**20:.0f} MiB (the {subset.nbytes / 2**20:.0f} MiB float32 "
        f"subset included), peak {sampler.peak / 2**20:.0f} MiB"
    )
    for _ in range(args.rounds - before):
        subset_round(subset, head, args.seed, times)

    best = {name: min(values) for name, values in times.items()}
    reference = best["in-memory float32"] / args.subset
    rows = [
        [
            f"{name}, {args.subset:,} rows",
            " / ".join(f"{v:.2f}" for v in times[name]),
            f"{best[name] / args.subset * 1e6:.1f}",
            f"{best[name] / args.subset / reference:.2f}x",
        ]
        for name in times
    ]
    rows.append(
        [
            f"memmap uint8, {n_samples:,} rows",
            f"{big:.2f}",
            f"{big / n_samples * 1e6:.1f}",
            f"{big / n_samples / reference:.2f}x",
        ]
    )
    print("\nseconds of one epoch (each round; us / image of the best)")
    _common.print_table(["data", "s / epoch", "us / image", "vs in-memory"], rows)
    ratio = big / n_samples / reference
    print(
        f"\ntarget: peak RssAnon < {TARGET_RSS / GiB:.0f} GiB during the "
        f"{n_samples:,}-row epoch: {_common.verdict(sampler.peak < TARGET_RSS)} "
        f"({sampler.peak / GiB:.2f} GiB)"
    )
    print(
        f"target: time per image <= {TARGET_RATIO}x the in-memory float32 epoch: "
        f"{_common.verdict(ratio <= TARGET_RATIO)} ({ratio:.2f}x)"
    )


if __name__ == "__main__":
    main()
