"""The study's experiments: Ctrl-C during a fit stops the study.

The estimators keep their last epoch on Ctrl-C and warn (right for a library
call); the study must not go on and report a run that did not happen.
"""

import os
import warnings

import pytest
from sklearn.base import BaseEstimator

from denoisenet import BottleneckClassifier
from denoisenet.study import experiments

ARGV = ["study", "--n-train", "60", "--max-iter", "3", "--quiet"]


def assert_interrupted(status, stdout, stderr, study_cli, *words):
    assert status == 130, stderr
    assert stdout == ""
    study_cli.assert_one_line(
        stderr, "no report was written", *words, start="denoisenet: interrupted"
    )


@pytest.mark.parametrize(
    "epoch, estimator",
    # The first network the study trains is the bottleneck (its 3 epochs),
    # then the auto-encoder (3 more), then, in the map step, the bottleneck
    # without its neighbour term.
    [
        (2, "BottleneckClassifier"),
        (5, "DenoisingAutoencoder"),
        (8, "BottleneckClassifier"),
    ],
)
def test_ctrl_c_in_a_fit_stops_the_study(
    tmp_path, study_cli, interrupt_epoch, epoch, estimator
):
    calls = interrupt_epoch(epoch)
    out = tmp_path / "out"
    # The loop's own warning must not reach the user either: one line only.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, stdout, stderr = study_cli.run([*ARGV, "--out", str(out)])
    assert len(calls) == epoch  # stopped at once: no further epoch, no fit
    assert_interrupted(status, stdout, stderr, study_cli, f"while {estimator}")
    assert [str(w.message) for w in caught] == []
    assert not out.exists()


def test_ctrl_c_in_a_fit_leaves_an_existing_folder_empty(
    tmp_path, study_cli, interrupt_epoch
):
    interrupt_epoch(2)
    status, stdout, stderr = study_cli.run([*ARGV, "--out", str(tmp_path)])
    assert_interrupted(status, stdout, stderr, study_cli, "nothing in")
    assert os.listdir(tmp_path) == []


def test_an_estimator_that_records_the_interrupt_stops_the_study(
    tmp_path, study_cli, monkeypatch
):
    # Estimators that record the interrupt in `interrupted_` and do not warn.
    original = BottleneckClassifier.fit

    def fit(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.interrupted_ = True
        return self

    monkeypatch.setattr(BottleneckClassifier, "fit", fit)
    status, stdout, stderr = study_cli.run([*ARGV, "--out", str(tmp_path / "o")])
    assert_interrupted(status, stdout, stderr, study_cli, "BottleneckClassifier")
    assert not (tmp_path / "o").exists()


class _Warns(BaseEstimator):
    def __init__(self, message=""):
        self.message = message

    def fit(self, X, y=None):
        warnings.warn(self.message, UserWarning, stacklevel=2)
        self.interrupted_ = False
        return self


@pytest.mark.parametrize(
    "message",
    [
        # denoisenet's training loop
        "Training interrupted by the user after 3 epoch(s); keeping the "
        "weights of the last completed epoch.",
        # scikit-learn's MLPClassifier and MLPRegressor
        "Training interrupted by user.",
    ],
)
def test_fit_turns_a_swallowed_ctrl_c_into_keyboard_interrupt(message):
    with pytest.raises(KeyboardInterrupt, match="_Warns was training"):
        experiments.fit(_Warns(message), [[0.0]])


def test_fit_passes_other_warnings_on():
    with pytest.warns(UserWarning, match="something else"):
        seconds, converged = experiments.fit(_Warns("something else"), [[0.0]])
    assert seconds >= 0 and converged


@pytest.mark.parametrize(
    ("n_test", "message"),
    [
        (30, r"has 30 images \(3 of class 0\)"),
        (40, r"has 40 images \(4 of class 0\)"),
        (9, r"none of class 9"),
    ],
)
def test_a_test_set_too_small_for_the_maps_is_refused_before_any_step(
    n_test, message, monkeypatch, tmp_path
):
    # A data folder of the user's with a few test images failed in t-SNE
    # (perplexity) or the 5-fold kNN score, after every step before it ran.
    import numpy as np

    from denoisenet.study import StudyConfig, run_study
    from denoisenet.study.config import StudyError
    from denoisenet.study.data import StudyData

    y_train = np.arange(100) % 10
    y_test = np.arange(n_test) % 10
    data = StudyData(
        np.zeros((100, 4)),
        y_train,
        np.zeros((n_test, 4)),
        y_test,
        (2, 2),
        tuple(str(d) for d in range(10)),
        100,
        {},
    )
    with pytest.raises(StudyError, match=message):
        experiments.check_test_set(data)

    def no_step(*args, **kwargs):
        raise AssertionError("a step ran")

    monkeypatch.setattr("denoisenet.study.load_data", lambda config: data)
    monkeypatch.setattr(experiments, "baselines", no_step)
    out = tmp_path / "out"
    with pytest.raises(StudyError, match="the 2-D maps need at least 5"):
        run_study(StudyConfig(out=str(out)))
    assert not out.exists()
    # A test set of 5 of every class and 50 in all is enough.
    data.y_test = np.arange(50) % 10
    data.X_test = np.zeros((50, 4))
    experiments.check_test_set(data)
