"""The shared estimator base: random state, devices, the call of the loop.

The parameter checks live in :mod:`denoisenet._validation`; their names are
re-exported here.
"""

import contextlib
import copy
import inspect
import io
import math
import mmap
import numbers
import os
import pickle
import queue
import re
import reprlib
import threading
import time
import warnings
import weakref

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from denoisenet import _training, callbacks
from denoisenet._doclink import DocLinkMixin
from denoisenet._networks import ACTIVATIONS, bottleneck_index, init_parameters
from denoisenet._resources import (
    INFERENCE_COPIES,
    TRAINING_COPIES,
    check_network_fits,
)
from denoisenet._validation import (
    BOOL,
    COMMON_DOMAINS,
    RANDOM_STATE,
    Domain,
    _is_int,
    _is_layer_sizes,
    check_params,
    interval,
    one_of,
    outside_stacklevel,
)

__all__ = [
    "BOOL",
    "INPUT_DTYPES",
    "RANDOM_STATE",
    "Domain",
    "NeuralEstimatorBase",
    "NoiseGenerator",
    "as_tensor",
    "auto_threads",
    "check_params",
    "exact_kernels",
    "flush_denormals",
    "interval",
    "noise_generator",
    "one_of",
    "output_dtype",
    "outside_stacklevel",
    "resolve_device",
    "resolve_image_shape",
    "seed_generators",
    "torch_generator",
]


_FLOAT32_MAX = float(np.finfo(np.float32).max)

# The dtypes that the estimators take as they are; others become float32
# (the first). 8-bit images stay 8-bit and are scaled batch by batch.
INPUT_DTYPES = [np.float32, np.float64, np.uint8]

# Rows of 8-bit images that a pass over them (the range) reads at once.
_RANGE_CHUNK_BYTES = 64 * 2**20

#: Below this standard deviation (as a share of their range) training data
#: do not look like images to ``fit``, which warns (see ``_check_spread``).
LOW_SPREAD = 0.05
_SPREAD_ROWS = 2_000


def output_dtype(X):
    """float64 for float64 input, float32 for any other."""
    return np.float64 if X.dtype == np.float64 else np.float32


def _value_range(X):
    """The smallest and the largest value of ``X``, as Python numbers."""
    if X.dtype == np.uint8:
        return _uint8_range(X)
    return float(np.min(X)), float(np.max(X))


def _uint8_range(X):
    """Minimum and maximum of 8-bit ``X``, in one pass over chunks of rows.

    One pass rather than ``np.min`` and ``np.max``: on a memmap larger than
    the page cache each of those would read the file from disk.
    """
    step = max(1, _RANGE_CHUNK_BYTES // max(1, X.shape[1]))
    low, high = 255, 0
    for start in range(0, X.shape[0], step):
        chunk = X[start : start + step]
        low, high = min(low, int(chunk.min())), max(high, int(chunk.max()))
        if (low, high) == (0, 255):
            break  # the widest range that 8 bits can hold
    return float(low), float(high)


class _Uint8Scaling:
    """Scale batches of 8-bit images as ``_scaled_tensor`` scales arrays.

    float32 subtraction and division are exactly rounded, in torch as in
    numpy, so a batch scaled here is bit for bit the rows of the scaled
    whole array. A class rather than a closure, so that it pickles.
    """

    def __init__(self, low, span):
        self.low = float(np.float32(low))
        self.span = float(np.float32(span))

    def __call__(self, batch):
        return batch.to(torch.float32).sub_(self.low).div_(self.span)


def seed_generators(random_state, n=1, salt=0):
    """Draw ``n`` 63-bit seeds from ``random_state`` without global state.

    ``None`` draws fresh entropy from the operating system rather than from
    numpy's global ``RandomState``, so that fitting never changes the global
    random state that a user's own code depends on. An int gives the same
    seeds every time (``salt`` varies them deterministically, e.g. between
    successive ``partial_fit`` calls); a ``RandomState`` or ``Generator``
    instance advances.
    """
    if random_state is None:
        rng = np.random.default_rng()
        return [int(s) for s in rng.integers(0, 2**63 - 1, size=n)]
    if isinstance(random_state, np.random.RandomState):
        seeds = random_state.randint(0, 2**63 - 1, size=n, dtype=np.int64)
        return [int(s) for s in seeds]
    if isinstance(random_state, np.random.Generator):
        return [int(s) for s in random_state.integers(0, 2**63 - 1, size=n)]
    rng = np.random.default_rng([int(random_state), int(salt)])
    return [int(s) for s in rng.integers(0, 2**63 - 1, size=n)]


def _rng_state(random_state):
    """The state of a RandomState or Generator instance; None for others."""
    if isinstance(random_state, np.random.RandomState):
        return random_state.get_state()
    if isinstance(random_state, np.random.Generator):
        return random_state.bit_generator.state
    return None


def _set_rng_state(random_state, state):
    """Put back a state that :func:`_rng_state` returned."""
    if isinstance(random_state, np.random.RandomState):
        random_state.set_state(state)
    elif isinstance(random_state, np.random.Generator):
        random_state.bit_generator.state = state


def as_tensor(X):
    """A tensor sharing memory with the numpy array ``X``.

    torch warns about read-only arrays (read-only memmaps, for instance)
    because writes through the tensor would be undefined; callers of this
    helper never write to it. torch cannot share arrays with negative
    strides (``X[::-1]``), so those are copied.
    """
    if any(stride < 0 for stride in X.strides):
        # Not np.ascontiguousarray: it keeps the strides of an array with a
        # dimension of size 1, which numpy counts as contiguous.
        X = X.copy()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not")
        return torch.from_numpy(X)


def torch_generator(seed, device="cpu"):
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


class NoiseGenerator:
    """The random source of a fit's corruption on the CPU.

    numpy SFC64 bits (:mod:`denoisenet.noise` looks standard normals up
    from 16-bit indices and compares 32-bit integers for the uniform
    draws), seeded once: seeding SFC64 from a torch generator at every
    draw, as a bare torch generator needs, would add a seed sequence's
    hashing to the draw of every training batch.
    """

    __slots__ = ("bits",)

    def __init__(self, seed):
        self.bits = np.random.SFC64(seed)


def noise_generator(seed, device="cpu"):
    """The generator that a fit's corruption draws from, on ``device``."""
    if torch.device(device).type == "cpu":
        return NoiseGenerator(seed)
    return torch_generator(seed, device)


def resolve_device(device):
    """Turn the ``device`` parameter into an available ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:  # an index beyond what torch parses
        raise ValueError(
            f"device={str(device)!r} is not a valid device: {exc}"
        ) from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={str(device)!r} was requested, but this machine has no "
                "CUDA device that torch can use (torch.cuda.is_available() is "
                "False). Use device='cpu' or device='auto'."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={str(device)!r} was requested, but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist."
            )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            "device='mps' was requested, but torch.backends.mps.is_available() "
            "is False. Use device='cpu' or device='auto'."
        )
    return resolved


def layer_sizes(hidden_layer_sizes):
    """The ``hidden_layer_sizes`` parameter as a tuple of ints."""
    if isinstance(hidden_layer_sizes, numbers.Integral):
        return (int(hidden_layer_sizes),)
    return tuple(int(s) for s in hidden_layer_sizes)


def resolve_image_shape(image_shape, n_features, name):
    """The (height, width) of images with ``n_features`` pixels.

    ``None`` means square images; one side may be -1, which stands for
    whatever the other leaves (as in ``numpy.reshape``).
    """
    if image_shape is None:
        side = math.isqrt(n_features)
        if side * side != n_features:
            raise ValueError(
                f"{name}(architecture='conv') needs the shape of the images, but X "
                f"has {n_features} features, which is not a square number of "
                f"pixels. Pass image_shape=(height, width) with height * width == "
                f"{n_features}."
            )
        return (side, side)
    height, width = (int(s) for s in image_shape)
    if -1 in (height, width):
        known = height * width * -1
        if n_features % known:
            raise ValueError(
                f"image_shape={tuple(image_shape)!r} cannot hold the {n_features} "
                f"features of X: {n_features} is not a multiple of {known}."
            )
        height, width = (n_features // known if s == -1 else s for s in (height, width))
    if height * width != n_features:
        raise ValueError(
            f"image_shape={tuple(image_shape)!r} has {height * width} pixels, but X "
            f"has {n_features} features. Pass the (height, width) of the images."
        )
    return (height, width)


# batch_size='auto' of the denoising auto-encoder gives small data sets at
# least this many steps an epoch (in batches of no fewer than AUTO_BATCH_MIN
# rows).
AUTO_BATCH_STEPS = 40
AUTO_BATCH_MIN = 32


def auto_batch_size(n_samples, largest, steps=None):
    """``batch_size='auto'``: ``largest`` rows, fewer on small data.

    With ``steps``, ``n_samples // steps`` rows between 32 and ``largest``
    (never more than ``n_samples``): on small data sets (scikit-learn's
    1,797 digits) an epoch of a few large batches gives Adam too few steps,
    and smaller batches train the auto-encoder to denoise better.
    """
    rows = largest
    if steps is not None:
        rows = min(largest, max(AUTO_BATCH_MIN, n_samples // steps))
    return max(1, min(rows, n_samples))


# early_stopping='auto' holds out a validation set above this many samples
# (scikit-learn's HistGradientBoosting rule).
EARLY_STOPPING_MIN_SAMPLES = 10_000

# Network arguments that older fitted estimators did not store.
_NETWORK_DEFAULTS = {"architecture": "dense", "image_shape": None, "conv_channels": ()}


@contextlib.contextmanager
def exact_kernels(device):
    """Deterministic fp32 convolutions on CUDA; nothing changes elsewhere.

    cuDNN may pick non-deterministic or TF32 algorithms, which would break
    bit-identical refits and make ``transform`` less exact than the dense
    layers (whose matrix products torch runs in fp32 by default).
    """
    if device.type != "cuda":
        yield
        return
    with torch.backends.cudnn.flags(
        enabled=True, benchmark=False, deterministic=True, allow_tf32=False
    ):
        yield


_TINY = float(np.finfo(np.float32).tiny)


def _flushing_denormals():
    """Whether this thread's CPU flushes subnormal floats to zero now.

    torch can set the mode but not read it: a subnormal input of a
    one-element product (run by this thread) reads as zero when it is on.
    """
    return (
        float(torch.tensor(_TINY / 4, dtype=torch.float32, device="cpu") * 2.0) == 0.0
    )


@contextlib.contextmanager
def flush_denormals(device, start_workers=True):
    """Flush subnormal floats to zero on this thread's CPU while training.

    Adam's first moment of a weight whose gradient stays zero (a unit that
    never fires) shrinks by a tenth every step, and after some 800 steps it
    is subnormal; every operation on such numbers costs the CPU a slow
    assist, so that epochs grew slower and slower (1.8 s, then 4.4 s by the
    eighth epoch of the default network on Fashion-MNIST, one thread). The
    values are far too small to move a float32 weight. Only the calling
    thread's mode is set (torch's own threads keep theirs), and it is put
    back as it was.
    """
    if device.type != "cpu" or _flushing_denormals():
        yield
        return
    # Threads take on the mode of the thread that starts them, and torch's
    # OpenMP workers live on after the fit: started while the mode is on,
    # they would flush the user's own computations for good. A thread count
    # that follows the load starts its own (see _FollowedThreads.check), as
    # many as it takes: none for a tiny batch or on a busy machine.
    if start_workers:
        _start_openmp_workers(torch.get_num_threads())
    if not torch.set_flush_denormal(True):  # not x86 with SSE3, nor AArch64
        yield
        return
    _flush_local.on = True
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
        _flush_local.on = False


_flush_local = threading.local()  # .on: flush_denormals holds the mode on
# Elements of a product that torch splits over every one of its threads
# (ATen's grain is 32,768 elements a thread).
_ELEMENTS_PER_WORKER = 2**16


def _start_openmp_workers(threads):
    """Start ``threads`` OpenMP workers for this thread, flushing off.

    A parallel region on ``threads`` threads starts the workers that this
    thread's team lacks; OpenMP ends the surplus workers of a team when a
    smaller one runs, and starts new ones when a larger one runs again.
    With this thread's flush-to-zero mode on (:func:`flush_denormals`),
    new workers would take it on and keep it after the fit; so the mode is
    off while they start. Costs a product of ``threads`` x 65,536 floats.
    """
    if threads < 2:
        return
    flushing = getattr(_flush_local, "on", False)
    if flushing:
        torch.set_flush_denormal(False)
    try:
        torch.ones(threads * _ELEMENTS_PER_WORKER, device="cpu").mul_(2.0)
    finally:
        if flushing:
            torch.set_flush_denormal(True)


_budget_local = threading.local()
_budget_lock = threading.Lock()
_budget_openmp = []  # [controller or None], found on first use
_default_lock = threading.Lock()  # see _mkl_budget


def _openmp_controller():
    """threadpoolctl's controller of the OpenMP runtimes, or None.

    It sets a count for the calling thread only (``omp_set_num_threads``),
    unlike ``torch.set_num_threads``. None when torch's intra-op threads are
    not OpenMP's.
    """
    with _budget_lock:
        if not _budget_openmp:
            controller = None
            if "parallel backend: OpenMP" in torch.__config__.parallel_info():
                from threadpoolctl import ThreadpoolController

                controller = ThreadpoolController().select(user_api="openmp")
            _budget_openmp.append(controller)
        return _budget_openmp[0]


@contextlib.contextmanager
def thread_budget(threads=None):
    """Run torch's CPU kernels of this thread on ``threads`` threads.

    ``None`` uses one torch thread per worker thread, as joblib's processes
    do, and leaves the main thread alone. torch's intra-op thread count is
    per thread. In the threading backend of joblib (or any thread pool)
    every worker would otherwise start as many OpenMP threads as there are
    cores, and OpenMP's spin-waiting makes the oversubscribed workers many
    times slower than one worker. joblib's process workers already get
    ``OMP_NUM_THREADS=1`` worth of threads; this gives threads the same
    budget. An int sets that count, in any thread; a budget inside another
    one with ``threads=None`` changes nothing.

    ``torch.set_num_threads`` is not used: it also sets the process-wide
    count that every thread takes on at its first parallel call, so a thread
    that started using torch while a worker held the budget (the caller of
    a threaded grid search, say) would keep one thread for good. The limit
    is set on this thread's OpenMP runtimes alone, and each thread gets
    back exactly the count it had. Where torch runs no OpenMP, the budget
    changes nothing.
    """
    inside = getattr(_budget_local, "inside", False)
    if threads is None:
        if inside or threading.current_thread() is threading.main_thread():
            yield
            return
        threads = 1
    # A thread takes on the process-wide count at its first parallel torch
    # call; that call comes now, so that it cannot undo the limit below.
    torch.get_num_threads()
    controller = _openmp_controller()
    limit = (
        contextlib.nullcontext()
        if controller is None
        else controller.limit(limits=int(threads))
    )
    _budget_local.inside = True
    try:
        with (
            limit,
            contextlib.nullcontext() if controller is None else _mkl_budget(threads),
        ):
            yield
    finally:
        _budget_local.inside = inside


_MKL_THREADS = re.compile(r"mkl_get_max_threads\(\) : (\d+)")


def _mkl_threads():
    """MKL's thread count in this thread, or None where torch has no MKL."""
    found = _MKL_THREADS.search(torch.__config__.parallel_info())
    return None if found is None else int(found.group(1))


