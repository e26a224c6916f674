"""BottleneckClassifier: classify through a narrow layer that maps the data."""

import reprlib

import numpy as np
import torch
from sklearn.base import ClassifierMixin, TransformerMixin
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_is_fitted,
    validate_data,
)

from denoisenet._base import (
    _FLOAT32_MAX,
    BOOL,
    INPUT_DTYPES,
    Domain,
    NeuralEstimatorBase,
    interval,
    layer_sizes,
    one_of,
    output_dtype,
)
from denoisenet._networks import (
    bottleneck_network,
    bottleneck_parameter_count,
    run_stacks,
)
from denoisenet._training import Objective
from denoisenet.export import ClassProbabilities, Encoding
from denoisenet.noise import (
    NOISE_PARAMETER,
    check_noise_parameter,
    training_corruption,
)

__all__ = ["BottleneckClassifier"]

_NON_NEGATIVE = interval("real", 0, None)

# noise='auto': Gaussian noise of this std on the training images when fit
# gets at most AUTO_NOISE_MAX_SAMPLES samples, none above. Over five seeds
# (benchmarks/bench_bottleneck.py --published --noise 0.1, the blog's
# network) 0.1 raised both the test accuracy and the trustworthiness of the
# map on the digits (1,347 training images) and on 5,000 Fashion-MNIST
# images, and cost a little accuracy on 60,000 (88.0-88.7% against
# 88.3-89.0%). With the deeper default network 0.2 keeps the digits' map at
# t-SNE's trustworthiness minus 0.02 on ten seeds of ten (0.967-0.976; 0.1:
# 0.961-0.971) at the same accuracy (see docs/user_guide/maps.rst).
AUTO_NOISE_STD = 0.2
AUTO_NOISE_MAX_SAMPLES = 10_000

# The neighbour term compares every pair of rows of a batch; beyond this
# many rows it runs on the first ones only (pairs of neighbours stay
# together), so that memory stays bounded with large batches.
NEIGHBOR_ROWS = 512
# The neighbour graph: images are compared in the space of this many
# principal components of the pixels (fewer features are used as they are),
PCA_COMPONENTS = 50
# ... fitted on at most this many training images,
PCA_SAMPLE_ROWS = 10_000
# ... and within each class, in blocks of at most this many images (a class
# larger than that is split at random), so that the graph's cost grows
# linearly with the data, not quadratically.
GRAPH_BLOCK_ROWS = 20_000
# Images scaled (and projected) at a time, and scikit-learn's working
# memory (MiB) for the distances of the search: the graph's memory beside
# its table does not grow with the data.
GRAPH_CHUNK_ROWS = 2048
GRAPH_WORKING_MEMORY = 64
# predict writes the labels of this many rows at a time (rounded to whole
# inference batches): the class indices are only ever this long.
PREDICT_CHUNK_ROWS = 2**16


def _is_class_weight(value):
    if value is None or (isinstance(value, str) and value == "balanced"):
        return True
    return isinstance(value, dict) and all(
        _NON_NEGATIVE.accepts(w) for w in value.values()
    )


def _cross_entropy(logits, targets, weights):
    if weights is None:
        return torch.nn.functional.cross_entropy(logits, targets)
    losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    return (losses * weights).sum() / weights.sum().clamp_min(1e-12)


def _scaled_rows(data, rows):
    """float32 numpy rows of the (scaled) training data, on the host."""
    batch = data.inputs(torch.as_tensor(rows, device=data.X.device), "cpu")
    return batch.numpy()


def _projection(data, rows, seed):
    """A function from row indices to the features the graph compares.

    Rows are scaled (8-bit images included) and projected a chunk at a
    time: only the projected block is ever whole.
    """
    width = n_features = data.X.shape[1]
    project = None
    if n_features > PCA_COMPONENTS:
        from sklearn.decomposition import PCA

        rng = np.random.default_rng(seed)
        sample = rows
        if len(rows) > PCA_SAMPLE_ROWS:
            sample = np.sort(rng.choice(rows, PCA_SAMPLE_ROWS, replace=False))
        width = min(PCA_COMPONENTS, len(sample))
        pca = PCA(width, svd_solver="randomized", random_state=seed % 2**32)
        # Images without variance (all alike) make PCA divide 0 by 0 for its
        # explained-variance ratios, which the projection does not use.
        with np.errstate(divide="ignore", invalid="ignore"):
            project = pca.fit(_scaled_rows(data, sample)).transform

    def features(block):
        out = np.empty((len(block), width), dtype=np.float32)
        for start in range(0, len(block), GRAPH_CHUNK_ROWS):
            chunk = _scaled_rows(data, block[start : start + GRAPH_CHUNK_ROWS])
            out[start : start + len(chunk)] = (
                chunk if project is None else project(chunk)
            )
        return out

    return features


