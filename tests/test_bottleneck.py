"""Tests for BottleneckClassifier.

scikit-learn's conformance suite runs in test_common.py; these tests cover
what it does not: reproducibility, persistence, failure handling, the
training controls, labels, sample weights, the bottleneck map and model
selection beside scikit-learn's own classifiers.
"""

import copy
import io
import pickle
import re
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.neural_network import MLPClassifier
from sklearn.utils.class_weight import compute_class_weight

import denoisenet._training
import denoisenet.bottleneck
from denoisenet import BottleneckClassifier
from denoisenet._training import NonFiniteLossError

# Most fits below stop at a small max_iter on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def make_clf(**params):
    defaults = {
        "hidden_layer_sizes": (32, 2, 16),
        "max_iter": 5,
        "learning_rate_init": 0.01,
        "random_state": 0,
    }
    return BottleneckClassifier(**{**defaults, **params})


@pytest.fixture
def data():
    """150 samples, 3 classes, 10 features."""
    X, y = make_classification(
        150,
        10,
        n_informative=5,
        n_classes=3,
        n_clusters_per_class=1,
        class_sep=2.0,
        random_state=0,
    )
    return X, y


def spy_on_validation(monkeypatch):
    """Record (score, weights, data, objective) of every validation in fit."""
    original = denoisenet._training._validate
    seen = []

    def validate(module, objective, data):
        score = original(module, objective, data)
        seen.append((score, copy.deepcopy(module.state_dict()), data, objective))
        return score

    monkeypatch.setattr(denoisenet._training, "_validate", validate)
    return seen


# -- reproducibility -----------------------------------------------------------


def test_same_int_seed_gives_bit_identical_fits(data, helpers):
    X, y = data
    a = make_clf(early_stopping=True, max_iter=8).fit(X, y)
    b = make_clf(early_stopping=True, max_iter=8).fit(X, y)
    assert helpers.state_dicts_equal(a.module_, b.module_)
    assert a.loss_curve_ == b.loss_curve_
    assert a.validation_scores_ == b.validation_scores_
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


def test_different_seeds_give_different_weights(data):
    X, y = data
    a = make_clf(random_state=0).fit(X, y)
    b = make_clf(random_state=1).fit(X, y)
    state_a, state_b = a.module_.state_dict(), b.module_.state_dict()
    weights = [k for k in state_a if k.endswith("weight")]
    assert not any(torch.equal(state_a[k], state_b[k]) for k in weights)
    assert not np.allclose(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize("random_state", [0, None])
def test_fit_and_methods_leave_global_random_state_alone(data, helpers, random_state):
    X, y = data
    np.random.seed(12345)  # noqa: NPY002 (the global state is the subject)
    torch.manual_seed(12345)
    before = helpers.global_random_state()
    clf = make_clf(random_state=random_state, early_stopping=True, max_iter=3)
    clf.fit(X, y)
    clf.partial_fit(X, y)
    clf.predict_proba(X)
    clf.transform(X)
    clf.score(X, y)
    helpers.assert_same_global_random_state(before, helpers.global_random_state())


# -- persistence ---------------------------------------------------------------


def test_pickle_and_joblib_round_trips_are_bit_identical(data, helpers, tmp_path):
    X, y = data
    y = np.array(["ant", "bee", "cat"])[y]
    clf = make_clf().fit(X, y)
    path = tmp_path / "clf.joblib"
    joblib.dump(clf, path)
    for restored in (pickle.loads(pickle.dumps(clf)), joblib.load(path)):
        assert helpers.state_dicts_equal(restored.module_, clf.module_)
        np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
        np.testing.assert_array_equal(restored.transform(X), clf.transform(X))
        np.testing.assert_array_equal(restored.predict(X), clf.predict(X))
        np.testing.assert_array_equal(restored.classes_, clf.classes_)


def test_pickled_state_holds_tensors_not_torch_modules(data):
    X, y = data
    clf = make_clf().fit(X, y)
    state = clf.__getstate__()
    assert isinstance(state["module_"], bytes)
    weights = torch.load(io.BytesIO(state["module_"]), weights_only=True)
    for name, tensor in clf.module_.state_dict().items():
        assert torch.equal(weights[name], tensor)
    torch.load(io.BytesIO(state["_optimizer_state"]), weights_only=True)
    pickled = pickle.dumps(clf)
    assert b"torch.nn.modules" not in pickled
    assert b"denoisenet._networks" not in pickled


def test_unpickled_estimator_keeps_working(data):
    X, y = data
    clf = make_clf().fit(X, y)
    restored = pickle.loads(pickle.dumps(clf)).set_params(device="cpu")
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    restored.partial_fit(X, y)
    clf.partial_fit(X, y)
    assert restored.n_iter_ == clf.n_iter_ == 6
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


def test_clone_gives_an_unfitted_estimator_with_the_same_params(data, helpers):
    X, y = data
    clf = make_clf(alpha=0.01, batch_size=32).fit(X, y)
    copy_ = clone(clf)
    assert helpers.fitted_attributes(copy_) == []
    assert copy_.get_params() == clf.get_params()
    np.testing.assert_array_equal(
        copy_.fit(X, y).predict_proba(X), clf.fit(X, y).predict_proba(X)
    )


# -- bad input -----------------------------------------------------------------


def _bad_inputs():
    X, _ = make_classification(20, 10, random_state=0)
    nan, inf = X.copy(), X.copy()
    nan[3, 5] = np.nan
    inf[4, 6] = -np.inf
    return [
        pytest.param(nan, "Input X contains NaN", id="nan"),
        pytest.param(inf, "Input X contains infinity", id="inf"),
        pytest.param(X[:0], "0 sample", id="empty"),
        pytest.param(X[0], "Expected 2D array", id="1d"),
    ]


@pytest.mark.parametrize(("X_bad", "message"), _bad_inputs())
def test_fit_rejects_bad_input(X_bad, message, helpers):
    y = np.arange(len(X_bad)) % 2 if X_bad.ndim == 2 else np.array([0, 1])
    clf = make_clf()
    with pytest.raises(ValueError, match=message):
        clf.fit(X_bad, y)
    assert helpers.fitted_attributes(clf) == []


@pytest.mark.parametrize(("X_bad", "message"), _bad_inputs())
@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "predict_log_proba", "transform"]
)
def test_methods_reject_bad_input(data, X_bad, message, method):
    X, y = data
    clf = make_clf(max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match=message):
        getattr(clf, method)(X_bad)


