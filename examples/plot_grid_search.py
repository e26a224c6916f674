"""
=====================================================
Grid-searching a denoise-then-classify pipeline
=====================================================

How much noise should a :class:`~denoisenet.DenoisingAutoencoder` train
with, and how wide should it be? When the images to classify are noisy,
the answer is a score on noisy images, and
:class:`~sklearn.model_selection.GridSearchCV` can find it like any other
hyper-parameter: the auto-encoder is one step of a
:class:`~sklearn.pipeline.Pipeline`, and its noise transformer's
parameters are reachable as ``dae__noise__std``.

The example uses scikit-learn's 8x8 digits, so that the 12 fits of the
search take seconds.
"""

# %%
# The data and the pipeline
# -------------------------
# The pipeline trains on clean images: the auto-encoder corrupts them
# itself while it learns, and the logistic regression learns from the
# auto-encoder's output.
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from denoisenet import DenoisingAutoencoder, GaussianPixelNoise

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)

pipe = Pipeline(
    [
        (
            "dae",
            DenoisingAutoencoder(
                noise=GaussianPixelNoise(), max_iter=40, random_state=0
            ),
        ),
        ("clf", LogisticRegression(max_iter=1000)),
    ]
)
pipe

# %%
# A score on noisy images
# -----------------------
# A scorer is any callable ``(estimator, X, y) -> float``. This one adds
# Gaussian noise of standard deviation 0.3 to the validation images (the
# same noise in every call, thanks to the int ``random_state``) before
# scoring. Plain accuracy on the clean images is recorded beside it.
noise_at_test_time = GaussianPixelNoise(std=0.3, random_state=0)


def noisy_accuracy(estimator, X, y):
    return estimator.score(noise_at_test_time.fit_transform(X), y)


# %%
# The search
# ----------
# Three training noise levels, two widths of the auto-encoder, 2-fold
# cross-validation: 12 fits. ``refit="noisy"`` refits the best pipeline for
# noisy images on the whole training set. ``n_jobs`` would spread the fits
# over processes or, with joblib's Dask backend, over a cluster; each
# worker thread uses one torch thread.
#
# Forty epochs keep the search quick; the auto-encoders would still
# improve, and the ``ConvergenceWarning`` that says so is silenced.
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

param_grid = {
    "dae__noise__std": [0.1, 0.3, 0.5],
    "dae__hidden_layer_sizes": [(64, 32, 64), (256, 128, 256)],
}
search = GridSearchCV(
    pipe,
    param_grid,
    scoring={"noisy": noisy_accuracy, "clean": "accuracy"},
    refit="noisy",
    cv=2,
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X_train, y_train)
print("best parameters:", search.best_params_)
print(f"cross-validated accuracy on noisy images: {search.best_score_:.3f}")

# %%
# For comparison, the logistic regression alone, without a denoiser, in the
# same cross-validation.
from sklearn.model_selection import cross_validate

baseline = cross_validate(
    LogisticRegression(max_iter=1000),
    X_train,
    y_train,
    scoring={"noisy": noisy_accuracy, "clean": "accuracy"},
    cv=2,
)
print(f"without a denoiser: {baseline['test_noisy'].mean():.3f} on noisy images")

# %%
# The results, one colour per width of the auto-encoder: accuracy on noisy
# images (solid) and on clean ones (dashed), against the training noise;
# the grey lines are the classifier without a denoiser.
import matplotlib.pyplot as plt
import numpy as np

results = search.cv_results_
stds = np.asarray(results["param_dae__noise__std"], dtype=float)
fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
for color, sizes in zip(
    ["C0", "C1"], param_grid["dae__hidden_layer_sizes"], strict=True
):
    rows = np.array([p["dae__hidden_layer_sizes"] == sizes for p in results["params"]])
    for kind, style in [("noisy", "-"), ("clean", "--")]:
        ax.plot(
            stds[rows],
            results[f"mean_test_{kind}"][rows],
            color=color,
            linestyle=style,
            marker="o",
            label=f"DAE {sizes}, {kind} images",
        )
for kind, style in [("noisy", "-"), ("clean", "--")]:
    ax.axhline(
        baseline[f"test_{kind}"].mean(),
        color="grey",
        linestyle=style,
        label=f"no denoiser, {kind} images",
    )
ax.set_xticks(param_grid["dae__noise__std"])
ax.set_xlabel("standard deviation of the training noise")
ax.set_ylabel("cross-validated accuracy")
ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
plt.show()

# %%
# On held-out images
# ------------------
# The refitted best pipeline, scored on the held-out test images, clean and
# with the test-time noise, and the logistic regression alone for
# comparison.
best = search.best_estimator_
plain = LogisticRegression(max_iter=1000).fit(X_train, y_train)
print(f"clean test images: {best.score(X_test, y_test):.3f}")
print(f"noisy test images: {noisy_accuracy(best, X_test, y_test):.3f}")
print(f"noisy test images, no denoiser: {noisy_accuracy(plain, X_test, y_test):.3f}")

# %%
# What the search shows
# ---------------------
# The wide auto-encoder wins back part of the accuracy that the noise
# takes, and costs little on clean images. The narrow one squeezes 64
# pixels through a code of 32 units and loses detail that the classifier
# needs: the search is what tells that it does worse than no denoiser at
# all. Along the other axis, training noise much weaker than the noise to
# remove leaves noise in the output, and much stronger noise blurs the
# digits. Which level is best depends on the images the pipeline will see,
# and the scorer is where that goes.
