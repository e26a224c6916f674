"""The study's experiments: baselines, noise and denoising, 2-D maps.

Each step fits its models on :class:`~denoisenet.study.data.StudyData`,
logs one line per result and returns plain records (dicts of numbers and
strings) for ``results.json`` and the report, plus what the figures need.
Nothing here writes files.
"""

import re
import time
import warnings
from dataclasses import asdict

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from denoisenet import BottleneckClassifier, DenoisingAutoencoder, GaussianPixelNoise
from denoisenet.study import config as study_config
from denoisenet.study.data import stratified_sample
from denoisenet.study.report import mse, pct, sec, tw

#: Points of the 2-D maps (a sample of the test images) and, of those, the
#: points that trustworthiness is computed on; as in REFERENCE.md.
MAP_SAMPLES = 5000
TRUSTWORTHINESS_SAMPLES = 2000
N_NEIGHBORS = 10
#: The protocol of the published table of parametric maps (Sainburg, McInnes
#: and Gentner, 2021): trustworthiness with 5 neighbours on up to 10,000
#: test points, and a 5-NN classifier fitted on the embedded training set
#: and scored on the embedded test set. t-SNE, which cannot embed new
#: points, embeds up to PUBLISHED_TSNE_TRAIN training points with the test
#: points.
PUBLISHED_NEIGHBORS = 5
PUBLISHED_TEST = 10_000
PUBLISHED_TSNE_TRAIN = 5000
#: The smallest test set the maps can score: t-SNE's perplexity (30) must
#: be below the number of points, and the 5-fold kNN score needs 5 images
#: of every class.
MIN_TEST_IMAGES = 31
MIN_TEST_PER_CLASS = 5


def check_test_set(data):
    """Raise StudyError, before any step runs, for a test set too small for
    the maps (a data folder of the user's with a few test images, say)."""
    labels, counts = np.unique(data.y_test, return_counts=True)
    missing = np.setdiff1d(np.unique(data.y_train), labels)
    fewest = int(counts.min()) if len(counts) else 0
    if (
        len(data.y_test) >= MIN_TEST_IMAGES
        and fewest >= MIN_TEST_PER_CLASS
        and not missing.size
    ):
        return
    if missing.size:
        short = f"none of class {data.class_names[int(missing[0])]}"
    else:
        name = data.class_names[int(labels[counts.argmin()])]
        short = f"{fewest} of class {name}"
    raise study_config.StudyError(
        f"the test set has {len(data.y_test)} images ({short}); the 2-D maps "
        f"need at least {MIN_TEST_PER_CLASS} of every class and "
        f"{MIN_TEST_IMAGES} in all (t-SNE, and a 5-fold kNN score)"
    )


#: What the blog reports on MNIST: (what, the blog's figure, where the
#: measured number is in ``results``, where the model that measured it is
#: described). The blog ran its baselines with scikit-learn's defaults.
BLOG_FIGURES = (
    (
        "LogisticRegression (the blog: defaults)",
        "~92%",
        ("classifiers", 0, "accuracy"),
        ("classifiers", 0, "model"),
    ),
    (
        "MLPClassifier (the blog: defaults)",
        "~97.5%",
        ("classifiers", 1, "accuracy"),
        ("classifiers", 1, "model"),
    ),
    (
        "MLPClassifier (500, 200, 50)",
        "~98%",
        ("classifiers", 2, "accuracy"),
        ("classifiers", 2, "model"),
    ),
    (
        "classifier trained on clean images, on noisy test images",
        "89%",
        ("denoising", "accuracy_noisy"),
        ("denoising", "classifier"),
    ),
    (
        "the same, after the denoising auto-encoder",
        "94%",
        ("denoising", "accuracy_denoised"),
        ("denoising", "denoiser"),
    ),
    (
        "bottleneck classifier (2-unit bottleneck)",
        ">96%",
        ("classifiers", 3, "accuracy"),
        ("classifiers", 3, "model"),
    ),
)


def describe(estimator):
    """The estimator as the report names it: its class and every parameter
    that differs from the default, as scikit-learn prints it, on one line.

    ``random_state`` is left out: every model is seeded with ``--seed``,
    which the report says once.
    """
    params = estimator.get_params(deep=False)
    if "random_state" in params:
        estimator = clone(estimator).set_params(random_state=None)
    return " ".join(repr(estimator).split())


