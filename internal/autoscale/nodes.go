package autoscale

import (
	"os"
	"runtime"
)

// Nodes lists the machines instances can be placed on, with their capacity
// and what is allocated on them now: Used counts the vCPUs of every instance
// of every function that is not being stopped. The platform knows this
// without asking each function (a Kubernetes operator reads it from the
// node's pod requests), so a tick costs the functions that are due, not all.
type Nodes interface {
	Nodes() []Node
}

// StaticNodes is a fixed list of nodes.
type StaticNodes []Node

// Nodes returns a copy of the list.
func (s StaticNodes) Nodes() []Node { return append([]Node(nil), s...) }

// Local is the platform on one machine: one node.
type Local struct {
	Name string
	CPUs float64
	// Used reports the vCPUs given to instances now; nil means none.
	Used func() float64
}

// NewLocal returns this machine as a node named after the host, whose
// capacity is its CPUs less reserve (CPUs kept for the gateway and the
// system), at least one Quantum.
func NewLocal(reserve float64, used func() float64) Local {
	name, err := os.Hostname()
	if err != nil || name == "" {
		name = "local"
	}
	cpus := quantizeDown(float64(runtime.NumCPU()) - reserve)
	return Local{Name: name, CPUs: max(cpus, Quantum), Used: used}
}

// Nodes returns the one node.
func (l Local) Nodes() []Node {
	n := Node{Name: l.Name, CPUs: l.CPUs}
	if l.Used != nil {
		n.Used = l.Used()
	}
	return []Node{n}
}
