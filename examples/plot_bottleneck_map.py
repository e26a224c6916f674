"""
==========================================
The bottleneck map beside t-SNE
==========================================

A :class:`~denoisenet.BottleneckClassifier` squeezes every image through a
hidden layer of two units on its way to the class probabilities. Those two
activations, returned by ``transform``, place every image on a plane: a
2-D map of the data, learned with the labels, that can be set beside
:class:`~sklearn.manifold.TSNE`'s map, learned without them.

Two numbers compare the maps:

* **trustworthiness** (:func:`sklearn.manifold.trustworthiness`, 1 is best):
  are the neighbours of a point in the map also its neighbours among the
  pixels? It penalises a map that puts strangers side by side.
* **kNN accuracy in 2-D**: how well a 10-nearest-neighbour classifier does
  on the map's coordinates alone (5-fold cross-validation). It rewards a map
  that keeps the classes apart.

The classifier's ``neighbor_weight`` (0.3 by default) adds a parametric
t-SNE term to its loss that keeps images of a class that are neighbours in
pixel space together in the bottleneck; the middle map turns it off
(``neighbor_weight=0``, cross-entropy alone), the right one keeps the
default.
"""

# %%
# The data
# --------
# A sample of Fashion-MNIST when Debian's ``dataset-fashion-mnist`` package
# is installed, scikit-learn's 8x8 digits otherwise. The classifiers train
# on one part; all three maps are drawn for the images held out.
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from denoisenet.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist

try:
    X, y = load_fashion_mnist("test", download=False)
    X, y = X[:3000], y[:3000]
    dataset, max_iter = "Fashion-MNIST", 15
    class_names = FASHION_MNIST_CLASSES
except FileNotFoundError:
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    # Fewer images make an epoch only a few optimiser steps: train longer.
    dataset, max_iter = "digits", 100
    class_names = None

X_train, X_map, y_train, y_map = train_test_split(
    X, y, test_size=1000, stratify=y, random_state=0
)

# %%
# Three maps
# ----------
# t-SNE with its defaults, the bottleneck of a classifier trained on the
# labels alone, and the bottleneck of one whose loss adds the neighbour
# term. A few epochs (``max_iter``, set with the data) keep the example
# quick; the classifiers would still improve, which the silenced
# ``ConvergenceWarning`` says.
import time
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.manifold import TSNE

from denoisenet import BottleneckClassifier

maps, seconds = {}, {}

start = time.perf_counter()
maps["t-SNE"] = TSNE(random_state=0).fit_transform(X_map)
seconds["t-SNE"] = time.perf_counter() - start

for title, neighbor_weight in [("bottleneck", 0.0), ("bottleneck + neighbours", 0.3)]:
    clf = BottleneckClassifier(
        max_iter=max_iter, neighbor_weight=neighbor_weight, random_state=0
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    maps[title] = clf.transform(X_map)
    seconds[title] = time.perf_counter() - start
    print(f"{title}: classifier accuracy {clf.score(X_map, y_map):.3f}")

# %%
# Trustworthiness and kNN accuracy
# --------------------------------
from sklearn.manifold import trustworthiness
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

scores = {}
for title, Z in maps.items():
    scores[title] = (
        trustworthiness(X_map, Z, n_neighbors=10),
        cross_val_score(KNeighborsClassifier(n_neighbors=10), Z, y_map).mean(),
    )
    print(
        f"{title:>24}: trustworthiness {scores[title][0]:.3f}, "
        f"kNN accuracy in 2-D {scores[title][1]:.3f}, "
        f"{seconds[title]:.1f} s"
    )

# %%
# The maps, side by side
# ----------------------
import matplotlib.pyplot as plt

from denoisenet.plotting import plot_embedding

fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), layout="constrained")
for ax, (title, Z) in zip(axes, maps.items(), strict=True):
    tw, knn = scores[title]
    plot_embedding(
        Z,
        y_map,
        ax=ax,
        title=f"{title}\ntrustworthiness {tw:.2f}, kNN accuracy {knn:.2f}",
        class_names=class_names,
    )
    if ax is not axes[-1]:
        ax.get_legend().remove()
fig.suptitle(f"2-D maps of {len(y_map)} held-out {dataset} images")
plt.show()

# %%
# Reading the maps
# ----------------
# t-SNE preserves neighbourhoods best: its trustworthiness is the highest.
# But it knows no labels, and on Fashion-MNIST classes that look alike
# (shirts, T-shirts, pullovers and coats) run into each other. The plain
# bottleneck has seen the labels, so its classes fan out into separate
# regions, which a nearest-neighbour classifier on the map rewards; inside
# a region, though, the order of the images owes little to their pixels,
# which costs trustworthiness. The neighbour term orders each region by
# the pixels, so that neighbourhoods come closer to t-SNE's; it uses
# neighbours of the same class only, so the classes stay apart.
#
# Unlike t-SNE, the bottleneck is a function: ``transform`` places new
# images on the same map without refitting.

# %%
# Two numbers per image suffice
# -----------------------------
# The classifier's second half needs only the two numbers of the map:
# ``decode`` gives the class probabilities of any point of the plane, so a
# grid over the map shows which class each region stands for, and the
# mapped images fall into their regions.
from denoisenet.plotting import plot_class_regions

fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
plot_class_regions(
    clf,
    maps["bottleneck + neighbours"],
    y_map,
    ax=ax,
    class_names=class_names,
    title="class regions of the map",
)
plt.show()
