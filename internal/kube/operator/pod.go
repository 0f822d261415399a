package operator

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/spindleml/spindle/internal/kube/api/v1alpha1"
)

// podFor is the pod of one instance of f on node with vcpus: requests equal
// limits (a Guaranteed pod whose CPU the kubelet can resize in place without
// a restart), the node's model cache mounted read-only, the instance's
// readiness on the OIP health route.
func (o *Operator) podFor(f *v1alpha1.InferenceFunction, node string, vcpus float64) (*corev1.Pod, error) {
	image := f.Spec.Image
	if image == "" {
		image = o.cfg.Image
	}
	if image == "" {
		return nil, fmt.Errorf("function %s/%s: no image (spec.image, or the operator's --image)", f.Namespace, f.Name)
	}
	memText := f.Spec.Memory
	if memText == "" {
		memText = "1Gi"
	}
	mem, err := resource.ParseQuantity(memText)
	if err != nil {
		return nil, fmt.Errorf("spec.memory: %w", err)
	}
	cpu := cpuQuantity(vcpus)
	res := corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem}
	// The kubelet resizes the pod's cgroup in place and tells the instance
	// nothing: it reads its own quota and sizes its workers to it.
	args := []string{"instance", "--name", f.Name, "--model", modelPath(f), "--listen", ":" + strconv.Itoa(InstancePort),
		"--memory-limit", strconv.FormatInt(mem.Value(), 10), "--follow-cgroup", "500ms"}
	// How the instance loads the model (the policy's "load": mmap shares one
	// copy per node through the page cache; hpa's baseline copies).
	if spec, err := SpecOf(f); err == nil && spec.Load != "" {
		args = append(args, "--load", spec.Load)
	}
	if f.Spec.Task != "" {
		args = append(args, "--task", f.Spec.Task)
		if len(f.Spec.Config) > 0 {
			cfg, err := json.Marshal(f.Spec.Config)
			if err != nil {
				return nil, err
			}
			args = append(args, "--task-config", string(cfg))
		}
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: f.Name + "-",
			Namespace:    f.Namespace,
			Labels:       map[string]string{LabelFunction: f.Name, "app.kubernetes.io/managed-by": "spindle-operator"},
		},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			AutomountServiceAccountToken:  new(false),
			TerminationGracePeriodSeconds: new(int64(15)),
			Containers: []corev1.Container{{
				Name:      ContainerName,
				Image:     image,
				Args:      args,
				Ports:     []corev1.ContainerPort{{Name: "http", ContainerPort: InstancePort}},
				Resources: corev1.ResourceRequirements{Requests: res, Limits: res},
				ResizePolicy: []corev1.ContainerResizePolicy{
					{ResourceName: corev1.ResourceCPU, RestartPolicy: corev1.NotRequired},
					{ResourceName: corev1.ResourceMemory, RestartPolicy: corev1.RestartContainer},
				},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/v2/health/ready", Port: intstr.FromInt32(InstancePort)}},
					PeriodSeconds: 1,
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "models", MountPath: ModelCache, ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: ModelCache, Type: new(corev1.HostPathDirectoryOrCreate)},
			}}},
		},
	}
	if err := controllerutil.SetControllerReference(f, p, o.c.Scheme()); err != nil {
		return nil, err
	}
	return p, nil
}

// modelPath is where the pod finds the model: the node agent keeps fetched
// models under their sha256, and a path model is taken as it is.
func modelPath(f *v1alpha1.InferenceFunction) string {
	m := f.Spec.Model
	if m.Path != "" {
		return m.Path
	}
	return path.Join(ModelCache, "sha256", m.SHA256, "model")
}
