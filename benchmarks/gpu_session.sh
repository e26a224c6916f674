#!/usr/bin/env bash
# The GPU checks of issue 17 in one call, for a session that is lent a GPU
# machine (one short call: device time is scarce). In the repository root:
#
#     bash benchmarks/gpu_session.sh
#
# Runs, each under a time limit, with the logs in $OUT (the device tool's
# folder of files that come back) or ./gpu-logs:
#   env.txt        nvidia-smi, the versions of torch, scikit-learn, numpy
#   test_gpu.txt   tests/test_gpu.py (the device="cuda" tests)
#   bench_gpu.txt  benchmarks/bench_gpu.py, 2 epochs x 2 rounds on 60,000
#                  images (random stand-in data where Fashion-MNIST is absent:
#                  the timings hold, the accuracies do not)
#   suite.txt      the whole suite, where device="auto" picks the GPU
# denoisenet runs from src/ (PYTHONPATH), not installed: such machines
# cannot download, and their torch may be older than pyproject's bound.
set -u
out="${OUT:-gpu-logs}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
{
    nvidia-smi || echo "no nvidia-smi"
    "$py" -c 'import numpy, sklearn, torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      "scikit-learn", sklearn.__version__, "numpy", numpy.__version__)'
} > "$out/env.txt" 2>&1
timeout 90 "$py" -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py \
    > "$out/test_gpu.txt" 2>&1
echo "test_gpu: rc $?" >> "$out/env.txt"
timeout 240 "$py" benchmarks/bench_gpu.py --epochs 2 --rounds 2 \
    > "$out/bench_gpu.txt" 2>&1
echo "bench_gpu: rc $?" >> "$out/env.txt"
timeout 200 "$py" -m pytest -q -x -p no:cacheprovider > "$out/suite.txt" 2>&1
echo "suite: rc $? (124: stopped at its time limit)" >> "$out/env.txt"
cat "$out/env.txt"
tail -n 25 "$out/bench_gpu.txt"
