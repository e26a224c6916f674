"""Inference speed: ``transform``, ``predict`` and ``encode`` as a share of peak.

The machine's fp32 matrix-product speed is measured first and last in the
run (``torch.mm`` of two ``--peak-size`` square float32 matrices, best of
10, at the thread count in use; the larger of the two counts). Then the
default ``DenoisingAutoencoder`` (784-256-128-256-784) and the default
``BottleneckClassifier`` (its default network, with batch normalisation),
each
fitted for one epoch (``max_iter=1``) on ``--fit-samples`` Fashion-MNIST
training images, run their inference methods on ``--rows`` float32 rows
(1,000,000 by default: Fashion-MNIST's training images tiled, 2.9 GiB).

Each method counts 2 x in x out FLOPs per row for every dense layer that it
runs (biases, activations, batch normalisation and softmax are ignored),
and its speed is that count over the best of ``--repeat`` calls. Beside
the estimators, the plain network (``module(X)`` of the fitted
``module_`` in ``torch.inference_mode``, over chunks of the estimator's
inference batch size, written into one preallocated tensor) anchors what
the estimator's own work (validation, scaling, copies, checks) costs. The
time to write a fresh output as large as the DAE's once, against writing
it again, shows what the kernel's page faults cost before any arithmetic;
the DAE's plain network writing into an output that was written before
the timing shows its speed without them; beside them, the time to allocate
the output as the estimators do (``_inference_output``: a mapping the kernel
populates in one call where Linux offers ``MAP_POPULATE``).

Target (issue 17): ``transform`` and ``predict`` of both estimators reach
at least 70% of the peak at 1,000,000 rows. Ratios measured within the run
are what count; absolute seconds drift on shared machines.

Run it from the repository root (several minutes at 1,000,000 rows)::

    python benchmarks/bench_inference.py --threads 1
    python benchmarks/bench_inference.py --threads 1 --rows 100000   # quick
"""

import argparse
import itertools

import _common
import numpy as np
import torch

from denoisenet import BottleneckClassifier, DenoisingAutoencoder
from denoisenet._base import _PREFAULT_BYTES, _inference_output
from denoisenet._networks import bottleneck_index, run_stacks

TARGET_SHARE = 0.70
DAE_SIZES = [784, 256, 128, 256, 784]
DAE_CODE = [784, 256, 128]
# The default classifier's widths, taken from the estimator so that the
# counts follow its default network.
_BC_HIDDEN = list(BottleneckClassifier().hidden_layer_sizes)
BC_SIZES = [784, *_BC_HIDDEN, 10]
BC_CODE = [784, *_BC_HIDDEN[: bottleneck_index(_BC_HIDDEN) + 1]]


def flops_per_row(sizes):
    return 2 * sum(a * b for a, b in itertools.pairwise(sizes))


