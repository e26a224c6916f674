"""Unit tests of the training loop, through a tiny module and scripted losses."""

import copy
import math
import sys
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from denoisenet._base import auto_batch_size, torch_generator
from denoisenet._training import (
    History,
    NonFiniteLossError,
    Objective,
    Schedule,
    TrainingData,
    make_optimizer,
    train,
)

N_ROWS = 8


def tiny_module(seed=0):
    """A 3-4-1 network, initialised from its own generator."""
    with torch.device("meta"):
        module = torch.nn.Sequential(
            torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)
        )
    module = module.to_empty(device="cpu")
    generator = torch_generator(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.uniform_(-1.0, 1.0, generator=generator)
    return module


def tiny_data(n=N_ROWS):
    X = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3) / (n * 3)
    return TrainingData(X, torch.arange(n))


def generators():
    return torch_generator(0), torch_generator(1)


def scripted(values):
    """A loss whose value is the next of ``values`` and whose gradient is
    that of the module's mean output, so the optimiser still moves.

    The loop sums losses in float32, so the tests script values that
    float32 holds exactly (sums of powers of 2).
    """
    values = list(values)

    def loss(module, inputs, targets, weights):
        out = module(inputs).mean()
        return out - out.detach() + values.pop(0)

    return loss


def run(
    objective,
    *,
    max_epochs,
    module=None,
    optimizer=None,
    data=None,
    history=None,
    early_stopping=False,
    **schedule,
):
    module = tiny_module() if module is None else module
    data = tiny_data() if data is None else data
    if optimizer is None:
        optimizer = make_optimizer(module, 0.01, 0.0, N_ROWS)
    schedule = Schedule(
        **{
            "batch_size": N_ROWS,
            "max_epochs": max_epochs,
            "shuffle": False,
            "early_stopping": early_stopping,
            "warn_on_max_iter": False,
            **schedule,
        }
    )
    history = History.start(early_stopping) if history is None else history
    train(module, optimizer, objective, data, schedule, history, generators(), "cpu")
    return module, optimizer, history


def weights_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- the stopping rule ---------------------------------------------------------


def sklearn_stopping_epoch(losses, tol, n_iter_no_change):
    """The epoch after which scikit-learn's MLP stops, on these losses."""
    best, count = math.inf, 0
    for epoch, loss in enumerate(losses, start=1):
        count = count + 1 if loss > best - tol else 0
        best = min(best, loss)
        if count > n_iter_no_change:
            return epoch, count, best
    return len(losses), count, best


TOL = 2.0**-13  # about 1e-4
SLIGHTLY_BELOW_HALF = 0.5 - 2.0**-15  # better than 0.5, by less than TOL


def test_stops_after_n_iter_no_change_plus_one_stalled_epochs():
    # Epochs 3-5 stall; the third stalled epoch exceeds n_iter_no_change=2,
    # so the improvement scripted for epoch 6 is never reached.
    losses = [1.0, 0.5, 0.5, SLIGHTLY_BELOW_HALF, 0.625, 0.125, 0.125]
    _, _, history = run(
        Objective(scripted(losses)), max_epochs=7, tol=TOL, n_iter_no_change=2
    )
    assert history.n_iter == 5
    assert history.loss_curve == losses[:5]
    assert history.no_improvement_count == 3
    # An improvement smaller than tol counts as stalled but is still the best.
    assert history.best_loss == SLIGHTLY_BELOW_HALF
    assert history.validation_scores is None


def test_an_improvement_by_tol_resets_the_count():
    # Epochs 3, 5 and 6 stall, but epoch 4 improves by more than tol in
    # between, so no run of stalled epochs exceeds n_iter_no_change=2.
    losses = [1.0, 0.875, 0.875, 0.625, 0.625, 0.625, 0.5]
    _, _, history = run(
        Objective(scripted(losses)), max_epochs=7, tol=0.125, n_iter_no_change=2
    )
    assert history.n_iter == 7
    assert history.best_loss == 0.5
    assert history.no_improvement_count == 0


