"""The study that ``denoisenet study`` runs, and its report.

Four steps on one data set: baselines (logistic regression, two MLPs and the
bottleneck classifier), noise and denoising, 2-D maps (t-SNE beside the
bottleneck), and the blog's figures beside the measured ones. Every number
goes into one ``results`` dict; ``results.json``, ``report.md`` and
``report.html`` are all rendered from it, so they cannot disagree.
"""

import base64
import html
import itertools
import json
import platform
import re
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.exceptions import ConvergenceWarning

import denoisenet
from denoisenet import BottleneckClassifier, DenoisingAutoencoder, GaussianPixelNoise
from denoisenet.datasets import FASHION_MNIST_CLASSES

#: Points of the 2-D maps (a sample of the test images) and, of those, the
#: points that trustworthiness is computed on; as in REFERENCE.md.
MAP_SAMPLES = 5000
TRUSTWORTHINESS_SAMPLES = 2000
N_NEIGHBORS = 10

#: Epochs of the MLPs and of denoisenet's estimators on digits when
#: --max-iter is not given. Digits has 1,347 training images, so an epoch
#: is only six batches: the bottleneck needs more than its default 30
#: epochs to find a useful 2-D map, and the whole study still takes about
#: 20 s on two idle cores.
DIGITS_MAX_ITER = 100

#: Threads of torch, BLAS and OpenMP during the study on digits. Its
#: matrices are tiny (64 pixels, batches of 256), so extra threads only add
#: synchronisation, and on a machine shared with other jobs they spin against
#: them. The default study on digits took 34 s with two threads and 22 s with
#: one on two idle cores, and 2 min 36 s against 39 to 55 s on two busy ones.
#: MNIST-sized data keeps the libraries' defaults, where threads pay off.
DIGITS_THREADS = 1

#: Epochs of MLPClassifier() and MLPClassifier((500, 200, 50)) on the
#: MNIST-sized sets when --max-iter is not given, as in REFERENCE.md.
MLP_MAX_ITER = (50, 20)

#: lbfgs iterations of LogisticRegression: scikit-learn's default on the
#: MNIST-sized sets, as in REFERENCE.md; digits converges in fewer than
#: 100, but more room costs nothing there.
LOGREG_MAX_ITER = {"digits": 1000, "mnist": 100, "fashion-mnist": 100}


#: What the blog reports on MNIST: (what, blog figure, where the measured
#: number is in ``results``).
BLOG_FIGURES = (
    ("LogisticRegression, defaults", "~92%", ("classifiers", 0, "accuracy")),
    ("MLPClassifier, defaults", "~97.5%", ("classifiers", 1, "accuracy")),
    ("MLPClassifier (500, 200, 50)", "~98%", ("classifiers", 2, "accuracy")),
    (
        "classifier trained on clean images, on noisy test images",
        "89%",
        ("denoising", "accuracy_noisy"),
    ),
    (
        "the same, after the denoising auto-encoder",
        "94%",
        ("denoising", "accuracy_denoised"),
    ),
    (
        "bottleneck classifier (2-unit bottleneck)",
        ">96%",
        ("classifiers", 3, "accuracy"),
    ),
)

FIGURES = {
    "samples": "samples.png",
    "denoising": "denoising.png",
    "maps": "maps.png",
    "loss_curves": "loss_curves.png",
}


class StudyError(Exception):
    """A problem the user can fix: missing data, an unwritable folder."""


@dataclass(frozen=True)
class StudyConfig:
    """The options of ``denoisenet study``."""

    dataset: str = "digits"
    data_home: str | None = None
    noise_std: float = 0.3
    n_train: int | None = None
    max_iter: int | None = None
    seed: int = 0
    out: str = "denoisenet-study"
    architecture: str = "dense"


