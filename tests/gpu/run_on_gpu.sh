#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one short run (about 7 minutes at most), from the repository root of a
# machine that has one:
#   1. tests/gpu and tests/nn/test_nn_gpu_kernels.py: the engine on the GPU against the CPU and against the
#      reference loop, the variants' Triton kernels compiled for the GPU (the CPU runs them interpreted);
#   2. bench/gpu_paths.py: every variant's training step against cuDNN at the seed, text and long shapes;
#   3. only with RUN_SUITE=1: the whole suite, where [train] device "auto" picks the GPU (fuzzing and tuning
#      left out; it does not fit the 8 minutes of one device check together with 1 and 2).
# Each stage has its own time limit (seconds: GPU_TESTS_S, BENCH_S, SUITE_S). Logs go to $OUT (default
# /tmp/lstmkit-gpu). Wheels in .whl/ (packages the machine lacks) are installed into /tmp/site first, without
# touching the system's packages.
set -u
OUT=${OUT:-/tmp/lstmkit-gpu}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  python3 -c "import triton; print('triton', triton.__version__)" || echo "triton: not installed (the variants run the reference loop)"
} 2>&1 | tee "$OUT/machine.txt"
# pytest-xdist, where installed, compiles the Triton kernels of different tests in parallel.
PARALLEL=$(python3 -c "import xdist" 2>/dev/null && echo "-n ${WORKERS:-4}")
date -u +"tests start %T" | tee -a "$OUT/machine.txt"
timeout "${GPU_TESTS_S:-200}" python3 -m pytest -q -p no:cacheprovider -rfE $PARALLEL \
    tests/gpu tests/nn/test_nn_gpu_kernels.py 2>&1 | tee "$OUT/gpu-tests.log" | tail -40
date -u +"bench start %T" | tee -a "$OUT/machine.txt"
timeout "${BENCH_S:-220}" python3 bench/gpu_paths.py --rounds 5 --steps 5 2>&1 | tee "$OUT/gpu-paths.md"
date -u +"bench end %T" | tee -a "$OUT/machine.txt"
if [ "${RUN_SUITE:-0}" = 1 ]; then
    timeout "${SUITE_S:-270}" python3 -m pytest -q -p no:cacheprovider -rfE -n "${WORKERS:-8}" tests \
        --ignore=tests/gpu --ignore=tests/fuzz --ignore=tests/test_tune.py --ignore=tests/serve/test_serve_fuzz.py \
        >"$OUT/suite.log" 2>&1
    tail -60 "$OUT/suite.log"
fi