@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "transform", "score", "partial_fit"]
)
def test_methods_reject_a_different_number_of_features(data, method):
    X, y = data
    clf = make_clf(max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        if method in ("score", "partial_fit"):
            getattr(clf, method)(X[:, :4], y)
        else:
            getattr(clf, method)(X[:, :4])
    assert clf.n_iter_ == 1


INVALID_PARAMS = [
    ("hidden_layer_sizes", 0),
    ("hidden_layer_sizes", ()),
    ("hidden_layer_sizes", (-1,)),
    ("hidden_layer_sizes", "a"),
    ("hidden_layer_sizes", (4, True)),
    ("activation", "foo"),
    ("alpha", -1),
    ("batch_size", 0),
    ("learning_rate_init", 0),
    ("learning_rate_init", -1),
    ("max_iter", 0),
    ("validation_fraction", 0),
    ("validation_fraction", 1),
    ("validation_fraction", 1.5),
    ("n_iter_no_change", 0),
    ("tol", -1),
    ("verbose", -1),
    ("warm_start", "no"),
    ("device", "tpu"),
    ("device", "cuda:x"),
    ("random_state", "seed"),
    ("random_state", 2**32),
]


# -- training noise -------------------------------------------------------------


def test_noise_trains_on_fresh_reproducible_corruption(data):
    X, y = data
    X_before = X.copy()
    noisy = make_clf(noise=0.3, max_iter=3).fit(X, y)
    again = make_clf(noise=0.3, max_iter=3).fit(X, y)
    plain = make_clf(noise=None, max_iter=3).fit(X, y)
    assert np.array_equal(X, X_before)
    assert noisy.loss_curve_ == again.loss_curve_
    assert np.array_equal(noisy.transform(X), again.transform(X))
    # The noise changes what the network sees, so it changes the training.
    assert noisy.loss_curve_ != plain.loss_curve_
    # A different seed draws different noise (and weights).
    other = make_clf(noise=0.3, max_iter=3, random_state=1).fit(X, y)
    assert other.loss_curve_ != noisy.loss_curve_


def test_auto_noise_on_small_fits_and_none_on_large(data, monkeypatch):
    import denoisenet.bottleneck

    X, y = data
    std = denoisenet.bottleneck.AUTO_NOISE_STD
    assert 0 < std < 1
    auto = make_clf(max_iter=3).fit(X, y)
    assert auto.get_params()["noise"] == "auto"
    assert auto.loss_curve_ == make_clf(noise=std, max_iter=3).fit(X, y).loss_curve_
    other = make_clf(noise=std / 2, max_iter=3).fit(X, y)
    assert auto.loss_curve_ != other.loss_curve_
    plain = make_clf(noise=None, max_iter=3).fit(X, y)
    assert auto.loss_curve_ != plain.loss_curve_
    # Above the threshold (here lowered to below these 150 samples): none.
    monkeypatch.setattr(denoisenet.bottleneck, "AUTO_NOISE_MAX_SAMPLES", len(X) - 1)
    assert make_clf(max_iter=3).fit(X, y).loss_curve_ == plain.loss_curve_


def test_auto_noise_is_none_in_partial_fit(data):
    X, y = data
    auto = make_clf().partial_fit(X, y, classes=[0, 1, 2])
    plain = make_clf(noise=None).partial_fit(X, y, classes=[0, 1, 2])
    assert auto.loss_curve_ == plain.loss_curve_
    noisy = make_clf(noise=0.1).partial_fit(X, y, classes=[0, 1, 2])
    assert noisy.loss_curve_ != plain.loss_curve_


def test_noise_never_reaches_inference(data):
    X, y = data
    clf = make_clf(noise=0.5, max_iter=3).fit(X, y)
    proba = clf.predict_proba(X)
    assert np.array_equal(proba, clf.predict_proba(X))
    assert np.array_equal(clf.transform(X), clf.transform(X))
    assert np.array_equal(clf.predict(X), clf.classes_[proba.argmax(1)])
    # Switching the noise off after fit changes nothing at inference.
    codes = clf.transform(X)
    assert np.array_equal(clf.set_params(noise=None).transform(X), codes)
    assert np.array_equal(clf.predict_proba(X), proba)


def test_a_noise_transformer_is_used_as_given_and_left_untouched(data):
    from denoisenet import GaussianPixelNoise, MaskingNoise

    X, y = data
    noise = GaussianPixelNoise(0.3)
    as_float = make_clf(noise=0.3, max_iter=3).fit(X, y)
    as_object = make_clf(noise=noise, max_iter=3).fit(X, y)
    # The float is that transformer (clipped Gaussian), drawn by the
    # estimator's random state.
    assert as_object.loss_curve_ == as_float.loss_curve_
    assert not hasattr(noise, "n_features_in_")
    assert noise.get_params() == GaussianPixelNoise(0.3).get_params()
    clf = make_clf(noise=MaskingNoise(0.5), max_iter=3)
    assert clf.get_params()["noise__fraction"] == 0.5
    assert clf.fit(X, y).loss_curve_ != as_float.loss_curve_


@pytest.mark.parametrize("grid", [{"noise": [None, 0.1]}, {"noise__std": [0.1, 0.3]}])
def test_noise_is_searched_like_any_parameter(data, grid):
    from denoisenet import GaussianPixelNoise

    X, y = data
    clf = make_clf(max_iter=3, noise=GaussianPixelNoise())
    search = GridSearchCV(clf, grid, cv=StratifiedKFold(2), scoring="neg_log_loss")
    # Each candidate's noise (a nested noise__std too) reaches its training:
    # the candidates score differently.
    scores = search.fit(X, y).cv_results_["mean_test_score"]
    assert len(scores) == 2 and scores[0] != scores[1]


@pytest.mark.parametrize("noise", [-0.1, float("nan"), float("inf"), "gaussian"])
def test_invalid_noise_is_named_and_leaves_the_fit_alone(data, helpers, noise):
    X, y = data
    clf = make_clf(max_iter=3).fit(X, y)
    codes = clf.transform(X)
    clf.set_params(noise=noise)
    with pytest.raises(ValueError, match="'noise' parameter of BottleneckClassifier"):
        clf.fit(X, y)
    assert np.array_equal(clf.transform(X), codes)


def test_invalid_noise_transformer_parameters_are_named(data):
    from denoisenet import GaussianPixelNoise

    X, y = data
    with pytest.raises(ValueError, match="'std' parameter of GaussianPixelNoise"):
        make_clf(noise=GaussianPixelNoise(-1.0)).fit(X, y)


@pytest.mark.parametrize(("name", "value"), INVALID_PARAMS)
def test_invalid_parameter_is_named_at_fit(data, helpers, name, value):
    X, y = data
    clf = make_clf(**{name: value})
    got = re.escape(repr(value))
    pattern = f"'{name}' parameter of BottleneckClassifier.*Got {got} instead"
    with pytest.raises(ValueError, match=pattern):
        clf.fit(X, y)
    with pytest.raises(ValueError, match=pattern):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert helpers.fitted_attributes(clf) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_an_error(data, helpers):
    X, y = data
    clf = make_clf(device="cuda")
    with pytest.raises(ValueError, match="CUDA"):
        clf.fit(X, y)
    assert helpers.fitted_attributes(clf) == []


def test_single_class_is_an_error(data, helpers):
    X, _ = data
    clf = make_clf()
    with pytest.raises(ValueError, match="class"):
        clf.fit(X, np.full(len(X), "only"))
    assert helpers.fitted_attributes(clf) == []


def test_continuous_targets_are_an_error(data):
    X, _ = data
    with pytest.raises(ValueError, match="Unknown label type"):
        make_clf().fit(X, np.linspace(0, 1, len(X)))


# -- inputs are left alone -----------------------------------------------------


def test_inputs_are_never_modified(data):
    X, y = data
    X = (X - X.min()) / (X.max() - X.min())
    X = X.astype(np.float32)  # in [0, 1]: shared with torch, not copied
    weights = np.linspace(0.5, 2.0, len(y))
    originals = X.copy(), y.copy(), weights.copy()
    clf = make_clf(max_iter=2, early_stopping=True)
    clf.fit(X, y, sample_weight=weights)
    clf.partial_fit(X, y, sample_weight=weights)
    clf.predict(X)
    clf.predict_proba(X)
    clf.transform(X)
    clf.score(X, y, sample_weight=weights)
    for array, original in zip((X, y, weights), originals, strict=True):
        np.testing.assert_array_equal(array, original)


# -- non-finite loss -----------------------------------------------------------


def test_non_finite_loss_raises_and_leaves_the_estimator_unfitted(data, helpers):
    X, y = data
    clf = make_clf(learning_rate_init=1e30)
    with pytest.raises(NonFiniteLossError, match="smaller learning_rate_init"):
        clf.fit(X, y)
    assert vars(clf).keys() == clf.get_params(deep=False).keys()


def test_a_huge_neighbor_weight_is_named(data):
    X, y = data
    # Beyond float32: refused before training (it made a NaN loss that was
    # blamed on learning_rate_init).
    clf = make_clf(neighbor_weight=1e300)
    with pytest.raises(ValueError, match=r"'neighbor_weight' .* too large .*1e\+300"):
        clf.fit(X, y)
    assert vars(clf).keys() == clf.get_params(deep=False).keys()
    # Within float32 but large enough to overflow the loss: the advice names it.
    clf = make_clf(neighbor_weight=1e38)
    with pytest.raises(
        NonFiniteLossError, match=r"smaller neighbor_weight \(it is 1e\+38\)"
    ):
        clf.fit(X, y)
    assert vars(clf).keys() == clf.get_params(deep=False).keys()


def test_non_finite_loss_in_a_warm_refit_keeps_the_previous_fit(data, helpers):
    X, y = data
    clf = make_clf(max_iter=3).fit(X, y)
    twin = pickle.loads(pickle.dumps(clf))
    module_before = copy.deepcopy(clf.module_)
    attributes = helpers.fitted_attributes(clf)
    clf.set_params(warm_start=True, learning_rate_init=1e30)
    with pytest.raises(NonFiniteLossError):
        clf.fit(X, y)
    assert helpers.state_dicts_equal(clf.module_, module_before)
    assert clf.n_iter_ == 3
    assert len(clf.loss_curve_) == 3
    assert helpers.fitted_attributes(clf) == attributes
    np.testing.assert_array_equal(clf.predict_proba(X), twin.predict_proba(X))
    clf.set_params(learning_rate_init=0.01)
    clf.partial_fit(X, y)
    twin.partial_fit(X, y)
    assert helpers.state_dicts_equal(clf.module_, twin.module_)


# -- interrupts ----------------------------------------------------------------


def test_keyboard_interrupt_keeps_the_last_completed_epoch(
    data, helpers, monkeypatch, interrupt_epoch
):
    X, y = data
    interrupt_epoch(3)
    clf = make_clf(max_iter=10)
    with pytest.warns(UserWarning, match="interrupted"):
        clf.fit(X, y)
    assert clf.n_iter_ == 2
    assert len(clf.loss_curve_) == 2
    monkeypatch.undo()
    two_epochs = make_clf(max_iter=2).fit(X, y)
    assert helpers.state_dicts_equal(clf.module_, two_epochs.module_)
    np.testing.assert_array_equal(clf.predict(X), two_epochs.predict(X))
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 3


def test_keyboard_interrupt_with_early_stopping_keeps_the_best_epoch(
    data, helpers, monkeypatch, interrupt_epoch
):
    X, y = data
    seen = spy_on_validation(monkeypatch)
    interrupt_epoch(4)
    clf = make_clf(early_stopping=True, max_iter=10)
    with pytest.warns(UserWarning, match="interrupted"):
        clf.fit(X, y)
    assert clf.n_iter_ == 3
    scores = [s for s, *_ in seen]
    best = scores.index(max(scores))
    assert all(
        torch.equal(seen[best][1][k], v) for k, v in clf.module_.state_dict().items()
    )


def test_keyboard_interrupt_in_the_first_epoch_reraises(data, helpers, interrupt_epoch):
    X, y = data
    interrupt_epoch(1)
    clf = make_clf()
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    assert vars(clf).keys() == clf.get_params(deep=False).keys()
    interrupt_epoch(1)
    with pytest.raises(KeyboardInterrupt):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert helpers.fitted_attributes(clf) == []


# -- stopping ------------------------------------------------------------------


def test_convergence_warning_when_max_iter_ends_training(data):
    X, y = data
    with pytest.warns(ConvergenceWarning, match="Maximum iterations") as record:
        clf = make_clf(max_iter=2).fit(X, y)
    assert record[0].filename == __file__
    assert clf.n_iter_ == 2


@pytest.mark.parametrize(
    "learning_rate, epochs",
    [
        # The first epoch sets the best loss; with tol=10 every later one
        # stalls, and n_iter_no_change=1 stops at the second stall.
        ("constant", 3),
        # Each stalled epoch (half of n_iter_no_change + 1) first divides the
        # rate by 5 (1, 1/5, 1/25, 1/125: three stalls to reach a hundredth);
        # then a stall of two epochs stops it.
        ("adaptive", 6),
    ],
)
def test_no_convergence_warning_when_training_stalls_early(data, learning_rate, epochs):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = make_clf(
            tol=10.0, n_iter_no_change=1, max_iter=20, learning_rate=learning_rate
        ).fit(X, y)
    assert clf.n_iter_ == epochs < clf.max_iter


def test_early_stopping_records_and_restores_the_best_epoch(data, monkeypatch):
    X, y = data
    seen = spy_on_validation(monkeypatch)
    clf = make_clf(
        early_stopping=True, max_iter=40, n_iter_no_change=2, validation_fraction=0.2
    ).fit(X, y)
    scores = [s for s, *_ in seen]
    assert clf.validation_scores_ == scores
    assert len(scores) == clf.n_iter_ == len(clf.loss_curve_)
    assert clf.n_iter_ < clf.max_iter
    assert clf.best_validation_score_ == max(scores)
    assert clf.best_loss_ is None
    best = scores.index(max(scores))
    assert all(
        torch.equal(seen[best][1][k], v) for k, v in clf.module_.state_dict().items()
    )
    # The score is the accuracy on the 20% held out, which the restored
    # network reaches again.
    _, _, held_out, objective = seen[0]
    assert len(held_out.targets_val) == 30
    assert len(held_out.indices) == 120
    accuracy = objective.validation_score(
        clf.module_, held_out.X_val, held_out.targets_val
    )
    assert accuracy == clf.best_validation_score_


def test_early_stopping_split_is_stratified(monkeypatch):
    # 5 classes of 12 samples; a 25% split holds out 3 of each. A random
    # split would do so with probability of about 1%.
    X, y = make_classification(
        60, 6, n_informative=4, n_classes=5, n_clusters_per_class=1, random_state=0
    )
    X, y = X[np.argsort(y, kind="stable")], np.sort(y)
    assert np.all(np.bincount(y) == 12)
    seen = spy_on_validation(monkeypatch)
    make_clf(early_stopping=True, validation_fraction=0.25, max_iter=3).fit(X, y)
    targets_val = seen[0][2].targets_val.numpy()
    assert np.all(np.bincount(targets_val, minlength=5) == 3)


def test_early_stopping_works_with_few_samples_per_class():
    X, y = make_classification(
        12, 4, n_informative=3, n_redundant=0, n_classes=3, random_state=0
    )
    clf = make_clf(early_stopping=True, validation_fraction=0.25, max_iter=4)
    clf.fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.predict(X).shape == (12,)


# -- warm start and partial_fit ------------------------------------------------


def test_warm_start_continues_training(data, helpers):
    X, y = data
    clf = make_clf(max_iter=3).fit(X, y)
    module_before = copy.deepcopy(clf.module_)
    curve = list(clf.loss_curve_)
    clf.set_params(warm_start=True, max_iter=2).fit(X, y)
    assert clf.n_iter_ == 5
    assert clf.loss_curve_[:3] == curve
    assert not helpers.state_dicts_equal(clf.module_, module_before)
    # A warm refit cannot introduce new classes.
    with pytest.raises(ValueError, match="not in classes_"):
        clf.fit(X, y + 1)
    assert clf.n_iter_ == 5


def test_partial_fit_runs_one_epoch_per_call(data, helpers):
    X, y = data
    clf = make_clf(max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        # Later calls may see only some classes.
        clf.partial_fit(X[y != 2], y[y != 2], classes=[0, 1, 2])
        assert clf.n_iter_ == 1
        np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
        module_before = copy.deepcopy(clf.module_)
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 2
    assert len(clf.loss_curve_) == 2
    assert not helpers.state_dicts_equal(clf.module_, module_before)
    assert clf.predict_proba(X).shape == (150, 3)


def test_partial_fit_requires_classes_on_the_first_call(data, helpers):
    X, y = data
    clf = make_clf()
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y)
    assert helpers.fitted_attributes(clf) == []


def test_partial_fit_rejects_unknown_labels_and_other_classes(data):
    X, y = data
    clf = make_clf().partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"not in classes_"):
        clf.partial_fit(X, np.where(y == 2, 7, y))
    with pytest.raises(ValueError, match=r"classes=\[0, 1, 2, 3\]"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :5], y)
    assert clf.n_iter_ == 1
    clf.partial_fit(X, y, classes=[2, 1, 0])  # the same set, in another order
    assert clf.n_iter_ == 2
    # On the first call, labels must lie in the given classes too.
    with pytest.raises(ValueError, match="not in classes_"):
        make_clf().partial_fit(X, y, classes=[0, 1])


