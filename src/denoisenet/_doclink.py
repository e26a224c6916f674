"""Where the "?" of an estimator's HTML representation points.

scikit-learn's HTML representation (Jupyter's display of an estimator)
links a "?" to the estimator's documentation; by default only for classes of
``sklearn``. ``_doc_link_module`` and ``_doc_link_template`` are the class
attributes that scikit-learn documents for third-party estimators to point
it at their own pages.
"""

__all__ = ["DOCS_URL", "DocLinkMixin"]

DOCS_URL = "https://denoisenet.readthedocs.io/en/stable/"


class DocLinkMixin:
    """Points the HTML representation's "?" at denoisenet's API reference."""

    _doc_link_module = "denoisenet"
    _doc_link_template = DOCS_URL + "generated/denoisenet.{estimator_name}.html"
