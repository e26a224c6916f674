"""
================================
Loss curves and early stopping
================================

Every fitted estimator records the mean training loss of each epoch in
``loss_curve_``, as scikit-learn's :class:`~sklearn.neural_network.MLPClassifier`
does, and :func:`~denoisenet.plotting.plot_loss_curve` draws it. With
``early_stopping=True`` the estimator holds out ``validation_fraction`` of
the data, records a validation score after every epoch in
``validation_scores_``, stops once that score has not improved by ``tol``
for ``n_iter_no_change`` epochs, and keeps the weights of its best epoch.
"""

# %%
# A denoising auto-encoder, with and without early stopping
# ---------------------------------------------------------
# On scikit-learn's 8x8 digits. Without early stopping, training ends when
# the training loss has not improved by ``tol`` for ``n_iter_no_change``
# epochs, or after ``max_iter`` epochs with a
# :class:`~sklearn.exceptions.ConvergenceWarning`: here the first fit
# reaches ``max_iter=40`` while its loss is still falling, and says so.
#
# The second fit may run for up to 80 epochs but stops by itself once its
# validation score has stalled for ``n_iter_no_change`` epochs. For a
# denoising auto-encoder that score is minus the denoising error on the
# held-out images, so higher is better.
from sklearn.datasets import load_digits

from denoisenet import BottleneckClassifier, DenoisingAutoencoder

X, y = load_digits(return_X_y=True)
X = X / 16.0

full = DenoisingAutoencoder(noise=0.3, max_iter=40, random_state=0).fit(X)
early = DenoisingAutoencoder(
    noise=0.3, max_iter=80, early_stopping=True, n_iter_no_change=5, random_state=0
).fit(X)

print(f"without early stopping: {full.n_iter_} epochs")
print(
    f"with early stopping: {early.n_iter_} epochs, best validation score "
    f"{early.best_validation_score_:.5f}"
)

# %%
# The loss curves. :func:`~denoisenet.plotting.plot_loss_curve` draws the
# validation scores, when there are any, on a second y-axis on the right.
import matplotlib.pyplot as plt

from denoisenet.plotting import plot_loss_curve

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
plot_loss_curve(full, ax=left)
left.set_title("early_stopping=False")
plot_loss_curve(early, ax=right)
right.set_title("early_stopping=True")
fig.suptitle("DenoisingAutoencoder on digits")
plt.show()

# %%
# A bottleneck classifier with early stopping
# -------------------------------------------
# For :class:`~denoisenet.BottleneckClassifier` the validation score is the
# accuracy on a stratified held-out share of the data. Digits has fewer
# than 1,800 images, so batches smaller than the default give the
# optimiser more steps per epoch.
clf = BottleneckClassifier(
    (64, 2, 32), batch_size=64, max_iter=150, early_stopping=True, random_state=0
).fit(X, y)
best_epoch = clf.validation_scores_.index(clf.best_validation_score_) + 1
print(
    f"{clf.n_iter_} epochs; best validation accuracy "
    f"{clf.best_validation_score_:.3f}, at epoch {best_epoch}"
)

fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
plot_loss_curve(clf, ax=ax)
ax.set_title("BottleneckClassifier on digits, early_stopping=True")
plt.show()

# %%
# Continuing a fit
# ----------------
# ``partial_fit`` trains one more epoch at a time and extends the same
# curve, as ``fit`` does with ``warm_start=True``: the route for data that
# arrive in chunks, or that do not fit in memory at once.
more = DenoisingAutoencoder(noise=0.3, random_state=0)
for _ in range(10):
    more.partial_fit(X)
print(f"{more.n_iter_} epochs, {len(more.loss_curve_)} points on the curve")
