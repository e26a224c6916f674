"""The "?" of the HTML representation links to denoisenet's documentation."""

import pytest

from denoisenet import (
    BottleneckClassifier,
    DenoisingAutoencoder,
    GaussianPixelNoise,
    MaskingNoise,
    SaltAndPepperNoise,
)


@pytest.mark.parametrize(
    "estimator",
    [
        DenoisingAutoencoder(),
        BottleneckClassifier(),
        GaussianPixelNoise(),
        SaltAndPepperNoise(),
        MaskingNoise(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_html_repr_links_to_the_estimators_page(estimator):
    name = type(estimator).__name__
    url = (
        f"https://denoisenet.readthedocs.io/en/stable/generated/denoisenet.{name}.html"
    )
    html = estimator._repr_html_()
    assert f'href="{url}"' in html
    assert 'href="https://scikit-learn.org' not in html
