"""Torch modules: dense stacks for the auto-encoder and the classifier.

Nothing here knows of numpy or scikit-learn. Modules are built from plain
arguments so that an estimator can rebuild one from its stored arguments and
load a state dict into it (that is how pickling works).
"""

import itertools
import math

import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "BottleneckNetwork",
    "DenseAutoencoder",
    "bottleneck_index",
    "init_parameters",
]

ACTIVATIONS = {
    "identity": nn.Identity,
    "logistic": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
}


def bottleneck_index(hidden_layer_sizes):
    """Index of the narrowest hidden layer (the first of equals)."""
    sizes = list(hidden_layer_sizes)
    return sizes.index(min(sizes))


def _dense(sizes, activation, *, last_activation=True):
    """Linear layers between consecutive ``sizes``, each followed by ``activation``."""
    layers = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if last_activation or i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class DenseAutoencoder(nn.Module):
    """Encoder down to the narrowest hidden layer, decoder back out.

    The decoder ends in a sigmoid because the estimator trains on data
    scaled to [0, 1].
    """

    def __init__(self, n_features, hidden_layer_sizes, activation="relu"):
        super().__init__()
        sizes = [n_features, *hidden_layer_sizes, n_features]
        cut = bottleneck_index(hidden_layer_sizes) + 2
        self.encoder = _dense(sizes[:cut], activation)
        self.decoder = nn.Sequential(
            _dense(sizes[cut - 1 :], activation, last_activation=False), nn.Sigmoid()
        )

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        return self.decoder(self.encoder(x))


class BottleneckNetwork(nn.Module):
    """A classifier whose narrowest hidden layer is linear.

    A ReLU on a 2-unit layer dies easily (a unit that is negative for every
    image never recovers), which collapses the map onto a line or a point.
    A linear bottleneck cannot die; the layers after it are free to bend the
    2-D code into class regions.
    """

    def __init__(self, n_features, hidden_layer_sizes, n_outputs, activation="relu"):
        super().__init__()
        sizes = [n_features, *hidden_layer_sizes, n_outputs]
        cut = bottleneck_index(hidden_layer_sizes) + 2
        self.encoder = _dense(sizes[:cut], activation, last_activation=False)
        self.head = _dense(sizes[cut - 1 :], activation, last_activation=False)

    def encode(self, x):
        return self.encoder(x)

    def forward(self, x):
        return self.head(self.encoder(x))


def init_parameters(module, generator):
    """Initialise every linear layer from ``generator`` alone.

    torch's default initialisation draws from the global generator; the
    estimators build their modules on the meta device and initialise them
    here so that fitting never changes global random state. Weights follow
    Glorot's uniform scheme with He's gain before a ReLU; biases start at 0.
    """
    layers = list(module.modules())
    for i, layer in enumerate(layers):
        if not isinstance(layer, nn.Linear):
            continue
        following = next(
            (m for m in layers[i + 1 :] if not isinstance(m, nn.Sequential)), None
        )
        gain = math.sqrt(2.0) if isinstance(following, nn.ReLU) else 1.0
        fan_out, fan_in = layer.weight.shape
        bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
        with torch.no_grad():
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.zero_()
    return module
