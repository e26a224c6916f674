"""The ``denoisenet`` command: the study's files, their agreement, its errors."""

import base64
import copy
import json
import os
import re
import subprocess
import sys
import warnings
from html.parser import HTMLParser
from urllib.error import URLError

import numpy as np
import pytest

import denoisenet
from denoisenet import datasets
from denoisenet.study import config as study_config
from denoisenet.study import data as study_data
from denoisenet.study import output

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ["samples.png", "denoising.png", "maps.png", "loss_curves.png"]
FILES = ["report.md", "report.html", "results.json", *FIGURES]


@pytest.fixture(scope="module")
def study(tmp_path_factory, study_cli):
    out = tmp_path_factory.mktemp("study")
    argv = ["study", "--n-train", "300", "--max-iter", "5", "--quiet"]
    # pytest records warnings instead of printing them: record them here to
    # see whether any would reach a user's terminal.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        status, stdout, stderr = study_cli.run([*argv, "--out", str(out)])
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return {
        "out": out,
        "status": status,
        "output": stdout + stderr,
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
        "results": results,
    }


# -- a successful study ------------------------------------------------------


def test_study_succeeds_quietly(study):
    assert study["status"] == 0
    assert study["output"] == ""
    assert study["warnings"] == []


def test_study_writes_every_file(study):
    for name in FILES:
        assert (study["out"] / name).stat().st_size > 0, name


@pytest.mark.parametrize("name", FIGURES)
def test_figures_are_valid_png(study, name):
    from matplotlib.image import imread

    path = study["out"] / name
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    height, width = image.shape[:2]
    assert 150 <= height <= 3000 and 300 <= width <= 3000
    # Not a blank canvas.
    assert image[..., :3].std() > 0.05


def test_results_hold_every_number(study):
    results = study["results"]
    data = results["data"]
    assert (data["dataset"], data["n_train"], data["n_test"]) == ("digits", 300, 450)
    assert data["n_train_available"] == 1347
    assert (data["n_features"], data["image_shape"], data["n_classes"]) == (
        64,
        [8, 8],
        10,
    )
    models = [r["model"] for r in results["classifiers"]]
    assert models == [
        "LogisticRegression(max_iter=1000)",
        "MLPClassifier(max_iter=5)",
        "MLPClassifier(hidden_layer_sizes=(500, 200, 50), max_iter=5)",
        "BottleneckClassifier(max_iter=5)",
    ]
    for record in results["classifiers"]:
        assert 0 <= record["accuracy"] <= 1 and record["fit_time_s"] >= 0
        assert isinstance(record["converged"], bool)
    # --max-iter reaches the MLPs and the bottleneck, not LogisticRegression.
    assert [r["max_iter"] for r in results["classifiers"]] == [1000, 5, 5, 5]
    noise = results["denoising"]
    for key in ("accuracy_clean", "accuracy_noisy", "accuracy_denoised"):
        assert 0 <= noise[key] <= 1
    assert noise["accuracy_clean"] == results["classifiers"][1]["accuracy"]
    assert 0 < noise["mse_denoised"] and 0 < noise["mse_noisy"] < 0.3**2
    assert noise["dae_max_iter"] == 5 and noise["dae_fit_time_s"] >= 0
    assert [m["map"] for m in results["maps"]] == [
        "t-SNE",
        "bottleneck without the neighbour term",
        "bottleneck",
    ]
    for record in results["maps"]:
        assert record["n_samples"] == 200
        assert record["trustworthiness_samples"] == 150
        assert 0 <= record["trustworthiness"] <= 1
        assert 0 <= record["knn_accuracy"] <= 1
        # The published protocol: every test image (the digits' 450, fewer
        # than 10,000), a 5-NN fitted on the embedded training images.
        assert record["published_test_points"] == 450
        assert 0.5 < record["published_trustworthiness"] <= 1
        assert 0.1 < record["published_knn_accuracy"] <= 1
    # t-SNE embeds the training images with the test images; the bottlenecks
    # map them with transform: all 300 in every case here (under 5,000).
    assert [m["published_train_points"] for m in results["maps"]] == [300] * 3
    tsne, plain, default = results["maps"]
    assert "neighbor_weight" not in tsne
    assert (plain["neighbor_weight"], default["neighbor_weight"]) == (0, 0.3)
    # The bottleneck without the term: step 1's settings, neighbor_weight=0,
    # fitted in the map step, with its fit on record.
    assert plain["method"] == (
        "BottleneckClassifier(max_iter=5, neighbor_weight=0).transform "
        "(fitted in this step)"
    )
    assert default["method"] == (
        "BottleneckClassifier(max_iter=5).transform (trained in step 1)"
    )
    assert 0.1 < plain["accuracy"] <= 1 and plain["fit_time_s"] > 0
    assert 1 <= plain["n_iter"] <= plain["max_iter"] == 5
    assert isinstance(plain["converged"], bool)
    # Two different networks: their maps differ.
    assert plain["trustworthiness"] != default["trustworthiness"]
    assert len(results["blog"]["rows"]) == 6 and not results["blog"]["comparable"]
    settings = results["settings"]
    assert (settings["noise_std"], settings["seed"], settings["max_iter"]) == (
        0.3,
        0,
        5,
    )
    assert results["versions"]["denoisenet"] == denoisenet.__version__
    assert results["total_time_s"] > 0