def settings(config):
    """The options as given and what the study ran with where one was left out."""
    recorded = asdict(config)
    recorded["max_iter_used"] = study_config.max_iter(config)
    recorded["threads"] = study_config.threads(config)
    recorded["logistic_regression_max_iter"] = study_config.LOGREG_MAX_ITER[
        config.dataset
    ]
    recorded["map_samples"] = MAP_SAMPLES
    recorded["trustworthiness_samples"] = TRUSTWORTHINESS_SAMPLES
    recorded["n_neighbors"] = N_NEIGHBORS
    return recorded


#: The warnings by which a fit says that Ctrl-C stopped it and it kept its
#: last epoch: denoisenet's training loop and scikit-learn's MLP.
_INTERRUPTED = re.compile(r"Training interrupted by (the )?user")


class _FitWatch:
    """Record whether a fit converged and whether Ctrl-C cut it short.

    ConvergenceWarning and the warnings of an interrupted fit are kept
    quiet inside; other warnings are passed on when the block ends.
    """

    def __enter__(self):
        self._catcher = warnings.catch_warnings(record=True)
        self._caught = self._catcher.__enter__()
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.filterwarnings("always", message=_INTERRUPTED.pattern)
        self.converged = True
        self.interrupted = False
        return self

    def __exit__(self, *exc_info):
        self._catcher.__exit__(*exc_info)
        for caught in self._caught:
            if issubclass(caught.category, ConvergenceWarning):
                self.converged = False
            elif _INTERRUPTED.match(str(caught.message)):
                self.interrupted = True
            else:
                warnings.warn_explicit(
                    caught.message, caught.category, caught.filename, caught.lineno
                )
        return False


def fit(estimator, X, y=None):
    """Fit ``estimator``; return (seconds, converged).

    Raises KeyboardInterrupt when Ctrl-C stopped the fit, also when the
    estimator caught it, kept its last epoch and only warned: a library
    call may go on with that model, but the study would then report a run
    that did not happen.
    """
    with _FitWatch() as watch:
        start = time.perf_counter()
        estimator.fit(X, y)
        seconds = time.perf_counter() - start
    if watch.interrupted or getattr(estimator, "interrupted_", False):
        raise KeyboardInterrupt(f"{type(estimator).__name__} was training")
    return seconds, watch.converged


# -- step 1: baselines -----------------------------------------------------


