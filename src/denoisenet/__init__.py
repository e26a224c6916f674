"""scikit-learn estimators backed by PyTorch for noisy image data.

denoisenet corrupts images reproducibly (:class:`GaussianPixelNoise`,
:class:`SaltAndPepperNoise`, :class:`MaskingNoise`), learns to remove the
noise (:class:`DenoisingAutoencoder`) and classifies through a narrow
bottleneck whose activations double as a 2-D map of the data
(:class:`BottleneckClassifier`). Every estimator works inside
:class:`~sklearn.pipeline.Pipeline`, :class:`~sklearn.model_selection.GridSearchCV`,
:func:`~sklearn.base.clone` and pickle.
"""

import importlib as _importlib
from importlib import util as _importlib_util

__version__ = "0.1.0.dev0"

# The estimators are imported on first use (PEP 562), so that importing the
# package, and the ``denoisenet`` command's --help and --version, do not
# wait about two seconds for torch and scikit-learn.
_PUBLIC = {
    "BottleneckClassifier": "denoisenet.bottleneck",
    "DenoisingAutoencoder": "denoisenet.autoencoder",
    "GaussianPixelNoise": "denoisenet.noise",
    "MaskingNoise": "denoisenet.noise",
    "SaltAndPepperNoise": "denoisenet.noise",
}

__all__ = [
    "BottleneckClassifier",
    "DenoisingAutoencoder",
    "GaussianPixelNoise",
    "MaskingNoise",
    "SaltAndPepperNoise",
    "__version__",
]


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is not None:
        value = getattr(_importlib.import_module(module), name)
    elif not name.startswith("__") and _importlib_util.find_spec(f"denoisenet.{name}"):
        # A submodule (denoisenet.callbacks, say), as after an eager import.
        value = _importlib.import_module(f"denoisenet.{name}")
    else:
        raise AttributeError(f"module 'denoisenet' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})
