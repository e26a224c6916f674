"""The study's figures, drawn with :mod:`denoisenet.plotting`.

Each function returns a matplotlib Figure; :func:`to_png` renders one in
memory, so that nothing is written before the whole study has run.
:data:`FIGURES` names their files, which the report links.
"""

import io

import numpy as np

from denoisenet.study.config import StudyError

FIGURES = {
    "samples": "samples.png",
    "denoising": "denoising.png",
    "maps": "maps.png",
    "loss_curves": "loss_curves.png",
}


def check_matplotlib():
    """Raise StudyError, before any work, when matplotlib is missing or
    cannot start."""
    import logging
    import os

    from denoisenet import plotting

    # matplotlib warns (through logging) when it cannot write its config
    # folder (a read-only HOME) and uses a temporary one; the study draws
    # with Figure directly and needs none, so --quiet stays quiet.
    logger = logging.getLogger("matplotlib")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        plotting._figure_class()
    except ImportError as exc:
        raise StudyError(f"the study draws figures: {exc}") from exc
    except ValueError as exc:  # an invalid MPLBACKEND stops matplotlib's import
        backend = os.environ.get("MPLBACKEND")
        raise StudyError(
            f"matplotlib cannot start (MPLBACKEND={backend!r}): {exc}. Unset "
            "MPLBACKEND, or set it to Agg; the study draws no windows."
        ) from exc
    finally:
        logger.setLevel(level)


def to_png(figure):
    """The PNG file of ``figure``, as bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def samples_figure(data, per_class=8):
    """Training images, one row per class."""
    from denoisenet.plotting import plot_digits

    classes = np.unique(data.y_train)
    rows = [np.flatnonzero(data.y_train == c)[:per_class] for c in classes]
    if min(len(r) for r in rows) < per_class:
        # Too few images of some class for a row each: the first ones.
        shown = np.arange(min(len(data.X_train), 40))
        titles = [data.class_names[k] for k in data.y_train[shown]]
        return plot_digits(
            data.X_train[shown],
            n_cols=10,
            image_shape=data.image_shape,
            titles=titles,
        )
    figure = plot_digits(
        data.X_train[np.concatenate(rows)],
        n_rows=len(classes),
        n_cols=per_class,
        image_shape=data.image_shape,
        row_labels=[data.class_names[c] for c in classes],
    )
    figure.suptitle("Training images, one row per class")
    return figure


def denoising_figure(data, X_noisy, X_denoised, std, n=10):
    """The first test images: clean, noisy and denoised."""
    from denoisenet.plotting import plot_digits

    n = min(n, len(data.X_test))
    figure = plot_digits(
        np.concatenate([data.X_test[:n], X_noisy[:n], X_denoised[:n]]),
        n_rows=3,
        n_cols=n,
        image_shape=data.image_shape,
        row_labels=["clean", f"noisy (std {std:g})", "denoised"],
    )
    figure.suptitle("Test images: clean, with Gaussian noise, and denoised")
    return figure


def maps_figure(embeddings, y, data, records, classifiers=None):
    """The 2-D maps side by side, coloured by class.

    ``records`` and ``embeddings`` are what
    :func:`~denoisenet.study.experiments.maps` returns: t-SNE, then the
    bottleneck without and with its neighbour term; ``classifiers`` (in the
    same order, None for t-SNE) are the fitted bottlenecks, whose panels
    show beneath the points the class that the decoding half gives every
    point of the plane (:func:`~denoisenet.plotting.plot_class_regions`).
    Each panel's title carries its map's metrics, so the figure says on its
    own how good each map is; each legend's title says what the colours
    are. Every panel gives a class the same colour.
    """
    from denoisenet.plotting import _figure_class, plot_class_regions, plot_embedding

    if classifiers is None:
        classifiers = [None] * len(records)
    fitted = [c for c in classifiers if c is not None]
    classes = fitted[0].classes_ if fitted else np.unique(y)
    names = [data.class_names[c] for c in classes]
    legend_title = "digit" if all(n.isdigit() for n in names) else "class"
    figure = _figure_class()(figsize=(6 * len(records), 6), layout="constrained")
    axes = figure.subplots(1, len(records), squeeze=False)[0]
    panels = zip(axes, embeddings, records, classifiers, strict=True)
    for ax, Z, record, classifier in panels:
        title = (
            f"{_panel_name(record)}\ntrustworthiness "
            f"{record['trustworthiness']:.3f}, kNN accuracy in 2-D "
            f"{100 * record['knn_accuracy']:.1f}%"
        )
        if classifier is None:
            plot_embedding(Z, y, ax=ax, title=title, class_names=names, classes=classes)
        else:
            own = [data.class_names[c] for c in classifier.classes_]
            plot_class_regions(classifier, Z, y, ax=ax, title=title, class_names=own)
        ax.get_legend().set_title(legend_title)
    regions = ", the bottlenecks' over their class regions" if fitted else ""
    figure.suptitle(f"2-D maps of {len(y):,} test images{regions}")
    return figure


def _panel_name(record):
    """t-SNE, or the bottleneck and its neighbour term's weight."""
    if "neighbor_weight" not in record:
        return record["map"]
    return f"BottleneckClassifier, neighbor_weight={record['neighbor_weight']:g}"


def loss_curves_figure(dae, bottleneck):
    """The training loss per epoch of the auto-encoder and the bottleneck."""
    from matplotlib.ticker import MaxNLocator

    from denoisenet.plotting import _figure_class, plot_loss_curve

    figure = _figure_class()(figsize=(11, 4), layout="constrained")
    left, right = figure.subplots(1, 2)
    plot_loss_curve(dae, ax=left, label="DenoisingAutoencoder")
    left.set_ylabel("training loss (mean squared error)")
    left.set_title("Denoising auto-encoder")
    plot_loss_curve(bottleneck, ax=right, label="BottleneckClassifier")
    weight = bottleneck.get_params().get("neighbor_weight", 0)
    right.set_ylabel(
        "training loss (cross-entropy"
        + (f" + {weight:g} x neighbour term)" if weight else ")")
    )
    right.set_title("Bottleneck classifier")
    for ax, model in ((left, dae), (right, bottleneck)):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(model.loss_curve_) == 1:
            # An axis under one epoch wide got ticks at 0.96, 0.98, ...
            ax.set_xlim(0.5, 1.5)
            ax.set_xticks([1])
        # One line needs no legend: the panel's title names it. With early
        # stopping the validation scores make a second, and the legend stays.
        legend = ax.get_legend()
        if legend is not None and len(legend.get_texts()) < 2:
            legend.remove()
    return figure
