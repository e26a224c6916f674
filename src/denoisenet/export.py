"""Self-contained torch modules for deployment: a network with its scaling.

A fitted estimator's ``module_`` expects ``(X - data_min_) / data_range_``
and answers in that scaled space; exported on its own it silently drops the
scaling that ``fit`` learned. The modules here carry the scaling as buffers
and give the answer the estimator gives, so that a model can leave Python
with :func:`torch.jit.script`, :func:`torch.export.export` or
:func:`torch.onnx.export`. They are what
:meth:`DenoisingAutoencoder.to_torch <denoisenet.DenoisingAutoencoder.to_torch>`
and :meth:`BottleneckClassifier.to_torch
<denoisenet.BottleneckClassifier.to_torch>` return.

Like :mod:`denoisenet._networks`, nothing here knows of numpy or
scikit-learn: each module takes float32 tensors of shape
``(n_samples, n_features)`` in the units of the training data.
"""

import torch
from torch import nn

__all__ = ["ClassProbabilities", "Encoding", "Reconstruction"]


class _Scaled(nn.Module):
    """A network behind the estimator's input scaling."""

    def __init__(self, network, data_min, data_range):
        super().__init__()
        self.network = network
        # Buffers, not Python floats: they travel with state_dict() and
        # .to(device), and stay float32 as the estimator computes them.
        self.register_buffer(
            "data_min", torch.tensor(data_min, dtype=torch.float32, device="cpu")
        )
        self.register_buffer(
            "data_range", torch.tensor(data_range, dtype=torch.float32, device="cpu")
        )

    def scale(self, x):
        return (x - self.data_min) / self.data_range


class Reconstruction(_Scaled):
    """``DenoisingAutoencoder.transform``: the denoised images, unscaled.

    Parameters
    ----------
    network : torch.nn.Module
        An auto-encoder network (``forward`` maps scaled images to scaled
        reconstructions).
    data_min, data_range : float
        The estimator's ``data_min_`` and ``data_range_``.
    """

    def forward(self, x):
        return self.network(self.scale(x)) * self.data_range + self.data_min


class Encoding(_Scaled):
    """The code of the narrowest layer (``encode``, or the classifier's
    ``transform``).

    Parameters
    ----------
    network : torch.nn.Module
        A network with an ``encoder`` submodule.
    data_min, data_range : float
        The estimator's ``data_min_`` and ``data_range_``.
    """

    def forward(self, x):
        return self.network.encoder(self.scale(x))


class ClassProbabilities(_Scaled):
    """``BottleneckClassifier.predict_proba``: softmax of the network's logits.

    Columns follow the estimator's ``classes_``, which the module does not
    hold (labels can be strings, which tensors cannot).

    Parameters
    ----------
    network : torch.nn.Module
        A classifier network (``forward`` maps scaled inputs to logits).
    data_min, data_range : float
        The estimator's ``data_min_`` and ``data_range_``.
    """

    def forward(self, x):
        return torch.softmax(self.network(self.scale(x)), dim=1)
