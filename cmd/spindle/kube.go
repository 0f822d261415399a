package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/spindleml/spindle/internal/kube/devcluster"
	"github.com/spindleml/spindle/internal/kube/kubesim"
	"github.com/spindleml/spindle/internal/kube/operator"
)

func newKubeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kube",
		Short: "Spindle on Kubernetes: a local control plane to try the operator with kubectl",
	}
	cmd.AddCommand(newKubeDevCmd())
	return cmd
}

func newKubeDevCmd() *cobra.Command {
	var (
		nodes    int
		nodeCPUs float64
		nodeMem  string
		dir      string
		bin      string
		image    string
	)
	cmd := &cobra.Command{
		Use:   "dev [--nodes N]",
		Short: "Run a local Kubernetes control plane with N simulated nodes and the Spindle operator",
		Long: `Starts a real Kubernetes API server (kube-apiserver v1.37.2 with an embedded
etcd) on this machine, N simulated nodes (kwok: no container runs), the
InferenceFunction CRD and the Spindle operator, and prints a KUBECONFIG for
kubectl. A simulated kubelet grants in-place resizes as a node's capacity
allows; a function's load is simulated too, set with the annotation
` + kubesim.LoadAnnotation + ` ("RATE/s[,SERVICE]"). Ctrl-C stops
everything. The binaries come from scripts/kube-tools.sh.`,
		Example: `  spindle kube dev --nodes 3
  export KUBECONFIG=...   # the path it prints
  kubectl apply -f deploy/kubernetes/examples/bert.yaml
  kubectl annotate inferencefunction bert ` + kubesim.LoadAnnotation + `=30/s
  kubectl get inferencefunctions,pods -o wide`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodes < 1 || nodes > 1000 {
				return usagef("--nodes: must be 1 to 1000, got %d", nodes)
			}
			if !(nodeCPUs >= 0.25) || nodeCPUs > 1024 {
				return usagef("--node-cpus: must be 0.25 to 1024, got %v", nodeCPUs)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return kubeDev(ctx, cmd, devcluster.Config{Dir: dir, Bin: bin, Nodes: nodes, NodeCPUs: nodeCPUs, NodeMemory: nodeMem}, image)
		},
	}
	f := cmd.Flags()
	f.IntVar(&nodes, "nodes", 3, "simulated nodes")
	f.Float64Var(&nodeCPUs, "node-cpus", 4, "allocatable CPUs of each node")
	f.StringVar(&nodeMem, "node-memory", "16Gi", "allocatable memory of each node")
	f.StringVar(&dir, "dir", "", "folder for the cluster's data, certificates, kubeconfig and logs (default: a temporary folder, removed at exit)")
	f.StringVar(&bin, "bin", "", "folder with spindle-controlplane and kwok (default: $SPINDLE_KUBE_BIN, ~/.cache/spindle/kube/bin, PATH)")
	f.StringVar(&image, "image", "spindle:dev", "container image of the functions' pods")
	return cmd
}

func kubeDev(ctx context.Context, cmd *cobra.Command, cfg devcluster.Config, image string) error {
	out := cmd.OutOrStdout()
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "spindle-kube-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		cfg.Dir = d
	}
	if _, err := devcluster.Find(cfg.Bin, devcluster.ControlPlaneBinary); err != nil {
		return usageError{err}
	}
	began := time.Now()
	cl, err := devcluster.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer cl.Stop()
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctrl.SetLogger(logr.FromSlogHandler(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})).Handler()))
	mgr, err := ctrl.NewManager(cl.Rest, ctrl.Options{
		Scheme:                        devcluster.Scheme(),
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		LeaderElection:                true,
		LeaderElectionID:              "spindle-operator",
		LeaderElectionNamespace:       "default",
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return err
	}
	if err := (&kubesim.Kubelet{NodeAnnotation: devcluster.NodeAnnotation}).SetupWithManager(mgr); err != nil {
		return err
	}
	traffic := &kubesim.Traffic{Client: mgr.GetClient(), Label: operator.LabelFunction, FromAnnotation: true}
	op, err := operator.New(operator.Config{Image: image, Stats: traffic, Log: log})
	if err != nil {
		return err
	}
	if err := op.SetupWithManager(mgr); err != nil {
		return err
	}
	fmt.Fprintf(out, "Kubernetes control plane ready in %s: kube-apiserver %s with etcd, %d simulated nodes (kwok) of %g CPUs, the Spindle operator\n",
		time.Since(began).Round(time.Millisecond), devcluster.KubeVersion, cfg.Nodes, cfg.NodeCPUs)
	fmt.Fprintf(out, "KUBECONFIG=%s\n", cl.Kubeconfig)
	fmt.Fprintf(out, "Try:\n  export KUBECONFIG=%s\n  kubectl apply -f deploy/kubernetes/examples/bert.yaml\n  kubectl annotate inferencefunction bert %s=30/s\n  kubectl get inferencefunctions,pods -o wide\nCtrl-C stops it.\n",
		cl.Kubeconfig, kubesim.LoadAnnotation)
	err = mgr.Start(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	fmt.Fprintln(out, "stopping")
	return err
}
