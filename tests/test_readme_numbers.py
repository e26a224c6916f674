"""README.md's study numbers come from ``benchmarks/readme_numbers.py``, and
match what ``denoisenet study`` measures today.

The last test runs the digits study once (about 30 s on two cores) and is
part of the normal suite on purpose: it is what keeps the README true.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import denoisenet

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "readme_numbers.py"


@pytest.fixture
def script(monkeypatch, tmp_path):
    """The script as a module, pointed at a README in ``tmp_path``."""
    spec = importlib.util.spec_from_file_location("readme_numbers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "README", tmp_path / "README.md")
    monkeypatch.setattr(module, "FIGURE", tmp_path / "maps.png")
    return module


def fake_results(clean=0.978, noisy=0.847, denoised=0.902, trust=0.903):
    return {
        "denoising": {
            "classifier": "MLPClassifier(max_iter=100)",
            "accuracy_clean": clean,
            "accuracy_noisy": noisy,
            "accuracy_denoised": denoised,
            "noise_std": 0.3,
        },
        "classifiers": [{}, {}, {}, {"accuracy": 0.927}],
        "maps": [
            {"map": "t-SNE", "trustworthiness": 0.985},
            {"map": "bottleneck without the neighbour term", "trustworthiness": 0.5},
            {"map": "bottleneck", "trustworthiness": trust},
        ],
        "total_time_s": 31.2,
        "maps_png": b"\x89PNG fake",
    }


def readme(script):
    return f"# title\n\ntext\n\n{script.BEGIN}\n{script.END}\n\nmore\n"


def test_write_fills_the_marked_block_only(script):
    script.README.write_text(readme(script))
    script.write(fake_results())
    text = script.README.read_text()
    assert text.startswith(f"# title\n\ntext\n\n{script.BEGIN}\n")
    assert text.endswith(f"{script.END}\n\nmore\n")
    assert "97.8%" in text and "84.7%" in text and "90.2%" in text
    # The maps by name: t-SNE's and the default bottleneck's, not the one
    # without the neighbour term.
    assert "0.985" in text and "0.903" in text and "0.500" not in text
    assert script.FIGURE.read_bytes() == b"\x89PNG fake"
    # Writing twice gives the same file.
    script.write(fake_results())
    assert script.README.read_text() == text


def test_check_agrees_within_the_tolerance_only(script, capsys):
    script.README.write_text(readme(script))
    script.write(fake_results())
    assert script.check(fake_results(noisy=0.847 + 0.014))
    assert not script.check(fake_results(noisy=0.847 + 0.016))
    assert not script.check(fake_results(trust=0.903 - 0.011))
    # The time differs in every run and is never compared.
    other_time = fake_results()
    other_time["total_time_s"] = 999.0
    assert script.check(other_time)
    assert "OFF" in capsys.readouterr().out


def test_check_fails_without_markers(script):
    script.README.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="lacks the markers"):
        script.check(fake_results())


def test_readme_numbers_match_a_fresh_run():
    env = dict(os.environ)
    # The denoisenet being tested, also in the child process.
    src = str(Path(denoisenet.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok") >= 6
