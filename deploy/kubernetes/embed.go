// Package kubernetes holds Spindle's Kubernetes manifests; the CRD is embedded
// so that the operator and `spindle kube dev` install the one in this folder.
package kubernetes

import _ "embed"

// CRD is the InferenceFunction CustomResourceDefinition, generated from the
// Go types by scripts/kube-generate.sh.
//
//go:embed crd/spindle.dev_inferencefunctions.yaml
var CRD []byte

// Operator is the operator's namespace, service account, RBAC and
// Deployment.
//
//go:embed operator.yaml
var Operator []byte

// NodeAgent is the node agent's service account, RBAC and DaemonSet.
//
//go:embed node-agent.yaml
var NodeAgent []byte

// Gateway is the gateway's service account, RBAC (for the namespace
// "default"), Deployment and Service.
//
//go:embed gateway.yaml
var Gateway []byte
