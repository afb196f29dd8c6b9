#!/usr/bin/env bash
# Runs the comparative benchmarks six times into bench.txt, then summarises
# them with benchstat (each implementation's median and its confidence
# interval, side by side). A failing benchmark fails the script.
set -euo pipefail
cd "$(dirname "$0")"
go test -run '^$' -bench . -benchmem -count 6 -timeout 30m | tee bench.txt
go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da bench.txt