def neighbor_graph(data, n_neighbors, seed):
    """Each training row's nearest training rows of its own class.

    Returns a (len(data.X), n_neighbors) int32 tensor of row indices into
    ``data.X`` (fewer columns when no class has that many other rows),
    padded with -1 (rows that are not trained on, and classes
    with fewer rows), computed once per call to ``fit`` by scikit-learn's
    exact :class:`~sklearn.neighbors.NearestNeighbors` on the first
    :data:`PCA_COMPONENTS` principal components of the images. A class of
    more than :data:`GRAPH_BLOCK_ROWS` images is split at random into
    blocks that are searched apart: the neighbours are then the nearest
    among a large random sample of the class.
    """
    from sklearn import config_context
    from sklearn.neighbors import NearestNeighbors

    rows = data.indices.cpu().numpy()
    labels = data.targets.cpu().numpy()[rows]
    # No image has more neighbours than the rest of its class (of its
    # block): a huge n_neighbors costs no memory.
    largest = min(np.bincount(labels).max(), GRAPH_BLOCK_ROWS)
    n_neighbors = max(1, min(n_neighbors, largest - 1))
    table = np.full((data.X.shape[0], n_neighbors), -1, dtype=np.int32)
    features = _projection(data, rows, seed)
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        members = rows[labels == label]
        n_blocks = -(-len(members) // GRAPH_BLOCK_ROWS)
        if n_blocks > 1:
            members = members[rng.permutation(len(members))]
        for block in np.array_split(members, n_blocks):
            k = min(n_neighbors, len(block) - 1)
            if k < 1:
                continue
            block = np.sort(block)
            search = NearestNeighbors(n_neighbors=k, algorithm="brute")
            with config_context(working_memory=GRAPH_WORKING_MEMORY):
                found = search.fit(features(block)).kneighbors(return_distance=False)
            table[block, :k] = block[found]
    return torch.from_numpy(table)


def _graph_affinities(adjacency, weights):
    """Symmetric affinities of the batch's pairs of neighbours in the graph.

    Each row gives equal weight to its graph neighbours in the batch, as
    t-SNE on a kNN graph does: a fraction of the cost of calibrating
    Gaussian bandwidths to a perplexity. With sample ``weights``, a row's
    share of the mass is its weight.
    """
    with torch.no_grad():
        found = adjacency.to(torch.float32)
        if weights is not None:
            found = found * (weights > 0).to(found.dtype)[None, :]
        share = found / found.sum(1, keepdim=True).clamp_min(1.0)
        if weights is not None:
            share = share * weights[:, None]
        p = share + share.T
        return p / p.sum().clamp_min(1e-12)


def _neighbor_loss(adjacency, z, weights):
    """Parametric t-SNE: KL divergence between graph and code affinities.

    Q, the Student-t affinities of the codes ``z``, is normalised over the
    pairs of distinct rows that take part: the diagonal, and rows of weight
    0, are left out (P is 0 there).
    """
    p = _graph_affinities(adjacency, weights).to(z.dtype)
    present = None if weights is None else (weights > 0).to(z.dtype)
    return _NeighborKL.apply(z, p, present)


class _NeighborKL(torch.autograd.Function):
    """KL(P || Q) of parametric t-SNE, with its gradient in closed form.

    With ``w_ij = 1 / (1 + |z_i - z_j|^2)`` over the pairs that take part
    and ``Z = sum(w)``, the loss is ``sum(p log p) + sum(p log(1 + d^2)) +
    sum(p) log Z``, and its gradient ``dL/dz_i = 2 sum_j (G_ij + G_ji)
    (z_i - z_j)`` with ``G = p w - sum(p) w^2 / Z`` (van der Maaten 2009).
    Autograd's graph of the same loss ran more kernels over the batch's
    (n, n) pairs, forward and backward: with it an epoch of the
    default classifier on 60,000 images took 1.057x as long (median of
    twelve paired rounds, ``benchmarks/bench_classifier_speed.py``, a
    2-core AMD machine at two threads).
    """

    @staticmethod
    def forward(ctx, z, p, present):
        sq = (z * z).sum(1)
        # |z_i|^2 + |z_j|^2 - 2 z_i.z_j, never below 0 (rounding).
        d2 = torch.addmm(sq[:, None] + sq[None, :], z, z.T, alpha=-2).clamp_min_(0)
        loss = torch.dot(p.reshape(-1), torch.log1p(d2).reshape(-1))
        w = d2.add_(1).reciprocal_()
        w.diagonal().zero_()
        if present is not None:
            w.mul_(present[:, None]).mul_(present[None, :])
        norm = w.sum().clamp_min(1e-12)
        mass = p.sum()
        loss = loss + mass * torch.log(norm) + torch.special.xlogy(p, p).sum()
        g = torch.mul(p, w).sub_(w.mul_(w).mul_(mass / norm))
        ctx.save_for_backward(z, g + g.T)
        return loss

    @staticmethod
    def backward(ctx, grad):
        z, g = ctx.saved_tensors
        step = torch.addmm(g.sum(1, keepdim=True) * z, g, z, alpha=-1)
        return step.mul_(2 * grad), None, None


def _checked_classes(classes):
    """The sorted unique labels of ``classes``, or a ValueError."""
    shown = reprlib.repr(classes)
    classes = np.asarray(classes)
    if classes.size == 0:
        raise ValueError(
            f"classes is empty ({shown}); pass every class that y will ever "
            "hold, at least 2."
        )
    if classes.ndim != 1:
        raise ValueError(
            f"classes must be a 1-d array-like of labels; got {shown} of shape "
            f"{classes.shape}."
        )
    if classes.dtype.kind in "fc":
        missing = not np.isfinite(classes).all()
    else:
        missing = any(
            c is None or (isinstance(c, float) and not np.isfinite(c)) for c in classes
        )
    if missing:
        raise ValueError(
            f"classes contains NaN, infinity or None ({shown}); every class must "
            "be a label that y can hold."
        )
    try:
        return np.unique(classes)
    except TypeError as exc:
        raise ValueError(
            f"classes mixes labels that cannot be sorted together ({shown}); "
            "use labels of one type."
        ) from exc


def _log_proba(module, batch, out=None):
    return torch.log_softmax(run_stacks([module], batch).double(), dim=1)


def _most_probable(module, batch, out=None):
    log_proba = _log_proba(module, batch)
    index = log_proba.argmax(dim=1, keepdim=True).float()
    # NaN where a row's probabilities are not finite, so that the caller's
    # check of the output catches it as it does for predict_proba.
    finite = torch.isfinite(log_proba).all(dim=1, keepdim=True)
    return index.masked_fill_(~finite, float("nan"))


def _accuracy(module, X_val, targets_val):
    device = next(module.parameters()).device
    correct = 0
    for start in range(0, X_val.shape[0], 4096):
        logits = module(X_val[start : start + 4096].to(device))
        rows = targets_val[start : start + 4096].to(device)
        correct += int((logits.argmax(dim=1) == rows).sum())
    return correct / X_val.shape[0]


class BottleneckClassifier(ClassifierMixin, TransformerMixin, NeuralEstimatorBase):
    """A classifier that squeezes every image through a narrow layer.

    The network is ``n_features -> hidden_layer_sizes -> n_classes`` with a
    softmax output, trained with cross-entropy and Adam. Its narrowest
    hidden layer (2 units by default) is the bottleneck: :meth:`transform`
    returns its activations, a 2-D map of the data to set beside t-SNE.

    The bottleneck layer is linear (no activation): a ReLU on two units dies
    easily and collapses the map; every other hidden layer uses
    ``activation``. Inputs are scaled by the range learned in ``fit``, as
    in :class:`DenoisingAutoencoder`, so 0-255 pixels need no scaling.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(256,) * 8 + (2, 100)
        Widths of the dense hidden layers; the narrowest (the first of
        equals) is the bottleneck. With ``architecture="conv"`` the
        convolutions come before the first of them. The default encoder,
        eight layers of 256, is deeper than the blog's network,
        ``(500, 100, 2, 100)`` (the default of earlier versions): there
        the 2-D map is a linear function of 100 features, too plain to
        unfold the data, and the deeper encoder both classifies better and
        keeps neighbours better (digits, ten seeds: 98.0-99.3% test
        accuracy and trustworthiness 0.967-0.976, against 95.8-97.8% and
        0.928-0.942; see :ref:`maps`) for about 1.5 times the arithmetic
        per image.
    noise : 'auto', float, noise transformer or None, default='auto'
        Corruption of the training images, drawn afresh in every batch of
        every epoch, as in :class:`DenoisingAutoencoder`: a float is the
        standard deviation of :class:`~denoisenet.GaussianPixelNoise`
        (clipped to [0, 1], in the scaled space of the images); an
        instance of a noise transformer from :mod:`denoisenet.noise` is
        used as it is; None trains on the images as they are. 'auto' is
        0.2 when :meth:`fit` gets at most 10,000 samples and None above
        (and in :meth:`partial_fit`, which does not see the size of the
        data). On few images the map fits its training images more closely
        than it generalises; noise smooths it: with the default network,
        on the digits, 0.2 gives trustworthiness 0.967-0.976 over ten
        seeds against 0.961-0.971 with 0.1; with the blog's network
        (see ``hidden_layer_sizes``), on the digits, 0.1 raised
        the trustworthiness of the test images' map from 0.906-0.920 to
        0.935-0.941 and the test accuracy from 95.6-97.1% to 97.1-97.8%
        over five seeds, on 5,000 Fashion-MNIST images from 0.887-0.911
        to 0.901-0.913 and from 82.1-83.0% to 82.9-84.2%; on 60,000 it cost
        a little accuracy (see :ref:`maps`). :meth:`predict`,
        :meth:`transform` and :meth:`score` never add noise.
    architecture : {'dense', 'conv'}, default='dense'
        'dense' connects every pixel to the first hidden layer; 'conv' puts
        a stack of convolutions (``conv_channels``) between the image and
        the dense layers (see :ref:`convolutions`). On Fashion-MNIST it
        classifies better and trains several times slower than 'dense'.
    image_shape : (int, int) or None, default=None
        (height, width) of the images, for ``architecture="conv"``; rows of
        ``X`` are images flattened row by row. None means square images
        (784 features are 28 x 28); other images need it. One side may be
        -1, which stands for whatever the other leaves, as in
        :func:`numpy.reshape`. Ignored by 'dense'.
    conv_channels : tuple of int, default=(16, 32)
        Output channels of the convolutions of ``architecture="conv"``, one
        3x3 convolution with stride 2 per entry, each halving the height
        and width (rounding up) and followed by ``activation``. Ignored by
        'dense'.
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
        Activation of the hidden layers (and convolutions) other than the
        bottleneck.
    alpha : float, default=1e-4
        Strength of the L2 penalty on the weights, as in
        :class:`~sklearn.neural_network.MLPClassifier`.
    batch_size : int or 'auto', default='auto'
        Samples per optimiser step; 'auto' is ``min(128, n_samples)``: on
        Fashion-MNIST, batches of 128 reached about half a point more
        accuracy than 256 in the same 30 epochs. Larger values are clipped
        to the number of samples. With ``neighbor_weight > 0`` each sample
        of a batch brings one of its graph neighbours along, so a step
        trains on twice as many rows.
    learning_rate : {'adaptive', 'constant'}, default='adaptive'
        How Adam's step size changes during :term:`fit`. 'adaptive' is
        scikit-learn's rule for its MLPs, with half its patience: each time
        the training loss (or, with early stopping, the validation
        accuracy) fails to improve by ``tol`` for ``ceil((n_iter_no_change + 1) / 2)``
        epochs (6 by default), the step size is divided by 5 and training
        goes on; once it is a hundredth of ``learning_rate_init``, a stall
        of more than ``n_iter_no_change`` epochs ends training. 'constant'
        keeps ``learning_rate_init`` and stops after ``n_iter_no_change``
        epochs without improvement. :meth:`partial_fit` always uses the
        constant rate.
    learning_rate_init : float, default=3e-3
        Initial step size of Adam. With batch normalisation a larger step
        than MLPClassifier's 1e-3 trains the narrow network well: on the
        digits, 98.0-99.1% over five seeds with the defaults, against
        88.9-94.0% for the former ones (the blog's network at 1e-3, no
        batch normalisation, no noise, 30 epochs;
        ``benchmarks/bench_defaults.py --old``).
    max_iter : int, default=200
        Maximum number of epochs; training usually stops well before, when
        it has converged (see ``learning_rate``). A
        :class:`~sklearn.exceptions.ConvergenceWarning` says when it has not.
    neighbor_weight : float, default=0.3
        Weight of a parametric t-SNE term that keeps images that are near
        each other in the input near each other in the bottleneck. Before
        training, ``fit`` finds every image's ``n_neighbors`` nearest images
        *of the same class* (exact, with
        :class:`~sklearn.neighbors.NearestNeighbors`, on the first 50
        principal components of the images); each batch then pairs each of
        its images with one of those neighbours, and the term is the
        Kullback-Leibler divergence between uniform affinities on the
        pairs and Student-t affinities of the codes, as in t-SNE. A plain
        classification loss squeezes each class into a blob and loses the
        neighbourhoods inside it; the term orders each class region and
        never pulls two classes together. It trades accuracy for
        faithfulness: see the figures in :ref:`maps`. 0 turns it off (a
        plain cross-entropy network, half the work a step). Batches of
        more than 512 rows (anchors and neighbours) compare the first 512.
    n_neighbors : int, default=10
        Same-class neighbours of every image in the neighbour term's graph,
        as UMAP's parameter of that name. A class of more than 20,000 images
        is searched in random blocks of at most 20,000 (the neighbours are
        then the nearest within a block), so that the graph takes time
        linear in the number of images; ``partial_fit`` builds the graph of
        each call's images. Ignored when ``neighbor_weight=0``.
    batch_norm : bool, default=True
        Batch normalisation after every hidden dense layer except the
        bottleneck, whose scale the neighbour term sets. It lets a larger
        step size train the narrow network quickly and stably (see
        ``learning_rate_init`` for the figures,
        ``benchmarks/bench_defaults.py --old``). Training needs at least 2 rows
        a call; a last batch of one row joins the batch before it. The
        statistics of a batch count its rows, not their sample weights
        (rows of weight 0 are left out of training altogether).
    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes, multiplied into ``sample_weight``, as in
        :class:`~sklearn.linear_model.LogisticRegression`: ``{label:
        weight}`` (classes not named weigh 1), or 'balanced' for weights
        inversely proportional to the class frequencies in ``y``
        (``n_samples / (n_classes * np.bincount(y))``). :meth:`partial_fit`
        refuses 'balanced', since one batch does not show the frequencies
        of the data.
    early_stopping : 'auto' or bool, default='auto'
        Hold out a stratified ``validation_fraction`` of the data, stop when
        the validation accuracy stops improving, and restore the best
        weights. 'auto' does so when there are more than 10,000 samples, as
        scikit-learn's HistGradientBoosting estimators do: on large data the
        training loss goes on improving long after the held-out score has
        stopped (on Fashion-MNIST's 60,000 images the defaults stop after
        56-73 epochs; ``benchmarks/bench_bottleneck.py``). Ignored
        by :meth:`partial_fit`.
    validation_fraction : float, default=0.1
        Share of the data held out for early stopping, in (0, 1).
    n_iter_no_change : int, default=10
        Epochs without an improvement of at least ``tol`` before stopping.
    tol : float, default=1e-4
        Improvement of the loss (or validation accuracy) that counts.
    shuffle : bool, default=True
        Shuffle the samples before every epoch.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds initialisation, shuffling, the validation split and the noise
        (a noise transformer's own ``random_state`` is not used). An int
        gives bit-identical results on the same device; fitting never
        changes numpy's or torch's global random state.
    verbose : int or bool, default=0
        Show a progress bar over epochs.
    warm_start : bool, default=False
        Continue from the previous fit instead of starting afresh.
    device : str or torch.device, default='auto'
        'auto' (CUDA when available, else the CPU), 'cpu', 'cuda',
        'cuda:N' or 'mps'.
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
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    module_ : torch.nn.Module
        The trained network (a ``BottleneckNetwork`` with ``encoder`` and
        ``head``).
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has feature
        names that are all strings.
    data_min_ : float
        The value that the input scaling maps to 0.
    data_range_ : float
        The width of the range that the input scaling maps to [0, 1].
    loss_curve_ : list of float
        Mean training cross-entropy of every epoch.
    validation_scores_ : list of float or None
        Validation accuracy after every epoch, with early stopping.
    best_loss_ : float or None
        Lowest training loss; None with early stopping.
    best_validation_score_ : float or None
        Best validation accuracy, with early stopping; else None.
    n_iter_ : int
        Number of epochs run, over all calls.
    interrupted_ : bool
        True when the user stopped the last call to ``fit`` or
        ``partial_fit`` with Ctrl-C (KeyboardInterrupt) after at least one
        epoch: the estimator keeps the weights of the last completed epoch,
        but training did not run to its end. False otherwise.

    See Also
    --------
    DenoisingAutoencoder : Remove noise before classifying.
    sklearn.neural_network.MLPClassifier : A dense classifier.
    sklearn.manifold.TSNE : A 2-D map without labels.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from denoisenet import BottleneckClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = BottleneckClassifier((64, 2, 32), learning_rate_init=0.01,
    ...                            random_state=0).fit(X, y)
    >>> clf.transform(X).shape
    (1797, 2)
    >>> clf.predict_proba(X[:3]).sum(axis=1).round(6)
    array([1., 1., 1.])
    >>> bool(clf.score(X, y) > 0.9)
    True
    """

    _network = staticmethod(bottleneck_network)
    _parameter_count = staticmethod(bottleneck_parameter_count)
    _torch_outputs = {"transform": Encoding, "predict_proba": ClassProbabilities}
    _stratify = True
    _auto_batch_size = 128
    # 128 rows on small data too: the defaults' figures on the digits
    # (benchmarks/bench_defaults.py) were measured so.
    _auto_batch_steps = None
    # A model saved before noise existed was trained without.
    _added_parameters = {**NeuralEstimatorBase._added_parameters, "noise": None}
    _extra_domains = {
        "noise": one_of("auto") | NOISE_PARAMETER,
        "neighbor_weight": interval("real", 0, None),
        "n_neighbors": interval("int", 1, None),
        "batch_norm": BOOL,
        "class_weight": Domain(
            "None, 'balanced' or a dict of class labels to weights", _is_class_weight
        ),
    }

    def __init__(
        self,
        hidden_layer_sizes=(256, 256, 256, 256, 256, 256, 256, 256, 2, 100),
        *,
        noise="auto",
        architecture="dense",
        image_shape=None,
        conv_channels=(16, 32),
        activation="relu",
        alpha=1e-4,
        batch_size="auto",
        learning_rate_init=3e-3,
        max_iter=200,
        neighbor_weight=0.3,
        n_neighbors=10,
        batch_norm=True,
        class_weight=None,
        learning_rate="adaptive",
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
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.neighbor_weight = neighbor_weight
        self.n_neighbors = n_neighbors
        self.batch_norm = batch_norm
        self.class_weight = class_weight
        self.learning_rate = learning_rate
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

    def _resolved_noise(self, n_samples):
        """``noise``, with 'auto' resolved for a fit on ``n_samples`` (None:
        partial_fit)."""
        if not (isinstance(self.noise, str) and self.noise == "auto"):
            return self.noise
        if n_samples is not None and n_samples <= AUTO_NOISE_MAX_SAMPLES:
            return AUTO_NOISE_STD
        return None

    def _prepare(self, X, y, sample_weight, classes, reuse, incremental):
        X, y = validate_data(self, X, y, reset=not reuse, dtype=INPUT_DTYPES)
        check_classification_targets(y)
        self._check_batch_norm_rows(X.shape[0])
        self.classes_ = self._classes(y, classes, reuse)
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(
                f"y contains labels {unknown.tolist()} that are not in classes_ "
                f"{self.classes_.tolist()}."
            )
        targets = np.searchsorted(self.classes_, y).astype(np.int64)
        # A fit from scratch needs two classes of positive weight; a
        # partial_fit batch (classes= names them all) or a warm-start refit
        # may hold one, weighted or not, as without weights.
        two_classes = not (reuse or incremental)
        weights = self._sample_weight(sample_weight, y, two_classes)
        weights = self._apply_class_weight(weights, targets, incremental, two_classes)
        return X, torch.from_numpy(targets), weights

    def _apply_class_weight(self, weights, targets, incremental, two_classes=True):
        """Sample weights times the weights of the samples' classes."""
        if self.class_weight is None:
            return weights
        if isinstance(self.class_weight, str):  # 'balanced'
            if incremental:
                # As SGDClassifier: the balance of one partial_fit batch is
                # not the balance of the data (with or without classes=).
                raise ValueError(
                    "class_weight='balanced' is not supported with partial_fit: "
                    "the class frequencies of one batch are not those of the "
                    "data. Pass class_weight=compute_class_weight('balanced', "
                    "classes=classes, y=y) as a dict instead."
                )
            # The balance of the classes that this fit's y holds: a warm-start
            # refit on some of the classes of classes_ weighs those (the
            # others have no rows to weigh).
            present = np.unique(targets)
            per_class = np.zeros(len(self.classes_))
            per_class[present] = compute_class_weight(
                "balanced", classes=present, y=targets
            )
        else:
            per_class = compute_class_weight(
                self.class_weight, classes=self.classes_, y=self.classes_[targets]
            )
        by_row = per_class[targets]
        with np.errstate(over="ignore"):
            weights = by_row if weights is None else weights * by_row
        if not np.all(np.isfinite(weights)):
            raise ValueError(
                "sample_weight times class_weight is infinite for some samples "
                "(beyond float64's 1.8e+308); rescale the weights."
            )
        if not np.any(weights > 0):
            raise ValueError(
                "class_weight and sample_weight give every sample zero weight; "
                "give at least one sample some positive weight."
            )
        if two_classes and len(np.unique(targets[weights > 0])) < 2:
            raise ValueError(
                "class_weight and sample_weight leave fewer than 2 classes with "
                "positive weight; BottleneckClassifier needs at least 2 classes."
            )
        return weights

    def _classes(self, y, classes, reuse):
        if classes is not None:
            classes = _checked_classes(classes)
            if reuse and not np.array_equal(classes, self.classes_):
                raise ValueError(
                    f"classes={classes.tolist()} is not the same as on the first "
                    f"call to partial_fit, which was {self.classes_.tolist()}."
                )
        if reuse:
            return self.classes_
        classes = np.unique(y) if classes is None else classes
        if len(classes) < 2:
            n = len(classes)
            raise ValueError(
                "BottleneckClassifier needs samples of at least 2 classes; got "
                f"{n} class{'' if n == 1 else 'es'} {np.asarray(classes).tolist()!r}."
            )
        return classes

    def _sample_weight(self, sample_weight, y, two_classes=True):
        if sample_weight is None:
            return None
        try:
            weights = np.asarray(sample_weight)
            # Complex weights would lose their imaginary part with only
            # numpy's ComplexWarning (scikit-learn refuses them).
            complex_weights = np.iscomplexobj(weights)
            if not complex_weights:
                weights = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                "sample_weight must be a number or an array-like of numbers of "
                f"shape ({y.shape[0]},); got {type(sample_weight).__name__}."
            ) from exc
        if complex_weights:
            raise ValueError("Complex data not supported in sample_weight.")
        if weights.ndim == 0:
            # One number weighs every sample alike, as in scikit-learn.
            weights = np.full(y.shape, weights)
        if weights.shape != y.shape:
            raise ValueError(
                f"sample_weight.shape == {weights.shape}, expected {y.shape}."
            )
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("sample_weight must be finite and non-negative.")
        if not np.any(weights > 0):
            raise ValueError(
                "sample_weight is zero for every sample; give "
                f"{'at least two classes' if two_classes else 'some samples'} "
                "some positive weight."
            )
        if two_classes and len(np.unique(y[weights > 0])) < 2:
            raise ValueError(
                "sample_weight leaves fewer than 2 classes with positive weight; "
                "BottleneckClassifier needs at least 2 classes."
            )
        return weights

    def _network_kwargs(self):
        return {
            "n_features": self.n_features_in_,
            "hidden_layer_sizes": layer_sizes(self.hidden_layer_sizes),
            "n_outputs": len(self.classes_),
            "activation": self.activation,
            "batch_norm": bool(self.batch_norm),
            **self._architecture_kwargs(),
        }

    def _add_training_graph(self, data, seed):
        if self.neighbor_weight > 0:
            data.neighbors = neighbor_graph(data, int(self.n_neighbors), seed)
            data.pair_rows = NEIGHBOR_ROWS

    def _objective(self, seed, n_samples):
        weight = float(self.neighbor_weight)  # a Fraction cannot scale a tensor

        def loss(module, inputs, targets, weights, adjacency=None):
            codes = module.encode(inputs)
            # With the neighbour term, rows alternate anchor, neighbour (see
            # _training._batches); the classification loss takes them all
            # (the anchors alone, each image once an epoch, gave less
            # accuracy for the same trustworthiness: see the changelog).
            value = _cross_entropy(module.head(codes), targets, weights)
            if weight > 0 and adjacency is not None and inputs.shape[0] > 3:
                rows = slice(0, adjacency.shape[0])
                value = value + weight * _neighbor_loss(
                    adjacency, codes[rows], None if weights is None else weights[rows]
                )
            return value

        corrupt = training_corruption(self._resolved_noise(n_samples))
        return Objective(loss, corrupt, _accuracy, advice=self._divergence_advice())

    def _loss_weights(self):
        return {**super()._loss_weights(), "neighbor_weight": self.neighbor_weight}

    def _check_optimizer_scalars(self, rows):
        super()._check_optimizer_scalars(rows)
        if self.neighbor_weight > _FLOAT32_MAX:
            raise ValueError(
                "The 'neighbor_weight' parameter of BottleneckClassifier is too "
                "large for float32 training (at most 3.4e+38). Got "
                f"{self.neighbor_weight!r} instead."
            )

    # -- public methods ----------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Train the network on ``X`` and labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, one flattened image per row.
        y : array-like of shape (n_samples,)
            Class labels: any labels scikit-learn accepts.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples in the loss. In the
            neighbour term a sample's weight is its share of the affinities,
            and samples of weight 0 take no part.

        Returns
        -------
        self : BottleneckClassifier
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train for one epoch on ``X``, keeping the weights of earlier calls.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; at least 2 rows with ``batch_norm=True`` (the
            default), whose statistics need two rows.
        y : array-like of shape (n_samples,)
            Class labels.
        classes : array-like of shape (n_classes,), default=None
            Every class that will ever appear; required on the first call.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples.

        Returns
        -------
        self : BottleneckClassifier
            The updated estimator.
        """
        if classes is None and not hasattr(self, "classes_"):
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._fit(
            X, y, sample_weight=sample_weight, classes=classes, incremental=True
        )

    def predict_log_proba(self, X):
        """Log of the class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        X = self._validated(X)
        return self._infer(X, _log_proba, len(self.classes_), dtype=np.float64)

    def predict_proba(self, X):
        """Class probabilities; every row sums to 1.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        log_proba = self.predict_log_proba(X)
        return np.exp(log_proba, out=log_proba)

    def predict(self, X):
        """The most probable class of every sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        X = self._validated(X)
        # The most probable class, batch by batch: the probabilities of all
        # rows at once would take n_classes times the memory of the answer.
        # The labels are written a chunk at a time, so that the indices (and
        # their integer copy) never take memory beside them for every row.
        y_pred = np.empty(X.shape[0], dtype=self.classes_.dtype)
        rows = self._inference_rows()
        step = rows * max(1, PREDICT_CHUNK_ROWS // rows)
        for start in range(0, X.shape[0], step):
            index = self._infer(X[start : start + step], _most_probable, 1)
            self.classes_.take(
                index.ravel().astype(np.intp), out=y_pred[start : start + step]
            )
        return y_pred

    def transform(self, X):
        """The bottleneck activations: a low-dimensional map of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        Z : ndarray of shape (n_samples, bottleneck width)
            float64 for float64 input, float32 otherwise.
        """
        X = self._validated(X)
        return self._infer(
            X,
            lambda m, b, out: run_stacks([m.encoder], b, out),
            self._code_width(),
            dtype=output_dtype(X),
        )

    def decode(self, Z):
        """Class probabilities of points of the bottleneck's plane.

        The classifier's second half on its own: the two numbers per image
        that :meth:`transform` returns are all it needs, so any point of the
        map, not only an image's, has class probabilities. A grid over the
        map shows the class regions (see
        :func:`~denoisenet.plotting.plot_class_regions`).

        Parameters
        ----------
        Z : array-like of shape (n_samples, bottleneck width)
            Points of the bottleneck, for instance from :meth:`transform`.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``; ``decode(transform(X))`` equals
            ``predict_proba(X)`` to float32 rounding.
        """
        Z = self._checked_codes(Z, "bottleneck")
        log_proba = self._infer(
            Z,
            lambda m, b, out: torch.log_softmax(
                run_stacks([m.head], b).double(), dim=1
            ),
            len(self.classes_),
            dtype=np.float64,
            scale=False,
        )
        return np.exp(log_proba, out=log_proba)

    def get_feature_names_out(self, input_features=None):
        """Names of the bottleneck units: ``bottleneck0``, ``bottleneck1``, ...

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Checked against the names seen in fit, if given.

        Returns
        -------
        feature_names_out : ndarray of str objects
            One name per bottleneck unit.
        """
        check_is_fitted(self)
        if input_features is not None:
            input_features = np.asarray(input_features, dtype=object)
            expected = getattr(self, "feature_names_in_", None)
            if len(input_features) != self.n_features_in_ or (
                expected is not None and not np.array_equal(input_features, expected)
            ):
                raise ValueError(
                    "input_features is not equal to feature_names_in_ or does not "
                    f"have n_features_in_ ({self.n_features_in_}) entries."
                )
        return np.asarray(
            [f"bottleneck{i}" for i in range(self._code_width())], dtype=object
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
