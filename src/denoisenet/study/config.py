"""The options of ``denoisenet study`` and what they resolve to.

:class:`StudyConfig` holds the command's options as given;
the functions here say what the study runs with when an option is left
out (epochs, threads, LogisticRegression's iterations), so that the
experiments and the report's settings table read them from one place.
:class:`StudyError` is a problem the user can fix and
:class:`StudyInterrupted` a Ctrl-C; the command prints either on one line.
"""

import platform
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import sklearn
import torch

import denoisenet

#: Threads of torch, BLAS and OpenMP during the study on digits. Its
#: matrices are tiny (64 pixels, batches of 33 to 128), so extra threads only add
#: synchronisation, and on a machine shared with other jobs they spin against
#: them. The default study on digits took 34 s with two threads and 22 s with
#: one on two idle cores, and 2 min 36 s against 39 to 55 s on two busy ones.
#: MNIST-sized data keeps the libraries' defaults, where threads pay off.
DIGITS_THREADS = 1

#: Epochs of MLPClassifier() and MLPClassifier((500, 200, 50)) on the
#: MNIST-sized sets when --max-iter is not given, as in REFERENCE.md.
MLP_MAX_ITER = (50, 20)

#: Epochs of the two MLPs on digits: room to converge (scikit-learn's 200
#: cut MLPClassifier() short there; it converges in a few hundred).
DIGITS_MLP_MAX_ITER = 1000

#: lbfgs iterations of LogisticRegression: scikit-learn's default on the
#: MNIST-sized sets, as in REFERENCE.md; digits converges in fewer than
#: 100, but more room costs nothing there.
LOGREG_MAX_ITER = {"digits": 1000, "mnist": 100, "fashion-mnist": 100}


class StudyError(Exception):
    """A problem the user can fix: missing data, an unwritable folder."""


class StudyInterrupted(KeyboardInterrupt):
    """The user stopped the study; the message says what was left behind."""


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
    overwrite: bool = False
    download: bool = False


def max_iter(config):
    """Epochs of the MLPs and denoisenet's estimators; None keeps defaults.

    denoisenet's estimators train until they converge, on the digits as on
    MNIST, so the study sets no epochs of its own.
    """
    return config.max_iter


def threads(config):
    """Threads for the whole study; None keeps the libraries' defaults."""
    return DIGITS_THREADS if config.dataset == "digits" else None


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


def versions():
    """Versions of Python and of the libraries the study's numbers depend on."""
    import matplotlib

    return {
        "denoisenet": denoisenet.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "torch": torch.__version__,
        "matplotlib": matplotlib.__version__,
    }
