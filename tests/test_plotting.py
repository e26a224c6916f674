"""denoisenet.plotting: types, counts and the missing-matplotlib error."""

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from denoisenet.plotting import (  # noqa: E402
    plot_class_regions,
    plot_digits,
    plot_embedding,
    plot_loss_curve,
)


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.uniform(size=(30, 64))


def points(ax):
    return sum(len(collection.get_offsets()) for collection in ax.collections)


def test_importing_plotting_does_not_import_matplotlib():
    code = (
        "import sys, denoisenet.plotting; "
        "print(any(m.split('.')[0] == 'matplotlib' for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "False"


# -- plot_digits -------------------------------------------------------------


def test_plot_digits_draws_one_image_per_axes(images):
    fig = plot_digits(images, n_rows=2, n_cols=5)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 10
    for ax, image in zip(fig.axes, images, strict=False):
        (shown,) = ax.get_images()
        np.testing.assert_array_equal(shown.get_array(), image.reshape(8, 8))


def test_plot_digits_uses_one_grey_scale(images):
    fig = plot_digits(images[:4])
    limits = {ax.get_images()[0].get_clim() for ax in fig.axes}
    assert limits == {(images[:4].min(), images[:4].max())}


def test_plot_digits_default_grid_fits_few_images(images):
    assert len(plot_digits(images[:3]).axes) == 3
    assert len(plot_digits(images, n_rows=2).axes) == 30
    assert len(plot_digits(images).axes) == 30


def test_plot_digits_titles_and_row_labels(images):
    titles = [str(i) for i in range(6)]
    fig = plot_digits(
        images[:6], n_rows=2, n_cols=3, titles=titles, row_labels=["a", "b"]
    )
    assert [ax.get_title() for ax in fig.axes] == titles
    assert [ax.get_ylabel() for ax in fig.axes] == ["a", "", "", "b", "", ""]


def test_plot_digits_image_shape(images):
    fig = plot_digits(images[:, :10], image_shape=(2, 5), n_cols=4, n_rows=1)
    assert fig.axes[0].get_images()[0].get_array().shape == (2, 5)
    with pytest.raises(ValueError, match="image_shape"):
        plot_digits(images[:, :10])
    with pytest.raises(ValueError, match="image_shape"):
        plot_digits(images, image_shape=(4, 4))


def test_plot_digits_draws_into_a_given_figure(images):
    fig = Figure()
    assert plot_digits(images[:4], fig=fig) is fig
    assert len(fig.axes) == 4


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_plot_digits_rejects_bad_grid(images, bad):
    with pytest.raises(ValueError, match="n_rows"):
        plot_digits(images, n_rows=bad, n_cols=2)


def test_plot_digits_rejects_non_2d():
    with pytest.raises(ValueError, match="2-D"):
        plot_digits(np.zeros((2, 8, 8)))


def test_plot_digits_of_no_images_says_so(images):
    # It raised ZeroDivisionError, or blamed an n_cols never passed.
    for grid in ({}, {"n_rows": 1}):
        with pytest.raises(ValueError, match="no images"):
            plot_digits(images[:0], **grid)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_one_bad_pixel_does_not_blank_the_other_images(images, bad):
    shown = images[:4].astype(float)
    shown[0, 3] = bad
    fig = plot_digits(shown)
    # The scale of the finite pixels; a NaN scale drew every image blank.
    finite = np.delete(shown.ravel(), 3)
    limits = {ax.get_images()[0].get_clim() for ax in fig.axes}
    assert limits == {(finite.min(), finite.max())}


# -- plot_embedding ----------------------------------------------------------


def test_plot_embedding_scatters_every_point_by_class():
    rng = np.random.default_rng(0)
    Z, y = rng.normal(size=(100, 2)), rng.integers(0, 4, size=100)
    ax = plot_embedding(Z, y, title="map")
    assert isinstance(ax, Axes)
    assert len(ax.collections) == 4 and points(ax) == 100
    assert ax.get_title() == "map"
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["0", "1", "2", "3"]
    # Points of one class share one colour; classes differ.
    colours = {tuple(c.get_facecolor()[0]) for c in ax.collections}
    assert len(colours) == 4


@pytest.mark.parametrize("n_classes", [10, 20, 25, 60])
def test_every_class_gets_a_colour_of_its_own(n_classes):
    # tab20 repeated its colours beyond 20 classes: two classes looked like one.
    rng = np.random.default_rng(0)
    y = np.arange(3 * n_classes) % n_classes
    ax = plot_embedding(rng.normal(size=(len(y), 2)), y)
    colours = {tuple(c.get_facecolor()[0]) for c in ax.collections}
    assert len(colours) == n_classes


def test_plot_embedding_class_names_and_given_axes():
    ax = Figure().add_subplot()
    Z, y = np.arange(12.0).reshape(6, 2), np.array([2, 1, 2, 1, 2, 1])
    assert plot_embedding(Z, y, ax=ax, class_names=["one", "two"]) is ax
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["one", "two"]


def test_plot_embedding_string_labels():
    ax = plot_embedding(np.zeros((3, 2)), np.array(["cat", "dog", "cat"]))
    assert points(ax) == 3 and len(ax.collections) == 2


@pytest.mark.parametrize(
    "Z, y, match",
    [
        (np.zeros((5, 3)), np.zeros(5), "shape"),
        (np.zeros((5, 2)), np.zeros(4), "y must"),
    ],
)
def test_plot_embedding_rejects_bad_shapes(Z, y, match):
    with pytest.raises(ValueError, match=match):
        plot_embedding(Z, y)


def test_plot_embedding_rejects_wrong_number_of_class_names():
    with pytest.raises(ValueError, match="class_names"):
        plot_embedding(np.zeros((2, 2)), [0, 1], class_names=["a"])


# -- plot_loss_curve ---------------------------------------------------------


def test_plot_loss_curve_of_a_bare_curve():
    ax = plot_loss_curve([3.0, 2.0, 1.5])
    assert isinstance(ax, Axes)
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == [1, 2, 3]
    assert list(line.get_ydata()) == [3.0, 2.0, 1.5]
    assert line.get_label() == "loss"
    assert ax.get_xlabel() == "epoch"


def test_plot_loss_curve_of_an_estimator():
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    mlp = MLPClassifier((16,), max_iter=3, random_state=0)
    with pytest.warns(Warning):  # ConvergenceWarning after 3 iterations
        mlp.fit(X[:200] / 16, y[:200])
    ax = plot_loss_curve(mlp)
    (line,) = ax.get_lines()
    assert line.get_label() == "MLPClassifier"
    assert list(line.get_ydata()) == mlp.loss_curve_
    # No validation scores without early stopping: no second y-axis.
    assert len(ax.figure.axes) == 1


def test_plot_loss_curve_draws_validation_scores_on_a_twin():
    fitted = SimpleNamespace(loss_curve_=[1.0, 0.5], validation_scores_=[0.6, 0.8])
    ax = plot_loss_curve(fitted, label="net")
    assert len(ax.figure.axes) == 2
    twin = next(other for other in ax.figure.axes if other is not ax)
    assert list(twin.get_lines()[0].get_ydata()) == [0.6, 0.8]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["net", "net (validation score)"]


def test_plot_loss_curve_several_on_one_axes():
    ax = plot_loss_curve([1.0, 0.5], label="a")
    assert plot_loss_curve([2.0, 1.0, 0.7], ax=ax, label="b") is ax
    assert len(ax.get_lines()) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]


