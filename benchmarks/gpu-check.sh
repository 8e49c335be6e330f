#!/usr/bin/env bash
# Issue 17's GPU measurements, in one command, for a session lent a CUDA GPU (H100/H200 class):
#
#   run(command="bash benchmarks/gpu-check.sh", carry=[".whl"], timeout_s=560)
#
# It needs torch with CUDA and this repo. normlab also needs pydantic, which the GPU image
# lacks: its wheels travel in .whl/ (gitignored). Fetch them once, where pip reaches PyPI:
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_17_x86_64 -d .whl pydantic==2.14.3 \
#     pydantic_core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 \
#     typing_extensions==4.16.0
#
# What it prints (and keeps in $OUT/gpu-check.log), each step bounded in time so that one
# failing step leaves the others' numbers:
#   1. bench.py: normlab's loop vs the seed-style loop on one run (today's ratio);
#   2. packed.py: images/s per run for K = 1, 3, 12, 24 packed runs against the seed-style
#      loop (target: >= 10x), the projected 24-run x 20-epoch norms study (target: <= 2 min);
#      a 20-epoch MNIST variant, bn's seeds 0-2 packed: its seconds of training (target:
#      <= 10 s) and accuracy beside bn trained alone on a CPU (99.47 % at seed 0);
#   3. the whole norms study at its 5 epochs, packed 12 at a time: wall time, and each
#      variant's accuracy beside the recorded runs (results/norms-5ep/runs/norms/) - "unchanged accuracy".
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
LOG=${OUT:-/tmp}/gpu-check.log
export PYTHONUNBUFFERED=1

if ! $PY -c "import pydantic" 2>/dev/null; then
  ls .whl/*.whl >/dev/null 2>&1 || { echo "pydantic is missing and .whl/ is empty: see the top of $0"; exit 2; }
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 2
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# bench.py and packed.py read params.yaml as committed at HEAD; a copy of the working tree
# without .git gets a throwaway repository holding this tree's params.yaml.
if ! git rev-parse --verify -q HEAD >/dev/null 2>&1; then
  git init -q && git add params.yaml && git -c user.name=gpu-check -c user.email=gpu@check \
    commit -qm "params.yaml of the copied tree" || exit 2
fi

step() {  # step NAME SECONDS COMMAND...: run one measurement, say if it failed
  local name=$1 limit=$2
  shift 2
  echo "== $name ($(date -u +%H:%M:%S), at most ${limit} s)"
  timeout "$limit" "$@" || echo "== $name FAILED (exit $?)"
}

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  step "1. bench.py: normlab vs the seed-style loop" 150 \
    $PY benchmarks/bench.py --device cuda --steps 400 --warmup 20 --repeats 3
  step "2. packed runs: K = 1, 3, 12, 24; 20-epoch bn x 3 seeds" 200 \
    $PY benchmarks/packed.py --device cuda --steps 200 --warmup 10 --ks 1,3,12,24 --train 20
  step "3. the norms study at 5 epochs, packed 12 at a time" 150 \
    $PY benchmarks/packed.py --device cuda --ks "" --study 5 --pack 12
} 2>&1 | tee "$LOG"
