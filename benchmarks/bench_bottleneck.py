"""Accuracy, stability and 2-D maps of BottleneckClassifier against t-SNE.

Part 1, accuracy over seeds: ``BottleneckClassifier()`` with its default
parameters and ``random_state=seed`` is fitted on the
Fashion-MNIST training images for each of ``--seeds`` seeds (0, 1, ...);
the table gives the test accuracy and fit time of each seed, then the
minimum and the mean. Target: every seed above 88.0%, the accuracy of the
plain-PyTorch bottleneck network of REFERENCE.md.

Part 2, the 2-D map: the first seed's model maps the first ``--map-samples``
test images (``transform``) beside ``sklearn.manifold.TSNE(random_state=0)``
on the same images. For both maps: trustworthiness
(``sklearn.manifold.trustworthiness``, 10 neighbours, on the first 2,000 of
those images), the 5-fold ``cross_val_score`` accuracy of
``KNeighborsClassifier(10)`` in 2-D, and the time to make the map (for the
bottleneck, ``transform`` alone: the map is a by-product of training).
Targets: kNN accuracy in the bottleneck map >= t-SNE's, trustworthiness
>= 0.88.

``--published`` adds the protocol of the published table of parametric maps
(Sainburg, McInnes and Gentner, Neural Computation 2021), for every seed's
model: trustworthiness with 5 neighbours on ``--published-samples`` test
images (10,000: the whole test set), and the accuracy of
``KNeighborsClassifier(5)`` fitted on the embedded training images and
scored on the embedded test images. The bottleneck embeds all of them with
``transform``; t-SNE, which cannot embed new points, maps
``--tsne-train`` training images (10,000) and the test images together.
Targets (issue 16), on every seed: Fashion-MNIST trustworthiness >= 0.95,
2-D kNN >= t-SNE's and test accuracy >= 88.5%; the 5,000-image subset
(``--data fm5k``) trustworthiness >= 0.90 and 2-D kNN >= t-SNE's; the
digits (``--data digits``) trustworthiness >= t-SNE's - 0.02.

``--compare-neighbor-weight`` also shows the effect of the neighbour term
(the ``neighbor_weight`` parameter, a parametric t-SNE loss on the
bottleneck) in the same run: seed 0 fitted with ``neighbor_weight=0`` and
with the default (and with ``--neighbor-weight`` when given, or 1.0 when
the default is 0 so that there is something to compare), each with its
accuracy, trustworthiness and 2-D kNN accuracy.

``--train-trust`` adds to the published protocol's table the
trustworthiness (5 neighbours) of each map on as many training images as
test images: how well the map keeps the neighbourhoods of the images it
was trained on, beside those of new images.

``--inductive`` adds to the published protocol's table a map that, like
the bottleneck, never sees the test images: t-SNE of the ``--tsne-train``
training images alone, each test image placed at the mean position of its
5 nearest training images (in pixels); and, for each bottleneck, the
trustworthiness of its training map with the test images placed the same
way instead of by ``transform``. The first compares the bottleneck with a
t-SNE that maps new images (t-SNE embedding the test images together with
the training images optimises their positions along with the rest);
the second separates how well the network keeps neighbours where it was
trained from how well it places new images.

``--hidden-layer-sizes 500,100,2,100`` fits every ``BottleneckClassifier``
of the run with those hidden layers (here the blog's network, the default
of earlier versions), to set another network beside the default.

``--noise STD`` fits every ``BottleneckClassifier`` of the run with
``noise=STD`` (Gaussian corruption of the training images), and ``--noise
none`` with ``noise=None``, to set either beside the default ('auto': the
estimator's ``AUTO_NOISE_STD`` up to 10,000 training images, none above).

The data are Fashion-MNIST from the local IDX files
(``load_fashion_mnist(..., download=False)``); when they are missing,
random data stand in and the script says so loudly.

Run it from the repository root::

    python benchmarks/bench_bottleneck.py
    python benchmarks/bench_bottleneck.py --seeds 5 --compare-neighbor-weight
    python benchmarks/bench_bottleneck.py --seeds 5 --published --threads 1
    python benchmarks/bench_bottleneck.py --data fm5k --seeds 5 --published
    python benchmarks/bench_bottleneck.py --data digits --published --noise none
    python benchmarks/bench_bottleneck.py --data digits --published --inductive

Absolute seconds drift on shared machines; compare within one run.
"""