@settings(max_examples=40, deadline=None)
@given(
    losses=st.lists(
        st.sampled_from([1.0, 0.75, 0.75 - 2.0**-15, 0.625, 0.5, 0.25]),
        min_size=1,
        max_size=10,
    ),
    tol=st.sampled_from([0.0, TOL, 0.125]),
    n_iter_no_change=st.integers(1, 3),
)
def test_stopping_rule_is_scikit_learns(losses, tol, n_iter_no_change):
    _, _, history = run(
        Objective(scripted(losses)),
        max_epochs=len(losses),
        tol=tol,
        n_iter_no_change=n_iter_no_change,
    )
    epoch, count, best = sklearn_stopping_epoch(losses, tol, n_iter_no_change)
    assert history.n_iter == epoch
    assert history.no_improvement_count == count
    assert history.best_loss == best
    assert history.loss_curve == losses[:epoch]


def adaptive_reference(losses, tol, n_iter_no_change):
    """Epochs run and learning-rate factors by epoch, written out by hand.

    A stall of half the epochs that would stop a constant rate (rounded
    up) divides the rate by 5 until it is a hundredth of the initial one;
    then the constant-rate rule (more than ``n_iter_no_change``) stops.
    """
    best, count, factor, factors = math.inf, 0, 1.0, []
    patience = math.ceil((n_iter_no_change + 1) / 2)
    for epoch, loss in enumerate(losses, start=1):
        factors.append(factor)
        count = count + 1 if loss > best - tol else 0
        best = min(best, loss)
        if factor > 1e-2 and count >= patience:
            factor, count = factor / 5, 0
        elif factor <= 1e-2 and count > n_iter_no_change:
            return epoch, factors
    return len(losses), factors


def lr_recording(values, rates, optimizer_box):
    """A scripted loss that also records the optimiser's rate per call."""
    loss = scripted(values)

    def recorded(module, inputs, targets, weights):
        rates.append(optimizer_box[0].param_groups[0]["lr"])
        return loss(module, inputs, targets, weights)

    return recorded


@settings(max_examples=60, deadline=None)
@given(
    losses=st.lists(
        st.sampled_from([1.0, 0.75, 0.5, 0.4375, 0.25, 0.125]),
        min_size=1,
        max_size=30,
    ),
    n_iter_no_change=st.integers(1, 12),
)
def test_adaptive_rate_divides_by_5_on_stalls_then_stops(losses, n_iter_no_change):
    module = tiny_module()
    optimizer = make_optimizer(module, 0.01, 0.0, N_ROWS)
    rates = []
    _, _, history = run(
        Objective(lr_recording(list(losses), rates, [optimizer])),
        max_epochs=len(losses),
        module=module,
        optimizer=optimizer,
        tol=TOL,
        n_iter_no_change=n_iter_no_change,
        learning_rate="adaptive",
    )
    epochs, factors = adaptive_reference(losses, TOL, n_iter_no_change)
    assert history.n_iter == epochs
    assert rates == pytest.approx([0.01 * f for f in factors[:epochs]], rel=1e-12)


def test_constant_rate_never_changes_the_learning_rate():
    module = tiny_module()
    optimizer = make_optimizer(module, 0.01, 0.0, N_ROWS)
    rates = []
    _, _, history = run(
        Objective(lr_recording([1.0] * 6, rates, [optimizer])),
        max_epochs=6,
        module=module,
        optimizer=optimizer,
        n_iter_no_change=3,
    )
    assert history.n_iter == 5
    assert rates == [0.01] * 5


@pytest.mark.parametrize(
    "n, min_rows, sizes",
    [(7, 1, [3, 3, 1]), (7, 2, [3, 4]), (6, 2, [3, 3]), (1, 2, [1])],
)
def test_a_too_small_last_batch_joins_the_one_before(n, min_rows, sizes):
    log = []
    run(
        Objective(recording_loss(log)),
        max_epochs=1,
        data=tiny_data(n),
        batch_size=3,
        min_batch_rows=min_rows,
    )
    assert [len(inputs) for inputs, _, _ in log] == sizes