def baselines(data, config, log):
    """Fit and score the four classifiers; return (records, fitted models)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    max_iter = study_config.max_iter(config)
    epochs = {} if max_iter is None else {"max_iter": max_iter}
    # REFERENCE.md's epochs for the two MLPs on the MNIST-sized sets: their
    # default of 200 would take most of the study's time for a few tenths
    # of a point.
    if config.dataset == "digits":
        mlp_epochs = (study_config.DIGITS_MLP_MAX_ITER,) * 2
    else:
        mlp_epochs = study_config.MLP_MAX_ITER
    shallow = epochs or {"max_iter": mlp_epochs[0]}
    deep = epochs or {"max_iter": mlp_epochs[1]}
    seed = config.seed
    models = [
        LogisticRegression(max_iter=study_config.LOGREG_MAX_ITER[config.dataset]),
        MLPClassifier(random_state=seed, **shallow),
        MLPClassifier((500, 200, 50), random_state=seed, **deep),
        BottleneckClassifier(
            architecture=config.architecture, random_state=seed, **epochs
        ),
    ]
    records = [_fit_and_score(model, data, log) for model in models]
    return records, {"mlp": models[1], "bottleneck": models[3]}


def _fit_and_score(estimator, data, log):
    name = describe(estimator)
    seconds, converged = fit(estimator, data.X_train, data.y_train)
    record = {
        "model": name,
        "accuracy": float(estimator.score(data.X_test, data.y_test)),
        "fit_time_s": seconds,
        "n_iter": int(np.max(estimator.n_iter_)),
        "max_iter": int(estimator.get_params()["max_iter"]),
        "converged": converged,
    }
    log(
        f"[1/4] {name}: test accuracy {pct(record['accuracy'])}, "
        f"fit {sec(seconds)}, {record['n_iter']} iterations"
        + ("" if converged else " (not converged)")
    )
    return record


# -- step 2: noise and denoising -------------------------------------------


def denoising(data, classifier, config, log):
    """Noise the test images, denoise them, score ``classifier`` on each.

    Returns (record, fitted DenoisingAutoencoder, noisy test images,
    denoised test images).
    """
    noise = GaussianPixelNoise(config.noise_std, random_state=config.seed)
    X_noisy = noise.fit_transform(data.X_test)
    dae = DenoisingAutoencoder(
        noise=config.noise_std,
        architecture=config.architecture,
        random_state=config.seed,
    )
    if study_config.max_iter(config) is not None:
        dae.set_params(max_iter=study_config.max_iter(config))
    seconds, converged = fit(dae, data.X_train)
    X_denoised = dae.transform(X_noisy)
    score = classifier.score
    record = {
        "noise_std": config.noise_std,
        "classifier": describe(classifier),
        "denoiser": describe(dae),
        "accuracy_clean": float(score(data.X_test, data.y_test)),
        "accuracy_noisy": float(score(X_noisy, data.y_test)),
        "accuracy_denoised": float(score(X_denoised, data.y_test)),
        "architecture": config.architecture,
        "mse_noisy": _mse_between(X_noisy, data.X_test),
        "mse_denoised": _mse_between(X_denoised, data.X_test),
        "dae_fit_time_s": seconds,
        "dae_n_iter": int(dae.n_iter_),
        "dae_max_iter": int(dae.max_iter),
        "dae_converged": converged,
    }
    log(
        f"[2/4] DenoisingAutoencoder: fit {sec(seconds)}"
        + ("" if converged else " (not converged)")
        + f"; {record['classifier']} on "
        f"clean {pct(record['accuracy_clean'])}, noisy "
        f"{pct(record['accuracy_noisy'])}, denoised "
        f"{pct(record['accuracy_denoised'])}; MSE noisy "
        f"{mse(record['mse_noisy'])}, denoised {mse(record['mse_denoised'])}"
    )
    return record, dae, X_noisy, X_denoised


def _mse_between(X, X_clean):
    return float(np.mean((np.asarray(X, np.float64) - X_clean) ** 2))


# -- step 3: 2-D maps --------------------------------------------------------

#: The maps, in the order of the report's table and of the figure's panels:
#: t-SNE, then the bottleneck without and with its neighbour term.
MAP_NAMES = ("t-SNE", "bottleneck without the neighbour term", "bottleneck")


def maps(data, bottleneck, config, log):
    """t-SNE and the bottleneck's maps of a sample of the test images.

    ``bottleneck`` is step 1's BottleneckClassifier, with its neighbour
    term; a clone with ``neighbor_weight=0`` is fitted here, so that the
    report shows what the term changes.

    Returns (records, maps, labels of the sample, classifiers): a record, a
    map and the fitted classifier that made it (None for t-SNE) for each
    name of :data:`MAP_NAMES`, in that order.
    """
    from sklearn.manifold import TSNE

    plain, fitted = _fit_plain_bottleneck(bottleneck, data, log)
    X, y = data.X_test, data.y_test
    if len(X) > MAP_SAMPLES:
        rows = stratified_sample(y, MAP_SAMPLES, config.seed)
    else:
        rows = np.random.default_rng(config.seed).permutation(len(X))
    # Shuffled, so that the first TRUSTWORTHINESS_SAMPLES are a fair sample.
    X, y = X[rows], y[rows]
    Z, seconds = _timed(TSNE(random_state=config.seed).fit_transform, X)
    records, embeddings = [_map_record("t-SNE", "TSNE()", X, Z, y, seconds)], [Z]
    for name, model, when in (
        (MAP_NAMES[1], plain, "fitted in this step"),
        (MAP_NAMES[2], bottleneck, "trained in step 1"),
    ):
        Z, seconds = _timed(model.transform, X)
        how = f"{describe(model)}.transform ({when})"
        records.append(_map_record(name, how, X, Z, y, seconds))
        records[-1]["neighbor_weight"] = float(model.neighbor_weight)
        embeddings.append(Z)
    records[1].update(fitted)
    _published(records, data, (plain, bottleneck), config)
    for record in records:
        log(
            f"[3/4] {record['map']}: trustworthiness "
            f"{tw(record['trustworthiness'])}, kNN accuracy in 2-D "
            f"{pct(record['knn_accuracy'])}, {sec(record['time_s'])}; published "
            f"protocol: trustworthiness {tw(record['published_trustworthiness'])}, "
            f"5-NN {pct(record['published_knn_accuracy'])}"
        )
    return records, embeddings, y, (None, plain, bottleneck)


def _timed(function, *args):
    """(what ``function(*args)`` returns, the seconds it took)."""
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def _fit_plain_bottleneck(bottleneck, data, log):
    """Step 1's bottleneck without its neighbour term, fitted and scored.

    Returns (the fitted clone, what its map record says of the fit).
    """
    plain = clone(bottleneck).set_params(neighbor_weight=0)
    seconds, converged = fit(plain, data.X_train, data.y_train)
    fitted = {
        "accuracy": float(plain.score(data.X_test, data.y_test)),
        "fit_time_s": seconds,
        "n_iter": int(plain.n_iter_),
        "max_iter": int(plain.max_iter),
        "converged": converged,
    }
    log(
        f"[3/4] {describe(plain)}: test accuracy {pct(fitted['accuracy'])}, "
        f"fit {sec(seconds)}, {fitted['n_iter']} iterations"
        + ("" if converged else " (not converged)")
    )
    return plain, fitted


def _published(records, data, bottlenecks, config):
    """Add the published table's protocol to the records of :func:`maps`."""
    from sklearn.manifold import TSNE

    X_test, y_test = _first_rows(data.X_test, data.y_test, PUBLISHED_TEST, config)
    X_train, y_train = _first_rows(
        data.X_train, data.y_train, PUBLISHED_TSNE_TRAIN, config
    )
    joint = TSNE(random_state=config.seed).fit_transform(np.vstack([X_train, X_test]))
    m = len(X_train)
    scores = [(_published_scores(X_test, joint[m:], y_test, joint[:m], y_train), m)]
    for model in bottlenecks:
        mapped = _published_scores(
            X_test,
            model.transform(X_test),
            y_test,
            model.transform(data.X_train),
            data.y_train,
        )
        scores.append((mapped, len(data.X_train)))
    for record, ((trust, knn), n_train) in zip(records, scores, strict=True):
        record["published_trustworthiness"] = trust
        record["published_knn_accuracy"] = knn
        record["published_test_points"] = len(X_test)
        record["published_train_points"] = n_train


