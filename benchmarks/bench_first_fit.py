"""The first fit in a fresh process against the fits after it.

Each repetition starts a fresh Python process that imports torch,
scikit-learn and denoisenet, loads scikit-learn's digits (1,797 8x8
images), then fits ``DenoisingAutoencoder(max_iter=1)`` and
``BottleneckClassifier(max_iter=1)`` twice each, and prints the seconds of
every fit. With ``--dynamo`` the process imports ``torch._dynamo`` before
the first fit (and times that import): torch's optimisers import it on
their first use (``torch.optim.Optimizer``'s ``add_param_group``,
``zero_grad``, ``state_dict`` and ``load_state_dict`` are wrapped in
``torch._disable_dynamo``, which imports it on the first call), and the
estimators train with ``torch.optim.Adam``. What a user meets: the first
fit in a notebook, a script or each worker process of a parallel search
pays that import once; later fits do not.

    python benchmarks/bench_first_fit.py --repeat 3
"""

import argparse
import statistics
import subprocess
import sys

CHILD = """
import time, warnings
start = time.perf_counter()
import torch, sklearn.neural_network
import denoisenet
from sklearn.datasets import load_digits
imports = time.perf_counter() - start
dynamo = float("nan")
if {dynamo}:
    start = time.perf_counter()
    import torch._dynamo
    dynamo = time.perf_counter() - start
warnings.simplefilter("ignore")
X, y = load_digits(return_X_y=True)
X = X / 16.0
times = []
for make in (
    lambda: denoisenet.DenoisingAutoencoder(max_iter=1, random_state=0),
    lambda: denoisenet.DenoisingAutoencoder(max_iter=1, random_state=0),
    lambda: denoisenet.BottleneckClassifier(max_iter=1, random_state=0),
    lambda: denoisenet.BottleneckClassifier(max_iter=1, random_state=0),
):
    start = time.perf_counter()
    make().fit(X, y)
    times.append(time.perf_counter() - start)
print(imports, dynamo, *times)
"""

COLUMNS = [
    "imports",
    "torch._dynamo",
    "DAE 1st fit",
    "DAE 2nd fit",
    "BC 1st fit",
    "BC 2nd fit",
]


def run(dynamo, repeat):
    rows = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", CHILD.format(dynamo=dynamo)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rows.append([float(v) for v in out.split()])
    return [statistics.median(column) for column in zip(*rows, strict=True)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes")
    cfg = parser.parse_args(argv)
    if cfg.repeat < 1:
        parser.error("--repeat must be positive")
    print(f"python {sys.version.split()[0]}; medians of {cfg.repeat} processes, s")
    print(f"{'':<22}" + "".join(f"{c:>15}" for c in COLUMNS))
    for label, dynamo in (("as a user runs it", False), ("torch._dynamo first", True)):
        medians = run(dynamo, cfg.repeat)
        cells = ["-" if m != m else f"{m:.3f}" for m in medians]  # nan: not run
        print(f"{label:<22}" + "".join(f"{c:>15}" for c in cells))


if __name__ == "__main__":
    main()
