"""scikit-learn's conformance suite over every public estimator."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from denoisenet import (
    BottleneckClassifier,
    DenoisingAutoencoder,
    GaussianPixelNoise,
    MaskingNoise,
    SaltAndPepperNoise,
)

# Noise is drawn per position of a row in X, by design: the same seed gives
# the same noise to the same input, so a row's noise depends on where the row
# stands. Checks that compare the output on a subset or a permutation of the
# rows with the output on the whole therefore cannot hold for a noise
# transformer, any more than for a seeded sampler.
_ROW_POSITION = (
    "noise is drawn per row position by design, so the output for a row "
    "depends on the rows before it; see GaussianPixelNoise's Notes"
)
NOISE_XFAIL = {
    "check_methods_subset_invariance": _ROW_POSITION,
    "check_methods_sample_order_invariance": _ROW_POSITION,
}

# Three reasons, each enough. (1) The neighbour term (neighbor_weight, on by
# default) works on pairs of rows: a repeated row is its own nearest
# neighbour at distance 0, which no weight can express, so even exact
# arithmetic would not make weights equal repetition (zero weights do equal
# removal: test_bottleneck.py). (2) The training noise (noise='auto' on
# small data) is drawn per row, so a repeated row gets draws of its own
# where a weighted row gets one. (3) Training runs in float32: the weighted
# and the repeated data are summed in different orders, and the rounding
# differences grow over hundreds of Adam steps beyond the check's 1e-7.
# scikit-learn marks this check as failing for its own SGD estimators.
# test_bottleneck.py checks the equivalence of the classification loss to
# 1e-4 in a full-batch setting.
CLASSIFIER_XFAIL = {
    "check_sample_weight_equivalence_on_dense_data": (
        "the neighbour term works on pairs of rows, where a repeated row is its "
        "own nearest neighbour; the training noise is drawn per row, so a "
        "repeated row gets draws of its own; and float32 training on weighted "
        "vs repeated rows agrees only to rounding, not to 1e-7"
    ),
}

# Small settings, as scikit-learn uses for its own MLP in these checks.
ESTIMATORS = [
    GaussianPixelNoise(random_state=0),
    SaltAndPepperNoise(random_state=0),
    MaskingNoise(random_state=0),
    DenoisingAutoencoder((16, 4, 16), max_iter=20, random_state=0),
    DenoisingAutoencoder((16, 4, 16), batch_norm=False, max_iter=20, random_state=0),
    BottleneckClassifier(
        (32, 2, 16), max_iter=60, learning_rate_init=0.01, random_state=0
    ),
    # The checks' data have 1 to 30 or so features, rarely a square number:
    # image_shape=(1, -1) reads every row as a one-pixel-high image, so the
    # whole convolutional path (convolutions, transposed convolutions,
    # reshaping) runs on whatever width a check uses.
    DenoisingAutoencoder(
        (16, 4, 16),
        architecture="conv",
        image_shape=(1, -1),
        conv_channels=(4, 8),
        max_iter=20,
        random_state=0,
    ),
    # One convolution for the classifier: on the checks' 2-feature blobs a
    # second stride-2 convolution would see a 1 x 1 map, and that network
    # trained to below the checks' 83% for some seeds, with or without the
    # neighbour term (6 seeds measured; one convolution: 93-95%).
    BottleneckClassifier(
        (32, 2, 16),
        architecture="conv",
        image_shape=(1, -1),
        conv_channels=(8,),
        max_iter=60,
        learning_rate_init=0.01,
        random_state=0,
    ),
]


def _expected_failures(estimator):
    if isinstance(estimator, (GaussianPixelNoise, SaltAndPepperNoise, MaskingNoise)):
        return NOISE_XFAIL
    if isinstance(estimator, BottleneckClassifier):
        return CLASSIFIER_XFAIL
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_sklearn_conformance(estimator, check):
    check(estimator)


def test_every_public_estimator_is_checked():
    import denoisenet

    public = {
        name
        for name in denoisenet.__all__
        if isinstance(getattr(denoisenet, name), type)
    }
    assert public == {type(e).__name__ for e in ESTIMATORS}
    # Both neural estimators are checked with each architecture.
    architectures = {
        (type(e).__name__, e.architecture)
        for e in ESTIMATORS
        if hasattr(e, "architecture")
    }
    assert architectures == {
        (name, arch)
        for name in ("DenoisingAutoencoder", "BottleneckClassifier")
        for arch in ("dense", "conv")
    }


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_no_nondeterministic_or_poor_score_tags(estimator):
    tags = estimator.__sklearn_tags__()
    assert not tags.non_deterministic
    assert not tags.classifier_tags or not tags.classifier_tags.poor_score
    assert not tags.regressor_tags or not tags.regressor_tags.poor_score
