"""Noise transformers that corrupt images reproducibly.

Each class has one definition of its corruption, written in torch:
:meth:`transform` runs it on numpy arrays (without a copy of the input) and
:class:`~denoisenet.DenoisingAutoencoder` runs the very same method on the
torch batches inside its training loop, so the two paths cannot drift apart.
"""

import functools
import math
import warnings

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    OneToOneFeatureMixin,
    TransformerMixin,
    clone,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from denoisenet._base import (
    _FLOAT32_MAX,
    RANDOM_STATE,
    Domain,
    NoiseGenerator,
    as_tensor,
    check_params,
    interval,
    outside_stacklevel,
    seed_generators,
    torch_generator,
)
from denoisenet._doclink import DocLinkMixin

__all__ = ["GaussianPixelNoise", "MaskingNoise", "SaltAndPepperNoise"]

_FINITE = interval("real")


class _PixelNoise(DocLinkMixin, OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Shared machinery: validation, random state and the numpy path."""

    _parameter_domains: dict = {}

    def _check_params(self):
        check_params(self, {**self._parameter_domains, "random_state": RANDOM_STATE})

    def fit(self, X, y=None):
        """Check the parameters and record the number of features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Images, one flattened image per row.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The transformer.
        """
        self._check_params()
        # validate_data records feature names before it checks X: a failed
        # fit must not leave them behind, or the transformer looks fitted.
        before = self.__dict__.copy()
        try:
            validate_data(self, X, dtype=[np.float32, np.float64])
        except Exception:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        return self

    def transform(self, X):
        """Return a corrupted copy of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Images to corrupt; left unchanged.

        Returns
        -------
        X_noisy : ndarray of shape (n_samples, n_features)
            float32 or float64 like ``X``; other input becomes float32.
        """
        check_is_fitted(self)
        # Checked again here: set_params after fit may have changed them,
        # and torch would take fraction=5 or std="0.2" without a word (or
        # with an error of its own).
        self._check_params()
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        if X.strides[0] < 0 or X.strides[1] < 0:
            X = np.ascontiguousarray(X)
        X = as_tensor(X)
        self._check_input(X)
        generator = torch_generator(seed_generators(self.random_state)[0])
        return self._corrupt(X, generator).numpy()

    def corrupt_tensor(self, X, generator=None):
        """Return a corrupted copy of the tensor ``X`` (the torch path).

        This is the one definition of the corruption: :meth:`transform`
        runs it, and so does the training loop of
        :class:`~denoisenet.DenoisingAutoencoder`, fresh for every batch.
        Needs no fit; checks the parameters as ``fit`` does.

        Parameters
        ----------
        X : torch.Tensor of shape (n_samples, n_features)
            Floating-point images; left unchanged.
        generator : torch.Generator, default=None
            Source of randomness, on the same device as ``X``; None uses
            torch's global generator.

        Returns
        -------
        X_noisy : torch.Tensor
            Same shape, dtype and device as ``X``.
        """
        self._check_params()
        name = type(self).__name__
        if not isinstance(X, torch.Tensor):
            raise TypeError(
                f"{name}.corrupt_tensor takes a torch.Tensor, got "
                f"{type(X).__name__}; transform takes arrays."
            )
        if not X.is_floating_point():
            raise TypeError(
                f"{name}.corrupt_tensor takes floating-point images, got a "
                f"tensor of {X.dtype}; convert it, e.g. with X.float()."
            )
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator must be a torch.Generator or None, got "
                f"{type(generator).__name__}."
            )
        return self._corrupt(X, generator)

    def _corrupt(self, X, generator):
        """The corruption itself, for parameters checked already."""
        raise NotImplementedError

    def _check_input(self, X):
        """Warn about the tensor of input that the corruption would spoil."""

    # The parameters that become pixel values as they are.
    _pixel_values = ()

    def _beyond_float32(self):
        """The name of a parameter that float32 pixels cannot hold, or None."""
        for name in self._pixel_values:
            if abs(float(getattr(self, name))) > _FLOAT32_MAX:
                return name
        return None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


# On the CPU, standard normals come from a table of the 65,536 quantiles of
# N(0, 1) at the midpoints (i + 0.5) / 65536, one looked up per 16 random
# bits: random bits and a lookup cost less than torch's normal_, whose
# serial mt19937 (one call per number) is most of its cost, and inside a
# fit they take less of an epoch (benchmarks/bench_noise.py --part epoch).
# The table's distribution function is within 1 / 131072 of the normal one
# everywhere, its std is 0.99999 and its values reach +-4.32: for pixel
# noise, a Gaussian. The bits are numpy's SFC64 (a fit's NoiseGenerator
# holds them).
_TABLE_BITS = 16
# (dtype, std) -> the table times std: a fit draws with one std, so the
# scaling costs nothing per batch. A few entries at most (a search over
# std makes one per value).
_normal_tables = {}
_MAX_TABLES = 8
# Pixels drawn per chunk: bounds the draw's scratch memory on a big
# transform; a multiple of 4 (the 16-bit indices in one 64-bit word, and
# the 32-bit uniforms two to a word), so that where a chunk ends does not
# change which bits a pixel gets.
_CHUNK = 1 << 20


def _normal_table(dtype, std=1.0):
    """The 65,536 normal quantiles in ``dtype``, times ``std``.

    ``table * std`` rounds each product to ``dtype`` exactly as
    multiplying a looked-up value by ``std`` would, so a draw from the
    scaled table is bit for bit the draw from the unit table times ``std``.
    """
    key = (dtype, float(std))
    table = _normal_tables.get(key)
    if table is None:
        if len(_normal_tables) >= _MAX_TABLES:
            _normal_tables.clear()
        unit = _normal_tables.get((dtype, 1.0))
        if unit is None:
            size = 1 << _TABLE_BITS
            # On the CPU whatever torch's default device (a caller's "meta").
            levels = torch.arange(size, dtype=torch.float64, device="cpu")
            levels = (levels + 0.5) / size
            unit = torch.special.ndtri(levels).to(dtype)
            _normal_tables[dtype, 1.0] = unit
        table = unit if key[1] == 1.0 else unit * key[1]
        _normal_tables[key] = table
    return table


def _cpu_bits(generator):
    """The numpy SFC64 bits that ``generator`` decides, for a CPU draw."""
    if isinstance(generator, NoiseGenerator):
        return generator.bits
    # A torch generator (or torch's global one) still decides the noise,
    # and advances with every draw.
    seed = torch.randint(
        2**62, (2,), dtype=torch.int64, device="cpu", generator=generator
    )
    return np.random.SFC64(seed.tolist())


def _random_chunks(bits, total, dtype):
    """``(start, raw)`` over ``total`` pixels in chunks of :data:`_CHUNK`:
    ``raw`` holds one unsigned integer of ``dtype`` per pixel of the chunk,
    cut from the 64-bit words of the SFC64 ``bits``."""
    per_word = 8 // np.dtype(dtype).itemsize
    for start in range(0, total, _CHUNK):
        size = min(_CHUNK, total - start)
        yield start, bits.random_raw(-(-size // per_word)).view(dtype)[:size]


def _draw_normal(X, generator, std=1.0):
    """Normal noise of X's shape and dtype with standard deviation ``std``."""
    # A function of its own so that benchmarks/bench_noise.py can time the
    # draw inside a fit.
    out = torch.empty_like(X, memory_format=torch.contiguous_format)
    if out.device.type != "cpu":
        # On a GPU normal_ is fast, and a CUDA graph can capture it.
        out.normal_(generator=generator)
        return out if std == 1.0 else out.mul_(std)
    bits = _cpu_bits(generator)
    table = _normal_table(out.dtype, std)
    flat = out.view(-1)
    for start, raw in _random_chunks(bits, flat.numel(), np.uint16):
        # The uint16 indices widened to int32 (what index_select takes) in
        # one numpy pass.
        index = torch.from_numpy(raw.astype(np.int32))
        torch.index_select(table, 0, index, out=flat[start : start + raw.size])
    return out


# On the CPU a pixel's uniform draw is 32 random bits of SFC64, compared as
# an integer with probability * 2**32: no float uniforms are made, and the
# masks are bytes. A pixel is below a probability p with probability
# round(p * 2**32) / 2**32, within 2**-33 of p (1 exactly for p = 1).
_UNIFORM_LEVELS = 2**32


def _draw_below(X, generator, *probabilities):
    """Boolean masks of X's shape, one per probability: the pixels whose
    one uniform draw in [0, 1) lies below it (so the masks of smaller
    probabilities lie within those of larger ones)."""
    if X.device.type != "cpu":
        # On a GPU uniform_ is fast, and a CUDA graph can capture it.
        u = torch.empty_like(X, memory_format=torch.contiguous_format)
        u.uniform_(generator=generator)
        return [u < p for p in probabilities]
    bits = _cpu_bits(generator)
    masks = [
        torch.empty(X.shape, dtype=torch.bool, device="cpu") for _ in probabilities
    ]
    limits = [round(float(p) * _UNIFORM_LEVELS) for p in probabilities]
    for start, raw in _random_chunks(bits, X.numel(), np.uint32):
        for mask, limit in zip(masks, limits, strict=True):
            part = mask.view(-1)[start : start + raw.size].numpy()
            if limit >= _UNIFORM_LEVELS:
                part.fill(True)
            else:
                np.less(raw, limit, out=part)
    return masks


def _rounded(value, X):
    # A Python float that is exactly ``value`` rounded to X's dtype: a value
    # beyond float32's range (1e300 on float32 images, say) saturates to
    # infinity instead of raising, as a 0-d tensor of X's dtype would. A
    # float runs the scalar kernels of clamp and masked_fill (clamp's is 8x
    # faster on the CPU than its kernel for tensor bounds: 0.08 ms for a
    # batch of 128 images); made on the CPU, so that a GPU batch waits for
    # no copy, and a CUDA graph can capture the step (a copy from the host
    # cannot be captured).
    # Cached: a fit asks for the same bounds every batch.
    return _rounded_to(float(value), X.dtype)


@functools.lru_cache(maxsize=64)
def _rounded_to(value, dtype):
    return torch.tensor(value, dtype=dtype, device="cpu").item()


class GaussianPixelNoise(_PixelNoise):
    """Add Gaussian noise to every pixel, then clip.

    Each pixel gets independent noise drawn from N(0, ``std``\\ :sup:`2`);
    the result is clipped to ``clip``.

    Parameters
    ----------
    std : float, default=0.2
        Standard deviation of the noise, in the units of the data (for
        pixels in [0, 1], 0.2 is clearly visible, 0.5 is heavy).
    clip : tuple of (float, float) or None, default=(0.0, 1.0)
        Bounds that the noisy pixels are clipped to; None does not clip.
        :meth:`transform` warns when ``X`` itself reaches beyond them (0-255
        pixels with the default, say).
    random_state : int, RandomState instance, Generator or None, default=None
        None draws fresh noise on every call; an int draws the same noise
        for the same input on every call (so ``fit_transform`` equals
        ``transform`` and a Pipeline is reproducible); a ``RandomState`` or
        ``Generator`` instance advances with every call.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has feature
        names that are all strings.

    See Also
    --------
    SaltAndPepperNoise : Set random pixels to black or white.
    MaskingNoise : Set random pixels to a constant.
    DenoisingAutoencoder : Learns to remove such noise.

    Notes
    -----
    Noise is drawn per position (row and column) of ``X``: the same seed
    corrupts the pixel in row ``i`` the same way whatever the other rows
    are, but a shuffled or sliced ``X`` gets different noise.

    On the CPU the standard normals are looked up, one per 16 random bits
    (numpy's SFC64 generator, seeded from ``random_state``), in a table of
    the 65,536 quantiles of N(0, 1) at the levels (i + 0.5) / 65536: their
    distribution function is within 1/131072 of the normal one everywhere
    and they reach 4.32 standard deviations, while the draw costs less
    than drawing them one by one with torch's ``normal_``
    (``benchmarks/bench_noise.py --part epoch`` compares the two). On a GPU
    they are torch's ``normal_``.

    Examples
    --------
    >>> import numpy as np
    >>> from denoisenet import GaussianPixelNoise
    >>> X = np.full((2, 4), 0.5, dtype=np.float32)
    >>> noisy = GaussianPixelNoise(std=0.1, random_state=0).fit_transform(X)
    >>> noisy.shape, noisy.dtype
    ((2, 4), dtype('float32'))
    >>> bool(((noisy >= 0) & (noisy <= 1)).all())
    True
    """

    _parameter_domains = {
        "std": interval("real", 0, None),
        "clip": Domain(
            "None or a pair (low, high) of floats with low <= high",
            lambda v: (
                v is None
                or (
                    isinstance(v, (tuple, list))
                    and len(v) == 2
                    and all(_FINITE.accepts(b) for b in v)
                    and v[0] <= v[1]
                )
            ),
            sequence=True,
        ),
    }

    def __init__(self, std=0.2, *, clip=(0.0, 1.0), random_state=None):
        self.std = std
        self.clip = clip
        self.random_state = random_state

    def _beyond_float32(self):
        # In float32 a bound beyond its range is infinite: a lower one of
        # +inf (or an upper one of -inf) makes every pixel infinite, and an
        # infinite std is clipped only where both bounds are finite.
        low, high = (-math.inf, math.inf) if self.clip is None else self.clip
        if float(low) > _FLOAT32_MAX or float(high) < -_FLOAT32_MAX:
            return "clip"
        bounded = max(abs(float(low)), abs(float(high))) <= _FLOAT32_MAX
        if float(self.std) > _FLOAT32_MAX and not bounded:
            return "std"
        return None

    def _check_input(self, X):
        # Images of another range than clip's (0-255 pixels with the default
        # clip=(0, 1), say) would come back as a wall of clipped pixels,
        # clean ones included, without a word.
        if self.clip is None or X.numel() == 0:
            return
        # One pass over the tensor (numpy's min and max take two).
        low, high = (float(v) for v in torch.aminmax(X))
        if low < self.clip[0] or high > self.clip[1]:
            warnings.warn(
                f"X has values from {low:g} to {high:g}, outside "
                f"clip={tuple(self.clip)}: GaussianPixelNoise clips the noisy "
                "images to clip, so those pixels are lost even where the "
                "noise is small. Set clip to the range of your images (for "
                "0-255 pixels, clip=(0, 255) and std in grey levels), "
                "clip=None, or scale X to [0, 1].",
                UserWarning,
                stacklevel=outside_stacklevel(),
            )

    def _corrupt(self, X, generator):
        noisy = _draw_normal(X, generator, self.std).add_(X)
        if self.clip is not None:
            noisy.clamp_(_rounded(self.clip[0], X), _rounded(self.clip[1], X))
        return noisy


class SaltAndPepperNoise(_PixelNoise):
    """Set a random fraction of the pixels to ``low`` or ``high``.

    Each pixel is independently replaced with probability ``amount``, by
    ``low`` ("pepper") or ``high`` ("salt") with equal odds.

    Parameters
    ----------
    amount : float, default=0.1
        Probability, in [0, 1], that a pixel is replaced.
    low : float, default=0.0
        Value of the pepper pixels.
    high : float, default=1.0
        Value of the salt pixels.
    random_state : int, RandomState instance, Generator or None, default=None
        As in :class:`GaussianPixelNoise`.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has feature
        names that are all strings.

    See Also
    --------
    GaussianPixelNoise : Add Gaussian noise to every pixel.
    MaskingNoise : Set random pixels to a constant.

    Examples
    --------
    >>> import numpy as np
    >>> from denoisenet import SaltAndPepperNoise
    >>> X = np.full((100, 100), 0.5)
    >>> noisy = SaltAndPepperNoise(amount=0.2, random_state=0).fit_transform(X)
    >>> sorted(np.unique(noisy).tolist())
    [0.0, 0.5, 1.0]
    >>> round(float((noisy != 0.5).mean()), 1)
    0.2
    """

    _parameter_domains = {
        "amount": interval("real", 0, 1),
        "low": _FINITE,
        "high": _FINITE,
    }

    _pixel_values = ("low", "high")

    def __init__(self, amount=0.1, *, low=0.0, high=1.0, random_state=None):
        self.amount = amount
        self.low = low
        self.high = high
        self.random_state = random_state

    def _corrupt(self, X, generator):
        # One uniform draw decides both whether and how a pixel is replaced:
        # u < amount / 2 gives pepper, amount / 2 <= u < amount gives salt.
        replaced, pepper = _draw_below(X, generator, self.amount, self.amount / 2)
        noisy = X.masked_fill(replaced, _rounded(self.high, X))
        return noisy.masked_fill_(pepper, _rounded(self.low, X))


class MaskingNoise(_PixelNoise):
    """Set a random fraction of the pixels to a constant.

    The masking corruption of Vincent et al. (2010): each pixel is
    independently replaced by ``value`` with probability ``fraction``.

    Parameters
    ----------
    fraction : float, default=0.25
        Probability, in [0, 1], that a pixel is masked.
    value : float, default=0.0
        Value of the masked pixels.
    random_state : int, RandomState instance, Generator or None, default=None
        As in :class:`GaussianPixelNoise`.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has feature
        names that are all strings.

    See Also
    --------
    GaussianPixelNoise : Add Gaussian noise to every pixel.
    SaltAndPepperNoise : Set random pixels to black or white.

    References
    ----------
    P. Vincent, H. Larochelle, I. Lajoie, Y. Bengio and P.-A. Manzagol,
    "Stacked denoising autoencoders", JMLR 11 (2010).

    Examples
    --------
    >>> import numpy as np
    >>> from denoisenet import MaskingNoise
    >>> X = np.ones((100, 100), dtype=np.float32)
    >>> noisy = MaskingNoise(fraction=0.25, random_state=0).fit_transform(X)
    >>> round(float((noisy == 0).mean()), 2)
    0.25
    """

    _parameter_domains = {
        "fraction": interval("real", 0, 1),
        "value": _FINITE,
    }

    _pixel_values = ("value",)

    def __init__(self, fraction=0.25, *, value=0.0, random_state=None):
        self.fraction = fraction
        self.value = value
        self.random_state = random_state

    def _corrupt(self, X, generator):
        (masked,) = _draw_below(X, generator, self.fraction)
        return X.masked_fill(masked, _rounded(self.value, X))


# The ``noise`` parameter of the estimators that train on corrupted
# images: a standard deviation, a noise transformer, or None.
_NOISE_STD = interval("real", 0, None)


def _is_noise_parameter(value):
    if value is None or isinstance(value, _PixelNoise):
        return True
    # interval, not np.isfinite, which raises TypeError for an int beyond int64.
    return _NOISE_STD.accepts(value)


NOISE_PARAMETER = Domain(
    "None, a float >= 0 or a noise transformer from denoisenet.noise",
    _is_noise_parameter,
)


def check_noise_parameter(noise):
    """Check the parameters of a noise transformer given as ``noise``.

    :data:`NOISE_PARAMETER` checks the value itself; a transformer's own
    parameters (its ``std``, say) are checked here, with its own messages.
    """
    if isinstance(noise, _PixelNoise):
        noise._check_params()
        name = noise._beyond_float32()
        if name is not None:
            raise ValueError(
                f"The {name!r} parameter of the noise, {type(noise).__name__}, "
                "is beyond float32, which the network trains in: the corrupted "
                f"pixels would be infinite. Got {getattr(noise, name)!r} instead."
            )


def training_corruption(noise):
    """``corrupt(batch, generator)`` for a checked ``noise`` parameter, or None.

    A float is the std of a :class:`GaussianPixelNoise` clipped to [0, 1];
    a transformer is cloned, so that training never changes the user's.
    The function is the transformer's ``_corrupt``, not
    ``corrupt_tensor``: the parameters are checked once, not per batch.
    """
    if noise is None:
        return None
    if isinstance(noise, _PixelNoise):
        return clone(noise)._corrupt
    return GaussianPixelNoise(std=float(noise), clip=(0.0, 1.0))._corrupt