def test_partial_fit_after_an_early_stopping_fit_counts_on(data):
    X, y = data
    clf = make_clf(early_stopping=True, max_iter=3).fit(X, y)
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 4
    assert len(clf.loss_curve_) == 4


# -- verbosity -----------------------------------------------------------------


def test_verbose_shows_progress(data, capsys):
    X, y = data
    make_clf(max_iter=3, verbose=1, early_stopping=True).fit(X, y)
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert "3/3" in shown
    assert "validation" in shown


def test_verbose_zero_prints_nothing(data, capsys):
    X, y = data
    make_clf(max_iter=3).fit(X, y)
    assert capsys.readouterr() == ("", "")


# -- labels and probabilities --------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["cat", "dog", "eel"]),
        np.array(["cat", "dog", "eel"], dtype=object),
        np.array([5, 6, 7]),
        np.array([-1.0, 0.0, 2.0]),
        np.array(["no", "yes"]),
        np.array([-1, 1]),
        np.array([False, True]),
    ],
    ids=["str", "object", "from-5", "float", "binary-str", "binary-pm1", "bool"],
)
def test_labels_come_back_as_given(data, labels):
    X, y = data
    y = y % len(labels)
    codes = make_clf().fit(X, y)
    clf = make_clf().fit(X, labels[y])
    np.testing.assert_array_equal(clf.classes_, labels)
    assert clf.classes_.dtype == labels.dtype
    predicted = clf.predict(X)
    assert predicted.dtype == labels.dtype
    # The labels are only names: the network is the one fitted on codes.
    np.testing.assert_array_equal(clf.predict_proba(X), codes.predict_proba(X))
    np.testing.assert_array_equal(predicted, labels[codes.predict(X)])
    assert clf.predict_proba(X).shape == (150, len(labels))


