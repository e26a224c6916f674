"""Parameter domains and their checks, shared by every estimator.

A :class:`Domain` is a set of admissible values described in words;
:func:`interval` and :func:`one_of` build the common ones, and
:func:`check_params` raises for the first parameter outside its domain.
:data:`COMMON_DOMAINS` holds the domains of the parameters that both
neural estimators share.

scikit-learn's own constraint machinery lives in a private module
(``sklearn.utils._param_validation``) that changes between releases, so the
few pieces we need are written out here. Messages follow scikit-learn's form:
``The 'std' parameter of GaussianPixelNoise must be a float >= 0. Got -1.0
instead.``
"""

import math
import numbers
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

from denoisenet._networks import ACTIVATIONS

__all__ = [
    "BOOL",
    "COMMON_DOMAINS",
    "RANDOM_STATE",
    "Domain",
    "check_params",
    "interval",
    "one_of",
    "outside_stacklevel",
]


class Domain:
    """A set of admissible values, described in words for error messages.

    ``sequence`` marks domains of tuples and lists, whose error message
    explains why a generator is refused.
    """

    def __init__(self, description, accepts, *, sequence=False):
        self.description = description
        self.accepts = accepts
        self.sequence = sequence

    def __or__(self, other):
        return Domain(
            f"{self.description} or {other.description}",
            lambda v: self.accepts(v) or other.accepts(v),
        )


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_finite_float(value):
    # math, not numpy: np.isfinite raises TypeError for a Fraction or an int
    # beyond int64. An int too large for a float is no float parameter's value.
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def interval(kind, low=None, high=None, *, closed="both"):
    """Numbers of ``kind`` ("int" or "real") between ``low`` and ``high``."""
    is_kind = _is_int if kind == "int" else _is_real
    left = closed in ("both", "left")
    right = closed in ("both", "right")

    def accepts(value):
        if not is_kind(value) or not (kind == "int" or _is_finite_float(value)):
            return False
        if low is not None and (value < low if left else value <= low):
            return False
        return high is None or (value <= high if right else value < high)

    noun = "an int" if kind == "int" else "a float"
    if low is not None and high is not None:
        brackets = ("[" if left else "(") + f"{low}, {high}" + ("]" if right else ")")
        description = f"{noun} in the range {brackets}"
    elif low is not None:
        description = f"{noun} {'>=' if left else '>'} {low}"
    elif high is not None:
        description = f"{noun} {'<=' if right else '<'} {high}"
    else:
        description = noun
    return Domain(description, accepts)


def one_of(*values):
    """Exactly one of ``values`` (strings, booleans or None)."""

    def accepts(value):
        return any(
            value is v or (isinstance(v, str) and isinstance(value, str) and value == v)
            for v in values
        )

    shown = ", ".join(repr(v) for v in values)
    return Domain(f"one of {{{shown}}}", accepts)


BOOL = Domain("a bool", lambda v: isinstance(v, (bool, np.bool_)))
RANDOM_STATE = Domain(
    "None, an int in [0, 2**32 - 1], a numpy RandomState or a numpy Generator",
    lambda v: (
        v is None
        or (_is_int(v) and 0 <= v < 2**32)
        or isinstance(v, (np.random.RandomState, np.random.Generator))
    ),
)


def check_params(estimator, domains):
    """Raise ValueError for the first parameter outside its domain.

    Parameters
    ----------
    estimator : BaseEstimator
        Its attributes of the parameters' names supply the values, as they
        do ``get_params`` (without its signature inspection, which cost a
        predict call 0.1-0.2 ms).
    domains : dict of str to Domain
        Parameters missing from ``domains`` are not checked here.
    """
    for name, domain in domains.items():
        value = getattr(estimator, name)
        if not domain.accepts(value):
            raise ValueError(
                f"The {name!r} parameter of {type(estimator).__name__} must be "
                f"{domain.description}. Got {value!r} instead."
                + (_one_shot_hint(value) if domain.sequence else "")
            )


def _is_sequence(value):
    """A list, tuple, range or array: read as often as needed, in order."""
    return isinstance(value, (Sequence, np.ndarray)) and not isinstance(
        value, (str, bytes)
    )


def _one_shot_hint(value):
    # A generator passes any check that reads it only once and is empty
    # when fit reads it again: such values are refused, and said so.
    if _is_sequence(value) or isinstance(value, (str, bytes, Mapping)):
        return ""
    if isinstance(value, Iterable):
        return (
            " A generator, set or other iterable that is not a sequence is not "
            "accepted (checking it could use it up); pass a tuple or a list."
        )
    return ""


def _is_device(value):
    if isinstance(value, torch.device):
        return value.type in ("cpu", "cuda", "mps")
    return isinstance(value, str) and bool(
        re.fullmatch(r"auto|cpu|mps|cuda(:[0-9]+)?", value)
    )


def _is_layer_sizes(value):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return value > 0
    if not _is_sequence(value):
        return False
    try:
        sizes = list(value)
    except TypeError:  # a 0-d array
        return False
    return len(sizes) > 0 and all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0
        for s in sizes
    )


def _is_image_shape(value):
    if value is None:
        return True
    if not _is_sequence(value):
        return False
    try:
        sides = list(value)
    except TypeError:  # a 0-d array
        return False
    return (
        len(sides) == 2
        and all(_is_int(s) and (s > 0 or s == -1) for s in sides)
        and sides.count(-1) < 2
    )


COMMON_DOMAINS = {
    "hidden_layer_sizes": Domain(
        "a positive int or a non-empty sequence of positive ints",
        _is_layer_sizes,
        sequence=True,
    ),
    "architecture": one_of("dense", "conv"),
    "image_shape": Domain(
        "None or a (height, width) pair of positive ints, one of which may be -1",
        _is_image_shape,
        sequence=True,
    ),
    "conv_channels": Domain(
        "a positive int or a non-empty sequence of positive ints",
        _is_layer_sizes,
        sequence=True,
    ),
    "activation": one_of(*ACTIVATIONS),
    "alpha": interval("real", 0, None),
    "batch_size": one_of("auto") | interval("int", 1, None),
    "learning_rate": one_of("constant", "adaptive"),
    "learning_rate_init": interval("real", 0, None, closed="neither"),
    "max_iter": interval("int", 1, None),
    "early_stopping": one_of("auto") | BOOL,
    "validation_fraction": interval("real", 0, 1, closed="neither"),
    "n_iter_no_change": interval("int", 1, None),
    "tol": interval("real", 0, None),
    "shuffle": BOOL,
    "random_state": RANDOM_STATE,
    "verbose": BOOL | interval("int", 0, None),
    "warm_start": BOOL,
    "device": Domain(
        "one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device", _is_device
    ),
    "n_threads": one_of("auto") | interval("int", 1, None),
}


_INTERNAL_FOLDERS = tuple(
    os.path.dirname(module.__file__) + os.sep
    for module in (
        __import__("denoisenet"),
        __import__("sklearn"),
        # A Pipeline with memory= calls the steps through joblib.Memory.
        __import__("joblib"),
    )
)


def outside_stacklevel():
    """The ``stacklevel`` that points a warning at the user's own line.

    Counted from the function that calls this one (level 1) up to the first
    frame outside denoisenet, scikit-learn and joblib, whose wrappers
    (set_output, Pipeline, a Pipeline's Memory) add frames of their own.
    """
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(
        _INTERNAL_FOLDERS
    ):
        frame = frame.f_back
        level += 1
    return level
