// Package v1alpha1 is the InferenceFunction API (group spindle.dev, version
// v1alpha1): one Spindle function on a Kubernetes cluster, its model, task and
// autoscaling policy, and what the operator observed and decided.
//
// The CRD in deploy/kubernetes/crd and zz_generated.deepcopy.go are generated
// from these types by controller-gen (scripts/kube-generate.sh).
//
// +kubebuilder:object:generate=true
// +groupName=spindle.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API's group and version.
var GroupVersion = schema.GroupVersion{Group: "spindle.dev", Version: "v1alpha1"}

// AddToScheme registers the API's types with a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &InferenceFunction{}, &InferenceFunctionList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// InferenceFunction is one function: a model served by pods that the operator
// places, resizes in place and adds or removes under its autoscaling policy.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=inf;infer,categories=spindle
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.spec.scaling.policy`
// +kubebuilder:printcolumn:name="Pods",type=integer,JSONPath=`.status.pods`
// +kubebuilder:printcolumn:name="vCPUs",type=string,JSONPath=`.status.vcpus`
// +kubebuilder:printcolumn:name="P99",type=string,JSONPath=`.status.p99`
// +kubebuilder:printcolumn:name="Last decision",type=string,JSONPath=`.status.lastDecision.action`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type InferenceFunction struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   InferenceFunctionSpec   `json:"spec"`
	Status InferenceFunctionStatus `json:"status,omitempty"`
}

// InferenceFunctionSpec is what the user asks for.
type InferenceFunctionSpec struct {
	// Model is where the model comes from.
	Model ModelSource `json:"model"`
	// Task names a task endpoint's pre- and post-processing (as `spindle
	// deploy --task`); empty serves the raw model.
	// +optional
	Task string `json:"task,omitempty"`
	// Config is the task's configuration (labels, tokenizer, ...), as
	// `spindle deploy --config`.
	// +optional
	Config map[string]string `json:"config,omitempty"`
	// Scaling is the autoscaling policy and its parameters.
	Scaling Scaling `json:"scaling"`
	// Tenant owns the function on the gateway; empty is the default tenant.
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`
	Tenant string `json:"tenant,omitempty"`
	// Image is the container image of the function's pods; empty uses the
	// operator's --image.
	// +optional
	Image string `json:"image,omitempty"`
	// Memory is each pod's memory request and limit; it does not change when
	// the pod is resized.
	// +optional
	// +kubebuilder:default="1Gi"
	Memory string `json:"memory,omitempty"`
}

// ModelSource names one model file. Exactly one of its fields is set.
//
// +kubebuilder:validation:XValidation:rule="(has(self.path) ? 1 : 0) + (has(self.url) ? 1 : 0) + (has(self.oci) ? 1 : 0) == 1",message="set exactly one of path, url and oci"
// +kubebuilder:validation:XValidation:rule="!(has(self.url) || has(self.oci)) || has(self.sha256)",message="sha256 is required with url and oci: the node agent verifies the model by it"
type ModelSource struct {
	// Path is a file in the node agent's model cache (a hostPath every pod
	// on the node maps), or on a volume the pods mount.
	// +optional
	Path string `json:"path,omitempty"`
	// URL is an http(s) address the node agent fetches once per node.
	// +optional
	// +kubebuilder:validation:Pattern=`^https?://`
	URL string `json:"url,omitempty"`
	// OCI is an OCI artifact reference the node agent pulls once per node:
	// the layer whose digest is SHA256 (as `oras push` stores a file), or
	// the artifact's only layer.
	// +optional
	OCI string `json:"oci,omitempty"`
	// SHA256 is the file's digest, hex; required with url and oci, checked
	// before any pod maps the file.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{64}$`
	SHA256 string `json:"sha256,omitempty"`
}

// Scaling is an autoscaling policy and its parameters, with the names of
// `spindle up --autoscale` and `--autoscale-param` (slo, interval, window,
// min-vcpus, max-vcpus, min-instances, max-instances, idle-to-zero, ...).
// max-vcpus bounds one pod; max-instances bounds the pods.
type Scaling struct {
	// Policy is hybrid (vertical first, then more pods), hpa (fixed-size
	// replicas), static or predictive.
	// +kubebuilder:default=hybrid
	// +kubebuilder:validation:Enum=hybrid;hpa;static;predictive
	Policy string `json:"policy,omitempty"`
	// Params are the policy's parameters as NAME: VALUE.
	// +optional
	Params map[string]string `json:"params,omitempty"`
}

// InferenceFunctionStatus is what the operator observed and did.
type InferenceFunctionStatus struct {
	// ObservedGeneration is the generation of the spec the status is for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Pods is the number of the function's pods, ready or starting.
	Pods int `json:"pods"`
	// VCPUs is the CPU the function's pods are granted in all, as the
	// kubelets report it (status, not spec), in vCPUs ("2.5").
	// +optional
	VCPUs string `json:"vcpus,omitempty"`
	// P99 is the latest p99 latency the autoscaler read ("420ms").
	// +optional
	P99 string `json:"p99,omitempty"`
	// Placement lists the pods: node, vCPUs asked for and granted.
	// +optional
	Placement []PodPlacement `json:"placement,omitempty"`
	// LastDecision is the latest decision that changed something.
	// +optional
	LastDecision *Decision `json:"lastDecision,omitempty"`
	// Decisions are the latest decisions that changed something, newest
	// last (at most 10).
	// +optional
	Decisions []Decision `json:"decisions,omitempty"`
	// Memory is what the autoscaling policy remembers between decisions,
	// kept here so that a restarted operator goes on where it stopped.
	// +optional
	Memory *PolicyMemory `json:"memory,omitempty"`
	// Conditions: Ready (the spec is valid and some pod serves, or the
	// function is scaled to zero on purpose) and Scaling (a step is under
	// way: pods starting or a resize not yet granted).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PodPlacement is one pod of the function.
type PodPlacement struct {
	Pod  string `json:"pod"`
	Node string `json:"node"`
	// Requested is the pod's CPU in its spec; Granted what its kubelet
	// reports in the pod's status. They differ while a resize is pending.
	Requested string `json:"requested"`
	Granted   string `json:"granted,omitempty"`
	Ready     bool   `json:"ready"`
}

// Decision is one autoscaling decision.
type Decision struct {
	// Time is when the decision was made, to the microsecond.
	Time   metav1.MicroTime `json:"time"`
	Action string           `json:"action"`
	// VCPUs is the target's total, Pods its number of pods.
	VCPUs  string `json:"vcpus"`
	Pods   int    `json:"pods"`
	Reason string `json:"reason"`
}

// PolicyMemory mirrors autoscale.Memory.
type PolicyMemory struct {
	// +optional
	LastChange *metav1.Time `json:"lastChange,omitempty"`
	// +optional
	CalmSince *metav1.Time `json:"calmSince,omitempty"`
	// +optional
	CalmNeed string `json:"calmNeed,omitempty"`
	// +optional
	PanicUntil *metav1.Time `json:"panicUntil,omitempty"`
}

// InferenceFunctionList is a list of InferenceFunctions.
//
// +kubebuilder:object:root=true
type InferenceFunctionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []InferenceFunction `json:"items"`
}
