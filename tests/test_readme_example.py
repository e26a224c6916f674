"""README.md's example runs without a warning and prints what README shows."""

import contextlib
import io
import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TOLERANCE = 0.02  # float32 training differs a little between CPUs


def _blocks(kind):
    return re.findall(rf"```{kind}\n(.*?)```", README.read_text(), re.S)


def _numbers(text):
    return {
        name: float(value)
        for name, value in re.findall(r"^(\w+):\s+([0-9.]+)$", text, re.M)
    }


@pytest.mark.skipif(not README.exists(), reason="README.md is not beside the tests")
def test_readme_example_prints_what_readme_shows_without_warnings():
    example = next(b for b in _blocks("python") if "make_pipeline" in b)
    shown = _numbers(next(b for b in _blocks("text") if "pipeline:" in b))
    output = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with contextlib.redirect_stdout(output):
            exec(compile(example, str(README), "exec"), {})
    printed = _numbers(output.getvalue())
    assert printed.keys() == shown.keys() == {"noisy", "denoised", "pipeline"}
    for name, value in shown.items():
        assert printed[name] == pytest.approx(value, abs=TOLERANCE), name
    # The point of the example: denoising recovers what the noise took.
    assert printed["denoised"] > printed["noisy"]
    assert printed["pipeline"] > printed["noisy"]


def test_getting_started_shows_the_numbers_that_readme_shows():
    # The page runs the same code (tests/test_docs_pages.py) but cannot
    # compare printed floats within a tolerance; its figures are README's,
    # which the test above checks against a fresh run.
    page = README.parent / "docs" / "getting_started.rst"
    shown = _numbers(next(b for b in _blocks("text") if "pipeline:" in b))
    text = page.read_text()
    found = re.search(r"noisy: ([0-9.]+), denoised: ([0-9.]+)", text)
    pipeline = re.search(r"pipeline on noisy images: ([0-9.]+)", text)
    assert found and pipeline
    assert float(found[1]) == round(shown["noisy"], 2)
    assert float(found[2]) == round(shown["denoised"], 2)
    assert float(pipeline[1]) == round(shown["pipeline"], 2)
