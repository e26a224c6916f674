"""Behaviour tests for denoisenet.noise.

scikit-learn's conformance suite (tests/test_common.py) already covers the
generic estimator API; these tests pin down what the noise itself does: its
values, its bounds, its statistics, its reproducibility, the agreement of the
numpy and torch paths, and the care taken with the caller's data.

Statistical tests compare against tolerances derived from the sample size
(five standard errors) and draw from fixed seeds, so they are deterministic.
"""

import math
import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline

from denoisenet import GaussianPixelNoise, MaskingNoise, SaltAndPepperNoise

NOISES = [GaussianPixelNoise, SaltAndPepperNoise, MaskingNoise]
# Settings under which every class visibly changes the data.
STRONG = {
    GaussianPixelNoise: {"std": 0.3},
    SaltAndPepperNoise: {"amount": 0.5},
    MaskingNoise: {"fraction": 0.5},
}
# Number of standard errors allowed between a statistic and its expectation.
Z = 5.0

noise_classes = pytest.mark.parametrize("cls", NOISES, ids=lambda c: c.__name__)
quick = settings(max_examples=25, deadline=None)
# Statistical properties: derandomized so that a run is reproducible.
statistical = settings(max_examples=15, deadline=None, derandomize=True)


def strong(cls, **params):
    return cls(**{**STRONG[cls], **params})


def images(dtype=np.float32, low=0.0, high=1.0, max_side=8):
    """Small 2-D arrays of finite values in [low, high]."""
    return hnp.arrays(
        dtype,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=max_side),
        elements=st.floats(low, high, width=np.dtype(dtype).itemsize * 8),
    )


def pixels(shape=(20, 30), dtype=np.float32, seed=0):
    return np.random.default_rng(seed).random(shape).astype(dtype)


def in_dtype(value, like):
    """``value`` as represented in the dtype of the array ``like``."""
    return np.asarray(value, dtype=like.dtype)


# -- shape, dtype, pandas ----------------------------------------------------

DTYPES = [
    (np.float32, np.float32),
    (np.float64, np.float64),
    (np.float16, np.float32),
    (np.int64, np.float32),
    (np.int32, np.float32),
    (np.uint8, np.float32),
    (np.bool_, np.float32),
]


@pytest.mark.parametrize(
    ("dtype", "expected"), DTYPES, ids=[np.dtype(d).name for d, _ in DTYPES]
)
@quick
@given(
    cls=st.sampled_from(NOISES),
    shape=hnp.array_shapes(min_dims=2, max_dims=2, max_side=8),
    seed=st.integers(0, 2**32 - 1),
)
def test_shape_kept_and_dtype_float32_or_float64(dtype, expected, cls, shape, seed):
    X = np.random.default_rng(seed).integers(0, 2, size=shape).astype(dtype)
    out = strong(cls, random_state=seed).fit_transform(X)
    assert isinstance(out, np.ndarray)
    assert out.shape == X.shape
    assert out.dtype == expected


@noise_classes
def test_dataframe_input_gives_ndarray_by_default(cls):
    X = pixels((6, 4))
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    out = strong(cls, random_state=0).fit_transform(df)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, strong(cls, random_state=0).fit_transform(X))


@noise_classes
def test_set_output_pandas_keeps_column_names_and_index(cls):
    df = pd.DataFrame(pixels((6, 4)), columns=["a", "b", "c", "d"], index=range(10, 16))
    est = strong(cls, random_state=0).set_output(transform="pandas")
    out = est.fit_transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["a", "b", "c", "d"]
    assert list(out.index) == list(df.index)
    np.testing.assert_array_equal(
        out.to_numpy(), est.set_output(transform="default").transform(df)
    )


@noise_classes
def test_get_feature_names_out(cls):
    df = pd.DataFrame(pixels((6, 3)), columns=["p0", "p1", "p2"])
    est = cls().fit(df)
    np.testing.assert_array_equal(est.feature_names_in_, ["p0", "p1", "p2"])
    np.testing.assert_array_equal(est.get_feature_names_out(), ["p0", "p1", "p2"])
    assert list(cls().fit(pixels((6, 3))).get_feature_names_out()) == ["x0", "x1", "x2"]


