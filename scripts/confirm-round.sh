#!/usr/bin/env bash
# The confirmation round of studies/claims-v2.yaml (issue 28): its runs, on fresh seeds, in the
# order and budget the registration states, all trained by ONE code commit (the round's), whatever
# main's training code becomes meanwhile; each record is committed in a runner clone as it lands
# (a session that ends mid-round loses at most the epochs since the last checkpoint) and then
# cherry-picked onto main.
#
#   bash scripts/confirm-round.sh prepare   # the runner clone at ROUND, with main's results/
#   bash scripts/confirm-round.sh run       # the phases below, resuming; JOBS=2 for two at a time
#   bash scripts/confirm-round.sh land      # from main's checkout: cherry-pick the new records
#
# `prepare` makes RUNNER (default ../normlab-confirm) a clone on branch `round` at ROUND, with
# results/ taken from main (a commit that touches results/ only, so the records keep naming
# ROUND as their code) and its own venv; rerun it at the start of each session. Its checkpoints
# go to their own cache ($RUNNER/.cache), so nothing main's work prunes or shares touches them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUND=${ROUND:-e14e3afadb28f8e44c26ecaf512006e911fcd8a7}  # claims v2 registered (the round's code)
RUNNER=${RUNNER:-../normlab-confirm}
JOBS=${JOBS:-1}

prepare() {
  local main
  main=$(git rev-parse HEAD)
  [ -d "$RUNNER/.git" ] || git clone -q . "$RUNNER"
  git -C "$RUNNER" fetch -q "$PWD" "$main"
  git -C "$RUNNER" checkout -q -B round "$ROUND"
  # results/small-batch holds records newer than the round's code can read (data.val); the round
  # neither runs nor judges that study, so it stays out of the runner.
  git -C "$RUNNER" checkout -q "$main" -- results ':!results/small-batch'
  git -C "$RUNNER" diff --cached --quiet ||
    git -C "$RUNNER" commit -qm "results/ from main at ${main:0:7} (the round's code stays ${ROUND:0:7})"
  make -C "$RUNNER" install >"$RUNNER/.install.log" 2>&1 ||
    { echo "error: make install failed in $RUNNER (see $RUNNER/.install.log)" >&2; exit 2; }
  echo "runner $RUNNER: code ${ROUND:0:7}, results from main ${main:0:7}"
}

study() {
  (cd "$RUNNER" && NORMLAB_CACHE="$PWD/.cache" .venv/bin/python -m normlab.analysis.study run \
    --commit --jobs "$JOBS" --set engine.threads=1 "$@")
}

run() {
  export NORMLAB_DATA_MIRROR=${NORMLAB_DATA_MIRROR:-$(cd ../shared/datasets 2>/dev/null && pwd)}
  # The registration's order: (1) the MNIST recipe on fresh seeds, (2) s002-cohort, (3) the tests
  # whose n fits, cheapest first: 002a/002c, 004b, 000a/000b, 001d-acc, 001b/001c.
  study --study norms --variant bn --variant gn --variant ln
  study --file studies/seeds.yaml --study s002-cohort
  study --file studies/seeds.yaml --study s002
  make -C "$RUNNER" proxy >/dev/null
  study --file studies/seeds.yaml --study s004
  study --file studies/seeds.yaml --study s000
  study --file studies/seeds.yaml --study s001 --seed 3 --seed 4 --seed 5
  study --file studies/seeds.yaml --study s001
  echo "confirmation round: every phase ended"
}

land() {
  git fetch -q "$RUNNER" HEAD
  # Commits of the runner not yet on this branch (by patch), records only.
  local picked=0
  for commit in $(git cherry HEAD FETCH_HEAD | sed -n 's/^+ //p'); do
    if git diff-tree --no-commit-id --name-only -r "$commit" | grep -qv '^results/'; then
      continue  # the runner's own bookkeeping (results/ from main), never code
    fi
    case "$(git log -1 --format=%s "$commit")" in
      record:*) git cherry-pick --allow-empty -x "$commit" >/dev/null && picked=$((picked + 1)) ;;
    esac
  done
  echo "landed $picked record commit(s) from $RUNNER"
}

case "${1:-}" in
  prepare | run | land) "$1" ;;
  *) echo "usage: scripts/confirm-round.sh prepare | run | land" >&2; exit 2 ;;
esac
