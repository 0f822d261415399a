package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/kube/devcluster"
	"github.com/spindleml/spindle/internal/kube/image"
	"github.com/spindleml/spindle/internal/kube/kubesim"
	"github.com/spindleml/spindle/internal/kube/nodeagent"
	"github.com/spindleml/spindle/internal/kube/operator"
	"github.com/spindleml/spindle/internal/kube/router"
	"github.com/spindleml/spindle/internal/sandbox"
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
		dev      = devOptions{}
	)
	cmd := &cobra.Command{
		Use:   "dev [--nodes N]",
		Short: "Run a local Kubernetes control plane with N simulated nodes and the Spindle operator",
		Long: `Starts a real Kubernetes API server (kube-apiserver v1.37.2 with an embedded
etcd) on this machine, N simulated nodes (kwok: no container runs), the
InferenceFunction CRD and the Spindle operator, and prints a KUBECONFIG for
kubectl. A simulated kubelet grants in-place resizes as a node's capacity
allows; a function's load is simulated too, set with the annotation
` + kubesim.LoadAnnotation + ` ("RATE/s[,SERVICE]").

With --processes the nodes' pods run for real: each pod is a 'spindle
instance' process on this machine, in a cgroup of the pod's CPU and memory,
serving on its own loopback address (127.42.NODE.N), and the gateway serves
the namespace default on --gateway-addr; the operator scales on the
gateway's measurements, and a resize changes the pod's cgroup, which the
instance follows. Ctrl-C stops everything. The binaries come from
scripts/kube-tools.sh.`,
		Example: `  spindle kube dev --nodes 3
  export KUBECONFIG=...   # the path it prints
  kubectl apply -f deploy/kubernetes/examples/bert.yaml
  kubectl annotate inferencefunction bert ` + kubesim.LoadAnnotation + `=30/s
  kubectl get inferencefunctions,pods -o wide

  spindle kube dev --nodes 2 --node-cpus 2 --processes
  spindle model gen mnist-cnn -o /var/lib/spindle/models/mnist
  kubectl apply -f deploy/kubernetes/examples/mnist.yaml
  spindle load mnist --gateway http://127.0.0.1:8080 --random input=FP32:1x1x28x28 --rate 200`,
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
			if dev.processes && nodes > 254 {
				return usagef("--nodes: at most 254 with --processes, got %d", nodes)
			}
			return kubeDev(ctx, cmd, devcluster.Config{Dir: dir, Bin: bin, Nodes: nodes, NodeCPUs: nodeCPUs, NodeMemory: nodeMem}, dev)
		},
	}
	f := cmd.Flags()
	f.IntVar(&nodes, "nodes", 3, "simulated nodes")
	f.Float64Var(&nodeCPUs, "node-cpus", 4, "allocatable CPUs of each node")
	f.StringVar(&nodeMem, "node-memory", "16Gi", "allocatable `MEMORY` of each node (a Kubernetes quantity)")
	f.StringVar(&dir, "dir", "", "`DIR` for the cluster's data, certificates, kubeconfig and logs (default: a temporary folder, removed at exit)")
	f.StringVar(&bin, "bin", "", "`DIR` with spindle-controlplane and kwok (default: $SPINDLE_KUBE_BIN, ~/.cache/spindle/kube/bin, PATH)")
	f.StringVar(&dev.image, "image", "spindle:dev", "container `IMAGE` of the functions' pods")
	f.BoolVar(&dev.operator, "operator", true, "run the operator in this process (false: run 'spindle operator' yourself)")
	f.BoolVar(&dev.processes, "processes", false, "nodes whose pods run as real spindle instances on this machine, with a gateway in front")
	f.StringVar(&dev.gatewayAddr, "gateway-addr", "127.0.0.1:8080", "`ADDR` of the gateway, with --processes")
	return cmd
}

// operatorOptions configure the operator's manager.
type operatorOptions struct {
	image       string
	metricsAddr string
	healthAddr  string
	leaderElect bool
	leaderNS    string
	// simulatedLoad reads each function's load from its annotation;
	// otherwise the gateways' measurements are read: from gatewayURLs, or
	// from the Ready pods gatewaySelector picks in gatewayNS, on gatewayPort.
	simulatedLoad   bool
	gatewayURLs     []string
	gatewayNS       string
	gatewaySelector string
	gatewayPort     int
	// setup adds more to the manager (a dev cluster's simulated kubelets and
	// gateway).
	setup func(ctrl.Manager) error
}

// podNamespace is the namespace of the pod this process runs in, or def
// outside a cluster.
func podNamespace(def string) string {
	if ns, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(ns) > 0 {
		return strings.TrimSpace(string(ns))
	}
	return def
}

