"""Tests for denoisenet.datasets: IDX parsing and the MNIST-format loaders."""

import contextlib
import gzip
import http.client
import os
import re
import socket
import tempfile
import threading
import tracemalloc
import urllib.error
from gzip import compress as gzip_compress
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.utils import Bunch

from denoisenet import datasets
from denoisenet.datasets import load_fashion_mnist, load_idx, load_mnist

TYPE_CODES = {
    np.dtype("uint8"): 0x08,
    np.dtype("int8"): 0x09,
    np.dtype("int16"): 0x0B,
    np.dtype("int32"): 0x0C,
    np.dtype("float32"): 0x0D,
    np.dtype("float64"): 0x0E,
}

IMAGE_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
LABEL_FILES = {"train": "train-labels-idx1-ubyte", "test": "t10k-labels-idx1-ubyte"}
LOADERS = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist}
SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array):
    """The uncompressed IDX encoding of ``array``."""
    array = np.asarray(array)
    header = bytes([0, 0, TYPE_CODES[array.dtype], array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, gzip=False):
    """Write ``array`` to ``path`` as an IDX file, gzip-compressed if asked."""
    content = idx_bytes(array)
    Path(path).write_bytes(gzip_compress(content) if gzip else content)
    return Path(path)


def write_fake_dataset(directory, n_train=50, n_test=20, gz=False, seed=0):
    """Write small MNIST-format IDX files; return the arrays written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for part, n in (("train", n_train), ("test", n_test)):
        if n is None:
            continue
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(directory / f"{IMAGE_FILES[part]}{suffix}", images, gzip=gz)
        write_idx(directory / f"{LABEL_FILES[part]}{suffix}", labels, gzip=gz)
        written[part] = (images, labels)
    return written


def expected_xy(images, labels):
    X = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
    return X, labels.astype(np.int64)


@pytest.fixture
def no_system_dirs(monkeypatch, tmp_path):
    """Point the system location at an empty directory, whatever is installed."""
    empty = tmp_path / "empty-system-dir"
    empty.mkdir()
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIRS", [empty])
    return empty


@pytest.fixture
def no_download(monkeypatch):
    """Fail the test if the loaders reach for OpenML."""

    def fake_fetch_openml(*args, **kwargs):
        raise AssertionError("fetch_openml must not be called")

    monkeypatch.setattr(datasets._skdatasets, "fetch_openml", fake_fetch_openml)


# --------------------------------------------------------------------- load_idx


@st.composite
def idx_arrays(draw):
    dtype = draw(st.sampled_from(list(TYPE_CODES)))
    shape = draw(
        st.one_of(
            hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
            # Up to the 32 dimensions that every supported numpy allows.
            hnp.array_shapes(min_dims=5, max_dims=32, min_side=1, max_side=1),
            st.lists(st.sampled_from([1, 2]), min_size=5, max_size=12).map(tuple),
        )
    )
    return draw(hnp.arrays(dtype, shape))


@settings(max_examples=60, deadline=None)
@given(array=idx_arrays(), compress=st.booleans())
def test_load_idx_round_trips(array, compress):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_idx(Path(tmp) / "data-idx", array, gzip=compress)
        result = load_idx(path)
    assert result.dtype == array.dtype
    assert result.dtype.isnative
    assert result.shape == array.shape
    np.testing.assert_array_equal(result, array)
    assert result.tobytes() == array.tobytes()  # exact, NaN payloads and -0.0 too
    result.flat[:1] = 0  # writable, not a view of the read-only file bytes


@settings(max_examples=40, deadline=None)
@given(array=idx_arrays(), data=st.data())
def test_load_idx_rejects_every_strict_prefix(array, data):
    content = idx_bytes(array)
    cut = data.draw(st.integers(0, len(content) - 1))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cut-idx"
        path.write_bytes(content[:cut])
        with pytest.raises(ValueError, match=r"truncated"):
            load_idx(path)


@settings(max_examples=40, deadline=None)
@given(
    array=idx_arrays(),
    extra=st.one_of(st.binary(min_size=1, max_size=16), st.integers(1, 70_000)),
    compress=st.booleans(),
)
def test_load_idx_rejects_any_trailing_data(array, extra, compress):
    # Trailing zeros up to beyond one read chunk, or a few arbitrary bytes.
    extra = bytes(extra) if isinstance(extra, int) else extra
    content = idx_bytes(array) + extra
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long-idx"
        path.write_bytes(gzip_compress(content) if compress else content)
        pattern = rf"IDX file {re.escape(str(path))}: trailing extra bytes"
        with pytest.raises(ValueError, match=pattern):
            load_idx(path)


def test_load_idx_accepts_str_and_detects_gzip_by_content(tmp_path):
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    # A gzip file without .gz, and a raw file with .gz: content decides.
    gz_no_suffix = write_idx(tmp_path / "a-idx2", array, gzip=True)
    raw_gz_suffix = write_idx(tmp_path / "b-idx2.gz", array, gzip=False)
    np.testing.assert_array_equal(load_idx(str(gz_no_suffix)), array)
    np.testing.assert_array_equal(load_idx(raw_gz_suffix), array)


def test_load_idx_reads_big_endian(tmp_path):
    path = tmp_path / "be-idx1"
    path.write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE]))
    np.testing.assert_array_equal(load_idx(path), [0x0102, -2])


VALID = idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "truncated header"),
        (b"\x00\x00\x08", "truncated header"),
        (VALID[:9], "truncated header"),
        (VALID[:-1], "truncated data"),
        (VALID + b"\x00", "trailing extra bytes"),
        (gzip.compress(VALID + b"\x00"), "trailing extra bytes"),
        (gzip.compress(VALID[:-1]), "truncated data"),
        (gzip.compress(VALID) + b"junk", "corrupt gzip stream"),
        (b"\x01\x00" + VALID[2:], "wrong magic number"),
        (b"PK\x03\x04" + VALID[4:], "wrong magic number"),
        (VALID[:2] + b"\x0a" + VALID[3:], "unknown type code 0x0a"),
        (VALID[:3] + b"\x00", "zero dimensions"),
        (gzip.compress(VALID)[:-10], "corrupt gzip stream"),
        (b"\x1f\x8b" + b"not really gzip" * 3, "corrupt gzip stream"),
    ],
    ids=[
        "empty",
        "short-magic",
        "short-shape",
        "short-data",
        "extra-bytes",
        "gzip-extra-bytes",
        "gzip-short-data",
        "junk-after-gzip",
        "wrong-magic",
        "zip-file",
        "unknown-type",
        "zero-dims",
        "truncated-gzip",
        "bad-gzip",
    ],
)
def test_load_idx_errors_name_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "broken-idx"
    path.write_bytes(content)
    pattern = rf"IDX file {re.escape(str(path))}: {problem}.*(again|decompress)"
    with pytest.raises(ValueError, match=pattern):
        load_idx(path)


@pytest.mark.parametrize("ndim", [33, 64, 65, 255])
def test_load_idx_refuses_more_dimensions_than_numpy_has(tmp_path, ndim):
    # All of size 1, so that only the count of dimensions is wrong: numpy
    # has at most 32 (64 since numpy 2) and the header's byte allows 255.
    content = bytes([0, 0, 0x08, ndim]) + (1).to_bytes(4, "big") * ndim + b"\x07"
    path = tmp_path / "many-dims-idx"
    path.write_bytes(content)
    try:
        array = load_idx(path)
    except ValueError as exc:
        assert str(path) in str(exc)
        assert f"{ndim} dimensions in the header" in str(exc)
        assert ndim > 32
    else:  # only numpy 2 and later reach 64 dimensions
        assert ndim <= 64 and int(np.__version__.split(".")[0]) >= 2
        assert array.shape == (1,) * ndim and array.item() == 7


def test_load_idx_reads_32_dimensions(tmp_path):
    array = np.arange(4, dtype=np.int16).reshape((1,) * 30 + (2, 2))
    np.testing.assert_array_equal(load_idx(write_idx(tmp_path / "x-idx", array)), array)


def _peak_traced_bytes(call):
    """The peak of memory that Python allocates during ``call()``."""
    tracemalloc.start()
    try:
        call()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def _raises_value_error(path, match):
    def call():
        with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: {match}"):
            load_idx(path)

    return call


def test_load_idx_stops_inflating_at_what_the_header_promises(tmp_path):
    # A gzip bomb in small: 64 KiB that inflate to 64 MiB behind a header
    # promising 6 bytes. Reading it whole took 4.4 GiB for a 2 MiB bomb.
    inflated = 64 * 2**20
    path = tmp_path / "bomb-idx2-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=9) as file:
        file.write(VALID)
        for _ in range(inflated // 2**20):
            file.write(bytes(2**20))
    assert path.stat().st_size < inflated // 100
    peak = _peak_traced_bytes(_raises_value_error(path, "trailing extra bytes"))
    assert peak < 2 * 2**20, f"{peak} bytes traced"


def test_load_idx_reads_no_more_than_the_header_promises(tmp_path):
    # 1 GiB, sparse on disk, behind a header promising 6 bytes.
    path = tmp_path / "long-idx2-ubyte"
    with open(path, "wb") as file:
        file.write(VALID)
        file.truncate(2**30)
    peak = _peak_traced_bytes(_raises_value_error(path, "trailing extra bytes"))
    assert peak < 2**20, f"{peak} bytes traced"


def test_load_idx_memory_follows_the_data_not_the_header(tmp_path):
    # A header promising 2 GiB in front of a gzip stream that holds 2 MiB:
    # memory grows with the data actually inflated, then the file is refused.
    header = bytes([0, 0, 0x08, 1]) + (2**31).to_bytes(4, "big")
    path = tmp_path / "short-idx1-ubyte.gz"
    path.write_bytes(gzip_compress(header + bytes(2 * 2**20)))
    peak = _peak_traced_bytes(_raises_value_error(path, "truncated data"))
    assert peak < 16 * 2**20, f"{peak} bytes traced"


def _error_in_thread(call, fifo, timeout=60):
    """The exception ``call()`` raises, failing the test if it hangs."""
    outcome = {}

    def target():
        try:
            call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        # Free a reader blocked on the FIFO: a writer that opens and closes.
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout)
        pytest.fail(f"still running after {timeout} s, on {fifo}")
    assert "error" in outcome, "no error raised"
    return outcome["error"]


def _load_in_thread(path):
    return _error_in_thread(lambda: load_idx(path), path)


def _make_fifo(path):
    os.mkfifo(path)


def _make_socket(path):
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))


def _make_symlink_to_fifo(path):
    os.mkfifo(path.with_name("the-fifo"))
    path.symlink_to(path.with_name("the-fifo"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and sockets")
@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (Path.mkdir, "a directory"),
        (_make_fifo, "a FIFO"),
        (_make_symlink_to_fifo, "a FIFO"),
        (_make_socket, "a socket"),
    ],
    ids=["directory", "fifo", "symlink-to-fifo", "socket"],
)
def test_load_idx_refuses_what_is_not_a_regular_file(make, kind):
    # A short folder of its own: a socket's path has at most ~100 bytes.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train-images-idx3-ubyte"
        make(path)
        error = _load_in_thread(path)
    assert isinstance(error, ValueError), repr(error)
    assert f"IDX file {path}: it is {kind}" in str(error)
    assert "not a regular file" in str(error)


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null")
def test_load_idx_refuses_a_device():
    # /dev/null rather than /dev/zero, which is refused the same way: were
    # that ever read, it would fill the memory rather than fail the test.
    error = _load_in_thread("/dev/null")
    assert isinstance(error, ValueError), repr(error)
    assert "IDX file /dev/null: it is a character device" in str(error)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.usefixtures("no_system_dirs", "no_download")
def test_loaders_refuse_a_fifo_in_place_of_a_file(tmp_path):
    write_fake_dataset(tmp_path, n_test=None)
    fifo = tmp_path / IMAGE_FILES["train"]
    fifo.unlink()
    os.mkfifo(fifo)
    error = _error_in_thread(
        lambda: load_mnist(data_home=tmp_path, download=False), fifo
    )
    assert isinstance(error, ValueError), repr(error)
    assert f"{fifo}: it is a FIFO" in str(error)


def test_load_idx_missing_file(tmp_path):
    path = tmp_path / "nowhere-idx3-ubyte"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        load_idx(path)


# -------------------------------------------------------- loaders on local files


@pytest.mark.usefixtures("no_system_dirs", "no_download")
@pytest.mark.parametrize("name", LOADERS)
@pytest.mark.parametrize("gz", [False, True])
def test_loaders_read_local_files(tmp_path, name, gz):
    written = write_fake_dataset(tmp_path, gz=gz)
    for subset in ("train", "test"):
        X, y = LOADERS[name](subset, data_home=tmp_path, download=False)
        X_expected, y_expected = expected_xy(*written[subset])
        assert X.shape == (len(X_expected), 784)
        assert X.dtype == np.float32
        assert y.dtype == np.int64
        assert 0 <= X.min() and X.max() <= 1
        np.testing.assert_array_equal(X, X_expected)
        np.testing.assert_array_equal(y, y_expected)


@pytest.mark.usefixtures("no_system_dirs", "no_download")
@pytest.mark.parametrize("name", LOADERS)
def test_subset_all_is_train_then_test(tmp_path, name):
    written = write_fake_dataset(tmp_path / name, n_train=30, n_test=12)
    X, y = LOADERS[name]("all", data_home=tmp_path, download=False)
    X_train, y_train = expected_xy(*written["train"])
    X_test, y_test = expected_xy(*written["test"])
    np.testing.assert_array_equal(X, np.concatenate([X_train, X_test]))
    np.testing.assert_array_equal(y, np.concatenate([y_train, y_test]))


@pytest.mark.usefixtures("no_system_dirs", "no_download")
@pytest.mark.parametrize("name", LOADERS)
def test_loaders_find_named_subfolder_only(tmp_path, name):
    write_fake_dataset(tmp_path / name, n_train=7)
    X, _ = LOADERS[name]("train", data_home=tmp_path, download=False)
    assert X.shape == (7, 784)
    other = "fashion-mnist" if name == "mnist" else "mnist"
    with pytest.raises(FileNotFoundError):
        LOADERS[other]("train", data_home=tmp_path, download=False)


@pytest.mark.usefixtures("no_system_dirs", "no_download")
def test_only_the_subsets_files_are_needed(tmp_path):
    write_fake_dataset(tmp_path, n_train=None, n_test=9)
    X, y = load_mnist("test", data_home=tmp_path, download=False)
    assert X.shape == (9, 784) and y.shape == (9,)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist("train", data_home=tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match="no train-images-idx3-ubyte"):
        load_mnist("all", data_home=tmp_path, download=False)


@pytest.mark.usefixtures("no_system_dirs", "no_download")
@pytest.mark.parametrize("name", LOADERS)
@pytest.mark.parametrize("missing", [IMAGE_FILES["train"], LABEL_FILES["train"]])
def test_a_partial_folder_is_an_error_not_a_download(tmp_path, name, missing):
    write_fake_dataset(tmp_path, n_test=None)
    (tmp_path / missing).unlink()
    # Complete files in the next place searched are not read either.
    write_fake_dataset(tmp_path / name, n_test=None)
    with pytest.raises(FileNotFoundError) as info:
        LOADERS[name]("train", data_home=tmp_path)
    message = str(info.value)
    assert f"no {missing} (plain or .gz)" in message
    assert f"in {tmp_path}:" in message


@pytest.mark.usefixtures("no_download")
def test_a_partial_data_home_does_not_fall_back_to_the_system_dir(
    tmp_path, monkeypatch
):
    system = tmp_path / "system"
    write_fake_dataset(system)
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIRS", [system])
    home = tmp_path / "home"
    write_fake_dataset(home, n_train=None)
    (home / LABEL_FILES["test"]).unlink()
    with pytest.raises(FileNotFoundError, match=LABEL_FILES["test"]):
        load_fashion_mnist("test", data_home=home)
    # "all" needs the training files too, which home lacks altogether.
    write_fake_dataset(home, n_train=None)
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist("all", data_home=home)
    for name in (IMAGE_FILES["train"], LABEL_FILES["train"]):
        assert f"no {name} (plain or .gz)" in str(info.value)


@pytest.mark.usefixtures("no_system_dirs", "no_download")
def test_a_dangling_symlink_is_an_error_not_a_missing_file(tmp_path):
    write_fake_dataset(tmp_path, n_test=None)
    link = tmp_path / IMAGE_FILES["train"]
    link.unlink()
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(FileNotFoundError) as info:
        load_mnist("train", data_home=tmp_path)
    assert f"{IMAGE_FILES['train']} is a broken symbolic link to " in str(info.value)
    assert str(tmp_path / "gone") in str(info.value)


@pytest.mark.usefixtures("no_system_dirs", "no_download")
def test_an_unreadable_subfolder_is_an_error_naming_it(tmp_path, deny_folder):
    write_fake_dataset(tmp_path / "mnist")
    deny_folder(tmp_path / "mnist")
    with pytest.raises(PermissionError, match=re.escape(str(tmp_path / "mnist"))):
        load_mnist("train", data_home=tmp_path)


@pytest.mark.usefixtures("no_download")
def test_fashion_mnist_system_dir_after_data_home(tmp_path, monkeypatch):
    system = tmp_path / "system"
    write_fake_dataset(system, n_train=5, seed=1)
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIRS", [system])
    X, _ = load_fashion_mnist("train", download=False)
    assert X.shape == (5, 784)
    home = tmp_path / "home"
    write_fake_dataset(home, n_train=8, seed=2)
    X, _ = load_fashion_mnist("train", data_home=home, download=False)
    assert X.shape == (8, 784)


@pytest.mark.usefixtures("no_system_dirs")
@pytest.mark.parametrize("subset", ["training", "TRAIN", "", None, 1])
@pytest.mark.parametrize("name", LOADERS)
def test_bad_subset(name, subset):
    with pytest.raises(ValueError, match=r"'subset'.*'all', 'test', 'train'"):
        LOADERS[name](subset, download=False)


@pytest.mark.usefixtures("no_system_dirs", "no_download")
@pytest.mark.parametrize(
    ("images", "labels", "problem"),
    [
        (np.zeros((5, 28, 28), np.uint8), np.zeros(4, np.uint8), "5 images but 4"),
        (np.zeros((5, 20, 20), np.uint8), np.zeros(5, np.uint8), r"shape \(5, 20"),
        (np.zeros((5, 784), np.uint8), np.zeros(5, np.uint8), r"shape \(5, 784\)"),
        (np.zeros((2, 28, 28), np.uint8), np.array([3, 10], np.uint8), "to 10"),
        (np.zeros((2, 28, 28), np.uint8), np.zeros((2, 1), np.uint8), "labels"),
        (np.zeros((2, 28, 28), np.float32), np.zeros(2, np.uint8), "float32"),
        (np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.int32), "int32"),
    ],
)
def test_mismatched_files_raise(tmp_path, images, labels, problem):
    write_idx(tmp_path / IMAGE_FILES["train"], images)
    write_idx(tmp_path / LABEL_FILES["train"], labels)
    pattern = rf"{re.escape(str(tmp_path / IMAGE_FILES['train']))}.*{problem}"
    with pytest.raises(ValueError, match=pattern):
        load_mnist("train", data_home=tmp_path, download=False)


@pytest.mark.usefixtures("no_system_dirs", "no_download")
@pytest.mark.parametrize("name", LOADERS)
def test_files_without_images_are_an_error(tmp_path, name):
    write_idx(tmp_path / IMAGE_FILES["test"], np.zeros((0, 28, 28), np.uint8))
    write_idx(tmp_path / LABEL_FILES["test"], np.zeros(0, np.uint8))
    # load_idx reads them as the empty arrays they are...
    assert load_idx(tmp_path / IMAGE_FILES["test"]).shape == (0, 28, 28)
    # ...but a data set without images is no data set.
    pattern = rf"{re.escape(str(tmp_path / IMAGE_FILES['test']))}.*hold no images"
    with pytest.raises(ValueError, match=pattern):
        LOADERS[name]("test", data_home=tmp_path)


@pytest.mark.usefixtures("no_download")
def test_nothing_found_lists_every_place(tmp_path, no_system_dirs):
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist("test", data_home=tmp_path, download=False)
    message = str(info.value)
    for place in (tmp_path, tmp_path / "fashion-mnist", no_system_dirs):
        assert f"- {place}\n" in message
    assert "t10k-images-idx3-ubyte" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "download=True" in message


@pytest.mark.usefixtures("no_download")
def test_mnist_nothing_found_without_data_home():
    with pytest.raises(FileNotFoundError, match="no data_home") as info:
        load_mnist(download=False)
    assert "into data_home" in str(info.value)
    assert "download=True" in str(info.value)


# ------------------------------------------------------------------ OpenML path


class FakeOpenML:
    """Stands in for fetch_openml: 70,000 uint8 rows, pixel 0 is row % 251."""

    def __init__(self):
        self.calls = []
        rows = np.arange(70_000)
        self.data = np.zeros((70_000, 784), dtype=np.uint8)
        self.data[:, 0] = rows % 251
        self.data[:, 1] = 255
        # OpenML gives labels as strings.
        self.target = (rows % 10).astype(str).astype(object)

    def __call__(self, name, **kwargs):
        self.calls.append((name, kwargs))
        return Bunch(data=self.data, target=self.target)


@pytest.fixture
def fake_openml(monkeypatch):
    fake = FakeOpenML()
    monkeypatch.setattr(datasets._skdatasets, "fetch_openml", fake)
    return fake


@pytest.mark.usefixtures("no_system_dirs")
@pytest.mark.parametrize(
    ("name", "openml_name"),
    [("mnist", "mnist_784"), ("fashion-mnist", "Fashion-MNIST")],
)
@pytest.mark.parametrize(
    ("subset", "first_row", "n_rows"),
    [("train", 0, 60_000), ("test", 60_000, 10_000), ("all", 0, 70_000)],
)
def test_download_from_openml(
    tmp_path, fake_openml, name, openml_name, subset, first_row, n_rows
):
    X, y = LOADERS[name](subset, data_home=tmp_path)
    ((called_name, kwargs),) = fake_openml.calls
    assert called_name == openml_name
    assert kwargs["version"] == 1
    assert kwargs["as_frame"] is False
    assert kwargs["parser"] in {"pandas", "liac-arff"}
    assert Path(kwargs["data_home"]) == tmp_path
    assert X.shape == (n_rows, 784) and X.dtype == np.float32
    assert y.shape == (n_rows,) and y.dtype == np.int64
    rows = np.arange(first_row, first_row + n_rows)
    np.testing.assert_array_equal(X[:, 0], (rows % 251).astype(np.float32) / 255)
    assert np.all(X[:, 1] == 1) and np.all(X[:, 2:] == 0)
    np.testing.assert_array_equal(y, rows % 10)


@pytest.mark.usefixtures("no_system_dirs")
def test_download_uses_sklearn_cache_without_data_home(fake_openml):
    load_mnist("test")
    assert fake_openml.calls[0][1]["data_home"] is None


@pytest.mark.usefixtures("no_system_dirs")
def test_local_files_and_openml_agree(tmp_path, fake_openml):
    images = fake_openml.data[60_000:].reshape(-1, 28, 28)
    labels = fake_openml.target[60_000:].astype(np.uint8)
    write_idx(tmp_path / IMAGE_FILES["test"], images)
    write_idx(tmp_path / LABEL_FILES["test"], labels)
    X_local, y_local = load_mnist("test", data_home=tmp_path)
    assert fake_openml.calls == []
    X_openml, y_openml = load_mnist("test", data_home=tmp_path / "elsewhere")
    np.testing.assert_array_equal(X_local, X_openml)
    np.testing.assert_array_equal(y_local, y_openml)


@pytest.mark.parametrize(
    "error",
    [
        urllib.error.URLError("no route"),
        # An OSError whose filename is the URL: no cache problem.
        urllib.error.HTTPError(
            "https://www.openml.org/data/v1/download/1", 503, "Unavailable", {}, None
        ),
        TimeoutError(),
        # A transfer cut short, which is no OSError.
        http.client.IncompleteRead(b"partial", 100),
    ],
)
def test_download_failure_explains(tmp_path, monkeypatch, no_system_dirs, error):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(datasets._skdatasets, "fetch_openml", fail)
    with pytest.raises(FileNotFoundError, match="download from OpenML failed") as info:
        load_fashion_mnist("train", data_home=tmp_path)
    assert info.value.__cause__ is error
    message = str(info.value)
    for place in (tmp_path, tmp_path / "fashion-mnist", no_system_dirs):
        assert f"- {place}\n" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "download the four IDX files" in message
    # Never an empty reason ("failed ()"), as a bare TimeoutError gave.
    assert "failed ()" not in message


@pytest.mark.usefixtures("no_system_dirs")
def test_unwritable_cache_is_not_called_a_download_failure(tmp_path, monkeypatch):
    # fetch_openml creates its cache folder first: a read-only HOME (no
    # data_home) or a full disk fails there, before any network.
    cache = tmp_path / "scikit_learn_data" / "openml"
    error = PermissionError(13, "Permission denied", str(cache))

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(datasets._skdatasets, "fetch_openml", fail)
    with pytest.raises(FileNotFoundError) as info:
        load_mnist("test")
    assert info.value.__cause__ is error
    message = str(info.value)
    assert "download from OpenML failed" not in message
    written = f"could not be written ([Errno 13] Permission denied: '{cache}')"
    assert f"OpenML's cache {written}" in message
    assert "give data_home a folder you can write to" in message


@pytest.mark.usefixtures("no_system_dirs")
def test_openml_result_of_wrong_shape(monkeypatch):
    bunch = Bunch(data=np.zeros((100, 784)), target=np.zeros(100).astype(str))
    monkeypatch.setattr(datasets._skdatasets, "fetch_openml", lambda *a, **k: bunch)
    with pytest.raises(ValueError, match=r"'mnist_784'.*\(100, 784\)"):
        load_mnist()


# --------------------------------------------------------------- real data set


@pytest.mark.skipif(
    not SYSTEM_FASHION_MNIST.is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
@pytest.mark.usefixtures("no_download")
@pytest.mark.parametrize(("subset", "n_per_class"), [("train", 6000), ("test", 1000)])
def test_installed_fashion_mnist(subset, n_per_class):
    X, y = load_fashion_mnist(subset, download=False)
    assert X.shape == (10 * n_per_class, 784)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 1
    np.testing.assert_array_equal(np.bincount(y), [n_per_class] * 10)