def test_architecture_conv_reaches_both_networks(tmp_path, study_cli):
    argv = ["study", "--n-train", "200", "--max-iter", "2", "--quiet"]
    status, _, stderr = study_cli.run(
        [*argv, "--architecture", "conv", "--out", str(tmp_path)]
    )
    assert status == 0, stderr
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert results["settings"]["architecture"] == "conv"
    assert results["denoising"]["architecture"] == "conv"
    name = "BottleneckClassifier(architecture='conv', max_iter=2)"
    assert results["classifiers"][3]["model"] == name
    assert results["maps"][2]["method"].startswith(name)
    plain = "BottleneckClassifier(architecture='conv', max_iter=2, neighbor_weight=0)"
    assert results["maps"][1]["method"].startswith(plain)
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "architecture='conv'" in report


def test_the_default_architecture_is_dense(study):
    assert study["results"]["settings"]["architecture"] == "dense"
    assert study["results"]["denoising"]["architecture"] == "dense"


def test_mse_of_the_noise_is_measured_against_clean_images(study):
    # Clipped Gaussian noise of std 0.3 on pixels in [0, 1]: the error is
    # below 0.3**2 and well above zero.
    assert 0.02 < study["results"]["denoising"]["mse_noisy"] < 0.09


class _Tables(HTMLParser):
    """The cells of every table of an HTML page, and every image source."""

    def __init__(self):
        super().__init__()
        self.rows, self.images, self._row, self._cell = [], [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr":
            self.rows.append(self._row)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def markdown_rows(text):
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = re.split(r"(?<!\\) \| ", line[2:-2])
            rows.append([cell.replace("\\|", "|") for cell in cells])
    return rows


def html_tables(study):
    parser = _Tables()
    parser.feed((study["out"] / "report.html").read_text(encoding="utf-8"))
    return parser


def expected_rows(results):
    """The table rows that results.json says the report must show."""

    def pct(x):
        return f"{100 * x:.1f}%"

    rows = [
        [
            r["model"],
            pct(r["accuracy"]),
            f"{r['fit_time_s']:.2f} s",
            str(r["n_iter"]),
            str(r["max_iter"]),
            "yes" if r["converged"] else "no",
        ]
        for r in results["classifiers"]
    ]
    noise = results["denoising"]
    rows += [
        ["clean", pct(noise["accuracy_clean"]), "0"],
        [
            "noisy (Gaussian, std 0.3, clipped to [0, 1])",
            pct(noise["accuracy_noisy"]),
            f"{noise['mse_noisy']:.4f}",
        ],
        ["denoised", pct(noise["accuracy_denoised"]), f"{noise['mse_denoised']:.4f}"],
    ]
    rows += [
        [
            f"{m['map']}: {m['method']}",
            f"{m['n_samples']:,}",
            f"{m['trustworthiness']:.3f}",
            pct(m["knn_accuracy"]),
            f"{m['published_trustworthiness']:.3f}",
            pct(m["published_knn_accuracy"]),
            f"{m['time_s']:.2f} s",
        ]
        for m in results["maps"]
    ]
    rows += [
        [r["what"], r["blog_mnist"], pct(r["measured"]), r["measured_with"]]
        for r in results["blog"]["rows"]
    ]
    return rows


def test_reports_show_the_numbers_of_results_json(study):
    results = study["results"]
    md = (study["out"] / "report.md").read_text(encoding="utf-8")
    for rows in (markdown_rows(md), html_tables(study).rows):
        for row in expected_rows(results):
            assert row in rows
    total = f"{results['total_time_s']:.2f} s"
    assert total in md
    assert total in (study["out"] / "report.html").read_text(encoding="utf-8")


def test_reports_take_a_data_folder_whose_name_is_not_utf8(study):
    # A folder named in bytes that are not UTF-8 reaches the report's
    # sources sentence as surrogates, which failed the whole run at its end.
    from denoisenet.study.report import report_files

    results = copy.deepcopy(study["results"])
    folder = os.fsdecode(b"/data/dh_\xff")
    results["data"]["sources"] = {"train": folder, "test": folder}
    images = {
        name: (study["out"] / name).read_bytes() for name in results["figures"].values()
    }
    files = report_files(results, images)
    assert "dh_\\udcff" in files["report.md"].decode("utf-8")
    assert "dh_\\udcff" in files["report.html"].decode("utf-8")
    assert json.loads(files["results.json"])["data"]["sources"]["train"] == folder


def test_reports_show_no_number_that_results_json_lacks(study):
    results = study["results"]
    known = {cell for row in expected_rows(results) for cell in row}
    known |= {str(v) for v in results["settings"].values()}
    known |= {str(v) for v in results["versions"].values()}
    number = re.compile(r"^[~<>]?[\d.,]+( s|%)?$")
    md = (study["out"] / "report.md").read_text(encoding="utf-8")
    for rows in (markdown_rows(md), html_tables(study).rows):
        cells = {cell for row in rows for cell in row if number.match(cell)}
        assert cells and cells <= known


def test_map_section_says_what_the_bottleneck_without_the_term_gave(study):
    results = study["results"]
    plain = results["maps"][1]
    said = (
        f"test accuracy {100 * plain['accuracy']:.1f}%, fit "
        f"{plain['fit_time_s']:.2f} s, {plain['n_iter']} epochs of at most 5"
    )
    md = (study["out"] / "report.md").read_text(encoding="utf-8")
    html = (study["out"] / "report.html").read_text(encoding="utf-8")
    section = md[md.index("## 3. ") : md.index("## 4. ")]
    assert said in section and said in html
    assert "neighbor_weight=0" in section and "neighbor_weight=0.3" in section


def test_blog_measured_column_is_the_measured_numbers(study):
    results = study["results"]
    measured = [r["measured"] for r in results["blog"]["rows"]]
    assert measured == [
        *(r["accuracy"] for r in results["classifiers"][:3]),
        results["denoising"]["accuracy_noisy"],
        results["denoising"]["accuracy_denoised"],
        results["classifiers"][3]["accuracy"],
    ]
    md = (study["out"] / "report.md").read_text(encoding="utf-8")
    assert "for MNIST; this run is on digits" in md


def test_every_section_is_numbered(study):
    md = (study["out"] / "report.md").read_text(encoding="utf-8")
    headings = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert len(headings) >= 6
    for number, heading in enumerate(headings, start=1):
        assert heading.startswith(f"{number}. "), heading


def evaluate(name):
    """The estimator that a model name of the report describes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    from denoisenet import BottleneckClassifier, DenoisingAutoencoder

    classes = [
        LogisticRegression,
        MLPClassifier,
        BottleneckClassifier,
        DenoisingAutoencoder,
    ]
    return eval(name, {cls.__name__: cls for cls in classes})


def test_model_names_say_every_parameter_that_was_changed(study):
    results = study["results"]
    for record in results["classifiers"]:
        assert evaluate(record["model"]).max_iter == record["max_iter"]
    noise = results["denoising"]
    denoiser = evaluate(noise["denoiser"])
    assert (denoiser.max_iter, denoiser.noise) == (noise["dae_max_iter"], 0.3)
    assert noise["classifier"] == results["classifiers"][1]["model"]
    # The blog's rows say that the blog used defaults, and what ran here.
    models = {r["model"] for r in results["classifiers"]} | {noise["denoiser"]}
    for row in results["blog"]["rows"]:
        assert row["measured_with"] in models
        assert "defaults" not in row["measured_with"]


def test_html_is_self_contained(study):
    page = (study["out"] / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<style>" in page
    assert not re.search(r"(?:src|href)=\"(?!data:)", page)
    sources = html_tables(study).images
    assert len(sources) == len(FIGURES)
    for source in sources:
        prefix = "data:image/png;base64,"
        assert source.startswith(prefix)
        assert base64.b64decode(source[len(prefix) :])[:8] == PNG_SIGNATURE


def test_markdown_links_every_figure(study):
    md = (study["out"] / "report.md").read_text(encoding="utf-8")
    for name in FIGURES:
        assert f"]({name})" in md


def test_default_run_prints_progress(tmp_path, study_cli):
    argv = ["study", "--n-train", "50", "--max-iter", "1", "--out", str(tmp_path)]
    status, stdout, stderr = study_cli.run(argv, MAP_SAMPLES=100)
    assert status == 0 and stdout == ""
    lines = stderr.splitlines()
    for step in ("[1/4]", "[2/4]", "[3/4]", "[4/4]"):
        assert any(line.startswith(step) for line in lines), step
    # The map step logs the fit of the bottleneck without the neighbour term,
    # and then the three maps.
    assert any(
        line.startswith("[3/4] BottleneckClassifier(max_iter=1, neighbor_weight=0)")
        and "test accuracy" in line
        for line in lines
    )
    for name in ("t-SNE", "bottleneck without the neighbour term", "bottleneck"):
        assert any(line.startswith(f"[3/4] {name}: trustworthiness") for line in lines)
    assert "Traceback" not in stderr
    assert json.loads((tmp_path / "results.json").read_text())["data"]["n_train"] == 50
    # One epoch converges nothing; every model's line says so, the
    # auto-encoder's too.
    (dae,) = [line for line in lines if line.startswith("[2/4] DenoisingAutoencoder")]
    assert "(not converged)" in dae


@pytest.mark.parametrize("error", [BrokenPipeError, ValueError])
def test_a_stderr_that_takes_no_more_lines_does_not_stop_the_study(
    tmp_path, monkeypatch, error
):
    # 2>&1 | head -1, or 2>&-: the first progress line that could not be
    # written ended the study (rc 1, no report, no message).
    from denoisenet import cli
    from denoisenet.study import experiments

    class Broken:
        def write(self, text):
            raise error("stderr is gone")

        def flush(self):
            raise error("stderr is gone")

    monkeypatch.setattr(experiments, "MAP_SAMPLES", 100)
    monkeypatch.setattr(cli.sys, "stderr", Broken())
    argv = ["study", "--n-train", "50", "--max-iter", "1", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    assert (tmp_path / "report.md").exists()


def _quick_study_process(out, env):
    """A quick quiet study in a process of its own, with environment ``env``."""
    argv = ["study", "--n-train", "50", "--max-iter", "1", "--quiet"]
    return subprocess.run(
        [sys.executable, "-m", "denoisenet", *argv, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )


def test_an_invalid_mplbackend_is_one_line(tmp_path):
    result = _quick_study_process(tmp_path / "o", {**os.environ, "MPLBACKEND": "bogus"})
    assert result.returncode == 1
    assert result.stderr.startswith("denoisenet: error: matplotlib cannot start")
    assert "MPLBACKEND='bogus'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_markdown_shows_a_users_path_as_it_is(study):
    # A folder named <script>...</script> (or with * or a newline) went
    # into report.md raw: live HTML, emphasis, a table row cut in two.
    from denoisenet.study.report import render_markdown, report_blocks

    results = copy.deepcopy(study["results"])
    out = "runs/<script>alert(1)</script> *x* |\nnew"
    results["settings"]["out"] = out
    results["data"]["sources"] = {"train": out, "test": out}
    md = render_markdown(report_blocks(results))
    assert "<script>" not in md and "*x*" not in md
    escaped = r"runs/\<script\>alert(1)\</script\> \*x\* \|\nnew"
    assert f"| --out | {escaped} |" in md.splitlines()
    assert f"read from {escaped}." in md


# -- the command line --------------------------------------------------------


def test_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "denoisenet", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0
    assert "study" in result.stdout and result.stderr == ""


_IMPORTS = """
import sys
from denoisenet.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print(sorted(m for m in ("torch", "sklearn") if m in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("argv", "loaded"),
    [
        (["--help"], "[]"),
        (["--version"], "[]"),
        (["study", "--help"], "['sklearn', 'torch']"),
    ],
)
def test_help_and_version_load_no_torch(argv, loaded):
    # They took about 2.5 s, most of it importing torch and scikit-learn;
    # the study's help reads the estimators' defaults, which needs them.
    result = subprocess.run(
        [sys.executable, "-c", _IMPORTS.format(argv=argv)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == loaded


def test_the_package_imports_its_estimators_on_first_use():
    code = (
        "import sys, denoisenet\n"
        "print('torch' in sys.modules)\n"
        # A submodule is an attribute, as after an eager import.
        "print(denoisenet.callbacks.Checkpoint.__name__)\n"
        "from denoisenet import *\n"
        "print(DenoisingAutoencoder.__module__, 'torch' in sys.modules)\n"
        "print(sorted(set(denoisenet.__all__) - set(dir(denoisenet))))\n"
        "try:\n"
        "    denoisenet.DenoisingAutoencoderr\n"
        "except AttributeError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "False",
        "Checkpoint",
        "denoisenet.autoencoder True",
        "[]",
        "module 'denoisenet' has no attribute 'DenoisingAutoencoderr'",
    ]


def test_version(study_cli):
    status, stdout, _ = study_cli.run(["--version"])
    assert status == 0
    assert stdout.strip() == f"denoisenet {denoisenet.__version__}"


def test_no_command_prints_usage(study_cli):
    status, stdout, _ = study_cli.run([])
    assert status == 0 and stdout.startswith("usage: denoisenet")


def test_study_help_lists_every_option(study_cli):
    status, stdout, _ = study_cli.run(["study", "--help"])
    assert status == 0
    for option in (
        "--dataset",
        "--data-home",
        "--noise-std",
        "--n-train",
        "--max-iter",
        "--architecture",
        "--seed",
        "--out",
        "--quiet",
    ):
        assert option in stdout


# -- errors a user can hit ---------------------------------------------------


def assert_usage_error(status, stderr, *words):
    assert status == 2
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and stderr.splitlines()[-1] == errors[0]
    assert errors[0].startswith("denoisenet study: error:")
    for word in words:
        assert word in errors[0]


def test_unknown_dataset(tmp_path, study_cli):
    status, _, stderr = study_cli.run(
        ["study", "--dataset", "cifar10", "--out", str(tmp_path)]
    )
    assert_usage_error(status, stderr, "--dataset", "cifar10")


@pytest.mark.parametrize(
    "option, value",
    [
        ("--noise-std", "-0.1"),
        ("--noise-std", "nan"),
        ("--noise-std", "lots"),
        ("--n-train", "0"),
        ("--n-train", "-5"),
        ("--n-train", "1.5"),
        ("--max-iter", "0"),
        ("--seed", "-1"),
        ("--architecture", "cnn"),
    ],
)
def test_bad_option_values(tmp_path, option, value, study_cli):
    status, _, stderr = study_cli.run(["study", option, value, "--out", str(tmp_path)])
    assert_usage_error(status, stderr, option, value)
    assert not any(tmp_path.iterdir())


@pytest.fixture
def no_data_no_network(monkeypatch):
    def offline(*args, **kwargs):
        # What fetch_openml does without a network: warn, retry, give up.
        warnings.warn(
            "A network error occurred while downloading https://www.openml.org/"
            "api/v1/json/data/list/data_name/mnist_784. Retrying...",
            UserWarning,
            stacklevel=2,
        )
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIRS", [])
    # The loaders call fetch_openml through the sklearn.datasets module.
    monkeypatch.setattr("sklearn.datasets.fetch_openml", offline)


@pytest.mark.parametrize("dataset", ["fashion-mnist", "mnist"])
def test_no_data_and_no_network(tmp_path, no_data_no_network, dataset, study_cli):
    empty = tmp_path / "data"
    empty.mkdir()
    argv = ["study", "--dataset", dataset, "--data-home", str(empty)]
    # pytest records warnings instead of printing them: record them here to
    # see that none would reach stderr.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, _, stderr = study_cli.run([*argv, "--out", str(tmp_path / "out")])
    assert [str(w.message) for w in caught] == []
    study_cli.assert_error(
        status, stderr, f"cannot load {dataset}", "not found", str(empty)
    )
    # The run created --out, and removed it when it failed.
    assert not (tmp_path / "out").exists()


def test_out_below_a_file(tmp_path, study_cli):
    (tmp_path / "a-file").write_text("not a folder")
    status, _, stderr = study_cli.run(
        ["study", "--out", str(tmp_path / "a-file" / "x")]
    )
    study_cli.assert_error(status, stderr, "cannot write to --out")


def test_out_is_a_file(tmp_path, study_cli):
    (tmp_path / "a-file").write_text("not a folder")
    status, _, stderr = study_cli.run(["study", "--out", str(tmp_path / "a-file")])
    study_cli.assert_error(status, stderr, "cannot write to --out")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root may write into read-only folders",
)
def test_out_read_only(tmp_path, study_cli):
    tmp_path.chmod(0o555)
    try:
        status, _, stderr = study_cli.run(["study", "--out", str(tmp_path)])
    finally:
        tmp_path.chmod(0o755)
    study_cli.assert_error(status, stderr, "cannot write to --out")


def test_n_train_below_the_number_of_classes(tmp_path, study_cli):
    status, _, stderr = study_cli.run(
        ["study", "--n-train", "5", "--out", str(tmp_path)]
    )
    study_cli.assert_error(status, stderr, "--n-train 5", "classes")


def test_missing_matplotlib(tmp_path, monkeypatch, study_cli):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    status, _, stderr = study_cli.run(["study", "--out", str(tmp_path)])
    study_cli.assert_error(status, stderr, 'pip install "denoisenet[plot]"')


# -- helpers -----------------------------------------------------------------


@pytest.mark.parametrize("n", [10, 37, 100, 299])
def test_stratified_sample(n):
    y = np.repeat(np.arange(10), [50, 40, 30, 30, 30, 30, 30, 30, 20, 10])
    rows = study_data.stratified_sample(y, n, seed=0)
    assert len(rows) == n == len(np.unique(rows))
    expected = np.bincount(y) * n / len(y)
    assert np.all(np.abs(np.bincount(y[rows], minlength=10) - expected) < 1)


def test_one_line_folds_a_loader_message():
    message = "Not found. Looked in:\n  - /a\n  - /b\nTo get them:\n  - install it"
    assert study_data.one_line(message) == (
        "Not found. Looked in: /a; /b; To get them: install it"
    )


def test_limited_threads_restores_torch_threads():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with study_config.limited_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with study_config.limited_threads(None):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_out_not_writable(tmp_path, monkeypatch, study_cli):
    # A read-only folder, as a user who is not root sees it.
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(output.tempfile, "TemporaryFile", refuse)
    status, _, stderr = study_cli.run(["study", "--out", str(tmp_path)])
    study_cli.assert_error(status, stderr, "cannot write to --out", "Permission denied")


def test_quiet_stays_quiet_where_matplotlib_cannot_write_its_config(tmp_path):
    # A read-only HOME: matplotlib logged two warnings on stderr.
    env = {key: value for key, value in os.environ.items() if key != "MPLCONFIGDIR"}
    home = tmp_path / "home"
    home.mkdir()
    (home / ".config").write_text("a file where matplotlib wants a folder")
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    result = _quick_study_process(tmp_path / "o", env)
    assert result.returncode == 0
    assert result.stdout == "" and result.stderr == ""