@dataclass
class StudyData:
    """The images (flattened, pixels in [0, 1]) and labels of one data set."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple
    class_names: tuple
    n_train_available: int


# -- the study -------------------------------------------------------------


def run_study(config, log=None):
    """Run the whole study, write its files into ``config.out``; return results."""
    log = log or (lambda message: None)
    start = time.perf_counter()
    out = prepare_out(config.out)
    _check_matplotlib()
    data = load_data(config)
    results = {
        "settings": _settings(config),
        "versions": _versions(),
        "data": _data_summary(data, config),
    }
    d = results["data"]
    log(
        f"[1/4] {config.dataset}: {d['n_train']:,} training and {d['n_test']:,} "
        f"test images of {d['image_shape'][0]}x{d['image_shape'][1]} pixels"
    )
    with limited_threads(results["settings"]["threads"]):
        results.update(_run_steps(data, config, out, log))
    results["blog"] = _blog_rows(results, config.dataset)
    results["figures"] = dict(FIGURES)
    results["total_time_s"] = time.perf_counter() - start
    write_reports(results, out)
    log(f"[4/4] report.md, report.html and results.json in {out}")
    return results


def _run_steps(data, config, out, log):
    _save(_samples_figure(data), out, FIGURES["samples"])
    classifiers, models = _baselines(data, config, log)
    log(f"[2/4] noise: Gaussian, std {config.noise_std:g}, clipped to [0, 1]")
    denoising, dae = _denoising(data, models["mlp"], config, out, log)
    log("[3/4] 2-D maps: t-SNE and the bottleneck")
    maps = _maps(data, models["bottleneck"], config, out, log)
    _save(_loss_curves_figure(dae, models["bottleneck"]), out, FIGURES["loss_curves"])
    return {"classifiers": classifiers, "denoising": denoising, "maps": maps}


@contextmanager
def limited_threads(n_threads):
    """Limit torch, BLAS and OpenMP to ``n_threads`` inside; None leaves them."""
    if n_threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads):
            yield
    finally:
        torch.set_num_threads(before)


def prepare_out(out):
    """Create the output folder and check that files can be written there."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        # mkdir succeeds on an existing read-only folder: only a real file
        # tells whether the report can be written at the end.
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StudyError(f"cannot write to --out {str(out)!r}: {reason}") from exc
    return out


def _check_matplotlib():
    from denoisenet import plotting

    try:
        plotting._figure_class()
    except ImportError as exc:
        raise StudyError(f"the study draws figures: {exc}") from exc


def _settings(config):
    settings = asdict(config)
    settings["max_iter_used"] = _max_iter(config)
    settings["threads"] = DIGITS_THREADS if config.dataset == "digits" else None
    settings["logistic_regression_max_iter"] = LOGREG_MAX_ITER[config.dataset]
    settings["map_samples"] = MAP_SAMPLES
    settings["trustworthiness_samples"] = TRUSTWORTHINESS_SAMPLES
    settings["n_neighbors"] = N_NEIGHBORS
    return settings


def _versions():
    import matplotlib

    return {
        "denoisenet": denoisenet.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "torch": torch.__version__,
        "matplotlib": matplotlib.__version__,
    }


def _max_iter(config):
    """Epochs of the MLPs and denoisenet's estimators; None keeps defaults."""
    if config.max_iter is not None:
        return config.max_iter
    return DIGITS_MAX_ITER if config.dataset == "digits" else None


# -- data ------------------------------------------------------------------


def load_data(config):
    """The training and test sets of ``config.dataset``, pixels in [0, 1]."""
    if config.dataset == "digits":
        X_train, X_test, y_train, y_test = _load_digits(config.seed)
        image_shape, names = (8, 8), tuple(str(d) for d in range(10))
    else:
        X_train, y_train, X_test, y_test = _load_idx_dataset(config)
        image_shape = (28, 28)
        names = (
            FASHION_MNIST_CLASSES
            if config.dataset == "fashion-mnist"
            else tuple(str(d) for d in range(10))
        )
    n_available = len(X_train)
    if config.n_train is not None and config.n_train < n_available:
        n_classes = len(np.unique(y_train))
        if config.n_train < n_classes:
            raise StudyError(
                f"--n-train {config.n_train} is smaller than the number of "
                f"classes ({n_classes}); the classifiers need every class"
            )
        rows = stratified_sample(y_train, config.n_train, config.seed)
        X_train, y_train = X_train[rows], y_train[rows]
    return StudyData(X_train, y_train, X_test, y_test, image_shape, names, n_available)


