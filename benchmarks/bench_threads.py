"""The default thread count (``n_threads='auto'``) against fixed counts.

``DenoisingAutoencoder(max_iter=--epochs)`` at its defaults is fitted on
two data sets: 5,000 Fashion-MNIST training images (``fm5k``, 784 pixels:
work large enough for several threads) and scikit-learn's 1,797 8x8 digits
(``digits``, 64 pixels: small work), with ``n_threads`` set to 'auto' (the
default), 1 and 2, in three conditions:

- ``idle``: nothing that this script starts runs beside the fit (other
  jobs on the machine may; the run queue is printed first);
- ``busy``: one competing process (``--busy`` of them) spins a Python
  ``while True`` loop throughout;
- ``joined``: the competing process starts while the fit runs, after 30%
  of the time that one idle fit with 'auto' took (``--joined-epochs``
  epochs, 20 by default, so that the fit outlasts the start): 'auto'
  reads the load again at every epoch, a fixed count keeps its threads.

Each setting runs ``--repeat`` times, interleaved (auto, 1, 2, auto, ...)
after a warm-up fit; the table shows the best time of each, the count
that 'auto' picked, and the largest spread (slowest / fastest) of the
repeats of one setting, a measure of the machine's drift. Target: in the
idle and busy conditions and on both data sets, the default takes at most
1.1x the time of the best fixed count (the joined condition is reported
beside them).

torch's own count (``--threads``, default torch's default) is the most
that 'auto' uses; it is printed with the environment.

Last, on the idle machine: the milliseconds of ``transform`` of a single
image (padded to the full inference batch) with each setting, median of
``--calls`` calls, and the milliseconds of one reading of the machine's
load (``_busy_cpus``), which 'auto' repeats at most every
``BUSY_READING_SECONDS``.

Run it from the repository root (a minute or two)::

    python benchmarks/bench_threads.py
    python benchmarks/bench_threads.py --repeat 3 --epochs 2
"""

import argparse
import functools
import subprocess
import sys
import threading
import time

import _common
import numpy as np
import torch
from sklearn.datasets import load_digits

import denoisenet._base
from denoisenet import DenoisingAutoencoder

TARGET_RATIO = 1.1
SETTINGS = ("auto", 1, 2)


