"""scikit-learn estimators backed by PyTorch for noisy image data.

denoisenet corrupts images reproducibly (:class:`GaussianPixelNoise`,
:class:`SaltAndPepperNoise`, :class:`MaskingNoise`), learns to remove the
noise (:class:`DenoisingAutoencoder`) and classifies through a narrow
bottleneck whose activations double as a 2-D map of the data
(:class:`BottleneckClassifier`). Every estimator works inside
:class:`~sklearn.pipeline.Pipeline`, :class:`~sklearn.model_selection.GridSearchCV`,
:func:`~sklearn.base.clone` and pickle.
"""

from denoisenet.autoencoder import DenoisingAutoencoder
from denoisenet.bottleneck import BottleneckClassifier
from denoisenet.noise import GaussianPixelNoise, MaskingNoise, SaltAndPepperNoise

__version__ = "0.1.0.dev0"

__all__ = [
    "BottleneckClassifier",
    "DenoisingAutoencoder",
    "GaussianPixelNoise",
    "MaskingNoise",
    "SaltAndPepperNoise",
    "__version__",
]
