"""Fixtures shared by the test modules."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits


@pytest.fixture
def interrupt_call(monkeypatch):
    """``interrupt_call(name, n)`` makes the n-th call of
    ``denoisenet._training.<name>`` raise KeyboardInterrupt; it returns the
    list that counts the calls."""
    import denoisenet._training

    def install(name, n):
        original = getattr(denoisenet._training, name)
        calls = []

        def interrupted(*args, **kwargs):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return original(*args, **kwargs)

        monkeypatch.setattr(denoisenet._training, name, interrupted)
        return calls

    return install


@pytest.fixture
def interrupt_epoch(interrupt_call):
    """``interrupt_epoch(n)`` makes the n-th call of run_epoch raise
    KeyboardInterrupt; it returns the list that counts the calls."""
    return lambda n: interrupt_call("run_epoch", n)


@pytest.fixture
def deny_folder(monkeypatch):
    """``deny_folder(path)`` makes ``path`` and what lies in it unreadable,
    as chmod 000 would for a user who is not root (tests may run as root,
    whom permissions do not stop): ``os.stat`` and ``os.lstat`` raise
    PermissionError there."""
    import errno
    import os

    def deny(folder):
        folder = str(folder)

        def guarded(real):
            def call(path, *args, **kwargs):
                name = os.fspath(path)
                if name == folder or name.startswith(folder + os.sep):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
                return real(path, *args, **kwargs)

            return call

        for name in ("stat", "lstat"):
            monkeypatch.setattr(os, name, guarded(getattr(os, name)))

    return deny


@pytest.fixture(autouse=True)
def _fresh_load_reading(monkeypatch):
    """Every test reads the machine's load afresh: ``n_threads='auto'``
    keeps a reading for a quarter of a second, and tests replace the
    reader (``_busy_cpus``) with their own."""
    import denoisenet._base

    monkeypatch.setattr(denoisenet._base, "_busy_reading", (-float("inf"), 0))


@pytest.fixture(scope="session")
def _digits_data():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X.flags.writeable = False
    y.flags.writeable = False
    return X, y


@pytest.fixture
def digits(_digits_data):
    """All 1797 digits scaled to [0, 1] (float64) and their labels."""
    X, y = _digits_data
    return X.copy(), y.copy()


@pytest.fixture
def small_digits(_digits_data):
    """The first 200 digits (every class present), scaled to [0, 1]."""
    X, y = _digits_data
    return X[:200].copy(), y[:200].copy()


def fitted_attributes(estimator):
    """Names of the learned attributes (ending in ``_``) of ``estimator``."""
    return sorted(
        name
        for name in vars(estimator)
        if name.endswith("_") and not name.startswith("__")
    )


def state_dicts_equal(a, b):
    """True when two modules' state dicts hold bit-identical tensors."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def global_random_state():
    """numpy's and torch's global random state, as comparable values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return (name, keys.copy(), pos, has_gauss, cached), torch.random.get_rng_state()


def assert_same_global_random_state(before, after):
    (np_before, torch_before), (np_after, torch_after) = before, after
    assert np_before[0] == np_after[0]
    np.testing.assert_array_equal(np_before[1], np_after[1])
    assert np_before[2:] == np_after[2:]
    assert torch.equal(torch_before, torch_after)


@pytest.fixture(scope="session")
def helpers():
    """The assertion helpers above, for test modules (conftest is no module
    to import from)."""
    return SimpleNamespace(
        fitted_attributes=fitted_attributes,
        state_dicts_equal=state_dicts_equal,
        global_random_state=global_random_state,
        assert_same_global_random_state=assert_same_global_random_state,
    )


# -- the denoisenet command ----------------------------------------------------

# Fewer map points than digits' 450 test images, so that the sampling path
# runs and t-SNE stays quick.
SMALL_MAPS = {"MAP_SAMPLES": 200, "TRUSTWORTHINESS_SAMPLES": 150}


def run_cli(argv, **patches):
    """Run ``denoisenet.cli.main(argv)`` in this process, with the study's
    experiment constants patched (``SMALL_MAPS`` and ``patches``); return
    (exit status, stdout, stderr)."""
    import contextlib
    import io

    from denoisenet.cli import main
    from denoisenet.study import experiments

    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        pytest.MonkeyPatch.context() as mp,
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        for name, value in {**SMALL_MAPS, **patches}.items():
            mp.setattr(experiments, name, value)
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code
    return status, stdout.getvalue(), stderr.getvalue()


def assert_one_line(stderr, *words, start="denoisenet: error: "):
    """stderr is one line, no traceback, starting with ``start`` and
    containing every one of ``words``."""
    assert "Traceback" not in stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith(start), stderr
    for word in words:
        assert word in stderr, (word, stderr)


def assert_error(status, stderr, *words):
    """The command failed with status 1 and one line of error."""
    assert status == 1, (status, stderr)
    assert_one_line(stderr, *words)


@pytest.fixture(scope="session")
def study_cli():
    """``run(argv, **patches)`` runs the command; ``assert_error(status,
    stderr, *words)`` and ``assert_one_line(stderr, *words, start=...)``
    check its one-line messages."""
    return SimpleNamespace(
        run=run_cli, assert_error=assert_error, assert_one_line=assert_one_line
    )