def test_probabilities_are_consistent(data):
    X, y = data
    clf = make_clf(max_iter=20).fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba), atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, y) > 0.8  # three well-separated clusters


# -- the bottleneck ------------------------------------------------------------


def test_transform_is_the_two_unit_bottleneck(small_digits):
    X, y = small_digits
    clf = make_clf(hidden_layer_sizes=(32, 2, 16), max_iter=10).fit(X, y)
    Z = clf.transform(X)
    assert Z.shape == (200, 2)
    assert Z.dtype == np.float64
    assert clf.transform(X.astype(np.float32)).dtype == np.float32
    # The bottleneck is linear: a ReLU would never give negative values.
    assert (Z < 0).any()
    np.testing.assert_array_equal(
        clf.get_feature_names_out(), ["bottleneck0", "bottleneck1"]
    )
    frame = pd.DataFrame(X, columns=[f"p{i}" for i in range(64)])
    clf.set_output(transform="pandas")
    out = clf.fit(frame, y).transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["bottleneck0", "bottleneck1"]
    np.testing.assert_array_equal(out.to_numpy(), Z)


def test_bottleneck_is_the_first_of_equally_narrow_layers(data):
    X, y = data
    clf = make_clf(hidden_layer_sizes=(8, 3, 3, 8), max_iter=2).fit(X, y)
    assert clf.transform(X).shape == (150, 3)
    assert len(clf.get_feature_names_out()) == 3
    encoder = clf.module_.encoder
    linear = [m for m in encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [8, 3]
    # transform is the output of that first 3-unit layer.
    scaled = torch.as_tensor((X - clf.data_min_) / clf.data_range_).float()
    with torch.no_grad():
        expected = clf.module_.encoder(scaled).numpy()
    np.testing.assert_allclose(clf.transform(X), expected, rtol=1e-5, atol=1e-5)


def test_unscaled_data_gives_the_same_model(small_digits):
    X, y = small_digits
    unit = make_clf().fit(X, y)
    pixels = make_clf().fit(X * 16, y)
    assert (pixels.data_min_, pixels.data_range_) == (0.0, 16.0)
    np.testing.assert_allclose(
        pixels.predict_proba(X * 16), unit.predict_proba(X), atol=1e-5
    )


# -- sample weights ------------------------------------------------------------


def test_integer_weights_act_like_repeated_rows(data):
    X, y = data
    weights = np.random.default_rng(0).integers(1, 3, len(y))
    # One full batch in a fixed order: the two fits see the same
    # classification loss. The neighbour term works on pairs of rows, where
    # a repeated row is its own nearest neighbour, so it is left out here
    # (test_integer_weights_weigh_rows_in_the_neighbour_term covers it).
    # Batch normalisation's statistics count rows, not weights: off too; so
    # is the training noise, drawn per row (a repeated row gets draws of its
    # own).
    params = {
        "noise": None,
        "batch_size": 1000,
        "shuffle": False,
        "max_iter": 50,
        "neighbor_weight": 0.0,
        "batch_norm": False,
    }
    weighted = make_clf(**params).fit(X, y, sample_weight=weights)
    repeated = make_clf(**params).fit(
        np.repeat(X, weights, axis=0), np.repeat(y, weights)
    )
    unweighted = make_clf(**params).fit(X, y)
    proba = weighted.predict_proba(X)
    # Measured over seeds 0-3: at most 1.4e-6 apart, where fitting without
    # the weights moves them by 0.06 or more. The L2 penalty counts the
    # weight of the rows, as in scikit-learn's MLP, not their number.
    np.testing.assert_allclose(proba, repeated.predict_proba(X), atol=1e-4)
    assert np.abs(proba - unweighted.predict_proba(X)).max() > 1e-3


def test_zero_weights_drop_rows_from_the_loss(data):
    X, y = data
    # Data inside [0, 1] is not rescaled, so dropping rows cannot change
    # the scaling learned from X.
    X = (X - X.min()) / (X.max() - X.min())
    keep = np.arange(len(y)) % 3 != 0
    params = {"batch_size": 1000, "shuffle": False, "max_iter": 20}
    weighted = make_clf(**params).fit(X, y, sample_weight=keep.astype(float))
    dropped = make_clf(**params).fit(X[keep], y[keep])
    np.testing.assert_allclose(
        weighted.predict_proba(X), dropped.predict_proba(X), atol=1e-4
    )


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.zeros(150), "zero for every sample"),
        (np.r_[-1.0, np.ones(149)], "non-negative"),
        (np.r_[np.nan, np.ones(149)], "finite"),
        (np.ones(149), "shape"),
        # Numpy dropped the imaginary part with a ComplexWarning only.
        (np.full(150, 1 + 5j), "Complex data not supported"),
    ],
    ids=["all-zero", "negative", "nan", "wrong-length", "complex"],
)
def test_invalid_sample_weight_is_an_error(data, helpers, weights, message):
    X, y = data
    clf = make_clf()
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y, sample_weight=weights)
    assert helpers.fitted_attributes(clf) == []


