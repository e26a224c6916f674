"""Speed and quality of DenoisingAutoencoder against the tools people use today.

Part ``speed``: seconds per training epoch of ``DenoisingAutoencoder`` at its
default settings (784-256-128-256-784, batch normalisation before every
hidden ReLU, sigmoid output, MSE, Adam with ``learning_rate_init=4e-3``,
``batch_size="auto"``, resolved by the estimator itself: ``n // 40``
between 32 and 256, so 256 rows on 60,000 images; ``--batch-size`` sets
another) except ``noise=--noise-std``, stopping parameters that make it run
exactly ``--epochs`` epochs, and ``early_stopping=False``: the default
``'auto'`` holds out 10% of the rows above 10,000 samples (and scores them
every epoch), so the DAE would train on fewer images per epoch than the
anchors; with it off, every implementation trains on the same ``n`` images.
It is compared against

(a) a plain PyTorch loop with the same network (``nn.BatchNorm1d`` layers
    included), the same Adam learning rate
    and batch size, shuffled with ``torch.randperm`` every epoch and fresh
    Gaussian noise (clipped to [0, 1]) drawn for every batch;
(b) scikit-learn's ``MLPRegressor((256, 128, 256))`` with the same batch
    size and learning rate, ``solver="adam"``, ``shuffle=True``, fitted on
    float32 noisy images -> clean images; the noisy copy is drawn once
    before fitting, since that is how one would use sklearn (no fresh noise
    per batch), and its output layer is the identity, not a sigmoid;
(c) skorch's ``NeuralNetRegressor`` with the network of (a), the same batch
    size and learning rate, fitted like (b), when skorch is importable.

Every implementation (the DAE included, with ``device="cpu"``) runs in the
same process, with the same thread count, after one untimed warm-up fit on
a small slice. Then ``--rounds`` rounds each fit every implementation for
``--epochs`` epochs, in an order that rotates from round to round so that
drift in the machine's speed hits all alike; a fit's wall time (setup
included, as a user sees it) divided by its epochs is one sample, and the
table shows the median per implementation. The plain-loop-to-DAE speed-up that
the target uses is the median of the per-round ratios (paired). Targets
(issue 17): the DAE at least 1.3x as fast per epoch as the plain loop, and
at least 2x as fast as MLPRegressor.

The run also times the step's matrix products alone (the 11 ``torch.mm``
of a step on the default network, on fresh tensors of the step's shapes,
at the run's thread count) and prints MLPRegressor's epoch over that
epoch of products: the ratio to MLPRegressor that a step doing nothing but
its products would reach on this machine. ``--adam-step`` adds the DAE
with every optimiser step taken by torch's ``optimizer.step()`` instead of
the direct call of Adam's fused kernel (bit-identical weights), and prints
the per-round ratio of the two.

"Share of peak" divides the achieved GFLOP/s (one epoch is
``6 x n_samples x weights`` FLOPs, 168 GFLOP for 60,000 images) by the fp32
``torch.mm`` speed measured at the start and at the end of the same run
(the larger of the two). ``transform`` of the training images is timed the
same way (``2 x n_samples x weights`` FLOPs), beside a plain
``torch.inference_mode`` forward pass in batches of 512.

Part ``quality``: the study of REFERENCE.md. A DenoisingAutoencoder with
default parameters except ``noise=--noise-std`` (and ``random_state``) is
fitted on the clean training images; ``GaussianPixelNoise(--noise-std,
random_state=0)`` corrupts the test images; an ``MLPClassifier()`` trained
on the clean training images (``max_iter=--mlp-max-iter``, 50 as in
REFERENCE) is scored on clean, noisy and denoised test images, and the mean
squared error against the clean test images is reported for the noisy and
the denoised ones.

The data are Fashion-MNIST from the local IDX files
(``load_fashion_mnist(..., download=False)``); when they are missing,
random data stand in and the script says so loudly.

Run it from the repository root::

    python benchmarks/bench_autoencoder.py --part all
    python benchmarks/bench_autoencoder.py --part speed --threads 1 --rounds 5
    python benchmarks/bench_autoencoder.py --part speed --rounds 5 --adam-step
    python benchmarks/bench_autoencoder.py --part quality

Absolute seconds drift on shared machines; compare the ratios measured
within one run.
"""

import argparse
import itertools
import math
import time
import warnings
from unittest import mock

import _common
import numpy as np
import torch
from sklearn.neural_network import MLPClassifier, MLPRegressor
from torch import nn

