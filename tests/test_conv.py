"""``architecture="conv"`` on both estimators.

scikit-learn's conformance suite runs on conv instances in test_common.py;
the tests here cover what is particular to convolutions: the image shape,
the modules built, and the guarantees of the dense networks (pickling,
reproducibility, partial_fit, the bottleneck map) on conv networks.
"""

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from denoisenet import BottleneckClassifier, DenoisingAutoencoder
from denoisenet._networks import conv_output_shapes

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def conv_dae(**params):
    defaults = {
        "hidden_layer_sizes": (32, 8, 32),
        "conv_channels": (4, 8),
        "max_iter": 3,
        "random_state": 0,
        "architecture": "conv",
    }
    return DenoisingAutoencoder(**{**defaults, **params})


def conv_clf(**params):
    defaults = {
        "hidden_layer_sizes": (32, 2, 16),
        "conv_channels": (4, 8),
        "max_iter": 3,
        "learning_rate_init": 0.01,
        "random_state": 0,
        "architecture": "conv",
    }
    return BottleneckClassifier(**{**defaults, **params})


def layer_types(module):
    return [type(m) for m in module.modules()]


@pytest.mark.parametrize("make", [conv_dae, conv_clf])
def test_square_images_need_no_image_shape(small_digits, make):
    X, y = small_digits
    est = make().fit(X, y)
    convs = [m for m in est.module_.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8]
    assert est._network_args["image_shape"] == (8, 8)


def test_dense_architecture_builds_no_convolution(small_digits):
    X, y = small_digits
    for est in (
        DenoisingAutoencoder((16, 4, 16), max_iter=1, random_state=0).fit(X),
        BottleneckClassifier((16, 2, 8), max_iter=1, random_state=0).fit(X, y),
    ):
        types = layer_types(est.module_)
        assert nn.Conv2d not in types and nn.ConvTranspose2d not in types


@pytest.mark.parametrize("make", [conv_dae, conv_clf])
def test_non_square_images_without_image_shape_are_an_error(small_digits, make):
    X, y = small_digits
    est = make()
    with pytest.raises(ValueError, match=r"63 features, which is not a square"):
        est.fit(X[:, :63], y)
    assert not hasattr(est, "module_")


@pytest.mark.parametrize(
    ("image_shape", "message"),
    [
        ((8, 7), r"image_shape=\(8, 7\) has 56 pixels, but X has 64 features"),
        ((-1, 5), r"64 is not a multiple of 5"),
    ],
)
def test_image_shape_that_does_not_fit_the_features_is_an_error(
    small_digits, image_shape, message
):
    X, _ = small_digits
    est = conv_dae(image_shape=image_shape)
    with pytest.raises(ValueError, match=message):
        est.fit(X)
    assert not hasattr(est, "n_features_in_")


@pytest.mark.parametrize(
    "value", [(0, 8), (8,), (8, 8, 1), (-1, -1), "8x8", 64, (8.0, 8)]
)
def test_invalid_image_shape_is_named(small_digits, value):
    X, _ = small_digits
    with pytest.raises(ValueError, match=r"The 'image_shape' parameter of"):
        conv_dae(image_shape=value).fit(X)


@pytest.mark.parametrize(
    ("name", "value"),
    [("architecture", "cnn"), ("conv_channels", ()), ("conv_channels", (4, 0))],
)
def test_invalid_architecture_parameters_are_named(small_digits, name, value):
    X, _ = small_digits
    with pytest.raises(ValueError, match=rf"The '{name}' parameter of"):
        conv_dae(**{name: value}).fit(X)


@pytest.mark.parametrize(
    ("image_shape", "n_convolutions"),
    [((8, 8), 2), ((7, 5), 2), ((1, 13), 3), ((28, 28), 2), ((3, 1), 1)],
)
def test_decoder_restores_any_image_shape(image_shape, n_convolutions):
    # Odd sides round up in the encoder; the decoder's output padding must
    # bring every side back to its original length.
    n_features = image_shape[0] * image_shape[1]
    rng = np.random.default_rng(0)
    X = rng.random((30, n_features))
    channels = tuple(range(2, 2 + n_convolutions))
    dae = conv_dae(image_shape=image_shape, conv_channels=channels, max_iter=1)
    dae.fit(X)
    assert dae.transform(X).shape == X.shape
    assert dae.decode(dae.encode(X)).shape == X.shape
    shapes = conv_output_shapes(image_shape, n_convolutions)
    assert shapes[0] == image_shape
    assert all(len(s) == 2 for s in shapes)


def test_minus_one_stands_for_the_remaining_side():
    rng = np.random.default_rng(0)
    X = rng.random((20, 12))
    dae = conv_dae(image_shape=(3, -1), max_iter=1).fit(X)
    assert dae._network_args["image_shape"] == (3, 4)
    dae = conv_dae(image_shape=(-1, 12), max_iter=1).fit(X)
    assert dae._network_args["image_shape"] == (1, 12)


def test_conv_changes_the_model(small_digits):
    X, _ = small_digits
    dense = DenoisingAutoencoder((32, 8, 32), max_iter=3, random_state=0).fit(X)
    conv = conv_dae().fit(X)
    assert not np.allclose(dense.transform(X), conv.transform(X))


