"""Convolutional against dense networks, for both estimators, in one run.

Part ``dae``: ``DenoisingAutoencoder(noise=--noise-std)`` with the dense
default (784-256-128-256-784) and with ``architecture="conv"`` (the default
``conv_channels``: two 3x3 stride-2 convolutions, then the same dense
256-128-256 layers, then transposed convolutions) is fitted on the clean
training images with ``random_state=--seed`` and otherwise default
parameters. ``GaussianPixelNoise(--noise-std, random_state=0)`` corrupts
the test images; each auto-encoder denoises them. Reported: the mean
squared error of the denoised images against the clean ones, and the
accuracy on them of one ``MLPClassifier(max_iter=--mlp-max-iter)`` trained
on the clean training images (the study's clean-trained classifier), with
fit times. Targets: conv has the lower MSE and the higher accuracy.

Part ``bottleneck``: ``BottleneckClassifier()`` and
``BottleneckClassifier(architecture="conv")`` (the default dense layers
after the convolutions) are fitted with ``random_state`` 0 .. ``--seeds``-1;
reported: test accuracy and fit time of each, with the trustworthiness of
each 2-D map (10 neighbours, the first 2,000 test images) for reference.
Target: conv has the higher accuracy for every seed.

The data are Fashion-MNIST from the local IDX files (``FASHION_MNIST_HOME``
or the usual places); when they are missing, random data stand in and the
script says so loudly.

Run it from the repository root::

    python benchmarks/bench_conv.py
    python benchmarks/bench_conv.py --part dae --n-samples 10000 --max-iter 5

Absolute seconds drift on shared machines; compare within one run.
"""

import argparse
import time
import warnings

import _common
import numpy as np
from sklearn.manifold import trustworthiness
from sklearn.neural_network import MLPClassifier

from denoisenet import BottleneckClassifier, DenoisingAutoencoder, GaussianPixelNoise

TRUST_SAMPLES = 2000


def timed_fit(estimator, *args):
    start = time.perf_counter()
    estimator.fit(*args)
    return estimator, time.perf_counter() - start


def common_params(cfg, seed):
    params = {"random_state": seed}
    if cfg.max_iter is not None:
        params["max_iter"] = cfg.max_iter
    return params


def run_dae(X_train, y_train, X_test, y_test, cfg):
    print("\n== DenoisingAutoencoder: dense against conv ==")
    X_noisy = GaussianPixelNoise(cfg.noise_std, random_state=0).fit_transform(X_test)
    mlp, mlp_time = timed_fit(
        MLPClassifier(max_iter=cfg.mlp_max_iter, random_state=cfg.seed),
        X_train,
        y_train,
    )
    print(f"clean-trained MLPClassifier(max_iter={cfg.mlp_max_iter}): {mlp_time:.1f} s")

    def mse(A):
        return float(np.mean((A.astype(np.float64) - X_test) ** 2))

    rows = [
        [
            "noisy test images (no denoising)",
            "",
            mse(X_noisy),
            mlp.score(X_noisy, y_test),
        ]
    ]
    results = {}
    for architecture in ("dense", "conv"):
        dae, seconds = timed_fit(
            DenoisingAutoencoder(
                noise=cfg.noise_std,
                architecture=architecture,
                **common_params(cfg, cfg.seed),
            ),
            X_train,
        )
        X_denoised = dae.transform(X_noisy)
        results[architecture] = (mse(X_denoised), mlp.score(X_denoised, y_test))
        rows.append(
            [f"DenoisingAutoencoder({architecture!r})", seconds, *results[architecture]]
        )
        print(f"  {architecture}: {dae.n_iter_} epochs in {seconds:.1f} s", flush=True)
    _common.print_table(
        ["denoiser", "fit s", "denoised MSE", "MLP accuracy"],
        [
            [name, f"{s:.1f}" if s != "" else "", f"{m:.4f}", f"{100 * a:.2f}%"]
            for name, s, m, a in rows
        ],
    )
    (dense_mse, dense_acc), (conv_mse, conv_acc) = results["dense"], results["conv"]
    print(
        f"target: conv MSE < dense MSE: {_common.verdict(conv_mse < dense_mse)} "
        f"({conv_mse:.4f} vs {dense_mse:.4f})"
    )
    print(
        "target: conv accuracy on denoised images > dense: "
        f"{_common.verdict(conv_acc > dense_acc)} "
        f"({100 * conv_acc:.2f}% vs {100 * dense_acc:.2f}%)"
    )


def run_bottleneck(X_train, y_train, X_test, y_test, cfg):
    print("\n== BottleneckClassifier: dense against conv ==")
    rows, wins = [], []
    m = min(TRUST_SAMPLES, X_test.shape[0])
    for seed in range(cfg.seeds):
        accuracy = {}
        for architecture in ("dense", "conv"):
            clf, seconds = timed_fit(
                BottleneckClassifier(
                    architecture=architecture, **common_params(cfg, seed)
                ),
                X_train,
                y_train,
            )
            accuracy[architecture] = clf.score(X_test, y_test)
            trust = trustworthiness(
                X_test[:m], clf.transform(X_test[:m]), n_neighbors=10
            )
            rows.append(
                [
                    f"seed {seed}, {architecture}",
                    f"{100 * accuracy[architecture]:.2f}%",
                    f"{trust:.3f}",
                    f"{seconds:.1f}",
                ]
            )
            print(f"  seed {seed} {architecture}: done", flush=True)
        wins.append(accuracy["conv"] > accuracy["dense"])
    _common.print_table(["model", "test accuracy", "trustworthiness", "fit s"], rows)
    print(
        "target: conv accuracy > dense accuracy for every seed: "
        f"{_common.verdict(all(wins))} ({sum(wins)} of {len(wins)})"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--part", choices=["dae", "bottleneck", "all"], default="all")
    parser.add_argument("--n-samples", type=int, default=None, help="training images")
    parser.add_argument("--test-samples", type=int, default=None, help="test images")
    parser.add_argument("--noise-std", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0, help="seed of the DAE part")
    parser.add_argument("--seeds", type=int, default=1, help="bottleneck seeds")
    parser.add_argument("--mlp-max-iter", type=int, default=50)
    parser.add_argument(
        "--max-iter",
        type=int,
        default=None,
        help="epochs of every network (default: the estimators' default)",
    )
    parser.add_argument("--threads", type=int, default=None)
    cfg = parser.parse_args(argv)

    cfg.threads, limiter = _common.limit_threads(cfg.threads)
    _common.print_environment(cfg.threads)
    _common.quiet_convergence_warnings()
    warnings.filterwarnings("ignore", message="The given NumPy array is not")
    try:
        X_train, y_train, real = _common.load_images("train", cfg.n_samples)
        X_test, y_test, _ = _common.load_images("test", cfg.test_samples)
        for estimator in (DenoisingAutoencoder(), BottleneckClassifier()):
            channels = estimator.get_params()["conv_channels"]
            print(f"{type(estimator).__name__}: conv_channels default {channels}")
        if cfg.max_iter is not None:
            print(f"!! max_iter overridden to {cfg.max_iter}")
        if cfg.part in ("dae", "all"):
            run_dae(X_train, y_train, X_test, y_test, cfg)
        if cfg.part in ("bottleneck", "all"):
            run_bottleneck(X_train, y_train, X_test, y_test, cfg)
        if not real:
            print("!! stand-in random data: the accuracies mean nothing")
    finally:
        limiter.restore_original_limits()


if __name__ == "__main__":
    main()
