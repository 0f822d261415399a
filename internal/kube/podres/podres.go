// Package podres reads what a pod asks for and what its kubelet granted, as
// the operator and the simulated kubelet both need it.
package podres

import corev1 "k8s.io/api/core/v1"

// RequestedCPU is the CPU the pod's spec asks for, in millicores.
func RequestedCPU(p *corev1.Pod) int64 {
	var m int64
	for _, c := range p.Spec.Containers {
		m += c.Resources.Requests.Cpu().MilliValue()
	}
	return m
}

// GrantedCPU is the CPU the pod's kubelet reports it runs with
// (containerStatuses[].resources), in millicores; -1 before it reports any.
func GrantedCPU(p *corev1.Pod) int64 {
	m, seen := int64(0), false
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Resources != nil {
			if q, ok := cs.Resources.Requests[corev1.ResourceCPU]; ok {
				m += q.MilliValue()
				seen = true
			}
		}
	}
	if !seen {
		return -1
	}
	return m
}

// Ready reports whether the pod's Ready condition is true.
func Ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