def _load_digits(seed):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    # Pixels are 0..16; the noise and the auto-encoder expect [0, 1].
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)


def _load_idx_dataset(config):
    from denoisenet import datasets

    loader = {
        "mnist": datasets.load_mnist,
        "fashion-mnist": datasets.load_fashion_mnist,
    }[config.dataset]
    try:
        with warnings.catch_warnings():
            # fetch_openml warns before each retry of a failed download; the
            # error that follows says it all, on one line.
            warnings.filterwarnings(
                "ignore", message="A network error occurred", category=UserWarning
            )
            X_train, y_train = loader("train", data_home=config.data_home)
            X_test, y_test = loader("test", data_home=config.data_home)
    # The loaders raise FileNotFoundError for missing data (also when the
    # download fails) and ValueError for damaged files.
    except (OSError, ValueError) as exc:
        raise StudyError(f"cannot load {config.dataset}: {one_line(str(exc))}") from exc
    return X_train, y_train, X_test, y_test


def stratified_sample(y, n, seed):
    """Indices of ``n`` rows with the class proportions of ``y``, shuffled."""
    rng = np.random.default_rng(seed)
    _, y_index = np.unique(y, return_inverse=True)
    counts = np.bincount(y_index)
    quota = counts * (n / len(y))
    take = np.floor(quota).astype(int)
    # Largest remainders first, so that the sample has exactly n rows.
    order = np.argsort(take - quota, kind="stable")
    take[order[: n - take.sum()]] += 1
    rows = [
        rng.permutation(np.flatnonzero(y_index == k))[:t] for k, t in enumerate(take)
    ]
    return rng.permutation(np.concatenate(rows))


def _data_summary(data, config):
    return {
        "dataset": config.dataset,
        "n_train": len(data.X_train),
        "n_train_available": data.n_train_available,
        "n_test": len(data.X_test),
        "n_features": int(data.X_train.shape[1]),
        "image_shape": list(data.image_shape),
        "n_classes": len(np.unique(data.y_train)),
        "class_names": list(data.class_names),
    }


# -- step 1: baselines -----------------------------------------------------


class _ConvergenceWatch:
    """Keep ConvergenceWarning quiet inside, and record whether one came.

    Other warnings are passed on when the block ends.
    """

    def __enter__(self):
        self._catcher = warnings.catch_warnings(record=True)
        self._caught = self._catcher.__enter__()
        warnings.simplefilter("always", ConvergenceWarning)
        self.converged = True
        return self

    def __exit__(self, *exc_info):
        self._catcher.__exit__(*exc_info)
        for caught in self._caught:
            if issubclass(caught.category, ConvergenceWarning):
                self.converged = False
            else:
                warnings.warn_explicit(
                    caught.message, caught.category, caught.filename, caught.lineno
                )
        return False


def _fit(estimator, X, y=None):
    """Fit ``estimator``; return (seconds, converged)."""
    with _ConvergenceWatch() as watch:
        start = time.perf_counter()
        estimator.fit(X, y)
        seconds = time.perf_counter() - start
    return seconds, watch.converged


def _baselines(data, config, log):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    max_iter = _max_iter(config)
    epochs = {} if max_iter is None else {"max_iter": max_iter}
    # REFERENCE.md's epochs for the two MLPs on the MNIST-sized sets: their
    # default of 200 would take most of the study's time for a few tenths
    # of a point.
    shallow = epochs or {"max_iter": MLP_MAX_ITER[0]}
    deep = epochs or {"max_iter": MLP_MAX_ITER[1]}
    seed = config.seed
    logreg_iter = LOGREG_MAX_ITER[config.dataset]
    models = {
        f"LogisticRegression(max_iter={logreg_iter})": LogisticRegression(
            max_iter=logreg_iter
        ),
        "MLPClassifier()": MLPClassifier(random_state=seed, **shallow),
        "MLPClassifier((500, 200, 50))": MLPClassifier(
            (500, 200, 50), random_state=seed, **deep
        ),
        _bottleneck_name(config): BottleneckClassifier(
            architecture=config.architecture, random_state=seed, **epochs
        ),
    }
    records = [_fit_and_score(name, model, data, log) for name, model in models.items()]
    fitted = list(models.values())
    return records, {"mlp": fitted[1], "bottleneck": fitted[3]}


