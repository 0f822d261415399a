#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine with Go: installs what the
# tests need (scripts/testdeps.sh), then runs vet, the unit and end-to-end tests,
# the race detector over the concurrent packages, the kernels without assembly
# (-tags noasm), the reliability suite's short form (spindle bench chaos
# --quick), and each fuzz target for a bounded number of executions.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/testdeps.sh

echo "== go vet"
go vet ./...

echo "== go test"
go test -count=1 -timeout 20m ./...

echo "== go test -race (concurrent packages)"
race_pkgs=()
for p in gateway instance admit autoscale sandbox kube; do
  [ -d "internal/$p" ] && race_pkgs+=("./internal/$p/...")
done
go test -count=1 -race -timeout 15m "${race_pkgs[@]}"
# The kernel worker pool and the tests that share one model among goroutines
# or split one request over threads (the rest of engine and kernels is
# single-goroutine, and testing.AllocsPerRun counts differ under -race).
# The int8 multiplies and convolutions split over threads too (QDQ, QLinearConv,
# a quantized model shared by goroutines).
go test -count=1 -race -timeout 10m -run 'Parallel|Concurrent|ThreadBudget|Fusion|FusedBERT|ConvProgram|ConvTransposePatches|MaxPoolPlanes|SoftmaxRows|ConvDepthwise|ConvIm2col|QDQ|QLinear' ./internal/kernels ./internal/engine
go test -count=1 -race -timeout 5m -run 'Concurrently' ./internal/quantize

if [ -d internal/kernels ]; then
  echo "== go test -tags noasm (pure-Go kernels)"
  go test -count=1 -tags noasm ./internal/kernels/... ./internal/engine/...
fi

echo "== spindle bench chaos --quick (the reliability suite's short form, against a real spindle up)"
chaos_out=$(mktemp -d)
go run ./cmd/spindle bench chaos --quick --out "$chaos_out" || { cat "$chaos_out"/chaos/report.md 2>/dev/null; exit 1; }
rm -rf "$chaos_out"

echo "== fuzz (bounded)"
# An execution count, not a duration: Go 1.26's fuzz coordinator can report a
# spurious "context deadline exceeded" when a duration ends while a worker is
# busy on a loaded machine (golang/go#75804, fixed in Go 1.27); a count has no
# deadline to race.
fuzztime=${SPINDLE_FUZZTIME:-50000x}
grep -rHoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' internal | sort -u |
while IFS=: read -r file decl; do
  target=${decl#func }
  pkg=$(dirname "$file")
  echo "-- ${target} (${pkg}, ${fuzztime})"
  go test -run='^$' -fuzz="^${target}\$" -fuzztime="${fuzztime}" "./${pkg}" >/tmp/spindle-fuzz.log 2>&1 || { cat /tmp/spindle-fuzz.log; exit 1; }
done
echo "== all tests passed"
