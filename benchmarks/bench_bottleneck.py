"""Accuracy, stability and 2-D maps of BottleneckClassifier against t-SNE.

Part 1, accuracy over seeds: ``BottleneckClassifier()`` with its default
parameters (784-500-100-2-100-10) and ``random_state=seed`` is fitted on the
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
(Sainburg, McInnes and Gentner, Neural Computation 2021), as a second row
for every map: trustworthiness with 5 neighbours on ``--published-samples``
test images (10,000: the whole test set), and the accuracy of
``KNeighborsClassifier(5)`` fitted on the embedded training images and
scored on the embedded test images. The bottleneck embeds all of them with
``transform``; t-SNE, which cannot embed new points, maps
``--tsne-train`` training images (10,000) and the test images together.

``--compare-neighbor-weight`` also shows the effect of the neighbour term
(the ``neighbor_weight`` parameter, a parametric t-SNE loss on the
bottleneck) in the same run: seed 0 fitted with ``neighbor_weight=0`` and
with the default (and with ``--neighbor-weight`` when given, or 1.0 when
the default is 0 so that there is something to compare), each with its
accuracy, trustworthiness and 2-D kNN accuracy.

The data are Fashion-MNIST from the local IDX files
(``load_fashion_mnist(..., download=False)``); when they are missing,
random data stand in and the script says so loudly.

Run it from the repository root::

    python benchmarks/bench_bottleneck.py
    python benchmarks/bench_bottleneck.py --seeds 5 --compare-neighbor-weight

Absolute seconds drift on shared machines; compare within one run.
"""

import argparse
import time
import warnings

import _common
import numpy as np
from sklearn.manifold import TSNE, trustworthiness
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from denoisenet import BottleneckClassifier

TARGET_ACCURACY = 0.880  # REFERENCE: plain-PyTorch bottleneck, 20 epochs
TARGET_TRUSTWORTHINESS = 0.88
TRUST_SAMPLES = 2000
N_NEIGHBORS = 10


def fit_classifier(X, y, seed, cfg, **params):
    if cfg.max_iter is not None:
        params["max_iter"] = cfg.max_iter
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
    met = min(accuracies) > TARGET_ACCURACY
    print(
        f"target: every seed > {100 * TARGET_ACCURACY:.1f}%: {_common.verdict(met)} "
        f"(min {100 * min(accuracies):.2f}%)"
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


def run_published(model, X_train, y_train, X_test, y_test, cfg):
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
    bottleneck = published_scores(
        X_test,
        model.transform(X_test),
        y_test,
        model.transform(X_train),
        y_train,
    )
    rows = [
        [
            f"sklearn TSNE(random_state=0), {m} training + {n} test images "
            "embedded together",
            f"{tsne[0]:.3f}",
            f"{100 * tsne[1]:.1f}%",
            f"{tsne_time:.0f}",
        ],
        [
            f"BottleneckClassifier (seed 0), {X_train.shape[0]} training images",
            f"{bottleneck[0]:.3f}",
            f"{100 * bottleneck[1]:.1f}%",
            "",
        ],
    ]
    _common.print_table(["map", "trustworthiness", "5-NN in 2-D", "time s"], rows)
    print(
        "published (parametric UMAP / t-SNE on Fashion-MNIST): 0.973 / 0.991 "
        "trustworthiness, 74% / 80% 5-NN"
    )
    print(
        f"target: trustworthiness >= {PUBLISHED_TARGET_TRUSTWORTHINESS}: "
        f"{_common.verdict(bottleneck[0] >= PUBLISHED_TARGET_TRUSTWORTHINESS)} "
        f"({bottleneck[0]:.3f}; t-SNE {tsne[0]:.3f})"
    )
    print(
        f"target: 2-D kNN accuracy >= t-SNE's: "
        f"{_common.verdict(bottleneck[1] >= tsne[1])} "
        f"({100 * bottleneck[1]:.1f}% vs {100 * tsne[1]:.1f}%)"
    )


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


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1")
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
        X_train, y_train, real = _common.load_images("train", cfg.n_samples)
        X_test, y_test, _ = _common.load_images("test")
        X_map, y_map = X_test[: cfg.map_samples], y_test[: cfg.map_samples]
        defaults = BottleneckClassifier().get_params()
        shown = {
            k: defaults[k]
            for k in ("hidden_layer_sizes", "max_iter", "batch_size", "neighbor_weight")
            if k in defaults
        }
        print(f"BottleneckClassifier defaults: {shown}")
        if cfg.max_iter is not None:
            print(f"!! max_iter overridden to {cfg.max_iter} (smoke run)")
        models = run_seeds(X_train, y_train, X_test, y_test, cfg)
        run_maps(models[0], X_map, y_map, cfg)
        if cfg.published:
            run_published(models[0], X_train, y_train, X_test, y_test, cfg)
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
