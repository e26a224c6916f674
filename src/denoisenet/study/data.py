"""The study's data: loading a data set, sampling it, summarising it.

:func:`load_data` returns the training and test images of digits (bundled
with scikit-learn), MNIST or Fashion-MNIST, flattened with pixels in
[0, 1], and takes the stratified sample that ``--n-train`` asks for.
Loader errors become one-line :class:`StudyError` messages.
"""

import itertools
import warnings
from dataclasses import dataclass

import numpy as np

from denoisenet.datasets import FASHION_MNIST_CLASSES
from denoisenet.study.config import StudyError


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