from denoisenet import DenoisingAutoencoder, GaussianPixelNoise, _training
from denoisenet._base import auto_threads

HIDDEN = (256, 128, 256)
TARGET_PLAIN_SPEEDUP = 1.3  # plain loop s/epoch over the DAE's
TARGET_MLP_SPEEDUP = 2.0  # MLPRegressor s/epoch over the DAE's
TARGET_ACCURACY = 0.837  # REFERENCE: plain-PyTorch DAE, 20 epochs
TARGET_MSE = 0.0115  # REFERENCE: the same DAE's denoised MSE


class AutoencoderNet(nn.Module):
    """784-256-128-256-784, ReLU, sigmoid output: the anchors' network, with
    batch normalisation before every hidden ReLU when the DAE has it by
    default (``batch_norm=None``: follow the DAE's default)."""

    def __init__(self, n_features=784, hidden=HIDDEN, batch_norm=None):
        super().__init__()
        if batch_norm is None:
            batch_norm = DenoisingAutoencoder().get_params()["batch_norm"]
        sizes = [n_features, *hidden, n_features]
        layers = []
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers += [nn.BatchNorm1d(n_out)] if batch_norm else []
                layers.append(nn.ReLU())
            else:
                layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def effective_batch_size(n_samples):
    """The batch size the DAE uses at its defaults for ``n_samples`` rows.

    Resolved by the estimator's own rule (the one ``fit`` calls), so that
    the anchors follow whatever ``batch_size='auto'`` becomes.
    """
    return DenoisingAutoencoder()._batch_size(n_samples)


def default_learning_rate():
    return DenoisingAutoencoder().get_params()["learning_rate_init"]


# -- the implementations of the speed part ---------------------------------


def fit_dae(X, X_noisy, epochs, cfg):
    dae = DenoisingAutoencoder(
        noise=cfg.noise_std,
        max_iter=epochs,
        n_iter_no_change=epochs + 1,  # never stop before max_iter
        # Train on all n rows, as the anchors do (see the module docstring).
        early_stopping=False,
        random_state=cfg.seed,
        device="cpu",
    )
    dae.fit(X)
    if dae.n_iter_ != epochs:
        raise RuntimeError(f"DAE ran {dae.n_iter_} epochs, not {epochs}")
    return dae


def fit_dae_adam_step(X, X_noisy, epochs, cfg):
    """The DAE with every optimiser step taken by ``optimizer.step()``
    (``--adam-step``): the anchor of the direct call of Adam's kernel."""
    with mock.patch.object(_training, "DIRECT_ADAM", False):
        return fit_dae(X, X_noisy, epochs, cfg)


