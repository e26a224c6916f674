"""Torch modules: dense and convolutional stacks for both estimators.

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
    "autoencoder_network",
    "autoencoder_parameter_count",
    "bottleneck_index",
    "bottleneck_network",
    "bottleneck_parameter_count",
    "conv_output_shapes",
    "init_parameters",
    "run_stacks",
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


def _dense(sizes, activation, *, last_activation=True, batch_norm=()):
    """Linear layers between consecutive ``sizes``, each followed by ``activation``.

    ``batch_norm`` holds the indices of the layers whose output is batch
    normalised (before the activation).
    """
    layers = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if i in batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
        if last_activation or i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def conv_output_shapes(image_shape, n_convolutions):
    """(height, width) after each of ``n_convolutions`` stride-2 convolutions.

    Every convolution has a 3x3 kernel, stride 2 and padding 1, so a side of
    ``s`` pixels becomes ``ceil(s / 2)``; the first entry is ``image_shape``.
    """
    shapes = [tuple(image_shape)]
    for _ in range(n_convolutions):
        shapes.append(tuple((side + 1) // 2 for side in shapes[-1]))
    return shapes


def _conv_encoder(image_shape, conv_channels, activation):
    """Flat images -> stride-2 convolutions -> flat feature maps."""
    layers = [nn.Unflatten(1, (1, *image_shape))]
    for n_in, n_out in itertools.pairwise([1, *conv_channels]):
        layers += [
            nn.Conv2d(n_in, n_out, 3, stride=2, padding=1),
            ACTIVATIONS[activation](),
        ]
    layers.append(nn.Flatten())
    return layers


def _conv_decoder(image_shape, conv_channels, activation):
    """Flat feature maps -> transposed convolutions -> flat images.

    The mirror of :func:`_conv_encoder`: each transposed convolution doubles
    the sides, and its ``output_padding`` (0 or 1) restores an odd side.
    """
    shapes = conv_output_shapes(image_shape, len(conv_channels))
    channels = [1, *conv_channels]
    layers = [nn.Unflatten(1, (channels[-1], *shapes[-1]))]
    for i in range(len(conv_channels), 0, -1):
        padding = tuple(
            target - (2 * side - 1)
            for target, side in zip(shapes[i - 1], shapes[i], strict=True)
        )
        layers.append(
            nn.ConvTranspose2d(
                channels[i],
                channels[i - 1],
                3,
                stride=2,
                padding=1,
                output_padding=padding,
            )
        )
        if i > 1:
            layers.append(ACTIVATIONS[activation]())
    layers.append(nn.Flatten())
    return layers


def _conv_width(image_shape, conv_channels):
    """Number of values in the last convolution's feature maps."""
    height, width = conv_output_shapes(image_shape, len(conv_channels))[-1]
    return conv_channels[-1] * height * width


# Activations that inference applies in place to a product it made itself.
_IN_PLACE = {nn.ReLU: torch.relu_, nn.Sigmoid: torch.sigmoid_, nn.Tanh: torch.tanh_}


def _leaves(module):
    """The layers that ``module`` runs, in order, as far as they are known."""
    if type(module) is nn.Sequential:
        for child in module:
            yield from _leaves(child)
    elif isinstance(module, _Autoencoder):  # forward: decoder(encoder(x))
        yield from _leaves(module.encoder)
        yield from _leaves(module.decoder)
    elif isinstance(module, BottleneckNetwork):  # forward: head(encoder(x))
        yield from _leaves(module.encoder)
        yield from _leaves(module.head)
    else:
        yield module


def _hooked(stacks):
    """Whether a forward hook would see the layers' calls (a user's, a test's)."""
    from torch.nn.modules import module as torch_module

    if getattr(torch_module, "_global_forward_hooks", None) or getattr(
        torch_module, "_global_forward_pre_hooks", None
    ):
        return True
    return any(
        m._forward_hooks or m._forward_pre_hooks
        for stack in stacks
        for m in stack.modules()
    )


def run_stacks(stacks, x, out=None):
    """``x`` through the modules ``stacks`` in turn, for inference.

    The result is bit for bit that of calling the modules, with fewer
    passes over memory: a dense layer is one ``torch.addmm`` (what
    ``nn.Linear`` runs on a matrix), the activation after it works in place
    on that fresh product, and when the stacks end in a dense layer (and
    activations) the product is written straight into ``out`` (a
    contiguous float32 tensor of the result's shape), which is returned.
    Otherwise the result is returned and ``out`` left alone. Modules with
    forward hooks are called as they are, so that the hooks run.
    """
    if _hooked(stacks):
        for stack in stacks:
            x = stack(x)
        return x
    layers = [layer for stack in stacks for layer in _leaves(stack)]
    # The last dense layer may write into out if only activations follow.
    last = max(
        (i for i, layer in enumerate(layers) if type(layer) is nn.Linear), default=-1
    )
    if out is None or any(type(layer) not in _IN_PLACE for layer in layers[last + 1 :]):
        last = -1
    owned = False  # whether x is a tensor made here, free to change in place
    for i, layer in enumerate(layers):
        kind = type(layer)
        if kind is nn.Linear and x.dim() == 2:
            target = {"out": out} if i == last else {}
            if layer.bias is None:
                x = torch.mm(x, layer.weight.t(), **target)
            else:
                x = torch.addmm(layer.bias, x, layer.weight.t(), **target)
            owned = True
        elif kind in _IN_PLACE and owned:
            x = _IN_PLACE[kind](x)
        else:
            x = layer(x)
            # Batch normalisation always returns a new tensor; other layers
            # (Flatten, say) may return a view of their input.
            owned = kind is nn.BatchNorm1d
    return x


