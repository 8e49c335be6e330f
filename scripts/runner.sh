#!/usr/bin/env bash
# Long studies in a runner clone: every run trained by ONE code commit (CODE), whatever main's
# training code becomes meanwhile; each record committed in the clone as it lands (a session
# that ends mid-study loses at most the epochs since the last checkpoint), then cherry-picked
# onto main. The small-batch study (issue 30) runs this way:
#
#   CODE=<commit> RUNNER=../normlab-small bash scripts/runner.sh prepare
#   RUNNER=../normlab-small JOBS=2 bash scripts/runner.sh study --file studies/small-batch.yaml --study small-batch
#   RUNNER=../normlab-small bash scripts/runner.sh land    # from main's checkout
#
# `prepare` makes RUNNER a clone on branch `runner` at CODE (default: main's HEAD), with
# results/ taken from main in a commit that touches results/ only (so the records keep naming
# CODE as their code), and its own venv; rerun it at the start of each session (it keeps the
# clone's checkpoints in $RUNNER/.cache, where nothing main's work prunes touches them).
# `study` passes its arguments to `python -m normlab.analysis.study run --commit` (one thread a
# run; it resumes). KEEP_OUT names results/ folders main has and the runner must not take (records
# newer than CODE can read). scripts/confirm-round.sh runs issue 28's round through this script.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNNER=${RUNNER:?set RUNNER, the runner clone (e.g. ../normlab-small)}
JOBS=${JOBS:-1}

prepare() {
  local main code
  main=$(git rev-parse HEAD)
  code=$(git rev-parse "${CODE:-HEAD}^{commit}")
  [ -d "$RUNNER/.git" ] || git clone -q . "$RUNNER"
  git -C "$RUNNER" fetch -q "$PWD" "$main"
  if git -C "$RUNNER" rev-parse -q --verify runner >/dev/null &&
    [ "$(git -C "$RUNNER" merge-base runner "$code")" = "$code" ] &&
    git -C "$RUNNER" diff --quiet "$code" runner -- ':!results'; then
    git -C "$RUNNER" checkout -q runner  # same code: keep its records and checkpoints
  else
    git -C "$RUNNER" checkout -q -B runner "$code"
  fi
  local out=() path
  for path in ${KEEP_OUT:-}; do out+=(":!$path"); done
  git -C "$RUNNER" checkout -q "$main" -- results "${out[@]}"
  git -C "$RUNNER" diff --cached --quiet ||
    git -C "$RUNNER" commit -qm "results/ from main at ${main:0:7} (the runner's code stays ${code:0:7})"
  make -C "$RUNNER" install >"$RUNNER/.install.log" 2>&1 ||
    { echo "error: make install failed in $RUNNER (see $RUNNER/.install.log)" >&2; exit 2; }
  echo "runner $RUNNER: code ${code:0:7}, results from main ${main:0:7}"
}

study() {
  export NORMLAB_DATA_MIRROR=${NORMLAB_DATA_MIRROR:-$(cd ../shared/datasets 2>/dev/null && pwd)}
  (cd "$RUNNER" && NORMLAB_CACHE="$PWD/.cache" .venv/bin/python -m normlab.analysis.study run \
    --commit --jobs "$JOBS" --set engine.threads=1 "$@")
}

land() {
  git fetch -q "$RUNNER" HEAD
  # Commits of the runner not yet on this branch (by patch), records only.
  local picked=0
  for commit in $(git cherry HEAD FETCH_HEAD | sed -n 's/^+ //p'); do
    if git diff-tree --no-commit-id --name-only -r "$commit" | grep -qv '^results/'; then
      continue  # never code
    fi
    case "$(git log -1 --format=%s "$commit")" in
      record:*) git cherry-pick --allow-empty -x "$commit" >/dev/null && picked=$((picked + 1)) ;;
    esac
  done
  echo "landed $picked record commit(s) from $RUNNER"
}

command=${1:-}
shift || true
case "$command" in
  prepare | land) "$command" ;;
  study) study "$@" ;;
  *) echo "usage: RUNNER=DIR scripts/runner.sh prepare | study [study run options] | land" >&2; exit 2 ;;
esac
