"""The user-guide pages whose examples are doctests run as written."""

import doctest
from pathlib import Path

import pytest

PAGES = Path(__file__).parents[1] / "docs" / "user_guide"


@pytest.mark.filterwarnings("error")
def test_getting_started_page_runs_without_warnings(tmp_path, monkeypatch):
    _run("../getting_started.rst", tmp_path, monkeypatch)


def _run(page, tmp_path, monkeypatch, minimum=10):
    monkeypatch.chdir(tmp_path)  # the pages write files to the current folder
    result = doctest.testfile(
        str(PAGES / page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > minimum
    assert result.failed == 0, f"{result.failed} examples of {page} failed"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore:.*is deprecated:DeprecationWarning")
def test_deployment_page(tmp_path, monkeypatch):
    for module in ("skl2onnx", "onnxruntime", "skops"):
        pytest.importorskip(module)
    _run("deployment.rst", tmp_path, monkeypatch)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_callbacks_page(tmp_path, monkeypatch):
    pytest.importorskip("sklearn.callback")
    _run("callbacks.rst", tmp_path, monkeypatch)