class _Autoencoder(nn.Module):
    """What both auto-encoders share: an ``encoder`` and a ``decoder``."""

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        return self.decoder(self.encoder(x))


class DenseAutoencoder(_Autoencoder):
    """Encoder down to the narrowest hidden layer, decoder back out.

    The decoder ends in a sigmoid because the estimator trains on data
    scaled to [0, 1]. With ``batch_norm``, every hidden layer's output (the
    code included) is batch normalised before its activation.
    """

    def __init__(
        self, n_features, hidden_layer_sizes, activation="relu", *, batch_norm=False
    ):
        super().__init__()
        sizes = [n_features, *hidden_layer_sizes, n_features]
        cut = bottleneck_index(hidden_layer_sizes) + 2
        normed_in, normed_out = _autoencoder_norms(sizes, cut, batch_norm)
        self.encoder = _dense(sizes[:cut], activation, batch_norm=normed_in)
        self.decoder = nn.Sequential(
            _dense(
                sizes[cut - 1 :],
                activation,
                last_activation=False,
                batch_norm=normed_out,
            ),
            nn.Sigmoid(),
        )


def _autoencoder_norms(sizes, cut, batch_norm):
    """The encoder's and decoder's layers that batch normalisation follows:
    every hidden layer of ``sizes`` (the encoder runs ``sizes[:cut]``), none
    that makes the output."""
    if not batch_norm:
        return (), ()
    return range(cut - 1), range(len(sizes) - cut - 1)


class ConvAutoencoder(_Autoencoder):
    """Convolutions, the dense ``hidden_layer_sizes``, transposed convolutions.

    The encoder is a stack of 3x3 stride-2 convolutions (one per entry of
    ``conv_channels``) whose flattened output feeds the dense layers down
    to the narrowest hidden layer; the decoder mirrors it, with transposed
    convolutions back to the image and a sigmoid on the pixels.
    """

    def __init__(
        self,
        n_features,
        hidden_layer_sizes,
        activation="relu",
        *,
        image_shape,
        conv_channels,
        batch_norm=False,
    ):
        super().__init__()
        flat = _conv_width(image_shape, conv_channels)
        sizes = [flat, *hidden_layer_sizes, flat]
        cut = bottleneck_index(hidden_layer_sizes) + 2
        normed_in, normed_out = _autoencoder_norms(sizes, cut, batch_norm)
        self.encoder = nn.Sequential(
            *_conv_encoder(image_shape, conv_channels, activation),
            *_dense(sizes[:cut], activation, batch_norm=normed_in),
        )
        self.decoder = nn.Sequential(
            *_dense(sizes[cut - 1 :], activation, batch_norm=normed_out),
            *_conv_decoder(image_shape, conv_channels, activation),
            nn.Sigmoid(),
        )


class BottleneckNetwork(nn.Module):
    """A classifier whose narrowest hidden layer is linear.

    A ReLU on a 2-unit layer dies easily (a unit that is negative for every
    image never recovers), which collapses the map onto a line or a point.
    A linear bottleneck cannot die; the layers after it are free to bend the
    2-D code into class regions.
    """

    def __init__(
        self,
        n_features,
        hidden_layer_sizes,
        n_outputs,
        activation="relu",
        *,
        image_shape=None,
        conv_channels=(),
        batch_norm=False,
    ):
        super().__init__()
        convolutions = []
        if conv_channels:
            convolutions = _conv_encoder(image_shape, conv_channels, activation)
            n_features = _conv_width(image_shape, conv_channels)
        sizes = [n_features, *hidden_layer_sizes, n_outputs]
        cut = bottleneck_index(hidden_layer_sizes) + 2
        # Every hidden layer but the bottleneck is normalised: the map keeps
        # the scale that the neighbour term's Student-t kernel gives it.
        normed_in = range(cut - 2) if batch_norm else ()
        normed_out = range(len(sizes) - cut - 1) if batch_norm else ()
        self.encoder = nn.Sequential(
            *convolutions,
            *_dense(
                sizes[:cut], activation, last_activation=False, batch_norm=normed_in
            ),
        )
        self.head = _dense(
            sizes[cut - 1 :], activation, last_activation=False, batch_norm=normed_out
        )

    def encode(self, x):
        return self.encoder(x)

    def forward(self, x):
        return self.head(self.encoder(x))


