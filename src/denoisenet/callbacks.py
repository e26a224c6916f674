"""Callbacks over the training epochs, through scikit-learn's callback API.

scikit-learn 1.9 added an experimental callback API
(:mod:`sklearn.callback`): ``est.set_callbacks(*callbacks)`` attaches
objects whose hooks run at the beginning and end of every *task* of a fit.
With scikit-learn >= 1.9, both neural estimators take part: the fit is the
root task and every epoch is a sub-task named ``"epoch"``, so scikit-learn's
own callbacks (:class:`sklearn.callback.ProgressBar`,
:class:`sklearn.callback.ScoringMonitor`) work over the epochs, and a
callback's ``on_fit_task_end`` can stop training by returning True. Its
``fitted_estimator`` argument is a copy of the estimator as it stands after
that epoch (``loss_curve_``, ``n_iter_``, ``validation_scores_``, a copy of
``module_``), ready to ``transform`` or ``predict``.

:class:`Checkpoint` saves the best weights of a fit to a file as it goes.

With scikit-learn < 1.9 there is no ``set_callbacks``; the estimators work
as before.
"""

import copy
import math
import numbers
import os
import secrets
from pathlib import Path

import torch

try:  # scikit-learn >= 1.9
    from sklearn.callback import CallbackSupportMixin, with_callbacks
except ImportError:  # pragma: no cover - older scikit-learn

    class CallbackSupportMixin:
        """Stands in for scikit-learn's mixin, which this version lacks."""

    def with_callbacks(method):
        return method


__all__ = ["Checkpoint"]

SUPPORTED = hasattr(CallbackSupportMixin, "set_callbacks")


class Checkpoint:
    """Save the weights of the best epoch so far to a file, during fit.

    After every epoch that improves on every earlier epoch of the
    estimator's training (the training loss, or the validation score with
    ``early_stopping=True``), the network's state dict
    (``est.module_.state_dict()``) is written to ``path``. The earlier
    epochs are those of this fit and, when it continues earlier calls
    (``warm_start=True``, :meth:`partial_fit`), theirs too, as in the
    estimator's ``loss_curve_``: a continuation never replaces a better
    model in the file with a worse one, and one that beats no earlier
    epoch writes nothing. A fit from scratch starts a record of its own.
    The file is written atomically: into a temporary file beside it, then
    renamed, so that an interrupted fit never leaves a half-written file.
    Load it with ``torch.load(path, weights_only=True)``; see
    :ref:`deployment`.

    Needs scikit-learn >= 1.9 (its experimental :mod:`sklearn.callback`
    API). Attach it with ``est.set_callbacks(Checkpoint("best.pt"))``.

    Parameters
    ----------
    path : str or path-like
        The file to write. Its directory must exist.
    overwrite : bool, default=False
        Whether a fit may replace a file at ``path`` that this checkpoint
        did not write: one that was there before it wrote, one put there
        since (a file of the user's saved over its own), or any file, for a
        checkpoint loaded from a pickle. When False such a file is never
        touched, and the fit stops with FileExistsError before its first
        epoch.

    Examples
    --------
    >>> from denoisenet.callbacks import Checkpoint
    >>> est = DenoisingAutoencoder(max_iter=50)              # doctest: +SKIP
    >>> est.set_callbacks(Checkpoint("best.pt")).fit(X)      # doctest: +SKIP
    >>> state = torch.load("best.pt", weights_only=True)     # doctest: +SKIP
    >>> est.module_.load_state_dict(state)                   # doctest: +SKIP
    """

    def __init__(self, path, *, overwrite=False):
        self.path = path
        self.overwrite = overwrite
        # The files this checkpoint made, which it may replace: path to the
        # file's identity when written (another file at the path is not one).
        self._written = {}

    def setup(self, estimator, context):
        path = Path(self.path).resolve()
        # Found now, before the first epoch, not when the first save fails
        # with the name of a temporary file.
        if not path.parent.is_dir():
            raise FileNotFoundError(
                f"Checkpoint cannot write {path}: its folder {path.parent} does "
                "not exist. Create it first, or pass another path."
            )
        if path.is_dir():
            raise IsADirectoryError(
                f"Checkpoint cannot write {path}: it is a folder. Pass the path "
                "of a file."
            )
        if path.exists() and not self.overwrite and not self._wrote(path):
            raise FileExistsError(
                f"Checkpoint will not overwrite {path}, which it did not write. "
                "Pass another path, or Checkpoint(path, overwrite=True)."
            )

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context, *, fitted_estimator):
        if context.task_name != "epoch" or fitted_estimator is None:
            return False
        if _improves(fitted_estimator):
            self._save(fitted_estimator.module_.state_dict())
        return False

    def teardown(self, estimator, context):
        pass

    def _save(self, state):
        path = Path(self.path).resolve()
        # A fresh name, created exclusively, with the permissions that the
        # umask gives any new file (mkstemp's are 0600 whatever the umask).
        temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        handle = os.open(temporary, flags, 0o666)
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save({k: v.detach().cpu() for k, v in state.items()}, file)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
        self._written[path] = _identity(path)

    def _wrote(self, path):
        """Whether the file at ``path`` is still the one this checkpoint wrote."""
        return path in self._written and self._written[path] == _identity(path)

    def __getstate__(self):
        # What it wrote in this process says nothing of the files another
        # process finds at the path: a loaded checkpoint treats them as the
        # user's.
        state = self.__dict__.copy()
        state["_written"] = {}
        return state