def run_queue():
    """Tasks runnable now (the fourth field of /proc/loadavg), or '?'."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return f.read().split()[3]
    except OSError:
        return "?"


class Busy:
    """``n`` processes that spin a Python loop while the block runs."""

    def __init__(self, n):
        self.n = n
        self.processes = []

    def __enter__(self):
        self.processes = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(self.n)
        ]
        time.sleep(0.5)  # let the scheduler see them
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.wait()


def fit_seconds(X, n_threads, epochs, picked):
    """Seconds of one fit; appends the count 'auto' picked to ``picked``."""
    original = denoisenet._base.auto_threads

    def recording(*args):
        count = original(*args)
        picked.append(count)
        return count

    denoisenet._base.auto_threads = recording
    try:
        dae = DenoisingAutoencoder(
            max_iter=epochs, n_threads=n_threads, random_state=0, device="cpu"
        )
        start = time.perf_counter()
        dae.fit(X)
        return time.perf_counter() - start
    finally:
        denoisenet._base.auto_threads = original


def measure(datasets, args, joined=False):
    """{(data, setting): [seconds, ...]} and {data: counts 'auto' picked}.

    ``joined``: a competing process starts during every fit (see the
    module's docstring) and is stopped after it.
    """
    times, picked = {}, {}
    epochs = args.joined_epochs if joined else args.epochs
    for name, X in datasets.items():
        fit_seconds(X[:500], "auto", 1, [])  # warm-up
        delay = 0.3 * fit_seconds(X, "auto", epochs, []) if joined else None
        picked[name] = []
        for _ in range(args.repeat):
            for setting in SETTINGS:
                with Joining(args.busy, delay):
                    seconds = fit_seconds(X, setting, epochs, picked[name])
                times.setdefault((name, setting), []).append(seconds)
    return times, picked


class Joining:
    """``Busy(n)`` started ``delay`` seconds into the block (None: never)."""

    def __init__(self, n, delay):
        self.busy = Busy(n)
        self.timer = None if delay is None else threading.Timer(delay, self._start)
        self.started = False

    def _start(self):
        self.busy.processes = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(self.busy.n)
        ]
        self.started = True

    def __enter__(self):
        if self.timer is not None:
            self.timer.start()
        return self

    def __exit__(self, *exc):
        if self.timer is not None:
            self.timer.cancel()
            self.timer.join()
            self.busy.__exit__(*exc)


def small_call_ms(datasets, calls):
    """Rows of the table of one-image ``transform`` times, in milliseconds."""
    rows = []
    for name, X in datasets.items():
        dae = DenoisingAutoencoder(max_iter=1, random_state=0, device="cpu").fit(X)
        medians = []
        for setting in SETTINGS:
            dae.set_params(n_threads=setting)
            one = functools.partial(dae.transform, X[:1])
            seconds = _common.time_call(one, repeat=calls, warmup=5)
            medians.append(f"{1e3 * _common.median(seconds):.2f}")
        rows.append([name, *medians])
    return rows


def report(condition, datasets, times, picked):
    met = True
    rows = []
    for name in datasets:
        best = {s: min(times[(name, s)]) for s in SETTINGS}
        fixed = min(best[1], best[2])
        ratio = best["auto"] / fixed
        met &= ratio <= TARGET_RATIO
        counts = sorted(set(picked[name]))
        # The spread of repeated fits of one setting: how much the
        # machine's speed drifted while the script ran.
        spread = max(max(v) / min(v) for k, v in times.items() if k[0] == name)
        rows.append(
            [
                f"{condition}, {name}",
                f"{best['auto']:.2f}",
                f"{best[1]:.2f}",
                f"{best[2]:.2f}",
                "/".join(str(c) for c in counts),
                f"{ratio:.2f}x",
                f"{spread:.2f}x",
            ]
        )
    return rows, met


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--joined-epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--busy", type=int, default=1)
    parser.add_argument("--n-samples", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args(argv)
    counts = (args.epochs, args.joined_epochs, args.repeat, args.busy)
    if min(*counts, args.n_samples, args.calls) < 1:
        parser.error(
            "--epochs, --joined-epochs, --repeat, --busy, --n-samples and "
            "--calls must be positive"
        )

    # torch's count only: 'auto' caps at it, and the settings 1 and 2 set
    # their own.
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    _common.print_environment(threads)
    _common.quiet_convergence_warnings()
    fm, _, _ = _common.load_images("train", args.n_samples)
    digits = (load_digits().data / 16.0).astype(np.float32)
    datasets = {f"fm{args.n_samples // 1000}k": fm, "digits": digits}
    print(
        f"DenoisingAutoencoder(max_iter={args.epochs}) at its defaults; best of "
        f"{args.repeat}, interleaved; run queue now: {run_queue()}"
    )

    rows, verdicts = [], []
    for condition in ("idle", "busy", "joined"):
        if condition == "busy":
            with Busy(args.busy):
                print(
                    f"busy: {args.busy} spinning process(es); run queue {run_queue()}"
                )
                times, picked = measure(datasets, args)
        else:
            times, picked = measure(datasets, args, joined=condition == "joined")
        condition_rows, met = report(condition, datasets, times, picked)
        rows += condition_rows
        if condition != "joined":
            verdicts.append((condition, met))
    print()
    _common.print_table(
        [
            "condition, data",
            "auto s",
            "1 thread s",
            "2 threads s",
            "auto picked",
            "auto / best fixed",
            "max spread",
        ],
        rows,
    )
    print()
    for condition, met in verdicts:
        print(
            f"target: default within {TARGET_RATIO}x of the best fixed count "
            f"({condition}, both data sets): {_common.verdict(met)}"
        )
    print(f"\ntransform of one image, ms (median of {args.calls} calls, idle)")
    _common.print_table(
        ["data", "auto", "1 thread", "2 threads"],
        small_call_ms(datasets, args.calls),
    )
    reading = _common.time_call(denoisenet._base._busy_cpus, repeat=args.calls)
    print(
        f"one reading of the machine's load: {1e3 * _common.median(reading):.2f} "
        f"ms (median), taken at most every "
        f"{denoisenet._base.BUSY_READING_SECONDS} s"
    )


if __name__ == "__main__":
    main()
