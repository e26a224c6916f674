"""The study's data: loading a data set, sampling it, summarising it.

:func:`load_data` returns the training and test images of digits (bundled
with scikit-learn), MNIST or Fashion-MNIST, flattened with pixels in
[0, 1], and where each was read from; it takes the stratified sample that
``--n-train`` asks for. MNIST and Fashion-MNIST come from local IDX files,
or from OpenML only with ``--download``. Loader errors become one-line
:class:`StudyError` messages that name the command's flags.
"""

import itertools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from denoisenet import datasets
from denoisenet.datasets import FASHION_MNIST_CLASSES
from denoisenet.study.config import StudyError

_ALL_FILES = ", ".join(
    f"{name}.gz" for part in ("train", "test") for name in datasets._SUBSET_FILES[part]
)


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
    sources: dict


def load_data(config):
    """The training and test sets of ``config.dataset``, pixels in [0, 1]."""
    sources = {}
    if config.dataset == "digits":
        X_train, X_test, y_train, y_test = _load_digits(config.seed)
        image_shape, names = (8, 8), tuple(str(d) for d in range(10))
        source = "scikit-learn's bundled digits (sklearn.datasets.load_digits)"
        if config.data_home is not None:
            source += "; --data-home is not used for digits"
        sources.update(train=source, test=source)
    else:
        (X_train, y_train), sources["train"] = _load_idx_subset(config, "train")
        (X_test, y_test), sources["test"] = _load_idx_subset(config, "test")
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
    return StudyData(
        X_train, y_train, X_test, y_test, image_shape, names, n_available, sources
    )


def _load_digits(seed):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    # Pixels are 0..16; the noise and the auto-encoder expect [0, 1].
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)


def _spec(config):
    return {"mnist": datasets._MNIST, "fashion-mnist": datasets._FASHION_MNIST}[
        config.dataset
    ]


def _local_files(config, subset):
    """(folders searched, the (images, labels) paths found there or None).

    All four files are looked for, whichever subset is asked for, so that the
    training and test sets come from one folder: a folder with only some of
    them is an error (FileNotFoundError), not completed from another.
    """
    spec = _spec(config)
    searched = datasets._search_dirs(spec, config.data_home)
    parts = datasets._SUBSET_PARTS["all"]
    for folder in searched:
        found = datasets._find_files(folder, parts)
        if found is not None:
            return searched, found[parts.index(subset)]
    return searched, None


def _load_idx_subset(config, subset):
    """One subset of mnist or fashion-mnist, and where it was read from.

    The study finds the local files itself and hands the loader their
    folder, so that the report names the files that were actually read;
    OpenML is tried only with ``--download``.
    """
    loader = {
        "mnist": datasets.load_mnist,
        "fashion-mnist": datasets.load_fashion_mnist,
    }[config.dataset]
    try:
        searched, found = _local_files(config, subset)
    # Some of the files but not all, or a folder that cannot be searched.
    except OSError as exc:
        raise StudyError(f"cannot load {config.dataset}: {one_line(exc)}") from exc
    if found is None and not config.download:
        raise StudyError(_not_found(config, subset, searched))
    home = found[0].parent if found is not None else config.data_home
    try:
        with warnings.catch_warnings():
            # fetch_openml warns before each retry of a failed download; the
            # error that follows says it all, on one line.
            warnings.filterwarnings(
                "ignore", message="A network error occurred", category=UserWarning
            )
            X, y = loader(subset, data_home=home, download=found is None)
    except FileNotFoundError as exc:
        if found is not None:
            raise StudyError(f"cannot load {config.dataset}: {one_line(exc)}") from exc
        raise StudyError(_download_failed(config, searched, exc)) from exc
    # Damaged files and data.
    except (OSError, ValueError) as exc:
        raise StudyError(f"cannot load {config.dataset}: {one_line(exc)}") from exc
    if found is None:
        return (X, y), _openml_source(config)
    images, labels = found
    return (X, y), f"{images.name} and {labels.name} in {images.parent}"


def _openml_source(config):
    # Where fetch_openml keeps its cache: data_home, else scikit-learn's
    # default (SCIKIT_LEARN_DATA or ~/scikit_learn_data).
    home = config.data_home or os.environ.get(
        "SCIKIT_LEARN_DATA", os.path.join("~", "scikit_learn_data")
    )
    cache = Path(os.path.expanduser(home)) / "openml"
    return f"OpenML's {_spec(config).openml_name!r}, cached in {cache}"


def _looked_in(searched):
    if not searched:
        return "no folder (no --data-home was given)"
    return ", ".join(str(folder) for folder in searched)


def _not_found(config, subset, searched):
    spec = _spec(config)
    names = datasets._SUBSET_FILES[subset]
    debian = (
        "install Debian's package dataset-fashion-mnist, "
        if config.dataset == "fashion-mnist"
        else ""
    )
    return (
        f"cannot load {config.dataset}: {spec.title} {subset} files not found; "
        f"looked for {' and '.join(names)} (plain or .gz) in "
        f"{_looked_in(searched)}. To get them: {debian}put the four IDX files "
        f"({_ALL_FILES}) into a folder and pass it as --data-home, or add "
        f"--download to fetch {spec.openml_name!r} from OpenML (needs internet "
        "access)"
    )


def _download_failed(config, searched, exc):
    spec = _spec(config)
    cause = exc.__cause__ or exc
    if datasets._cache_not_written(cause):
        # OpenML's cache folder or file could not be written (a read-only
        # HOME, a full disk): no network problem, and a retry fails the same.
        return (
            f"cannot load {config.dataset}: no IDX files in "
            f"{_looked_in(searched)}, and OpenML's cache could not be written "
            f"({one_line(cause)}). Pass --data-home a folder you can write to, "
            f"or put the four IDX files ({_ALL_FILES}) into a folder and pass "
            "it as --data-home"
        )
    return (
        f"cannot load {config.dataset}: no IDX files in {_looked_in(searched)}, "
        f"and the download of {spec.openml_name!r} from OpenML failed "
        f"({one_line(cause)}). Retry on a machine with internet access, or put "
        f"the four IDX files ({_ALL_FILES}) into a folder and pass it as "
        "--data-home"
    )


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


def data_summary(data, config):
    """What ``results["data"]`` says about the data the study ran on."""
    return {
        "dataset": config.dataset,
        "n_train": len(data.X_train),
        "n_train_available": data.n_train_available,
        "n_test": len(data.X_test),
        "n_features": int(data.X_train.shape[1]),
        "image_shape": list(data.image_shape),
        "n_classes": len(np.unique(data.y_train)),
        "class_names": list(data.class_names),
        "sources": dict(data.sources),
    }


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
