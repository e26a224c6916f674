"""The study's data: where every data set was read from, ``--data-home``,
``--download``, and errors in the command's own terms."""

import http.client
import json
import warnings
from urllib.error import URLError

import numpy as np
import pytest
from sklearn.utils import Bunch

from denoisenet import BottleneckClassifier, DenoisingAutoencoder, datasets

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SMALL = {"MAP_SAMPLES": 100, "TRUSTWORTHINESS_SAMPLES": 80}
QUICK = ["study", "--max-iter", "1", "--quiet"]
# What the library's messages say and a command-line user cannot type.
PYTHON_WORDS = ["download=True", "download=False", "data_home"]


def idx(array):
    """The IDX encoding of a uint8 array."""
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


def write_idx_set(folder, n_train=60, n_test=50, parts=("train", "test")):
    """Small MNIST-format files (every class present) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for part in parts:
        n = n_train if part == "train" else n_test
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        images_name, labels_name = FILES[part]
        (folder / images_name).write_bytes(idx(images))
        (folder / labels_name).write_bytes(idx(labels))
    return folder


@pytest.fixture
def no_system_data(monkeypatch):
    """No Debian Fashion-MNIST, and fetch_openml fails the test if called."""

    def fetch_openml(*args, **kwargs):
        raise AssertionError("fetch_openml was called without --download")

    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIRS", [])
    monkeypatch.setattr("sklearn.datasets.fetch_openml", fetch_openml)


def results_of(out):
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


# -- --data-home ----------------------------------------------------------------


def test_data_home_that_does_not_exist_is_a_usage_error(tmp_path, study_cli):
    missing = tmp_path / "nonexistent"
    out = tmp_path / "out"
    argv = ["study", "--dataset", "mnist", "--data-home", str(missing)]
    status, _, stderr = study_cli.run([*argv, "--out", str(out)])
    assert status == 2
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (
        f"denoisenet study: error: argument --data-home: no such folder: "
        f"{str(missing)!r}"
    )
    assert not out.exists()


def test_data_home_that_is_a_file_is_a_usage_error(tmp_path, study_cli):
    (tmp_path / "file").write_text("")
    argv = ["study", "--data-home", str(tmp_path / "file")]
    status, _, stderr = study_cli.run([*argv, "--out", str(tmp_path / "out")])
    assert status == 2 and "no such folder" in stderr.splitlines()[-1]


# -- where every data set was read from -------------------------------------------


def test_the_report_names_the_idx_files_it_read(tmp_path, study_cli, no_system_data):
    home = write_idx_set(tmp_path / "home" / "mnist")
    out = tmp_path / "out"
    argv = [*QUICK, "--dataset", "mnist", "--data-home", str(tmp_path / "home")]
    status, _, stderr = study_cli.run([*argv, "--out", str(out)], **SMALL)
    assert status == 0, stderr
    sources = results_of(out)["data"]["sources"]
    assert sources == {
        "train": f"{FILES['train'][0]} and {FILES['train'][1]} in {home}",
        "test": f"{FILES['test'][0]} and {FILES['test'][1]} in {home}",
    }
    md = (out / "report.md").read_text(encoding="utf-8")
    assert f"Training images read from {sources['train']}" in md
    assert f"test images read from {sources['test']}" in md


def test_an_empty_data_home_is_not_named_as_the_source(
    tmp_path, study_cli, no_system_data, monkeypatch
):
    # The data came from Debian's folder, not from the (empty) --data-home.
    system = write_idx_set(tmp_path / "system")
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIRS", [system])
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    argv = [*QUICK, "--dataset", "fashion-mnist", "--data-home", str(empty)]
    status, _, stderr = study_cli.run([*argv, "--out", str(out)], **SMALL)
    assert status == 0, stderr
    sources = results_of(out)["data"]["sources"]
    for part in ("train", "test"):
        assert sources[part].endswith(f" in {system}")
    # --data-home is shown as the option it was, nowhere else.
    md = (out / "report.md").read_text(encoding="utf-8")
    assert [line for line in md.splitlines() if str(empty) in line] == [
        f"| --data-home | {empty} |"
    ]


def test_a_partial_data_home_is_an_error_not_a_mix(
    tmp_path, study_cli, no_system_data, monkeypatch
):
    # Complete files in Debian's folder, and all but one in --data-home: the
    # training set must not come from one folder and the test set from the
    # other.
    monkeypatch.setattr(
        datasets, "FASHION_MNIST_SYSTEM_DIRS", [write_idx_set(tmp_path / "system")]
    )
    home = write_idx_set(tmp_path / "home")
    (home / FILES["train"][1]).unlink()
    argv = ["study", "--dataset", "fashion-mnist", "--data-home", str(home)]
    status, _, stderr = study_cli.run([*argv, "--out", str(tmp_path / "out")])
    study_cli.assert_error(
        status, stderr, "cannot load fashion-mnist", str(home), FILES["train"][1]
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("download", [[], ["--download"]])
def test_the_study_needs_all_four_files_in_one_folder(
    tmp_path, study_cli, no_system_data, download
):
    # Only the test files: the training files are neither looked for
    # elsewhere nor downloaded.
    home = write_idx_set(tmp_path / "home", parts=("test",))
    argv = ["study", "--dataset", "mnist", *download, "--data-home", str(home)]
    status, _, stderr = study_cli.run([*argv, "--out", str(tmp_path / "out")])
    study_cli.assert_error(
        status, stderr, "cannot load mnist", str(home), *FILES["train"]
    )
    for word in PYTHON_WORDS:
        assert word not in stderr


def test_an_unreadable_data_home_subfolder_is_one_line(
    tmp_path, study_cli, no_system_data, deny_folder
):
    home = tmp_path / "home"
    locked = str(write_idx_set(home / "mnist"))
    deny_folder(locked)
    argv = ["study", "--dataset", "mnist", "--data-home", str(home)]
    status, _, stderr = study_cli.run([*argv, "--out", str(tmp_path / "out")])
    study_cli.assert_error(
        status, stderr, "cannot load mnist", "Permission denied", locked
    )


def test_files_without_images_are_one_line(tmp_path, study_cli, no_system_data):
    home = write_idx_set(tmp_path / "home", n_train=0)
    argv = ["study", "--dataset", "mnist", "--data-home", str(home)]
    status, _, stderr = study_cli.run([*argv, "--out", str(tmp_path / "out")])
    study_cli.assert_error(
        status, stderr, "cannot load mnist", FILES["train"][0], "no images"
    )


def test_digits_come_from_scikit_learn(tmp_path, study_cli):
    out = tmp_path / "out"
    argv = [*QUICK, "--n-train", "50", "--data-home", str(tmp_path)]
    status, _, stderr = study_cli.run([*argv, "--out", str(out)], **SMALL)
    assert status == 0, stderr
    sources = results_of(out)["data"]["sources"]
    assert sources["train"] == sources["test"]
    assert sources["train"].startswith("scikit-learn's bundled digits")
    assert "--data-home is not used for digits" in sources["train"]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "Training and test images read from scikit-learn's bundled digits" in md


# -- --download -----------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_without_download_missing_data_names_the_flags(
    tmp_path, study_cli, no_system_data, dataset
):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    argv = ["study", "--dataset", dataset, "--data-home", str(empty)]
    status, _, stderr = study_cli.run([*argv, "--out", str(out)])
    study_cli.assert_error(
        status, stderr, f"cannot load {dataset}", "not found", str(empty)
    )
    assert "--data-home" in stderr and "--download" in stderr
    for word in PYTHON_WORDS:
        assert word not in stderr
    assert not out.exists()


def test_without_data_home_mnist_says_where_it_looked(
    tmp_path, study_cli, no_system_data
):
    status, _, stderr = study_cli.run(
        ["study", "--dataset", "mnist", "--out", str(tmp_path / "o")]
    )
    study_cli.assert_error(status, stderr, "no --data-home was given", "--download")


def offline(*args, **kwargs):
    # What fetch_openml does without a network: warn, retry, give up.
    warnings.warn(
        "A network error occurred while downloading https://www.openml.org/. "
        "Retrying...",
        UserWarning,
        stacklevel=2,
    )
    raise URLError("[Errno -3] Temporary failure in name resolution")


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_download_without_network(tmp_path, study_cli, monkeypatch, dataset):
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIRS", [])
    monkeypatch.setattr("sklearn.datasets.fetch_openml", offline)
    argv = ["study", "--dataset", dataset, "--download", "--data-home", str(tmp_path)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, _, stderr = study_cli.run([*argv, "--out", str(tmp_path / "out")])
    assert [str(w.message) for w in caught] == []
    study_cli.assert_error(
        status, stderr, "download", "from OpenML failed", "name resolution"
    )
    assert "--data-home" in stderr
    for word in PYTHON_WORDS:
        assert word not in stderr


def test_download_cut_short(tmp_path, study_cli, monkeypatch):
    def cut_short(*args, **kwargs):
        raise http.client.IncompleteRead(b"partial", 1000)

    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIRS", [])
    monkeypatch.setattr("sklearn.datasets.fetch_openml", cut_short)
    argv = ["study", "--dataset", "mnist", "--download", "--data-home", str(tmp_path)]
    status, _, stderr = study_cli.run([*argv, "--out", str(tmp_path / "out")])
    study_cli.assert_error(
        status, stderr, "from OpenML failed", "IncompleteRead(7 bytes read"
    )


def test_download_into_an_unwritable_cache(tmp_path, study_cli, monkeypatch):
    cache = tmp_path / "openml"

    def unwritable(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(cache))

    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIRS", [])
    monkeypatch.setattr("sklearn.datasets.fetch_openml", unwritable)
    argv = ["study", "--dataset", "mnist", "--download", "--data-home", str(tmp_path)]
    status, _, stderr = study_cli.run([*argv, "--out", str(tmp_path / "out")])
    study_cli.assert_error(
        status, stderr, "OpenML's cache could not be written", str(cache)
    )
    assert "Pass --data-home a folder you can write to" in stderr
    assert "from OpenML failed" not in stderr


@pytest.fixture
def fake_openml(monkeypatch):
    """fetch_openml returns a small MNIST-shaped set; returns its calls."""
    calls = []
    n_train, n_test = 60, 50
    monkeypatch.setattr(datasets, "_N_TRAIN", n_train)
    monkeypatch.setattr(datasets, "_N_TEST", n_test)
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIRS", [])

    def fetch_openml(name, **kwargs):
        calls.append((name, kwargs))
        rng = np.random.default_rng(0)
        data = rng.integers(0, 256, size=(n_train + n_test, 784)).astype(float)
        target = (np.arange(n_train + n_test) % 10).astype(str)
        return Bunch(data=data, target=target)

    monkeypatch.setattr("sklearn.datasets.fetch_openml", fetch_openml)
    return calls


def test_download_reads_openml_and_says_so(tmp_path, study_cli, fake_openml):
    home, out = tmp_path / "home", tmp_path / "out"
    home.mkdir()
    argv = [*QUICK, "--dataset", "mnist", "--download", "--data-home", str(home)]
    status, _, stderr = study_cli.run([*argv, "--out", str(out)], **SMALL)
    assert status == 0, stderr
    assert [name for name, _ in fake_openml] == ["mnist_784", "mnist_784"]
    assert all(kwargs["data_home"] == str(home) for _, kwargs in fake_openml)
    source = f"OpenML's 'mnist_784', cached in {home / 'openml'}"
    assert results_of(out)["data"]["sources"] == {"train": source, "test": source}
    assert source in (out / "report.md").read_text(encoding="utf-8")


def test_local_files_win_over_download(tmp_path, study_cli, no_system_data):
    home = write_idx_set(tmp_path / "home")
    out = tmp_path / "out"
    argv = [*QUICK, "--dataset", "mnist", "--download", "--data-home", str(home)]
    status, _, stderr = study_cli.run([*argv, "--out", str(out)], **SMALL)
    assert status == 0, stderr
    assert results_of(out)["data"]["sources"]["train"].endswith(f" in {home}")


# -- --max-iter says what runs -----------------------------------------------------


def test_max_iter_help_states_what_runs_without_it(tmp_path, study_cli, fake_openml):
    status, help_text, _ = study_cli.run(["study", "--help"])
    help_text = " ".join(help_text.split())
    out = tmp_path / "out"
    argv = ["study", "--dataset", "mnist", "--download", "--quiet"]
    status, _, stderr = study_cli.run([*argv, "--out", str(out)], **SMALL)
    assert status == 0, stderr
    results = results_of(out)
    _, shallow, deep, bottleneck = (r["max_iter"] for r in results["classifiers"])
    dae = results["denoising"]["dae_max_iter"]
    assert bottleneck == BottleneckClassifier().max_iter
    assert dae == DenoisingAutoencoder().max_iter
    assert (
        f"default: {dae} for the DenoisingAutoencoder and {bottleneck} for the "
        "BottleneckClassifier" in help_text
    )
    assert f"on mnist and fashion-mnist {shallow} and {deep})" in help_text