def test_plot_loss_curve_of_an_unfitted_estimator():
    from sklearn.neural_network import MLPClassifier

    with pytest.raises(ValueError, match="fit it first"):
        plot_loss_curve(MLPClassifier())


# -- without matplotlib ------------------------------------------------------


@pytest.fixture
def no_matplotlib(monkeypatch):
    # None in sys.modules makes every import of the name fail.
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@pytest.mark.parametrize(
    "draw",
    [
        lambda: plot_digits(np.zeros((4, 64))),
        lambda: plot_embedding(np.zeros((4, 2)), [0, 1, 0, 1]),
        lambda: plot_loss_curve([1.0, 0.5]),
    ],
    ids=["plot_digits", "plot_embedding", "plot_loss_curve"],
)
def test_missing_matplotlib_names_the_extra(no_matplotlib, draw):
    with pytest.raises(ImportError, match=r'pip install "denoisenet\[plot\]"'):
        draw()


@pytest.fixture(scope="module")
def fitted_map():
    from sklearn.datasets import load_digits

    from denoisenet import BottleneckClassifier

    X, y = load_digits(return_X_y=True)
    X, y = X[y < 3], y[y < 3]
    clf = BottleneckClassifier((16, 2, 8), random_state=0, max_iter=40).fit(X, y)
    return clf, clf.transform(X), y