def test_history_continues_across_calls():
    # What warm_start and partial_fit rely on: the first call ends with one
    # stalled epoch, so one more stalled epoch in the second call exceeds
    # n_iter_no_change=1; a fresh count would have run both epochs.
    history = History.start(False)
    module = tiny_module()
    run(
        Objective(scripted([1.0, 0.5, 0.5])),
        max_epochs=3,
        module=module,
        history=history,
        tol=TOL,
    )
    assert history.no_improvement_count == 1
    run(
        Objective(scripted([0.5, 0.5])),
        max_epochs=2,
        module=module,
        history=history,
        tol=TOL,
        n_iter_no_change=1,
    )
    assert history.n_iter == 4
    assert history.loss_curve == [1.0, 0.5, 0.5, 0.5]
    assert history.no_improvement_count == 2


# -- early stopping ------------------------------------------------------------


def scripted_validation(scores):
    """A validation score read from ``scores``; records the weights it saw."""
    scores = list(scores)
    seen = []

    def validation_score(module, X_val, targets_val):
        seen.append(copy.deepcopy(module.state_dict()))
        return scores.pop(0)

    return validation_score, seen


def with_validation(data):
    data.X_val = data.X[:2]
    return data


def test_early_stopping_restores_the_best_weights():
    scores = [0.1, 0.5, 0.3, 0.2, 0.4, 0.45, 0.9]
    validation_score, seen = scripted_validation(scores)
    objective = Objective(scripted([1.0] * 7), validation_score=validation_score)
    module, _, history = run(
        objective,
        max_epochs=7,
        data=with_validation(tiny_data()),
        early_stopping=True,
        tol=0.0,
        n_iter_no_change=3,
    )
    # Epoch 2 is the best; epochs 3-6 stall and the fourth stalled one stops.
    assert history.n_iter == 6
    assert history.validation_scores == scores[:6]
    assert history.best_validation_score == 0.5
    assert history.best_loss is None
    assert weights_equal(module.state_dict(), seen[1])
    assert not weights_equal(module.state_dict(), seen[-1])


def test_early_stopping_keeps_the_first_of_equal_scores():
    validation_score, seen = scripted_validation([0.5, 0.5, 0.5])
    objective = Objective(scripted([1.0] * 3), validation_score=validation_score)
    module, _, history = run(
        objective,
        max_epochs=3,
        data=with_validation(tiny_data()),
        early_stopping=True,
        tol=1e-4,
        n_iter_no_change=5,
    )
    assert history.n_iter == 3
    assert history.no_improvement_count == 2
    assert weights_equal(module.state_dict(), seen[0])


# -- interrupts and failures ---------------------------------------------------


def interrupting(loss, at_call):
    calls = []

    def wrapped(module, inputs, targets, weights):
        calls.append(1)
        if len(calls) == at_call:
            raise KeyboardInterrupt
        return loss(module, inputs, targets, weights)

    return wrapped


def test_interrupt_mid_epoch_keeps_the_last_completed_epoch():
    # Two batches per epoch: call 6 is the second batch of epoch 3, after
    # the first batch of epoch 3 has already moved the weights.
    def real_loss(module, inputs, targets, weights):
        return (module(inputs) ** 2).mean()

    reference, reference_optimizer, _ = run(
        Objective(real_loss), max_epochs=2, batch_size=4
    )
    with pytest.warns(UserWarning, match="after 2 epoch"):
        module, optimizer, history = run(
            Objective(interrupting(real_loss, 6)), max_epochs=5, batch_size=4
        )
    assert history.n_iter == 2
    assert len(history.loss_curve) == 2
    assert weights_equal(module.state_dict(), reference.state_dict())
    # Adam's state is that of epoch 2 too.
    state, reference_state = optimizer.state_dict(), reference_optimizer.state_dict()
    for key, values in state["state"].items():
        for name, value in values.items():
            assert torch.equal(value, reference_state["state"][key][name])