def autoencoder_network(
    n_features,
    hidden_layer_sizes,
    activation="relu",
    architecture="dense",
    image_shape=None,
    conv_channels=(),
    batch_norm=False,
):
    """The auto-encoder module for ``architecture`` ("dense" or "conv")."""
    if architecture == "conv":
        return ConvAutoencoder(
            n_features,
            hidden_layer_sizes,
            activation,
            image_shape=image_shape,
            conv_channels=conv_channels,
            batch_norm=batch_norm,
        )
    return DenseAutoencoder(
        n_features, hidden_layer_sizes, activation, batch_norm=batch_norm
    )


def bottleneck_network(
    n_features,
    hidden_layer_sizes,
    n_outputs,
    activation="relu",
    architecture="dense",
    image_shape=None,
    conv_channels=(),
    batch_norm=False,
):
    """The classifier module for ``architecture`` ("dense" or "conv")."""
    if architecture != "conv":
        image_shape, conv_channels = None, ()
    return BottleneckNetwork(
        n_features,
        hidden_layer_sizes,
        n_outputs,
        activation,
        image_shape=image_shape,
        conv_channels=conv_channels,
        batch_norm=batch_norm,
    )


# -- sizes without allocation ----------------------------------------------
#
# The estimators refuse a network that cannot fit in memory before building
# it. Counting on the meta device would not do: torch's C++ overflows on
# sizes such as 10**20 before it allocates anything. These functions mirror
# the constructors above in Python integers, which cannot overflow.


def _dense_count(sizes):
    return sum(n_in * n_out + n_out for n_in, n_out in itertools.pairwise(sizes))


def _conv_count(conv_channels):
    """Weights and biases of the 3x3 convolutions from one channel on."""
    channels = [1, *conv_channels]
    return sum(9 * a * b + b for a, b in itertools.pairwise(channels))


def autoencoder_parameter_count(
    n_features,
    hidden_layer_sizes,
    activation="relu",
    architecture="dense",
    image_shape=None,
    conv_channels=(),
    batch_norm=False,
    **options,
):
    """Number of parameters of :func:`autoencoder_network` with these arguments.

    ``options`` that do not change the layers' widths add no parameters.
    """
    # Batch normalisation: a scale and a shift for every hidden unit.
    norms = 2 * sum(hidden_layer_sizes) if batch_norm else 0
    if architecture != "conv":
        return _dense_count([n_features, *hidden_layer_sizes, n_features]) + norms
    flat = _conv_width(image_shape, conv_channels)
    dense = _dense_count([flat, *hidden_layer_sizes, flat])
    # The transposed convolutions mirror the convolutions: the same weights,
    # but their biases have the input's channel counts.
    channels = [1, *conv_channels]
    transposed = sum(9 * a * b + a for a, b in itertools.pairwise(channels))
    return _conv_count(conv_channels) + dense + transposed + norms


def bottleneck_parameter_count(
    n_features,
    hidden_layer_sizes,
    n_outputs,
    activation="relu",
    architecture="dense",
    image_shape=None,
    conv_channels=(),
    batch_norm=False,
    **options,
):
    """Number of parameters of :func:`bottleneck_network` (``options`` as above)."""
    convolutions = 0
    if architecture == "conv" and conv_channels:
        convolutions = _conv_count(conv_channels)
        n_features = _conv_width(image_shape, conv_channels)
    dense = _dense_count([n_features, *hidden_layer_sizes, n_outputs])
    if batch_norm:
        # A scale and a shift for every hidden unit outside the bottleneck.
        sizes = list(hidden_layer_sizes)
        dense += 2 * (sum(sizes) - sizes[bottleneck_index(sizes)])
    return convolutions + dense


_WEIGHTED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def init_parameters(module, generator):
    """Initialise every linear and convolutional layer from ``generator``.

    torch's default initialisation draws from the global generator; the
    estimators build their modules on the meta device and initialise them
    here so that fitting never changes global random state. Weights follow
    Glorot's uniform scheme with He's gain before a ReLU; biases start at 0.
    """
    layers = list(module.modules())
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.BatchNorm1d):
            # Built on the meta device, so its state must be set here too.
            layer.reset_parameters()
            continue
        if not isinstance(layer, _WEIGHTED):
            continue
        following = next(
            (
                m
                for m in layers[i + 1 :]
                if not isinstance(m, (nn.Sequential, nn.BatchNorm1d))
            ),
            None,
        )
        gain = math.sqrt(2.0) if isinstance(following, nn.ReLU) else 1.0
        # (out, in, kh, kw) for a convolution, (in, out, kh, kw) for a
        # transposed one; Glorot's bound is symmetric in the two fans.
        receptive = math.prod(layer.weight.shape[2:])
        fan_a, fan_b = layer.weight.shape[:2]
        bound = gain * math.sqrt(6.0 / (receptive * (fan_a + fan_b)))
        with torch.no_grad():
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.zero_()
    return module