def test_class_regions_are_the_decoded_classes_of_the_grid(fitted_map):
    clf, Z, y = fitted_map
    ax = plot_class_regions(clf, Z, y, resolution=30)
    regions = np.asarray(ax.images[0].get_array())
    assert regions.shape == (30, 30)
    x0, x1, y0, y1 = ax.images[0].get_extent()
    # The grid spans every mapped point; a corner's colour is its class.
    assert x0 < Z[:, 0].min() and x1 > Z[:, 0].max()
    assert y0 < Z[:, 1].min() and y1 > Z[:, 1].max()
    corner = clf.decode([[x0, y0]]).argmax()
    assert regions[0, 0] == corner
    assert set(np.unique(regions)) <= {0, 1, 2}
    # Each class's points share the colour of its region.
    assert len(ax.collections) == 3


def test_points_take_the_colours_of_the_classifiers_classes(fitted_map):
    clf, Z, y = fitted_map
    only_two = y > 0  # class 0 absent: the colours must not shift
    ax = plot_class_regions(clf, Z[only_two], y[only_two], resolution=10)
    full = plot_class_regions(clf, Z, y, resolution=10)
    assert np.allclose(
        ax.collections[1].get_facecolor(), full.collections[1].get_facecolor()
    )


@pytest.mark.parametrize(
    "Z, resolution",
    [
        (np.zeros((3, 3)), 10),
        (np.full((3, 2), np.nan), 10),
        (np.zeros((0, 2)), 10),
        (np.zeros((3, 2)), 1),
        (np.zeros((3, 2)), 10**6),
    ],
)
def test_class_regions_reject_bad_input(fitted_map, Z, resolution):
    clf, _, _ = fitted_map
    with pytest.raises(ValueError):
        plot_class_regions(clf, Z, resolution=resolution)


def test_class_regions_take_numpy_ints_and_refuse_an_autoencoder(fitted_map):
    from denoisenet import DenoisingAutoencoder

    clf, Z, y = fitted_map
    ax = plot_class_regions(clf, Z, y, resolution=np.int64(10))
    assert np.asarray(ax.images[0].get_array()).shape == (10, 10)
    X = np.random.default_rng(0).random((20, 4))
    dae = DenoisingAutoencoder((8, 2, 8), max_iter=1).fit(X)
    # It decoded the grid first, then failed on classes_.
    with pytest.raises(TypeError, match="BottleneckClassifier"):
        plot_class_regions(dae, Z)


@pytest.mark.parametrize(
    "y, match",
    [
        (np.r_[np.nan, np.zeros(4)], "NaN labels"),
        (np.array([None, 0, 1, 0, 1], dtype=object), "one type"),
    ],
)
def test_plot_embedding_names_bad_labels(y, match):
    # A NaN blamed a classes argument that was never passed.
    with pytest.raises(ValueError, match=match):
        plot_embedding(np.zeros((5, 2)), y)