def test_weights_of_any_scale_train_the_same_network(data, helpers):
    # The loss is a weighted mean: 1e37 overflowed its float32 sum (a NaN
    # loss, blamed on the learning rate); now weights are scaled by a power
    # of two first, which changes no bit for ordinary weights.
    X, y = data
    weights = np.linspace(0.5, 3.0, len(y))
    params = {"max_iter": 2, "alpha": 0.0}
    base = make_clf(**params).fit(X, y, sample_weight=weights)
    for scale in (2.0**100, 2.0**-100):
        scaled = make_clf(**params).fit(X, y, sample_weight=weights * scale)
        assert helpers.state_dicts_equal(base.module_, scaled.module_)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        huge = make_clf(**params).fit(X, y, sample_weight=np.full(len(y), 1e37))
        assert np.isfinite(huge.loss_curve_).all()
        heavy = make_clf(class_weight={y[0]: 1e39}, **params).fit(X, y)
        assert np.isfinite(heavy.loss_curve_).all()
    with pytest.raises(ValueError, match="times class_weight is infinite"):
        make_clf(class_weight={y[0]: 1e300}).fit(
            X, y, sample_weight=np.full(len(y), 1e300)
        )


def test_a_column_of_sample_weights_is_an_error(data):
    # A (n, 1) column was taken with a DataConversionWarning that named y.
    X, y = data
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(150, 1\)"):
        make_clf().fit(X, y, sample_weight=np.ones((len(y), 1)))


def test_early_stopping_that_leaves_too_few_weighted_rows_says_so(data, helpers):
    # fit checks 2 classes of positive weight before early stopping holds
    # out its share; the rows left to train on were not checked (a torch
    # error from batch normalisation, or a fit on one class).
    X, y = data
    weights = np.zeros(len(y))
    weights[[np.flatnonzero(y == c)[0] for c in np.unique(y)[:2]]] = 1.0
    for neighbor_weight in (0.0, 0.3):
        clf = make_clf(
            early_stopping=True,
            validation_fraction=0.5,
            neighbor_weight=neighbor_weight,
        )
        with pytest.raises(ValueError, match=r"positive sample_weight of [01] class"):
            clf.fit(X, y, sample_weight=weights)
        assert helpers.fitted_attributes(clf) == []


def test_weights_leaving_one_class_are_an_error(data):
    X, y = data
    with pytest.raises(ValueError, match="2 classes"):
        make_clf().fit(X, y, sample_weight=(y == 1).astype(float))


# -- model selection -----------------------------------------------------------


def test_beside_scikit_learn_classifiers_in_model_selection(data):
    X, y = data
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    candidates = {
        "bottleneck": make_clf(max_iter=30),
        "logistic": LogisticRegression(),
        "mlp": MLPClassifier((16,), max_iter=300, random_state=0),
    }
    scores = {
        name: cross_val_score(estimator, X, y, cv=cv, n_jobs=2)
        for name, estimator in candidates.items()
    }
    for name, values in scores.items():
        assert values.shape == (3,)
        assert values.mean() > 0.6, name  # chance is 1/3
    search = GridSearchCV(
        make_clf(max_iter=10),
        {"hidden_layer_sizes": [(16, 2, 8), (8, 3)], "learning_rate_init": [0.01]},
        cv=cv,
        n_jobs=2,
    ).fit(X, y)
    assert search.best_params_["hidden_layer_sizes"] in [(16, 2, 8), (8, 3)]
    assert search.best_estimator_.n_iter_ == 10
    assert search.predict(X).shape == (150,)
    # The bottleneck width follows the best network.
    width = min(search.best_params_["hidden_layer_sizes"])
    assert search.best_estimator_.transform(X).shape == (150, width)


# -- the neighbour term ---------------------------------------------------------


def _graph_data(X, labels, indices=None, scale=None):
    from denoisenet._training import TrainingData

    X = torch.as_tensor(X)
    n = X.shape[0]
    indices = torch.arange(n) if indices is None else torch.as_tensor(indices)
    return TrainingData(X, indices, torch.as_tensor(labels), scale=scale)


def test_neighbor_graph_holds_each_rows_nearest_rows_of_its_class():
    from denoisenet.bottleneck import neighbor_graph

    rng = np.random.default_rng(0)
    X = rng.random((60, 5), dtype=np.float32)
    labels = np.arange(60) % 3
    table = neighbor_graph(_graph_data(X, labels), 4, seed=0).numpy()
    assert table.shape == (60, 4) and table.dtype == np.int32
    d = ((X[:, None] - X[None]) ** 2).sum(-1)
    d[labels[:, None] != labels[None, :]] = np.inf
    np.fill_diagonal(d, np.inf)
    expected = np.argsort(d, axis=1, kind="stable")[:, :4]
    assert np.array_equal(np.sort(table, 1), np.sort(expected, 1))


def test_neighbor_graph_leaves_out_rows_not_trained_on_and_pads_small_classes():
    from denoisenet.bottleneck import neighbor_graph

    rng = np.random.default_rng(1)
    X = rng.random((30, 4), dtype=np.float32)
    labels = np.array([0] * 27 + [1] * 2 + [2])
    train = np.setdiff1d(np.arange(30), [0, 5, 9])
    table = neighbor_graph(_graph_data(X, labels, train), 3, seed=0).numpy()
    # Held-out rows have no neighbours and are nobody's.
    assert np.all(table[[0, 5, 9]] == -1)
    assert not np.isin([0, 5, 9], table).any()
    # A class of two: one neighbour each, then padding; a lone row: none.
    assert table[27].tolist() == [28, -1, -1] and table[28].tolist() == [27, -1, -1]
    assert np.all(table[29] == -1)


def test_neighbor_graph_of_8_bit_images_is_that_of_their_scaled_floats():
    from denoisenet._base import _Uint8Scaling
    from denoisenet.bottleneck import PCA_COMPONENTS, neighbor_graph

    rng = np.random.default_rng(2)
    X = rng.integers(0, 256, size=(80, PCA_COMPONENTS + 14), dtype=np.uint8)
    labels = np.arange(80) % 2
    scaled = (X.astype(np.float32) - 0.0) / 255.0
    raw = neighbor_graph(_graph_data(X, labels, scale=_Uint8Scaling(0, 255)), 5, seed=3)
    floats = neighbor_graph(_graph_data(scaled, labels), 5, seed=3)
    assert torch.equal(raw, floats)
    assert torch.equal(floats, neighbor_graph(_graph_data(scaled, labels), 5, seed=3))


