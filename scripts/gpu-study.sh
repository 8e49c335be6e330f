#!/usr/bin/env bash
# Study runs on a lent CUDA GPU, their records back as one git bundle (issue 15).
#
# The GPU machine is bare (torch, numpy, pandas, scipy, matplotlib, PyYAML, seaborn, tqdm; no
# pydantic, kornia, DVC) and gets a copy of the working tree without .git. So, here:
#
#   bash scripts/gpu-study.sh pack
#       .whl/ ← the wheels normlab lacks there (pydantic, kornia; fetched once from PyPI)
#       .scratch/gpu/repo.bundle ← HEAD of this repository (records included, history not): the
#       runs know their code commit and skip every run that already has a record
#
# then, with the device tool (one call; ~1-2 min of its 15 go to starting the machine):
#
#   run(command="bash scripts/gpu-study.sh train 420 --file studies/seeds.yaml --study s003",
#       carry=[".whl", ".scratch/gpu"], timeout_s=580)
#
#       trains the planned runs that have no record, JOBS (12) at a time on the GPU, starts
#       none that should end after 420 s (`study run --deadline`: priced from records made on
#       that GPU; unpriced runs start until then), stops what still trains after STOP seconds
#       (default: 120 more; a stopped run is lost with the machine), commits each record, and
#       writes $OUT/records.bundle (the record commits), $OUT/study.log and $OUT/verify.log
#       (one CPU-made record retrained on the GPU: the same run, its digits beside the CPU's);
#
# and back here, with the bundle's path from the reply's files_at:
#
#   bash scripts/gpu-study.sh land <files_at>/records.bundle   # cherry-picks the records
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
GPU=.scratch/gpu
WHEELS="pydantic==2.14.3 pydantic_core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5
  typing_extensions==4.16.0 kornia==0.9.0 kornia_rs==0.2.0"
CHECK=${CHECK:-results/seeds/runs/s000/bn/s0.json}  # the CPU record retrained on the GPU

pack() {
  mkdir -p .whl "$GPU"
  # shellcheck disable=SC2086  # one word per wheel
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl $WHEELS || exit 2
  # HEAD alone (a depth-1 clone): the whole history would not fit in the call's 64 MiB beside
  # the working tree, and the runs need only the records and the code commit's name.
  local shallow ok=0
  shallow=$(mktemp -d)
  git clone -q --depth 1 "file://$PWD" "$shallow/repo" &&
    git -C "$shallow/repo" bundle create "$PWD/$GPU/repo.bundle.part" HEAD 2>/dev/null &&
    mv "$GPU/repo.bundle.part" "$GPU/repo.bundle" || ok=2
  rm -rf "$shallow"  # on failure too
  [ "$ok" = 0 ] || exit 2
  echo "packed: .whl/ ($(du -sh .whl | cut -f1)), $GPU/repo.bundle ($(du -sh "$GPU/repo.bundle" \
    | cut -f1)) at $(git rev-parse --short HEAD)"
}

train() {
  local seconds=${1:?usage: gpu-study.sh train SECONDS STUDY-ARGS...}
  shift
  # --deadline only decides which runs start; STOP ends what still trains, so that the records
  # already made are bundled before the device call's own limit kills everything.
  local out=${OUT:-/tmp/gpu-study} repo=/tmp/normlab stop=${STOP:-$((seconds + 120))}
  mkdir -p "$out"
  if ! $PY -c "import pydantic, kornia" 2>/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || { echo "cannot install .whl/: run 'pack' here first"; exit 2; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  [ -f "$GPU/repo.bundle" ] || { echo "no $GPU/repo.bundle: run 'pack' here first"; exit 2; }
  # The bundle holds one commit without its parents: mark it shallow before fetching it.
  local bundle=$PWD/$GPU/repo.bundle
  rm -rf "$repo" && git init -q "$repo" && cd "$repo" &&
    git bundle list-heads "$bundle" | awk '$2 == "HEAD" {print $1}' >.git/shallow &&
    git fetch -q "$bundle" HEAD && git checkout -q -b gpu FETCH_HEAD || exit 2
  export GIT_AUTHOR_NAME=normlab-gpu GIT_AUTHOR_EMAIL=gpu@normlab.invalid
  export GIT_COMMITTER_NAME=normlab-gpu GIT_COMMITTER_EMAIL=gpu@normlab.invalid
  export PYTHONUNBUFFERED=1 NORMLAB_CACHE=/tmp/normlab-cache
  local base
  base=$(git rev-parse HEAD)
  { nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 || true; } |
    tee "$out/study.log"
  # The check runs beside the study: one more process on a GPU that has room for many.
  if [ -f "$CHECK" ]; then
    timeout -s TERM "$stop" $PY -m normlab.analysis.study verify "$CHECK" \
      --device "${DEVICE:-cuda}" >"$out/verify.log" 2>&1 &
  fi
  timeout -s TERM "$stop" $PY -m normlab.analysis.study run "$@" --jobs "${JOBS:-12}" \
    --deadline "$seconds" --commit --set device="${DEVICE:-cuda}" --set engine.threads=1 2>&1 |
    tee -a "$out/study.log"
  wait
  for log in .normlab/logs/*/*.log; do  # each run's epochs, for timing the next plan
    [ -f "$log" ] && { echo "== $log"; tail -n 3 "$log"; } >>"$out/study.log"
  done
  if [ "$(git rev-list --count "$base"..gpu)" -gt 0 ]; then
    git bundle create "$out/records.bundle" "$base"..gpu 2>/dev/null
    echo "records.bundle: $(git rev-list --count "$base"..gpu) record commits" | tee -a "$out/study.log"
  else
    echo "no record landed" | tee -a "$out/study.log"
  fi
}

land() {
  local bundle=${1:?usage: gpu-study.sh land PATH/records.bundle}
  git fetch -q "$bundle" gpu || exit 2
  local base
  base=$(git merge-base HEAD FETCH_HEAD)
  git cherry-pick "$base"..FETCH_HEAD && echo "landed $(git rev-list --count "$base"..FETCH_HEAD) record commits"
}

case ${1:-} in
  pack) pack ;;
  train) shift && train "$@" ;;
  land) shift && land "$@" ;;
  *) echo "usage: gpu-study.sh pack | train SECONDS STUDY-ARGS... | land BUNDLE"; exit 2 ;;
esac
