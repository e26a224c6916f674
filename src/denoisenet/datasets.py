"""Loaders for MNIST-format image data sets.

:func:`load_idx` reads one file in the IDX format that MNIST and Fashion-MNIST
are distributed in, raw or gzip-compressed. :func:`load_mnist` and
:func:`load_fashion_mnist` return a whole data set as ``(X, y)`` with ``X`` the
flattened 28x28 images scaled to [0, 1] in float32 and ``y`` the int64 labels.

Both look for the four standard IDX files locally first: in ``data_home``,
then in ``data_home/mnist`` or ``data_home/fashion-mnist``, then (Fashion-MNIST
only) in the directories of :data:`FASHION_MNIST_SYSTEM_DIRS`, where Debian's
package ``dataset-fashion-mnist`` installs them. A folder that holds only
some of the files needed is an error, not completed from elsewhere. Only when
nothing is found locally do they download the data set from OpenML with
:func:`sklearn.datasets.fetch_openml`.
"""

import contextlib
import gzip
import http.client
import importlib.util
import math
import os
import stat
import struct
import urllib.error
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sklearn import datasets as _skdatasets

__all__ = ["FASHION_MNIST_CLASSES", "load_fashion_mnist", "load_idx", "load_mnist"]

#: Fashion-MNIST's class names, in the order of its labels 0-9.
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

#: Directories searched for the Fashion-MNIST IDX files after ``data_home``.
FASHION_MNIST_SYSTEM_DIRS = [Path("/usr/share/datasets/fashion-mnist")]

_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"

# The most dimensions an array can have: 32 before numpy 2.0, 64 since.
_MAX_NDIM = 64 if int(np.__version__.split(".")[0]) >= 2 else 32

# Data is read, or inflated, this many bytes at a time.
_CHUNK_BYTES = 1 << 20

_REDOWNLOAD = "The file is damaged or incomplete: download it again."

_SUBSET_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_SUBSET_PARTS = {"train": ("train",), "test": ("test",), "all": ("train", "test")}

_N_TRAIN, _N_TEST = 60_000, 10_000
_IMAGE_SHAPE = (28, 28)
_N_CLASSES = 10


