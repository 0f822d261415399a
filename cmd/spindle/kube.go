package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/spindleml/spindle/internal/kube/devcluster"
	"github.com/spindleml/spindle/internal/kube/image"
	"github.com/spindleml/spindle/internal/kube/kubesim"
	"github.com/spindleml/spindle/internal/kube/nodeagent"
	"github.com/spindleml/spindle/internal/kube/operator"
)

func newKubeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kube",
		Short: "Spindle on Kubernetes: a local control plane to try the operator with kubectl",
	}
	cmd.AddCommand(newKubeDevCmd(), newKubeImageCmd())
	return cmd
}

func newKubeDevCmd() *cobra.Command {
	var (
		nodes    int
		nodeCPUs float64
		nodeMem  string
		dir      string
		bin      string
		podImage string
		withOp   bool
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
			if q, err := resource.ParseQuantity(nodeMem); err != nil || q.Sign() <= 0 {
				return usagef("--node-memory: %q: want a positive Kubernetes quantity such as 16Gi", nodeMem)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return kubeDev(ctx, cmd, devcluster.Config{Dir: dir, Bin: bin, Nodes: nodes, NodeCPUs: nodeCPUs, NodeMemory: nodeMem}, podImage, withOp)
		},
	}
	f := cmd.Flags()
	f.IntVar(&nodes, "nodes", 3, "simulated nodes")
	f.Float64Var(&nodeCPUs, "node-cpus", 4, "allocatable CPUs of each node")
	f.StringVar(&nodeMem, "node-memory", "16Gi", "allocatable `MEMORY` of each node (a Kubernetes quantity)")
	f.StringVar(&dir, "dir", "", "`DIR` for the cluster's data, certificates, kubeconfig and logs (default: a temporary folder, removed at exit)")
	f.StringVar(&bin, "bin", "", "`DIR` with spindle-controlplane and kwok (default: $SPINDLE_KUBE_BIN, ~/.cache/spindle/kube/bin, PATH)")
	f.StringVar(&podImage, "image", "spindle:dev", "container `IMAGE` of the functions' pods")
	f.BoolVar(&withOp, "operator", true, "run the operator in this process (false: run 'spindle operator' yourself)")
	return cmd
}

// operatorOptions configure the operator's manager.
type operatorOptions struct {
	image           string
	metricsAddr     string
	healthAddr      string
	leaderElect     bool
	leaderNS        string
	simulatedLoad   bool
	simulateKubelet bool
}