class _DefaultKeeper:
    """A thread that keeps torch's process-wide thread count for a while.

    It reads the count as it starts (a thread's first torch call takes it
    on), and sets it again at every :meth:`put_back`; the last call ends
    the thread. One thread serves a whole budget: starting one costs some
    80 us.
    """

    def __init__(self):
        self._requests = queue.SimpleQueue()
        self._replies = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._keep, daemon=True)
        self._thread.start()
        self._replies.get()

    def _keep(self):
        count = torch.get_num_threads()
        self._replies.put(None)
        last = False
        while not last:
            last = self._requests.get()
            torch.set_num_threads(count)
            self._replies.put(None)

    def put_back(self, last=False):
        self._requests.put(last)
        self._replies.get()
        if last:
            self._thread.join()


@contextlib.contextmanager
def _mkl_budget(threads):
    """MKL's matrix products of this thread on ``threads`` threads.

    MKL follows the OpenMP count that :func:`thread_budget` sets, unless it
    holds a count of its own for the thread: ``torch.set_num_threads`` sets
    one in the calling thread, and in every thread that starts torch after
    it (as does ``MKL_NUM_THREADS``). Then the limit reached torch's own
    kernels but not its products: after ``torch.set_num_threads(2)``, fits
    with one thread beside a busy process still ran their products on two
    (3 epochs on 5,000 images: 6.9 s instead of 0.43-0.46 s in
    ``benchmarks/bench_threads.py``). The only
    public setter, ``torch.set_num_threads``, also sets the process-wide
    count that threads take on at their first parallel call; a thread of
    its own puts that count back at once, so that other threads keep it.
    """
    mkl = _mkl_threads()
    if mkl is None or mkl == threads:
        yield
        return
    # The process-wide count is wrong only while the lock is held, and a
    # keeper reads it under the lock: two budgets that overlapped left
    # threads started afterwards one thread (the other budget's count).
    with _default_lock:
        keeper = _DefaultKeeper()
    try:
        with _default_lock:
            torch.set_num_threads(threads)
            keeper.put_back()
        yield
    finally:
        with _default_lock:
            torch.set_num_threads(mkl)
            keeper.put_back(last=True)