def load_idx(path):
    """Read an IDX file into a numpy array.

    IDX is the format MNIST and Fashion-MNIST are distributed in: a 4-byte
    magic number (two zero bytes, a type code and the number of dimensions),
    one big-endian uint32 per dimension, then the values in C order. Files
    compressed with gzip are recognised by their content, whatever their name.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read, raw or gzip-compressed.

    Returns
    -------
    array : ndarray
        The values, with the shape the header declares and the file's dtype
        (uint8, int8, int16, int32, float32 or float64) in native byte order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is not a regular file (a directory, a FIFO, a socket or a
        device such as ``/dev/zero``), or not a well-formed IDX file:
        truncated header or data, trailing bytes, a wrong magic number, an
        unknown type code, zero dimensions or more than numpy supports, a
        shape too large for an array, or a corrupt gzip stream. The message
        names the file.

    Notes
    -----
    The header is read first, and no more data is read or inflated than it
    promises, plus one byte to detect trailing data. A small gzip file that
    would inflate to gigabytes behind a header that promises a few bytes is
    refused after a few kilobytes of work, and memory grows only with data
    actually in the file.

    See Also
    --------
    load_mnist : MNIST as ``(X, y)``, read from IDX files or downloaded.
    load_fashion_mnist : Fashion-MNIST as ``(X, y)``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from denoisenet.datasets import load_idx
    >>> # Magic number (uint8, 2 dimensions), then the shape (2, 3) as uint32.
    >>> header = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "tiny-idx2-ubyte"
    ...     _ = path.write_bytes(header + bytes(range(6)))
    ...     array = load_idx(path)
    >>> array
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    path = Path(os.fspath(path))
    with _open_regular_file(path) as file:
        magic = file.read(2)
        file.seek(0)
        if magic != _GZIP_MAGIC:
            return _read_idx(file, path, os.fstat(file.fileno()).st_size)
        # Inflated a chunk at a time, never past what the header promises (plus
        # one byte to tell trailing data), so a small gzip that inflates to
        # gigabytes costs no more than its header admits.
        try:
            with gzip.GzipFile(fileobj=file, mode="rb") as stream:
                return _read_idx(stream, path, None)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise _idx_error(path, f"corrupt gzip stream ({exc})") from exc


def _idx_error(path, problem, advice=_REDOWNLOAD):
    return ValueError(f"Cannot read IDX file {path}: {problem}. {advice}")


@contextlib.contextmanager
def _open_regular_file(path):
    """Open ``path`` for reading in binary, refusing anything but a regular file.

    A FIFO would block ``open`` until a writer comes, and a device such as
    ``/dev/zero`` never ends, so the kind of file is checked before opening
    it, and again on the open descriptor in case the path was swapped between.
    """
    _check_regular(path, os.stat(path).st_mode)
    # Non-blocking, so that a FIFO swapped in after the check cannot hang.
    nonblocking = getattr(os, "O_NONBLOCK", 0)  # Windows has no FIFOs to fear
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | nonblocking)
    try:
        _check_regular(path, os.fstat(fd).st_mode)
        if nonblocking:
            # Back to ordinary reads, now that it is known to be a file.
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as file:
        yield file


def _check_regular(path, mode):
    if stat.S_ISREG(mode):
        return
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    kind = next((name for test, name in kinds if test(mode)), "not a file")
    raise _idx_error(
        path,
        f"it is {kind}, not a regular file",
        "Pass the path of an IDX file on disk (save data from a pipe or a "
        "device to a file first).",
    )


def _read_idx(stream, path, file_size):
    """Decode the IDX file that ``stream`` reads, the header first.

    ``file_size`` is the size of an uncompressed file, which lets a file that
    cannot match its header fail before its data is read; None for gzip.
    """
    shape, dtype, header_size = _read_header(stream, path)
    count = math.prod(shape)
    expected = count * dtype.itemsize
    # A size of 0 is what pseudo-files report, whatever they hold: read those.
    if file_size:
        _check_data_size(path, shape, dtype, expected, file_size - header_size)
    data = _read_at_most(stream, expected + 1)
    _check_data_size(path, shape, dtype, expected, len(data), exact=False)
    array = np.frombuffer(data, dtype, count)
    if not dtype.isnative:
        # In place rather than astype's copy: the bytes are ours, and being a
        # bytearray they also make the result writable.
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array.reshape(shape)


def _read_header(stream, path):
    """Read and check an IDX header: ``(shape, dtype, header_size)``."""
    head = stream.read(4)
    if len(head) < 4:
        raise _idx_error(
            path,
            f"truncated header: {len(head)} bytes, fewer than the 4 of "
            "the magic number",
        )
    _check_magic(head, path)
    ndim = head[3]
    header_size = 4 + 4 * ndim
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise _idx_error(
            path,
            f"truncated header: {ndim} dimensions need {header_size} header "
            f"bytes but the file has {4 + len(dims)}",
        )
    shape = struct.unpack(f">{ndim}I", dims)
    dtype = _IDX_TYPES[head[2]]
    # numpy refuses a shape whose nonzero dimensions overflow its sizes even
    # when another dimension is 0, as in a corrupt (0, 2**31, 2**31).
    nonzero = math.prod(n for n in shape if n)
    if nonzero * dtype.itemsize > np.iinfo(np.intp).max:
        raise _idx_error(path, f"shape {shape} is too large for an array")
    return shape, dtype, header_size


def _check_magic(head, path):
    """Check the 4 bytes of the magic number: zeros, type code, dimensions."""
    if head[0] != 0 or head[1] != 0:
        raise _idx_error(
            path,
            f"wrong magic number: it starts with 0x{head[0]:02x} "
            f"0x{head[1]:02x} instead of 0x00 0x00, so it is not an IDX file",
            "Check the path; decompress the file first if it is compressed with "
            "something other than gzip; otherwise download it again.",
        )
    type_code, ndim = head[2], head[3]
    if type_code not in _IDX_TYPES:
        known = ", ".join(f"0x{code:02x} ({t.name})" for code, t in _IDX_TYPES.items())
        raise _idx_error(
            path, f"unknown type code 0x{type_code:02x}; expected one of {known}"
        )
    if ndim == 0:
        raise _idx_error(path, "zero dimensions in the header, at least 1 expected")
    if ndim > _MAX_NDIM:
        raise _idx_error(
            path,
            f"{ndim} dimensions in the header, more than the {_MAX_NDIM} "
            f"that numpy {np.__version__} supports",
        )


def _check_data_size(path, shape, dtype, expected, actual, exact=True):
    """Raise unless ``actual`` data bytes are the ``expected`` ones.

    With ``exact`` false, ``actual`` only says that there is more than
    ``expected``, as when a gzip stream was inflated no further.
    """
    if actual == expected:
        return
    problem = "truncated data" if actual < expected else "trailing extra bytes"
    has = f"{actual}" if actual < expected or exact else "more"
    raise _idx_error(
        path,
        f"{problem}: shape {shape} of {dtype.name} needs {expected} data "
        f"bytes but the file has {has}",
    )


def _read_at_most(stream, n_bytes):
    """Up to ``n_bytes`` from ``stream``, fewer only at its end.

    A chunk at a time, so that memory grows with the data actually there,
    not with a size a header merely claims.
    """
    data = bytearray()
    while len(data) < n_bytes:
        chunk = stream.read(min(_CHUNK_BYTES, n_bytes - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def load_mnist(subset="train", *, data_home=None, download=True):
    """Load the MNIST handwritten digits as flattened images and labels.

    The four standard IDX files (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each plain or with ``.gz``) are looked for in
    ``data_home`` and then in ``data_home/mnist``. Only the files the subset
    needs must be there, all in one folder: a folder that holds some of them
    is an error, never completed from another folder or a download. If none
    are found and ``download`` is true, the data set is fetched from OpenML
    (``mnist_784``, version 1) into ``data_home``, keeping the standard
    split: the first 60,000 rows are the training set.

    Parameters
    ----------
    subset : {"train", "test", "all"}, default="train"
        The 60,000 training images, the 10,000 test images, or both (training
        images first).
    data_home : str or os.PathLike, default=None
        Directory holding the IDX files, also the OpenML cache. ``None`` looks
        for no local files and lets OpenML use scikit-learn's cache directory.
    download : bool, default=True
        Whether to download the data set from OpenML when no local files are
        found.

    Returns
    -------
    X : ndarray of shape (n_samples, 784), dtype float32
        The images, one row each, scaled to [0, 1].
    y : ndarray of shape (n_samples,), dtype int64
        The digits, 0 to 9.

    Raises
    ------
    ValueError
        If ``subset`` is not one of the allowed values, or the files are not
        MNIST-like (image and label counts differ, images are not 28x28,
        labels outside 0 to 9, no images at all).
    FileNotFoundError
        If no local files are found and ``download`` is false, or the download
        fails. The message lists where it looked and how to get the files.
        Also if a folder holds only some of the files the subset needs (or a
        broken symbolic link to one): the message names the folder and the
        missing files.
    PermissionError
        If a folder searched, or a file found, cannot be read; the message
        names it.

    See Also
    --------
    load_fashion_mnist : The same for Fashion-MNIST.
    load_idx : Read one IDX file.
    sklearn.datasets.fetch_openml : The download used when no files are found.

    Examples
    --------
    >>> from denoisenet.datasets import load_mnist
    >>> X, y = load_mnist("test")  # doctest: +SKIP
    >>> X.shape, X.dtype, y.shape, y.dtype  # doctest: +SKIP
    ((10000, 784), dtype('float32'), (10000,), dtype('int64'))
    """
    return _load_dataset(_MNIST, subset, data_home, download)


def load_fashion_mnist(subset="train", *, data_home=None, download=True):
    """Load Fashion-MNIST, Zalando's clothing images, as images and labels.

    The four standard IDX files (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each plain or with ``.gz``) are looked for in
    ``data_home``, then in ``data_home/fashion-mnist``, then in the system
    directories of ``FASHION_MNIST_SYSTEM_DIRS``
    (``/usr/share/datasets/fashion-mnist``, where Debian's package
    ``dataset-fashion-mnist`` installs them). Only the files the subset needs
    must be there, all in one folder: a folder that holds some of them is an
    error, never completed from another folder or a download. If none are
    found and ``download`` is true, the data set is fetched from OpenML
    (``Fashion-MNIST``, version 1) into ``data_home``, keeping the standard
    split: the first 60,000 rows are the training set.

    Parameters
    ----------
    subset : {"train", "test", "all"}, default="train"
        The 60,000 training images, the 10,000 test images, or both (training
        images first).
    data_home : str or os.PathLike, default=None
        Directory holding the IDX files, also the OpenML cache. ``None``
        searches the system directories only and lets OpenML use
        scikit-learn's cache directory.
    download : bool, default=True
        Whether to download the data set from OpenML when no local files are
        found.

    Returns
    -------
    X : ndarray of shape (n_samples, 784), dtype float32
        The images, one row each, scaled to [0, 1].
    y : ndarray of shape (n_samples,), dtype int64
        The classes, 0 to 9 (T-shirt/top, trouser, pullover, dress, coat,
        sandal, shirt, sneaker, bag, ankle boot).

    Raises
    ------
    ValueError
        If ``subset`` is not one of the allowed values, or the files are not
        MNIST-like (image and label counts differ, images are not 28x28,
        labels outside 0 to 9, no images at all).
    FileNotFoundError
        If no local files are found and ``download`` is false, or the download
        fails. The message lists where it looked and how to get the files.
        Also if a folder holds only some of the files the subset needs (or a
        broken symbolic link to one): the message names the folder and the
        missing files.
    PermissionError
        If a folder searched, or a file found, cannot be read; the message
        names it.

    See Also
    --------
    load_mnist : The same for MNIST digits.
    load_idx : Read one IDX file.
    sklearn.datasets.fetch_openml : The download used when no files are found.

    Examples
    --------
    >>> from denoisenet.datasets import load_fashion_mnist
    >>> X, y = load_fashion_mnist("test", download=False)  # doctest: +SKIP
    >>> X.shape, X.dtype, y.shape, y.dtype  # doctest: +SKIP
    ((10000, 784), dtype('float32'), (10000,), dtype('int64'))
    """
    return _load_dataset(_FASHION_MNIST, subset, data_home, download)


class _DatasetSpec(NamedTuple):
    """Where one MNIST-format data set lives and how to tell a user to get it."""

    title: str
    subfolder: str
    openml_name: str
    # A callable, so that the directories are read when loading, not at import.
    system_dirs: Callable[[], list]
    how_to_get: list


_MNIST = _DatasetSpec(
    "MNIST",
    "mnist",
    "mnist_784",
    lambda: [],
    [
        "download the four IDX files (train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz) into data_home",
        "or pass download=True on a machine with internet access to fetch "
        "'mnist_784' from OpenML",
    ],
)
_FASHION_MNIST = _DatasetSpec(
    "Fashion-MNIST",
    "fashion-mnist",
    "Fashion-MNIST",
    lambda: list(FASHION_MNIST_SYSTEM_DIRS),
    [
        "install Debian's package with `apt-get install dataset-fashion-mnist`",
        "or download the four IDX files (train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz) into data_home",
        "or pass download=True on a machine with internet access to fetch "
        "'Fashion-MNIST' from OpenML",
    ],
)


def _load_dataset(spec, subset, data_home, download):
    if not isinstance(subset, str) or subset not in _SUBSET_PARTS:
        raise ValueError(
            f"The 'subset' parameter must be one of {sorted(_SUBSET_PARTS)}; "
            f"got {subset!r}."
        )
    parts = _SUBSET_PARTS[subset]
    searched = _search_dirs(spec, data_home)
    for directory in searched:
        found = _find_files(directory, parts)
        if found is not None:
            return _read_idx_parts(found)
    if not download:
        raise FileNotFoundError(
            _not_found_message(spec, subset, searched, "download=False")
        )
    return _fetch_openml(spec, subset, data_home, searched)


def _search_dirs(spec, data_home):
    dirs = []
    if data_home is not None:
        data_home = Path(os.fspath(data_home))
        dirs += [data_home, data_home / spec.subfolder]
    return dirs + [Path(d) for d in spec.system_dirs()]


def _find_files(directory, parts):
    """The (images, labels) paths of every part, all in ``directory``, or None.

    None only when the folder holds none of the files, so that the next place
    is searched. A folder that holds some of them is an error naming the
    others: reading those from another folder, or downloading the data set,
    would mix data sets behind the user's back.
    """
    names = [name for part in parts for name in _SUBSET_FILES[part]]
    paths, problems = [], []
    for name in names:
        path = _find_file(directory, name)
        if path is None:
            problems.append(f"no {name} (plain or .gz)")
        elif not path.exists():
            problems.append(
                f"{path.name} is a broken symbolic link to {os.readlink(path)}"
            )
        paths.append(path)
    if all(path is None for path in paths):
        return None
    if problems:
        raise FileNotFoundError(
            f"Incomplete IDX files in {directory}: {'; '.join(problems)}. Put "
            "the missing files there: one data set is never read from several "
            "folders, nor completed by a download."
        )
    # The names are each part's images then labels, in turn.
    return list(zip(paths[::2], paths[1::2], strict=True))


def _find_file(directory, name):
    """``directory/name`` or ``directory/name.gz``, whichever is there, or None.

    Anything there counts, not only regular files: load_idx refuses a FIFO or
    a directory by name, and a broken link is reported as one, where skipping
    it would hide the cause. Errors other than absence, such as a folder that
    cannot be searched, propagate with the path.
    """
    # Plain first: it is what a user who unpacked the files wants read.
    for path in (directory / name, directory / f"{name}.gz"):
        try:
            os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        return path
    return None


def _read_idx_parts(found):
    X_parts, y_parts = [], []
    for images_path, labels_path in found:
        images, labels = load_idx(images_path), load_idx(labels_path)
        _check_images_labels(images, labels, f"{images_path} and {labels_path}")
        X_parts.append(_scale_images(images.reshape(len(images), -1)))
        y_parts.append(labels.astype(np.int64))
    if len(found) == 1:
        return X_parts[0], y_parts[0]
    return np.concatenate(X_parts), np.concatenate(y_parts)


def _check_images_labels(images, labels, source):
    problems = []
    # Scaling by 255 and casting labels to int64 are only right for uint8.
    for what, array in (("images", images), ("labels", labels)):
        if array.dtype != np.uint8:
            problems.append(f"{what} are {array.dtype}, not uint8")
    if images.ndim != 3 or images.shape[1:] != _IMAGE_SHAPE:
        problems.append(f"images have shape {images.shape}, not (n, 28, 28)")
    if labels.ndim != 1:
        problems.append(f"labels have shape {labels.shape}, not (n,)")
    elif len(images) != len(labels):
        problems.append(f"{len(images)} images but {len(labels)} labels")
    elif not len(labels):
        # A loader that returned an empty set would only fail later, in fit.
        problems.append("they hold no images (their headers declare 0)")
    if labels.size and (labels.min() < 0 or labels.max() >= _N_CLASSES):
        problems.append(
            f"labels range from {labels.min()} to {labels.max()}, not 0 to 9"
        )
    if problems:
        raise ValueError(
            f"{source} are not an MNIST-format data set: {'; '.join(problems)}. "
            "Check that the files belong together, or download them again."
        )


def _scale_images(pixels):
    # Dividing in float32 gives the same values whether pixels arrive as uint8
    # (IDX) or as float64 0-255 (OpenML).
    return np.asarray(pixels, dtype=np.float32) / np.float32(255)


def _not_found_message(spec, subset, searched, reason):
    needed = sorted(
        name for part in _SUBSET_PARTS[subset] for name in _SUBSET_FILES[part]
    )
    places = [f"  - {d}" for d in searched] or ["  - nowhere: no data_home was given"]
    return "\n".join(
        [
            f"{spec.title} {subset!r} files not found and {reason}. Looked for "
            f"{', '.join(needed)} (plain or .gz) in:",
            *places,
            "To get them:",
            *[f"  - {line}" for line in spec.how_to_get],
        ]
    )


def _openml_parser():
    # The pandas parser reads the 70,000-row dense ARFF several times faster,
    # but pandas is an optional dependency.
    return "pandas" if importlib.util.find_spec("pandas") else "liac-arff"


def _cache_not_written(exc):
    """Whether ``exc`` is about OpenML's cache on disk, not the network.

    A file's error names the file; urllib's HTTPError is an OSError too,
    whose filename is the URL.
    """
    return (
        isinstance(exc, OSError)
        and exc.filename is not None
        and not isinstance(exc, urllib.error.URLError)
    )


def _fetch_openml(spec, subset, data_home, searched):
    try:
        bunch = _skdatasets.fetch_openml(
            spec.openml_name,
            version=1,
            as_frame=False,
            parser=_openml_parser(),
            data_home=None if data_home is None else os.fspath(data_home),
        )
    # URLError, HTTPError, timeouts, a full disk; and a transfer cut short
    # (IncompleteRead), which http.client does not make an OSError.
    except (OSError, http.client.HTTPException) as exc:
        # A bare TimeoutError() says nothing: name its type.
        reason = str(exc) or type(exc).__name__
        if _cache_not_written(exc):
            # The cache's folder or file (unwritable, a full disk): no network
            # problem, and a retry would fail the same way.
            reason = (
                f"OpenML's cache could not be written ({reason}); give "
                "data_home a folder you can write to"
            )
        else:
            reason = f"the download from OpenML failed ({reason})"
        raise FileNotFoundError(
            _not_found_message(spec, subset, searched, reason)
        ) from exc
    data, target = np.asarray(bunch.data), np.asarray(bunch.target)
    n_total = _N_TRAIN + _N_TEST
    if data.shape != (n_total, 784) or target.shape != (n_total,):
        raise ValueError(
            f"OpenML's {spec.openml_name!r} has data of shape {data.shape} and "
            f"target of shape {target.shape}, not ({n_total}, 784) and "
            f"({n_total},). Clear the OpenML cache in data_home and retry."
        )
    rows = {
        "train": slice(None, _N_TRAIN),
        "test": slice(_N_TRAIN, None),
        "all": slice(None),
    }[subset]
    # OpenML labels are strings such as "7".
    y = target[rows].astype(np.int64)
    if y.min() < 0 or y.max() >= _N_CLASSES:
        raise ValueError(
            f"OpenML's {spec.openml_name!r} has labels from {y.min()} to "
            f"{y.max()}, not 0 to 9. Clear the OpenML cache in data_home and retry."
        )
    return _scale_images(data[rows]), y
