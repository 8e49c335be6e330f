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
# `prepare` (scripts/runner.sh's, CODE=ROUND) makes RUNNER (default ../normlab-confirm) a clone at ROUND, with
# results/ taken from main (a commit that touches results/ only, so the records keep naming
# ROUND as their code) and its own venv; rerun it at the start of each session. Its checkpoints
# go to their own cache ($RUNNER/.cache), so nothing main's work prunes or shares touches them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUND=${ROUND:-e14e3afadb28f8e44c26ecaf512006e911fcd8a7}  # claims v2 registered (the round's code)
RUNNER=${RUNNER:-../normlab-confirm}
JOBS=${JOBS:-1}

runner() {
  # results/small-batch holds records newer than the round's code can read (data.val); the round
  # neither runs nor judges that study, so it stays out of the runner.
  CODE=$ROUND RUNNER=$RUNNER JOBS=$JOBS KEEP_OUT=results/small-batch bash scripts/runner.sh "$@"
}

study() { runner study "$@"; }

run() {
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

case "${1:-}" in
  prepare | land) runner "$1" ;;
  run) run ;;
  *) echo "usage: scripts/confirm-round.sh prepare | run | land" >&2; exit 2 ;;
esac