def test_interrupt_in_the_first_epoch_restores_and_reraises():
    def real_loss(module, inputs, targets, weights):
        return (module(inputs) ** 2).mean()

    module = tiny_module()
    initial = copy.deepcopy(module.state_dict())
    history = History.start(False)
    with pytest.raises(KeyboardInterrupt):
        run(
            Objective(interrupting(real_loss, 2)),
            max_epochs=3,
            batch_size=4,
            module=module,
            history=history,
        )
    assert weights_equal(module.state_dict(), initial)
    assert history.n_iter == 0
    assert history.loss_curve == []


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_raises_with_advice(bad):
    with pytest.raises(NonFiniteLossError, match=r"epoch 2\..*learning_rate_init"):
        run(Objective(scripted([1.0, bad, 1.0])), max_epochs=3)
    assert issubclass(NonFiniteLossError, ValueError)
    assert issubclass(NonFiniteLossError, FloatingPointError)


def test_convergence_warning_only_when_max_epochs_ends_training():
    losses = [1.0, 0.9, 0.8]
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\)"):
        run(Objective(scripted(losses)), max_epochs=3, warn_on_max_iter=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        # partial_fit's single epochs never warn.
        run(Objective(scripted(losses)), max_epochs=3, warn_on_max_iter=False)
        # Stopping on the stopping rule does not warn.
        _, _, history = run(
            Objective(scripted([1.0, 1.0, 1.0, 1.0])),
            max_epochs=4,
            warn_on_max_iter=True,
            tol=TOL,
            n_iter_no_change=1,
        )
    assert history.n_iter == 3


# -- epochs and batches --------------------------------------------------------


def test_epoch_loss_is_the_row_weighted_mean_of_batch_losses():
    # 5 rows in batches of 2, 2 and 1.
    _, _, history = run(
        Objective(scripted([1.0, 2.0, 3.0])),
        max_epochs=1,
        data=tiny_data(5),
        batch_size=2,
    )
    assert history.loss_curve == [pytest.approx((2 * 1.0 + 2 * 2.0 + 1 * 3.0) / 5)]


def recording_loss(log):
    def loss(module, inputs, targets, weights):
        log.append((inputs.clone(), targets, weights))
        return (module(inputs) ** 2).mean()

    return loss


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_cover_the_training_rows_once_per_epoch(shuffle):
    X = torch.arange(10, dtype=torch.float32)[:, None].repeat(1, 3)
    rows = torch.tensor([0, 2, 3, 5, 7, 8, 9])  # the others are held out
    weights = torch.arange(10, dtype=torch.float32) * 10
    data = TrainingData(X, rows, targets=X[:, 0] + 100, weights=weights)
    log = []
    run(
        Objective(recording_loss(log)),
        max_epochs=2,
        data=data,
        batch_size=3,
        shuffle=shuffle,
    )
    assert [len(inputs) for inputs, _, _ in log] == [3, 3, 1] * 2
    epochs = [
        torch.cat([inputs[:, 0] for inputs, _, _ in log[i : i + 3]]) for i in (0, 3)
    ]
    for seen in epochs:
        assert sorted(seen.tolist()) == rows.float().tolist()
    if shuffle:
        assert not torch.equal(epochs[0], epochs[1])
    else:
        assert torch.equal(epochs[0], rows.float())
        assert torch.equal(epochs[1], rows.float())
    # Targets and weights travel with their rows.
    for inputs, targets, batch_weights in log:
        assert torch.equal(targets, inputs[:, 0] + 100)
        assert torch.equal(batch_weights, inputs[:, 0] * 10)


def test_shuffling_is_reproducible_from_the_generator():
    logs = [], []
    for log in logs:
        run(Objective(recording_loss(log)), max_epochs=2, batch_size=3, shuffle=True)
    assert all(torch.equal(a, b) for (a, _, _), (b, _, _) in zip(*logs, strict=True))


def test_corruption_feeds_the_model_and_clean_rows_are_the_targets():
    generators_seen, log = [], []

    def corrupt(inputs, generator):
        generators_seen.append(generator)
        return inputs + 100

    def loss(module, inputs, targets, weights):
        log.append((inputs.clone(), targets.clone()))
        return ((module(inputs) - targets[:, :1]) ** 2).mean()

    data = tiny_data()
    _, _, _ = run(Objective(loss, corrupt=corrupt), max_epochs=1, data=data)
    ((inputs, targets),) = log
    assert torch.equal(targets, data.X)
    assert torch.equal(inputs, data.X + 100)
    # The noise generator, not the shuffling one.
    assert generators_seen[0].initial_seed() == 1


# -- the optimiser -------------------------------------------------------------


def test_make_optimizer_decays_weights_but_not_biases():
    module = tiny_module()
    optimizer = make_optimizer(module, 0.01, alpha=0.5, batch_size=10)
    groups = {g["weight_decay"]: g["params"] for g in optimizer.param_groups}
    assert set(groups) == {0.05, 0.0}
    named = dict(module.named_parameters())
    assert {id(p) for p in groups[0.05]} == {
        id(p) for n, p in named.items() if n.endswith("weight")
    }
    assert {id(p) for p in groups[0.0]} == {
        id(p) for n, p in named.items() if n.endswith("bias")
    }
    assert all(group["lr"] == 0.01 for group in optimizer.param_groups)
    # With a loss that has no gradient, only the penalty moves anything:
    # the weights shrink and the biases stay.
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(1.0)
    before = copy.deepcopy(module.state_dict())
    loss = module(torch.ones(2, 3)).sum() * 0.0
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    for name, value in module.state_dict().items():
        if name.endswith("bias"):
            assert torch.equal(value, before[name])
        else:
            assert torch.all(value < before[name])


def test_make_optimizer_without_penalty():
    optimizer = make_optimizer(tiny_module(), 0.001, alpha=0.0, batch_size=32)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.0, 0.0]


