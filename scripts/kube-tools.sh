#!/usr/bin/env bash
# Builds the binaries of Spindle's local Kubernetes control plane (for the
# operator's tests and `spindle kube dev`) into ${SPINDLE_KUBE_BIN:-~/.cache/spindle/kube/bin}:
#   spindle-controlplane  etcd (go.etcd.io/etcd/server/v3/embed) and the upstream
#                         kube-apiserver (k8s.io/kubernetes v1.37.2), from tools/controlplane
#   kwok                  sigs.k8s.io/kwok v0.8.0: simulated nodes and pod phases
# Both come from the Go module proxy; a rebuild with a warm Go cache takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SPINDLE_KUBE_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/spindle/kube/bin}
mkdir -p "$BIN"
KUBE_VERSION=v1.37.2
KWOK_VERSION=v0.8.0
stamp="$BIN/.versions"
want="kubernetes=$KUBE_VERSION kwok=$KWOK_VERSION $(sha256sum tools/controlplane/go.sum tools/controlplane/main.go | sha256sum | cut -c1-16)"
if [[ -x "$BIN/spindle-controlplane" && -x "$BIN/kwok" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "kube tools: up to date in $BIN"
  exit 0
fi
echo "kube tools: building spindle-controlplane (kube-apiserver $KUBE_VERSION + etcd) and kwok $KWOK_VERSION into $BIN"
(cd tools/controlplane && go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION" -o "$BIN/spindle-controlplane" .)
GOBIN="$BIN" GOFLAGS= go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
echo "$want" > "$stamp"
echo "kube tools: ready in $BIN"
