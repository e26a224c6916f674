"""Metadata routing: sample_weight through Pipeline and GridSearchCV."""

import warnings

import numpy as np
import pytest
import sklearn
import torch
from sklearn.exceptions import UnsetMetadataPassedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from denoisenet import BottleneckClassifier, DenoisingAutoencoder

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def state_dicts_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def _pipe(alpha=1e-4):
    dae = DenoisingAutoencoder((32, 8, 32), max_iter=2, random_state=0)
    clf = BottleneckClassifier((16, 2, 8), alpha=alpha, max_iter=3, random_state=0)
    # The score request too: GridSearchCV's scoring calls Pipeline.score,
    # which routes sample_weight to the classifier's score.
    clf = clf.set_fit_request(sample_weight=True).set_score_request(sample_weight=True)
    pipe = make_pipeline(dae, clf)
    if hasattr(pipe, "set_score_request"):
        # scikit-learn before 1.8 asks for the Pipeline's own score request.
        pipe.set_score_request(sample_weight=True)
    return pipe


def _weights(y):
    return np.random.default_rng(0).uniform(0.0, 3.0, size=len(y))


def _direct_fit(X, y, sample_weight, alpha=1e-4):
    """What the pipeline should do with the weights, step by step."""
    dae = DenoisingAutoencoder((32, 8, 32), max_iter=2, random_state=0).fit(X)
    clf = BottleneckClassifier((16, 2, 8), alpha=alpha, max_iter=3, random_state=0)
    return clf.fit(dae.transform(X), y, sample_weight=sample_weight)


def test_pipeline_routes_sample_weight_to_the_classifier(small_digits):
    X, y = small_digits
    w = _weights(y)
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = _pipe().fit(X, y, sample_weight=w)
    assert state_dicts_equal(pipe[-1].module_, _direct_fit(X, y, w).module_)
    assert not state_dicts_equal(pipe[-1].module_, _direct_fit(X, y, None).module_)


def test_unrequested_sample_weight_is_an_error(small_digits):
    X, y = small_digits
    pipe = make_pipeline(BottleneckClassifier((16, 2, 8), max_iter=1))
    with sklearn.config_context(enable_metadata_routing=True):
        with pytest.raises(UnsetMetadataPassedError, match="sample_weight"):
            pipe.fit(X, y, sample_weight=_weights(y))


@pytest.mark.filterwarnings("error::UserWarning")  # a failed score is a warning
def test_grid_search_routes_sample_weight_to_every_fit(small_digits):
    X, y = small_digits
    w = _weights(y)
    grid = {"bottleneckclassifier__alpha": [1e-4, 1e-2]}
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(_pipe(), grid, cv=2).fit(X, y, sample_weight=w)
        unweighted = GridSearchCV(_pipe(), grid, cv=2).fit(X, y)
    alpha = search.best_params_["bottleneckclassifier__alpha"]
    # The refit on all of X got the weights ...
    expected = _direct_fit(X, y, w, alpha=alpha)
    assert state_dicts_equal(search.best_estimator_[-1].module_, expected.module_)
    # ... and so did the fits and the scores of the cross-validation.
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert not np.array_equal(
        search.cv_results_["mean_test_score"], unweighted.cv_results_["mean_test_score"]
    )


def test_the_autoencoder_takes_no_sample_weight():
    # Nothing to request: a Pipeline never routes sample_weight to it.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not hasattr(DenoisingAutoencoder(), "set_fit_request")