class _FollowedThreads:
    """A thread budget that moves to ``count()`` as the load changes.

    Entered for a fit; :meth:`check`, called between steps, moves the
    budget when ``count()`` changed. ``count()`` costs about a microsecond:
    it reuses the machine's load for ``BUSY_READING_SECONDS``.
    """

    def __init__(self, count):
        self.count = count
        self.held = contextlib.ExitStack()
        self.threads = None

    def __enter__(self):
        self.check()
        return self

    def __exit__(self, *exc):
        self.held.close()

    def check(self):
        threads = self.count()
        if threads != self.threads:
            self.held.close()
            self.held.enter_context(thread_budget(threads))
            if threads > (self.threads or 1):
                # Outside flush-to-zero (see flush_denormals).
                _start_openmp_workers(threads)
            self.threads = threads


# A batch whose rows times its widest layer stay below this is too little
# work for a second torch thread, which costs more in synchronisation than
# it gains: a few dozen rows of a narrow network. Measured again on an idle
# 2-core machine, the default networks gain from a second thread even on
# the 8x8 digits (33 rows x 256 units: 3 epochs of the auto-encoder 0.087 s
# on one thread, 0.077 s on two, the classifier 0.341 s and 0.268 s; 5,000
# Fashion-MNIST images, 125 x 784: 0.364 s and 0.274 s). The limit was
# 2**17 before, which kept both on one thread. See ``auto_threads``.
SMALL_WORK = 2**12


def _busy_cpus():
    """CPUs that other work keeps busy now, from Linux's run queue.

    The fourth field of ``/proc/loadavg`` counts the tasks runnable at this
    instant. Not counted: this thread, and this process's threads that
    Python did not start, such as torch's OpenMP workers, which spin-wait
    for a few milliseconds after every parallel region (a fit that started
    right after a ``transform``, as in a pipeline, saw them as a busy CPU
    and took one thread). Python threads of this process that are running
    (a second fit, say) count, as other processes do. The least of three
    readings, half a millisecond apart, leaves out tasks that only pass
    through. Unknown (not Linux) counts as none.
    """
    readings = []
    try:
        for attempt in range(3):
            if attempt:
                time.sleep(0.0005)
            readings.append(_runnable_tasks() - 1)  # not this thread
    except (OSError, ValueError, IndexError):
        return 0
    busy = min(readings)
    # This process's threads are read (once) only when others may be busy.
    if busy > 0:
        busy -= _runnable_helper_threads()
    return max(0, busy)


def _runnable_tasks():
    with open("/proc/loadavg", encoding="ascii") as f:
        return int(f.read().split()[3].split("/")[0])


def _runnable_helper_threads():
    """Runnable threads of this process that Python did not start.

    These are the thread pools of torch and the BLAS libraries (after a
    parallel region, spinning until they sleep); 0 where ``/proc`` cannot
    tell.
    """
    python = {thread.native_id for thread in threading.enumerate()}
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0
    count = 0
    for task in tasks:
        if not task.isdigit() or int(task) in python:
            continue
        try:
            with open(f"/proc/self/task/{task}/stat", encoding="ascii") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except (OSError, IndexError, UnicodeDecodeError):
            continue
        count += state == "R"
    return count


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def auto_threads(rows, widths, available=None):
    """The torch threads that ``n_threads='auto'`` gives a main-thread call.

    One thread for small work (``rows`` times the widest of ``widths``
    below ``SMALL_WORK``), where threads only add synchronisation; else
    torch's own count (``torch.get_num_threads()``), but no more than the
    CPUs that other processes leave idle: OpenMP threads that spin-wait
    against a busy process make training many times slower than one
    thread. ``available`` is torch's count to use instead of this thread's
    count now (which a budget may hold lower).
    """
    if available is None:
        available = torch.get_num_threads()
    if available <= 1 or rows * max(widths) < SMALL_WORK:
        return 1
    idle = _usable_cpus() - _recent_busy_cpus()
    return max(1, min(available, idle))


# The machine's load is read at most this often: a reading (three samples
# of the run queue, half a millisecond apart) takes 1-2 ms, which a
# predict call of a few rows (1-3 ms) would otherwise pay every time.
BUSY_READING_SECONDS = 0.25
_busy_reading = (-math.inf, 0)  # (time.monotonic() of the reading, busy CPUs)


def _recent_busy_cpus():
    """:func:`_busy_cpus`, read again when the last reading is too old."""
    global _busy_reading
    when, busy = _busy_reading
    if time.monotonic() - when > BUSY_READING_SECONDS:
        busy = _busy_cpus()
        _busy_reading = (time.monotonic(), busy)
    return busy


def _float32_weights(weights, targets):
    """float64 sample ``weights`` as float32 training weights, and their scale.

    The losses are weighted means, which weights scaled all alike leave as
    they are; scaled by the power of two that brings the largest into
    [1, 2), which changes no bit of a weighted mean, weights of any size
    (1e300, 1e-300) are finite and non-zero in float32, where the loss is
    summed (weights of 1e37 overflowed that sum, and the loss became NaN).
    Returns ``(tensor, scale)``: the float32 weights are the weights times
    ``scale`` (the L2 penalty, which counts the weight of the rows as
    scikit-learn's MLP does, divides it out). ``(None, 1.0)`` for None.
    """
    if weights is None:
        return None, 1.0
    _, exponent = np.frexp(weights.max())
    scaled = np.ldexp(weights, 1 - exponent).astype(np.float32)
    if targets is not None:
        labels = targets.cpu().numpy()
        if len(np.unique(labels[scaled > 0])) < 2:
            raise ValueError(
                "sample_weight (times class_weight) leaves fewer than 2 classes "
                "with a weight that float32, which training uses, can hold: "
                "weights below 1e-45 times the largest are zero there."
            )
    return torch.from_numpy(scaled), math.ldexp(1.0, 1 - int(exponent))


# The estimators whose fit or partial_fit is running, with the thread that
# runs it.
_fitting = weakref.WeakKeyDictionary()
_fitting_lock = threading.Lock()


@contextlib.contextmanager
def _one_fit_at_a_time(estimator):
    """Refuse a second fit of ``estimator`` while one runs in another thread.

    Two at once mixed their states: one failed in torch (its network built
    for the other's data), and its rollback then erased the other's
    finished fit. scikit-learn's estimators promise nothing for this; a
    clear error costs a set lookup.
    """
    with _fitting_lock:
        if estimator in _fitting:
            name = type(estimator).__name__
            if _fitting[estimator] == threading.get_ident():
                raise RuntimeError(
                    f"This {name} is being fitted already: code that runs "
                    "during its fit (a callback, say) called fit or "
                    "partial_fit on it. Fit a clone "
                    "(sklearn.base.clone(estimator)) instead."
                )
            raise RuntimeError(
                f"This {name} is already being fitted (fit or partial_fit) in "
                "another thread; two fits of one estimator at once would mix "
                "their states. Fit a clone in each thread "
                "(sklearn.base.clone(estimator))."
            )
        _fitting[estimator] = threading.get_ident()
    try:
        yield
    finally:
        with _fitting_lock:
            _fitting.pop(estimator, None)


#: Inference batches keep the widest dense layer's float32 rows within this
#: many bytes (512 rows up to 32,768 features) ...
INFERENCE_DENSE_BYTES = 64 * 2**20
#: ... and a convolutional layer's activations within this many (512 rows
#: of Fashion-MNIST's 784 pixels in 64 channels).
INFERENCE_CONV_BYTES = 256 * 2**20


def _without_unweighted_rows(data):
    """Leave rows of sample weight 0 out of training.

    A weight of 0 then means exactly what removing the row means, batch
    statistics (batch normalisation) and batch sizes included.
    """
    if data.weights is not None:
        keep = data.weights[data.indices].cpu() > 0
        if keep.any():
            data.indices = data.indices[keep]
    return data


def _fits_on_gpu(X, device):
    """Whether ``X`` takes at most a quarter of the GPU's free memory."""
    free, _ = torch.cuda.mem_get_info(device)
    return X.element_size() * X.nelement() <= free // 4


def _to_cpu(state):
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, dict):
        return {k: _to_cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_to_cpu(v) for v in state)
    return state


def _state_to_bytes(state):
    # Tensors are saved from the CPU, so that a model trained on a GPU
    # unpickles on a machine without one.
    buffer = io.BytesIO()
    torch.save(_to_cpu(state), buffer)
    return buffer.getvalue()


def _state_from_bytes(data):
    # weights_only=True: the bytes hold tensors and plain containers only,
    # so loading them never runs pickled code.
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


