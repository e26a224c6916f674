"""DenoisingAutoencoder: learn to remove noise from images."""

import numpy as np
import torch
from sklearn.base import OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import validate_data

from denoisenet._base import (
    BOOL,
    INPUT_DTYPES,
    NeuralEstimatorBase,
    layer_sizes,
    noise_generator,
    output_dtype,
    seed_generators,
    thread_budget,
)
from denoisenet._networks import (
    autoencoder_network,
    autoencoder_parameter_count,
    run_stacks,
)
from denoisenet._training import DenseSquaredErrorStep, Objective
from denoisenet._validation import COMMON_DOMAINS, one_of
from denoisenet.export import Encoding, Reconstruction
from denoisenet.noise import (
    NOISE_PARAMETER,
    check_noise_parameter,
    training_corruption,
)

__all__ = ["DenoisingAutoencoder"]


def _squared_error(module, inputs, targets, weights):
    return torch.nn.functional.mse_loss(module(inputs), targets)


class DenoisingAutoencoder(OneToOneFeatureMixin, TransformerMixin, NeuralEstimatorBase):
    """An auto-encoder trained to map corrupted images to clean ones.

    ``fit`` takes clean images. In every batch of every epoch it corrupts
    them afresh with ``noise`` and trains the network to reconstruct the
    clean images (mean squared error, Adam). ``transform`` returns the
    reconstruction, so in a :class:`~sklearn.pipeline.Pipeline` in front of
    a classifier it removes noise from the images the classifier sees.

    The data need no scaling: ``fit`` learns the range of ``X`` (one
    minimum and one maximum over all pixels; data already inside [0, 1] is
    left as it is), trains on images scaled to [0, 1] by that range (the
    noise acts in that scaled space), and every method answers in the
    user's units. Scale images as a whole, never feature by feature (a
    ``StandardScaler`` in front): ``fit`` warns when the scaled data fill
    little of [0, 1].

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(256, 128, 256)
        Widths of the dense hidden layers. The narrowest one is the code
        that :meth:`encode` returns; the network is
        ``n_features -> hidden_layer_sizes -> n_features``, with the
        convolutions of ``architecture="conv"`` before the first and after
        the last of these layers.
    noise : float, noise transformer or None, default=0.2
        The corruption applied during training. A float is the standard
        deviation of :class:`~denoisenet.GaussianPixelNoise` (clipped to
        [0, 1]); an instance of :class:`~denoisenet.GaussianPixelNoise`,
        :class:`~denoisenet.SaltAndPepperNoise` or
        :class:`~denoisenet.MaskingNoise` is used as it is (its parameters
        are reachable as ``noise__std`` and so on); None trains a plain
        auto-encoder. The random state of the training loop, not the
        noise transformer's own ``random_state``, draws the noise.
    architecture : {'dense', 'conv'}, default='dense'
        'dense' connects every pixel to the first hidden layer. 'conv' puts
        a stack of convolutions (``conv_channels``) between the image and
        the dense layers, and its mirror image, transposed convolutions,
        between the last dense layer and the output; see
        :ref:`convolutions`. On Fashion-MNIST it denoises better and trains
        several times slower than 'dense'.
    image_shape : (int, int) or None, default=None
        (height, width) of the images, for ``architecture="conv"``; rows of
        ``X`` are images flattened row by row. None means square images
        (784 features are 28 x 28); other images need it. One side may be
        -1, which stands for whatever the other leaves, as in
        :func:`numpy.reshape`. Ignored by 'dense'.
    conv_channels : tuple of int, default=(32, 64)
        Output channels of the convolutions of ``architecture="conv"``, one
        3x3 convolution with stride 2 per entry, each halving the height
        and width (rounding up) and followed by ``activation``. Ignored by
        'dense'.
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
        Activation of the hidden layers (and convolutions); the output
        layer is a sigmoid.
    batch_norm : bool, default=True
        Batch normalisation after every hidden dense layer (the code
        included), before its activation. On Fashion-MNIST (60,000 images
        and a 5,000-image subset) it lowers the denoising error and raises
        a clean-trained classifier's accuracy on the denoised images by
        0.4 to 0.9 points on every seed measured; on the digits it changes
        little (see :ref:`denoising`). Training needs at least 2 rows a
        call to ``fit`` or ``partial_fit`` (a last batch of one row joins
        the batch before it); ``batch_norm=False`` trains on one row too.
    alpha : float, default=1e-4
        Strength of the L2 penalty on the weights, as in
        :class:`~sklearn.neural_network.MLPRegressor`.
    batch_size : int or 'auto', default='auto'
        Samples per optimiser step; 'auto' is ``n_samples // 40`` between
        32 and 256: 256 rows on large data (on Fashion-MNIST's 60,000
        images, with batch normalisation and the dense network's step of 4e-3,
        fits about 0.7 times as long as in batches of 128 at 2e-3, at the
        same denoised accuracy), and at least 40 steps an epoch on small
        data sets, where a few large batches give Adam too few steps (on
        the digits, batches of 33 rows rather than 256 raise the denoised
        accuracy by about 2 points). Larger values are clipped to the
        number of samples.
    learning_rate : {'adaptive', 'constant'}, default='adaptive'
        How Adam's step size changes during :term:`fit`. 'adaptive' is
        scikit-learn's rule for its MLPs, with half its patience: each time
        the training loss (or, with early stopping, the validation score)
        fails to improve by ``tol`` for ``ceil((n_iter_no_change + 1) / 2)``
        epochs (6 by default), the step size is divided by 5 and training
        goes on; once it is a hundredth of ``learning_rate_init``, a stall
        of more than ``n_iter_no_change`` epochs ends training. 'constant'
        keeps ``learning_rate_init`` and stops after ``n_iter_no_change``
        epochs without improvement. :meth:`partial_fit` always uses the
        constant rate.
    learning_rate_init : float or 'auto', default='auto'
        Initial step size of Adam. 'auto' is 4e-3 with
        ``architecture='dense'`` and 2e-3 with ``'conv'``: each the better
        of the two for its network in the benchmarks (see
        :ref:`denoising` and :ref:`convolutions`).
    max_iter : int, default=200
        Maximum number of epochs (passes over the data); training usually
        stops well before, when it has converged (see ``learning_rate``). A
        :class:`~sklearn.exceptions.ConvergenceWarning` says when it has not.
    early_stopping : 'auto' or bool, default='auto'
        Hold out a ``validation_fraction`` of the data, stop when the
        validation score (the negative denoising error) stops improving, and
        restore the best weights. 'auto' does so when there are more than
        10,000 samples, as scikit-learn's HistGradientBoosting estimators
        do: on large data the training loss goes on improving long after
        the held-out score has stopped (on Fashion-MNIST's 60,000 images
        the defaults stop after 50-56 epochs; ``benchmarks/bench_defaults.py
        --data fm``). Ignored by :meth:`partial_fit`.
    validation_fraction : float, default=0.1
        Share of the data held out for early stopping, in (0, 1).
    n_iter_no_change : int, default=10
        Epochs without an improvement of at least ``tol`` before stopping.
    tol : float, default=1e-4
        Improvement of the loss (or validation score) that counts.
    shuffle : bool, default=True
        Shuffle the images before every epoch.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds initialisation, shuffling, validation split and noise. An int
        gives bit-identical results on the same device; fitting never
        changes numpy's or torch's global random state.
    verbose : int or bool, default=0
        Show a progress bar over epochs (tqdm, or one line per epoch when
        tqdm is not installed).
    warm_start : bool, default=False
        Continue from the previous fit instead of starting afresh.
    device : str or torch.device, default='auto'
        'auto' (CUDA when available, else the CPU), 'cpu', 'cuda',
        'cuda:N' or 'mps'. Asking for a device that is absent is an error.
    n_threads : int or 'auto', default='auto'
        torch threads that training and inference use on the CPU. 'auto'
        picks them when a call starts (and again between the steps of a
        fit), from the size of the work (one
        thread for tiny batches) and the CPUs that other work leaves idle;
        in a worker thread it is one. An int uses that many threads, at most
        one per CPU that the process may run on. See
        :ref:`scaling` for the rule and why.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network (a ``DenseAutoencoder`` or ``ConvAutoencoder``
        with ``encoder`` and ``decoder``).
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has feature
        names that are all strings.
    data_min_ : float
        The value that the scaling maps to 0.
    data_range_ : float
        The width of the range that the scaling maps to [0, 1].
    loss_curve_ : list of float
        Mean training loss (squared error on scaled data) of every epoch.
    validation_scores_ : list of float or None
        Negative denoising error on the held-out data after every epoch,
        with early stopping; else None.
    best_loss_ : float or None
        Lowest training loss reached; None with early stopping.
    best_validation_score_ : float or None
        Best validation score reached, with early stopping; else None.
    n_iter_ : int
        Number of epochs run, over all calls to ``fit`` (with
        ``warm_start``) and ``partial_fit``.
    interrupted_ : bool
        True when the user stopped the last call to ``fit`` or
        ``partial_fit`` with Ctrl-C (KeyboardInterrupt) after at least one
        epoch: the estimator keeps the weights of the last completed epoch,
        but training did not run to its end. False otherwise.

    See Also
    --------
    BottleneckClassifier : Classify through a narrow bottleneck.
    GaussianPixelNoise : The default corruption.
    sklearn.neural_network.MLPRegressor : A dense network without noise.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from denoisenet import DenoisingAutoencoder, GaussianPixelNoise
    >>> X, _ = load_digits(return_X_y=True)
    >>> dae = DenoisingAutoencoder((64, 32, 64), noise=0.2,
    ...                            random_state=0).fit(X)
    >>> X_noisy = GaussianPixelNoise(3.2, clip=(0, 16),
    ...                              random_state=0).fit_transform(X)
    >>> dae.transform(X_noisy).shape
    (1797, 64)
    >>> dae.encode(X).shape
    (1797, 32)
    """

    _network = staticmethod(autoencoder_network)
    _parameter_count = staticmethod(autoencoder_parameter_count)
    _torch_outputs = {"transform": Reconstruction, "encode": Encoding}
    _stratify = False
    # 256 rows on large data: with batch normalisation and the 4e-3 step,
    # as good as 128 rows at 2e-3 on Fashion-MNIST in 0.7 times the time
    # (CHANGELOG); small data sets keep n_samples // 40.
    _auto_batch_size = 256
    _extra_domains = {
        "noise": NOISE_PARAMETER,
        "batch_norm": BOOL,
        "learning_rate_init": one_of("auto") | COMMON_DOMAINS["learning_rate_init"],
    }
    # learning_rate_init='auto', by architecture: the dense network trains
    # best with batch normalisation at 4e-3, the convolutions at 2e-3
    # (benchmarks/bench_defaults.py; docs/user_guide/convolutions.rst).
    _auto_learning_rate = {"dense": 4e-3, "conv": 2e-3}
    # A model saved before batch_norm existed was trained without.
    _added_parameters = {**NeuralEstimatorBase._added_parameters, "batch_norm": False}

    def __init__(
        self,
        hidden_layer_sizes=(256, 128, 256),
        *,
        noise=0.2,
        architecture="dense",
        image_shape=None,
        conv_channels=(32, 64),
        activation="relu",
        batch_norm=True,
        alpha=1e-4,
        batch_size="auto",
        learning_rate="adaptive",
        learning_rate_init="auto",
        max_iter=200,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        shuffle=True,
        random_state=None,
        verbose=0,
        warm_start=False,
        device="auto",
        n_threads="auto",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.noise = noise
        self.architecture = architecture
        self.image_shape = image_shape
        self.conv_channels = conv_channels
        self.activation = activation
        self.batch_norm = batch_norm
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device
        self.n_threads = n_threads

    # -- the hooks of NeuralEstimatorBase ---------------------------------

    def _check_params(self):
        super()._check_params()
        check_noise_parameter(self.noise)

    def _prepare(self, X, y, sample_weight, classes, reuse, incremental):
        X = validate_data(self, X, reset=not reuse, dtype=INPUT_DTYPES)
        self._check_batch_norm_rows(X.shape[0])
        return X, None, None

    def _network_kwargs(self):
        return {
            "n_features": self.n_features_in_,
            "hidden_layer_sizes": layer_sizes(self.hidden_layer_sizes),
            "activation": self.activation,
            "batch_norm": bool(self.batch_norm),
            **self._architecture_kwargs(),
        }

    def _objective(self, seed, n_samples):
        corrupt = training_corruption(self.noise)

        def validation_score(module, X_val, _):
            step = self._inference_rows()
            return -_denoising_error(module, X_val.split(step), corrupt, seed)

        # The dense ReLU network's step is written out by hand (the same
        # loss, about 10% less time an epoch on the CPU); any other network
        # trains through autograd.
        return Objective(
            _squared_error,
            corrupt,
            validation_score,
            fused_step=DenseSquaredErrorStep(),
            advice=self._divergence_advice(),
        )

    # -- public methods ----------------------------------------------------

    def fit(self, X, y=None):
        """Train on clean images ``X``, corrupted afresh in every batch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Clean images, one flattened image per row.
        y : None
            Ignored; present so that the estimator works in a Pipeline.

        Returns
        -------
        self : DenoisingAutoencoder
            The fitted estimator.
        """
        return self._fit(X, incremental=False)

    def partial_fit(self, X, y=None):
        """Train for one epoch on ``X``, keeping the weights of earlier calls.

        The first call learns the data range from its ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Clean images; at least 2 with ``batch_norm=True`` (the
            default), whose statistics need two rows.
        y : None
            Ignored.

        Returns
        -------
        self : DenoisingAutoencoder
            The updated estimator.
        """
        return self._fit(X, incremental=True)

    def transform(self, X):
        """Denoise ``X``: the reconstruction, in the units of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Images, noisy or not.

        Returns
        -------
        X_denoised : ndarray of shape (n_samples, n_features)
            float64 for float64 input, float32 otherwise.
        """
        X = self._validated(X)
        out = self._infer(
            X,
            lambda m, b, out: run_stacks([m], b, out),
            self.n_features_in_,
            dtype=output_dtype(X),
        )
        return self._unscale(out)

    def encode(self, X):
        """The activations of the narrowest hidden layer (the code).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Images.

        Returns
        -------
        Z : ndarray of shape (n_samples, min(hidden_layer_sizes))
            The code of every image.
        """
        X = self._validated(X)
        return self._infer(
            X,
            lambda m, b, out: run_stacks([m.encoder], b, out),
            self._code_width(),
            dtype=output_dtype(X),
        )

    def decode(self, Z):
        """Map codes back to images, in the units of the training data.

        Parameters
        ----------
        Z : array-like of shape (n_samples, min(hidden_layer_sizes))
            Codes, for instance from :meth:`encode`.

        Returns
        -------
        X : ndarray of shape (n_samples, `n_features_in_`)
            The decoded images.
        """
        Z = self._checked_codes(Z, "code")
        out = self._infer(
            Z,
            lambda m, b, out: run_stacks([m.decoder], b, out),
            self.n_features_in_,
            dtype=Z.dtype,
            scale=False,
        )
        return self._unscale(out)

    def score(self, X, y=None):
        """Negative mean squared error of denoising corrupted ``X``.

        ``X`` is corrupted with ``noise`` (seeded by ``random_state``, so
        repeated calls agree when it is an int), reconstructed, and compared
        with ``X`` in its own units; higher is better, so that
        :class:`~sklearn.model_selection.GridSearchCV` on a lone
        auto-encoder picks the best denoiser.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Clean images.
        y : None
            Ignored.

        Returns
        -------
        score : float
            Minus the mean squared error.
        """
        X = self._validated(X)
        # score reads noise and random_state, which set_params may have
        # changed since fit.
        self._check_inference_params(("device", "n_threads", "noise", "random_state"))
        check_noise_parameter(self.noise)
        corrupt = training_corruption(self.noise)
        seed = seed_generators(self.random_state, 1, salt=-1 % 2**32)[0]
        module = self._module_on_device()
        step = self._inference_rows()
        # Scaled batch by batch: a scaled copy of the whole of X would double
        # the memory that scoring takes.
        batches = (
            self._scaled_tensor(X[start : start + step])
            for start in range(0, X.shape[0], step)
        )
        with thread_budget(self._threads(min(step, X.shape[0]))):
            error = _denoising_error(module, batches, corrupt, seed)
        score = -float(error) * self.data_range_**2
        if not np.isfinite(score):
            raise self._non_finite_error()
        return score

    # -- helpers -----------------------------------------------------------

    def _unscale(self, out):
        if self.data_min_ != 0.0 or self.data_range_ != 1.0:
            out *= out.dtype.type(self.data_range_)
            out += out.dtype.type(self.data_min_)
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _denoising_error(module, batches, corrupt, seed):
    """Mean squared error of reconstructing corrupted batches (scaled units)."""
    device = next(module.parameters()).device
    generator = noise_generator(seed, device)
    total, count = 0.0, 0
    module.eval()
    with torch.inference_mode():
        for batch in batches:
            clean = batch.to(device)
            count += clean.numel()
            noisy = clean if corrupt is None else corrupt(clean, generator)
            # Squared in float64: an error of 1e20 squares beyond float32.
            difference = (module(noisy) - clean).double()
            total += float(torch.sum(difference * difference))
    return total / count