def test_neighbor_graph_splits_large_classes_into_blocks(monkeypatch):
    import denoisenet.bottleneck as module

    monkeypatch.setattr(module, "GRAPH_BLOCK_ROWS", 25)
    rng = np.random.default_rng(4)
    X = rng.random((100, 3), dtype=np.float32)
    labels = np.arange(100) % 2  # 50 rows a class: 2 blocks of 25
    table = module.neighbor_graph(_graph_data(X, labels), 4, seed=0).numpy()
    assert np.all(table >= 0)
    assert np.all(labels[table] == labels[:, None])
    # The blocks partition each class: a row and its neighbours share one,
    # so no connected part of the graph is larger than a block.
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    links = coo_matrix(
        (np.ones(table.size), (np.repeat(np.arange(100), 4), table.ravel())),
        shape=(100, 100),
    )
    _, part = connected_components(links, directed=False)
    assert np.bincount(part).max() <= 25


def test_paired_batches_pair_every_anchor_with_a_graph_neighbour():
    from denoisenet._training import _batches

    rng = np.random.default_rng(5)
    X = rng.random((21, 3), dtype=np.float32)
    data = _graph_data(X, np.zeros(21, dtype=np.int64), np.arange(1, 21))
    table = -np.ones((21, 2), dtype=np.int32)
    for row in range(1, 21):
        table[row] = [row % 20 + 1, (row + 1) % 20 + 1]
    table[7] = [-1, -1]  # no neighbours: paired with itself
    data.neighbors = torch.from_numpy(table)
    generator = torch.Generator().manual_seed(0)
    anchors = []
    for inputs, targets, weights, adjacency in _batches(
        data, 8, True, generator, torch.device("cpu")
    ):
        # Without pair_rows, the adjacency covers the whole batch.
        assert adjacency.shape == (inputs.shape[0],) * 2
        # 8 anchors a batch (the last: 4), each followed by its partner.
        assert inputs.shape[0] in (16, 8)
        rows = [int(np.flatnonzero((X == row).all(1))[0]) for row in inputs.numpy()]
        for anchor, partner in zip(rows[::2], rows[1::2], strict=True):
            anchors.append(anchor)
            assert partner in table[anchor] or (anchor == partner == 7)
        # Every edge between the batch's rows, and nothing else, is marked
        # (at one place of a row that the batch holds twice).
        found = adjacency.numpy()
        rows = np.array(rows)
        for i, a in enumerate(rows):
            assert all(rows[j] in table[a] for j in np.flatnonzero(found[i]))
            for b in set(rows) & set(table[a]):
                assert found[i, rows == b].sum() == 1
        assert targets.shape == (len(rows),) and weights is None
    # Every training row is an anchor once an epoch; row 0 is not trained on.
    assert sorted(anchors) == list(range(1, 21))


def test_graph_affinities_are_a_symmetric_distribution_on_the_edges():
    from denoisenet.bottleneck import _graph_affinities

    generator = torch.Generator().manual_seed(0)
    adjacency = torch.rand(30, 30, generator=generator) < 0.2
    adjacency.fill_diagonal_(False)
    p = _graph_affinities(adjacency, None)
    assert torch.allclose(p, p.T)
    assert torch.isclose(p.sum(), torch.tensor(1.0))
    assert torch.all(p[~(adjacency | adjacency.T)] == 0)
    assert torch.all(p[adjacency] > 0)
    # A row with no edge has no mass, and nothing is NaN.
    adjacency[4] = False
    adjacency[:, 4] = False
    p = _graph_affinities(adjacency, None)
    assert torch.all(p[4] == 0) and torch.isfinite(p).all()


def test_rows_of_weight_zero_take_no_part_in_the_neighbour_term():
    from denoisenet.bottleneck import _graph_affinities, _neighbor_loss

    generator = torch.Generator().manual_seed(2)
    adjacency = torch.rand(30, 30, generator=generator) < 0.3
    adjacency.fill_diagonal_(False)
    z = torch.randn(30, 2, generator=generator)
    weights = torch.ones(30)
    weights[[3, 8, 20]] = 0.0
    p = _graph_affinities(adjacency, weights)
    assert torch.all(p[[3, 8, 20]] == 0) and torch.all(p[:, [3, 8, 20]] == 0)
    keep = weights > 0
    # The same loss as with those rows removed, wherever they lie.
    moved = z.clone()
    moved[[3, 8, 20]] = 100.0
    expected = _neighbor_loss(adjacency[keep][:, keep], z[keep], None)
    for codes in (z, moved):
        actual = _neighbor_loss(adjacency, codes, weights)
        assert torch.isclose(actual, expected, rtol=1e-5)


def test_integer_weights_weigh_rows_in_the_neighbour_term():
    from denoisenet.bottleneck import _graph_affinities

    adjacency = torch.ones(20, 20, dtype=torch.bool)
    adjacency.fill_diagonal_(False)
    weights = torch.ones(20)
    weights[0] = 3.0
    p = _graph_affinities(adjacency, weights)
    plain = _graph_affinities(adjacency, None)
    assert p[0].sum() > plain[0].sum()
    assert torch.isclose(p.sum(), torch.tensor(1.0))


def test_neighbor_loss_prefers_codes_that_keep_neighbours():
    from denoisenet.bottleneck import _neighbor_loss

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=generator) * 3
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    nearest = d.topk(5, dim=1, largest=False).indices
    adjacency = torch.zeros(64, 64, dtype=torch.bool)
    adjacency.scatter_(1, nearest, True)
    shuffled = x[torch.randperm(64, generator=generator)]
    faithful = _neighbor_loss(adjacency, x, None)
    assert faithful < _neighbor_loss(adjacency, shuffled, None)


def _autograd_neighbor_loss(adjacency, z, weights):
    """The neighbour term as autograd ops, written from its definition."""
    from denoisenet.bottleneck import _graph_affinities

    p = _graph_affinities(adjacency, weights).to(z.dtype)
    n = z.shape[0]
    q = 1.0 / (1.0 + torch.cdist(z, z).square())
    take = ~torch.eye(n, dtype=torch.bool)
    if weights is not None:
        take &= (weights > 0)[:, None] & (weights > 0)[None, :]
    q = torch.where(take, q, torch.zeros_like(q))
    q = q / q.sum()
    on = p > 0
    return (p[on] * (p[on].log() - q[on].log())).sum()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_neighbor_loss_and_its_gradient_are_the_kl_divergence(dtype, weighted):
    from denoisenet.bottleneck import _neighbor_loss

    generator = torch.Generator().manual_seed(5)
    adjacency = torch.rand(40, 40, generator=generator) < 0.1
    adjacency.fill_diagonal_(False)
    z = (3 * torch.randn(40, 2, generator=generator, dtype=dtype)).requires_grad_()
    weights = None
    if weighted:
        weights = 3 * torch.rand(40, generator=generator)
        weights[[0, 7, 19]] = 0.0
    expected = _autograd_neighbor_loss(adjacency, z, weights)
    (expected_grad,) = torch.autograd.grad(2.5 * expected, z)
    actual = _neighbor_loss(adjacency, z, weights)
    (actual_grad,) = torch.autograd.grad(2.5 * actual, z)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert actual.dtype == dtype
    assert torch.isclose(actual, expected, rtol=tol)
    assert torch.allclose(actual_grad, expected_grad, rtol=tol, atol=tol)
    if weighted:  # rows of weight 0 get no gradient
        assert torch.all(actual_grad[[0, 7, 19]] == 0)
    if dtype == torch.float64:
        assert torch.autograd.gradcheck(
            lambda codes: _neighbor_loss(adjacency, codes, weights),
            (z.detach().requires_grad_(),),
        )