def _first_rows(X, y, n, config):
    """A stratified sample of ``n`` rows, or all of them when there are fewer."""
    if len(X) <= n:
        return X, y
    rows = stratified_sample(y, n, config.seed)
    return X[rows], y[rows]


def _published_scores(X_test, Z_test, y_test, Z_train, y_train):
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import KNeighborsClassifier

    trust = trustworthiness(X_test, Z_test, n_neighbors=PUBLISHED_NEIGHBORS)
    knn = KNeighborsClassifier(PUBLISHED_NEIGHBORS).fit(Z_train, y_train)
    return float(trust), float(knn.score(Z_test, y_test))


def _map_record(name, how, X, Z, y, seconds):
    from sklearn.manifold import trustworthiness
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    n = min(TRUSTWORTHINESS_SAMPLES, len(X))
    knn = KNeighborsClassifier(N_NEIGHBORS)
    return {
        "map": name,
        "method": how,
        "n_samples": len(X),
        "trustworthiness": float(
            trustworthiness(X[:n], Z[:n], n_neighbors=N_NEIGHBORS)
        ),
        "trustworthiness_samples": n,
        "knn_accuracy": float(cross_val_score(knn, Z, y, cv=5).mean()),
        "time_s": seconds,
    }


# -- step 4: the blog's figures ----------------------------------------------


def blog_rows(results, dataset):
    """The blog's MNIST figures beside the numbers measured here."""
    rows = []
    for what, blog, value_at, model_at in BLOG_FIGURES:
        rows.append(
            {
                "what": what,
                "blog_mnist": blog,
                "measured": _lookup(results, value_at),
                "measured_with": _lookup(results, model_at),
            }
        )
    return {"dataset": dataset, "comparable": dataset == "mnist", "rows": rows}


def _lookup(results, path):
    value = results
    for key in path:
        value = value[key]
    return value
