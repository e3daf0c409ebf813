#!/usr/bin/env bash
# make chaos: the chaos tests of cmd/agent/chaos_test.go with many more kills and teams than `make test`
# runs, then a table of their reports. BYOB_CHAOS_KILLS, BYOB_CHAOS_TEAMS and BYOB_CHAOS_SEED override
# the profile; a failed run prints its seed, and BYOB_CHAOS_SEED=<seed> replays its plan.
set -euo pipefail
cd "$(dirname "$0")/.."
export BYOB_CHAOS_KILLS=${BYOB_CHAOS_KILLS:-25} BYOB_CHAOS_TEAMS=${BYOB_CHAOS_TEAMS:-120}
report=$(mktemp "${TMPDIR:-/tmp}/byob-chaos.XXXXXX")
trap 'rm -f "$report"' EXIT
echo "chaos: $BYOB_CHAOS_KILLS kills, $BYOB_CHAOS_TEAMS teams${BYOB_CHAOS_SEED:+, seed $BYOB_CHAOS_SEED}"
start=$SECONDS
status=0
BYOB_CHAOS_REPORT=$report go test -race -count=1 -timeout 20m -run '^TestChaos' ./cmd/agent || status=$?
echo
go run scripts/chaos_table.go "$report" || status=1
echo "chaos: $((SECONDS - start)) s"
exit "$status"
