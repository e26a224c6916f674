"""Figures of images, 2-D maps and training curves, drawn with matplotlib.

matplotlib is an optional dependency (the ``plot`` extra): it is imported
when a function is called, not when this module is imported, and a missing
matplotlib raises an :class:`ImportError` that says what to install.

Every function draws on :class:`matplotlib.figure.Figure` objects of its
own (or on the ``fig``/``ax`` it is given), never on pyplot's global state,
so that a script that draws hundreds of figures does not leak them: save a
figure with ``fig.savefig(path)`` and drop it.
"""

import math
import numbers

import numpy as np

__all__ = ["plot_class_regions", "plot_digits", "plot_embedding", "plot_loss_curve"]

_INSTALL_HINT = 'pip install "denoisenet[plot]"'


def _figure_class():
    """matplotlib's Figure, or an ImportError that names the extra."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "denoisenet.plotting needs matplotlib, which is not installed: "
            f"{_INSTALL_HINT}"
        ) from exc
    return Figure


def _new_axes(figsize):
    return _figure_class()(figsize=figsize, layout="constrained").add_subplot()


def _grid_shape(n_images, n_rows, n_cols):
    if n_rows is None and n_cols is None:
        n_cols = min(n_images, 10)
    if n_cols is None:
        n_cols = math.ceil(n_images / n_rows)
    if n_rows is None:
        n_rows = math.ceil(n_images / n_cols)
    for name, value in (("n_rows", n_rows), ("n_cols", n_cols)):
        if not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(n_rows), int(n_cols)


def _image_shape(n_features, image_shape):
    if image_shape is None:
        side = math.isqrt(n_features)
        if side * side != n_features:
            raise ValueError(
                f"Cannot infer a square image shape from {n_features} features; "
                "pass image_shape=(height, width)."
            )
        return side, side
    image_shape = tuple(int(n) for n in image_shape)
    if math.prod(image_shape) != n_features:
        raise ValueError(
            f"image_shape={image_shape} has {math.prod(image_shape)} pixels, but "
            f"the images have {n_features} features."
        )
    return image_shape


def plot_digits(
    X,
    *,
    n_rows=None,
    n_cols=None,
    image_shape=None,
    titles=None,
    row_labels=None,
    cmap="gray_r",
    fig=None,
):
    """Show flattened images in a grid, one small axes per image.

    The first ``n_rows * n_cols`` images are drawn row by row, all on one
    grey scale (from the smallest to the largest finite pixel shown), so
    that noisy and clean images can be compared by eye; NaN and infinite
    pixels are left blank.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Images, one flattened image per row.
    n_rows : int, default=None
        Rows of the grid. None fits the images into ``n_cols`` columns.
    n_cols : int, default=None
        Columns of the grid. None is ``min(n_samples, 10)``, or as many as
        ``n_rows`` rows need.
    image_shape : tuple of (int, int), default=None
        Height and width of an image; None infers a square.
    titles : sequence of str, default=None
        A title above every image drawn, for instance its label.
    row_labels : sequence of str, default=None
        A label left of every row, for instance "clean" and "noisy".
    cmap : str or Colormap, default="gray_r"
        Colour map; the default draws ink dark on a white page.
    fig : matplotlib Figure or SubFigure, default=None
        Where to draw; None creates a new Figure sized for the grid.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure (the one passed in, if any) with one axes per image.

    See Also
    --------
    plot_embedding : Scatter a 2-D map of the images.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from denoisenet.plotting import plot_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> fig = plot_digits(X[:20], n_rows=2, titles=[str(label) for label in y[:20]])
    >>> len(fig.axes)
    20
    >>> fig.axes[0].get_title()
    '0'
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(
            f"X must be 2-D (one flattened image per row); got {X.ndim}-D."
        )
    if not len(X):
        raise ValueError("X holds no images (0 rows); pass at least one.")
    n_rows, n_cols = _grid_shape(len(X), n_rows, n_cols)
    shape = _image_shape(X.shape[1], image_shape)
    shown = X[: n_rows * n_cols]
    finite = shown[np.isfinite(shown)] if shown.dtype.kind in "fc" else shown
    if fig is None:
        fig = _figure_class()(
            figsize=(0.9 * n_cols + 0.6, 0.9 * n_rows + 0.5), layout="constrained"
        )
    # One scale for all images: a per-image scale would stretch a faint
    # noisy image into a crisp one.
    # The scale of the finite pixels: one NaN or inf pixel made it NaN or
    # infinite and blanked every image; those pixels are left blank.
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0, 1)
    for i, image in enumerate(shown):
        ax = fig.add_subplot(n_rows, n_cols, i + 1)
        ax.imshow(image.reshape(shape), cmap=cmap, vmin=vmin, vmax=vmax)
        # Ticks and frame off rather than axis("off"), which would hide the
        # row labels too.
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if titles is not None and i < len(titles):
            ax.set_title(str(titles[i]), fontsize=9)
        if row_labels is not None and i % n_cols == 0 and i // n_cols < len(row_labels):
            ax.set_ylabel(str(row_labels[i // n_cols]), fontsize=9)
    return fig


def _class_colours(n_classes):
    """One distinct colour per class: tab10 or tab20, else a spectrum.

    Beyond 20 classes tab20 would repeat its colours, and two classes would
    look like one: the colours are then spread evenly over a rainbow map.
    """
    from matplotlib import colormaps

    if n_classes <= 20:
        cmap = colormaps["tab10" if n_classes <= 10 else "tab20"]
        return [cmap(k) for k in range(n_classes)]
    return [tuple(c) for c in colormaps["turbo"](np.linspace(0, 1, n_classes))]


def plot_embedding(Z, y, *, ax=None, title=None, class_names=None, classes=None):
    """Scatter a 2-D map of the data, one colour per class, with a legend.

    Parameters
    ----------
    Z : array-like of shape (n_samples, 2)
        The map, for instance :class:`~sklearn.manifold.TSNE` output or the
        bottleneck of :class:`~denoisenet.BottleneckClassifier`.
    y : array-like of shape (n_samples,)
        The class of every point.
    ax : matplotlib Axes, default=None
        Where to draw; None creates a new Figure with one Axes.
    title : str, default=None
        Title of the Axes.
    class_names : sequence of str, default=None
        Legend text of the classes, in the order of ``classes``; None shows
        the labels themselves.
    classes : array-like, default=None
        The class labels in the order of their colours (a classifier's
        ``classes_``, so that colours match its regions); None means
        ``np.unique(y)``. Every label of ``y`` must be among them.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes, with one scatter collection per class.

    See Also
    --------
    plot_digits : Show the images themselves.
    plot_class_regions : The map over a classifier's class regions.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from denoisenet.plotting import plot_embedding
    >>> rng = np.random.default_rng(0)
    >>> Z, y = rng.normal(size=(30, 2)), np.repeat([0, 1, 2], 10)
    >>> ax = plot_embedding(Z, y, title="random map")
    >>> len(ax.collections), [t.get_text() for t in ax.get_legend().get_texts()]
    (3, ['0', '1', '2'])
    """
    Z, y = np.asarray(Z), np.asarray(y)
    if Z.ndim != 2 or Z.shape[1] != 2:
        raise ValueError(f"Z must have shape (n_samples, 2); got {Z.shape}.")
    if y.shape != (len(Z),):
        raise ValueError(f"y must have shape ({len(Z)},); got {y.shape}.")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError("y holds NaN labels; every point needs a class.")
    try:
        found = np.unique(y)
    except TypeError as exc:  # None among the labels, or str beside int
        raise ValueError(
            f"y holds labels that cannot be sorted together ({exc}); use labels "
            "of one type."
        ) from exc
    classes = found if classes is None else np.asarray(classes)
    if not np.isin(y, classes).all():
        raise ValueError("y holds labels that are not in classes.")
    if class_names is not None and len(class_names) != len(classes):
        raise ValueError(
            f"class_names has {len(class_names)} entries for {len(classes)} classes."
        )
    if ax is None:
        ax = _new_axes((6.0, 5.0))
    colours = _class_colours(len(classes))
    # Small, slightly transparent points keep 5,000 of them readable.
    size = 4 if len(Z) > 2000 else 10
    for k, label in enumerate(classes):
        name = str(label) if class_names is None else str(class_names[k])
        points = Z[y == label]
        ax.scatter(
            points[:, 0],
            points[:, 1],
            s=size,
            alpha=0.7,
            linewidths=0,
            color=colours[k],
            label=name,
        )
    # Outside the map, where it hides no points (and "best" would have to
    # test thousands of them to find a place).
    ax.legend(
        markerscale=3 if size < 10 else 2,
        fontsize=8,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
    )
    if title is not None:
        ax.set_title(title)
    return ax


def plot_class_regions(
    classifier, Z, y=None, *, ax=None, resolution=200, title=None, class_names=None
):
    """A classifier's class regions over its 2-D map, with the mapped points.

    Every point of a grid over the map is decoded to its most probable class
    (:meth:`~denoisenet.BottleneckClassifier.decode`): the two numbers per
    image that the bottleneck keeps decide the class.

    Parameters
    ----------
    classifier : fitted BottleneckClassifier
        A classifier with a 2-unit bottleneck.
    Z : array-like of shape (n_samples, 2)
        Mapped points, ``classifier.transform(X)``; the grid spans them.
    y : array-like of shape (n_samples,), default=None
        Their classes; None draws the regions only.
    ax : matplotlib Axes, default=None
        Where to draw; None creates a new Figure with one Axes.
    resolution : int, default=200
        Grid points along each axis.
    title : str, default=None
        Title of the Axes.
    class_names : sequence of str, default=None
        Legend text of the classes, in the order of ``classifier.classes_``.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes: the regions as an image, the points on top.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from denoisenet import BottleneckClassifier
    >>> from denoisenet.plotting import plot_class_regions
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = BottleneckClassifier((32, 2, 16), random_state=0).fit(X, y)
    >>> ax = plot_class_regions(clf, clf.transform(X), y, resolution=50)
    >>> ax.images[0].get_array().shape
    (50, 50)
    """
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] != 2 or not np.isfinite(Z).all() or not len(Z):
        raise ValueError(
            f"Z must be finite, of shape (n_samples, 2); got shape {Z.shape}."
        )
    if not hasattr(classifier, "decode") or not hasattr(classifier, "classes_"):
        raise TypeError(
            "classifier must be a fitted BottleneckClassifier (with decode and "
            f"classes_); got {type(classifier).__name__}."
        )
    valid = isinstance(resolution, numbers.Integral) and not isinstance(
        resolution, bool
    )
    if not (valid and 2 <= resolution <= 2000):
        raise ValueError(f"resolution must be an int in [2, 2000]; got {resolution!r}.")
    resolution = int(resolution)
    low, high = Z.min(axis=0), Z.max(axis=0)
    pad = 0.05 * np.maximum(high - low, 1e-6)
    xs, ys = (
        np.linspace(a, b, resolution)
        for a, b in zip(low - pad, high + pad, strict=True)
    )
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    regions = classifier.decode(grid).argmax(axis=1).reshape(resolution, resolution)
    if ax is None:
        ax = _new_axes((6.5, 5.0))
    from matplotlib.colors import ListedColormap

    n_classes = len(classifier.classes_)
    colours = ListedColormap(_class_colours(n_classes))
    ax.imshow(
        regions,
        origin="lower",
        extent=(xs[0], xs[-1], ys[0], ys[-1]),
        cmap=colours,
        vmin=-0.5,
        vmax=n_classes - 0.5,
        alpha=0.3,
        aspect="auto",
        interpolation="nearest",
    )
    if y is not None:
        plot_embedding(
            Z, y, ax=ax, class_names=class_names, classes=classifier.classes_
        )
    if title is not None:
        ax.set_title(title)
    return ax


def _curves(estimator_or_curve):
    curve = getattr(estimator_or_curve, "loss_curve_", None)
    if curve is None and hasattr(estimator_or_curve, "get_params"):
        raise ValueError(
            f"{type(estimator_or_curve).__name__} has no loss_curve_: fit it "
            "first (or pass the curve itself)."
        )
    if curve is None:
        return np.asarray(estimator_or_curve, dtype=float).ravel(), None
    scores = getattr(estimator_or_curve, "validation_scores_", None)
    return np.asarray(curve, dtype=float), scores


def plot_loss_curve(estimator_or_curve, *, ax=None, label=None):
    """Draw the training loss per epoch, and validation scores if recorded.

    Parameters
    ----------
    estimator_or_curve : fitted estimator or array-like of float
        An estimator with ``loss_curve_`` (a
        :class:`~denoisenet.DenoisingAutoencoder`,
        :class:`~denoisenet.BottleneckClassifier` or scikit-learn's MLP), or
        the losses themselves. When the estimator's ``validation_scores_``
        is not None (early stopping), the scores are drawn on a second
        y-axis on the right.
    ax : matplotlib Axes, default=None
        Where to draw; None creates a new Figure with one Axes. Draw several
        curves on one Axes by passing it again with another ``label``.
    label : str, default=None
        Legend text of the loss curve; None uses the estimator's class name
        (or "loss" for a bare curve).

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes of the loss (the validation scores, if any, are on
        ``ax``'s twin).

    See Also
    --------
    sklearn.neural_network.MLPClassifier : Records ``loss_curve_`` too.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from denoisenet.plotting import plot_loss_curve
    >>> ax = plot_loss_curve([0.9, 0.5, 0.3, 0.25], label="training loss")
    >>> line, = ax.get_lines()
    >>> line.get_xdata().tolist()
    [1, 2, 3, 4]
    """
    losses, scores = _curves(estimator_or_curve)
    if label is None:
        is_curve = not hasattr(estimator_or_curve, "loss_curve_")
        label = "loss" if is_curve else type(estimator_or_curve).__name__
    if ax is None:
        ax = _new_axes((6.0, 4.0))
    epochs = np.arange(1, len(losses) + 1)
    marker = "." if len(losses) < 40 else None
    ax.plot(epochs, losses, marker=marker, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    twin = _twin(ax, create=scores is not None)
    if scores is not None:
        twin.plot(
            np.arange(1, len(scores) + 1),
            scores,
            linestyle="--",
            marker=marker,
            label=f"{label} (validation score)",
        )
        twin.set_ylabel("validation score")
    # One legend for the lines of both y-axes, of this call and earlier ones.
    lines = ax.get_lines() + ([] if twin is None else twin.get_lines())
    ax.legend(handles=lines, fontsize=8)
    return ax


def _twin(ax, create):
    """The right-hand twin of ``ax`` drawn by an earlier call, or a new one."""
    for other in ax.get_shared_x_axes().get_siblings(ax):
        if other is not ax and other.yaxis.get_label_position() == "right":
            return other
    return ax.twinx() if create else None