def test_a_batch_without_edges_has_no_neighbour_loss_or_gradient():
    from denoisenet.bottleneck import _neighbor_loss

    adjacency = torch.zeros(12, 12, dtype=torch.bool)
    z = torch.randn(12, 2, generator=torch.Generator().manual_seed(3))
    z.requires_grad_()
    loss = _neighbor_loss(adjacency, z, None)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.all(z.grad == 0)


def test_neighbour_term_memory_is_bounded_in_large_batches(data, monkeypatch):
    import denoisenet.bottleneck as module

    seen = []
    original = module._neighbor_loss

    def spy(adjacency, z, weights):
        seen.append((*adjacency.shape, z.shape[0]))
        return original(adjacency, z, weights)

    monkeypatch.setattr(module, "_neighbor_loss", spy)
    monkeypatch.setattr(module, "NEIGHBOR_ROWS", 50)
    X, y = data
    make_clf(batch_size=len(y), max_iter=2).fit(X, y)
    assert seen and all(shape == (50, 50, 50) for shape in seen)
    seen.clear()
    make_clf(batch_size=len(y), max_iter=1, neighbor_weight=0.0).fit(X, y)
    assert seen == []


def test_the_graph_is_built_once_a_fit_and_only_with_the_term(data, monkeypatch):
    import denoisenet.bottleneck as module

    calls = []
    original = module.neighbor_graph

    def spy(data, n_neighbors, seed):
        calls.append(n_neighbors)
        return original(data, n_neighbors, seed)

    monkeypatch.setattr(module, "neighbor_graph", spy)
    X, y = data
    make_clf(max_iter=3, n_neighbors=7).fit(X, y)
    assert calls == [7]
    make_clf(max_iter=3, neighbor_weight=0.0).fit(X, y)
    assert calls == [7]


@pytest.mark.parametrize("seed", [0, 1])
def test_neighbor_weight_makes_the_map_more_trustworthy(seed):
    from sklearn.manifold import trustworthiness

    X, y = load_digits(return_X_y=True)
    X, y = X[:600] / 16.0, y[:600]
    scores = {}
    for weight in (0.0, 1.0):
        clf = BottleneckClassifier(
            (64, 2, 32),
            learning_rate_init=0.01,
            max_iter=30,
            neighbor_weight=weight,
            random_state=seed,
        ).fit(X, y)
        assert clf.score(X, y) > 0.9
        scores[weight] = trustworthiness(X, clf.transform(X), n_neighbors=10)
    # Measured: 0.88-0.90 without the term, 0.93-0.94 with it.
    assert scores[1.0] > scores[0.0] + 0.02


# -- batch normalisation and class weights ------------------------------------


def test_batch_norm_normalises_every_hidden_layer_but_the_bottleneck(data):
    X, y = data
    clf = make_clf(hidden_layer_sizes=(32, 16, 2, 8)).fit(X, y)
    norms = [m for m in clf.module_.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert [m.num_features for m in norms] == [32, 16, 8]
    plain = make_clf(hidden_layer_sizes=(32, 16, 2, 8), batch_norm=False).fit(X, y)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.module_.modules())
    # The running statistics were learned, and transform uses them: a row
    # maps to the same point alone or among others.
    assert not torch.equal(norms[0].running_mean, torch.zeros(32))
    np.testing.assert_array_equal(clf.transform(X[:1]), clf.transform(X)[:1])


def test_batch_norm_on_one_sample_is_a_clear_error(data):
    X, y = data
    clf = make_clf().partial_fit(X, y, classes=np.unique(y))
    with pytest.raises(ValueError, match=r"1 sample.*batch_norm=False"):
        clf.partial_fit(X[:1], y[:1])
    make_clf(batch_norm=False).partial_fit(X[:1], y[:1], classes=np.unique(y))


def test_batch_norm_trains_when_a_batch_would_hold_one_row(data):
    X, y = data
    # 150 rows in batches of 149 leave one row: it joins the batch before.
    clf = make_clf(batch_size=149, max_iter=2).fit(X, y)
    assert np.isfinite(clf.loss_curve_).all()


def test_balanced_class_weight_equals_the_matching_sample_weights(data):
    X, y = data
    keep = (y != 2) | (np.arange(len(y)) % 4 == 0)  # class 2 made rare
    X, y = X[keep], y[keep]
    counts = np.bincount(y)
    weights = len(y) / (len(counts) * counts[y])
    by_class = make_clf(class_weight="balanced").fit(X, y)
    by_sample = make_clf().fit(X, y, sample_weight=weights)
    np.testing.assert_allclose(
        by_class.predict_proba(X), by_sample.predict_proba(X), atol=1e-5
    )
    plain = make_clf().fit(X, y)
    assert np.abs(by_class.predict_proba(X) - plain.predict_proba(X)).max() > 1e-3


def test_class_weight_dict_multiplies_sample_weight(data):
    X, y = data
    sample_weight = np.linspace(0.5, 1.5, len(y))
    by_class = make_clf(class_weight={0: 2.0}).fit(X, y, sample_weight=sample_weight)
    both = np.where(y == 0, 2.0, 1.0) * sample_weight
    by_sample = make_clf().fit(X, y, sample_weight=both)
    np.testing.assert_allclose(
        by_class.predict_proba(X), by_sample.predict_proba(X), atol=1e-5
    )


@pytest.mark.parametrize(
    "class_weight, message",
    [
        ({0: -1.0}, "'class_weight' parameter"),
        ({0: float("nan")}, "'class_weight' parameter"),
        ("heavy", "'class_weight' parameter"),
        ({7: 1.0}, "not in class_weight|7"),
        ({0: 0.0, 1: 0.0}, "fewer than 2 classes"),
    ],
)
def test_invalid_class_weight_is_an_error(data, helpers, class_weight, message):
    X, y = data
    clf = make_clf(class_weight=class_weight)
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y)
    assert helpers.fitted_attributes(clf) == []


def test_balanced_class_weight_is_refused_by_partial_fit(data, helpers):
    X, y = data
    with pytest.raises(ValueError, match="compute_class_weight"):
        make_clf(class_weight="balanced").partial_fit(X, y, classes=np.unique(y))
    # Also on a later call, which takes no classes=, and after fit; the
    # refused call leaves the model as it was.
    clf = make_clf(class_weight="balanced", max_iter=2).fit(X, y)
    before = copy.deepcopy(clf.module_)
    with pytest.raises(ValueError, match="compute_class_weight"):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 2
    assert helpers.state_dicts_equal(clf.module_, before)


def test_balanced_class_weight_in_a_warm_refit_weighs_the_classes_it_has(data, helpers):
    X, y = data
    some = np.isin(y, np.unique(y)[:2])
    X_some, y_some = X[some], y[some]
    # y of the refit holds two of the classes: scikit-learn's
    # compute_class_weight refused the others ("classes should have valid
    # labels that are in y"); their weight does not matter, having no rows.
    balanced = make_clf(class_weight="balanced", max_iter=2).fit(X, y)
    balanced.set_params(warm_start=True).fit(X_some, y_some)
    weights = compute_class_weight("balanced", classes=np.unique(y_some), y=y_some)
    by_row = weights[np.searchsorted(np.unique(y_some), y_some)]
    weighted = make_clf(class_weight="balanced", max_iter=2).fit(X, y)
    weighted.set_params(warm_start=True, class_weight=None)
    weighted.fit(X_some, y_some, sample_weight=by_row)
    assert helpers.state_dicts_equal(balanced.module_, weighted.module_)