# -- progress ------------------------------------------------------------------


def test_progress_lines_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails
    validation_score, _ = scripted_validation([0.25, 0.5])
    run(
        Objective(scripted([1.0, 0.5]), validation_score=validation_score),
        max_epochs=2,
        data=with_validation(tiny_data()),
        early_stopping=True,
        verbose=1,
    )
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "Iteration 1, loss = 1, validation = 0.25",
        "Iteration 2, loss = 0.5, validation = 0.5",
    ]


def test_progress_bar_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    run(Objective(scripted([1.0, 0.5])), max_epochs=2, verbose=1)
    captured = capsys.readouterr()
    assert "2/2" in captured.err
    assert "loss=0.5" in captured.err


def test_silent_without_verbose(capsys):
    run(Objective(scripted([1.0, 0.5])), max_epochs=2, verbose=0)
    assert capsys.readouterr() == ("", "")


# -- defaults that depend on the size of the data ---------------------------


@pytest.mark.parametrize(
    "n_samples, largest, rows",
    [
        (1347, 128, 33),  # the digits' training split: 41 steps an epoch
        (5000, 128, 125),
        (60000, 128, 128),
        (60000, 256, 256),
        (100, 128, 32),  # never below 32 rows ...
        (20, 256, 20),  # ... unless there are fewer samples
        (1, 128, 1),
    ],
)
def test_auto_batch_size_gives_small_data_at_least_40_steps(n_samples, largest, rows):
    assert auto_batch_size(n_samples, largest, 40) == rows


@pytest.mark.parametrize("n_samples, rows", [(1347, 128), (60000, 128), (20, 20)])
def test_auto_batch_size_without_steps_is_the_largest(n_samples, rows):
    assert auto_batch_size(n_samples, 128) == rows


def test_the_estimators_auto_batch_sizes(monkeypatch):
    from denoisenet import BottleneckClassifier, DenoisingAutoencoder

    assert DenoisingAutoencoder()._batch_size(1347) == 33
    # 256 rows on large data (n_samples // 40 in between: 8000 // 40).
    assert DenoisingAutoencoder()._batch_size(60000) == 256
    assert DenoisingAutoencoder()._batch_size(8000) == 200
    assert DenoisingAutoencoder(batch_size=500)._batch_size(1347) == 500
    # The classifier's neighbour term needs several images of a class in a
    # batch: 128 rows at any size.
    assert BottleneckClassifier()._batch_size(1347) == 128


@pytest.fixture
def small_threshold(monkeypatch):
    """early_stopping='auto' switches on above 60 samples in these tests."""
    import denoisenet._base

    monkeypatch.setattr(denoisenet._base, "EARLY_STOPPING_MIN_SAMPLES", 60)