def tiled(X, rows):
    """``rows`` rows of float32 ``X`` repeated in order, C-contiguous."""
    reps = -(-rows // X.shape[0])
    return np.ascontiguousarray(np.tile(X, (reps, 1))[:rows], dtype=np.float32)


def plain_forward(module, X, step, n_outputs, out=None):
    """The network alone over ``step``-row chunks, into one tensor.

    ``out``, when given, is that tensor, written before: no page faults.
    """
    X = torch.from_numpy(X)
    out = torch.empty(X.shape[0], n_outputs) if out is None else out
    with torch.inference_mode():
        for start in range(0, X.shape[0], step):
            out[start : start + step] = module(X[start : start + step])
    return out


def write_seconds(rows, width, repeat):
    """Seconds to write a fresh float32 array once, to write it again, and
    to allocate it as the estimators' inference does.

    The difference of the first two is what the kernel's page faults cost
    (mapping and zeroing every page at its first write) before any
    arithmetic; the third is what is left of it in ``transform``.
    """
    once = min(
        _common.time_call(lambda: torch.empty(rows, width).fill_(0.0), repeat=repeat)
    )
    array = torch.empty(rows, width).fill_(0.0)
    again = min(_common.time_call(lambda: array.fill_(1.0), repeat=repeat))
    array.set_()  # its memory back before the next allocation
    mapped = min(
        _common.time_call(
            lambda: _inference_output((rows, width), np.float32), repeat=repeat
        )
    )
    return once, again, mapped


def allocation_pairs(dae, X, repeat):
    """Best seconds of ``dae.transform(X)`` with its output allocated as
    now and as before (torch's allocator, zeroed in one pass), the calls
    alternating so that drift in the machine's speed hits both alike."""
    import denoisenet._base as base

    mapped = base._inference_output

    def before(shape, dtype):
        out = base._empty_array(shape, dtype)
        if out.nbytes >= base._PREFAULT_BYTES:
            torch.from_numpy(out).zero_()
        return out

    seconds = {"now": [], "before": []}
    try:
        for _ in range(repeat):
            for name, allocate in (("now", mapped), ("before", before)):
                base._inference_output = allocate
                seconds[name] += _common.time_call(lambda: dae.transform(X), repeat=1)
    finally:
        base._inference_output = mapped
    return min(seconds["now"]), min(seconds["before"])


def cached_batch_seconds(dae, X, repeat):
    """Seconds of one inference batch through the DAE, its input in the cache.

    Returns (the network's dense products alone, one ``torch.addmm`` per
    layer; the network with its activations, as ``transform`` runs it),
    each the best of ``repeat`` rounds of 50 calls: the most that any work
    around the network could let ``transform`` reach.
    """
    step = dae._inference_batch_size
    batch = torch.from_numpy(np.ascontiguousarray(X[:step]))
    module = dae.module_.eval()
    layers = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    out = torch.empty(step, layers[-1].out_features)

    def products():
        h = batch
        for layer in layers[:-1]:
            h = torch.addmm(layer.bias, h, layer.weight.t())
        torch.addmm(layers[-1].bias, h, layers[-1].weight.t(), out=out)

    def network():
        run_stacks([module.encoder, module.decoder], batch, out)

    seconds = []
    with torch.inference_mode():
        for call in (products, network):
            rounds = _common.time_call(
                lambda call=call: [call() for _ in range(50)], repeat=repeat, warmup=1
            )
            seconds.append(min(rounds) / 50)
    return tuple(seconds)


def fitted_models(X_fit, y_fit):
    dae = DenoisingAutoencoder(max_iter=1, random_state=0, device="cpu")
    dae.fit(X_fit)
    bc = BottleneckClassifier(max_iter=1, random_state=0, device="cpu")
    bc.fit(X_fit, y_fit)
    return dae, bc


def cases(dae, bc, X):
    """(name, callable, FLOPs per row, counts for the target)."""
    dae_step = dae._inference_batch_size
    bc_step = bc._inference_batch_size
    dae_module = dae.module_.eval()
    bc_module = bc.module_.eval()
    written = torch.zeros(X.shape[0], 784)
    return [
        ("DAE.transform", lambda: dae.transform(X), flops_per_row(DAE_SIZES), True),
        ("DAE.encode", lambda: dae.encode(X), flops_per_row(DAE_CODE), False),
        (
            "DAE plain module(X)",
            lambda: plain_forward(dae_module, X, dae_step, 784),
            flops_per_row(DAE_SIZES),
            False,
        ),
        (
            "DAE plain, output written before",
            lambda: plain_forward(dae_module, X, dae_step, 784, written),
            flops_per_row(DAE_SIZES),
            False,
        ),
        ("BC.predict", lambda: bc.predict(X), flops_per_row(BC_SIZES), True),
        (
            "BC.predict_proba",
            lambda: bc.predict_proba(X),
            flops_per_row(BC_SIZES),
            False,
        ),
        ("BC.transform", lambda: bc.transform(X), flops_per_row(BC_CODE), True),
        (
            "BC plain module(X)",
            lambda: plain_forward(bc_module, X, bc_step, 10),
            flops_per_row(BC_SIZES),
            False,
        ),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fit-samples", type=int, default=5000)
    parser.add_argument("--peak-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if min(args.rows, args.repeat, args.fit_samples, args.peak_size) < 1:
        parser.error("--rows, --repeat, --fit-samples and --peak-size must be >= 1")

    threads, _limiter = _common.limit_threads(args.threads)
    _common.print_environment(threads)
    _common.quiet_convergence_warnings()
    peak_start = _common.measure_matmul_peak(threads, n=args.peak_size)

    X_train, y_train, _ = _common.load_images("train")
    dae, bc = fitted_models(X_train[: args.fit_samples], y_train[: args.fit_samples])
    X = tiled(X_train, args.rows)
    del X_train
    print(
        f"inference on {args.rows:,} rows of float32 ({X.nbytes / 2**30:.2f} GiB); "
        f"inference batch: DAE {dae._inference_batch_size}, "
        f"BC {bc._inference_batch_size} rows; best of {args.repeat}"
    )

    timed = []
    for name, call, flops, target in cases(dae, bc, X):
        # Warm-up on a slice: first calls pay one-off costs (lazy imports,
        # allocator growth) that a call on a million rows should not show.
        small = X[: min(len(X), 20_000)]
        if name.startswith(("DAE.", "BC.")):
            method = name.split(".", 1)[1]
            getattr(dae if name.startswith("DAE") else bc, method)(small)
        best = min(_common.time_call(call, repeat=args.repeat))
        timed.append((name, best, flops * args.rows / 1e9, target))

    width = DAE_SIZES[-1]
    first_touch, refill, mapped = write_seconds(args.rows, width, args.repeat)
    batch_products, batch_network = cached_batch_seconds(dae, X, args.repeat)
    large = args.rows * width * 4 >= _PREFAULT_BYTES
    if large:  # below, both ways allocate alike
        paired_now, paired_before = allocation_pairs(dae, X, args.repeat)
    peak_end = _common.measure_matmul_peak(threads, n=args.peak_size)
    peak = max(peak_start, peak_end)
    print(
        f"fp32 torch.mm peak ({args.peak_size}x{args.peak_size}, best of 10, "
        f"{threads} thread(s)): {peak_start:.1f} GFLOP/s at the start, "
        f"{peak_end:.1f} at the end; using {peak:.1f}"
    )
    print()
    rows, met = [], True
    plain = {}
    for name, seconds, _, _ in timed:
        if name.endswith("plain module(X)"):
            plain[name.split()[0]] = seconds
    for name, seconds, gflop, target in timed:
        flops = gflop * 1e9 / args.rows
        rate = gflop / seconds
        share = rate / peak
        if target:
            met &= share >= TARGET_SHARE
        anchor = plain[name.split(".")[0].split()[0]]
        whole = flops == flops_per_row(
            DAE_SIZES if name.startswith("DAE") else BC_SIZES
        )
        rows.append(
            [
                name + (" *" if target else ""),
                f"{gflop:.0f}",
                f"{seconds:.2f}",
                f"{rate:.1f}",
                f"{share:.0%}",
                f"{seconds / anchor:.2f}x" if whole else "-",
            ]
        )
    _common.print_table(
        ["case", "GFLOP", "best s", "GFLOP/s", "share of peak", "vs plain"], rows
    )
    print(
        "* counts for the target. 'vs plain': seconds against the plain "
        "network of the same estimator, for the methods that run all its layers."
    )
    dae_seconds = next(t for name, t, _, _ in timed if name == "DAE.transform")
    how = " (zeroed, every page mapped)" if large else " (below 256 MiB: not written)"
    print(
        f"a fresh {args.rows:,} x {width} float32 output (the DAE's): "
        f"{first_touch:.2f} s to write once, {refill:.2f} s to write again; "
        f"the difference (page faults) is {(first_touch - refill) / dae_seconds:.0%} "
        f"of DAE.transform's time; allocated as the estimators do{how}: "
        f"{mapped:.2f} s"
    )
    if large:
        print(
            f"DAE.transform, alternating calls (best of {args.repeat} each): "
            f"{paired_now:.2f} s with its output mapped at once, "
            f"{paired_before:.2f} s with it from torch's allocator zeroed in one "
            "pass (before MAP_POPULATE)"
        )
    batch_flops = flops_per_row(DAE_SIZES) * dae._inference_batch_size
    print(
        f"one cached batch of {dae._inference_batch_size} rows through the DAE: "
        f"its products alone {1e3 * batch_products:.2f} ms "
        f"({batch_flops / batch_products / 1e9 / peak:.0%} of the peak), with its "
        f"activations {1e3 * batch_network:.2f} ms "
        f"({batch_flops / batch_network / 1e9 / peak:.0%})"
    )
    print(
        f"target: transform and predict >= {TARGET_SHARE:.0%} of the fp32 "
        f"matmul peak at {args.rows:,} rows: {_common.verdict(met)}"
    )


if __name__ == "__main__":
    main()
