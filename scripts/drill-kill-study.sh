#!/usr/bin/env bash
# Drill (issue 16): SIGKILL a 2-job study and every process it started, mid-run, then rerun the
# same command. Checks that the rerun finishes with every planned run recorded exactly once, that
# no run that had finished an epoch before the kill is trained from scratch again (it resumes
# from its checkpoint), that resuming changed no number (`study verify` retrains one resumed run
# from scratch), and that no checkpoint is left behind. Runs on a clone of HEAD in a temp
# folder with real MNIST (4 runs × 4 epochs on 6,000 images): about 3 minutes on 2 cores.
#
# Usage: scripts/drill-kill-study.sh     (PY=python to use another interpreter; KEEP=1 keeps
# the temp folder). Prints each check; exits non-zero on the first that fails.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/normlab-drill-study.XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

git clone -q "$ROOT" "$WORK/repo"
cd "$WORK/repo"
export NORMLAB_CACHE=$WORK/cache OMP_NUM_THREADS=1
cat > studies/drill.yaml <<'EOF'
studies:
  drill:
    description: four runs, killed mid-way and resumed
    epochs: 4
    seeds: [0]
    set: {data.limit: 6000, device: cpu, engine.threads: 1}
    variants: {bn: {norm: bn}, gn: {norm: gn}, ln: {norm: ln}, bn-l2: {norm: bn, l2: 2.0e-4}}
EOF
study=("$PY" -m normlab.analysis.study run --file studies/drill.yaml --jobs 2)
echo "drill in $WORK/repo: python -m normlab.analysis.study run --file studies/drill.yaml --jobs 2"

# setsid: the study and its workers form one process group, killed as one below
setsid "${study[@]}" > first.out 2>&1 &
group=$!
for _ in $(seq 1500); do  # up to 5 min for both workers to finish an epoch
  found=$({ find "$NORMLAB_CACHE/checkpoints" -name '*.pt' 2>/dev/null || true; } | wc -l)
  [ "$found" -ge 2 ] && break
  kill -0 "$group" 2>/dev/null || fail "the study ended before the kill: $(tail -3 first.out)"
  sleep 0.2
done
[ "$found" -ge 2 ] || fail "no two checkpoints after 5 minutes: $(tail -3 first.out)"
kill -KILL -- "-$group"
sleep 1
# dead workers whose parent died may stay zombies (state Z) until init reaps them: not alive
alive=$(ps -e -o pgid=,stat= | awk -v g="$group" '$1 == g && $2 !~ /^Z/' | wc -l)
[ "$alive" -eq 0 ] || fail "$alive processes of group $group survived SIGKILL"
echo "ok: SIGKILL to the study's process group ($found runs mid-way, checkpoints kept)"
echo "--- before the kill:"; cat first.out

"${study[@]}" > second.out 2>&1 || fail "the rerun failed: $(tail -5 second.out)"
echo "--- the rerun:"; cat second.out

"$PY" - <<'EOF' || exit 1
"""The checks on the two invocations' output, their worker logs and the records."""
import os
import re
import sys
from pathlib import Path


from normlab.analysis.study import store

def fail(message):
    sys.exit(f"FAIL: {message}")

first, second = Path("first.out").read_text(), Path("second.out").read_text()
logs = sorted(p for p in Path(".normlab/logs").iterdir())  # a folder per runner
if len(logs) != 2:
    fail(f"expected the worker logs of two invocations, found {len(logs)}")
found = store.read_all(Path("results/drill/runs"))
labels = sorted(r.label() for r in found)
if labels != ["drill/bn-l2/s0", "drill/bn/s0", "drill/gn/s0", "drill/ln/s0"]:
    fail(f"records: {labels}")
if "4/4 runs have records" not in second:
    fail("the rerun does not say 4/4 runs have records")
print("ok: every planned run has exactly one record:", ", ".join(labels))

started = set(re.findall(r"start \d+/\d+ (\S+) \(pid", first))
resumed = []
for label in sorted(started):
    name = label.replace("/", "-") + ".log"
    before = (logs[0] / name).read_text()
    after = logs[1] / name
    if "epoch   1/4" not in before:
        continue  # killed before its first epoch ended: nothing to resume
    if after.exists():
        text = after.read_text()
        if "resuming from" not in text or "epoch   1/4" in text:
            fail(f"{label} finished an epoch before the kill but was trained from scratch again")
        resumed.append((label, re.search(r"(\d+) of 4 epochs done", text).group(1)))
    elif not re.search(rf"done \d+/\d+ {label}:", first):
        fail(f"{label} was neither finished before the kill nor started after it")
if not resumed:
    fail("no run was mid-way at the kill: nothing was tested")
print("ok: no run trained twice from scratch; resumed:",
      ", ".join(f"{label} after {n} of 4 epochs" for label, n in resumed))
for record in found:
    if [h["epoch"] for h in record.history] != [1, 2, 3, 4]:
        fail(f"{record.source}: history epochs {[h['epoch'] for h in record.history]}")
print("ok: every record has epochs 1-4 in its history")
left = list((Path(os.environ["NORMLAB_CACHE"]) / "checkpoints").glob("*.pt"))
if left:
    fail(f"checkpoints left behind: {left}")
print("ok: no checkpoint left behind")
Path("resumed.txt").write_text(resumed[0][0])
EOF

run=results/drill/runs/$(cat resumed.txt).json  # e.g. results/drill/runs/drill/gn/s0.json
"$PY" -m normlab.analysis.study verify "$run" > verify.out 2>&1 \
  || fail "a resumed run differs from the same run trained in one go: $(tail -8 verify.out)"
grep "verdict" verify.out
echo "ok: $run (resumed after the kill) equals the run retrained from scratch"
echo "drill passed"
