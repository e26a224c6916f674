"""Tests for denoisenet._resources and the parameter counts it relies on.

The estimators refuse a network before building it when its training copies
cannot fit in the device's memory; these tests check the count against the
networks that torch builds, and the refusal against a memory limit that the
test sets.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from denoisenet import DenoisingAutoencoder, _resources
from denoisenet._networks import (
    autoencoder_network,
    autoencoder_parameter_count,
    bottleneck_network,
    bottleneck_parameter_count,
)

SIZES = st.lists(st.integers(1, 40), min_size=1, max_size=4).map(tuple)


@st.composite
def network_args(draw):
    args = {"hidden_layer_sizes": draw(SIZES), "activation": "relu"}
    if draw(st.booleans()):
        height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
        args.update(
            architecture="conv",
            image_shape=(height, width),
            conv_channels=draw(SIZES),
            n_features=height * width,
        )
    else:
        args["n_features"] = draw(st.integers(1, 50))
    return args


@settings(max_examples=60, deadline=None)
@given(args=network_args(), n_outputs=st.integers(2, 12))
def test_parameter_counts_match_the_networks_torch_builds(args, n_outputs):
    with torch.device("meta"):
        autoencoder = autoencoder_network(**args)
        classifier = bottleneck_network(n_outputs=n_outputs, **args)
    assert autoencoder_parameter_count(**args) == sum(
        p.numel() for p in autoencoder.parameters()
    )
    assert bottleneck_parameter_count(n_outputs=n_outputs, **args) == sum(
        p.numel() for p in classifier.parameters()
    )


def test_absurd_counts_are_python_integers():
    count = autoencoder_parameter_count(784, (10**20,))
    assert count == 2 * 784 * 10**20 + 10**20 + 784


@settings(max_examples=60, deadline=None)
@given(
    n_parameters=st.integers(0, 10**30),
    copies=st.integers(1, 8),
    limit=st.integers(0, 2**40),
)
def test_a_network_is_refused_exactly_when_it_exceeds_the_limit(
    n_parameters, copies, limit
):
    needed = n_parameters * copies * 4
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_resources, "available_memory", lambda device: limit)
        try:
            _resources.check_network_fits(
                n_parameters,
                torch.device("cpu"),
                copies=copies,
                subject="The network",
                advice="Use fewer units.",
            )
        except ValueError as exc:
            assert needed > limit
            message = str(exc)
            assert message.startswith("The network has ")
            assert f"{n_parameters:,} parameters" in message
            assert _resources.format_bytes(needed) in message
            assert _resources.format_bytes(limit) in message
            assert message.endswith("Use fewer units.")
        else:
            assert needed <= limit


def test_unknown_memory_still_refuses_what_torch_cannot_index(monkeypatch):
    monkeypatch.setattr(_resources, "available_memory", lambda device: None)
    _resources.check_network_fits(
        10**6, torch.device("cpu"), copies=7, subject="A", advice="B"
    )
    with pytest.raises(ValueError, match="largest tensor torch can index"):
        _resources.check_network_fits(
            2**62, torch.device("cpu"), copies=1, subject="A", advice="B"
        )


def test_available_host_memory_is_a_plausible_number():
    available = _resources.available_memory(torch.device("cpu"))
    if available is None:
        pytest.skip("this platform reports no available memory")
    assert isinstance(available, int)
    assert 0 < available < 2**60


@pytest.mark.parametrize(
    ("n", "shown"),
    [(0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 KiB"), (3 * 2**30, "3 GiB")],
)
def test_format_bytes(n, shown):
    assert _resources.format_bytes(n) == shown


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_an_estimator_without_a_count_is_measured_on_the_meta_device(monkeypatch):
    monkeypatch.setattr(DenoisingAutoencoder, "_parameter_count", None)
    X = np.random.default_rng(0).random((8, 6))
    DenoisingAutoencoder((4, 2, 4), max_iter=1, device="cpu").fit(X)
    for sizes in [(10**6, 10**6), (10**20,)]:
        with pytest.raises(ValueError, match=r"parameters, which need|cannot build"):
            DenoisingAutoencoder(sizes, max_iter=1, device="cpu").fit(X)