import argparse
import time
import warnings

import _common
import numpy as np
from sklearn.manifold import TSNE, trustworthiness
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from denoisenet import BottleneckClassifier

TARGET_ACCURACY = 0.880  # REFERENCE: plain-PyTorch bottleneck, 20 epochs
TARGET_TRUSTWORTHINESS = 0.88
TRUST_SAMPLES = 2000
N_NEIGHBORS = 10


def fit_classifier(X, y, seed, cfg, **params):
    if cfg.max_iter is not None:
        params["max_iter"] = cfg.max_iter
    if cfg.noise is not None:
        params["noise"] = None if cfg.noise == "none" else cfg.noise
    if cfg.hidden_layer_sizes is not None:
        params["hidden_layer_sizes"] = cfg.hidden_layer_sizes
    clf = BottleneckClassifier(random_state=seed, **params)
    start = time.perf_counter()
    clf.fit(X, y)
    return clf, time.perf_counter() - start


def map_scores(X, Z, y):
    """Trustworthiness on the first rows and 5-fold kNN accuracy in ``Z``."""
    m = min(TRUST_SAMPLES, X.shape[0])
    trust = trustworthiness(X[:m], Z[:m], n_neighbors=min(N_NEIGHBORS, m // 2 - 1))
    knn = cross_val_score(KNeighborsClassifier(N_NEIGHBORS), Z, y, cv=5).mean()
    return float(trust), float(knn)


def run_seeds(X_train, y_train, X_test, y_test, cfg):
    print(f"\n== accuracy of BottleneckClassifier() over {cfg.seeds} seed(s) ==")
    # The first fit in a process pays one-off lazy imports (torch.optim
    # imports torch._dynamo, seconds on a busy machine): not in the timings.
    warm = min(X_train.shape[0], 512)
    BottleneckClassifier(max_iter=1).fit(X_train[:warm], y_train[:warm])
    rows, accuracies, models = [], [], {}
    for seed in range(cfg.seeds):
        clf, seconds = fit_classifier(X_train, y_train, seed, cfg)
        accuracy = clf.score(X_test, y_test)
        accuracies.append(accuracy)
        models[seed] = clf
        rows.append(
            [
                str(seed),
                f"{100 * accuracy:.2f}%",
                f"{seconds:.1f}",
                str(clf.n_iter_),
                f"{clf.loss_curve_[-1]:.4f}",
            ]
        )
        print(f"  seed {seed}: {100 * accuracy:.2f}% in {seconds:.1f} s", flush=True)
    rows.append(["min", f"{100 * min(accuracies):.2f}%", "", "", ""])
    rows.append(["mean", f"{100 * np.mean(accuracies):.2f}%", "", "", ""])
    print()
    _common.print_table(["seed", "accuracy", "fit s", "epochs", "last loss"], rows)
    if cfg.data == "fm" and cfg.n_samples >= 60000:
        # REFERENCE's anchor holds for the 60,000 training images only.
        met = min(accuracies) > TARGET_ACCURACY
        print(
            f"target: every seed > {100 * TARGET_ACCURACY:.1f}%: "
            f"{_common.verdict(met)} (min {100 * min(accuracies):.2f}%)"
        )
    return models


def run_maps(model, X_map, y_map, cfg):
    print(f"\n== 2-D maps of {X_map.shape[0]} test images ==")
    start = time.perf_counter()
    Z_bottleneck = model.transform(X_map)
    bottleneck_time = time.perf_counter() - start
    start = time.perf_counter()
    Z_tsne = TSNE(random_state=0).fit_transform(X_map)
    tsne_time = time.perf_counter() - start

    m = min(TRUST_SAMPLES, X_map.shape[0])
    results = {
        "sklearn TSNE(random_state=0)": (*map_scores(X_map, Z_tsne, y_map), tsne_time),
        "BottleneckClassifier (seed 0)": (
            *map_scores(X_map, Z_bottleneck, y_map),
            bottleneck_time,
        ),
    }
    rows = [
        [name, f"{trust:.3f}", f"{100 * knn:.1f}%", f"{seconds:.2f}"]
        for name, (trust, knn, seconds) in results.items()
    ]
    print(
        f"trustworthiness: {N_NEIGHBORS} neighbours on the first {m} images; "
        f"kNN: 5-fold KNeighborsClassifier({N_NEIGHBORS}); time: making the map "
        "(transform only for the bottleneck)"
    )
    _common.print_table(["map", "trustworthiness", "kNN in 2-D", "time s"], rows)
    tsne_trust, tsne_knn, _ = results["sklearn TSNE(random_state=0)"]
    trust, knn, _ = results["BottleneckClassifier (seed 0)"]
    print(
        f"target: 2-D kNN accuracy >= t-SNE's: {_common.verdict(knn >= tsne_knn)} "
        f"({100 * knn:.1f}% vs {100 * tsne_knn:.1f}%)"
    )
    print(
        f"target: trustworthiness >= {TARGET_TRUSTWORTHINESS}: "
        f"{_common.verdict(trust >= TARGET_TRUSTWORTHINESS)} ({trust:.3f}; t-SNE "
        f"{tsne_trust:.3f})"
    )


PUBLISHED_NEIGHBORS = 5
PUBLISHED_TARGET_TRUSTWORTHINESS = 0.95  # Fashion-MNIST, 60,000 training images


def published_scores(X_test, Z_test, y_test, Z_train, y_train):
    """The published table's protocol: trustworthiness (5 neighbours) of
    the test map, and a 5-NN classifier fitted on the embedded training set
    and scored on the embedded test set."""
    trust = trustworthiness(X_test, Z_test, n_neighbors=PUBLISHED_NEIGHBORS)
    knn = KNeighborsClassifier(PUBLISHED_NEIGHBORS).fit(Z_train, y_train)
    return float(trust), float(knn.score(Z_test, y_test))


def nearest_training(X_train, X_test):
    """The rows of each test image's :data:`PUBLISHED_NEIGHBORS` nearest
    training images (in the input space)."""
    search = NearestNeighbors(n_neighbors=PUBLISHED_NEIGHBORS).fit(X_train)
    return search.kneighbors(X_test, return_distance=False)


def placed_by_neighbors(Z_train, nearest):
    """Each test image at the mean map position of its ``nearest`` rows."""
    return Z_train[nearest].mean(axis=1)


# Targets of the published protocol per data set (issue 16): trustworthiness
# (an absolute floor, or t-SNE's minus a margin), whether the 2-D kNN must
# reach t-SNE's, and the accuracy every seed must reach (None: no target).
# On the digits the issue sets trustworthiness only; the kNN is printed
# beside t-SNE's as a comparison.
PUBLISHED_TARGETS = {
    "fm": {"trust": 0.95, "knn": True, "accuracy": 0.885},
    "fm5k": {"trust": 0.90, "knn": True, "accuracy": None},
    "digits": {"trust_below_tsne": 0.02, "knn": False, "accuracy": None},
}


def run_published(models, X_train, y_train, X_test, y_test, cfg):
    n = min(cfg.published_samples, X_test.shape[0])
    X_test, y_test = X_test[:n], y_test[:n]
    m = min(cfg.tsne_train, X_train.shape[0])
    print(
        f"\n== the published protocol: {n} test images (trustworthiness, "
        f"{PUBLISHED_NEIGHBORS} neighbours), {PUBLISHED_NEIGHBORS}-NN fitted on "
        "the embedded training images =="
    )
    start = time.perf_counter()
    Z_joint = TSNE(random_state=0).fit_transform(np.vstack([X_train[:m], X_test]))
    tsne_time = time.perf_counter() - start
    tsne = published_scores(X_test, Z_joint[m:], y_test, Z_joint[:m], y_train[:m])
    # --train-trust: the same measure on as many training images as test
    # images, to set how well a map keeps the neighbourhoods of the images
    # it was trained on beside how well it keeps those of new ones.
    k = min(n, m, X_train.shape[0])
    rows = [
        [
            f"sklearn TSNE(random_state=0), {m} training + {n} test images "
            "embedded together",
            f"{tsne[0]:.3f}",
            f"{100 * tsne[1]:.1f}%",
            "",
        ]
        + ([f"{_train_trust(X_train[:k], Z_joint[:k]):.3f}"] if cfg.train_trust else [])
    ]
    if cfg.inductive:
        Z_alone = TSNE(random_state=0).fit_transform(X_train[:m])
        Z_placed = placed_by_neighbors(Z_alone, nearest_training(X_train[:m], X_test))
        alone = published_scores(X_test, Z_placed, y_test, Z_alone, y_train[:m])
        rows.append(
            [
                f"sklearn TSNE(random_state=0) of {m} training images alone, "
                f"test images placed by their {PUBLISHED_NEIGHBORS} nearest",
                f"{alone[0]:.3f}",
                f"{100 * alone[1]:.1f}%",
                "",
            ]
            + (
                [f"{_train_trust(X_train[:k], Z_alone[:k]):.3f}"]
                if cfg.train_trust
                else []
            )
            + [""]
        )
        rows[0].append("")
    # The same for every seed: searched once.
    nearest = nearest_training(X_train, X_test) if cfg.inductive else None
    scores = {}
    for seed, model in models.items():
        Z_train = model.transform(X_train)
        scores[seed] = published_scores(
            X_test, model.transform(X_test), y_test, Z_train, y_train
        )
        placed = []
        if cfg.inductive:
            Z_placed = placed_by_neighbors(Z_train, nearest)
            placed = [f"{_train_trust(X_test, Z_placed):.3f}"]
        rows.append(
            [
                f"BottleneckClassifier (seed {seed}), {X_train.shape[0]} training "
                "images",
                f"{scores[seed][0]:.3f}",
                f"{100 * scores[seed][1]:.1f}%",
                f"{100 * model.score(X_test, y_test):.2f}%",
            ]
            + (
                [f"{_train_trust(X_train[:k], Z_train[:k]):.3f}"]
                if cfg.train_trust
                else []
            )
            + placed
        )
    _common.print_table(
        ["map", "trustworthiness", "5-NN in 2-D", "test accuracy"]
        + ([f"trust., first {k} training images"] if cfg.train_trust else [])
        + (["trust., test images placed by neighbours"] if cfg.inductive else []),
        rows,
    )
    print(f"t-SNE took {tsne_time:.0f} s")
    print(
        "published (parametric UMAP / t-SNE): Fashion-MNIST 0.973 / 0.991 "
        "trustworthiness, 74% / 80% 5-NN; MNIST 0.957 / 0.987, 96% / 95%"
    )
    targets = PUBLISHED_TARGETS.get(cfg.data, {})
    worst_trust = min(t for t, _ in scores.values())
    worst_knn = min(k for _, k in scores.values())
    if "trust" in targets:
        floor, floor_text = targets["trust"], f"{targets['trust']}"
    else:
        margin = targets.get("trust_below_tsne", 0.0)
        floor, floor_text = tsne[0] - margin, f"t-SNE's - {margin}"
    print(
        f"target: trustworthiness >= {floor_text} on every seed: "
        f"{_common.verdict(worst_trust >= floor)} (min {worst_trust:.3f}; "
        f"t-SNE {tsne[0]:.3f})"
    )
    knn_text = f"(min {100 * worst_knn:.1f}% vs {100 * tsne[1]:.1f}%)"
    if targets.get("knn", True):
        print(
            "target: 2-D kNN accuracy >= t-SNE's on every seed: "
            f"{_common.verdict(worst_knn >= tsne[1])} {knn_text}"
        )
    else:
        print(f"2-D kNN accuracy beside t-SNE's (no target here): {knn_text}")
    if targets.get("accuracy") is not None:
        worst = min(model.score(X_test, y_test) for model in models.values())
        print(
            f"target: test accuracy >= {100 * targets['accuracy']:.1f}% on every "
            f"seed: {_common.verdict(worst >= targets['accuracy'])} "
            f"(min {100 * worst:.2f}%)"
        )


def _train_trust(X, Z):
    return float(trustworthiness(X, Z, n_neighbors=PUBLISHED_NEIGHBORS))


def load_data(cfg):
    """(X_train, y_train, X_test, y_test, real) of ``--data``."""
    if cfg.data == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        X = (X / 16.0).astype(np.float32)
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, random_state=0, stratify=y
        )
        print(f"data: scikit-learn digits, {len(y_train)} train / {len(y_test)} test")
        return X_train, y_train, X_test, y_test, True
    n_samples = cfg.n_samples if cfg.data == "fm" else None
    X_train, y_train, real = _common.load_images("train", n_samples)
    X_test, y_test, _ = _common.load_images("test")
    if cfg.data == "fm5k" and real:
        from sklearn.model_selection import train_test_split

        X_train, _, y_train, _ = train_test_split(
            X_train, y_train, train_size=5000, stratify=y_train, random_state=0
        )
        print("data: a stratified 5,000-image subset of the training images")
    return X_train, y_train, X_test, y_test, real


def compare_neighbor_weight(model, X_train, y_train, X_test, y_test, X_map, y_map, cfg):
    print("\n== effect of the neighbour term (seed 0) ==")
    params = BottleneckClassifier().get_params()
    if "neighbor_weight" not in params:
        print("BottleneckClassifier has no neighbor_weight parameter: skipped")
        return
    default = params["neighbor_weight"]
    weights = [0.0, default]
    if cfg.neighbor_weight is not None:
        weights.append(cfg.neighbor_weight)
    elif default == 0:
        print("the default neighbor_weight is 0; comparing with 1.0 as well")
        weights.append(1.0)
    weights = list(dict.fromkeys(float(w) for w in weights))
    rows = []
    for weight in weights:
        if weight == default and model is not None:
            clf, seconds, note = model, None, " (default, from the seed table)"
        else:
            clf, seconds = fit_classifier(
                X_train, y_train, 0, cfg, neighbor_weight=weight
            )
            note = " (default)" if weight == default else ""
        accuracy = clf.score(X_test, y_test)
        trust, knn = map_scores(X_map, clf.transform(X_map), y_map)
        rows.append(
            [
                f"neighbor_weight={weight:g}{note}",
                f"{100 * accuracy:.2f}%",
                f"{trust:.3f}",
                f"{100 * knn:.1f}%",
                "" if seconds is None else f"{seconds:.1f}",
            ]
        )
        print(f"  neighbor_weight={weight:g}: done", flush=True)
    _common.print_table(
        ["model", "accuracy", "trustworthiness", "kNN in 2-D", "fit s"], rows
    )


def _noise_arg(text):
    if text.lower() == "none":
        return "none"
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"--noise must be 'none' or >= 0, not {text}")
    return value


