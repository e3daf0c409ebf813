#!/usr/bin/env bash
# Runs every fuzz target of the module briefly (go test -fuzz takes one target of one package at a time).
# FUZZTIME sets how long each runs (default 5s).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}
go test -list '^Fuzz' ./... | awk '
	/^Fuzz/ { targets = targets " " $1; next }
	/^(ok|\?)/ { if (targets != "") print $2 targets; targets = "" }
' | while read -r pkg targets; do
	for t in $targets; do
		echo "fuzz $pkg $t ($fuzztime)"
		go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" "$pkg"
	done
done
