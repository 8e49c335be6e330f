#!/usr/bin/env bash
# Drill (issue 16): a `dvc exp run` killed with SIGKILL after epoch 2 resumes when rerun, and
# ends with the same metrics/eval.json as an uninterrupted run. Prints what it checked; exits
# non-zero on any failure. Uses this checkout's .venv; runs in throw-away clones (~2 min).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv="$repo/.venv"
[ -x "$venv/bin/dvc" ] || { echo "drill: $venv has no dvc: run make install first" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PATH="$venv/bin:$PATH" NORMLAB_CACHE="$work/cache" OMP_NUM_THREADS=1
RUN=(-S norm=gn -S train.epochs=4 -S data.limit=12000 -S seed=3)

clone() {  # a fresh clone of the committed code, with the venv the Makefile would build
  git clone -q "$repo" "$work/$1"
  ln -s "$venv" "$work/$1/.venv"
}

clone killed
cd "$work/killed"
setsid dvc exp run "${RUN[@]}" > "$work/first.log" 2>&1 &
pid=$!
for _ in $(seq 600); do  # wait until epoch 2 is logged (and so checkpointed), at most 10 min
  grep -q "epoch   2/4" "$work/first.log" && break
  kill -0 $pid 2>/dev/null || { cat "$work/first.log"; echo "FAIL: run ended before epoch 2"; exit 1; }
  sleep 1
done
kill -KILL -- -$pid  # the whole process group: dvc and the stage it runs
wait $pid 2>/dev/null || true
echo "killed dvc exp run after: $(grep -o 'epoch   [0-9]/4' "$work/first.log" | tail -1)"
ls "$NORMLAB_CACHE"/checkpoints/*.pt > /dev/null || { echo "FAIL: no checkpoint survived the kill"; exit 1; }

dvc exp run "${RUN[@]}" > "$work/second.log" 2>&1 || { cat "$work/second.log"; echo "FAIL: rerun failed"; exit 1; }
resumed=$(grep -o "resuming from .*" "$work/second.log" || true)
[ -n "$resumed" ] || { cat "$work/second.log"; echo "FAIL: the rerun did not resume"; exit 1; }
echo "rerun: $resumed"
grep -q "epoch   1/4" "$work/second.log" && { echo "FAIL: the rerun trained epoch 1 again"; exit 1; }

clone plain
cd "$work/plain"
NORMLAB_CACHE="$work/cache-plain" dvc exp run "${RUN[@]}" > "$work/plain.log" 2>&1 \
  || { cat "$work/plain.log"; echo "FAIL: uninterrupted run failed"; exit 1; }
if cmp -s "$work/killed/metrics/eval.json" "$work/plain/metrics/eval.json"; then
  echo "metrics/eval.json identical to an uninterrupted run: test acc" \
    "$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["test"]["acc"])' "$work/plain/metrics/eval.json") %"
else
  diff "$work/killed/metrics/eval.json" "$work/plain/metrics/eval.json" || true
  echo "FAIL: resumed and uninterrupted metrics differ"; exit 1
fi
leftover=$(ls "$NORMLAB_CACHE"/checkpoints/ 2>/dev/null | wc -l)
[ "$leftover" -eq 0 ] || { echo "FAIL: $leftover checkpoint(s) left after the run finished"; exit 1; }
echo "checkpoint removed after the finished run"
echo "drill passed"