def _sizes_arg(text):
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"--hidden-layer-sizes must be positive integers separated by commas, "
            f"not {text!r}"
        )
    return sizes


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1")
    parser.add_argument(
        "--data",
        choices=["fm", "fm5k", "digits"],
        default="fm",
        help="Fashion-MNIST (--n-samples training images), a stratified "
        "5,000-image subset of it, or scikit-learn's digits (75/25 split)",
    )
    parser.add_argument(
        "--n-samples", type=int, default=60000, help="training images used"
    )
    parser.add_argument(
        "--map-samples", type=int, default=5000, help="test images in the 2-D maps"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for torch and numpy/sklearn (default: torch's default)",
    )
    parser.add_argument(
        "--max-iter",
        type=int,
        default=None,
        help="epochs (default: the estimator's default; lower only for smoke runs)",
    )
    parser.add_argument(
        "--train-trust",
        action="store_true",
        help="with --published, also the trustworthiness of the training images' map",
    )
    parser.add_argument(
        "--inductive",
        action="store_true",
        help="with --published, also maps that place the test images by their "
        "nearest training images: t-SNE of the training images alone, and each "
        "bottleneck's training map",
    )
    parser.add_argument(
        "--noise",
        type=_noise_arg,
        default=None,
        help="BottleneckClassifier(noise=STD) for every fit, or 'none' for "
        "noise=None (default: the estimator's default, 'auto')",
    )
    parser.add_argument(
        "--hidden-layer-sizes",
        type=_sizes_arg,
        default=None,
        help="BottleneckClassifier(hidden_layer_sizes=...) for every fit, e.g. "
        "500,100,2,100 for the blog's network (default: the estimator's)",
    )
    parser.add_argument(
        "--published",
        action="store_true",
        help="also the published table's protocol (see the module docstring)",
    )
    parser.add_argument(
        "--published-samples",
        type=int,
        default=10000,
        help="test images for --published",
    )
    parser.add_argument(
        "--tsne-train",
        type=int,
        default=10000,
        help="training images t-SNE embeds with the test images for --published",
    )
    parser.add_argument(
        "--compare-neighbor-weight",
        action="store_true",
        help="also fit seed 0 with neighbor_weight=0 and the default",
    )
    parser.add_argument(
        "--neighbor-weight",
        type=float,
        default=None,
        help="an extra neighbor_weight for --compare-neighbor-weight",
    )
    cfg = parser.parse_args(argv)
    if cfg.seeds < 1 or cfg.n_samples < 1 or cfg.map_samples < 25:
        parser.error("--seeds, --n-samples must be positive, --map-samples >= 25")

    cfg.threads, limiter = _common.limit_threads(cfg.threads)
    _common.print_environment(cfg.threads)
    _common.quiet_convergence_warnings()
    warnings.filterwarnings("ignore", message="The given NumPy array is not")
    try:
        X_train, y_train, X_test, y_test, real = load_data(cfg)
        X_map, y_map = X_test[: cfg.map_samples], y_test[: cfg.map_samples]
        defaults = BottleneckClassifier().get_params()
        shown = {
            k: defaults[k]
            for k in (
                "hidden_layer_sizes",
                "max_iter",
                "batch_size",
                "neighbor_weight",
                "n_neighbors",
            )
            if k in defaults
        }
        print(f"BottleneckClassifier defaults: {shown}")
        if cfg.max_iter is not None:
            print(f"!! max_iter overridden to {cfg.max_iter} (smoke run)")
        if cfg.hidden_layer_sizes is not None:
            print(f"every fit: hidden_layer_sizes={cfg.hidden_layer_sizes}")
        models = run_seeds(X_train, y_train, X_test, y_test, cfg)
        run_maps(models[0], X_map, y_map, cfg)
        if cfg.published:
            run_published(models, X_train, y_train, X_test, y_test, cfg)
        if cfg.compare_neighbor_weight:
            compare_neighbor_weight(
                models[0], X_train, y_train, X_test, y_test, X_map, y_map, cfg
            )
        if not real:
            print("!! stand-in random data: the accuracies and maps mean nothing")
    finally:
        limiter.restore_original_limits()


if __name__ == "__main__":
    main()
