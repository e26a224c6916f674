"""Tests for DenoisingAutoencoder.

scikit-learn's conformance suite runs in test_common.py; these tests cover
what it does not: reproducibility, persistence, failure handling, the
training controls, scaling, the noise parameter and the denoising itself.
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
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline

import denoisenet._base
import denoisenet._training
from denoisenet import (
    DenoisingAutoencoder,
    GaussianPixelNoise,
    MaskingNoise,
    SaltAndPepperNoise,
)
from denoisenet._training import NonFiniteLossError

# Most fits below stop at a small max_iter on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def make_dae(**params):
    defaults = {"hidden_layer_sizes": (32, 8, 32), "max_iter": 5, "random_state": 0}
    return DenoisingAutoencoder(**{**defaults, **params})


# -- reproducibility -----------------------------------------------------------


def test_same_int_seed_gives_bit_identical_fits(small_digits, helpers):
    X, _ = small_digits
    a = make_dae().fit(X)
    b = make_dae().fit(X)
    assert helpers.state_dicts_equal(a.module_, b.module_)
    assert a.loss_curve_ == b.loss_curve_
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.encode(X), b.encode(X))
    assert a.score(X) == b.score(X)


def test_different_seeds_give_different_weights(small_digits, helpers):
    X, _ = small_digits
    a = make_dae(random_state=0).fit(X)
    b = make_dae(random_state=1).fit(X)
    state_a, state_b = a.module_.state_dict(), b.module_.state_dict()
    weights = [k for k in state_a if k.endswith("weight")]
    assert not any(torch.equal(state_a[k], state_b[k]) for k in weights)
    assert not np.allclose(a.transform(X), b.transform(X))


@pytest.mark.parametrize("random_state", [0, None])
def test_fit_and_methods_leave_global_random_state_alone(
    small_digits, helpers, random_state
):
    X, _ = small_digits
    np.random.seed(12345)  # noqa: NPY002 (the global state is the subject)
    torch.manual_seed(12345)
    before = helpers.global_random_state()
    dae = make_dae(random_state=random_state, early_stopping=True, max_iter=3)
    dae.fit(X)
    dae.partial_fit(X)
    dae.transform(X)
    dae.score(X)
    helpers.assert_same_global_random_state(before, helpers.global_random_state())
    # The comparison sees a single draw from either generator.
    for draw in (np.random.rand, torch.rand):
        state = helpers.global_random_state()
        draw(1)
        with pytest.raises(AssertionError):
            helpers.assert_same_global_random_state(
                state, helpers.global_random_state()
            )


def test_random_state_none_gives_different_fits(small_digits):
    X, _ = small_digits
    a = make_dae(random_state=None, max_iter=2).fit(X)
    b = make_dae(random_state=None, max_iter=2).fit(X)
    assert not np.allclose(a.transform(X), b.transform(X))


# -- persistence ---------------------------------------------------------------


def test_pickle_and_joblib_round_trips_are_bit_identical(
    small_digits, helpers, tmp_path
):
    X, _ = small_digits
    dae = make_dae().fit(X)
    path = tmp_path / "dae.joblib"
    joblib.dump(dae, path)
    for restored in (pickle.loads(pickle.dumps(dae)), joblib.load(path)):
        assert helpers.state_dicts_equal(restored.module_, dae.module_)
        np.testing.assert_array_equal(restored.transform(X), dae.transform(X))
        np.testing.assert_array_equal(restored.encode(X), dae.encode(X))
        assert restored.score(X) == dae.score(X)
        assert restored.get_params() == dae.get_params()
        assert restored.loss_curve_ == dae.loss_curve_


def test_pickled_state_holds_tensors_not_torch_modules(small_digits):
    X, _ = small_digits
    dae = make_dae().fit(X)
    state = dae.__getstate__()
    assert isinstance(state["module_"], bytes)
    weights = torch.load(io.BytesIO(state["module_"]), weights_only=True)
    assert weights.keys() == dae.module_.state_dict().keys()
    for name, tensor in dae.module_.state_dict().items():
        assert torch.equal(weights[name], tensor)
    assert isinstance(state["_optimizer_state"], bytes)
    torch.load(io.BytesIO(state["_optimizer_state"]), weights_only=True)
    # No class of a torch module is named anywhere in the pickle.
    data = pickle.dumps(dae)
    assert b"torch.nn.modules" not in data
    assert b"denoisenet._networks" not in data
    # __getstate__ hands out a copy: the estimator keeps its module.
    assert isinstance(dae.module_, torch.nn.Module)


def test_unpickled_estimator_keeps_working(small_digits):
    X, _ = small_digits
    dae = make_dae().fit(X)
    restored = pickle.loads(pickle.dumps(dae)).set_params(device="cpu")
    np.testing.assert_array_equal(restored.transform(X), dae.transform(X))
    restored.partial_fit(X)
    assert restored.n_iter_ == dae.n_iter_ + 1
    # The optimiser state travelled too: the next epoch is the same as the
    # original's next epoch.
    dae.partial_fit(X)
    np.testing.assert_array_equal(restored.transform(X), dae.transform(X))


def test_unfitted_estimator_round_trips(small_digits):
    X, _ = small_digits
    restored = pickle.loads(pickle.dumps(make_dae()))
    assert restored.get_params() == make_dae().get_params()
    restored.fit(X)
    np.testing.assert_array_equal(restored.transform(X), make_dae().fit(X).transform(X))


def test_clone_gives_an_unfitted_estimator_with_the_same_params(small_digits, helpers):
    X, _ = small_digits
    dae = make_dae(noise=GaussianPixelNoise(0.3)).fit(X)
    copy_ = clone(dae)
    assert helpers.fitted_attributes(copy_) == []
    assert copy_.get_params()["noise__std"] == 0.3
    params, copy_params = dae.get_params(deep=False), copy_.get_params(deep=False)
    assert params.keys() == copy_params.keys()
    for name in params:
        if name != "noise":
            assert copy_params[name] == params[name]


# -- bad input -----------------------------------------------------------------


def _bad_inputs():
    X = load_digits().data[:20]
    nan, inf = X.copy(), X.copy()
    nan[3, 5] = np.nan
    inf[4, 6] = np.inf
    return [
        pytest.param(nan, "Input X contains NaN", id="nan"),
        pytest.param(inf, "Input X contains infinity", id="inf"),
        pytest.param(X[:0], "0 sample", id="empty"),
        pytest.param(X[0], "Expected 2D array", id="1d"),
    ]


@pytest.mark.parametrize(("X_bad", "message"), _bad_inputs())
def test_fit_rejects_bad_input(X_bad, message, helpers):
    dae = make_dae()
    with pytest.raises(ValueError, match=message):
        dae.fit(X_bad)
    assert helpers.fitted_attributes(dae) == []


@pytest.mark.parametrize(("X_bad", "message"), _bad_inputs())
@pytest.mark.parametrize("method", ["transform", "encode", "score", "partial_fit"])
def test_methods_reject_bad_input(small_digits, X_bad, message, method):
    X, _ = small_digits
    dae = make_dae(max_iter=1).fit(X)
    with pytest.raises(ValueError, match=message):
        getattr(dae, method)(X_bad)


@pytest.mark.parametrize("method", ["transform", "encode", "score", "partial_fit"])
def test_methods_reject_a_different_number_of_features(small_digits, method):
    X, _ = small_digits
    dae = make_dae(max_iter=1).fit(X)
    n_iter = dae.n_iter_
    with pytest.raises(ValueError, match="features"):
        getattr(dae, method)(X[:, :10])
    assert dae.n_iter_ == n_iter


def test_decode_rejects_codes_of_the_wrong_width(small_digits):
    X, _ = small_digits
    dae = make_dae(max_iter=1).fit(X)
    with pytest.raises(ValueError, match="8"):
        dae.decode(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="Input Z contains NaN"):
        dae.decode(np.full((3, 8), np.nan))
    # Not "outside the range seen in fit" (codes are not in the data's
    # units), and no numpy overflow warning on the way.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="beyond float32's range"):
            dae.decode(np.full((3, 8), 1e300))


INVALID_PARAMS = [
    ("hidden_layer_sizes", 0),
    ("hidden_layer_sizes", ()),
    ("hidden_layer_sizes", (-1,)),
    ("hidden_layer_sizes", (8, 0)),
    ("hidden_layer_sizes", "a"),
    ("activation", "foo"),
    ("alpha", -1),
    ("batch_size", 0),
    ("batch_size", "big"),
    ("learning_rate_init", 0),
    ("learning_rate_init", -1),
    ("learning_rate_init", "fast"),
    ("learning_rate_init", "AUTO"),
    ("max_iter", 0),
    ("max_iter", 2.5),
    ("early_stopping", "yes"),
    ("validation_fraction", 0),
    ("validation_fraction", 1),
    ("validation_fraction", 1.5),
    ("n_iter_no_change", 0),
    ("tol", -1),
    ("tol", np.nan),
    ("shuffle", None),
    ("device", "tpu"),
    ("device", "cuda:x"),
    ("random_state", "seed"),
    ("random_state", -1),
    ("random_state", 2**32),
    ("noise", -0.1),
    ("noise", "x"),
    ("noise", np.inf),
]


@pytest.mark.parametrize(("name", "value"), INVALID_PARAMS)
def test_invalid_parameter_is_named_at_fit(small_digits, helpers, name, value):
    X, _ = small_digits
    dae = make_dae(**{name: value})
    got = re.escape(repr(value))
    pattern = f"'{name}' parameter of DenoisingAutoencoder.*Got {got} instead"
    with pytest.raises(ValueError, match=pattern):
        dae.fit(X)
    assert helpers.fitted_attributes(dae) == []
    # __init__ stored the value as it was given.
    assert dae.get_params()[name] is value


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, 4e-3),
        ({"architecture": "conv", "image_shape": (8, 8)}, 2e-3),
        (
            {"architecture": "conv", "image_shape": (8, 8), "learning_rate_init": 0.01},
            0.01,
        ),
        ({"learning_rate_init": 0.01}, 0.01),
    ],
)
def test_auto_learning_rate_init_follows_the_architecture(
    small_digits, params, expected
):
    X, _ = small_digits
    dae = make_dae(conv_channels=(2, 4), learning_rate="constant", max_iter=1, **params)
    dae.fit(X)
    # Adam took the resolved step; the parameter is left as the user set it.
    groups = dae._optimizer_state["param_groups"]
    assert [group["lr"] for group in groups] == [expected] * len(groups)
    assert dae.get_params()["learning_rate_init"] == params.get(
        "learning_rate_init", "auto"
    )


def test_an_int_random_state_out_of_range_is_told_its_range(small_digits):
    X, _ = small_digits
    # "must be ... an int. Got 4294967296" read as a contradiction.
    with pytest.raises(ValueError, match=re.escape("an int in [0, 2**32 - 1]")):
        make_dae(random_state=2**32).fit(X)


def test_invalid_noise_transformer_parameter_is_named_at_fit(small_digits):
    X, _ = small_digits
    with pytest.raises(ValueError, match="'std' parameter of GaussianPixelNoise"):
        make_dae(noise=GaussianPixelNoise(std=-1.0)).fit(X)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_an_error(small_digits, helpers, device):
    X, _ = small_digits
    dae = make_dae(device=device)
    with pytest.raises(ValueError, match="CUDA"):
        dae.fit(X)
    assert helpers.fitted_attributes(dae) == []


def test_setting_an_absent_device_after_fit_fails_at_transform(small_digits):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    X, _ = small_digits
    dae = make_dae(max_iter=1).fit(X)
    dae.set_params(device="cuda")
    with pytest.raises(ValueError, match="CUDA"):
        dae.transform(X)


# -- inputs are left alone -----------------------------------------------------


@pytest.mark.parametrize(
    "scale", [1.0, 255.0], ids=["float32-in-unit-range", "float32-0-255"]
)
def test_inputs_are_never_modified(small_digits, scale):
    # float32 data in [0, 1] is shared with torch without a copy: the path
    # where an in-place operation would reach the caller's array.
    X = (small_digits[0] * scale).astype(np.float32)
    original = X.copy()
    dae = make_dae(max_iter=2)
    dae.fit(X)
    dae.partial_fit(X)
    dae.transform(X)
    dae.encode(X)
    dae.score(X)
    dae.decode(dae.encode(X))
    np.testing.assert_array_equal(X, original)


# -- non-finite loss -----------------------------------------------------------


def test_non_finite_loss_raises_and_leaves_the_estimator_unfitted(
    small_digits, helpers
):
    X, _ = small_digits
    # A real divergence: Adam steps of 1e30 overflow the activations.
    dae = make_dae(learning_rate_init=1e30)
    with pytest.raises(NonFiniteLossError, match="smaller learning_rate_init"):
        dae.fit(X)
    assert helpers.fitted_attributes(dae) == []
    assert vars(dae).keys() == dae.get_params(deep=False).keys()
    # The error is a ValueError, as scikit-learn's callers expect.
    assert issubclass(NonFiniteLossError, ValueError)


def test_non_finite_loss_in_a_warm_refit_keeps_the_previous_fit(small_digits, helpers):
    X, _ = small_digits
    dae = make_dae(max_iter=3).fit(X)
    twin = pickle.loads(pickle.dumps(dae))
    before = {k: copy.deepcopy(v) for k, v in vars(dae).items() if k != "module_"}
    module_before = copy.deepcopy(dae.module_)
    # set_params takes effect in a warm refit: the huge step diverges.
    dae.set_params(warm_start=True, learning_rate_init=1e30)
    with pytest.raises(NonFiniteLossError, match="smaller learning_rate_init"):
        dae.fit(X)
    assert helpers.state_dicts_equal(dae.module_, module_before)
    assert dae.n_iter_ == 3
    assert dae.loss_curve_ == before["loss_curve_"]
    assert helpers.fitted_attributes(dae) == sorted(
        [k for k in before if k.endswith("_")] + ["module_"]
    )
    # Nothing of the failed fit lingers (Adam's moments included): training
    # on continues exactly as from the untouched copy.
    dae.set_params(warm_start=False, learning_rate_init=twin.learning_rate_init)
    dae.partial_fit(X)
    twin.partial_fit(X)
    assert helpers.state_dicts_equal(dae.module_, twin.module_)


# -- interrupts ----------------------------------------------------------------


def test_keyboard_interrupt_keeps_the_last_completed_epoch(
    small_digits, helpers, monkeypatch, interrupt_epoch
):
    X, _ = small_digits
    interrupt_epoch(3)
    dae = make_dae(max_iter=10)
    with pytest.warns(UserWarning, match="interrupted") as record:
        dae.fit(X)
    # The warning points at the caller's line, not into the library.
    interrupted = [w for w in record if "interrupted" in str(w.message)]
    assert [w.filename for w in interrupted] == [__file__]
    assert dae.n_iter_ == 2
    assert len(dae.loss_curve_) == 2
    monkeypatch.undo()
    two_epochs = make_dae(max_iter=2).fit(X)
    assert helpers.state_dicts_equal(dae.module_, two_epochs.module_)
    assert dae.loss_curve_ == two_epochs.loss_curve_
    np.testing.assert_array_equal(dae.transform(X), two_epochs.transform(X))
    dae.partial_fit(X)
    assert dae.n_iter_ == 3


def test_keyboard_interrupt_in_the_first_epoch_reraises_and_leaves_unfitted(
    small_digits, helpers, interrupt_epoch
):
    X, _ = small_digits
    interrupt_epoch(1)
    dae = make_dae()
    with pytest.raises(KeyboardInterrupt):
        dae.fit(X)
    assert helpers.fitted_attributes(dae) == []
    assert vars(dae).keys() == dae.get_params(deep=False).keys()


def test_keyboard_interrupt_in_the_first_epoch_of_a_warm_refit_keeps_the_fit(
    small_digits, helpers, interrupt_epoch
):
    X, _ = small_digits
    dae = make_dae(max_iter=2).fit(X)
    module_before = copy.deepcopy(dae.module_)
    interrupt_epoch(1)
    with pytest.raises(KeyboardInterrupt):
        dae.set_params(warm_start=True).fit(X)
    assert dae.n_iter_ == 2
    assert helpers.state_dicts_equal(dae.module_, module_before)


@pytest.mark.parametrize(
    "where, call, kept, early_stopping",
    [
        # epoch 2's validation pass: epoch 2 is not complete, epoch 1 stays
        ("_validate", 2, 1, True),
        # the snapshot that starts epoch 3: epochs 1 and 2 stay
        ("_snapshot", 3, 2, False),
        # after epoch 2 was recorded (the schedule's stall check)
        ("_stalled", 2, 2, False),
    ],
)
def test_keyboard_interrupt_between_batches_keeps_the_completed_epochs(
    small_digits,
    helpers,
    monkeypatch,
    interrupt_call,
    where,
    call,
    kept,
    early_stopping,
):
    # Ctrl-C outside the batches (validation, the per-epoch snapshot,
    # callbacks, the schedule) once an epoch is complete keeps that epoch,
    # as Ctrl-C inside the batches does, instead of losing the whole fit.
    X, _ = small_digits
    interrupt_call(where, call)
    dae = make_dae(max_iter=10, early_stopping=early_stopping)
    with pytest.warns(UserWarning, match=f"after {kept} epoch") as record:
        dae.fit(X)
    interrupted = [w for w in record if "interrupted" in str(w.message)]
    assert [w.filename for w in interrupted] == [__file__]
    assert dae.interrupted_ is True
    assert dae.n_iter_ == kept
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = make_dae(max_iter=kept, early_stopping=early_stopping).fit(X)
    assert helpers.state_dicts_equal(dae.module_, reference.module_)
    assert dae.loss_curve_ == reference.loss_curve_


# -- stopping ------------------------------------------------------------------


def test_convergence_warning_when_max_iter_ends_training(small_digits):
    X, _ = small_digits
    with pytest.warns(ConvergenceWarning, match="Maximum iterations") as record:
        dae = make_dae(max_iter=2).fit(X)
    assert record[0].filename == __file__
    assert dae.n_iter_ == 2


def test_no_convergence_warning_when_training_stalls_early(small_digits):
    X, _ = small_digits
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        dae = make_dae(
            tol=10.0, n_iter_no_change=1, max_iter=20, learning_rate="constant"
        ).fit(X)
    # Epoch 1 improves on an infinite loss; epochs 2 and 3 stall by tol=10,
    # and the second stalled epoch exceeds n_iter_no_change=1.
    assert dae.n_iter_ == 3


def test_early_stopping_restores_the_best_epoch(small_digits, helpers, monkeypatch):
    X, _ = small_digits
    original = denoisenet._training._validate
    seen = []

    def spy(module, objective, data):
        score = original(module, objective, data)
        seen.append((score, copy.deepcopy(module.state_dict()), objective, data))
        return score

    monkeypatch.setattr(denoisenet._training, "_validate", spy)
    dae = make_dae(
        early_stopping=True,
        validation_fraction=0.2,
        max_iter=15,
        n_iter_no_change=2,
        learning_rate_init=0.02,
    ).fit(X)
    scores = [s for s, *_ in seen]
    assert dae.validation_scores_ == scores
    assert len(scores) == dae.n_iter_ == len(dae.loss_curve_)
    assert dae.best_validation_score_ == max(scores)
    assert dae.best_loss_ is None
    assert all(s <= 0 for s in scores)  # negative denoising errors
    best = scores.index(max(scores))
    best_state = seen[best][1]
    final_state = dae.module_.state_dict()
    assert all(torch.equal(best_state[k], v) for k, v in final_state.items())
    # The restored network scores the best score on the held-out rows,
    # which are 20% of the data and not trained on.
    _, _, objective, data = seen[0]
    assert data.X_val.shape[0] == 40
    assert len(data.indices) == 160
    assert objective.validation_score(dae.module_, data.X_val, None) == pytest.approx(
        dae.best_validation_score_, rel=1e-6
    )


def test_early_stopping_restores_weights_from_before_the_last_epochs(
    small_digits, helpers, monkeypatch
):
    # Force the validation curve to peak in epoch 2; training then runs
    # n_iter_no_change + 1 more epochs, whose weights must be discarded.
    X, _ = small_digits
    states = []

    def validate(module, objective, data):
        states.append(copy.deepcopy(module.state_dict()))
        return [-3.0, -1.0, -2.0, -2.0, -2.0, -2.0][len(states) - 1]

    monkeypatch.setattr(denoisenet._training, "_validate", validate)
    dae = make_dae(
        early_stopping=True, max_iter=20, n_iter_no_change=3, learning_rate="constant"
    ).fit(X)
    assert dae.n_iter_ == 6
    assert dae.validation_scores_ == [-3.0, -1.0, -2.0, -2.0, -2.0, -2.0]
    assert dae.best_validation_score_ == -1.0
    final_state = dae.module_.state_dict()
    assert all(torch.equal(states[1][k], v) for k, v in final_state.items())
    assert not all(torch.equal(states[-1][k], v) for k, v in final_state.items())


# -- warm start and partial_fit ------------------------------------------------


def test_warm_start_continues_training(small_digits, helpers):
    X, _ = small_digits
    dae = make_dae(max_iter=3).fit(X)
    first_curve = list(dae.loss_curve_)
    module_before = copy.deepcopy(dae.module_)
    dae.set_params(warm_start=True, max_iter=2).fit(X)
    assert dae.n_iter_ == 5
    assert dae.loss_curve_[:3] == first_curve
    assert len(dae.loss_curve_) == 5
    assert not helpers.state_dicts_equal(dae.module_, module_before)
    # Without warm_start, fit starts afresh.
    dae.set_params(warm_start=False).fit(X)
    assert dae.n_iter_ == 2
    assert helpers.state_dicts_equal(dae.module_, make_dae(max_iter=2).fit(X).module_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_warm_start_with_early_stopping_keeps_the_best_of_every_call(
    small_digits, helpers
):
    # A continuation that only made things worse kept its last weights while
    # best_validation_score_ still told of the earlier call's best.
    X, _ = small_digits
    params = dict(early_stopping=True, warm_start=True, n_iter_no_change=50)
    dae = make_dae(max_iter=6, **params).fit(X)
    best_before, module_before = dae.best_validation_score_, copy.deepcopy(dae.module_)
    dae.set_params(learning_rate_init=0.5, max_iter=3).fit(X)
    assert max(dae.validation_scores_[6:]) < best_before
    assert dae.best_validation_score_ == best_before
    assert helpers.state_dicts_equal(dae.module_, module_before)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_warm_start_holds_out_the_same_rows_in_every_call(small_digits):
    # The split was drawn afresh in each call: earlier validation rows became
    # training rows, and the scores of two calls measured different rows.
    X, _ = small_digits
    # Without batch normalisation, whose running statistics move whatever
    # the step.
    dae = make_dae(max_iter=4, early_stopping=True, warm_start=True, batch_norm=False)
    dae.fit(X)
    best = dae.best_validation_score_
    # A step too small to move the weights: the same rows give the same score.
    dae.set_params(learning_rate_init=1e-30, max_iter=1).fit(X)
    assert dae.validation_scores_[-1] == pytest.approx(best, abs=1e-7)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_best_loss_after_early_stopping_counts_every_epoch(small_digits):
    # partial_fit after an early-stopping fit tracked the loss afresh:
    # best_loss_ was its own epoch's loss, above the lowest of loss_curve_.
    X, _ = small_digits
    dae = make_dae(max_iter=5, early_stopping=True).fit(X)
    assert dae.best_loss_ is None
    for _ in range(3):
        dae.set_params(learning_rate_init=0.5).partial_fit(X)
        assert dae.best_loss_ == min(dae.loss_curve_)
    assert dae.loss_curve_[-1] > min(dae.loss_curve_)


def test_partial_fit_runs_one_epoch_per_call(small_digits, helpers):
    X, _ = small_digits
    dae = make_dae(max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        dae.partial_fit(X)
        assert dae.n_iter_ == 1
        assert len(dae.loss_curve_) == 1
        module_before = copy.deepcopy(dae.module_)
        dae.partial_fit(X[:100])
    assert dae.n_iter_ == 2
    assert len(dae.loss_curve_) == 2
    assert not helpers.state_dicts_equal(dae.module_, module_before)
    assert dae.data_min_ == 0.0
    assert dae.data_range_ == 1.0
    with pytest.raises(ValueError, match="features"):
        dae.partial_fit(X[:, :32])
    assert dae.n_iter_ == 2


def test_partial_fit_after_an_early_stopping_fit_counts_on(small_digits):
    X, _ = small_digits
    dae = make_dae(early_stopping=True, max_iter=3).fit(X)
    n_iter, curve = dae.n_iter_, list(dae.loss_curve_)
    dae.partial_fit(X)
    assert dae.n_iter_ == n_iter + 1
    assert dae.loss_curve_[:-1] == curve


def test_partial_fit_learns_the_range_on_its_first_call(small_digits):
    X, _ = small_digits
    dae = make_dae().partial_fit(X * 255)
    assert (dae.data_min_, dae.data_range_) == (0.0, 255.0)
    dae.partial_fit(X)
    assert (dae.data_min_, dae.data_range_) == (0.0, 255.0)


# -- verbosity -----------------------------------------------------------------


def test_verbose_shows_progress(small_digits, capsys):
    X, _ = small_digits
    make_dae(max_iter=3, verbose=1).fit(X)
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert "3/3" in shown
    assert "loss" in shown


def test_verbose_zero_prints_nothing(small_digits, capsys):
    X, _ = small_digits
    make_dae(max_iter=3, verbose=0).fit(X)
    assert capsys.readouterr() == ("", "")


# -- transform, encode, decode -------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [(np.float64, np.float64), (np.float32, np.float32), (np.uint8, np.float32)],
)
def test_transform_shape_and_dtype(small_digits, dtype, expected):
    X, _ = small_digits
    X_in = (X * 255).astype(dtype)
    dae = make_dae(max_iter=2).fit(X_in)
    for out in (dae.transform(X_in), dae.fit_transform(X_in)):
        assert out.shape == X.shape
        assert out.dtype == expected
    code = dae.encode(X_in)
    assert code.shape == (200, 8)
    assert code.dtype == expected


def test_feature_names_and_pandas_output(small_digits):
    X, _ = small_digits
    columns = [f"pixel_{i}" for i in range(64)]
    frame = pd.DataFrame(X, columns=columns, index=np.arange(100, 300))
    dae = make_dae(max_iter=2).fit(frame)
    np.testing.assert_array_equal(dae.feature_names_in_, columns)
    np.testing.assert_array_equal(dae.get_feature_names_out(), columns)
    plain = make_dae(max_iter=2).fit(X)
    np.testing.assert_array_equal(
        plain.get_feature_names_out(), [f"x{i}" for i in range(64)]
    )
    out = dae.set_output(transform="pandas").transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == columns
    np.testing.assert_array_equal(out.index, frame.index)
    np.testing.assert_array_equal(out.to_numpy(), plain.transform(X))


def test_encode_has_the_width_of_the_narrowest_layer(small_digits):
    X, _ = small_digits
    dae = make_dae(hidden_layer_sizes=(24, 6, 6, 24), max_iter=1).fit(X)
    assert dae.encode(X).shape == (200, 6)
    assert make_dae(hidden_layer_sizes=5, max_iter=1).fit(X).encode(X).shape == (
        200,
        5,
    )


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_decode_of_encode_is_transform(small_digits, scale):
    X = small_digits[0] * scale
    dae = make_dae(max_iter=3).fit(X)
    np.testing.assert_allclose(
        dae.decode(dae.encode(X)), dae.transform(X), rtol=1e-6, atol=1e-6 * scale
    )


def test_unscaled_data_gives_the_same_model(small_digits):
    X, _ = small_digits
    unit = make_dae(max_iter=5).fit(X)
    wide = make_dae(max_iter=5).fit(X * 255)
    assert (wide.data_min_, wide.data_range_) == (0.0, 255.0)
    assert (unit.data_min_, unit.data_range_) == (0.0, 1.0)
    np.testing.assert_allclose(
        wide.transform(X * 255) / 255, unit.transform(X), atol=1e-5
    )
    assert wide.score(X * 255) == pytest.approx(unit.score(X) * 255**2, rel=1e-4)
    # 8-bit pixels, rounded, and data with an offset train the same network
    # to within the rounding (without batch normalisation, whose batch
    # statistics carry the rounding further over the epochs).
    pixels = np.rint(X * 255).astype(np.uint8)
    plain = make_dae(max_iter=5, batch_norm=False).fit(X)
    eight_bit = make_dae(max_iter=5, batch_norm=False).fit(pixels)
    np.testing.assert_allclose(
        eight_bit.transform(pixels) / 255, plain.transform(X), atol=0.02
    )
    # Data inside [0, 1] is not stretched, even when it spans less.
    faint = make_dae(max_iter=1).fit(X * 0.5 + 0.25)
    assert (faint.data_min_, faint.data_range_) == (0.0, 1.0)
    shifted = make_dae(max_iter=5).fit(X * 255 + 1000)
    assert (shifted.data_min_, shifted.data_range_) == (1000.0, 255.0)
    np.testing.assert_allclose(
        (shifted.transform(X * 255 + 1000) - 1000) / 255, unit.transform(X), atol=1e-3
    )


def test_score_is_the_negative_reconstruction_error(small_digits):
    X, _ = small_digits
    plain = make_dae(noise=None).fit(X)
    mse = np.mean((plain.transform(X) - X) ** 2)
    assert plain.score(X) == pytest.approx(-mse, rel=1e-5)
    wide = make_dae(noise=None).fit(X * 255)
    assert wide.score(X * 255) == pytest.approx(
        -np.mean((wide.transform(X * 255) - X * 255) ** 2), rel=1e-5
    )
    noisy = make_dae(noise=0.3).fit(X)
    scores = [noisy.score(X) for _ in range(3)]
    assert scores[0] < 0
    assert scores == [scores[0]] * 3


@pytest.mark.parametrize(
    "noise",
    [
        0.3,
        GaussianPixelNoise(0.3),
        GaussianPixelNoise(0.3, clip=None),
        SaltAndPepperNoise(0.2),
        MaskingNoise(0.3),
    ],
    ids=lambda n: repr(n),
)
def test_noise_accepts_floats_and_noise_transformers(small_digits, noise, helpers):
    X, _ = small_digits
    dae = make_dae(noise=noise, max_iter=2).fit(X)
    clean = make_dae(noise=None, max_iter=2).fit(X)
    # The noise is used: the same seed without noise trains other weights.
    assert not helpers.state_dicts_equal(dae.module_, clean.module_)
    out = dae.transform(X)
    assert out.shape == X.shape
    assert np.all((out >= 0) & (out <= 1))


def test_float_noise_is_clipped_gaussian_noise_and_zero_is_none(small_digits, helpers):
    X, _ = small_digits
    as_float = make_dae(noise=0.3, max_iter=2).fit(X)
    as_transformer = make_dae(noise=GaussianPixelNoise(0.3), max_iter=2).fit(X)
    assert helpers.state_dicts_equal(as_float.module_, as_transformer.module_)
    zero = make_dae(noise=0.0, max_iter=2).fit(X)
    none = make_dae(noise=None, max_iter=2).fit(X)
    assert helpers.state_dicts_equal(zero.module_, none.module_)


def test_noise_transformer_params_are_nested_params(small_digits, helpers):
    X, _ = small_digits
    dae = make_dae(noise=GaussianPixelNoise(0.1, random_state=1), max_iter=2)
    dae.set_params(noise__std=0.5)
    assert dae.get_params()["noise__std"] == 0.5
    dae.fit(X)
    direct = make_dae(noise=GaussianPixelNoise(0.5, random_state=2), max_iter=2).fit(X)
    # The training loop's random state draws the noise, not the noise
    # transformer's own random_state.
    assert helpers.state_dicts_equal(dae.module_, direct.module_)


# -- the study: denoising helps a classifier trained on clean digits -----------


def test_denoising_recovers_accuracy_on_noisy_digits(digits):
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=0, stratify=y
    )
    classifier = LogisticRegression(max_iter=2000).fit(X_train, y_train)
    dae = DenoisingAutoencoder(
        (128, 64, 128),
        noise=0.5,
        max_iter=30,
        batch_size=64,
        learning_rate_init=5e-3,
        random_state=0,
    ).fit(X_train)
    # Three noisy copies of the test set average over the noise draws.
    X_clean = np.tile(X_test, (3, 1))
    y_clean = np.tile(y_test, 3)
    X_noisy = GaussianPixelNoise(0.5, random_state=0).fit_transform(X_clean)
    X_denoised = dae.transform(X_noisy)
    noisy_error = np.mean((X_noisy - X_clean) ** 2)
    denoised_error = np.mean((X_denoised - X_clean) ** 2)
    # Measured over seeds 0-7: error ratio 0.29-0.30, accuracy gain 0.04-0.075.
    assert denoised_error < 0.5 * noisy_error
    noisy_accuracy = classifier.score(X_noisy, y_clean)
    denoised_accuracy = classifier.score(X_denoised, y_clean)
    assert denoised_accuracy > noisy_accuracy + 0.02


# -- model selection -----------------------------------------------------------


def test_grid_search_over_a_pipeline(small_digits):
    X, y = small_digits
    pipe = Pipeline(
        [
            (
                "dae",
                DenoisingAutoencoder(
                    (32, 16, 32),
                    noise=GaussianPixelNoise(0.2),
                    max_iter=5,
                    random_state=0,
                ),
            ),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    )
    grid = {
        "dae__hidden_layer_sizes": [(32, 16, 32), (16,)],
        "dae__noise__std": [0.1, 0.3],
    }
    search = GridSearchCV(pipe, grid, cv=2, n_jobs=2).fit(X, y)
    assert (
        search.best_params_["dae__hidden_layer_sizes"]
        in grid["dae__hidden_layer_sizes"]
    )
    assert search.best_params_["dae__noise__std"] in grid["dae__noise__std"]
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    best_dae = search.best_estimator_.named_steps["dae"]
    assert best_dae.noise.std == search.best_params_["dae__noise__std"]
    assert best_dae.n_features_in_ == 64
    assert search.predict(X).shape == (200,)
    # The template in the search is left unfitted.
    assert not hasattr(pipe.named_steps["dae"], "module_")


def test_grid_search_on_a_lone_autoencoder_uses_its_score(small_digits):
    X, _ = small_digits
    search = GridSearchCV(
        make_dae(max_iter=3), {"noise": [None, 0.3]}, cv=2, n_jobs=1
    ).fit(X)
    assert np.all(search.cv_results_["mean_test_score"] < 0)
    assert search.best_params_["noise"] in (None, 0.3)


# -- a fitted model is never lost ----------------------------------------------


def test_interrupted_records_a_ctrl_c_after_an_epoch(small_digits, interrupt_epoch):
    X, _ = small_digits
    assert make_dae(max_iter=2).fit(X).interrupted_ is False
    interrupt_epoch(3)
    dae = make_dae(max_iter=10)
    with pytest.warns(UserWarning, match="interrupted"):
        dae.fit(X)
    assert dae.interrupted_ is True
    assert dae.n_iter_ == 2
    # The next call that runs to its end says so.
    dae.partial_fit(X)
    assert dae.interrupted_ is False


def test_an_unusable_device_after_fit_loses_nothing(small_digits, helpers):
    X, _ = small_digits
    dae = make_dae(max_iter=2, device="cpu").fit(X)
    module_before = copy.deepcopy(dae.module_)
    expected = dae.transform(X)
    for device in ["meta", torch.device("meta"), "xla", 0]:
        dae.set_params(device=device)
        for method in (dae.transform, dae.encode, dae.score):
            with pytest.raises(ValueError, match="'device' parameter"):
                method(X)
    assert helpers.state_dicts_equal(dae.module_, module_before)
    assert next(dae.module_.parameters()).device.type == "cpu"
    dae.set_params(device="cpu")
    np.testing.assert_array_equal(dae.transform(X), expected)


def test_inference_on_another_device_leaves_module_where_it_is(
    small_digits, monkeypatch
):
    # module_ is compared by identity and device: inference on a device
    # other than module_'s works on a copy. The "other device" is the CPU
    # seen as different, so that the test needs no GPU.
    X, _ = small_digits
    dae = make_dae(max_iter=2, device="cpu").fit(X)
    module = dae.module_
    expected = dae.transform(X)
    monkeypatch.setattr(denoisenet._base, "_same_device", lambda a, b: False)
    np.testing.assert_array_equal(dae.transform(X), expected)
    assert dae.module_ is module


def test_a_partial_fit_ending_in_non_finite_weights_keeps_the_model(
    small_digits, helpers, monkeypatch
):
    X, _ = small_digits
    dae = make_dae(max_iter=2, batch_size=200).fit(X)
    twin = pickle.loads(pickle.dumps(dae))
    module_before = copy.deepcopy(dae.module_)
    optimizer_before = copy.deepcopy(dae._optimizer_state)
    curve, n_iter = list(dae.loss_curve_), dae.n_iter_
    real_step = denoisenet._training.train_step

    def step(module, *args, **kwargs):
        # The loss is finite (it is taken before the step); the weights
        # that the step leaves are not.
        loss = real_step(module, *args, **kwargs)
        with torch.no_grad():
            next(module.parameters()).view(-1)[0] = float("inf")
        return loss

    monkeypatch.setattr(denoisenet._training, "train_step", step)
    with pytest.raises(NonFiniteLossError, match="left as it was"):
        dae.partial_fit(X)
    monkeypatch.undo()
    assert helpers.state_dicts_equal(dae.module_, module_before)
    state, before = dae._optimizer_state["state"], optimizer_before["state"]
    assert all(
        torch.equal(state[p][k], before[p][k]) for p in before for k in before[p]
    )
    assert dae.loss_curve_ == curve and dae.n_iter_ == n_iter
    dae.partial_fit(X)
    twin.partial_fit(X)
    assert helpers.state_dicts_equal(dae.module_, twin.module_)


def test_absurd_network_is_refused_before_it_is_built(small_digits, monkeypatch):
    X, _ = small_digits
    monkeypatch.setattr(
        denoisenet._base.NeuralEstimatorBase,
        "_module",
        lambda *args: pytest.fail("the network was built"),
    )
    for params in [
        {"hidden_layer_sizes": (10**6, 10**6)},
        {"hidden_layer_sizes": (10**20,)},
        {"architecture": "conv", "image_shape": (8, 8), "conv_channels": (10**7,)},
    ]:
        with pytest.raises(ValueError, match="parameters, which need") as info:
            make_dae(**params).fit(X)
        assert "hidden_layer_sizes" in str(info.value)


def test_a_tampered_file_is_refused_before_its_network_is_built(small_digits):
    X, _ = small_digits
    dae = make_dae(max_iter=1).fit(X)
    state = dae.__getstate__()
    huge = dict(state, _network_args={**state["_network_args"]})
    huge["_network_args"]["hidden_layer_sizes"] = (10**7, 10**7)
    with pytest.raises(ValueError, match="saved DenoisingAutoencoder's network"):
        DenoisingAutoencoder.__new__(DenoisingAutoencoder).__setstate__(huge)
    nonsense = dict(state, _network_args={**state["_network_args"], "n_features": -1})
    with pytest.raises(pickle.UnpicklingError, match="tampered"):
        DenoisingAutoencoder.__new__(DenoisingAutoencoder).__setstate__(nonsense)


def test_a_tampered_skops_file_gets_the_same_checks(small_digits, monkeypatch):
    sio = pytest.importorskip("skops.io")
    X, _ = small_digits
    dae = make_dae(max_iter=1).fit(X)
    real_getstate = DenoisingAutoencoder.__getstate__

    def tampered(self):
        state = real_getstate(self)
        args = {**state["_network_args"], "hidden_layer_sizes": (10**7, 10**7)}
        return {**state, "_network_args": args}

    monkeypatch.setattr(DenoisingAutoencoder, "__getstate__", tampered)
    blob = sio.dumps(dae)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="parameters, which need"):
        sio.loads(blob, trusted=sio.get_untrusted_types(data=blob))


# -- parameters are checked where they are used --------------------------------


@pytest.mark.parametrize(
    ("noise", "name"),
    [
        ("strong", "noise"),
        (MaskingNoise(fraction=5), "fraction"),
        (GaussianPixelNoise(std="0.2"), "std"),
    ],
)
def test_score_checks_a_noise_set_after_fit(small_digits, noise, name):
    X, _ = small_digits
    dae = make_dae(max_iter=1).fit(X)
    dae.set_params(noise=noise)
    with pytest.raises(ValueError, match=f"'{name}' parameter"):
        dae.score(X)


def test_a_generator_for_hidden_layer_sizes_is_refused_clearly(small_digits):
    X, _ = small_digits
    sizes = (s for s in (32, 8, 32))
    with pytest.raises(ValueError, match="pass a tuple or a list"):
        make_dae(hidden_layer_sizes=sizes).fit(X)
    assert list(sizes) == [32, 8, 32]


def test_early_stopping_on_too_few_samples_names_validation_fraction(small_digits):
    X, _ = small_digits
    for n, fraction in [(1, 0.1), (4, 0.9)]:
        dae = make_dae(
            early_stopping=True, validation_fraction=fraction, batch_norm=False
        )
        with pytest.raises(ValueError, match="validation_fraction") as info:
            dae.fit(X[:n])
        assert "test_size" not in str(info.value)


# -- batch normalisation -------------------------------------------------------


@pytest.mark.parametrize("architecture", ["dense", "conv"])
def test_batch_norm_normalises_every_hidden_dense_layer(small_digits, architecture):
    X, _ = small_digits
    params = {"architecture": architecture, "conv_channels": (4,), "max_iter": 3}
    dae = make_dae(**params).fit(X)  # batch_norm=True: the default
    norms = [m for m in dae.module_.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    # The encoder's two layers (the code included) and the decoder's hidden
    # one; never the layer that makes the output.
    assert [m.num_features for m in norms] == [32, 8, 32]
    plain = make_dae(batch_norm=False, **params).fit(X)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.module_.modules())
    # The running statistics were learned, and inference uses them: a row
    # gets the same output alone or among others, and refits are identical.
    assert not torch.equal(norms[0].running_mean, torch.zeros(32))
    np.testing.assert_array_equal(dae.transform(X[:1]), dae.transform(X)[:1])
    np.testing.assert_array_equal(dae.encode(X[:1]), dae.encode(X)[:1])
    again = make_dae(**params).fit(X)
    np.testing.assert_array_equal(again.transform(X), dae.transform(X))
    assert not np.array_equal(plain.transform(X), dae.transform(X))
    restored = pickle.loads(pickle.dumps(dae))
    np.testing.assert_array_equal(restored.transform(X), dae.transform(X))


def test_batch_norm_needs_two_rows_a_batch(small_digits, helpers):
    X, _ = small_digits
    dae = make_dae(batch_norm=True, batch_size=1)
    with pytest.raises(ValueError, match=r"batch_size=1.*batch_norm=False"):
        dae.fit(X)
    assert helpers.fitted_attributes(dae) == []
    with pytest.raises(ValueError, match=r"1 sample.*batch_norm=False"):
        make_dae(batch_norm=True).fit(X[:1])
    # Early stopping's held-out row would leave one to train on.
    held_out = make_dae(batch_norm=True, early_stopping=True)
    with pytest.raises(ValueError, match=r"leaves 1 to train on.*batch_norm=False"):
        held_out.fit(X[:2])
    assert helpers.fitted_attributes(held_out) == []
    make_dae(batch_norm=True, early_stopping=True).fit(X[:3])
    dae = make_dae(batch_norm=True).partial_fit(X)
    before = dae.transform(X)
    with pytest.raises(ValueError, match=r"1 sample.*batch_norm=False"):
        dae.partial_fit(X[:1])
    np.testing.assert_array_equal(dae.transform(X), before)
    # 9 rows in batches of 4 leave one row: it joins the batch before.
    odd = make_dae(batch_norm=True, batch_size=4, max_iter=2).fit(X[:9])
    assert np.isfinite(odd.loss_curve_).all()
    make_dae(batch_size=1, max_iter=1, batch_norm=False).fit(X[:5])
    make_dae(batch_norm=False).fit(X[:1])


def test_batch_norm_changed_before_a_warm_start_is_refused(small_digits):
    X, _ = small_digits
    dae = make_dae(batch_norm=True).fit(X)
    before = dae.transform(X)
    dae.set_params(batch_norm=False, warm_start=True)
    with pytest.raises(ValueError, match=r"batch_norm changed"):
        dae.fit(X)
    np.testing.assert_array_equal(dae.transform(X), before)


# -- the hand-written training step -------------------------------------------


@pytest.mark.parametrize(
    "params, fused",
    [
        ({}, True),
        ({"activation": "tanh"}, False),
        ({"architecture": "conv", "conv_channels": (4,)}, False),
        ({"batch_norm": True}, True),
    ],
    ids=["dense-relu", "tanh", "conv", "batch-norm"],
)
def test_dense_relu_networks_train_with_the_hand_written_step(
    small_digits, monkeypatch, params, fused
):
    """The dense ReLU network's step is written out (DenseSquaredErrorStep);
    it trains as autograd does, and every other network uses autograd."""
    X, _ = small_digits
    step_class = denoisenet._training.DenseSquaredErrorStep
    real_call = step_class.__call__
    taken = []

    def counting(self, *args):
        loss = real_call(self, *args)
        taken.append(loss is not None)
        return loss

    monkeypatch.setattr(step_class, "__call__", counting)
    dae = make_dae(max_iter=3, **params).fit(X)
    assert taken and all(taken) == fused and any(taken) == fused
    monkeypatch.setattr(step_class, "__call__", lambda self, *args: None)
    reference = make_dae(max_iter=3, **params).fit(X)
    assert dae.loss_curve_ == pytest.approx(reference.loss_curve_, rel=1e-5)
    np.testing.assert_allclose(
        dae.transform(X), reference.transform(X), rtol=1e-4, atol=1e-5
    )
    # Gradients live only within a step, whichever path took it.
    for model in (dae, reference):
        assert all(p.grad is None for p in model.module_.parameters())
