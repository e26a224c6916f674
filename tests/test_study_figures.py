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
