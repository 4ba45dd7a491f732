#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go, from the repository root of a machine that has one:
#   1. tests/gpu (the engine on the GPU against the CPU, training there and loading on the CPU, ...);
#   2. the whole suite, where [train] device "auto" now picks the GPU (fuzzing and tuning left out);
#   3. bench/gpu_paths.py (cuDNN against the variants' loop).
# Logs go to $OUT (default /tmp/lstmkit-gpu). Wheels in .whl/ (packages the machine lacks) are installed
# into /tmp/site first, without touching the system's packages.
set -u
OUT=${OUT:-/tmp/lstmkit-gpu}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; } 2>&1 | tee "$OUT/machine.txt"
timeout "${GPU_TESTS_S:-150}" python3 -m pytest -q -p no:cacheprovider -rfE tests/gpu 2>&1 | tee "$OUT/gpu-tests.log" | tail -40
timeout "${SUITE_S:-270}" python3 -m pytest -q -p no:cacheprovider -rfE -n "${WORKERS:-8}" tests \
    --ignore=tests/gpu --ignore=tests/fuzz --ignore=tests/test_tune.py --ignore=tests/serve/test_serve_fuzz.py \
    >"$OUT/suite.log" 2>&1
tail -60 "$OUT/suite.log"
timeout "${BENCH_S:-60}" python3 bench/gpu_paths.py --rounds 5 2>&1 | tee "$OUT/gpu-paths.md"