@pytest.mark.parametrize("make", ["dae", "clf"])
def test_early_stopping_auto_holds_out_data_only_on_large_data(small_threshold, make):
    from denoisenet import BottleneckClassifier, DenoisingAutoencoder

    rng = torch.Generator().manual_seed(0)
    X = torch.rand(80, 6, generator=rng).numpy()
    y = (X[:, 0] > 0.5).astype(int)

    def fit(n, **params):
        params = {"max_iter": 2, "random_state": 0, **params}
        if make == "dae":
            est = DenoisingAutoencoder((4,), **params)
            args = (X[:n],)
        else:
            est = BottleneckClassifier((4, 2, 4), **params)
            args = (X[:n], y[:n])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return est.fit(*args)

    assert fit(60).validation_scores_ is None
    large = fit(61)
    assert len(large.validation_scores_) == large.n_iter_ == 2
    assert large.best_loss_ is None
    # A bool means what it says at any size, and 'auto' is the default.
    assert fit(61, early_stopping=False).validation_scores_ is None
    assert len(fit(60, early_stopping=True).validation_scores_) == 2
    assert large.get_params()["early_stopping"] == "auto"
    # partial_fit never holds out data.
    est = fit(61)
    if make == "dae":
        est.partial_fit(X)
    else:
        est.partial_fit(X, y)
    assert est.validation_scores_ is None


def test_early_stopping_auto_names_itself_when_no_split_can_be_made(small_threshold):
    from denoisenet import BottleneckClassifier

    X = torch.rand(61, 6, generator=torch.Generator().manual_seed(0)).numpy()
    y = [0] * 30 + [1] * 30 + [2]
    clf = BottleneckClassifier((4, 2, 4), max_iter=2, random_state=0)
    with pytest.raises(ValueError, match=r"early_stopping='auto' \(on above 60 "):
        clf.fit(X, y)
    assert not hasattr(clf, "module_")
    # The message's way out works.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.set_params(early_stopping=False).fit(X, y)


# -- the hand-written step of the dense auto-encoder --------------------------


def _dense_autoencoder(seed=0, hidden=(12, 5, 12), activation="relu", **options):
    from denoisenet._networks import autoencoder_network

    torch.manual_seed(seed)
    return autoencoder_network(20, hidden, activation, **options)


def _steps(module, step, n_steps=5, rows=16, seed=0):
    """Weights and losses after ``n_steps`` optimiser steps of ``step``."""
    optimizer = make_optimizer(module, 1e-2, 1e-3, rows)
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(rows, 20, generator=generator)
    losses = []
    for i in range(n_steps):
        # Every third batch is short, as the last one of an epoch is.
        n = rows - 5 if i % 3 == 2 else rows
        target = images[:n]
        noisy = (target + 0.3 * torch.randn(n, 20, generator=generator)).clamp(0, 1)
        losses.append(float(step(module, optimizer, noisy, target)))
    return [p.detach().clone() for p in module.parameters()], losses


