"""scikit-learn's callback API over the epochs, and Checkpoint."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from denoisenet import BottleneckClassifier, DenoisingAutoencoder, callbacks
from denoisenet.callbacks import Checkpoint

pytestmark = [
    pytest.mark.skipif(
        not callbacks.SUPPORTED, reason="scikit-learn < 1.9 has no sklearn.callback"
    ),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]


class Recorder:
    """A FitCallback that records what it sees and stops after ``stop_after``
    epochs."""

    def __init__(self, stop_after=None, X=None):
        self.stop_after = stop_after
        self.X = X
        self.events = []

    def setup(self, estimator, context):
        self.events.append("setup")

    def teardown(self, estimator, context):
        self.events.append("teardown")

    def on_fit_task_begin(self, estimator, context):
        self.events.append(f"begin {context.task_name}")

    def on_fit_task_end(self, estimator, context, *, fitted_estimator):
        self.events.append(f"end {context.task_name}")
        if context.task_name != "epoch" or fitted_estimator is None:
            return False
        self.losses = list(fitted_estimator.loss_curve_)
        if self.X is not None:
            self.output = fitted_estimator.transform(self.X)
        return len(fitted_estimator.loss_curve_) == self.stop_after


def _dae(**kwargs):
    return DenoisingAutoencoder((16, 4, 16), random_state=0, **kwargs)


def test_a_callback_sees_every_epoch_and_can_stop_training(small_digits):
    X, _ = small_digits
    recorder = Recorder(stop_after=3, X=X)
    dae = _dae(max_iter=50, tol=0).set_callbacks(recorder).fit(X)
    assert dae.n_iter_ == 3
    assert recorder.events == [
        "setup",
        "begin fit",
        *["begin epoch", "end epoch"] * 3,
        "end fit",
        "teardown",
    ]
    # It saw the loss, and a copy of the estimator ready to transform.
    assert recorder.losses == dae.loss_curve_
    np.testing.assert_array_equal(recorder.output, dae.transform(X))


def test_a_callback_stops_partial_fit_after_its_one_epoch(small_digits):
    X, y = small_digits
    recorder = Recorder(X=X)
    clf = BottleneckClassifier((16, 2, 8), random_state=0).set_callbacks(recorder)
    clf.partial_fit(X, y, classes=np.unique(y))
    assert recorder.events.count("end epoch") == 1


def test_teardown_runs_after_a_failed_fit(small_digits):
    X, _ = small_digits
    recorder = Recorder()
    dae = _dae(max_iter=-1).set_callbacks(recorder)
    with pytest.raises(ValueError, match="max_iter"):
        dae.fit(X)
    assert recorder.events[-1] == "teardown"
    assert not hasattr(dae, "_callback_fit_ctx")


def test_scikit_learns_scoring_monitor_scores_every_epoch(small_digits):
    from sklearn.callback import ScoringMonitor

    X, y = small_digits
    monitor = ScoringMonitor(scoring="accuracy")
    clf = BottleneckClassifier((16, 2, 8), max_iter=4, random_state=0)
    clf.set_callbacks(monitor).fit(X, y)
    epochs = [row for row in monitor.get_logs().data if row["task_name"] == "epoch"]
    assert len(epochs) == clf.n_iter_ == 4
    assert epochs[-1]["accuracy"] == clf.score(X, y)


def test_checkpoint_holds_the_best_epoch(small_digits, tmp_path):
    X, _ = small_digits
    path = tmp_path / "best.pt"
    # Whichever epoch is best (test_checkpoint_keeps_an_earlier_best below
    # covers one that is not the last):
    dae = _dae(max_iter=8, tol=0, learning_rate_init=0.05)
    dae.set_callbacks(Checkpoint(path)).fit(X)
    saved = torch.load(path, weights_only=True)
    best_epoch = int(np.argmin(dae.loss_curve_)) + 1
    # The same fit stopped at the best epoch has exactly those weights.
    at_best = _dae(max_iter=best_epoch, tol=0, learning_rate_init=0.05).fit(X)
    expected = at_best.module_.state_dict()
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[k], expected[k]) for k in saved)
    # Written atomically: nothing else is left in the directory.
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]
    # The weights load into the fitted estimator.
    dae.module_.load_state_dict(saved)
    np.testing.assert_array_equal(dae.transform(X), at_best.transform(X))


def test_checkpoint_with_early_stopping_follows_the_validation_score(
    small_digits, tmp_path
):
    path = tmp_path / "best.pt"
    clf = _checkpointed_classifier(small_digits, path)
    # Early stopping restores the best epoch's weights: the checkpoint's.
    _assert_file_holds(path, clf)


def _checkpointed_classifier(data, path):
    """A classifier fitted with early stopping and a Checkpoint at ``path``."""
    clf = BottleneckClassifier(
        (16, 2, 8), max_iter=6, early_stopping=True, random_state=0
    )
    return clf.set_callbacks(Checkpoint(path)).fit(*data)


def _assert_file_holds(path, est):
    saved = torch.load(path, weights_only=True)
    state = est.module_.state_dict()
    assert saved.keys() == state.keys()
    assert all(torch.equal(saved[k], state[k]) for k in state)


def test_checkpoint_never_overwrites_a_file_it_did_not_write(small_digits, tmp_path):
    X, _ = small_digits
    path = tmp_path / "mine.pt"
    path.write_bytes(b"the user's own file")
    dae = _dae(max_iter=2).set_callbacks(Checkpoint(path))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        dae.fit(X)
    assert path.read_bytes() == b"the user's own file"
    with pytest.raises(NotFittedError):
        dae.transform(X)
    # Asked to, it does; and a refit may replace its own file.
    checkpoint = Checkpoint(path, overwrite=True)
    dae.set_callbacks(checkpoint).fit(X)
    assert torch.load(path, weights_only=True).keys() == dae.module_.state_dict().keys()
    checkpoint.overwrite = False
    dae.fit(X)


def test_fit_without_callbacks_is_unchanged(small_digits):
    X, _ = small_digits
    a = _dae(max_iter=3).fit(X)
    b = _dae(max_iter=3).set_callbacks(Recorder()).fit(X)
    state_a, state_b = a.module_.state_dict(), b.module_.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_checkpoint_keeps_an_earlier_best(tmp_path):
    from types import SimpleNamespace

    path = tmp_path / "best.pt"
    checkpoint = Checkpoint(path)
    context = SimpleNamespace(task_name="epoch", root_uuid="run")
    checkpoint.setup(None, context)
    curve = []
    for epoch, loss in enumerate([3.0, 1.0, 2.0, float("nan")]):
        curve.append(loss)
        module = torch.nn.Linear(2, 1)
        torch.nn.init.constant_(module.weight, epoch)
        fitted = SimpleNamespace(
            loss_curve_=list(curve), validation_scores_=None, module_=module
        )
        assert (
            checkpoint.on_fit_task_end(None, context, fitted_estimator=fitted) is False
        )
    checkpoint.teardown(None, context)
    assert torch.load(path, weights_only=True)["weight"].eq(1).all()


def test_progress_bar_propagates_from_a_grid_search(small_digits, capsys):
    pytest.importorskip("rich")
    from sklearn.callback import ProgressBar
    from sklearn.model_selection import GridSearchCV

    X, y = small_digits
    clf = BottleneckClassifier((16, 2, 8), max_iter=2, random_state=0)
    search = GridSearchCV(clf, {"alpha": [1e-4, 1e-3]}, cv=2)
    search.set_callbacks(ProgressBar(max_propagation_depth=None)).fit(X, y)
    assert search.best_estimator_.n_iter_ == 2
    # The bars name the estimator's own tasks, down to its epochs.
    assert "BottleneckClassifier - fit" in capsys.readouterr().out


def test_checkpoint_checks_its_folder_before_the_first_epoch(small_digits, tmp_path):
    X, _ = small_digits
    epochs = Recorder()
    missing = _dae(max_iter=2).set_callbacks(
        Checkpoint(tmp_path / "no" / "a.pt"), epochs
    )
    # The fit failed after its first epoch, naming a temporary file.
    with pytest.raises(FileNotFoundError, match="does not exist"):
        missing.fit(X)
    assert "end epoch" not in epochs.events
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        _dae(max_iter=2).set_callbacks(
            Checkpoint(tmp_path / "folder.pt", overwrite=True)
        ).fit(X)


def test_checkpoint_files_get_the_permissions_of_any_new_file(small_digits, tmp_path):
    import os

    X, _ = small_digits
    previous = os.umask(0o022)
    try:
        _dae(max_iter=2).set_callbacks(Checkpoint(tmp_path / "best.pt")).fit(X)
    finally:
        os.umask(previous)
    # mkstemp made them 0600, whatever the umask.
    assert (tmp_path / "best.pt").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]


def test_checkpoint_never_overwrites_a_file_put_over_its_own(small_digits, tmp_path):
    import pickle

    X, _ = small_digits
    path = tmp_path / "best.pt"
    dae = _dae(max_iter=2).set_callbacks(Checkpoint(path)).fit(X)
    dae.fit(X)  # its own file: replaced
    # The user saves something of their own at that path; a refit, or a
    # copy of the estimator loaded in another session, must not replace it.
    path.write_bytes(b"the user's own file, written later")
    for estimator in (dae, pickle.loads(pickle.dumps(dae))):
        with pytest.raises(FileExistsError, match="overwrite=True"):
            estimator.fit(X)
        assert path.read_bytes() == b"the user's own file, written later"
    path.unlink()
    loaded = pickle.loads(pickle.dumps(dae))
    loaded.fit(X)  # no file there: it writes, and then may replace its own
    loaded.fit(X)


class Raiser(Recorder):
    """Raises ``error`` at the end of epoch ``at`` (or in teardown)."""

    def __init__(self, error, at=None, in_teardown=False):
        super().__init__()
        self.error, self.at, self.in_teardown = error, at, in_teardown

    def teardown(self, estimator, context):
        super().teardown(estimator, context)
        if self.in_teardown:
            raise self.error

    def on_fit_task_end(self, estimator, context, *, fitted_estimator):
        super().on_fit_task_end(estimator, context, fitted_estimator=fitted_estimator)
        if context.task_name == "epoch" and self.events.count("end epoch") == self.at:
            raise self.error
        return False


def test_ctrl_c_in_a_callback_keeps_the_completed_epochs(small_digits):
    # The epoch's task was ended a second time (with no estimator), the
    # callback raised again there, and the whole fit was rolled back.
    X, _ = small_digits
    raiser = Raiser(KeyboardInterrupt, at=2)
    dae = _dae(max_iter=5, tol=0).set_callbacks(raiser)
    with pytest.warns(UserWarning, match="interrupted by the user after 2 epoch"):
        dae.fit(X)
    assert dae.n_iter_ == 2 and dae.interrupted_
    assert raiser.events.count("end epoch") == 2
    assert raiser.events[-2:] == ["end fit", "teardown"]


def test_a_failing_teardown_rolls_the_fit_back(small_digits):
    # fit raised, but kept the new model (and scikit-learn's context).
    X, _ = small_digits
    dae = _dae(max_iter=2).fit(X)
    dae.set_callbacks(Raiser(ValueError("teardown failed"), in_teardown=True))
    names, output = set(vars(dae)), dae.transform(X)
    with pytest.raises(ValueError, match="teardown failed"):
        dae.set_params(max_iter=3).fit(X[:100])
    assert set(vars(dae)) == names
    assert dae.n_iter_ == 2
    np.testing.assert_array_equal(dae.transform(X), output)


class Keeper(Recorder):
    """Keeps every epoch's fitted estimator."""

    def on_fit_task_end(self, estimator, context, *, fitted_estimator):
        if context.task_name == "epoch" and fitted_estimator is not None:
            self.kept = [*getattr(self, "kept", []), fitted_estimator]
        return False