def _bottleneck_name(config):
    if config.architecture == "dense":
        return "BottleneckClassifier()"
    return f"BottleneckClassifier(architecture={config.architecture!r})"


def _fit_and_score(name, estimator, data, log):
    seconds, converged = _fit(estimator, data.X_train, data.y_train)
    record = {
        "model": name,
        "accuracy": float(estimator.score(data.X_test, data.y_test)),
        "fit_time_s": seconds,
        "n_iter": int(np.max(estimator.n_iter_)),
        "max_iter": int(estimator.get_params()["max_iter"]),
        "converged": converged,
    }
    log(
        f"[1/4] {name}: test accuracy {_pct(record['accuracy'])}, "
        f"fit {_sec(seconds)}, {record['n_iter']} iterations"
        + ("" if converged else " (not converged)")
    )
    return record


# -- step 2: noise and denoising -------------------------------------------


def _denoising(data, classifier, config, out, log):
    noise = GaussianPixelNoise(config.noise_std, random_state=config.seed)
    X_noisy = noise.fit_transform(data.X_test)
    dae = DenoisingAutoencoder(
        noise=config.noise_std,
        architecture=config.architecture,
        random_state=config.seed,
    )
    if _max_iter(config) is not None:
        dae.set_params(max_iter=_max_iter(config))
    seconds, converged = _fit(dae, data.X_train)
    X_denoised = dae.transform(X_noisy)
    score = classifier.score
    record = {
        "noise_std": config.noise_std,
        "classifier": "MLPClassifier()",
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
        f"[2/4] DenoisingAutoencoder: fit {_sec(seconds)}; MLPClassifier() on "
        f"clean {_pct(record['accuracy_clean'])}, noisy "
        f"{_pct(record['accuracy_noisy'])}, denoised "
        f"{_pct(record['accuracy_denoised'])}; MSE noisy "
        f"{_mse(record['mse_noisy'])}, denoised {_mse(record['mse_denoised'])}"
    )
    figure = _denoising_figure(data, X_noisy, X_denoised, config.noise_std)
    _save(figure, out, FIGURES["denoising"])
    return record, dae


def _mse_between(X, X_clean):
    return float(np.mean((np.asarray(X, np.float64) - X_clean) ** 2))


# -- step 3: 2-D maps --------------------------------------------------------


def _maps(data, bottleneck, config, out, log):
    from sklearn.manifold import TSNE

    X, y = data.X_test, data.y_test
    if len(X) > MAP_SAMPLES:
        rows = stratified_sample(y, MAP_SAMPLES, config.seed)
    else:
        rows = np.random.default_rng(config.seed).permutation(len(X))
    # Shuffled, so that the first TRUSTWORTHINESS_SAMPLES are a fair sample.
    X, y = X[rows], y[rows]
    start = time.perf_counter()
    Z_tsne = TSNE(random_state=config.seed).fit_transform(X)
    tsne_seconds = time.perf_counter() - start
    start = time.perf_counter()
    Z_bottleneck = bottleneck.transform(X)
    bottleneck_seconds = time.perf_counter() - start
    records = [
        _map_record("t-SNE", "TSNE()", X, Z_tsne, y, tsne_seconds),
        _map_record(
            "bottleneck",
            f"{_bottleneck_name(config)}.transform (trained in step 1)",
            X,
            Z_bottleneck,
            y,
            bottleneck_seconds,
        ),
    ]
    for record in records:
        log(
            f"[3/4] {record['map']}: trustworthiness "
            f"{_tw(record['trustworthiness'])}, kNN accuracy in 2-D "
            f"{_pct(record['knn_accuracy'])}, {_sec(record['time_s'])}"
        )
    _save(_maps_figure(Z_tsne, Z_bottleneck, y, data), out, FIGURES["maps"])
    return records


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


