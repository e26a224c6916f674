"""Sphinx configuration of denoisenet's documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
from the repository root (after ``pip install -e ".[docs]"``). The build runs
every example in ``examples/`` through sphinx-gallery.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

# One thread for torch, OpenMP and BLAS while the gallery runs. Its images
# are tiny, so more threads buy nothing, and on shared CI machines every
# extra thread spins against other jobs: a busy 2-core machine ran the
# examples several times slower with torch's default. Set here, before
# numpy, scikit-learn or torch are imported, and overridable from the
# environment.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

import denoisenet  # noqa: E402

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))

# -- Project -----------------------------------------------------------------

project = "denoisenet"
author = "The denoisenet developers"
copyright = "the denoisenet developers"
release = denoisenet.__version__
version = ".".join(release.split(".")[:2])

# -- General -----------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
default_role = "literal"

# The machines that build the docs have no internet, so there is no
# intersphinx: references to scikit-learn, numpy or torch objects render as
# code without a link. nitpicky stays False so that such references are not
# warnings.
nitpicky = False

# -- autodoc, autosummary, numpydoc -----------------------------------------

autosummary_generate = True
# The right-hand "On this page" list of a class page names its methods as
# "fit()", not "DenoisingAutoencoder.fit()": the class name is the page's
# title, and with it the longer method names were cut off in the narrow,
# non-wrapping sidebar.
toc_object_entries_show_parents = "hide"
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"

# The class template (_templates/autosummary/class.rst) lists the methods in a
# table of its own, without scikit-learn's metadata-routing machinery;
# numpydoc's list of members would repeat them.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False


def skip_metadata_routing(app, what, name, obj, skip, options):
    """Leave out scikit-learn's metadata-routing methods.

    ``get_metadata_routing`` and the generated ``set_*_request`` methods are
    scikit-learn machinery, documented there, and the same on every
    estimator.
    """
    if name == "get_metadata_routing" or re.fullmatch(r"set_\w+_request", name):
        return True
    return None


_SKLEARN_ROLE = re.compile(r":(ref|term):`([^`<]*?)\s*(?:<([^`>]*)>)?`")


def _plain(match):
    role, text, target = match.groups()
    if role == "ref" and target is None:
        # A bare label: the text would be the label itself.
        return "scikit-learn's " + (
            "gallery" if text.startswith("sphx_glr") else "docs"
        )
    return text


def unlink_sklearn_references(app, what, name, obj, options, lines):
    """Turn ``:ref:`` and ``:term:`` roles in inherited scikit-learn
    docstrings (``set_output``, ``score``, ...) into plain text.

    They point into scikit-learn's own user guide and glossary, which this
    site cannot link to without intersphinx.
    """
    if getattr(obj, "__module__", "").startswith("sklearn"):
        lines[:] = [_SKLEARN_ROLE.sub(_plain, line) for line in lines]


# -- sphinx-gallery ----------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": "/plot_",
    "doc_module": ("denoisenet",),
    "reference_url": {"denoisenet": None},
    "backreferences_dir": "generated/backreferences",
    "inspect_global_variables": False,
    "remove_config_comments": True,
    "within_subsection_order": "_gallery_order.GalleryOrder",
    "show_memory": False,
    "matplotlib_animations": False,
}

# -- HTML --------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"denoisenet {release}"
html_theme_options = {
    "github_url": "https://github.com/denoisenet/denoisenet",
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
}
html_context = {"default_mode": "light"}
html_sidebars = {"index": [], "getting_started": [], "changelog": []}
html_static_path = []
html_show_sourcelink = False


# -- Generated pages ---------------------------------------------------------


def write_study_help(app):
    """Write ``denoisenet study --help`` for getting_started.rst to include.

    Generated at every build, so the documented options cannot drift from
    the command's own.
    """
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1"}
    text = subprocess.run(
        [sys.executable, "-m", "denoisenet", "study", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    target = DOCS / "generated" / "study_help.txt"
    target.parent.mkdir(exist_ok=True)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def setup(app):
    app.connect("builder-inited", write_study_help)
    app.connect("autodoc-skip-member", skip_metadata_routing)
    # Before numpydoc (priority 500) parses the docstring.
    app.connect("autodoc-process-docstring", unlink_sklearn_references, priority=400)