def _identity(path):
    """What tells one file at ``path`` from another written there later."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _improves(est):
    """Whether the last epoch beats every earlier one of ``est``'s record.

    The validation scores when there are any (higher is better), else the
    training losses (lower is better; a non-finite one never counts). The
    record spans every call that the fit continues, as ``loss_curve_``
    does.
    """
    if est.validation_scores_:
        values = [-score for score in est.validation_scores_]
    else:
        values = list(est.loss_curve_)
    *before, last = [v if math.isfinite(v) else math.inf for v in values]
    return last < min(before, default=math.inf)


class EpochTasks:
    """The estimator's side of the API: a root task per fit, one per epoch.

    Created at the start of ``_fit`` (before its snapshot of the estimator,
    so that a failed fit keeps what the teardown needs); the training loop
    calls it after every epoch, and a True answer stops training.
    :meth:`finish` ends a fit that succeeded; :meth:`teardown` ends every
    fit.
    """

    def __init__(self, estimator, max_epochs, X, y, sample_weight):
        self.active = SUPPORTED and bool(getattr(estimator, "_skl_callbacks", None))
        if not self.active:
            return
        self.estimator = estimator
        # Called before fit checks its parameters: an invalid max_iter
        # (which fit then reports) counts as an unknown number of epochs.
        valid = isinstance(max_epochs, numbers.Integral) and max_epochs > 0
        self.max_epochs = int(max_epochs) if valid else None
        self.data = {"X": X, "y": y, "metadata": {"sample_weight": sample_weight}}
        try:
            self.root = estimator._init_callback_context(max_subtasks=self.max_epochs)
            self.root.call_on_fit_task_begin(estimator=estimator, **self.data)
            self.epochs = 0
            self.task = self._begin()
        except BaseException:
            self.teardown()  # of the callbacks whose setup ran
            raise

    def _begin(self):
        task = self.root.subcontext(task_name="epoch")
        task.call_on_fit_task_begin(estimator=self.estimator, **self.data)
        return task

    def __call__(self, module, optimizer, history):
        """End the epoch that just ran; True when a callback asks to stop."""
        if not self.active:
            return False

        def attributes():
            # Everything _commit sets, so that the copy is a fitted model of
            # its own: it pickles, and trains further with its own moments.
            return {
                "module_": copy.deepcopy(module).eval(),
                "_optimizer_state": copy.deepcopy(optimizer.state_dict()),
                "loss_curve_": list(history.loss_curve),
                "validation_scores_": (
                    None
                    if history.validation_scores is None
                    else list(history.validation_scores)
                ),
                "best_loss_": history.best_loss,
                "best_validation_score_": history.best_validation_score,
                "_no_improvement_count": history.no_improvement_count,
                "n_iter_": history.n_iter,
                "interrupted_": False,
            }

        # The epoch's task ends here even when a callback raises (Ctrl-C
        # keeps the completed epochs): finish must not end it a second time.
        task, self.task = self.task, None
        stop = task.call_on_fit_task_end(
            estimator=self.estimator, reconstruction_attributes=attributes, **self.data
        )
        self.epochs += 1
        if not stop and (self.max_epochs is None or self.epochs < self.max_epochs):
            self.task = self._begin()
        return stop

    def teardown(self):
        """Call the callbacks' teardown; ``_fit`` does, finally.

        scikit-learn's public way to tear down is the ``with_callbacks``
        decorator, which does it when the decorated method returns. Around
        an empty method it does just that, without adding a frame to
        ``fit`` (whose warnings name the caller's line by counting frames).
        """
        if self.active:
            with_callbacks(_no_task)(self.estimator)

    def finish(self):
        """End the root task (and an epoch that was begun but never ran)."""
        if not self.active:
            return
        if self.task is not None:
            self.task.call_on_fit_task_end(estimator=self.estimator)
        self.root.call_on_fit_task_end(
            estimator=self.estimator, reconstruction_attributes={}, **self.data
        )


def _no_task(estimator):
    """Nothing: what ``EpochTasks.teardown`` wraps in ``with_callbacks``."""