def _blog_rows(results, dataset):
    rows = []
    for what, blog, path in BLOG_FIGURES:
        value = results
        for key in path:
            value = value[key]
        rows.append({"what": what, "blog_mnist": blog, "measured": value})
    return {"dataset": dataset, "comparable": dataset == "mnist", "rows": rows}


# -- figures -----------------------------------------------------------------


def _save(figure, out, name):
    try:
        figure.savefig(out / name, dpi=100)
    except OSError as exc:
        raise StudyError(f"cannot write {out / name}: {exc.strerror or exc}") from exc


def _samples_figure(data, per_class=8):
    from denoisenet.plotting import plot_digits

    classes = np.unique(data.y_train)
    rows = [np.flatnonzero(data.y_train == c)[:per_class] for c in classes]
    if min(len(r) for r in rows) < per_class:
        # Too few images of some class for a row each: the first ones.
        shown = np.arange(min(len(data.X_train), 40))
        titles = [data.class_names[k] for k in data.y_train[shown]]
        return plot_digits(
            data.X_train[shown],
            n_cols=10,
            image_shape=data.image_shape,
            titles=titles,
        )
    figure = plot_digits(
        data.X_train[np.concatenate(rows)],
        n_rows=len(classes),
        n_cols=per_class,
        image_shape=data.image_shape,
        row_labels=[data.class_names[c] for c in classes],
    )
    figure.suptitle("Training images, one row per class")
    return figure


def _denoising_figure(data, X_noisy, X_denoised, std, n=10):
    from denoisenet.plotting import plot_digits

    n = min(n, len(data.X_test))
    figure = plot_digits(
        np.concatenate([data.X_test[:n], X_noisy[:n], X_denoised[:n]]),
        n_rows=3,
        n_cols=n,
        image_shape=data.image_shape,
        row_labels=["clean", f"noisy (std {std:g})", "denoised"],
    )
    figure.suptitle("Test images: clean, with Gaussian noise, and denoised")
    return figure


def _maps_figure(Z_tsne, Z_bottleneck, y, data):
    from denoisenet.plotting import _figure_class, plot_embedding

    figure = _figure_class()(figsize=(13, 5.5), layout="constrained")
    left, right = figure.subplots(1, 2)
    names = [data.class_names[c] for c in np.unique(y)]
    plot_embedding(Z_tsne, y, ax=left, title="t-SNE", class_names=names)
    plot_embedding(
        Z_bottleneck, y, ax=right, title="BottleneckClassifier", class_names=names
    )
    figure.suptitle(f"2-D maps of {len(y):,} test images")
    return figure


def _loss_curves_figure(dae, bottleneck):
    from denoisenet.plotting import _figure_class, plot_loss_curve

    figure = _figure_class()(figsize=(11, 4), layout="constrained")
    left, right = figure.subplots(1, 2)
    plot_loss_curve(dae, ax=left, label="DenoisingAutoencoder")
    left.set_ylabel("training loss (mean squared error)")
    left.set_title("Denoising auto-encoder")
    plot_loss_curve(bottleneck, ax=right, label="BottleneckClassifier")
    right.set_ylabel("training loss (cross-entropy)")
    right.set_title("Bottleneck classifier")
    return figure


# -- the report ----------------------------------------------------------------


def _pct(x):
    return f"{100 * x:.1f}%"


def _sec(x):
    return f"{x:.2f} s"


def _mse(x):
    return f"{x:.4f}"


def _tw(x):
    return f"{x:.3f}"


def _int(n):
    return f"{n:,}"


