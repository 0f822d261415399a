#!/usr/bin/env bash
# Builds Spindle's container image without a container engine: a static
# spindle binary (CGO_ENABLED=0) packed by `spindle kube image` into an OCI
# image layout tar (default ./spindle-image.tar, tag spindle:dev).
#   bash scripts/kube-image.sh [OUT.tar] [TAG]
# Then, on a node: ctr -n k8s.io images import OUT.tar; or push it to a
# registry: crane push OUT.tar REGISTRY/spindle:TAG.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-spindle-image.tar}
tag=${2:-spindle:dev}
bin=$(mktemp -d)/spindle
trap 'rm -rf "$(dirname "$bin")"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin" ./cmd/spindle
"$bin" kube image --binary "$bin" -o "$out" --tag "$tag"