def _autograd_step(module, optimizer, inputs, targets):
    loss = torch.nn.functional.mse_loss(module(inputs), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("hidden", [(12, 5, 12), (7,), (16, 9, 4, 9, 16)])
def test_dense_step_takes_the_steps_of_autograd(hidden, batch_norm):
    from denoisenet._training import DenseSquaredErrorStep

    fused = DenseSquaredErrorStep()
    module = _dense_autoencoder(hidden=hidden, batch_norm=batch_norm)
    reference = _dense_autoencoder(hidden=hidden, batch_norm=batch_norm)
    weights, losses = _steps(module, fused, n_steps=12)
    expected_weights, expected_losses = _steps(reference, _autograd_step, n_steps=12)
    assert losses == pytest.approx(expected_losses, rel=1e-5)
    for mine, theirs in zip(weights, expected_weights, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
    # Batch normalisation's running statistics moved as the module's own
    # forward pass moves them.
    buffers = dict(module.named_buffers())
    expected_buffers = dict(reference.named_buffers())
    assert buffers.keys() == expected_buffers.keys()
    assert bool(buffers) == batch_norm
    for name, value in buffers.items():
        torch.testing.assert_close(value, expected_buffers[name], rtol=1e-5, atol=1e-6)
    # The loss fell: the steps trained the network.
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("batch_norm", [False, True])
def test_dense_step_leaves_no_gradients_and_reuses_its_buffers(batch_norm):
    from denoisenet._training import DenseSquaredErrorStep

    fused = DenseSquaredErrorStep()
    module = _dense_autoencoder(batch_norm=batch_norm)
    _steps(module, fused, n_steps=6)
    assert all(p.grad is None for p in module.parameters())
    # One set for the full batches, one for the short ones.
    assert sorted(fused._buffers) == [11, 16]


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(lambda: _dense_autoencoder(activation="tanh"), id="tanh"),
        pytest.param(
            lambda: torch.nn.Sequential(
                torch.nn.Linear(20, 20), torch.nn.ReLU(), torch.nn.Linear(20, 20)
            ),
            id="not-an-autoencoder",
        ),
    ],
)
def test_dense_step_declines_other_networks(module):
    from denoisenet._training import DenseSquaredErrorStep

    module = module()
    optimizer = make_optimizer(module, 1e-2, 0.0, 4)
    before = [p.detach().clone() for p in module.parameters()]
    x = torch.rand(4, 20)
    assert DenseSquaredErrorStep()(module, optimizer, x, x) is None
    # Declining took no step.
    after = list(module.parameters())
    assert all(torch.equal(p, q) for p, q in zip(after, before, strict=True))


def test_dense_step_declines_batch_norm_in_eval_mode_or_on_one_row():
    from denoisenet._training import DenseSquaredErrorStep

    module = _dense_autoencoder(batch_norm=True)
    optimizer = make_optimizer(module, 1e-2, 0.0, 4)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    x = torch.rand(4, 20)
    step = DenseSquaredErrorStep()
    assert step(module, optimizer, x[:1], x[:1]) is None
    module.eval()
    assert step(module, optimizer, x, x) is None
    # Declining took no step and left the running statistics alone.
    after = module.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    module.train()
    assert step(module, optimizer, x, x) is not None


def test_dense_step_declines_other_dtypes():
    from denoisenet._training import DenseSquaredErrorStep

    module = _dense_autoencoder()
    optimizer = make_optimizer(module, 1e-2, 0.0, 4)
    x = torch.rand(4, 20, dtype=torch.float64)
    assert DenseSquaredErrorStep()(module, optimizer, x, x) is None


# -- the optimiser step without Adam.step's wrapper ----------------------------