def one_line(text):
    """Fold a multi-line message (a loader's, with its advice) into one line."""
    parts = []
    for line in str(text).splitlines():
        line = line.strip()
        line = line[2:] if line.startswith("- ") else line
        if line:
            parts.append(line)
    if not parts:
        return ""
    folded = parts[0]
    for before, part in itertools.pairwise(parts):
        folded += (" " if before.endswith((":", ".")) else "; ") + part
    return folded


def _yes_no(flag):
    return "yes" if flag else "no"


def report_blocks(results):
    """The report as a list of blocks that both renderers understand.

    A block is ``("h1" | "h2" | "p" | "note", text)``,
    ``("table", header, rows)`` or ``("figure", file name, caption)``.
    """
    d, total = results["data"], results["total_time_s"]
    height, width = d["image_shape"]
    blocks = [
        ("h1", f"denoisenet study: {d['dataset']}"),
        (
            "p",
            f"{_int(d['n_train'])} training images (of {_int(d['n_train_available'])}"
            f" available) and {_int(d['n_test'])} test images of {height}x{width} "
            f"pixels in {d['n_classes']} classes. The study took {_sec(total)}, "
            "from loading the data to writing this report.",
        ),
    ]
    for section in (_baseline_blocks, _denoising_blocks, _map_blocks, _blog_blocks):
        blocks += section(results)
    blocks += [
        ("h2", "Training curves"),
        ("figure", FIGURES["loss_curves"], "Training loss per epoch"),
    ]
    return blocks + _settings_blocks(results)


def _baseline_blocks(results):
    rows = [
        [
            r["model"],
            _pct(r["accuracy"]),
            _sec(r["fit_time_s"]),
            str(r["n_iter"]),
            str(r["max_iter"]),
            _yes_no(r["converged"]),
        ]
        for r in results["classifiers"]
    ]
    header = ["model", "test accuracy", "fit time", "iterations", "max_iter"]
    return [
        ("h2", "1. Baselines"),
        ("figure", FIGURES["samples"], "Training images"),
        ("table", [*header, "converged"], rows),
    ]


def _denoising_blocks(results):
    r = results["denoising"]
    noisy = f"noisy (Gaussian, std {r['noise_std']:g}, clipped to [0, 1])"
    rows = [
        ["clean", _pct(r["accuracy_clean"]), "0"],
        [noisy, _pct(r["accuracy_noisy"]), _mse(r["mse_noisy"])],
        ["denoised", _pct(r["accuracy_denoised"]), _mse(r["mse_denoised"])],
    ]
    header = [
        "test images",
        f"accuracy of {r['classifier']} trained on clean images",
        "mean squared error against the clean images",
    ]
    return [
        ("h2", "2. Noise and denoising"),
        ("figure", FIGURES["denoising"], "Clean, noisy and denoised test images"),
        ("table", header, rows),
        (
            "p",
            f"DenoisingAutoencoder(noise={r['noise_std']:g}"
            + (
                ""
                if r.get("architecture", "dense") == "dense"
                else f", architecture={r['architecture']!r}"
            )
            + "), trained on the clean "
            f"training images: fit {_sec(r['dae_fit_time_s'])}, {r['dae_n_iter']} "
            f"epochs of at most {r['dae_max_iter']}, converged: "
            f"{_yes_no(r['dae_converged'])}.",
        ),
    ]


def _map_blocks(results):
    rows = [
        [
            f"{r['map']}: {r['method']}",
            _int(r["n_samples"]),
            _tw(r["trustworthiness"]),
            _pct(r["knn_accuracy"]),
            _sec(r["time_s"]),
        ]
        for r in results["maps"]
    ]
    first = results["maps"][0]
    header = ["map", "points", "trustworthiness", "kNN accuracy in 2-D", "time"]
    return [
        ("h2", "3. Two-dimensional maps"),
        ("figure", FIGURES["maps"], "t-SNE and the bottleneck, coloured by class"),
        ("table", header, rows),
        (
            "p",
            f"Trustworthiness with {results['settings']['n_neighbors']} neighbours "
            f"on the first {_int(first['trustworthiness_samples'])} points; kNN "
            f"accuracy: 5-fold cross-validated KNeighborsClassifier("
            f"{results['settings']['n_neighbors']}) in the 2-D map. The "
            "bottleneck's time is its transform only: it was trained in step 1.",
        ),
    ]