def fit_plain_loop(X, X_noisy, epochs, cfg):
    generator = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # the module's default initialisation
    model = AutoencoderNet(X.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    X_t = torch.from_numpy(X)
    n, batch_size, std = X_t.shape[0], cfg.batch_size, cfg.noise_std
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            clean = X_t[order[start : start + batch_size]]
            noise = torch.randn(clean.shape, generator=generator)
            noisy = clean.add(noise, alpha=std).clamp_(0.0, 1.0)
            loss = nn.functional.mse_loss(model(noisy), clean)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def fit_mlp_regressor(X, X_noisy, epochs, cfg):
    mlp = MLPRegressor(
        hidden_layer_sizes=HIDDEN,
        solver="adam",
        batch_size=cfg.batch_size,
        learning_rate_init=cfg.learning_rate,
        max_iter=epochs,
        shuffle=True,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        random_state=cfg.seed,
    )
    mlp.fit(X_noisy, X)
    if mlp.n_iter_ != epochs:
        raise RuntimeError(f"MLPRegressor ran {mlp.n_iter_} epochs, not {epochs}")
    return mlp


def fit_skorch(X, X_noisy, epochs, cfg):
    from skorch import NeuralNetRegressor

    torch.manual_seed(cfg.seed)
    net = NeuralNetRegressor(
        AutoencoderNet,
        module__n_features=X.shape[1],
        module__hidden=HIDDEN,
        criterion=nn.MSELoss,
        optimizer=torch.optim.Adam,
        lr=cfg.learning_rate,
        batch_size=cfg.batch_size,
        max_epochs=epochs,
        train_split=None,
        iterator_train__shuffle=True,
        device="cpu",
        verbose=0,
    )
    return net.fit(X_noisy, X)


ADAM_STEP_NAME = "DAE with Adam.step"


def implementations(use_skorch, adam_step=False):
    impls = {
        "DenoisingAutoencoder": fit_dae,
        "(a) plain PyTorch loop": fit_plain_loop,
        "(b) sklearn MLPRegressor": fit_mlp_regressor,
    }
    if adam_step:
        impls[ADAM_STEP_NAME] = fit_dae_adam_step
    if use_skorch:
        try:
            import skorch  # noqa: F401
        except ImportError:
            print("skorch is not importable: anchor (c) skipped")
        else:
            impls["(c) skorch NeuralNetRegressor"] = fit_skorch
    return impls


# -- speed -------------------------------------------------------------------


def measure_training(impls, X, X_noisy, cfg):
    """Per-epoch seconds of every implementation, rounds interleaved."""
    warm = min(X.shape[0], 4 * cfg.batch_size)
    for fit in impls.values():
        fit(X[:warm], X_noisy[:warm], 1, cfg)
    fitted = {}

    def run(name):
        start = time.perf_counter()
        fitted[name] = impls[name](X, X_noisy, cfg.epochs, cfg)
        return (time.perf_counter() - start) / cfg.epochs

    return _common.rotating_rounds(impls, run, cfg.rounds), fitted


def plain_forward(model, X, batch_size=512):
    X_t = torch.from_numpy(X)
    out = torch.empty_like(X_t)
    with torch.inference_mode():
        for start in range(0, X_t.shape[0], batch_size):
            out[start : start + batch_size] = model(X_t[start : start + batch_size])
    return out.numpy()


def run_speed(cfg):
    print("\n== speed: training seconds per epoch ==")
    X, _, _ = _common.load_images("train", cfg.n_samples, seed=cfg.seed)
    n = X.shape[0]
    cfg.batch_size = cfg.batch_rows or effective_batch_size(n)
    cfg.learning_rate = default_learning_rate()
    X_noisy = GaussianPixelNoise(cfg.noise_std, random_state=cfg.seed).fit_transform(X)
    weights = _common.dense_weight_count([X.shape[1], *HIDDEN, X.shape[1]])
    train_gflop = 6 * n * weights / 1e9
    print(
        f"network {X.shape[1]}-{'-'.join(map(str, HIDDEN))}-{X.shape[1]}, "
        f"{weights:,} weights; batch {cfg.batch_size}, Adam lr "
        f"{cfg.learning_rate:g}, noise std {cfg.noise_std}; one epoch = "
        f"{train_gflop:.1f} GFLOP"
    )
    # What n_threads='auto' picks for these batches now: the DAE runs at
    # its default thread count, which the run's --threads only caps.
    auto = auto_threads(cfg.batch_size, [X.shape[1], *HIDDEN])
    print(f"DenoisingAutoencoder n_threads='auto': {auto} torch thread(s) now")
    peak_start = _common.measure_matmul_peak(cfg.threads)
    print(f"fp32 torch.mm 2048^3 peak at start: {peak_start:.1f} GFLOP/s")

    impls = implementations(cfg.skorch, cfg.adam_step)
    print(
        f"{cfg.rounds} round(s) of {cfg.epochs} epoch(s) each, order rotating, "
        "after one warm-up fit per implementation"
    )
    seconds, fitted = measure_training(impls, X, X_noisy, cfg)

    dae, plain = fitted["DenoisingAutoencoder"], fitted["(a) plain PyTorch loop"]
    infer_gflop = 2 * n * weights / 1e9
    transform_times = {
        "DenoisingAutoencoder.transform": _common.time_call(
            lambda: dae.transform(X), repeat=cfg.repeat, warmup=1
        ),
        "(a) plain forward, batches of 512": _common.time_call(
            lambda: plain_forward(plain, X), repeat=cfg.repeat, warmup=1
        ),
    }
    peak_end = _common.measure_matmul_peak(cfg.threads)
    peak = max(peak_start, peak_end)
    print(f"fp32 torch.mm peak at end: {peak_end:.1f} GFLOP/s; using {peak:.1f}")

    plain_name = "(a) plain PyTorch loop"
    plain_median = _common.median(seconds[plain_name])
    rows = []
    for name, values in seconds.items():
        med = _common.median(values)
        achieved = train_gflop / med
        rows.append(
            [
                name,
                f"{med:.3f}",
                f"{min(values):.3f}",
                f"{med / plain_median:.2f}x",
                f"{achieved:.1f}",
                f"{100 * achieved / peak:.0f}%",
            ]
        )
    print()
    _common.print_table(
        ["training", "s/epoch", "best", "vs (a)", "GFLOP/s", "of peak"], rows
    )

    rows = []
    for name, values in transform_times.items():
        best = min(values)
        rows.append(
            [
                name,
                f"{best:.3f}",
                f"{_common.median(values):.3f}",
                f"{infer_gflop / best:.1f}",
                f"{100 * infer_gflop / best / peak:.0f}%",
            ]
        )
    print()
    print(f"transform of {n} images ({infer_gflop:.1f} GFLOP), best of {cfg.repeat}")
    _common.print_table(["inference", "best s", "median", "GFLOP/s", "of peak"], rows)

    paired = _common.paired_ratios(seconds[plain_name], seconds["DenoisingAutoencoder"])
    speedup = _common.median(paired)
    print()
    print("per-round plain loop / DAE: " + ", ".join(f"{r:.3f}" for r in paired))
    print(
        f"target: DAE >= {TARGET_PLAIN_SPEEDUP}x as fast as the plain loop: "
        f"{_common.verdict(speedup >= TARGET_PLAIN_SPEEDUP)} (median paired "
        f"speed-up {speedup:.3f}x)"
    )
    mlp_name = "(b) sklearn MLPRegressor"
    dae_median = _common.median(seconds["DenoisingAutoencoder"])
    mlp_median = _common.median(seconds[mlp_name])
    print(
        f"target: DAE >= {TARGET_MLP_SPEEDUP}x as fast as MLPRegressor: "
        f"{_common.verdict(mlp_median / dae_median >= TARGET_MLP_SPEEDUP)} "
        f"({dae_median:.3f} vs {mlp_median:.3f} s/epoch, "
        f"{mlp_median / dae_median:.2f}x)"
    )
    products = products_per_epoch(X.shape[1], n, cfg.batch_size)
    print(
        f"the products of an epoch alone (torch.mm on the step's shapes, best "
        f"of 3): {products:.3f} s/epoch; MLPRegressor / that: "
        f"{mlp_median / products:.2f}x, the most any step can reach here"
    )
    if ADAM_STEP_NAME in seconds:
        paired = _common.paired_ratios(
            seconds[ADAM_STEP_NAME], seconds["DenoisingAutoencoder"]
        )
        print(
            "per-round DAE with Adam.step / DAE: "
            + ", ".join(f"{r:.3f}" for r in paired)
            + f" (median {_common.median(paired):.3f})"
        )


def products_per_epoch(n_features, n_samples, batch_size, steps=100):
    """Seconds of the matrix products of one epoch's steps, nothing else.

    A step of the network multiplies, for every layer, the batch by the
    weights (forward), the output gradient by the weights (the input
    gradient; not for the first layer) and the output gradient by the
    layer's input (the weight gradient): 11 products for the default
    network, on fresh tensors of the step's shapes.
    """
    widths = [n_features, *HIDDEN, n_features]
    shapes = []
    for k, (a, b) in enumerate(itertools.pairwise(widths)):
        shapes.append(((batch_size, a), (a, b)))
        if k > 0:
            shapes.append(((batch_size, b), (b, a)))
        shapes.append(((b, batch_size), (batch_size, a)))
    pairs = [(torch.rand(*p), torch.rand(*q)) for p, q in shapes]

    def run():
        for _ in range(steps):
            for a, b in pairs:
                torch.mm(a, b)

    best = min(_common.time_call(run, repeat=3, warmup=1))
    return best / steps * math.ceil(n_samples / batch_size)


# -- quality -----------------------------------------------------------------


def run_quality(cfg):
    print("\n== quality: the denoising study ==")
    X_train, y_train, real = _common.load_images("train", cfg.n_samples, seed=cfg.seed)
    X_test, y_test, _ = _common.load_images("test", cfg.test_samples, seed=cfg.seed)
    noise = GaussianPixelNoise(cfg.noise_std, random_state=0)
    X_noisy = noise.fit_transform(X_test)

    dae_params = {"noise": cfg.noise_std, "random_state": cfg.seed}
    if cfg.dae_max_iter is not None:
        dae_params["max_iter"] = cfg.dae_max_iter
    # The first fit in a process pays one-off lazy imports (torch.optim
    # imports torch._dynamo, seconds on a busy machine): not in the timings.
    warm = min(X_train.shape[0], 512)
    DenoisingAutoencoder(max_iter=1).fit(X_train[:warm])
    MLPClassifier(max_iter=1).fit(X_train[:warm], y_train[:warm])
    dae = DenoisingAutoencoder(**dae_params)
    start = time.perf_counter()
    dae.fit(X_train)
    dae_time = time.perf_counter() - start
    shown = ", ".join(f"{k}={v!r}" for k, v in dae_params.items())
    print(
        f"DenoisingAutoencoder({shown}): {dae.n_iter_} epochs in {dae_time:.1f} s, "
        "final loss "
        f"{dae.loss_curve_[-1]:.5f}"
    )
    X_denoised = dae.transform(X_noisy)
    X_clean_through = dae.transform(X_test)

    mlp = MLPClassifier(max_iter=cfg.mlp_max_iter, random_state=cfg.seed)
    start = time.perf_counter()
    mlp.fit(X_train, y_train)
    mlp_time = time.perf_counter() - start
    print(f"MLPClassifier(max_iter={cfg.mlp_max_iter}): fit in {mlp_time:.1f} s")

    def mse(A):
        return float(np.mean((A.astype(np.float64) - X_test) ** 2))

    results = {
        "clean test images": (mlp.score(X_test, y_test), 0.0),
        f"noisy (Gaussian std {cfg.noise_std}, clipped)": (
            mlp.score(X_noisy, y_test),
            mse(X_noisy),
        ),
        "noisy -> DAE.transform": (mlp.score(X_denoised, y_test), mse(X_denoised)),
        "clean -> DAE.transform": (
            mlp.score(X_clean_through, y_test),
            mse(X_clean_through),
        ),
    }
    rows = [[k, f"{100 * a:.1f}%", f"{m:.4f}"] for k, (a, m) in results.items()]
    rows.append(["DAE fit time", f"{dae_time:.1f} s", ""])
    rows.append(["MLPClassifier fit time", f"{mlp_time:.1f} s", ""])
    print()
    _common.print_table(["MLPClassifier scored on", "accuracy", "MSE"], rows)
    if not real:
        print("!! stand-in random data: the accuracies and targets mean nothing")
    accuracy, error = results["noisy -> DAE.transform"]
    print()
    print(
        f"target: denoised accuracy > {100 * TARGET_ACCURACY:.1f}% (REFERENCE plain "
        f"PyTorch): {_common.verdict(accuracy > TARGET_ACCURACY)} "
        f"({100 * accuracy:.1f}%)"
    )
    print(
        f"target: denoised MSE < {TARGET_MSE}: {_common.verdict(error < TARGET_MSE)} "
        f"({error:.4f})"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--part", choices=["speed", "quality", "all"], default="all")
    parser.add_argument(
        "--n-samples", type=int, default=60000, help="training images used"
    )
    parser.add_argument(
        "--epochs", type=int, default=2, help="epochs per timed fit (speed)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds (speed)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed transform calls (speed)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for torch and numpy/sklearn (default: torch's default)",
    )
    parser.add_argument("--noise-std", type=float, default=0.3)
    parser.add_argument(
        "--batch-size",
        dest="batch_rows",
        type=int,
        default=None,
        help="rows per step of every implementation (speed; default: the "
        "DAE's batch_size='auto' for the data)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-skorch", dest="skorch", action="store_false", help="skip anchor (c)"
    )
    parser.add_argument(
        "--adam-step",
        action="store_true",
        help="also fit the DAE with torch's optimizer.step() (speed)",
    )
    parser.add_argument(
        "--dae-max-iter",
        type=int,
        default=None,
        help="epochs of the quality DAE (default: the estimator's default)",
    )
    parser.add_argument("--mlp-max-iter", type=int, default=50)
    parser.add_argument(
        "--test-samples", type=int, default=None, help="test images (default: all)"
    )
    cfg = parser.parse_args(argv)
    for name in ("n_samples", "epochs", "rounds", "repeat", "mlp_max_iter"):
        if getattr(cfg, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")

    cfg.threads, limiter = _common.limit_threads(cfg.threads)
    _common.print_environment(cfg.threads)
    _common.quiet_convergence_warnings()
    warnings.filterwarnings("ignore", message="The given NumPy array is not")
    try:
        if cfg.part in ("speed", "all"):
            run_speed(cfg)
        if cfg.part in ("quality", "all"):
            run_quality(cfg)
    finally:
        limiter.restore_original_limits()


if __name__ == "__main__":
    main()
