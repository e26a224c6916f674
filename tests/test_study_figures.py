"""The study's figures: the three maps carry their metrics and a legend
title, the loss curves no legend that names a single line."""

from types import SimpleNamespace

import numpy as np
import pytest

from denoisenet.study import figures

pytest.importorskip("matplotlib")


def records():
    return [
        {"map": "t-SNE", "trustworthiness": 0.98123, "knn_accuracy": 0.9512},
        {
            "map": "bottleneck without the neighbour term",
            "neighbor_weight": 0.0,
            "trustworthiness": 0.8312,
            "knn_accuracy": 0.8721,
        },
        {
            "map": "bottleneck",
            "neighbor_weight": 0.3,
            "trustworthiness": 0.876,
            "knn_accuracy": 0.8049,
        },
    ]


@pytest.mark.parametrize(
    "class_names, legend_title",
    [(tuple("0123456789"), "digit"), (tuple("ABCDEFGHIJ"), "class")],
)
def test_maps_carry_their_metrics_and_a_legend_title(class_names, legend_title):
    rng = np.random.default_rng(0)
    y = np.arange(60) % 10
    data = SimpleNamespace(class_names=class_names)
    maps = [rng.normal(size=(60, 2)) for _ in range(3)]
    figure = figures.maps_figure(maps, y, data, records())
    # Three panels, and nothing else with a title (the legends are inside).
    assert len(figure.axes) == 3
    assert [ax.get_title() for ax in figure.axes] == [
        "t-SNE\ntrustworthiness 0.981, kNN accuracy in 2-D 95.1%",
        "BottleneckClassifier, neighbor_weight=0\n"
        "trustworthiness 0.831, kNN accuracy in 2-D 87.2%",
        "BottleneckClassifier, neighbor_weight=0.3\n"
        "trustworthiness 0.876, kNN accuracy in 2-D 80.5%",
    ]
    for ax, Z in zip(figure.axes, maps, strict=True):
        # Each panel draws its own map: one scatter per class.
        drawn = np.vstack([c.get_offsets() for c in ax.collections])
        assert sorted(map(tuple, drawn)) == sorted(map(tuple, Z))
        legend = ax.get_legend()
        assert legend.get_title().get_text() == legend_title
        assert [t.get_text() for t in legend.get_texts()] == list(class_names)


class _Fitted:
    """What the loss-curve figure reads of a fitted estimator."""

    def __init__(self, losses, scores=None, **params):
        self.loss_curve_ = losses
        self.validation_scores_ = scores
        self._params = params

    def get_params(self, deep=True):
        return dict(self._params)


def test_loss_curves_have_no_legend_for_one_line():
    figure = figures.loss_curves_figure(
        _Fitted([0.3, 0.2, 0.1]), _Fitted([2.0, 1.0], neighbor_weight=0.3)
    )
    left, right = figure.axes[:2]
    assert left.get_legend() is None and right.get_legend() is None
    assert len(left.get_lines()) == 1 and len(right.get_lines()) == 1
    assert "neighbour term" in right.get_ylabel()


def test_loss_curves_keep_a_legend_for_two_lines():
    # With early stopping the validation scores are a second line.
    figure = figures.loss_curves_figure(
        _Fitted([0.3, 0.2, 0.1]), _Fitted([2.0, 1.0], [0.5, 0.7], neighbor_weight=0)
    )
    left, right = figure.axes[:2]
    assert left.get_legend() is None
    texts = [t.get_text() for t in right.get_legend().get_texts()]
    assert texts == ["BottleneckClassifier", "BottleneckClassifier (validation score)"]
    assert right.get_ylabel() == "training loss (cross-entropy)"


def test_loss_curves_of_one_epoch_have_whole_epoch_ticks():
    # An axis under one epoch wide got ticks at 0.96, 0.98, ...
    figure = figures.loss_curves_figure(_Fitted([0.3]), _Fitted([2.0, 1.0]))
    left, right = figure.axes[:2]
    assert left.get_xlim() == (0.5, 1.5)
    assert [t for t in left.get_xticks() if 0.5 <= t <= 1.5] == [1.0]
    assert right.get_xlim() != (0.5, 1.5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_bottleneck_panels_draw_their_class_regions_in_shared_colours():
    # The bottlenecks' panels show beneath the points the class that each
    # classifier's decoder gives the plane; t-SNE, which has no decoder,
    # shows points only. A class keeps its colour in every panel, also
    # when the test sample lacks a class (class 0 here).
    from sklearn.datasets import load_digits

    from denoisenet import BottleneckClassifier

    X, y = load_digits(return_X_y=True)
    X, y = X[y < 3] / 16, y[y < 3]
    fits = [
        BottleneckClassifier((16, 2, 8), random_state=0, max_iter=5, **kw).fit(X, y)
        for kw in ({"neighbor_weight": 0}, {})
    ]
    sample = y > 0
    maps = [np.random.default_rng(0).normal(size=(sample.sum(), 2))]
    maps += [clf.transform(X[sample]) for clf in fits]
    data = SimpleNamespace(class_names=("zero", "one", "two"))
    figure = figures.maps_figure(maps, y[sample], data, records(), [None, *fits])
    tsne, *bottlenecks = figure.axes
    assert len(tsne.images) == 0
    for ax, clf, Z in zip(bottlenecks, fits, maps[1:], strict=True):
        (image,) = ax.images
        x0, x1, y0, y1 = image.get_extent()
        assert y0 < Z[:, 1].min() and y1 > Z[:, 1].max()
        assert np.asarray(image.get_array())[0, 0] == clf.decode([[x0, y0]]).argmax()
        assert x0 < Z[:, 0].min() and x1 > Z[:, 0].max()
    colours = [
        {
            t.get_text(): tuple(h.get_facecolor()[0])
            for t, h in zip(
                ax.get_legend().get_texts(), ax.get_legend().legend_handles, strict=True
            )
        }
        for ax in figure.axes
    ]
    assert colours[0] == colours[1] == colours[2]
    assert list(colours[0]) == ["zero", "one", "two"]
    assert "class regions" in figure.get_suptitle()


def test_the_study_draws_its_bottlenecks_regions(tmp_path, study_cli, monkeypatch):
    # The study hands the map figure the two bottlenecks that made the maps.
    drawn = []
    original = figures.maps_figure

    def maps_figure(embeddings, y, data, records, classifiers=None):
        drawn.append((records, classifiers))
        return original(embeddings, y, data, records, classifiers)

    monkeypatch.setattr(figures, "maps_figure", maps_figure)
    argv = ["study", "--n-train", "50", "--max-iter", "1", "--quiet"]
    status, _, stderr = study_cli.run(
        [*argv, "--out", str(tmp_path / "out")],
        MAP_SAMPLES=100,
        TRUSTWORTHINESS_SAMPLES=80,
    )
    assert status == 0, stderr
    ((records, classifiers),) = drawn
    assert classifiers[0] is None
    weights = [c.neighbor_weight for c in classifiers[1:]]
    assert weights == [r["neighbor_weight"] for r in records[1:]] == [0, 0.3]
    assert all(hasattr(c, "classes_") for c in classifiers[1:])