// runOperator runs the operator (and, in a dev cluster, the simulated
// kubelet) until ctx ends.
func runOperator(ctx context.Context, rc *rest.Config, o operatorOptions, log *slog.Logger, started func()) error {
	if !o.simulatedLoad {
		return usagef("--simulated-load: required: the operator's stats come from the %s annotation of each function until the gateway's Kubernetes data plane exists (issue 18)", kubesim.LoadAnnotation)
	}
	if o.leaderElect && o.leaderNS == "" {
		// The pod's own namespace in a cluster, "default" outside one.
		o.leaderNS = "default"
		if ns, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(ns) > 0 {
			o.leaderNS = strings.TrimSpace(string(ns))
		}
	}
	mgr, err := ctrl.NewManager(rc, ctrl.Options{
		Scheme:                        devcluster.Scheme(),
		Metrics:                       metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:        o.healthAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              "spindle-operator",
		LeaderElectionNamespace:       o.leaderNS,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return err
	}
	if o.healthAddr != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			return err
		}
	}
	if o.simulateKubelet {
		if err := (&kubesim.Kubelet{NodeAnnotation: devcluster.NodeAnnotation}).SetupWithManager(mgr); err != nil {
			return err
		}
	}
	traffic := &kubesim.Traffic{Client: mgr.GetClient(), Label: operator.LabelFunction, FromAnnotation: true}
	op, err := operator.New(operator.Config{Image: o.image, Stats: traffic, Log: log})
	if err != nil {
		return err
	}
	if err := op.SetupWithManager(mgr); err != nil {
		return err
	}
	if started != nil {
		started()
	}
	err = mgr.Start(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func newOperatorCmd() *cobra.Command {
	var (
		kubeconfig string
		o          operatorOptions
	)
	cmd := &cobra.Command{
		Use:   "operator --simulated-load [--kubeconfig PATH]",
		Short: "Run the Kubernetes operator: InferenceFunctions to pods, resized in place, spread over nodes",
		Long: `Runs the InferenceFunction controller (deploy/kubernetes: CRD, RBAC and a
Deployment). It places one pod of a function per node, grows pods in place
through pods/resize (the thesis's vertical step) and adds pods on other nodes
only when a node is full, with the same autoscaling policies as 'spindle up'.
Leader election keeps one operator active among replicas.

Its latency and load readings come from each function's
` + kubesim.LoadAnnotation + ` annotation (a simulated load, --simulated-load)
until the gateway's Kubernetes data plane exists.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rc, err := kubeRestConfig(kubeconfig)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := kubeLogs(cmd)
			return runOperator(ctx, rc, o, log, func() { log.Info("operator started", "host", rc.Host) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig `FILE` (default: $KUBECONFIG, ~/.kube/config, or the pod's service account in a cluster)")
	f.StringVar(&o.image, "image", "", "container `IMAGE` of the functions' pods, where a function names none")
	f.StringVar(&o.metricsAddr, "metrics-addr", ":8081", "`ADDR` of the Prometheus metrics endpoint (\"0\": none)")
	f.StringVar(&o.healthAddr, "health-addr", ":8082", "`ADDR` of /healthz and /readyz (\"0\": none)")
	f.BoolVar(&o.leaderElect, "leader-elect", true, "elect one active operator among replicas (a Lease)")
	f.StringVar(&o.leaderNS, "leader-election-namespace", "", "`NAMESPACE` of the Lease (default: the pod's own namespace, else default)")
	f.BoolVar(&o.simulatedLoad, "simulated-load", false, "read each function's load from its "+kubesim.LoadAnnotation+" annotation (required for now)")
	return cmd
}

func newNodeAgentCmd() *cobra.Command {
	var (
		kubeconfig, node, cache, metricsAddr, healthAddr string
		maxBytes                                         int64
	)
	cmd := &cobra.Command{
		Use:   "node-agent --node NAME [--cache DIR]",
		Short: "Keep a node's model cache: fetch each function's model once per node, verified by sha256",
		Long: `Runs on every node (deploy/kubernetes/node-agent.yaml, a DaemonSet). For every
InferenceFunction whose model is a URL with a sha256 it fetches the file once
into DIR/sha256/HEX/model, verifies it before it becomes visible, and removes
models no function names any more. The function's pods mount DIR read-only
and map the file, so a node's page cache holds one copy however many pods use
it. Fetches and failures are events of the function.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if node == "" {
				return usagef("--node: required (the DaemonSet passes spec.nodeName as $NODE_NAME)")
			}
			if maxBytes < 0 {
				return usagef("--max-model-bytes: must be >= 0, got %d", maxBytes)
			}
			rc, err := kubeRestConfig(kubeconfig)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(cache, 0o755); err != nil {
				return usagef("--cache: %v", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := kubeLogs(cmd)
			mgr, err := ctrl.NewManager(rc, ctrl.Options{
				Scheme:                 devcluster.Scheme(),
				Metrics:                metricsserver.Options{BindAddress: metricsAddr},
				HealthProbeBindAddress: healthAddr,
			})
			if err != nil {
				return err
			}
			if healthAddr != "0" {
				if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
					return err
				}
			}
			agent := &nodeagent.Agent{Node: node, Cache: &nodeagent.Cache{Root: cache, MaxBytes: maxBytes}}
			if err := agent.SetupWithManager(mgr); err != nil {
				return err
			}
			log.Info("node agent started", "node", node, "cache", cache)
			if err := mgr.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig `FILE` (default: $KUBECONFIG, ~/.kube/config, or the pod's service account in a cluster)")
	f.StringVar(&node, "node", os.Getenv("NODE_NAME"), "this node's `NAME` (default $NODE_NAME)")
	f.StringVar(&cache, "cache", operator.ModelCache, "the model cache `DIR` (a hostPath the functions' pods mount)")
	f.Int64Var(&maxBytes, "max-model-bytes", 0, "largest model fetched, in bytes (0: 16 GiB)")
	f.StringVar(&metricsAddr, "metrics-addr", "0", "`ADDR` of the Prometheus metrics endpoint (\"0\": none)")
	f.StringVar(&healthAddr, "health-addr", ":8083", "`ADDR` of /healthz (\"0\": none)")
	return cmd
}

func newKubeImageCmd() *cobra.Command {
	var binary, out, tag string
	cmd := &cobra.Command{
		Use:   "image --binary PATH -o FILE [--tag spindle:dev]",
		Short: "Pack a static spindle binary into a container image (an OCI image layout tar), no container engine needed",
		Long: `Writes a container image with the binary as /spindle (its entrypoint) on an
empty base, user 65532, as an OCI image layout in a tar file. Import it into a
node's containerd with 'ctr -n k8s.io images import FILE', or push it with
'crane push FILE REF' or 'skopeo copy oci-archive:FILE docker://REF'.
scripts/kube-image.sh builds the static binary (CGO_ENABLED=0) and runs this.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case binary == "":
				return usagef("--binary: required: a static spindle binary (CGO_ENABLED=0 go build ./cmd/spindle)")
			case out == "":
				return usagef("-o: required: the image archive to write")
			case tag == "":
				return usagef("--tag: must not be empty")
			}
			if _, err := os.Stat(binary); err != nil {
				return usagef("--binary: %v", err)
			}
			digest, err := image.Build(image.Options{Binary: binary, Tag: tag, Version: moduleVersion()}, out)
			if errors.Is(err, image.ErrNotStatic) {
				return usagef("--binary: %v", err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: image %s (%s), OCI image layout\n", out, tag, digest)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&binary, "binary", "", "the static spindle binary `PATH` to pack")
	f.StringVarP(&out, "output", "o", "", "the image archive `FILE` to write (a tar of an OCI image layout)")
	f.StringVar(&tag, "tag", "spindle:dev", "the image's `NAME` in the archive")
	return cmd
}

// moduleVersion is the version this binary was built as ("devel" from a
// source tree).
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// kubeRestConfig loads a kubeconfig the way kubectl does, or the in-cluster
// service account.
func kubeRestConfig(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		if path != "" {
			return nil, usagef("--kubeconfig: %v", err)
		}
		return nil, err
	}
	rc.QPS, rc.Burst = 50, 100
	return rc, nil
}

// kubeLogs is the operator's log on stderr; controller-runtime's own lines
// go there too, from warnings up.
func kubeLogs(cmd *cobra.Command) *slog.Logger {
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func kubeDev(ctx context.Context, cmd *cobra.Command, cfg devcluster.Config, image string, withOperator bool) error {
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
	banner := func() {
		what := "the Spindle operator"
		if !withOperator {
			what = "no operator (--operator=false: run 'spindle operator --kubeconfig ... --simulated-load')"
		}
		fmt.Fprintf(out, "Kubernetes control plane ready in %s: kube-apiserver %s with etcd, %d simulated nodes (kwok) of %g CPUs, %s\n",
			time.Since(began).Round(time.Millisecond), devcluster.KubeVersion, cfg.Nodes, cfg.NodeCPUs, what)
		fmt.Fprintf(out, "KUBECONFIG=%s\n", cl.Kubeconfig)
		fmt.Fprintf(out, "Try:\n  export KUBECONFIG=%s\n  kubectl apply -f deploy/kubernetes/examples/bert.yaml\n  kubectl annotate inferencefunction bert %s=30/s\n  kubectl get inferencefunctions,pods -o wide\nCtrl-C stops it.\n",
			cl.Kubeconfig, kubesim.LoadAnnotation)
	}
	o := operatorOptions{image: image, metricsAddr: "0", healthAddr: "0", leaderElect: true, leaderNS: "default", simulatedLoad: true, simulateKubelet: true}
	if !withOperator {
		// The simulated kubelet still runs: it is part of the simulated nodes.
		o.simulatedLoad = false
	}
	err = runDev(ctx, cl.Rest, o, kubeLogs(cmd), banner)
	fmt.Fprintln(out, "stopping")
	return err
}

// runDev runs the simulated kubelet and, unless o says not, the operator.
func runDev(ctx context.Context, rc *rest.Config, o operatorOptions, log *slog.Logger, started func()) error {
	if o.simulatedLoad {
		return runOperator(ctx, rc, o, log, started)
	}
	mgr, err := ctrl.NewManager(rc, ctrl.Options{Scheme: devcluster.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	if err := (&kubesim.Kubelet{NodeAnnotation: devcluster.NodeAnnotation}).SetupWithManager(mgr); err != nil {
		return err
	}
	started()
	err = mgr.Start(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
