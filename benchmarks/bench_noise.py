"""How fast the noise transformers corrupt a data set, against numpy's draw.

The anchor (a) is the cost of drawing one float32 standard normal per pixel
with numpy, ``np.random.default_rng().standard_normal(shape, dtype=np.float32)``:
no noise transformer can do much better, since each must draw at least that
much randomness. Then (b) ``GaussianPixelNoise(std=0.3, random_state=0)``,
``SaltAndPepperNoise`` and ``MaskingNoise`` each run ``fit_transform`` on the
same images (validation, the draw, the arithmetic and the output array).

The data are Fashion-MNIST's 60,000 training images (784 float32 pixels
each) read from the local IDX files through
``denoisenet.datasets.load_fashion_mnist("train", download=False)``; where
those are missing, random uniform float32 data of the same shape stand in,
and the script says so.

Each case runs ``--repeat`` times, interleaved (a, b, c, d, a, b, c, d, ...)
so that drift in the machine's speed hits every case alike, after one untimed
warm-up round; the table reports the best time of each and its ratio to (a).
The target is GaussianPixelNoise at most 2.0 times numpy's draw.

Second part (``--part epoch``): the share of a training epoch that goes
to noise. ``DenoisingAutoencoder()`` at its defaults (Gaussian noise of
std 0.2) is fitted for one epoch on the same images, ``--repeat`` times,
with the noise's corruption and its draw of standard normals timed inside
the fit (a timer around ``GaussianPixelNoise._corrupt`` and around the
draw it makes). Target: the draw takes at most 10% of the epoch.
Each repeat also fits the same epoch with the anchor draw, torch's
``normal_`` on the CPU generator (what the library drew with before its
table lookup; see GaussianPixelNoise's Notes), interleaved with the
library's, and prints the paired ratios. The same is then done with
``noise=MaskingNoise(0.25)`` (the uniform draw: the library compares 32
random bits with the probability as integers; the anchor is torch's
``uniform_`` compared with it, what the library did before), without a
target.

Run it from the repository root::

    python benchmarks/bench_noise.py --threads 1
    python benchmarks/bench_noise.py --n-samples 10000 --repeat 9
    python benchmarks/bench_noise.py --part epoch --threads 1 --repeat 2
"""

import argparse
import os
import platform
import time

import _common
import numpy as np
import torch

import denoisenet.noise
from denoisenet import (
    DenoisingAutoencoder,
    GaussianPixelNoise,
    MaskingNoise,
    SaltAndPepperNoise,
)
from denoisenet.datasets import load_fashion_mnist

N_FEATURES = 784
TARGET_RATIO = 2.0
TARGET_EPOCH_SHARE = 0.10


def load_images(n_samples):
    """The first ``n_samples`` Fashion-MNIST training images, or a stand-in."""
    try:
        X, _ = load_fashion_mnist("train", download=False)
    except (FileNotFoundError, ValueError) as exc:
        why = "not found locally" if isinstance(exc, FileNotFoundError) else exc
        print(f"Fashion-MNIST's training images not available ({why})")
        print(f"data: random uniform float32 stand-in of shape ({n_samples}, 784)")
        rng = np.random.default_rng(0)
        return rng.random((n_samples, N_FEATURES), dtype=np.float32)
    if n_samples > X.shape[0]:
        print(f"Fashion-MNIST has {X.shape[0]} training images; using them all")
    X = np.ascontiguousarray(X[:n_samples])
    print(f"data: Fashion-MNIST training images, shape {X.shape}, {X.dtype}")
    return X


def cases(X):
    """The measured calls, the anchor first."""
    shape = X.shape
    return {
        "(a) numpy standard_normal": lambda: np.random.default_rng().standard_normal(
            shape, dtype=np.float32
        ),
        "(b) GaussianPixelNoise(std=0.3)": lambda: GaussianPixelNoise(
            std=0.3, random_state=0
        ).fit_transform(X),
        "(c) SaltAndPepperNoise(amount=0.1)": lambda: SaltAndPepperNoise(
            amount=0.1, random_state=0
        ).fit_transform(X),
        "(d) MaskingNoise(fraction=0.25)": lambda: MaskingNoise(
            fraction=0.25, random_state=0
        ).fit_transform(X),
    }


def measure(calls, repeat):
    """Best-of-``repeat`` seconds per call, measured interleaved."""
    for call in calls.values():  # warm-up: allocator, thread pools, caches
        call()
    times = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times


def report(times):
    names = list(times)
    anchor = min(times[names[0]])
    width = max(len(name) for name in names)
    print(f"{'case':<{width}}  {'best s':>8}  {'median s':>8}  {'ratio':>6}")
    for name in names:
        best, median = min(times[name]), float(np.median(times[name]))
        print(f"{name:<{width}}  {best:8.4f}  {median:8.4f}  {best / anchor:5.2f}x")
    ratio = min(times[names[1]]) / anchor
    verdict = "MET" if ratio <= TARGET_RATIO else "NOT MET"
    print(
        f"target: GaussianPixelNoise <= {TARGET_RATIO}x numpy's draw: {verdict} "
        f"({ratio:.2f}x)"
    )