// gatewaySelectorOf checks the flags that say where the gateways' statistics
// come from, and returns the selector of the gateway pods (nil when fixed
// URLs or the simulated load are read).
func (o *operatorOptions) gatewaySelectorOf() (labels.Selector, error) {
	for _, u := range o.gatewayURLs {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return nil, usagef("--gateway-stats: %q: want a gateway's admin URL such as http://10.0.0.5:9090", u)
		}
	}
	if o.simulatedLoad || len(o.gatewayURLs) > 0 {
		return nil, nil
	}
	sel, err := labels.Parse(o.gatewaySelector)
	if err != nil || sel.Empty() {
		return nil, usagef("--gateway-selector: %q: want a label selector such as app.kubernetes.io/name=spindle-gateway", o.gatewaySelector)
	}
	if o.gatewayPort < 1 || o.gatewayPort > 65535 {
		return nil, usagef("--gateway-admin-port: must be 1 to 65535, got %d", o.gatewayPort)
	}
	return sel, nil
}

// runOperator runs the operator until ctx ends.
func runOperator(ctx context.Context, rc *rest.Config, o operatorOptions, log *slog.Logger, started func()) error {
	sel, err := o.gatewaySelectorOf()
	if err != nil {
		return err
	}
	if sel != nil && o.gatewayNS == "" {
		o.gatewayNS = podNamespace("spindle-system")
	}
	if o.leaderElect && o.leaderNS == "" {
		o.leaderNS = podNamespace("default")
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
	if o.setup != nil {
		if err := o.setup(mgr); err != nil {
			return err
		}
	}
	var stats autoscale.StatsSource = &router.Gateways{URLs: o.gatewayURLs, Client: mgr.GetClient(), Namespace: o.gatewayNS, Selector: sel, Port: o.gatewayPort}
	if o.simulatedLoad {
		stats = &kubesim.Traffic{Client: mgr.GetClient(), Label: operator.LabelFunction, FromAnnotation: true}
	}
	op, err := operator.New(operator.Config{Image: o.image, Stats: stats, Log: log})
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
		Use:   "operator [--kubeconfig PATH]",
		Short: "Run the Kubernetes operator: InferenceFunctions to pods, resized in place, spread over nodes",
		Long: `Runs the InferenceFunction controller (deploy/kubernetes: CRD, RBAC and a
Deployment). It places one pod of a function per node, grows pods in place
through pods/resize (the thesis's vertical step) and adds pods on other nodes
only when a node is full, with the same autoscaling policies as 'spindle up'.
Leader election keeps one operator active among replicas.

It scales on what the gateways ('spindle gateway') measure: it reads their
statistics from the Ready pods --gateway-selector picks in
--gateway-namespace, on --gateway-admin-port (or from --gateway-stats URLs).
With --simulated-load it reads a simulated load from each function's
` + kubesim.LoadAnnotation + ` annotation instead (clusters without
real pods, such as 'spindle kube dev' with kwok nodes).`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := o.gatewaySelectorOf(); err != nil {
				return err
			}
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
	f.BoolVar(&o.simulatedLoad, "simulated-load", false, "read each function's load from its "+kubesim.LoadAnnotation+" annotation, not from the gateways")
	f.StringSliceVar(&o.gatewayURLs, "gateway-stats", nil, "admin `URL`s of the gateways (default: found by --gateway-selector)")
	f.StringVar(&o.gatewayNS, "gateway-namespace", "", "`NAMESPACE` of the gateway pods (default: the operator's own, else spindle-system)")
	f.StringVar(&o.gatewaySelector, "gateway-selector", "app.kubernetes.io/name=spindle-gateway", "label `SELECTOR` of the gateway pods")
	f.IntVar(&o.gatewayPort, "gateway-admin-port", 9090, "admin `PORT` of the gateway pods")
	return cmd
}

func newGatewayCmd() *cobra.Command {
	var (
		kubeconfig, namespace, listen, adminAddr, keysFile string
		maxWaiting                                         int
		maxBody                                            int64
	)
	cmd := &cobra.Command{
		Use:   "gateway --namespace NS [--listen :8080] [--admin-addr :9090]",
		Short: "Run the gateway on Kubernetes: OIP v2 and task requests to the InferenceFunctions' pods",
		Long: `Serves the InferenceFunctions of one namespace (deploy/kubernetes/gateway.yaml:
RBAC, Deployment and Service): OIP v2 inference, metadata and readiness at
/v2/models/NAME[/versions/1]/..., and the task endpoints at /v1/tasks/NAME.
Each request goes to the least-loaded Ready pod of its function; a request
for a function at zero waits (up to its Spindle-Timeout, at most
--max-waiting per function) while the gateway sets the function's
` + operator.WakeAnnotation + ` annotation and the operator starts a pod.
The admin address serves /metrics, /healthz, /readyz and the statistics the
operator scales on (` + router.StatsPath + `). Any number of replicas may run.

With --tenant-keys (a Secret mounted as a file, say) every request needs
'Authorization: Bearer KEY' of a tenant, and reaches only the functions whose
spec.tenant is that tenant ("default" when a function names none); without
it the gateway is open and the cluster's network decides who reaches it.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case namespace == "":
				return usagef("--namespace: required: the namespace whose functions this gateway serves")
			case maxWaiting < 1:
				return usagef("--max-waiting: must be at least 1, got %d", maxWaiting)
			case maxBody < 1:
				return usagef("--max-body-bytes: must be at least 1, got %d", maxBody)
			}
			var keys map[string]string
			if keysFile != "" {
				var err error
				if keys, err = router.LoadKeys(keysFile); err != nil {
					return usagef("--tenant-keys: %v", err)
				}
			}
			rc, err := kubeRestConfig(kubeconfig)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := kubeLogs(cmd)
			rt, err := router.New(router.Config{Namespace: namespace, MaxWaiting: maxWaiting, MaxBodyBytes: maxBody, Keys: keys, Log: log})
			if err != nil {
				return err
			}
			mgr, err := ctrl.NewManager(rc, ctrl.Options{
				Scheme:  devcluster.Scheme(),
				Metrics: metricsserver.Options{BindAddress: "0"},
				// Only its namespace: a Role there is all it needs.
				Cache: cache.Options{DefaultNamespaces: map[string]cache.Config{namespace: {}}},
			})
			if err != nil {
				return err
			}
			if err := rt.SetupWithManager(mgr); err != nil {
				return err
			}
			var lns []net.Listener
			for _, a := range []struct{ flag, addr string }{{"--listen", listen}, {"--admin-addr", adminAddr}} {
				ln, err := net.Listen("tcp", a.addr)
				if err != nil {
					for _, l := range lns {
						l.Close()
					}
					return usagef("%s: %v", a.flag, err)
				}
				lns = append(lns, ln)
			}
			servers := []*http.Server{
				{Handler: rt.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10},
				{Handler: rt.AdminHandler(), ReadHeaderTimeout: 10 * time.Second},
			}
			for i, s := range servers {
				go s.Serve(lns[i])
			}
			log.Info("gateway started", "namespace", namespace, "listen", lns[0].Addr().String(), "admin", lns[1].Addr().String(), "host", rc.Host)
			err = mgr.Start(ctx)
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, s := range servers {
				s.Shutdown(sctx)
			}
			if errors.Is(err, context.Canceled) {
				err = nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig `FILE` (default: $KUBECONFIG, ~/.kube/config, or the pod's service account in a cluster)")
	f.StringVar(&namespace, "namespace", "", "`NAMESPACE` of the functions it serves")
	f.StringVar(&listen, "listen", ":8080", "`ADDR` the requests come to")
	f.StringVar(&adminAddr, "admin-addr", ":9090", "`ADDR` of /metrics, /healthz, /readyz and the operator's statistics")
	f.IntVar(&maxWaiting, "max-waiting", 1024, "requests per function that may wait for a pod (more get 429)")
	f.Int64Var(&maxBody, "max-body-bytes", 64<<20, "largest request body, in bytes (larger get 413)")
	f.StringVar(&keysFile, "tenant-keys", "", "JSON `FILE` of tenant -> key or [keys]: requests then need a tenant's key and reach its functions only (default: open)")
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

func kubeDev(ctx context.Context, cmd *cobra.Command, cfg devcluster.Config, d devOptions) error {
	out := cmd.OutOrStdout()
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "spindle-kube-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.Dir = dir
	}
	if _, err := devcluster.Find(cfg.Bin, devcluster.ControlPlaneBinary); err != nil {
		return usageError{err}
	}
	nodes := cfg.Nodes
	if d.processes {
		cfg.Nodes = 0 // process nodes instead of kwok's
	}
	began := time.Now()
	cl, err := devcluster.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer cl.Stop()
	log := kubeLogs(cmd)
	o := operatorOptions{image: d.image, metricsAddr: "0", healthAddr: "0", leaderElect: true, leaderNS: "default", simulatedLoad: true}
	var front net.Listener
	try := "  kubectl apply -f deploy/kubernetes/examples/bert.yaml\n  kubectl annotate inferencefunction bert " + kubesim.LoadAnnotation + "=30/s\n"
	kind := "simulated nodes (kwok)"
	if !d.processes {
		o.setup = func(mgr ctrl.Manager) error {
			return (&kubesim.Kubelet{NodeAnnotation: devcluster.NodeAnnotation}).SetupWithManager(mgr)
		}
	} else {
		for i := 1; i <= nodes; i++ {
			if err := kubesim.AddProcessNode(ctx, cl.Client, fmt.Sprintf("node-%d", i), fmt.Sprintf("127.42.%d.0/24", i), cfg.NodeCPUs, cfg.NodeMemory); err != nil {
				return err
			}
		}
		var stop func()
		if front, stop, err = devDataPlane(ctx, cfg.Dir, d.gatewayAddr, log, &o); err != nil {
			return err
		}
		defer stop()
		kind = "process nodes (their pods run as spindle instances on this machine)"
		try = fmt.Sprintf("  spindle model gen mnist-cnn -o %s/mnist\n  kubectl apply -f deploy/kubernetes/examples/mnist.yaml\n  spindle load mnist --gateway http://%s --random input=FP32:1x1x28x28 --rate 200 --duration 10s\n",
			operator.ModelCache, front.Addr())
	}
	banner := func() {
		what := "the Spindle operator"
		if !d.operator {
			what = "no operator (--operator=false: run 'spindle operator --kubeconfig ...' yourself)"
		}
		fmt.Fprintf(out, "Kubernetes control plane ready in %s: kube-apiserver %s with etcd, %d %s of %g CPUs, %s\n",
			time.Since(began).Round(time.Millisecond), devcluster.KubeVersion, nodes, kind, cfg.NodeCPUs, what)
		if front != nil {
			fmt.Fprintf(out, "Gateway (namespace default): http://%s\n", front.Addr())
		}
		fmt.Fprintf(out, "KUBECONFIG=%s\n", cl.Kubeconfig)
		fmt.Fprintf(out, "Try:\n  export KUBECONFIG=%s\n%s  kubectl get inferencefunctions,pods -o wide\nCtrl-C stops it.\n", cl.Kubeconfig, try)
	}
	err = runDev(ctx, cl.Rest, o, d.operator, log, banner)
	fmt.Fprintln(out, "stopping")
	return err
}

// devOptions are kube dev's own choices.
type devOptions struct {
	image       string
	operator    bool
	processes   bool
	gatewayAddr string
}

// devDataPlane prepares kube dev's process nodes: the process kubelet (real
// instances in cgroups, on the pods' loopback addresses), the resize grants
// for them, and a gateway for the namespace default on addr, whose admin
// address the operator reads. It returns the gateway's listener and what
// stops it all.
func devDataPlane(ctx context.Context, dir, addr string, log *slog.Logger, o *operatorOptions) (net.Listener, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	caps, err := sandbox.Detect(sandbox.Options{Parent: "spindle-kube-dev", DisableNamespaces: true})
	if err != nil {
		return nil, nil, err
	}
	if !caps.CPU {
		log.Warn("pods run without a CPU quota (in-place resizes change nothing)", "why", caps.CgroupProblem)
	}
	logFile, err := os.Create(filepath.Join(dir, "instances.log"))
	if err != nil {
		return nil, nil, err
	}
	procs := &kubesim.Processes{Exe: exe, Sandbox: caps, Log: logFile}
	rt, err := router.New(router.Config{Namespace: "default", Log: log})
	if err != nil {
		return nil, nil, err
	}
	front, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, usagef("--gateway-addr: %v", err)
	}
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		front.Close()
		return nil, nil, err
	}
	servers := []*http.Server{{Handler: rt.Handler(), ReadHeaderTimeout: 10 * time.Second}, {Handler: rt.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}}
	go servers[0].Serve(front)
	go servers[1].Serve(admin)
	o.simulatedLoad = false
	o.gatewayURLs = []string{"http://" + admin.Addr().String()}
	o.setup = func(mgr ctrl.Manager) error {
		if err := procs.SetupWithManager(mgr); err != nil {
			return err
		}
		if err := (&kubesim.Kubelet{Manages: kubesim.IsProcessNode, Grant: procs.Grant}).SetupWithManager(mgr); err != nil {
			return err
		}
		return rt.SetupWithManager(mgr)
	}
	stop := func() {
		for _, s := range servers {
			s.Close()
		}
		procs.Close()
		caps.Controller.Close()
		logFile.Close()
	}
	return front, stop, nil
}

// runDev runs kube dev's manager: the simulated kubelets (and gateway) of
// o.setup and, with withOperator, the operator.
func runDev(ctx context.Context, rc *rest.Config, o operatorOptions, withOperator bool, log *slog.Logger, started func()) error {
	if withOperator {
		return runOperator(ctx, rc, o, log, started)
	}
	mgr, err := ctrl.NewManager(rc, ctrl.Options{Scheme: devcluster.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	if err := o.setup(mgr); err != nil {
		return err
	}
	started()
	err = mgr.Start(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
