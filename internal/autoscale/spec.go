package autoscale

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrBadSpec marks a spec or parameter that breaks a rule; the message names
// the parameter and the rule.
var ErrBadSpec = errors.New("bad autoscale spec")

// Policy names a scaling policy.
type Policy string

// Policies.
const (
	Hybrid     Policy = "hybrid"
	HPA        Policy = "hpa"
	Static     Policy = "static"
	Predictive Policy = "predictive"
)

// Policies lists every policy, in the order reports show them.
var Policies = []Policy{Hybrid, HPA, Static, Predictive}

// Placement says which node a new instance goes to.
type Placement string

// Placements.
const (
	// FirstFit packs: the first node, in Nodes order, with room.
	FirstFit Placement = "first-fit"
	// Spread, the default, picks the node with the most free CPUs, leaving
	// instances room to grow where they are (the Kubernetes scheduler's
	// least-allocated scoring). First-fit packs new functions onto the
	// first nodes, whose instances then cannot grow vertically and split
	// across nodes: in a 1,000-node simulation it doubled the instances
	// and filled the cluster.
	Spread Placement = "spread"
)

// Load modes, as internal/onnx names them: how an instance holds its model.
const (
	LoadCopy   = "copy"   // read and decode: one private copy per instance, slowest
	LoadSingle = "single" // decode in place: one private copy per instance
	LoadMmap   = "mmap"   // map the file: one copy per node in the page cache, shared
)

// Spec is a function's scaling policy and its parameters. Build one with
// DefaultSpec or ParseSpec; the zero value is not valid.
type Spec struct {
	Policy Policy `json:"policy"`
	// Interval is how often the function is decided on ("interval").
	Interval time.Duration `json:"interval"`
	// Window is the span stats cover ("window").
	Window time.Duration `json:"window"`
	// SLO is the p99 latency target ("slo").
	SLO time.Duration `json:"slo"`
	// MinVCPUs is the smallest instance ("min-vcpus"): where hybrid starts and
	// the floor when shrinking.
	MinVCPUs float64 `json:"min_vcpus"`
	// MaxVCPUs caps one instance ("max-vcpus"); 0 means its node's size.
	MaxVCPUs float64 `json:"max_vcpus"`
	// MinInstances is kept even when idle ("min-instances"); 0 lets the
	// function go to zero.
	MinInstances int `json:"min_instances"`
	// MaxInstances caps instances, hpa's replicas ("max-instances"); 0 means
	// no cap.
	MaxInstances int `json:"max_instances"`
	// ReplicaVCPUs is the size of every hpa replica ("replica-vcpus").
	ReplicaVCPUs float64 `json:"replica_vcpus,omitempty"`
	// VCPUs and Instances are static's fixed size ("vcpus", "instances").
	VCPUs     float64 `json:"vcpus,omitempty"`
	Instances int     `json:"instances,omitempty"`
	// Stabilization is how long scale-down conditions must hold before
	// capacity is lowered ("stabilization").
	Stabilization time.Duration `json:"stabilization"`
	// DownBelow is the fraction of the SLO under which p99 counts as well
	// under it, for hybrid and hpa ("down-below").
	DownBelow float64 `json:"down_below,omitempty"`
	// IdleToZero is the idle time after which every instance stops
	// ("idle-to-zero"); 0 never goes to zero.
	IdleToZero time.Duration `json:"idle_to_zero"`
	// TargetUtilization is the share of allocated vCPUs predictive plans to
	// keep busy ("target-utilization").
	TargetUtilization float64 `json:"target_utilization,omitempty"`
	// PanicWindow is the recent span that ShortRate covers ("panic-window").
	PanicWindow time.Duration `json:"panic_window,omitempty"`
	// PanicThreshold is the ratio of short-window need to capacity at which
	// predictive panics ("panic-threshold").
	PanicThreshold float64 `json:"panic_threshold,omitempty"`
	// Hysteresis is how far, as a fraction of capacity, need must fall below
	// capacity before predictive considers scaling down ("hysteresis").
	Hysteresis float64 `json:"hysteresis,omitempty"`
	// Placement picks nodes for new instances ("placement").
	Placement Placement `json:"placement"`
	// Load is how instances load the model ("load"): copy, single or mmap.
	// The decision does not read it; the actuator and the simulator do.
	Load string `json:"load"`
}