def _adam_run(stepper, n_steps=6, reload_at=3, lr_change_at=4, dtype=torch.float32):
    """Parameters and optimiser state after ``n_steps`` steps of ``stepper``,
    with what a fit does between steps: a learning rate cut ('adaptive')
    and a reload of the optimiser's state (the best weights' restore)."""
    module = tiny_module().to(dtype)
    optimizer = make_optimizer(module, 0.05, alpha=0.5, batch_size=8)
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(8, 3, generator=generator, dtype=dtype)
    y = torch.rand(8, 1, generator=generator, dtype=dtype)
    for i in range(n_steps):
        if i == reload_at:
            optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
        if i == lr_change_at:
            for group in optimizer.param_groups:
                group["lr"] /= 5
        loss = torch.nn.functional.mse_loss(module(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        stepper(optimizer)
    state = [
        (name, value.clone())
        for moments in optimizer.state_dict()["state"].values()
        for name, value in moments.items()
    ]
    return [p.detach().clone() for p in module.parameters()], state


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_step_is_bit_identical_to_optimizer_step(monkeypatch, dtype):
    from denoisenet import _training

    calls = []
    step = torch.optim.Adam.step

    def counting(self, *args, **kwargs):
        calls.append(self)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counting)
    mine = _adam_run(_training.adam_step, dtype=dtype)
    # torch's step took only the first (which makes the state); the direct
    # call of its kernel took the other five.
    assert len(calls) == 1
    monkeypatch.setattr(_training, "DIRECT_ADAM", False)
    calls.clear()
    theirs = _adam_run(_training.adam_step, dtype=dtype)
    assert len(calls) == 6
    mine_tensors = mine[0] + [value for _, value in mine[1]]
    theirs_tensors = theirs[0] + [value for _, value in theirs[1]]
    for a, b in zip(mine_tensors, theirs_tensors, strict=True):
        assert torch.equal(a, b)
    assert [n for n, _ in mine[1]] == [n for n, _ in theirs[1]]


def test_adam_step_runs_the_optimizers_hooks():
    from denoisenet._training import adam_step

    module = tiny_module()
    optimizer = make_optimizer(module, 0.05, alpha=0.0, batch_size=8)
    seen = []
    optimizer.register_step_post_hook(lambda opt, args, kwargs: seen.append(opt))
    x = torch.rand(8, 3)
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        module(x).square().mean().backward()
        adam_step(optimizer)
    assert seen == [optimizer] * 3


@pytest.mark.parametrize("case", ["amsgrad", "frozen-bias", "subclass"])
def test_adam_step_takes_torchs_step_where_it_differs(case):
    from denoisenet._training import _direct_adam_groups, adam_step

    class MyAdam(torch.optim.Adam):
        pass

    def build():
        module = tiny_module()
        params = list(module.parameters())
        kind = MyAdam if case == "subclass" else torch.optim.Adam
        optimizer = kind(params, lr=0.05, fused=True, amsgrad=case == "amsgrad")
        return module, optimizer

    def run(stepper):
        module, optimizer = build()
        x = torch.rand(8, 3, generator=torch.Generator().manual_seed(0))
        for i in range(4):
            optimizer.zero_grad(set_to_none=True)
            module(x).square().mean().backward()
            if case == "frozen-bias" and i >= 2:
                module[2].bias.grad = None  # a parameter without a gradient
            stepper(optimizer)
        return optimizer, [p.detach().clone() for p in module.parameters()]

    optimizer, mine = run(adam_step)
    # Declined with the state made and the gradients of the last step.
    assert _direct_adam_groups(optimizer) is None
    _, theirs = run(lambda optimizer: optimizer.step())
    assert all(torch.equal(a, b) for a, b in zip(mine, theirs, strict=True))


@pytest.mark.parametrize("estimator", ["autoencoder", "bottleneck"])
def test_fits_with_the_direct_step_equal_torchs(monkeypatch, estimator):
    import numpy as np

    from denoisenet import BottleneckClassifier, DenoisingAutoencoder, _training

    rng = np.random.default_rng(0)
    X = rng.random((96, 20), dtype=np.float32)
    y = np.arange(96) % 3

    def fit():
        if estimator == "autoencoder":
            model = DenoisingAutoencoder(hidden_layer_sizes=(8, 4, 8), max_iter=3)
        else:
            model = BottleneckClassifier(hidden_layer_sizes=(8, 2, 8), max_iter=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.set_params(random_state=0, batch_size=16, early_stopping=False)
            model.fit(X, y)
        return [p.detach().clone() for p in model.module_.parameters()]

    direct = fit()
    monkeypatch.setattr(_training, "DIRECT_ADAM", False)
    assert all(torch.equal(a, b) for a, b in zip(direct, fit(), strict=True))


def test_adam_step_leaves_a_foreign_state_to_torch():
    # A state that does not match its parameters (loaded from elsewhere) is
    # not handed to the kernel: torch's step and its own checks take it.
    from denoisenet._training import _direct_adam_groups

    module = tiny_module()
    optimizer = make_optimizer(module, 0.05, alpha=0.0, batch_size=8)
    module(torch.rand(8, 3)).square().mean().backward()
    optimizer.step()
    assert _direct_adam_groups(optimizer) is not None
    moments = optimizer.state[module[0].weight]
    moments["exp_avg"] = moments["exp_avg"].double()
    assert _direct_adam_groups(optimizer) is None
    moments["exp_avg"] = moments["exp_avg"].float()
    moments["step"] = 3.0
    assert _direct_adam_groups(optimizer) is None
