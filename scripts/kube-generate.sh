#!/usr/bin/env bash
# Regenerates what is generated from the InferenceFunction Go types
# (internal/kube/api/v1alpha1): its deepcopy functions and the CRD manifest in
# deploy/kubernetes/crd. controller-gen comes from the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
CONTROLLER_GEN=${CONTROLLER_GEN:-sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0}
go run "$CONTROLLER_GEN" object paths=./internal/kube/api/...
go run "$CONTROLLER_GEN" crd paths=./internal/kube/api/... output:crd:dir=deploy/kubernetes/crd