# -- values and bounds ---------------------------------------------------------


@pytest.mark.filterwarnings("ignore:X has values:UserWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@quick
@given(
    data=st.data(),
    std=st.floats(0, 5),
    bounds=st.lists(st.floats(-3, 3), min_size=2, max_size=2).map(sorted),
    seed=st.integers(0, 2**32 - 1),
)
def test_gaussian_output_within_clip(dtype, data, std, bounds, seed):
    X = data.draw(images(dtype, -2.0, 2.0))
    lo, hi = bounds
    out = GaussianPixelNoise(std, clip=(lo, hi), random_state=seed).fit_transform(X)
    assert np.all(out >= in_dtype(lo, out))
    assert np.all(out <= in_dtype(hi, out))


@quick
@given(X=images(), std=st.floats(0, 5), seed=st.integers(0, 2**32 - 1))
def test_gaussian_default_clip_is_unit_interval(X, std, seed):
    out = GaussianPixelNoise(std, random_state=seed).fit_transform(X)
    assert np.all((out >= 0) & (out <= 1))


def test_gaussian_clip_none_is_unbounded():
    X = np.full((20, 50), 0.5, dtype=np.float32)
    out = GaussianPixelNoise(std=1.0, clip=None, random_state=0).fit_transform(X)
    # With std=1 around 0.5, about 31% of 1000 pixels fall on each side.
    assert out.min() < 0.0
    assert out.max() > 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@quick
@given(
    data=st.data(),
    amount=st.floats(0, 1),
    low=st.floats(-5, 5),
    high=st.floats(-5, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_salt_and_pepper_only_original_low_or_high(
    dtype, data, amount, low, high, seed
):
    X = data.draw(images(dtype))
    est = SaltAndPepperNoise(amount, low=low, high=high, random_state=seed)
    out = est.fit_transform(X)
    kept = out == X
    assert np.all(kept | (out == in_dtype(low, out)) | (out == in_dtype(high, out)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@quick
@given(
    data=st.data(),
    fraction=st.floats(0, 1),
    value=st.floats(-5, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_masking_only_original_or_value(dtype, data, fraction, value, seed):
    X = data.draw(images(dtype))
    out = MaskingNoise(fraction, value=value, random_state=seed).fit_transform(X)
    assert np.all((out == X) | (out == in_dtype(value, out)))


@pytest.mark.filterwarnings("ignore:X has values:UserWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@quick
@given(
    data=st.data(),
    bounds=st.none() | st.lists(st.floats(-3, 3), min_size=2, max_size=2).map(sorted),
    seed=st.integers(0, 2**32 - 1),
)
def test_gaussian_std_zero_only_clips(dtype, data, bounds, seed):
    X = data.draw(images(dtype, -2.0, 2.0))
    clip = None if bounds is None else tuple(bounds)
    out = GaussianPixelNoise(0.0, clip=clip, random_state=seed).fit_transform(X)
    expected = X if clip is None else np.clip(X, *clip)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    ("cls", "param"),
    [(SaltAndPepperNoise, "amount"), (MaskingNoise, "fraction")],
    ids=["amount", "fraction"],
)
@quick
@given(X=images(np.float64, -2.0, 2.0), seed=st.integers(0, 2**32 - 1))
def test_zero_probability_is_identity(cls, param, X, seed):
    out = cls(**{param: 0.0}, random_state=seed).fit_transform(X)
    np.testing.assert_array_equal(out, X)


@quick
@given(
    X=images(),
    low=st.floats(-5, 5),
    high=st.floats(-5, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_amount_one_replaces_every_pixel(X, low, high, seed):
    est = SaltAndPepperNoise(1.0, low=low, high=high, random_state=seed)
    out = est.fit_transform(X)
    assert np.all((out == np.float32(low)) | (out == np.float32(high)))


@quick
@given(X=images(), value=st.floats(-5, 5), seed=st.integers(0, 2**32 - 1))
def test_fraction_one_masks_every_pixel(X, value, seed):
    out = MaskingNoise(1.0, value=value, random_state=seed).fit_transform(X)
    assert np.all(out == np.float32(value))


def test_integer_input_identity_is_converted_to_float32():
    X = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = MaskingNoise(0.0).fit_transform(X)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, X.astype(np.float32))


# -- random state ------------------------------------------------------------


@noise_classes
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_int_seed_reproducible_across_calls_and_instances(cls, seed):
    X = pixels()
    est = strong(cls, random_state=seed).fit(X)
    first = est.transform(X)
    np.testing.assert_array_equal(est.transform(X), first)
    np.testing.assert_array_equal(
        strong(cls, random_state=seed).fit(X).transform(X), first
    )
    np.testing.assert_array_equal(
        strong(cls, random_state=seed).fit_transform(X), first
    )


@noise_classes
def test_different_int_seeds_give_different_noise(cls):
    X = pixels()
    a = strong(cls, random_state=0).fit_transform(X)
    b = strong(cls, random_state=1).fit_transform(X)
    assert not np.array_equal(a, b)


@noise_classes
def test_random_state_none_draws_fresh_noise(cls):
    X = pixels()
    est = strong(cls).fit(X)
    assert not np.array_equal(est.transform(X), est.transform(X))
    assert not np.array_equal(
        strong(cls).fit_transform(X), strong(cls).fit_transform(X)
    )


@noise_classes
@pytest.mark.parametrize(
    "make_rng",
    [np.random.RandomState, np.random.default_rng],
    ids=["RandomState", "Generator"],
)
def test_random_state_instance_advances_and_replays(cls, make_rng):
    X = pixels()
    a = strong(cls, random_state=make_rng(7)).fit(X)
    b = strong(cls, random_state=make_rng(7)).fit(X)
    a1, a2 = a.transform(X), a.transform(X)
    assert not np.array_equal(a1, a2)
    np.testing.assert_array_equal(b.transform(X), a1)
    np.testing.assert_array_equal(b.transform(X), a2)


@noise_classes
@pytest.mark.parametrize("random_state", [None, 0])
def test_global_random_states_untouched(cls, random_state, helpers):
    X = pixels()
    before = helpers.global_random_state()
    strong(cls, random_state=random_state).fit_transform(X)
    helpers.assert_same_global_random_state(before, helpers.global_random_state())


def test_gaussian_noise_does_not_depend_on_pixel_values():
    X, Y = pixels(dtype=np.float64, seed=1), pixels(dtype=np.float64, seed=2)
    est = GaussianPixelNoise(0.3, clip=None, random_state=3)
    np.testing.assert_allclose(
        est.fit_transform(X) - X, est.fit_transform(Y) - Y, atol=1e-12
    )


@pytest.mark.parametrize("cls", [SaltAndPepperNoise, MaskingNoise])
def test_replaced_positions_do_not_depend_on_pixel_values(cls):
    # Values strictly inside (0, 1), so that replaced pixels (0 or 1) stand out.
    X = 0.1 + 0.8 * pixels(seed=1)
    Y = 0.1 + 0.8 * pixels(seed=2)
    est = strong(cls, random_state=3)
    replaced_in_X = np.isin(est.fit_transform(X), [0.0, 1.0])
    replaced_in_Y = np.isin(est.fit_transform(Y), [0.0, 1.0])
    assert replaced_in_X.any()
    np.testing.assert_array_equal(replaced_in_X, replaced_in_Y)


# -- statistics ----------------------------------------------------------------

N_STAT = (200, 100)


def assert_mean_and_std(sample, std):
    n = sample.size
    assert abs(sample.mean()) <= Z * std / math.sqrt(n)
    assert abs(sample.std(ddof=1) - std) <= Z * std / math.sqrt(2 * (n - 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@statistical
@given(std=st.floats(0.01, 10), seed=st.integers(0, 2**32 - 1))
def test_gaussian_noise_mean_and_std_unclipped(dtype, std, seed):
    X = np.full(N_STAT, 0.5, dtype=dtype)
    out = GaussianPixelNoise(std, clip=None, random_state=seed).fit_transform(X)
    assert_mean_and_std(out.astype(np.float64) - 0.5, std)


@statistical
@given(std=st.floats(0.01, 0.05), seed=st.integers(0, 2**32 - 1))
def test_gaussian_noise_mean_and_std_far_from_bounds(std, seed):
    # At most 0.05 * 10 = 0.5 from 0.5: a clipped pixel would be a 10-sigma event.
    X = np.full(N_STAT, 0.5)
    out = GaussianPixelNoise(std, random_state=seed).fit_transform(X)
    assert_mean_and_std(out - 0.5, std)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_noise_is_normal_in_distribution(dtype):
    # A million draws: a skewed or clipped source (indices of 15 random bits
    # instead of 16, say, or a table of the wrong quantiles) moves the
    # empirical distribution function by far more than 5 / sqrt(n).
    X = np.zeros((1000, 1000), dtype=dtype)
    out = GaussianPixelNoise(1.0, clip=None, random_state=0).fit_transform(X)
    sample = out.ravel().astype(np.float64)
    assert stats.kstest(sample, "norm").statistic <= Z / math.sqrt(sample.size)
    # The tails are there: beyond 4 std, where a normal puts 6.3e-5.
    beyond = int((np.abs(sample) > 4.0).sum())
    assert_binomial(beyond, sample.size, 2 * stats.norm.sf(4.0))


def test_cpu_normal_table_is_the_normal_distribution_to_16_bits():
    # The CPU draw looks standard normals up in a table of 2**16 quantiles;
    # its exact distribution, not a sample of it, against the normal one.
    from denoisenet.noise import _normal_table

    table = _normal_table(torch.float64).numpy()
    size = table.size
    assert size == 2**16
    assert np.all(np.diff(table) > 0)
    np.testing.assert_allclose(table, -table[::-1], atol=1e-12)
    cdf = stats.norm.cdf(table)
    below, above = np.arange(size) / size, np.arange(1, size + 1) / size
    distance = max(np.abs(cdf - below).max(), np.abs(cdf - above).max())
    assert distance <= 0.5 / size + 1e-12
    assert abs(np.sqrt(np.mean(table**2)) - 1.0) <= 2e-5
    assert 4.3 < table.max() < 4.4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("std", [0.3, 1 / 3, 0.0, 2.5, 1e30])
def test_noise_drawn_from_the_scaled_table_is_the_unit_draw_times_std(dtype, std):
    # The CPU draw looks the noise up in the table times std (no pass over
    # the batch to scale it): bit for bit what the unit draw times std
    # gives, as before the table was scaled.
    from denoisenet import noise
    from denoisenet._base import torch_generator

    X = torch.zeros(64, 100, dtype=dtype)
    unit = noise._draw_normal(X, torch_generator(3))
    scaled = noise._draw_normal(X, torch_generator(3), std)
    assert torch.equal(scaled, unit.mul_(std))
    # The tables are a small cache: one per dtype and std in use.
    for k in range(3 * noise._MAX_TABLES):
        noise._normal_table(dtype, 0.01 * (k + 1))
    assert len(noise._normal_tables) <= noise._MAX_TABLES


def test_gaussian_noise_of_a_row_does_not_depend_on_later_rows():
    # Over two lookup chunks of the CPU draw (2**20 pixels each): the rows of
    # X[:k] get the noise that the same rows get within X.
    X = np.full((1400, 784), 0.5, dtype=np.float32)
    est = GaussianPixelNoise(0.2, clip=None, random_state=0).fit(X)
    whole = est.transform(X)
    for k in (1, 1337, 1338, 1399):
        np.testing.assert_array_equal(est.transform(X[:k]), whole[:k])


@pytest.mark.parametrize("cls", [SaltAndPepperNoise, MaskingNoise])
def test_replaced_pixels_of_a_row_do_not_depend_on_later_rows(cls):
    # As for the Gaussian, over two 2**20-pixel chunks of the CPU draw.
    X = np.full((1400, 784), 0.5, dtype=np.float32)
    est = cls(0.3, random_state=0).fit(X)
    whole = est.transform(X)
    for k in (1, 1337, 1338, 1399):
        np.testing.assert_array_equal(est.transform(X[:k]), whole[:k])


def test_cpu_uniform_masks_nest_and_hit_their_probabilities():
    # The CPU draw compares 32 random bits with p * 2**32: a million pixels
    # are below p at p's rate (bits read as signed integers would put half
    # of them below any p), the mask of a smaller p lies in that of a larger
    # one (salt-and-pepper's pepper inside its replaced pixels), p = 0 and
    # p = 1 are exact, and the same seed gives the same masks.
    from denoisenet._base import noise_generator
    from denoisenet.noise import _draw_below

    X = torch.zeros(1000, 1000)
    probabilities = (0.0, 1e-5, 0.3, 0.15, 0.999, 1.0)
    masks = _draw_below(X, noise_generator(7), *probabilities)
    again = _draw_below(X, noise_generator(7), *probabilities)
    other = _draw_below(X, noise_generator(8), *probabilities)
    for mask, repeat, p in zip(masks, again, probabilities, strict=True):
        assert mask.dtype == torch.bool and mask.shape == X.shape
        assert torch.equal(mask, repeat)
        assert_binomial(int(mask.sum()), X.numel(), p)
    assert not masks[0].any() and masks[-1].all()
    assert torch.equal(masks[2] | masks[3], masks[2])
    assert not torch.equal(masks[2], other[2])


def assert_binomial(count, n, p):
    assert abs(count - n * p) <= Z * math.sqrt(n * p * (1 - p))


@statistical
@given(amount=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_salt_and_pepper_rates(amount, seed):
    X = np.full(N_STAT, 0.5, dtype=np.float32)
    out = SaltAndPepperNoise(amount, random_state=seed).fit_transform(X)
    salt, pepper = int((out == 1).sum()), int((out == 0).sum())
    replaced = salt + pepper
    assert replaced == int((out != 0.5).sum())
    assert_binomial(replaced, X.size, amount)
    if replaced:
        assert_binomial(salt, replaced, 0.5)


@statistical
@given(fraction=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_masking_rate(fraction, seed):
    X = np.full(N_STAT, 0.5, dtype=np.float32)
    out = MaskingNoise(fraction, random_state=seed).fit_transform(X)
    assert_binomial(int((out == 0).sum()), X.size, fraction)


# -- numpy path versus torch path ------------------------------------------


def torch_corrupt(est, X, seed):
    generator = torch.Generator().manual_seed(seed)
    return est.corrupt_tensor(torch.from_numpy(X), generator).numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("std", [0.05, 0.3, 2.0])
def test_numpy_and_torch_paths_draw_the_same_gaussian(dtype, std):
    X = np.full(N_STAT, 0.5, dtype=dtype)
    est = GaussianPixelNoise(std, clip=None, random_state=0)
    from_numpy = (est.fit_transform(X) - X).ravel().astype(np.float64)
    from_torch = (torch_corrupt(est, X, seed=12345) - X).ravel().astype(np.float64)
    assert stats.ks_2samp(from_numpy, from_torch).pvalue > 1e-3
    n = X.size
    assert abs(from_numpy.mean() - from_torch.mean()) <= Z * std * math.sqrt(2 / n)
    spread = abs(from_numpy.std(ddof=1) - from_torch.std(ddof=1))
    assert spread <= Z * std / math.sqrt(n - 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls", [SaltAndPepperNoise, MaskingNoise])
def test_numpy_and_torch_paths_replace_at_the_same_rate(dtype, cls):
    p = 0.3
    est = cls(p, random_state=0)
    X = np.full(N_STAT, 0.5, dtype=dtype)
    n = X.size
    rate_numpy = (est.fit_transform(X) != 0.5).mean()
    rate_torch = (torch_corrupt(est, X, seed=12345) != 0.5).mean()
    assert abs(rate_numpy - rate_torch) <= Z * math.sqrt(2 * p * (1 - p) / n)


@noise_classes
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_corrupt_tensor_needs_no_fit_and_keeps_its_input(cls, dtype):
    X = torch.rand(20, 30, dtype=dtype, generator=torch.Generator().manual_seed(0))
    before = X.clone()
    est = strong(cls)
    out = est.corrupt_tensor(X, torch.Generator().manual_seed(1))
    assert torch.equal(X, before)
    assert out.shape == X.shape
    assert out.dtype == X.dtype
    assert out.device == X.device
    assert out.data_ptr() != X.data_ptr()
    assert not torch.equal(out, X)
    again = est.corrupt_tensor(X, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


@noise_classes
@pytest.mark.parametrize(
    ("X", "generator", "message"),
    [
        (np.zeros((2, 3)), None, "takes a torch.Tensor, got ndarray"),
        (torch.zeros(2, 3, dtype=torch.int64), None, "floating-point .* torch.int64"),
        (torch.zeros(2, 3, dtype=torch.bool), None, "floating-point .* torch.bool"),
        (torch.zeros(2, 3), 0, "generator must be a torch.Generator or None, got int"),
    ],
    ids=["array", "int64", "bool", "int-generator"],
)
def test_corrupt_tensor_names_what_it_takes(cls, X, generator, message):
    # torch's own errors ("normal_kernel_cpu" not implemented for 'Long').
    with pytest.raises(TypeError, match=f"corrupt_tensor|{message}") as info:
        strong(cls).corrupt_tensor(X, generator)
    assert re.search(message, str(info.value))


# -- the caller's data is never modified -------------------------------------


def _read_only(X):
    X = X.copy()
    X.setflags(write=False)
    return X


LAYOUTS = {
    "C": lambda X: X,
    "fortran": np.asfortranarray,
    "read-only": _read_only,
    "reversed-strided": lambda X: X[::-1, ::2],
    "strided-columns": lambda X: X[:, ::3],
    "strided-rows": lambda X: X[::2],
    "broadcast-row": lambda X: np.broadcast_to(X[0], X.shape),
}


@noise_classes
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_input_never_modified_whatever_its_layout(cls, dtype, layout):
    X = LAYOUTS[layout](pixels((24, 30), dtype=dtype))
    before = X.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = strong(cls, random_state=0).fit_transform(X)
    np.testing.assert_array_equal(X, before)
    assert not np.shares_memory(out, X)
    assert out.flags.writeable
    # The noise depends on positions only, not on how X is laid out in memory.
    contiguous = strong(cls, random_state=0).fit_transform(np.ascontiguousarray(X))
    np.testing.assert_array_equal(out, contiguous)


@noise_classes
def test_dataframe_input_never_modified(cls):
    df = pd.DataFrame(pixels((6, 4)), columns=["a", "b", "c", "d"])
    before = df.copy()
    strong(cls, random_state=0).fit_transform(df)
    pd.testing.assert_frame_equal(df, before)


# -- invalid parameters ------------------------------------------------------

INVALID_PARAMS = [
    (GaussianPixelNoise, "std", -1.0),
    (GaussianPixelNoise, "std", float("nan")),
    (GaussianPixelNoise, "std", np.inf),
    (GaussianPixelNoise, "std", "a"),
    (GaussianPixelNoise, "std", True),
    (GaussianPixelNoise, "clip", (1, 0)),
    (GaussianPixelNoise, "clip", (0,)),
    (GaussianPixelNoise, "clip", (0, 1, 2)),
    (GaussianPixelNoise, "clip", (0, float("nan"))),
    (GaussianPixelNoise, "clip", 1.0),
    (SaltAndPepperNoise, "amount", -0.1),
    (SaltAndPepperNoise, "amount", 1.5),
    (SaltAndPepperNoise, "amount", float("nan")),
    (SaltAndPepperNoise, "low", float("nan")),
    (SaltAndPepperNoise, "high", "1"),
    (MaskingNoise, "fraction", 2),
    (MaskingNoise, "fraction", -1e-9),
    (MaskingNoise, "value", np.inf),
    (MaskingNoise, "value", None),
    *[(cls, "random_state", "x") for cls in NOISES],
    (GaussianPixelNoise, "random_state", -1),
    (GaussianPixelNoise, "random_state", 1.5),
    (GaussianPixelNoise, "random_state", 2**32),
]


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    INVALID_PARAMS,
    ids=[f"{c.__name__}-{n}={v!r}" for c, n, v in INVALID_PARAMS],
)
def test_invalid_parameter_raises_at_fit(cls, name, value):
    est = cls(**{name: value})  # __init__ stores, never checks
    assert est.get_params()[name] is value
    pattern = f"'{name}' parameter of {cls.__name__}.*Got {re.escape(repr(value))} "
    X = pixels((4, 3))
    with pytest.raises(ValueError, match=pattern):
        est.fit(X)
    with pytest.raises(ValueError, match=pattern):
        clone(est).fit_transform(X)


@pytest.mark.filterwarnings("ignore:X has values:UserWarning")
@pytest.mark.parametrize(
    "params",
    [
        {"std": 0},
        {"std": np.float32(0.1)},
        {"clip": [0, 1]},
        {"clip": (-1, -1)},
        {"random_state": 2**32 - 1},
        {"random_state": np.int64(3)},
    ],
    ids=repr,
)
def test_valid_edge_parameters_accepted(params):
    X = pixels((4, 3))
    out = GaussianPixelNoise(**params).fit_transform(X)
    assert out.shape == X.shape


BEYOND_FLOAT32 = [
    (GaussianPixelNoise, "clip", (0.0, 1e300)),
    (GaussianPixelNoise, "clip", (-1e300, 1.0)),
    (SaltAndPepperNoise, "low", -1e300),
    (SaltAndPepperNoise, "high", 1e300),
    (MaskingNoise, "value", 1e300),
]


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    BEYOND_FLOAT32,
    ids=[f"{c.__name__}-{n}={v!r}" for c, n, v in BEYOND_FLOAT32],
)
def test_parameter_beyond_float32_range_fails_at_fit_or_not_at_all(cls, name, value):
    X = pixels((4, 3))
    est = cls(**{name: value})
    try:
        est.fit(X)
    except ValueError as exc:
        # Rejecting it up front, naming the parameter, is one correct answer.
        assert f"'{name}' parameter" in str(exc)
        return
    # Accepting it is the other: then transform must work on float32 data.
    out = est.transform(X)
    assert out.shape == X.shape
    assert out.dtype == np.float32


# -- invalid data ----------------------------------------------------------------

GOOD = np.full((5, 3), 0.5)
BAD_DATA = {
    "nan": (np.array([[np.nan, 0.5, 0.5]]), ValueError, "Input X contains NaN"),
    "inf": (np.array([[np.inf, 0.5, 0.5]]), ValueError, "Input X contains infinity"),
    "1-D": (np.array([0.5, 0.5, 0.5]), ValueError, "Expected 2D array, got 1D array"),
    "empty": (np.empty((0, 3)), ValueError, r"Found array with 0 sample\(s\)"),
    "sparse": (scipy.sparse.csr_matrix(GOOD), TypeError, "Sparse data was passed"),
    "complex": (GOOD + 1j, ValueError, "Complex data not supported"),
}


@noise_classes
@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_rejected_at_fit_and_transform(cls, case):
    X, error, message = BAD_DATA[case]
    with pytest.raises(error, match=message):
        cls().fit(X)
    fitted = cls().fit(GOOD)
    with pytest.raises(error, match=message):
        fitted.transform(X)


@noise_classes
def test_wrong_number_of_features_at_transform(cls):
    est = cls().fit(GOOD)
    message = f"X has 2 features, but {cls.__name__} is expecting 3 features"
    with pytest.raises(ValueError, match=message):
        est.transform(GOOD[:, :2])


@noise_classes
def test_no_features_rejected(cls):
    with pytest.raises(ValueError, match=r"Found array with 0 feature\(s\)"):
        cls().fit(np.empty((3, 0)))


@noise_classes
def test_transform_before_fit_raises_not_fitted(cls):
    with pytest.raises(NotFittedError):
        cls().transform(GOOD)


# -- composition and persistence ---------------------------------------------


@noise_classes
def test_works_in_pipeline(cls, small_digits):
    X, y = small_digits
    noise = strong(cls, random_state=0)
    pipe = make_pipeline(noise, KNeighborsClassifier(n_neighbors=3)).fit(X, y)
    # The classifier saw exactly the corrupted images the step makes alone.
    np.testing.assert_array_equal(pipe[:-1].transform(X), clone(noise).fit_transform(X))
    assert set(pipe.predict(X)) <= set(y)
    assert pipe[0].n_features_in_ == X.shape[1]


def test_parameters_routed_through_grid_search(small_digits):
    X, y = small_digits
    pipe = make_pipeline(
        GaussianPixelNoise(random_state=0), KNeighborsClassifier(n_neighbors=3)
    )
    grid = {"gaussianpixelnoise__std": [0.0, 0.5]}
    search = GridSearchCV(pipe, grid, cv=2).fit(X, y)
    tried = [
        params["gaussianpixelnoise__std"] for params in search.cv_results_["params"]
    ]
    assert tried == [0.0, 0.5]
    assert (
        search.best_estimator_[0].std == search.best_params_["gaussianpixelnoise__std"]
    )


@noise_classes
def test_clone_is_unfitted_with_same_params(cls):
    X = pixels()
    est = strong(cls, random_state=0).fit(X)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        copy.transform(X)
    np.testing.assert_array_equal(copy.fit_transform(X), est.transform(X))


@noise_classes
@pytest.mark.parametrize(
    "make_random_state",
    [lambda: 0, lambda: np.random.RandomState(0)],
    ids=["int", "RandomState"],
)
def test_pickle_round_trip(cls, make_random_state):
    X = pd.DataFrame(pixels((6, 4)), columns=["a", "b", "c", "d"])
    est = strong(cls, random_state=make_random_state()).fit(X)
    restored = pickle.loads(pickle.dumps(est))
    assert restored.n_features_in_ == est.n_features_in_
    np.testing.assert_array_equal(restored.feature_names_in_, est.feature_names_in_)
    # A pickled RandomState resumes where the original stands.
    np.testing.assert_array_equal(restored.transform(X), est.transform(X))
    unfitted = pickle.loads(pickle.dumps(strong(cls)))
    assert unfitted.get_params().keys() == strong(cls).get_params().keys()


# -- parameters set after fit --------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    [
        (MaskingNoise, "fraction", 5),
        (MaskingNoise, "value", math.nan),
        (SaltAndPepperNoise, "amount", -0.5),
        (GaussianPixelNoise, "std", "0.2"),
        (GaussianPixelNoise, "clip", (1.0, 0.0)),
        (GaussianPixelNoise, "random_state", "seed"),
    ],
)
def test_parameters_set_after_fit_are_checked_at_transform(cls, name, value):
    X = pixels()
    noise = cls(random_state=0).fit(X)
    expected = noise.transform(X)
    noise.set_params(**{name: value})
    with pytest.raises(ValueError, match=f"'{name}' parameter"):
        noise.transform(X)
    with pytest.raises(ValueError, match=f"'{name}' parameter"):
        noise.corrupt_tensor(torch.from_numpy(X), torch.Generator().manual_seed(0))
    noise.set_params(**{name: cls().get_params()[name]}).set_params(random_state=0)
    np.testing.assert_array_equal(noise.transform(X), expected)


def test_gaussian_warns_when_images_lie_outside_clip():
    # 0-255 pixels with the default clip=(0, 1) came back all 1.0, silently.
    X = np.random.RandomState(0).randint(0, 256, (5, 12)).astype(np.uint8)
    X[0, :2] = 0, 255
    outside = r"from 0 to 255, outside clip=\(0.0, 1.0\)"
    with pytest.warns(UserWarning, match=outside) as w:
        GaussianPixelNoise(random_state=0).fit_transform(X)
    # Pointed at the caller's line, not at scikit-learn's set_output wrapper.
    assert [r.filename for r in w] == [__file__]
    with pytest.warns(UserWarning, match="clip=\\(0, 255\\)") as w:
        make_pipeline(GaussianPixelNoise(random_state=0)).fit_transform(X)
    assert [r.filename for r in w] == [__file__]


@pytest.mark.parametrize("clip", [(0, 255), None])
def test_gaussian_quiet_for_images_inside_clip(clip):
    X = np.random.RandomState(0).randint(0, 256, (5, 12)).astype(np.float32)
    X[0, :2] = 0, 255
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = GaussianPixelNoise(20.0, clip=clip, random_state=0).fit_transform(X)
        GaussianPixelNoise(random_state=0).fit_transform(X / 255)
    assert not np.array_equal(out, X)