# -- a fitted model is never lost ----------------------------------------------


def test_interrupted_records_a_ctrl_c_after_an_epoch(data, interrupt_epoch):
    X, y = data
    assert make_clf(max_iter=2).fit(X, y).interrupted_ is False
    interrupt_epoch(2)
    clf = make_clf(max_iter=10)
    with pytest.warns(UserWarning, match="interrupted"):
        clf.fit(X, y)
    assert clf.interrupted_ is True
    clf.partial_fit(X, y)
    assert clf.interrupted_ is False


def test_an_unusable_device_after_fit_loses_nothing(data, helpers):
    X, y = data
    clf = make_clf(max_iter=2, device="cpu").fit(X, y)
    module_before = copy.deepcopy(clf.module_)
    expected = clf.predict_proba(X)
    clf.set_params(device="meta")
    for method in (clf.predict, clf.predict_proba, clf.transform):
        with pytest.raises(ValueError, match="'device' parameter"):
            method(X)
    assert helpers.state_dicts_equal(clf.module_, module_before)
    clf.set_params(device="cpu")
    np.testing.assert_array_equal(clf.predict_proba(X), expected)


def test_a_warm_refit_ending_in_non_finite_weights_keeps_the_model(
    data, helpers, monkeypatch
):
    X, y = data
    clf = make_clf(max_iter=2).fit(X, y)
    module_before = copy.deepcopy(clf.module_)
    curve, n_iter = list(clf.loss_curve_), clf.n_iter_
    expected = clf.predict_proba(X)
    real_step = denoisenet._training.train_step
    calls = []

    def step(module, *args, **kwargs):
        # The last step of the refit leaves a NaN weight behind a finite
        # loss (a loss is taken before its step).
        loss = real_step(module, *args, **kwargs)
        calls.append(1)
        if len(calls) == 4:  # 2 epochs of 2 batches
            with torch.no_grad():
                next(module.parameters()).view(-1)[0] = float("nan")
        return loss

    monkeypatch.setattr(denoisenet._training, "train_step", step)
    with pytest.raises(NonFiniteLossError, match="left as it was"):
        clf.set_params(warm_start=True).fit(X, y)
    assert len(calls) == 4
    assert helpers.state_dicts_equal(clf.module_, module_before)
    assert clf.loss_curve_ == curve and clf.n_iter_ == n_iter
    np.testing.assert_array_equal(clf.predict_proba(X), expected)


def test_tampered_outputs_are_refused_on_loading(data):
    X, y = data
    clf = make_clf(max_iter=1).fit(X, y)
    state = clf.__getstate__()
    state["_network_args"] = {**state["_network_args"], "n_outputs": 7}
    with pytest.raises(pickle.UnpicklingError, match="7 outputs"):
        BottleneckClassifier.__new__(BottleneckClassifier).__setstate__(state)


# -- parameters are checked where they are used --------------------------------


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ([], "classes is empty"),
        ([0, 1, 2, np.nan], "NaN"),
        ([0, 1, 2, None], "None"),
        ([[0, 1, 2]], "1-d"),
        ([0], "at least 2 classes"),
    ],
    ids=["empty", "nan", "none", "2-d", "one"],
)
def test_partial_fit_refuses_bad_classes_clearly(data, helpers, classes, message):
    X, y = data
    clf = make_clf()
    with pytest.raises(ValueError, match=message):
        clf.partial_fit(X, y, classes=classes)
    assert helpers.fitted_attributes(clf) == []


@pytest.mark.parametrize("weight", [1.0, 3, np.float32(0.5)])
def test_a_scalar_sample_weight_weighs_every_sample_alike(data, helpers, weight):
    X, y = data
    scalar = make_clf(max_iter=2).fit(X, y, sample_weight=weight)
    full = make_clf(max_iter=2).fit(X, y, sample_weight=np.full(len(y), weight))
    assert helpers.state_dicts_equal(scalar.module_, full.module_)


@pytest.mark.parametrize(
    ("n", "fraction", "message"),
    [
        (3, 0.1, "only one sample"),
        (9, 0.1, "at least 0.333"),
        (9, 0.8, "which leaves 1 to train on"),
    ],
)
def test_early_stopping_on_too_few_samples_says_what_to_change(n, fraction, message):
    X = np.random.default_rng(0).random((n, 4))
    y = np.arange(n) % 3
    clf = make_clf(early_stopping=True, validation_fraction=fraction)
    with pytest.raises(ValueError, match=message) as info:
        clf.fit(X, y)
    assert "validation_fraction" in str(info.value) or "early_stopping" in str(
        info.value
    )
    assert "test_size" not in str(info.value)


def test_batch_norm_with_batches_of_one_row_is_a_clear_error(data, helpers):
    X, y = data
    clf = make_clf(batch_size=1)
    with pytest.raises(ValueError, match=r"batch_size=1.*batch_norm=False"):
        clf.fit(X, y)
    assert helpers.fitted_attributes(clf) == []
    make_clf(batch_size=1, batch_norm=False, max_iter=1).fit(X[:20], y[:20])


def test_decode_gives_the_class_probabilities_of_points_of_the_map(data):
    X, y = data
    clf = make_clf().fit(X, y)
    np.testing.assert_allclose(
        clf.decode(clf.transform(X)), clf.predict_proba(X), rtol=1e-5, atol=1e-7
    )
    # Any point of the plane, not only an image's, has probabilities.
    proba = clf.decode(np.random.default_rng(0).normal(size=(20, 2)) * 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    ("Z", "message"),
    [
        (np.zeros((3, 3)), "3 features"),
        (np.zeros(2), "2D array"),
        ([["a", "b"]], "convert"),
        (np.full((2, 2), np.nan), "NaN"),
        (np.full((2, 2), -1e300), "beyond float32's range"),
    ],
)
def test_decode_rejects_what_is_no_point_of_the_map(data, Z, message):
    X, y = data
    clf = make_clf().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match=message):
            clf.decode(Z)


@pytest.mark.parametrize("value", [0.0, 1e38])
def test_images_all_alike_fit_without_a_warning(value):
    # The neighbour graph's PCA divided 0 by 0 for its variance ratios (a
    # RuntimeWarning that the user cannot act on).
    X = np.full((60, 64), value)
    y = np.arange(60) % 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = make_clf(max_iter=50, tol=1.0).fit(X, y)
    assert clf.predict(X).shape == (60,)


@pytest.mark.parametrize(
    "weighting",
    [{"sample_weight": np.ones(50)}, {"class_weight": {0: 1.0, 1: 2.0, 2: 1.0}}],
    ids=["sample_weight", "class_weight"],
)
def test_a_partial_fit_batch_of_one_class_may_be_weighted(data, weighting):
    # Streamed batches may hold one class (classes= names them all); with
    # weights this was refused ("fewer than 2 classes with positive weight").
    X, y = data
    one = y == y[0]
    clf = make_clf(class_weight=weighting.get("class_weight"))
    fit_kwargs = {k: v for k, v in weighting.items() if k == "sample_weight"}
    clf.partial_fit(X[one][:50], y[one][:50], classes=np.unique(y), **fit_kwargs)
    clf.partial_fit(X[one][:50], y[one][:50], **fit_kwargs)
    assert clf.n_iter_ == 2
    # A fit from scratch still needs two classes.
    with pytest.raises(ValueError, match="2 classes"):
        make_clf(class_weight=weighting.get("class_weight")).fit(
            X, y, sample_weight=np.where(one, 1.0, 0.0)
        )