class NeuralEstimatorBase(DocLinkMixin, callbacks.CallbackSupportMixin, BaseEstimator):
    """What the auto-encoder and the classifier share.

    Subclasses set ``_network`` (a class of :mod:`denoisenet._networks`) and
    implement ``_prepare(X, y, sample_weight, classes, reuse, incremental)``,
    ``_network_kwargs()`` and ``_objective(seed, n_samples)`` (``seed``: of
    the validation set's corruption; ``n_samples``: the samples of a call to
    ``fit``, None in ``partial_fit``); everything
    else (checks, scaling, devices, seeds, the call of the training loop,
    rollback on failure, batched inference and pickling) lives here.
    """

    _network = None
    _parameter_count = None  # counts _network's parameters without building it
    _extra_domains: dict = {}
    # Parameters added after the first release, and the value a model saved
    # before then gets when it is loaded.
    _added_parameters: dict = {"n_threads": "auto"}
    _torch_outputs: dict = {}  # to_torch's outputs: classes of denoisenet.export
    _inference_batch_size = 512
    _auto_batch_size = 128
    # learning_rate_init='auto' by architecture, where the domain allows it.
    _auto_learning_rate: dict = {}
    _auto_batch_steps = AUTO_BATCH_STEPS

    # -- parameters -----------------------------------------------------

    def _check_params(self):
        check_params(self, {**COMMON_DOMAINS, **self._extra_domains})

    def _check_inference_params(self, names=("device", "n_threads")):
        """Check the parameters that inference reads, as fit checks all.

        ``set_params`` after fit can change them; inference must refuse a
        bad value as clearly as fit would, not pass it on to torch.
        """
        domains = {**COMMON_DOMAINS, **self._extra_domains}
        check_params(self, {name: domains[name] for name in names})

    def _threads(self, rows):
        """torch threads for batches of ``rows`` rows, or None.

        None leaves the count to ``thread_budget``: ``n_threads='auto'`` in
        a worker thread is one thread; in the main thread it is
        :func:`auto_threads`.
        """
        if self.n_threads != "auto":
            # More threads than CPUs only spin against each other, and an
            # absurd count (a million) crashed the process as OpenMP tried
            # to start them.
            return min(int(self.n_threads), _usable_cpus())
        if threading.current_thread() is not threading.main_thread():
            return None
        return auto_threads(rows, self._layer_widths())

    def _layer_widths(self):
        args = self._network_args
        return (args["n_features"], *args["hidden_layer_sizes"])

    def _inference_rows(self):
        """Rows of every inference batch: ``_inference_batch_size``, or fewer
        when rows are wide.

        A short call is padded to a whole batch (see :meth:`_infer`), so one
        row of a million pixels took memory for 512 of them (4 GB); the
        widest dense layer of a batch (the input, for wide images) is kept
        within :data:`INFERENCE_DENSE_BYTES`, and a convolutional layer's
        activations within :data:`INFERENCE_CONV_BYTES`. Fixed for a fitted
        model, so that a row's output does not depend on the call.
        """
        args = self._network_args
        rows = INFERENCE_DENSE_BYTES // (4 * max(self._layer_widths()))
        if args.get("architecture") == "conv":
            activations = args["n_features"] * max(args["conv_channels"])
            rows = min(rows, INFERENCE_CONV_BYTES // (4 * activations))
        return int(min(self._inference_batch_size, max(1, rows)))

    def _auto_threads(self, rows):
        """The thread count of a fit that follows the load, or None.

        ``n_threads='auto'`` in the main thread reads the machine's load
        again during the fit, between steps (at most every
        ``BUSY_READING_SECONDS``): a long fit that another job starts beside
        takes one thread within a quarter of a second instead of
        spin-waiting against that job on two, and takes the second one back
        when the job ends. Any other setting keeps the count of the whole
        fit (None).
        """
        main = threading.current_thread() is threading.main_thread()
        if self.n_threads != "auto" or not main:
            return None
        # torch's count outside the fit's budgets, which hold it lower.
        available = torch.get_num_threads()
        widths = self._layer_widths()
        return _FollowedThreads(lambda: auto_threads(rows, widths, available))

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return auto_batch_size(
                n_samples, self._auto_batch_size, self._auto_batch_steps
            )
        return max(1, min(int(self.batch_size), n_samples))

    # -- data -------------------------------------------------------------

    def _scaled_tensor(self, X):
        """float32 tensor of ``X`` scaled by the range learned in fit.

        Data already in [0, 1] as float32 is shared, not copied.
        """
        low, span = self.data_min_, self.data_range_
        if low == 0.0 and span == 1.0 and X.dtype == np.float32:
            return as_tensor(X)
        # Values beyond float32 become infinite here without a numpy warning:
        # fit checks the range first, and prediction names them when the
        # output is not finite.
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = np.subtract(X, low, dtype=np.float32)
            scaled /= np.float32(span)
        return torch.from_numpy(scaled)

    def _check_scaled_range(self, X):
        """Raise ValueError where the learned scaling takes X beyond float32.

        ``partial_fit`` and ``warm_start`` keep the range of the first fit;
        new data far outside it would become infinite in the float32
        scaling, and the loss NaN (or a neighbour search fail on it).
        """
        if X.size == 0:
            return

        def fits(low, high):
            # The scaling first casts X to float32, then scales.
            with np.errstate(over="ignore"):
                scaled = [(v - self.data_min_) / self.data_range_ for v in (low, high)]
            return max(abs(v) for v in (*scaled, low, high)) <= _FLOAT32_MAX

        # Any 8-bit pixel fits unless the first fit's range was tiny: no pass
        # over a memmap of them then.
        if X.dtype == np.uint8 and fits(0, 255):
            return
        low, high = _value_range(X)
        if not fits(low, high):
            raise ValueError(
                f"X has values from {low:g} to {high:g}, which the scaling "
                f"learned in the first fit ((X - {self.data_min_:g}) / "
                f"{self.data_range_:g}) takes beyond float32, which the network "
                "computes in; scale X like the data of the first fit."
            )

    def _learn_range(self, X):
        low, high = _value_range(X)
        span = high - low
        # The scaling runs in float32: values or a range beyond its largest
        # value would become infinite there, and the loss NaN.
        if not (np.isfinite(span) and max(-low, high, span) <= _FLOAT32_MAX):
            raise ValueError(
                f"The range of X ({low} to {high}) overflows float32, which the "
                "network computes in; rescale the data."
            )
        # Constant data (to float32) or one row has no spread to judge.
        varies = X.shape[0] > 1 and np.float32(span) > 0
        # Data already in [0, 1] keeps the identity scaling, so that a batch
        # of images without any white pixel is not stretched.
        if low >= 0.0 and high <= 1.0:
            low, span = 0.0, 1.0
        # A span that is 0 in float32 (1e-300, say) is constant data to the
        # network; dividing by it would give NaN.
        span = span if np.float32(span) > 0 else 1.0
        if varies:
            self._check_spread(X, low, span)
        return low, span

    def _check_spread(self, X, low, span):
        """Warn when the scaled data fill little of [0, 1].

        All features share one range, as pixels do. Data whose features were
        scaled one by one (a StandardScaler in front) have a range set by a
        few outliers, and most values then lie in a narrow band of it:
        training noise of the images' scale (std 0.1 to 0.3 of the range)
        swamps them, and changes of the loss fall below ``tol``, so that a
        fit "converges" to a constant output. Images have a spread of about
        0.3 to 0.4 (digits 0.38, Fashion-MNIST 0.35). Read on about 2,000
        evenly spaced rows.
        """
        rows = X[:: max(1, X.shape[0] // _SPREAD_ROWS)]
        # Summed in chunks of 16,384 values: no copy of the rows (a memmap's
        # or float32 data that training shares) in memory.
        chunk = max(1, 2**14 // max(1, X.shape[1]))
        total = squares = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for start in range(0, rows.shape[0], chunk):
                values = np.subtract(rows[start : start + chunk], low, dtype=np.float64)
                values /= span
                total += float(values.sum())
                squares += float(np.square(values, out=values).sum())
        count = rows.size
        mean = total / count
        spread = math.sqrt(max(0.0, squares / count - mean * mean))
        if spread >= LOW_SPREAD:
            return
        name = type(self).__name__
        if (low, span) == (0.0, 1.0):
            how = (
                f"{name} takes values in [0, 1] as they are, as it does pixels, "
                f"and X's have a standard deviation of {spread:.3g} there"
            )
            cause = "Images scaled twice (divided by 255 twice, say) cause this"
        else:
            how = (
                f"{name} scales every feature by the one range of X ({low:g} "
                f"to {low + span:g}), as it does pixels, and X's values then "
                f"have a standard deviation of {spread:.3g} of that range"
            )
            cause = "Per-feature scaling (a StandardScaler in front) causes this"
        warnings.warn(
            f"X fills little of its range: {how} (images: about 0.3), so that "
            f"training noise swamps them and training stops early. {cause}; "
            "pass images as they are, or scaled as a whole to [0, 1].",
            UserWarning,
            stacklevel=outside_stacklevel(),
        )

    # -- fitting ----------------------------------------------------------

    def _fit(self, X, y=None, *, incremental=False, sample_weight=None, classes=None):
        # In this frame, not a helper's: warnings count frames to name the
        # caller's line.
        with _one_fit_at_a_time(self):
            # Before the snapshot: a failed fit keeps what the callbacks'
            # teardown needs (scikit-learn >= 1.9's set_callbacks).
            max_epochs = 1 if incremental else self.max_iter
            # What a callback teardown that fails half-way leaves is undone
            # with this one.
            original = self.__dict__.copy()
            epochs = callbacks.EpochTasks(self, max_epochs, X, y, sample_weight)
            # A failed fit must leave the estimator as it was: validate_data and
            # the commit below write attributes, so they are rolled back together.
            before = self.__dict__.copy()
            # A RandomState or Generator given as random_state advances with
            # every fit: a failed one must not move it either.
            random_state = self.random_state
            rng_before = _rng_state(random_state)

            def roll_back(state):
                self.__dict__.clear()
                self.__dict__.update(state)
                _set_rng_state(random_state, rng_before)

            try:
                # A fit called inside the caller's torch.no_grad() or
                # inference_mode() still needs gradients, and weights that later
                # calls outside those blocks may update in place.
                with torch.inference_mode(False), torch.enable_grad(), thread_budget():
                    self._fit_unguarded(
                        X, y, incremental, sample_weight, classes, epoch_end=epochs
                    )
                epochs.finish()
            except BaseException:
                roll_back(before)
                try:
                    epochs.teardown()
                except Exception:
                    # The fit's own error is the one to report.
                    roll_back(original)
                raise
            # A callback whose teardown fails fails the fit: it is rolled
            # back like any other failure.
            try:
                epochs.teardown()
            except BaseException:
                roll_back(original)
                raise
            return self

    def _fit_unguarded(self, X, y, incremental, sample_weight, classes, epoch_end):
        self._check_params()
        device = resolve_device(self.device)
        reuse = (incremental or self.warm_start) and hasattr(self, "module_")
        X, targets, weights = self._prepare(
            X, y, sample_weight, classes, reuse, incremental
        )
        if not reuse:
            self.data_min_, self.data_range_ = self._learn_range(X)
            self._network_args = self._network_kwargs()
            self._check_network_fits(self._network_args, device, TRAINING_COPIES)
        else:
            self._check_same_network()
            self._check_scaled_range(X)
        salt = self.n_iter_ if reuse else 0
        init_seed, shuffle_seed, noise_seed, split_seed = seed_generators(
            self.random_state, 4, salt=salt
        )
        early_stopping = self._uses_early_stopping(X) and not incremental
        # The seed of the validation set's corruption (the auto-encoder's).
        validation_seed = noise_seed
        if reuse and early_stopping and _is_int(self.random_state):
            # The same validation set in every call, rows and corruption, as
            # the first call drew it (scikit-learn's MLP draws the same split
            # each time): validation scores, and the best of them that a
            # warm start carries over, are then comparable between calls.
            _, _, validation_seed, split_seed = seed_generators(self.random_state, 4)
        data = self._training_data(
            X,
            targets,
            weights,
            early_stopping,
            split_seed,
            device,
            reuse or incremental,
        )
        self._add_training_graph(data, split_seed)
        module = self._module(reuse, init_seed, device)
        batch_size = self._batch_size(len(data.indices))
        rows = self._penalty_rows(data)
        self._check_optimizer_scalars(rows)
        optimizer = self._optimizer(module, rows, reuse)
        history = self._history(reuse, early_stopping)
        schedule = self._schedule(batch_size, incremental, early_stopping)
        generators = (
            torch_generator(shuffle_seed),
            noise_generator(noise_seed, device),
        )
        # 'auto' in the main thread follows the load from step to step;
        # any other setting holds one count for the whole fit.
        threads = self._auto_threads(batch_size)
        whole_fit = (
            thread_budget(self._threads(batch_size))
            if threads is None
            else contextlib.nullcontext()
        )
        with (
            exact_kernels(device),
            whole_fit,
            flush_denormals(device, start_workers=threads is None),
        ):
            _training.train(
                module,
                optimizer,
                self._objective(validation_seed, None if incremental else X.shape[0]),
                data,
                schedule,
                history,
                generators,
                device,
                epoch_end=epoch_end,
                threads=threads,
            )
        # The last step's gradients are of no further use: the fitted model
        # holds its weights (and the optimiser's state) alone.
        optimizer.zero_grad(set_to_none=True)
        self._check_trained(module, optimizer, data, device, history)
        self._commit(module.eval(), optimizer, history)
        return self

    def _add_training_graph(self, data, seed):
        """Set ``data.neighbors`` when the objective trains on neighbour pairs."""

    def _uses_early_stopping(self, X):
        """``early_stopping``, with ``'auto'`` resolved for ``X``.

        ``'auto'`` holds out a validation set when there are more than
        :data:`EARLY_STOPPING_MIN_SAMPLES` samples, as scikit-learn's
        HistGradientBoosting estimators do: on large data the training loss
        keeps improving long after the held-out score has stopped.
        """
        if isinstance(self.early_stopping, str):
            return X.shape[0] > EARLY_STOPPING_MIN_SAMPLES
        return bool(self.early_stopping)

    def _optimizer(self, module, rows, reuse):
        """Adam over ``module``, carrying the stored moments when ``reuse``."""
        # float(alpha): torch's optimisers take no Fraction or other Reals.
        optimizer = _training.make_optimizer(
            module, self._learning_rate_init(), float(self.alpha), rows
        )
        if reuse:
            # Adam's moments carry over but its hyperparameters are today's,
            # so that set_params between fits takes effect; the moments are
            # copied because Adam updates them in place, and a failed fit
            # must leave the stored state as it was.
            optimizer.load_state_dict(
                {
                    "state": copy.deepcopy(self._optimizer_state["state"]),
                    "param_groups": optimizer.state_dict()["param_groups"],
                }
            )
        return optimizer

    def _schedule(self, batch_size, incremental, early_stopping):
        """The parameters that steer the training loop, for this call."""
        return _training.Schedule(
            batch_size=batch_size,
            max_epochs=1 if incremental else self.max_iter,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            shuffle=self.shuffle,
            early_stopping=early_stopping,
            verbose=self.verbose,
            warn_on_max_iter=not incremental,
            # partial_fit runs one epoch a call: there is no stall to act on.
            learning_rate="constant" if incremental else self.learning_rate,
            min_batch_rows=self._min_batch_rows(),
        )

    def _check_network_fits(self, network_args, device, copies, pickled=False):
        """Raise ValueError before allocating a network that cannot fit."""
        args = {**_NETWORK_DEFAULTS, **network_args}
        if pickled:
            check_network_fits(
                self._count_parameters(network_args),
                device,
                copies=copies,
                subject=f"The saved {type(self).__name__}'s network",
                advice=(
                    "The file may be damaged or tampered with; it cannot be "
                    "loaded on this machine."
                ),
            )
            return
        shown = f"hidden_layer_sizes={args['hidden_layer_sizes']!r}"
        advice = "Use smaller hidden_layer_sizes"
        if args["architecture"] == "conv":
            shown += f", conv_channels={args['conv_channels']!r}"
            shown += f", image_shape={args['image_shape']!r}"
            advice += " or conv_channels"
        check_network_fits(
            self._count_parameters(network_args),
            device,
            copies=copies,
            subject=(
                f"The network of {type(self).__name__}({shown}) on "
                f"{args['n_features']} features"
            ),
            advice=f"{advice}, or a device with more free memory.",
        )

    def _count_parameters(self, network_args):
        if self._parameter_count is not None:
            return self._parameter_count(**network_args)
        # A network without a counting function is counted on the meta
        # device, which allocates nothing (but overflows beyond int64).
        try:
            with torch.device("meta"):
                module = self._network(**network_args)
        except (RuntimeError, TypeError, OverflowError) as exc:
            raise ValueError(
                f"{type(self).__name__} cannot build a network of this size: "
                f"{network_args!r}."
            ) from exc
        return sum(p.numel() for p in module.parameters())

    def _check_trained(self, module, optimizer, data, device, history):
        """Raise NonFiniteLossError when training left an unusable network.

        The loss of a step is taken before the step, so the last steps of a
        call can leave non-finite weights (or weights so large that the
        output overflows) behind a finite loss curve. Committing them would
        replace a good model (``warm_start``, ``partial_fit``) with one that
        answers NaN; raising lets ``_fit`` keep the previous one.
        """
        tensors = list(module.parameters())
        for state in optimizer.state.values():
            tensors += [v for v in state.values() if torch.is_tensor(v)]
        finite = all(bool(torch.isfinite(t).all()) for t in tensors)
        if finite:
            # The output on a batch of training rows: what predict would see.
            rows = data.indices[: self._inference_rows()].to(data.X.device)
            module.eval()
            with torch.inference_mode(), exact_kernels(device):
                output = module(data.inputs(rows, device))
            finite = bool(torch.isfinite(output).all())
        if not finite:
            raise _training.NonFiniteLossError(
                f"Training diverged: after epoch {history.n_iter} the network's "
                "weights (or its output on the training data) are not finite. The "
                f"estimator is left as it was before this call. "
                f"{self._divergence_advice()}"
            )

    def _divergence_advice(self):
        """What a diverged fit asks the user to change.

        Besides the learning rate, the loss weights that are large enough to
        be the cause (above 1) are named with their values.
        """
        names = [
            f"{name} (it is {float(value):g})"
            for name, value in self._loss_weights().items()
            if value > 1
        ]
        return (
            f"Try a smaller {' or '.join([*names, 'learning_rate_init'])}, or "
            "check the data for extreme values."
        )

    def _loss_weights(self):
        """The parameters that weigh terms of the loss, by name."""
        return {"alpha": self.alpha}

    def _architecture_kwargs(self):
        """The network arguments that ``architecture`` decides."""
        if self.architecture == "dense":
            return dict(_NETWORK_DEFAULTS)
        return {
            "architecture": "conv",
            "image_shape": resolve_image_shape(
                self.image_shape, self.n_features_in_, type(self).__name__
            ),
            "conv_channels": layer_sizes(self.conv_channels),
        }

    def _min_batch_rows(self):
        """Fewest rows a training batch may have (2 for batch normalisation)."""
        return 2 if getattr(self, "batch_norm", False) else 1

    def _check_batch_norm_rows(self, n_samples):
        """Raise ValueError where batch normalisation would see one row."""
        if self._min_batch_rows() < 2:
            return
        name = type(self).__name__
        if self.batch_size == 1:
            raise ValueError(
                f"{name}(batch_norm=True) cannot train with batch_size=1: batch "
                "normalisation needs at least 2 rows in a batch. Set "
                "batch_size >= 2, or batch_norm=False."
            )
        if n_samples < 2:
            raise ValueError(
                f"{name}(batch_norm=True) cannot train on 1 sample: batch "
                "normalisation needs at least 2 rows in a call to fit or "
                "partial_fit. Pass more samples, or set batch_norm=False."
            )

    def _check_same_network(self):
        """Raise ValueError when warm_start or partial_fit meets a new network.

        Continuing to train means continuing with the same weights; a change
        of ``hidden_layer_sizes``, ``architecture`` and the like since the
        first fit cannot take effect without starting afresh.
        """
        wanted = self._network_kwargs()
        # A model saved before batch_norm was a network argument had none.
        built = {**_NETWORK_DEFAULTS, "batch_norm": False, **self._network_args}
        changed = [name for name, value in wanted.items() if built.get(name) != value]
        if "architecture" in changed:
            # The other network arguments follow from the architecture.
            changed = ["architecture"]
        if changed:
            raise ValueError(
                f"{', '.join(changed)} changed since the network was built ("
                + ", ".join(f"{n}={built.get(n)!r}, now {wanted[n]!r}" for n in changed)
                + "); warm_start and partial_fit keep training the same network. "
                "Set warm_start=False (or clone the estimator) to build a new one."
            )

    def _learning_rate_init(self):
        """``learning_rate_init`` as a float, with ``'auto'`` resolved."""
        if isinstance(self.learning_rate_init, str):
            return self._auto_learning_rate[self.architecture]
        # float(): torch's optimisers take no Fraction or other numbers.Real.
        return float(self.learning_rate_init)

    def _check_optimizer_scalars(self, rows):
        """Raise ValueError where torch would overflow Adam's float32 scalars.

        torch fails with a RuntimeError ("value cannot be converted to type
        float without overflow") when the weight decay ``alpha / rows`` or
        the first step's ``learning_rate_init / (1 - beta1)`` (ten times the
        rate) exceeds float32's largest value.
        """
        name = type(self).__name__
        if self._learning_rate_init() * 10 > _FLOAT32_MAX:
            raise ValueError(
                f"The 'learning_rate_init' parameter of {name} is too large for "
                f"float32 training. Got {self.learning_rate_init!r} instead."
            )
        if self.alpha / rows > _FLOAT32_MAX:
            raise ValueError(
                f"The 'alpha' parameter of {name} divided by the rows of a batch "
                f"({rows:g}, weighted by the mean sample weight) overflows float32. "
                f"Got {self.alpha!r} instead; use a smaller alpha or larger weights."
            )

    def _penalty_rows(self, data):
        """What scikit-learn's MLP divides the L2 penalty by, per batch.

        It is the sum of the sample weights in a batch (the number of rows
        without weights), so that a weight of 2 acts like a repeated row;
        with weights, their mean over the training rows stands in for every
        batch's own.
        """
        rows = self._batch_size(len(data.indices))
        if data.weights is None:
            return rows
        mean = float(data.weights[data.indices].mean()) / data.weight_scale
        return rows * mean if mean > 0 else rows

    def _training_data(
        self, X, targets, weights, early_stopping, seed, device, later=False
    ):
        scale = None
        if X.dtype == np.uint8:
            # 8-bit images (a memmap of a data set larger than memory, say)
            # stay 8-bit; each batch is scaled as it is drawn, exactly as
            # the whole array would have been.
            X_t = as_tensor(X)
            scale = _Uint8Scaling(self.data_min_, self.data_range_)
        else:
            X_t = self._scaled_tensor(X)
        n = X_t.shape[0]
        # A tensor from here on (``_prepare`` gives float64 numpy weights).
        # A classifier's fit from scratch needs two classes of positive
        # weight; a partial_fit batch or a warm-start refit may hold one.
        weights, weight_scale = _float32_weights(weights, None if later else targets)
        if device.type == "cuda" and _fits_on_gpu(X_t, device):
            # One copy up front beats a host-to-device transfer per batch.
            X_t = X_t.to(device)
            targets = None if targets is None else targets.to(device)
            weights = None if weights is None else weights.to(device)
        indices = torch.arange(n, device="cpu")
        data = _training.TrainingData(
            X_t, indices, targets, weights, weight_scale, scale=scale
        )
        if not early_stopping:
            return _without_unweighted_rows(data)
        stratify = targets.cpu().numpy() if self._stratify else None
        train_rows, val_rows = self._validation_split(n, stratify, seed)
        data.indices = torch.from_numpy(train_rows)
        data.X_val = data.held_out(
            torch.from_numpy(val_rows).to(X_t.device), X_t.device
        )
        data.targets_val = None if targets is None else targets[val_rows]
        data = _without_unweighted_rows(data)
        if weights is not None:
            self._check_weighted_training_rows(data, n)
        return data

    def _check_weighted_training_rows(self, data, n):
        """Raise ValueError when the split leaves too little to train on.

        ``fit`` checks the samples of positive weight (2 classes, say)
        before early stopping holds some of them out; the rows left for
        training must still have enough of them: at least one batch's worth
        (two rows with batch normalisation) and, for a classifier, two
        classes.
        """
        positive = data.weights[data.indices].cpu() > 0
        rows = int(positive.sum())
        enough = rows >= self._min_batch_rows()
        found = ""
        if data.targets is not None:
            labels = data.targets[data.indices].cpu()[positive]
            n_classes = len(torch.unique(labels))
            enough = enough and n_classes >= 2
            found = f" of {n_classes} class{'' if n_classes == 1 else 'es'}"
        if not enough:
            raise ValueError(
                f"{self._held_out(n)[2]}, which leaves {rows} sample"
                f"{'' if rows == 1 else 's'} of positive sample_weight{found} to "
                "train on. Use a smaller validation_fraction, more samples of "
                "positive weight, or early_stopping=False."
            )

    def _held_out(self, n):
        """Early stopping's setting in words, the samples it holds out of
        ``n``, and a sentence that says so."""
        fraction = self.validation_fraction
        # train_test_split's rounding of a float test_size.
        n_val = math.ceil(fraction * n)
        setting = f"early_stopping={self.early_stopping!r}"
        if isinstance(self.early_stopping, str):
            setting += f" (on above {EARLY_STOPPING_MIN_SAMPLES:,} samples)"
        held_out = (
            f"{setting} holds out {n_val} of the {n} samples for "
            f"validation (validation_fraction={fraction!r})"
        )
        return setting, n_val, held_out

    def _validation_split(self, n, stratify, seed):
        """Training and validation rows for early stopping.

        A split that cannot be made is explained here, in terms of the
        estimator's parameters, before train_test_split would explain it in
        its own (``test_size``, ``train_size``).
        """
        fraction = self.validation_fraction
        setting, n_val, held_out = self._held_out(n)
        n_train = n - n_val
        if n_train < 1:
            raise ValueError(
                f"{held_out}, which leaves none to train on. Use a smaller "
                "validation_fraction, more samples, or early_stopping=False."
            )
        if n_train < self._min_batch_rows():
            raise ValueError(
                f"{held_out}, which leaves {n_train} to train on; batch "
                "normalisation (batch_norm=True) needs at least "
                f"{self._min_batch_rows()}. Use a smaller validation_fraction, "
                "more samples, early_stopping=False or batch_norm=False."
            )
        if stratify is not None:
            classes = getattr(self, "classes_", None)
            _check_stratifiable(setting, held_out, stratify, classes, (n_train, n_val))
        try:
            return train_test_split(
                np.arange(n),
                test_size=fraction,
                random_state=seed % 2**32,
                stratify=stratify,
            )
        except ValueError as exc:
            raise ValueError(
                f"{held_out}, but the samples cannot be split that way. Change "
                "validation_fraction, pass more samples, or set "
                "early_stopping=False."
            ) from exc

    def _module(self, reuse, seed, device):
        if reuse:
            return copy.deepcopy(self.module_).to(device)
        # Built on the meta device and initialised from our own generator:
        # torch's default initialisation would draw from its global one.
        with torch.device("meta"):
            module = self._network(**self._network_args)
        module = _float32(module).to_empty(device="cpu")
        return init_parameters(module, torch_generator(seed)).to(device)

    def _history(self, reuse, early_stopping):
        if not reuse:
            return _training.History.start(early_stopping)
        if (self.validation_scores_ is not None) != early_stopping:
            # Early stopping switched on or off (partial_fit never uses it):
            # the best epoch is tracked afresh, but the epochs still count.
            history = _training.History.start(early_stopping)
            history.loss_curve = list(self.loss_curve_)
            history.n_iter = self.n_iter_
            if not early_stopping and self.loss_curve_:
                # best_loss_ is the lowest training loss reached, the epochs
                # of the early-stopping fit included.
                history.best_loss = min(self.loss_curve_)
            return history
        return _training.History(
            loss_curve=list(self.loss_curve_),
            validation_scores=(
                None
                if self.validation_scores_ is None
                else list(self.validation_scores_)
            ),
            best_loss=self.best_loss_,
            best_validation_score=self.best_validation_score_,
            no_improvement_count=self._no_improvement_count,
            n_iter=self.n_iter_,
        )

    def _commit(self, module, optimizer, history):
        self.module_ = module
        self._optimizer_state = optimizer.state_dict()
        self.loss_curve_ = history.loss_curve
        self.validation_scores_ = history.validation_scores
        self.best_loss_ = history.best_loss
        self.best_validation_score_ = history.best_validation_score
        self._no_improvement_count = history.no_improvement_count
        self.n_iter_ = history.n_iter
        self.interrupted_ = history.interrupted

    # -- inference --------------------------------------------------------

    def _validated(self, X):
        check_is_fitted(self)
        # uint8 is kept: batches are scaled one at a time, so 8-bit images
        # (on disk, say) are never copied to float32 as a whole.
        return validate_data(self, X, reset=False, dtype=INPUT_DTYPES)

    def _checked_codes(self, Z, layer):
        """``Z`` as points of the fitted network's narrowest ``layer``."""
        check_is_fitted(self)
        Z = check_array(Z, dtype=[np.float32, np.float64], input_name="Z")
        if Z.dtype == np.float64 and Z.size and np.abs(Z).max() > _FLOAT32_MAX:
            # Cast to float32 they would be infinite (with numpy's overflow
            # warning on the way).
            raise ValueError(
                f"Z holds values beyond float32's range ({_FLOAT32_MAX:.3g}), "
                "in which the network computes; codes of images (encode, "
                "transform) lie well within it."
            )
        if Z.shape[1] != self._code_width():
            raise ValueError(
                f"Z has {Z.shape[1]} features, but the {layer} of this "
                f"{type(self).__name__} has {self._code_width()} units."
            )
        return Z

    def _code_width(self):
        """Width of the narrowest hidden layer of the fitted network."""
        sizes = self._network_args["hidden_layer_sizes"]
        return sizes[bottleneck_index(sizes)]

    def _module_on_device(self):
        """The fitted network on the device that ``device`` names now.

        Never ``self.module_.to(device)``, which moves the stored weights in
        place: a device that cannot hold them (``'meta'``) would lose them
        for good, and one predict would change the next. A network that
        lives elsewhere is copied to the device for this call.
        """
        self._check_inference_params()
        device = resolve_device(self.device)
        module = self.module_
        if _same_device(next(module.parameters()).device, device):
            return module.eval()
        self._check_network_fits(self._network_args, device, INFERENCE_COPIES)
        return _build(self._network, self._network_args, device, module.state_dict())

    def _infer(self, X, forward, n_outputs, *, dtype=np.float32, scale=True):
        """Run ``forward(module, batch, out)`` over ``X`` in bounded memory.

        ``X`` is validated already; batches are scaled (unless ``scale`` is
        False), moved to the device, and written into one preallocated array
        of ``dtype``, so peak memory is the output plus one batch. ``out``
        is that array's rows for the batch as a tensor, when ``forward`` can
        write its float32 result there itself (see ``run_stacks``), or None;
        ``forward`` returns the result, ``out`` or another tensor.

        Every batch has the same number of rows (the last one is padded with
        zeros): matrix-product kernels pick their summation order by the
        number of rows, and a fixed shape makes each row's output
        independent of the rows around it, bit for bit.
        """
        module = self._module_on_device()
        device = next(module.parameters()).device
        # Written in place by the network's last product: no copy of the
        # result, which for the auto-encoder is as wide as the input.
        direct = dtype == np.float32 and device.type == "cpu"
        step = self._inference_rows()
        # Every batch is ``step`` rows, a short call's padded ones too: a
        # single row through the default digits auto-encoder took 1.04 ms
        # on two threads and 1.35 ms on one (idle 2-core machine).
        threads = self._threads(step)
        with torch.inference_mode(), thread_budget(threads), exact_kernels(device):
            out = _inference_output((X.shape[0], n_outputs), dtype)
            out_tensor = torch.from_numpy(out) if direct else None
            for start in range(0, X.shape[0], step):
                rows = X[start : start + step]
                batch = self._scaled_tensor(rows) if scale else _float32_tensor(rows)
                n = batch.shape[0]
                target = out_tensor[start : start + n] if direct and n == step else None
                if n < step:
                    padded = batch.new_zeros(step, batch.shape[1])
                    padded[:n] = batch
                    batch = padded
                result = forward(module, batch.to(device), target)
                if n < step:
                    result = result[:n]
                if not _all_finite(result):
                    raise self._non_finite_error(codes=not scale)
                if result is not target:
                    out[start : start + n] = result.cpu().numpy()
        return out

    def _non_finite_error(self, codes=False):
        if codes:  # decode: the input is points of the code, not images
            return ValueError(
                f"{type(self).__name__} computed non-finite values from Z: its "
                "points are too far from the codes of the training data (those "
                "that encode or transform return) for float32 arithmetic."
            )
        high = self.data_min_ + self.data_range_
        return ValueError(
            f"{type(self).__name__} computed non-finite values. Either the input "
            f"holds values too far outside the range seen in fit ({self.data_min_:g} "
            f"to {high:g}) for float32 arithmetic (scale it like the training "
            "data), or training diverged (refit with a smaller learning_rate_init)."
        )

    # -- export -------------------------------------------------------------

    def to_torch(self, output="transform"):
        """A self-contained :class:`torch.nn.Module` that answers as this model.

        The module holds a copy of the trained network and the input
        scaling learned in fit (``data_min_``, ``data_range_``), takes a
        float32 tensor of shape ``(n_samples, n_features)`` in the units of
        the training data and returns what the estimator's method of the
        same name returns, to float32 rounding. It works with
        :func:`torch.jit.script`, :func:`torch.jit.trace`,
        :func:`torch.export.export` and :func:`torch.onnx.export`; see
        :ref:`deployment`. Changing it leaves the estimator as it is.

        Parameters
        ----------
        output : str, default='transform'
            The method to reproduce: 'transform' or 'encode' for
            :class:`DenoisingAutoencoder`; 'transform' (the bottleneck map)
            or 'predict_proba' (columns follow ``classes_``) for
            :class:`BottleneckClassifier`.

        Returns
        -------
        module : torch.nn.Module
            On the CPU, in eval mode.
        """
        check_is_fitted(self)
        if not isinstance(output, str) or output not in self._torch_outputs:
            raise ValueError(
                f"output={output!r} is not one of {sorted(self._torch_outputs)} "
                f"for {type(self).__name__}.to_torch."
            )
        network = copy.deepcopy(self.module_).cpu().eval()
        module = self._torch_outputs[output](
            network, float(self.data_min_), float(self.data_range_)
        )
        return module.eval()

    # -- persistence --------------------------------------------------------

    def __copy__(self):
        # A shallow copy as for any object, not through the pickled state
        # below: scikit-learn's callbacks copy the estimator in the middle of
        # a fit, when a refit's new network arguments sit beside the
        # previous fit's network (the copy then gets the new network).
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __getstate__(self):
        state = super().__getstate__()
        if "module_" in state:
            state = dict(state)
            state["module_"] = _state_to_bytes(self.module_.state_dict())
            state["_optimizer_state"] = _state_to_bytes(self._optimizer_state)
        return state

    def __setstate__(self, state):
        name = type(self).__name__
        if not isinstance(state, dict):
            raise _damaged(name, f"its state is a {type(state).__name__}, not a dict")
        # Saved before a parameter existed: the value that gives the
        # behaviour the model was trained with.
        missing = {k: v for k, v in self._added_parameters.items() if k not in state}
        state = {**state, **missing}
        if isinstance(state.get("module_"), bytes):
            state = dict(state)
            # Every network argument is checked, and the size of the network
            # they describe, before anything is allocated: a tampered file
            # could otherwise ask for terabytes.
            args = self._checked_network_args(state)
            cpu = torch.device("cpu")
            self._check_network_fits(args, cpu, INFERENCE_COPIES, pickled=True)
            weights = self._state_from_bytes(state, "module_")
            try:
                state["module_"] = _build(self._network, args, cpu, weights)
            except (RuntimeError, TypeError, ValueError, KeyError) as exc:
                raise _damaged(
                    name, "its weights do not fit its network arguments"
                ) from exc
            state["_optimizer_state"] = self._state_from_bytes(
                state, "_optimizer_state"
            )
        super().__setstate__(state)

    def _state_from_bytes(self, state, key):
        data = state.get(key)
        if not isinstance(data, bytes):
            raise _damaged(type(self).__name__, f"its {key} is not saved weights")
        try:
            return _state_from_bytes(data)
        except pickle.UnpicklingError:  # torch's refusal of code in the bytes
            raise
        except Exception as exc:
            raise _damaged(type(self).__name__, f"its {key} cannot be read") from exc

    def _checked_network_args(self, state):
        """The pickled network arguments, refused unless fit could make them."""
        name = type(self).__name__
        args = state.get("_network_args")
        if not isinstance(args, dict):
            raise _damaged(name, f"its network arguments are {reprlib.repr(args)}")
        accepted = inspect.signature(self._network).parameters
        for key, value in args.items():
            check = _NETWORK_ARG_CHECKS.get(key, lambda _: True)
            if not (isinstance(key, str) and key in accepted and check(value)):
                raise _damaged(
                    name,
                    f"its network argument {reprlib.repr(key)}="
                    f"{reprlib.repr(value)} is not one that fit stores",
                )
        missing = [
            key
            for key, parameter in accepted.items()
            if parameter.default is inspect.Parameter.empty and key not in args
        ]
        if missing:
            raise _damaged(name, f"its network arguments lack {', '.join(missing)}")
        for problem in _inconsistencies(args, state):
            raise _damaged(name, problem)
        return args


def _damaged(name, what):
    return pickle.UnpicklingError(
        f"The saved {name} is damaged or was tampered with: {what}. Fit the "
        "estimator again, or load a file that you trust."
    )


def _is_positive_int(value):
    return _is_int(value) and value > 0


def _is_size_list(value, allow_empty=False):
    return isinstance(value, (tuple, list)) and (
        (allow_empty and not value) or _is_layer_sizes(value)
    )


_NETWORK_ARG_CHECKS = {
    "n_features": _is_positive_int,
    "n_outputs": lambda v: _is_int(v) and v >= 2,
    "hidden_layer_sizes": _is_size_list,
    "activation": lambda v: isinstance(v, str) and v in ACTIVATIONS,
    "architecture": one_of("dense", "conv").accepts,
    "image_shape": lambda v: v is None or (_is_size_list(v) and len(v) == 2),
    "conv_channels": lambda v: _is_size_list(v, allow_empty=True),
    "batch_norm": lambda v: isinstance(v, bool),
}


def _inconsistencies(args, state):
    """Ways in which checked network arguments contradict each other or ``state``."""
    args = {**_NETWORK_DEFAULTS, **args}
    if args["architecture"] == "conv":
        shape = args["image_shape"]
        if shape is None or not args["conv_channels"]:
            yield "its convolutional network has no image_shape or conv_channels"
        elif shape[0] * shape[1] != args["n_features"]:
            yield f"its image_shape {shape!r} does not hold {args['n_features']} pixels"
    n_features = state.get("n_features_in_")
    if not (_is_int(n_features) and n_features == args["n_features"]):
        yield (
            f"its network takes {args['n_features']} features, but n_features_in_ "
            f"is {reprlib.repr(n_features)}"
        )
    if "n_outputs" in args:
        classes = state.get("classes_")
        if not (isinstance(classes, np.ndarray) and len(classes) == args["n_outputs"]):
            yield (
                f"its network has {args['n_outputs']} outputs, but classes_ is "
                f"{reprlib.repr(classes)}"
            )


def _check_stratifiable(setting, held_out, labels, classes, sizes):
    """Raise ValueError where no stratified split of ``labels`` has ``sizes``.

    ``labels`` are indices into ``classes``; ``sizes`` are the numbers of
    training and validation rows.
    """
    found, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        rare = found[counts.argmin()]
        label = rare if classes is None else classes[rare]
        shown = repr(label.item() if isinstance(label, np.generic) else label)
        raise ValueError(
            f"{setting} holds out a share of every class for validation, "
            f"but class {shown} has only one sample. Pass at least 2 samples of "
            "every class, or set early_stopping=False."
        )
    k, (n_train, n_val) = len(found), sizes
    if n_val < k:
        raise ValueError(
            f"{held_out}, fewer than the {k} classes: a stratified validation set "
            f"needs a sample of each. Use a validation_fraction of at least "
            f"{k / (n_train + n_val):.3g}, more samples, or early_stopping=False."
        )
    if n_train < k:
        raise ValueError(
            f"{held_out}, which leaves {n_train} to train on, fewer than the {k} "
            "classes. Use a smaller validation_fraction, more samples, or "
            "early_stopping=False."
        )


def _same_device(a, b):
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True

    def index(device):
        return torch.cuda.current_device() if device.index is None else device.index

    return index(a) == index(b)


def _float32(module):
    """``module`` in float32 whatever ``torch.set_default_dtype`` says.

    The networks train and answer in float32; a caller who made float64
    torch's default (common in scientific code) would otherwise get
    float64 layers that refuse the float32 batches.
    """
    return module.to(torch.float32)


def _build(network, args, device, state_dict):
    """``network(**args)`` on ``device``, holding ``state_dict``; allocated once."""
    with torch.device("meta"):
        module = _float32(network(**args))
    # Shapes are compared on the meta device, before any memory is taken:
    # a tampered file may describe a network that its weights do not fill.
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    given = {k: tuple(getattr(v, "shape", ())) for k, v in state_dict.items()}
    if expected != given:
        raise ValueError("the weights do not have the network's shapes")
    module = module.to_empty(device=device)
    module.load_state_dict(state_dict)
    return module.eval()


# An output at least this large has its memory mapped before the batches
# fill it. The kernel maps and clears every page of fresh memory at its
# first write; page by page between the network's products, that evicted
# the weights from the cache and took DenoisingAutoencoder.transform of
# 500,000 to 1,000,000 Fashion-MNIST-sized rows from 9.7 to 15-17.6 us a
# row (one thread, a 2-core VM); in one pass first, 9.7. Memory the process
# had used before costs one extra pass (2% at 50,000 rows), so smaller
# outputs are left alone.
_PREFAULT_BYTES = 256 * 2**20


def _empty_array(shape, dtype):
    """``np.empty(shape, dtype)``, its memory taken by torch's allocator.

    numpy asks the kernel for huge pages on large arrays, and where Linux
    compacts memory to find them on demand (``defrag=madvise``, a common
    default) the first writes into a fresh output stall unpredictably:
    ``transform`` of 100,000 Fashion-MNIST-sized rows took 1.0 to 2.0 s
    from run to run with numpy's array and 0.9 to 1.1 s with torch's; of
    1,000,000 rows, 18.2 to 18.4 s against 11.7 to 16.5 s (one thread,
    interleaved calls).
    """
    tensor = torch.empty(
        shape, dtype=torch.from_numpy(np.empty(0, dtype)).dtype, device="cpu"
    )
    return tensor.numpy()


def _inference_output(shape, dtype):
    """The array that inference fills: ``np.empty(shape, dtype)`` below
    :data:`_PREFAULT_BYTES`, and from there on zeros, every page mapped.

    Where the system has ``MAP_POPULATE`` (Linux), a large output is an
    anonymous private mapping whose pages the kernel makes and clears in
    the one call that creates it, faster than faulting them in one by one:
    1.48 s against 2.06 s for writing the 3 GB output of
    ``DenoisingAutoencoder.transform`` on 1,000,000 rows once (a 2-core VM,
    ``benchmarks/bench_inference.py``), and no pass of zeros after it.
    Elsewhere, memory from :func:`_empty_array` zeroed in one pass. The
    array owns its mapping: it is unmapped when the array (and every view
    of it) is freed.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    populate = getattr(mmap, "MAP_POPULATE", None)
    if nbytes >= _PREFAULT_BYTES and populate is not None:
        try:
            region = mmap.mmap(
                -1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate
            )
        except (OSError, ValueError, OverflowError):
            pass  # torch's allocator raises the error users know, if any
        else:
            return np.frombuffer(region, dtype=dtype).reshape(shape)
    out = _empty_array(shape, dtype)
    if out.nbytes >= _PREFAULT_BYTES:
        torch.from_numpy(out).zero_()
    return out


def _all_finite(result):
    """Whether every value of ``result`` is finite, without a boolean copy.

    A sum is finite only if every term is (NaN and infinity propagate), so a
    finite sum settles it in one fast pass; only a non-finite one (which
    finite values near float32's limit can also give) needs the exact
    check. A float64 sum would never overflow but takes 15 times as long.
    """
    if torch.isfinite(result.sum()):
        return True
    return bool(torch.isfinite(result).all())


def _float32_tensor(X):
    return as_tensor(np.ascontiguousarray(X, dtype=np.float32))
