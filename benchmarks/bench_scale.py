"""Speed-up of a parallel grid search over a pipeline with a DenoisingAutoencoder.

``GridSearchCV`` over ``Pipeline([DenoisingAutoencoder, LogisticRegression])``
with a grid of 4 candidates (``dae__noise`` x ``dae__learning_rate_init``)
and ``--cv`` folds (3 by default, so 12 fits and one refit), timed with

(1) ``n_jobs=1``: every fit in the main thread, torch with its
    ``--threads`` threads (by default torch's own count, one per core);
(2) ``n_jobs=2`` on joblib's loky backend: two worker processes, which
    joblib gives ``cpu_count // 2`` threads each;
(3) ``n_jobs=2`` on joblib's threading backend: two worker threads, each
    fitting with one torch thread (``denoisenet._base.thread_budget``).
    joblib limits nothing in threads, so LogisticRegression's BLAS would
    run its full thread pool in both at once; the script limits BLAS to one
    thread for this mode (threadpoolctl), as loky's workers are limited,
    unless ``--no-blas-limit`` is given.

All three run in the same process, one after the other, in an order that
rotates from round to round (``--rounds``, 3 by default), and the table
shows the median seconds of each; the speed-ups are the median of the
per-round ratios (paired). The loky workers are started and warmed up
(numpy, scikit-learn, torch and denoisenet imported) before the first
round, and that start-up is printed on its own line: a search that runs
once pays it once. Every run uses ``random_state=0``; the script checks
that the three find the same best parameters and prints the largest
difference of their mean test scores (zero when every fit ran with one
torch thread, e.g. with ``--threads 1``; a thread count changes the
summation order of torch's kernels, so the last bits may differ).

The target of the issue "Scale": ``n_jobs=2`` is at least 1.5x as fast as
``n_jobs=1`` and never slower. On a machine with two cores that other jobs
share, the ratio says more about those jobs than about the code; run it on
an idle machine with at least two free cores.

The data are the first ``--n-samples`` Fashion-MNIST training images from
the local IDX files (random data stand in, with a loud note, when they are
missing), or the 1,797 digits of scikit-learn with ``--data digits``.

Run it from the repository root::

    python benchmarks/bench_scale.py
    python benchmarks/bench_scale.py --n-samples 1500 --max-iter 3 --rounds 1
"""

import argparse
import os
import time
import warnings

import _common
import joblib
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from denoisenet import DenoisingAutoencoder

TARGET_SPEEDUP = 1.5
GRID = {
    "dae__noise": [0.1, 0.3],
    "dae__learning_rate_init": [1e-3, 3e-3],
}
MODES = {
    "n_jobs=1": (1, None),
    "n_jobs=2 loky": (2, "loky"),
    "n_jobs=2 threading": (2, "threading"),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["fashion", "digits"], default="fashion")
    parser.add_argument("--n-samples", type=int, default=3000)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 32, 128])
    parser.add_argument("--max-iter", type=int, default=5)
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-blas-limit",
        action="store_true",
        help="leave BLAS at its full thread count in the threading mode",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch and BLAS threads of the main process (default: torch's)",
    )
    return parser.parse_args()


def load(args):
    if args.data == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = (X[: args.n_samples] / 16.0).astype(np.float32)
        print(f"data: scikit-learn digits, X {X.shape} {X.dtype}")
        return X, y[: args.n_samples]
    X, y, _ = _common.load_images("train", args.n_samples)
    return X, y


def make_search(args, n_jobs):
    pipe = Pipeline(
        [
            (
                "dae",
                DenoisingAutoencoder(
                    tuple(args.hidden),
                    max_iter=args.max_iter,
                    random_state=0,
                    device="cpu",
                ),
            ),
            ("clf", LogisticRegression(max_iter=200)),
        ]
    )
    return GridSearchCV(pipe, GRID, cv=args.cv, n_jobs=n_jobs)


def _warm_worker():
    import sklearn.linear_model  # noqa: F401

    import denoisenet  # noqa: F401

    return os.getpid(), torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")


