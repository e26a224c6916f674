"""skops.io: a round trip, the types to trust, and tampered files refused."""

import json
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import torch
from sklearn.pipeline import make_pipeline

from denoisenet import BottleneckClassifier, DenoisingAutoencoder, GaussianPixelNoise

sio = pytest.importorskip("skops.io")

# What docs/user_guide/persistence.rst tells users to expect.
DENOISENET_TYPES = {
    "denoisenet.autoencoder.DenoisingAutoencoder",
    "denoisenet.bottleneck.BottleneckClassifier",
    "denoisenet.noise.GaussianPixelNoise",
}


@pytest.fixture(scope="module")
def pipe():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:300], y[:300]
    dae = DenoisingAutoencoder(
        (32, 8, 32), noise=GaussianPixelNoise(0.1), max_iter=2, random_state=0
    )
    clf = BottleneckClassifier((16, 2, 8), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning
        return make_pipeline(dae, clf).fit(X, y), X


def test_round_trip_answers_exactly_as_before(pipe, tmp_path):
    pipe, X = pipe
    path = tmp_path / "pipe.skops"
    sio.dump(pipe, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert set(untrusted) == DENOISENET_TYPES
    loaded = sio.load(path, trusted=untrusted)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    np.testing.assert_array_equal(loaded[0].transform(X), pipe[0].transform(X))
    assert loaded[0].get_params()["noise"].std == 0.1


def test_loading_without_trust_is_refused(pipe, tmp_path):
    from skops.io.exceptions import UntrustedTypesFoundException

    path = tmp_path / "pipe.skops"
    sio.dump(pipe[0], path)
    with pytest.raises(UntrustedTypesFoundException):
        sio.load(path)


def _tamper(path, edit):
    """Rewrite the skops file at ``path`` with ``edit`` applied to every
    ``_network_args`` dictionary node of its schema."""
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(files["schema.json"])

    def visit(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "_network_args":
                    edit(value["content"])
                else:
                    visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    files["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def _gigantic(network_args, size):
    for i, entry in enumerate(network_args["hidden_layer_sizes"]["content"]):
        entry["content"] = json.dumps(size)
        # skops shares objects of equal __id__ (the parameter's ints): new
        # ids make the edited values count.
        entry["__id__"] = 10**15 + i


def _many_layers(network_args):
    sizes = network_args["hidden_layer_sizes"]["content"]
    sizes.extend([dict(sizes[0]) for _ in range(10_000)])


def _terabytes(network_args):
    _gigantic(network_args, 10**6)  # 4 TB of float32 weights


def _beyond_torch(network_args):
    _gigantic(network_args, 10**12)  # beyond torch's sizes, even on meta


@pytest.mark.parametrize("edit", [_terabytes, _beyond_torch, _many_layers])
def test_tampered_network_arguments_refused_before_allocation(
    pipe, tmp_path, monkeypatch, edit
):
    path = tmp_path / "pipe.skops"
    sio.dump(pipe, path)
    trusted = sio.get_untrusted_types(file=path)
    _tamper(path, edit)
    allocations = []
    original = torch.nn.Module.to_empty

    def to_empty(module, *args, **kwargs):
        allocations.append(type(module).__name__)
        return original(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to_empty", to_empty)
    with pytest.raises(
        (pickle.UnpicklingError, ValueError), match=r"damaged or was tampered|memory"
    ):
        sio.load(path, trusted=trusted)
    assert allocations == []


def test_the_same_check_guards_unpickling(pipe):
    # pickle and skops both rebuild the network in __setstate__.
    dae = pipe[0][0]
    state = dae.__getstate__()
    state["_network_args"] = {
        **state["_network_args"],
        "hidden_layer_sizes": (10**6, 8, 10**6),
    }
    fresh = DenoisingAutoencoder.__new__(DenoisingAutoencoder)
    with pytest.raises(
        (pickle.UnpicklingError, ValueError), match=r"damaged or was tampered|memory"
    ):
        fresh.__setstate__(state)