def test_conv_channels_is_ignored_by_dense_networks(small_digits, helpers):
    X, _ = small_digits
    a = DenoisingAutoencoder((16, 4, 16), max_iter=2, random_state=0).fit(X)
    b = DenoisingAutoencoder(
        (16, 4, 16), max_iter=2, random_state=0, conv_channels=(3,)
    ).fit(X)
    assert helpers.state_dicts_equal(a.module_, b.module_)


@pytest.mark.parametrize("make", [conv_dae, conv_clf])
def test_same_seed_gives_bit_identical_conv_fits(small_digits, helpers, make):
    X, y = small_digits
    a, b = make().fit(X, y), make().fit(X, y)
    assert helpers.state_dicts_equal(a.module_, b.module_)
    c = make(random_state=1).fit(X, y)
    assert not helpers.state_dicts_equal(a.module_, c.module_)


@pytest.mark.parametrize("make", [conv_dae, conv_clf])
def test_conv_fit_leaves_global_random_state_alone(small_digits, helpers, make):
    X, y = small_digits
    before = helpers.global_random_state()
    make().fit(X, y).transform(X)
    helpers.assert_same_global_random_state(before, helpers.global_random_state())


def test_conv_layers_are_initialised_glorot_with_he_gain(small_digits):
    X, _ = small_digits
    dae = conv_dae(max_iter=1).fit(X)
    # Fresh network from the stored arguments, initialised as fit does.
    net = dae._module(False, 123, torch.device("cpu"))
    first = net.encoder[1]
    assert isinstance(first, nn.Conv2d)
    fan_in, fan_out = 1 * 9, 4 * 9
    bound = np.sqrt(2.0) * np.sqrt(6.0 / (fan_in + fan_out))
    w = first.weight.detach().numpy()
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.8 * bound
    assert torch.count_nonzero(first.bias) == 0


@pytest.mark.parametrize("make", [conv_dae, conv_clf])
def test_conv_pickle_round_trip_is_bit_identical(small_digits, helpers, make):
    X, y = small_digits
    est = make().fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    assert helpers.state_dicts_equal(est.module_, again.module_)
    np.testing.assert_array_equal(est.transform(X), again.transform(X))


@pytest.mark.parametrize("make", [conv_dae, conv_clf])
def test_conv_partial_fit_runs_one_epoch_per_call(small_digits, make):
    X, y = small_digits
    est = make()
    kwargs = {"classes": np.unique(y)} if isinstance(est, BottleneckClassifier) else {}
    est.partial_fit(X, y, **kwargs)
    est.partial_fit(X, y)
    assert est.n_iter_ == 2
    assert len(est.loss_curve_) == 2


@pytest.mark.parametrize("make", [conv_dae, conv_clf])
def test_conv_transform_rows_do_not_depend_on_their_neighbours(small_digits, make):
    X, y = small_digits
    est = make().fit(X, y)
    whole = est.transform(X)
    np.testing.assert_array_equal(est.transform(X[7:19]), whole[7:19])
    np.testing.assert_array_equal(est.transform(X[::-1]), whole[::-1])


def test_conv_bottleneck_maps_to_two_columns_and_classifies(digits):
    X, y = digits
    clf = conv_clf(max_iter=30, hidden_layer_sizes=(64, 2, 32)).fit(X, y)
    assert clf.transform(X).shape == (len(X), 2)
    assert list(clf.get_feature_names_out()) == ["bottleneck0", "bottleneck1"]
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert clf.score(X, y) > 0.8


def test_conv_autoencoder_denoises_digits(digits):
    X, _ = digits
    dae = conv_dae(max_iter=30, noise=0.2, hidden_layer_sizes=(64, 32, 64)).fit(X)
    score_trained = dae.score(X)
    untrained = conv_dae(max_iter=1, noise=0.2, hidden_layer_sizes=(64, 32, 64))
    assert score_trained > untrained.fit(X).score(X)
    assert dae.encode(X).shape == (len(X), 32)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"architecture": "dense"}, "architecture"),
        ({"conv_channels": (4, 16)}, "conv_channels"),
        ({"hidden_layer_sizes": (32, 6, 32)}, "hidden_layer_sizes"),
    ],
)
def test_warm_start_with_another_network_is_an_error(small_digits, change, named):
    X, _ = small_digits
    dae = conv_dae(warm_start=True).fit(X)
    weights = {k: v.clone() for k, v in dae.module_.state_dict().items()}
    dae.set_params(**change)
    with pytest.raises(ValueError, match=rf"{named} changed since the network"):
        dae.fit(X)
    # The failed fit left the fitted estimator as it was.
    assert all(torch.equal(weights[k], v) for k, v in dae.module_.state_dict().items())
    assert dae.n_iter_ == 3


def test_warm_start_on_a_dense_network_ignores_conv_channels(small_digits):
    X, _ = small_digits
    dae = DenoisingAutoencoder((16, 4, 16), max_iter=2, warm_start=True).fit(X)
    dae.set_params(conv_channels=(8,)).fit(X)
    assert dae.n_iter_ == 4