@pytest.mark.parametrize("refit", [False, True])
def test_each_epochs_fitted_estimator_is_a_model_of_its_own(small_digits, refit):
    # It could not be pickled or trained further (no optimizer state), and
    # on a refit it paired the previous fit's network with the new one's
    # arguments (an UnpicklingError when the network changed).
    X, _ = small_digits
    keeper = Keeper()
    dae = _dae(max_iter=3, tol=0)
    if refit:
        dae.fit(X[:, :32])  # another number of features: another network
    dae.set_callbacks(keeper).fit(X)
    assert [est.n_iter_ for est in keeper.kept] == [1, 2, 3]
    last = pickle.loads(pickle.dumps(keeper.kept[-1]))
    np.testing.assert_array_equal(last.transform(X), dae.transform(X))
    assert not last.interrupted_
    # Trained further, it continues from that epoch, Adam's moments included.
    continued = keeper.kept[1].set_callbacks().partial_fit(X)
    twin = _dae(max_iter=2, tol=0).fit(X).partial_fit(X)
    np.testing.assert_array_equal(continued.transform(X), twin.transform(X))


def test_a_fit_from_its_own_callback_is_named(small_digits):
    X, _ = small_digits

    class Refit(Recorder):
        def on_fit_task_end(self, estimator, context, *, fitted_estimator):
            if context.task_name == "epoch":
                estimator.fit(X)
            return False

    dae = _dae(max_iter=2).set_callbacks(Refit())
    with pytest.raises(RuntimeError, match="code that runs during its fit"):
        dae.fit(X)
    assert not hasattr(dae, "n_iter_")


