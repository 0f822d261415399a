package autoscale

import (
	"os"
	"runtime"
)

// Nodes lists the machines instances can be placed on, with their capacity.
// The Loop fills in Node.Used itself from the instances of every function it
// manages, so an implementation reports capacity only.
type Nodes interface {
	Nodes() []Node
}

// StaticNodes is a fixed list of nodes.
type StaticNodes []Node

// Nodes returns a copy of the list.
func (s StaticNodes) Nodes() []Node { return append([]Node(nil), s...) }

// LocalNodes is the platform on one machine: one node, named after the host,
// whose capacity is the machine's CPUs less reserve (CPUs kept for the
// gateway and the system), and at least one Quantum.
func LocalNodes(reserve float64) StaticNodes {
	name, err := os.Hostname()
	if err != nil || name == "" {
		name = "local"
	}
	cpus := quantizeDown(float64(runtime.NumCPU()) - reserve)
	return StaticNodes{{Name: name, CPUs: max(cpus, Quantum)}}
}