def _blog_blocks(results):
    blog = results["blog"]
    if blog["comparable"]:
        note = "The blog's figures are for MNIST, as is this run."
    else:
        note = (
            f"The blog's figures are for MNIST; this run is on {blog['dataset']}, "
            "so they are shown for reference only and are not comparable."
        )
    rows = [[r["what"], r["blog_mnist"], _pct(r["measured"])] for r in blog["rows"]]
    header = ["what", "the blog (MNIST)", f"measured here ({blog['dataset']})"]
    return [
        ("h2", "4. Against the blog"),
        ("note", note),
        ("table", header, rows),
    ]


_NONE_MEANS = {
    "data_home": "not given",
    "n_train": "all",
    "max_iter": "not given",
    "max_iter_used": "denoisenet's defaults; 50 and 20 for the two MLPs",
    "threads": "the libraries' defaults",
}


def _settings_blocks(results):
    rows = [
        [key, _NONE_MEANS.get(key, "None") if value is None else str(value)]
        for key, value in results["settings"].items()
    ]
    rows += [[name, str(version)] for name, version in results["versions"].items()]
    return [("h2", "Settings and versions"), ("table", ["setting", "value"], rows)]


def render_markdown(blocks):
    """The report as Markdown."""
    lines = []
    for kind, *content in blocks:
        if kind == "h1":
            lines += [f"# {content[0]}", ""]
        elif kind == "h2":
            lines += [f"## {content[0]}", ""]
        elif kind == "p":
            lines += [content[0], ""]
        elif kind == "note":
            lines += [f"> **Note:** {content[0]}", ""]
        elif kind == "figure":
            lines += [f"![{content[1]}]({content[0]})", ""]
        elif kind == "table":
            header, rows = content
            lines += [_md_row(header), "|" + "---|" * len(header)]
            lines += [_md_row(cells) for cells in rows] + [""]
    return "\n".join(lines)


def _md_row(cells):
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 64rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.7rem; text-align: left; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; }
img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9rem; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5rem 1rem; }
"""

_NUMBER = re.compile(r"^[~<>]?[\d.,]+( s|%)?$")


def render_html(blocks, out):
    """The report as one self-contained HTML page; figures are read from ``out``."""
    esc = html.escape
    body = []
    for kind, *content in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{esc(content[0])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{esc(content[0])}</p>")
        elif kind == "note":
            body.append(f'<p class="note"><strong>Note:</strong> {esc(content[0])}</p>')
        elif kind == "figure":
            data = base64.b64encode((Path(out) / content[0]).read_bytes()).decode()
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" '
                f'alt="{esc(content[1])}"><figcaption>{esc(content[1])}'
                "</figcaption></figure>"
            )
        elif kind == "table":
            body.append(_html_table(*content))
    title = esc(blocks[0][1])
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _html_table(header, rows):
    esc = html.escape
    head = "".join(f"<th>{esc(cell)}</th>" for cell in header)
    lines = [f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>"]
    for cells in rows:
        tds = "".join(
            f'<td class="num">{esc(c)}</td>'
            if _NUMBER.match(c)
            else f"<td>{esc(c)}</td>"
            for c in cells
        )
        lines.append(f"<tr>{tds}</tr>")
    return "\n".join([*lines, "</tbody>\n</table>"])


def write_reports(results, out):
    """Write results.json, report.md and report.html into ``out``."""
    blocks = report_blocks(results)
    files = {
        "results.json": json.dumps(results, indent=2) + "\n",
        "report.md": render_markdown(blocks),
        "report.html": render_html(blocks, out),
    }
    for name, text in files.items():
        try:
            (Path(out) / name).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise StudyError(
                f"cannot write {Path(out) / name}: {exc.strerror or exc}"
            ) from exc