def test_checkpoint_keeps_a_better_model_from_the_call_a_warm_start_continues(
    small_digits, tmp_path
):
    # A continuation (warm_start, partial_fit) goes on with the earlier
    # calls' record: an epoch that is worse than their best must not replace
    # the best model in the file (it did: each call started a best of its own).
    X, y = small_digits
    path = tmp_path / "best.pt"
    clf = _checkpointed_classifier(small_digits, path)
    before = path.read_bytes()
    best = clf.best_validation_score_
    # Far too large a step: the continuation's epochs are all worse.
    clf.set_params(warm_start=True, max_iter=2, learning_rate_init=5.0).fit(X, y)
    assert max(clf.validation_scores_[-2:]) <= best
    assert path.read_bytes() == before
    # Early stopping restored the earlier best: the file and the model agree.
    _assert_file_holds(path, clf)


def test_checkpoint_over_partial_fit_calls_keeps_the_best_call(small_digits, tmp_path):
    X, _ = small_digits
    path = tmp_path / "best.pt"
    dae = _dae().set_callbacks(Checkpoint(path))
    saved = []
    for step in (0.01, 0.01, 5.0, 0.01):
        dae.set_params(learning_rate_init=step).partial_fit(X)
        saved.append(path.read_bytes())
    curve = dae.loss_curve_
    improved = [curve[k] < min(curve[:k]) for k in range(1, len(curve))]
    # The calls hold both cases, or the check below would test only one.
    assert True in improved and False in improved
    for k in range(1, len(curve)):
        assert (saved[k] != saved[k - 1]) == improved[k - 1]