// DefaultSpec returns the policy's defaults: the thesis's setting (5 s
// interval, 500 ms SLO, doubling from 1 vCPU or 1 replica) for hybrid and hpa,
// Knative-like windows for predictive.
func DefaultSpec(p Policy) (Spec, error) {
	s := Spec{
		Policy:        p,
		Interval:      5 * time.Second,
		Window:        10 * time.Second,
		SLO:           500 * time.Millisecond,
		MinVCPUs:      1,
		Stabilization: 30 * time.Second,
		IdleToZero:    60 * time.Second,
		Placement:     Spread,
		Load:          LoadMmap,
	}
	switch p {
	case Hybrid:
		s.DownBelow = 0.5
	case HPA:
		s.DownBelow = 0.5
		s.ReplicaVCPUs = 1
		s.Load = LoadCopy
	case Static:
		s.VCPUs, s.Instances = 1, 1
		s.IdleToZero = 0
	case Predictive:
		s.Interval = time.Second
		s.MinVCPUs = Quantum
		s.TargetUtilization = 0.7
		s.PanicWindow = 2 * time.Second
		s.PanicThreshold = 2
		s.Hysteresis = 0.2
	default:
		return Spec{}, fmt.Errorf("%w: policy %q: must be one of %s", ErrBadSpec, p, policyList())
	}
	return s, nil
}

func policyList() string {
	names := make([]string, len(Policies))
	for i, p := range Policies {
		names[i] = string(p)
	}
	return strings.Join(names, ", ")
}

// param describes one parameter: which policies read it and how to set it.
type param struct {
	policies []Policy // nil: all
	set      func(s *Spec, v string) error
}

func durationParam(f func(*Spec) *time.Duration) func(*Spec, string) error {
	return func(s *Spec, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("want a duration such as 5s or 500ms")
		}
		*f(s) = d
		return nil
	}
}

func floatParam(f func(*Spec) *float64) func(*Spec, string) error {
	return func(s *Spec, v string) error {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("want a number")
		}
		*f(s) = x
		return nil
	}
}

func intParam(f func(*Spec) *int) func(*Spec, string) error {
	return func(s *Spec, v string) error {
		x, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("want an integer")
		}
		*f(s) = x
		return nil
	}
}

var (
	scaling  = []Policy{Hybrid, HPA, Predictive}
	doubling = []Policy{Hybrid, HPA}
	sized    = []Policy{Hybrid, Predictive}
)

var params = map[string]param{
	"interval":      {nil, durationParam(func(s *Spec) *time.Duration { return &s.Interval })},
	"window":        {nil, durationParam(func(s *Spec) *time.Duration { return &s.Window })},
	"slo":           {nil, durationParam(func(s *Spec) *time.Duration { return &s.SLO })},
	"min-vcpus":     {sized, floatParam(func(s *Spec) *float64 { return &s.MinVCPUs })},
	"max-vcpus":     {sized, floatParam(func(s *Spec) *float64 { return &s.MaxVCPUs })},
	"min-instances": {scaling, intParam(func(s *Spec) *int { return &s.MinInstances })},
	"max-instances": {scaling, intParam(func(s *Spec) *int { return &s.MaxInstances })},
	"replica-vcpus": {[]Policy{HPA}, floatParam(func(s *Spec) *float64 { return &s.ReplicaVCPUs })},
	"vcpus":         {[]Policy{Static}, floatParam(func(s *Spec) *float64 { return &s.VCPUs })},
	"instances":     {[]Policy{Static}, intParam(func(s *Spec) *int { return &s.Instances })},
	"stabilization": {scaling, durationParam(func(s *Spec) *time.Duration { return &s.Stabilization })},
	"down-below":    {doubling, floatParam(func(s *Spec) *float64 { return &s.DownBelow })},
	"idle-to-zero":  {scaling, durationParam(func(s *Spec) *time.Duration { return &s.IdleToZero })},
	"target-utilization": {[]Policy{Predictive},
		floatParam(func(s *Spec) *float64 { return &s.TargetUtilization })},
	"panic-window": {[]Policy{Predictive}, durationParam(func(s *Spec) *time.Duration { return &s.PanicWindow })},
	"panic-threshold": {[]Policy{Predictive},
		floatParam(func(s *Spec) *float64 { return &s.PanicThreshold })},
	"hysteresis": {[]Policy{Predictive}, floatParam(func(s *Spec) *float64 { return &s.Hysteresis })},
	"placement": {nil, func(s *Spec, v string) error {
		s.Placement = Placement(v)
		return nil
	}},
	"load": {nil, func(s *Spec, v string) error {
		s.Load = v
		return nil
	}},
}

