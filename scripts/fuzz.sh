#!/usr/bin/env bash
# Runs every fuzz target of the module briefly (go test -fuzz takes one target of one package at a time).
# FUZZTIME sets how much each runs (default 10000x: a count, not a duration, because Go 1.26's fuzz
# coordinator can fail a target with a spurious "context deadline exceeded" when a -fuzztime duration
# ends, golang/go#75804, fixed in Go 1.27).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10000x}
go test -list '^Fuzz' ./... | awk '
	/^Fuzz/ { targets = targets " " $1; next }
	/^(ok|\?)/ { if (targets != "") print $2 targets; targets = "" }
' | while read -r pkg targets; do
	for t in $targets; do
		echo "fuzz $pkg $t ($fuzztime)"
		go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" "$pkg"
	done
done
