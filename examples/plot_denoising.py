"""
===========================================================
Denoising images so that a classifier recovers its accuracy
===========================================================

A classifier trained on clean images loses much of its accuracy on noisy
ones. A :class:`~denoisenet.DenoisingAutoencoder`, trained on the same clean
images corrupted afresh in every batch, learns to remove the noise: put in
front of the classifier, it wins back much of what the noise took. This is
the denoising experiment of the blog post that started denoisenet, on a
sample small enough to run in seconds.
"""

# %%
# The data
# --------
# A sample of Fashion-MNIST (28x28 pixels) when Debian's
# ``dataset-fashion-mnist`` package is installed, scikit-learn's 8x8 digits
# otherwise. Pixels are scaled to [0, 1], the range the noise is defined in.
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from denoisenet.datasets import load_fashion_mnist

try:
    X, y = load_fashion_mnist("test", download=False)
    X, y = X[:4000], y[:4000]
    dataset, max_iter = "Fashion-MNIST", 20
except FileNotFoundError:
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    # Fewer images make an epoch only a few optimiser steps: train longer.
    dataset, max_iter = "digits", 100

X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
print(f"{dataset}: {X_train.shape[0]} training and {X_test.shape[0]} test images")

# %%
# A classifier trained on clean images
# ------------------------------------
# Scored on the clean test images and on the same images with Gaussian
# noise of standard deviation 0.3 added to every pixel (clipped to [0, 1]).
# An int ``random_state`` makes the noise the same on every run.
from sklearn.neural_network import MLPClassifier

from denoisenet import GaussianPixelNoise

classifier = MLPClassifier(early_stopping=True, random_state=0)
classifier.fit(X_train, y_train)

noise = GaussianPixelNoise(std=0.3, random_state=0)
X_test_noisy = noise.fit_transform(X_test)

print(f"accuracy on clean images: {classifier.score(X_test, y_test):.3f}")
print(f"accuracy on noisy images: {classifier.score(X_test_noisy, y_test):.3f}")

# %%
# A denoising auto-encoder
# ------------------------
# It trains on the clean training images only: ``noise=0.3`` corrupts every
# batch with Gaussian noise of that standard deviation, and the network
# learns to reconstruct the clean images. ``transform`` then denoises any
# image.
#
# A few epochs (``max_iter``, set with the data) keep this example quick;
# the auto-encoder would still improve with more, and says so with a
# ``ConvergenceWarning``, which is silenced here.
import warnings

from sklearn.exceptions import ConvergenceWarning

from denoisenet import DenoisingAutoencoder

dae = DenoisingAutoencoder(noise=0.3, max_iter=max_iter, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    dae.fit(X_train)
X_test_denoised = dae.transform(X_test_noisy)

print(f"accuracy on denoised images: {classifier.score(X_test_denoised, y_test):.3f}")

# %%
# The images themselves: clean, noisy and denoised, one row each.
import matplotlib.pyplot as plt
import numpy as np

from denoisenet.plotting import plot_digits

n = 10
fig = plot_digits(
    np.vstack([X_test[:n], X_test_noisy[:n], X_test_denoised[:n]]),
    n_rows=3,
    row_labels=["clean", "noisy", "denoised"],
    fig=plt.figure(figsize=(9.6, 3.2), layout="constrained"),
)
plt.show()

# %%
# How much accuracy comes back at other noise levels?
# ---------------------------------------------------
# The auto-encoder was trained for one noise level, 0.3; the same model
# is scored here on test images with weaker and stronger noise. The mean
# squared error of the images tells the same story as the accuracy.
stds = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
accuracy_noisy, accuracy_denoised = [], []
for std in stds:
    X_noisy = GaussianPixelNoise(std=std, random_state=0).fit_transform(X_test)
    accuracy_noisy.append(classifier.score(X_noisy, y_test))
    accuracy_denoised.append(classifier.score(dae.transform(X_noisy), y_test))

mse_noisy = np.mean((X_test_noisy - X_test) ** 2)
mse_denoised = np.mean((X_test_denoised - X_test) ** 2)
print(f"mean squared error, noisy: {mse_noisy:.4f}, denoised: {mse_denoised:.4f}")

fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
ax.plot(stds, accuracy_noisy, marker="o", label="noisy images")
ax.plot(stds, accuracy_denoised, marker="o", label="denoised images")
ax.axvline(0.3, color="grey", linestyle=":", label="training noise of the DAE")
ax.set_xlabel("standard deviation of the test noise")
ax.set_ylabel("accuracy of the classifier")
ax.set_title(f"A classifier trained on clean {dataset} images")
ax.legend()
plt.show()

# %%
# The accuracy on denoised images falls far more slowly with the noise than
# on noisy ones: at strong noise the denoiser wins back much of what the
# noise took, even beyond the level it was trained for. On clean or lightly
# noisy images it costs accuracy instead, because it also smooths away
# detail that the classifier used. Whether to put it in front of a
# classifier depends on the noise to expect;
# :ref:`sphx_glr_auto_examples_plot_grid_search.py` chooses the training
# noise level by cross-validation.