// ParamNames lists the parameter names ParseSpec accepts for a policy, sorted.
func ParamNames(p Policy) []string {
	var names []string
	for name, prm := range params {
		if prm.applies(p) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

func (p param) applies(pol Policy) bool {
	if p.policies == nil {
		return true
	}
	for _, q := range p.policies {
		if q == pol {
			return true
		}
	}
	return false
}

// ParseSpec builds a policy's spec from its defaults and key=value
// parameters, and validates it. An unknown key, a key the policy does not
// read, an unparsable value or a broken rule is an error wrapping ErrBadSpec
// that names the parameter.
func ParseSpec(p Policy, kv map[string]string) (Spec, error) {
	s, err := DefaultSpec(p)
	if err != nil {
		return Spec{}, err
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the first bad key deterministically
	for _, k := range keys {
		prm, ok := params[k]
		if !ok {
			return Spec{}, fmt.Errorf("%w: %s: unknown parameter (%s takes %s)",
				ErrBadSpec, k, p, strings.Join(ParamNames(p), ", "))
		}
		if !prm.applies(p) {
			return Spec{}, fmt.Errorf("%w: %s: not a parameter of policy %s", ErrBadSpec, k, p)
		}
		if err := prm.set(&s, kv[k]); err != nil {
			return Spec{}, fmt.Errorf("%w: %s=%q: %v", ErrBadSpec, k, kv[k], err)
		}
	}
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// ParseParams splits "key=value" strings into a map; a malformed or repeated
// key is an error wrapping ErrBadSpec.
func ParseParams(list []string) (map[string]string, error) {
	kv := make(map[string]string, len(list))
	for _, item := range list {
		k, v, ok := strings.Cut(item, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%w: %q: want key=value", ErrBadSpec, item)
		}
		if _, dup := kv[k]; dup {
			return nil, fmt.Errorf("%w: %s: given twice", ErrBadSpec, k)
		}
		kv[k] = v
	}
	return kv, nil
}

// Validate checks every rule; the error wraps ErrBadSpec and names the first
// parameter that breaks one.
func (s Spec) Validate() error {
	bad := func(name, rule string, got any) error {
		return fmt.Errorf("%w: %s: %s, got %v", ErrBadSpec, name, rule, got)
	}
	vcpus := func(name string, v float64, zeroOK bool) error {
		if v == 0 && zeroOK {
			return nil
		}
		if !(v >= Quantum) || v > 1e6 || !onQuantum(v) {
			return bad(name, fmt.Sprintf("must be a multiple of %g vCPU, at least %g", Quantum, Quantum), v)
		}
		return nil
	}
	fraction := func(name string, v float64, lo, hi float64, hiIncl bool) error {
		if !(v > lo) || v > hi || (!hiIncl && v == hi) {
			rule := fmt.Sprintf("must be in (%g, %g)", lo, hi)
			if hiIncl {
				rule = fmt.Sprintf("must be in (%g, %g]", lo, hi)
			}
			return bad(name, rule, v)
		}
		return nil
	}
	switch s.Policy {
	case Hybrid, HPA, Static, Predictive:
	default:
		return fmt.Errorf("%w: policy %q: must be one of %s", ErrBadSpec, s.Policy, policyList())
	}
	switch {
	case s.Interval < 100*time.Millisecond:
		return bad("interval", "must be at least 100ms", s.Interval)
	case s.Window < s.Interval:
		return bad("window", fmt.Sprintf("must be at least the interval (%v)", s.Interval), s.Window)
	case s.SLO <= 0:
		return bad("slo", "must be > 0", s.SLO)
	case s.MinInstances < 0:
		return bad("min-instances", "must be >= 0", s.MinInstances)
	case s.MaxInstances < 0:
		return bad("max-instances", "must be >= 0 (0: no cap)", s.MaxInstances)
	case s.MaxInstances != 0 && s.MaxInstances < max(1, s.MinInstances):
		return bad("max-instances", fmt.Sprintf("must be 0 or at least max(1, min-instances=%d)", s.MinInstances), s.MaxInstances)
	case s.Stabilization < 0:
		return bad("stabilization", "must be >= 0", s.Stabilization)
	case s.IdleToZero < 0:
		return bad("idle-to-zero", "must be >= 0 (0: never)", s.IdleToZero)
	}
	if err := vcpus("min-vcpus", s.MinVCPUs, false); err != nil {
		return err
	}
	if err := vcpus("max-vcpus", s.MaxVCPUs, true); err != nil {
		return err
	}
	if s.MaxVCPUs != 0 && s.MaxVCPUs < s.MinVCPUs {
		return bad("max-vcpus", fmt.Sprintf("must be 0 or at least min-vcpus (%g)", s.MinVCPUs), s.MaxVCPUs)
	}
	switch s.Placement {
	case FirstFit, Spread:
	default:
		return bad("placement", fmt.Sprintf("must be %s or %s", FirstFit, Spread), fmt.Sprintf("%q", s.Placement))
	}
	switch s.Load {
	case LoadCopy, LoadSingle, LoadMmap:
	default:
		return bad("load", "must be copy, single or mmap", fmt.Sprintf("%q", s.Load))
	}
	switch s.Policy {
	case Hybrid, HPA:
		if err := fraction("down-below", s.DownBelow, 0, 1, false); err != nil {
			return err
		}
	}
	switch s.Policy {
	case HPA:
		if err := vcpus("replica-vcpus", s.ReplicaVCPUs, false); err != nil {
			return err
		}
	case Static:
		if err := vcpus("vcpus", s.VCPUs, false); err != nil {
			return err
		}
		if s.Instances < 1 {
			return bad("instances", "must be at least 1", s.Instances)
		}
	case Predictive:
		if err := fraction("target-utilization", s.TargetUtilization, 0, 1, true); err != nil {
			return err
		}
		if s.PanicWindow <= 0 || s.PanicWindow > s.Window {
			return bad("panic-window", fmt.Sprintf("must be > 0 and at most the window (%v)", s.Window), s.PanicWindow)
		}
		if !(s.PanicThreshold > 1) || s.PanicThreshold > 1e6 {
			return bad("panic-threshold", "must be > 1", s.PanicThreshold)
		}
		if !(s.Hysteresis >= 0) || s.Hysteresis >= 1 {
			return bad("hysteresis", "must be in [0, 1)", s.Hysteresis)
		}
	}
	return nil
}

// capOn is the largest an instance may grow on a node of the given size.
func (s Spec) capOn(node Node) float64 {
	if s.MaxVCPUs > 0 {
		return quantizeDown(min(s.MaxVCPUs, node.CPUs))
	}
	return quantizeDown(node.CPUs)
}

// String is the policy with its main parameters, for logs and reports.
func (s Spec) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s interval=%v window=%v slo=%v", s.Policy, s.Interval, s.Window, s.SLO)
	switch s.Policy {
	case Hybrid:
		fmt.Fprintf(&b, " min-vcpus=%g max-vcpus=%g", s.MinVCPUs, s.MaxVCPUs)
	case HPA:
		fmt.Fprintf(&b, " replica-vcpus=%g max-instances=%d", s.ReplicaVCPUs, s.MaxInstances)
	case Static:
		fmt.Fprintf(&b, " vcpus=%g instances=%d", s.VCPUs, s.Instances)
	case Predictive:
		fmt.Fprintf(&b, " target-utilization=%g panic-threshold=%g", s.TargetUtilization, s.PanicThreshold)
	}
	fmt.Fprintf(&b, " load=%s", s.Load)
	return b.String()
}