class _Timed:
    """Wrap ``owner.name`` (a function) so that its seconds add up in ``total``."""

    def __init__(self, owner, name):
        self.owner, self.name = owner, name
        self.original = getattr(owner, name)
        self.total = 0.0

    def __enter__(self):
        original = self.original

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - start

        setattr(self.owner, self.name, timed)
        return self

    def __exit__(self, *exc):
        setattr(self.owner, self.name, self.original)


def _torch_normal(seed):
    """The anchor draw of normals: torch's ``normal_``, from a torch
    generator seeded once per fit."""
    generator = torch.Generator().manual_seed(seed)

    def draw(X, _generator, std=1.0):
        out = torch.empty_like(X, memory_format=torch.contiguous_format)
        return out.normal_(generator=generator).mul_(std)

    return draw


def _torch_uniform(seed):
    """The anchor uniform draw: torch's ``uniform_`` compared with each
    probability, from a torch generator seeded once per fit."""
    generator = torch.Generator().manual_seed(seed)

    def draw(X, _generator, *probabilities):
        u = torch.empty_like(X, memory_format=torch.contiguous_format)
        u.uniform_(generator=generator)
        return [u < p for p in probabilities]

    return draw


# (noise of the fit, its class, the library's draw function in
# denoisenet.noise, the anchor's name and factory)
KINDS = {
    "gaussian": (
        0.2,
        GaussianPixelNoise,
        "_draw_normal",
        "torch normal_",
        _torch_normal,
    ),
    "masking": (
        MaskingNoise(0.25),
        MaskingNoise,
        "_draw_below",
        "torch uniform_",
        _torch_uniform,
    ),
}


def _timed_epoch(X, seed, kind, anchor):
    """(epoch s, draw s, corruption s) of one epoch with the noise of
    ``kind``, drawing with the anchor's draw if ``anchor``, else the
    library's."""
    noise, cls, name, _, factory = KINDS[kind]
    dae = DenoisingAutoencoder(noise=noise, max_iter=1, random_state=seed, device="cpu")
    library = getattr(denoisenet.noise, name)
    setattr(denoisenet.noise, name, factory(seed) if anchor else library)
    try:
        with (
            _Timed(cls, "_corrupt") as corrupt,
            _Timed(denoisenet.noise, name) as draw,
        ):
            start = time.perf_counter()
            dae.fit(X)
            epoch = time.perf_counter() - start
    finally:
        setattr(denoisenet.noise, name, library)
    return epoch, draw.total, corrupt.total


def epoch_share(X, repeat, kind="gaussian"):
    """Noise's share of one epoch of the default DenoisingAutoencoder."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    DenoisingAutoencoder(max_iter=1, random_state=0, device="cpu").fit(X[:2000])
    anchor_name = KINDS[kind][3]
    draws = {"library": False, anchor_name: True}
    rows = {name: [] for name in draws}
    for seed in range(repeat):
        for name, anchor in draws.items():
            rows[name].append(_timed_epoch(X, seed, kind, anchor))
    print(
        f"{'draw':<14}  {'epoch s':>8}  {'draw s':>7}  {'share':>6}  "
        f"{'corrupt s':>9}  {'share':>6}"
    )
    for name, timings in rows.items():
        for epoch, draw, corrupt in timings:
            print(
                f"{name:<14}  {epoch:8.2f}  {draw:7.3f}  {draw / epoch:6.1%}  "
                f"{corrupt:9.3f}  {corrupt / epoch:6.1%}"
            )
    ours, anchor = (np.array(rows[name]) for name in draws)
    anchor_share = np.median(anchor[:, 1] / anchor[:, 0])
    share = float(np.median(ours[:, 1] / ours[:, 0]))
    print(
        f"paired medians: the library's draw took {share:.1%} of its epoch, "
        f"{anchor_name} {anchor_share:.1%} of its; the library's draw "
        f"{np.median(anchor[:, 1] / ours[:, 1]):.2f}x and the epoch "
        f"{np.median(anchor[:, 0] / ours[:, 0]):.2f}x as fast"
    )
    if kind != "gaussian":
        return
    verdict = "MET" if share <= TARGET_EPOCH_SHARE else "NOT MET"
    print(
        f"target: the noise draw <= {TARGET_EPOCH_SHARE:.0%} of an epoch: {verdict} "
        f"(median {share:.1%})"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=60000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--part", choices=["draw", "epoch", "all"], default="all")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.n_samples < 1 or args.repeat < 1:
        parser.error("--n-samples and --repeat must be positive")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"{os.cpu_count()} CPUs ({_common.cpu_model()})"
    )
    X = load_images(args.n_samples)
    if args.part in ("draw", "all"):
        print(f"best of {args.repeat}, interleaved, after one warm-up round")
        report(measure(cases(X), args.repeat))
    if args.part in ("epoch", "all"):
        print(f"\none epoch of DenoisingAutoencoder() on {X.shape[0]:,} images")
        epoch_share(X, args.repeat)
        print(
            "\none epoch of DenoisingAutoencoder(noise=MaskingNoise(0.25)) on "
            f"{X.shape[0]:,} images (no target)"
        )
        epoch_share(X, args.repeat, kind="masking")


if __name__ == "__main__":
    main()