def start_loky_workers():
    """Start joblib's two loky workers and import the libraries there."""
    start = time.perf_counter()
    workers = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(_warm_worker)() for _ in range(4)
    )
    seconds = time.perf_counter() - start
    pids = sorted({pid for pid, _, _ in workers})
    threads = sorted({t for _, t, _ in workers})
    omp = sorted({str(o) for _, _, o in workers})
    print(
        f"loky workers: {len(pids)} process(es) started and warmed up in "
        f"{seconds:.1f} s; torch threads in them: {threads}, "
        f"OMP_NUM_THREADS: {omp}"
    )


def run(args, mode, X, y):
    n_jobs, backend = MODES[mode]
    search = make_search(args, n_jobs)
    start = time.perf_counter()
    if backend is None:
        search.fit(X, y)
    elif backend == "threading" and not args.no_blas_limit:
        with (
            threadpool_limits(limits=1, user_api="blas"),
            joblib.parallel_backend(backend, n_jobs=n_jobs),
        ):
            search.fit(X, y)
    else:
        with joblib.parallel_backend(backend, n_jobs=n_jobs):
            search.fit(X, y)
    return time.perf_counter() - start, search


def main():
    args = parse_args()
    threads, _limiter = _common.limit_threads(args.threads)
    _common.print_environment(threads)
    _common.quiet_convergence_warnings()
    warnings.filterwarnings("ignore", category=UserWarning, module="joblib")
    X, y = load(args)
    n_candidates = int(np.prod([len(v) for v in GRID.values()]))
    print(
        f"GridSearchCV over Pipeline([DenoisingAutoencoder({tuple(args.hidden)}, "
        f"max_iter={args.max_iter}), LogisticRegression]): {n_candidates} "
        f"candidates x cv {args.cv} = {n_candidates * args.cv} fits + 1 refit, "
        f"on X {X.shape}"
    )
    start_loky_workers()
    modes = list(MODES)
    seconds = {mode: [] for mode in modes}
    results = {}
    for r in range(args.rounds):
        order = modes[r % len(modes) :] + modes[: r % len(modes)]
        for mode in order:
            elapsed, search = run(args, mode, X, y)
            seconds[mode].append(elapsed)
            results[mode] = search
        shown = ", ".join(f"{m}: {seconds[m][-1]:.1f} s" for m in modes)
        print(f"round {r + 1}: {shown}", flush=True)

    base = seconds["n_jobs=1"]
    rows = []
    speedups = {}
    for mode in modes:
        ratios = [b / s for b, s in zip(base, seconds[mode], strict=True)]
        speedups[mode] = (_common.median(ratios), min(ratios))
        rows.append(
            [
                mode,
                f"{_common.median(seconds[mode]):.2f}",
                f"{speedups[mode][0]:.2f}x",
                f"{speedups[mode][1]:.2f}x",
            ]
        )
    print()
    _common.print_table(
        ["mode", "median s", "speed-up (median)", "speed-up (worst round)"], rows
    )

    reference = results["n_jobs=1"]
    same = all(results[m].best_params_ == reference.best_params_ for m in modes)
    difference = max(
        float(
            np.max(
                np.abs(
                    results[m].cv_results_["mean_test_score"]
                    - reference.cv_results_["mean_test_score"]
                )
            )
        )
        for m in modes
    )
    print(f"\nbest parameters (n_jobs=1): {reference.best_params_}")
    print(
        f"same best parameters in every mode: {'yes' if same else 'NO'}; "
        f"largest difference of mean test scores: {difference:.2e}"
    )
    if args.no_blas_limit:
        print("threading mode: BLAS left at its full thread count")
    else:
        print("threading mode: BLAS limited to 1 thread per worker (threadpoolctl)")
    print(
        f"torch threads in the main thread after the runs: {torch.get_num_threads()}"
        f" (set to {threads})"
    )
    for mode in modes[1:]:
        median_speedup, worst = speedups[mode]
        print(
            f"{mode}: speed-up {median_speedup:.2f}x (worst round {worst:.2f}x); "
            f"target >= {TARGET_SPEEDUP}x: "
            f"{_common.verdict(median_speedup >= TARGET_SPEEDUP)}; "
            f"never slower: {_common.verdict(worst >= 1.0)}"
        )


if __name__ == "__main__":
    main()
