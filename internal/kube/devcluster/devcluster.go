// Package devcluster starts a real Kubernetes control plane on this machine
// for the operator's tests and `spindle kube dev`: etcd and the upstream
// kube-apiserver (the spindle-controlplane binary, built from the
// k8s.io/kubernetes module by scripts/kube-tools.sh), and kwok, which keeps
// simulated nodes alive and moves pods through their phases as a kubelet
// would. Nodes are simulated (no container runs); the API server, its
// storage, admission, validation and watch are the real ones.
package devcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kubemanifests "github.com/spindleml/spindle/deploy/kubernetes"
)

// Binaries the cluster runs, found in Config.Bin, $SPINDLE_KUBE_BIN, the
// cache folder scripts/kube-tools.sh fills, or PATH.
const (
	ControlPlaneBinary = "spindle-controlplane"
	// KubeVersion is the release of the API server spindle-controlplane runs.
	KubeVersion = "v1.37.2"
	KwokBinary  = "kwok"
)

// NodeAnnotation marks the nodes kwok manages (simulated nodes).
const NodeAnnotation = "kwok.x-k8s.io/node"

// Config says what to start.
type Config struct {
	// Dir keeps the cluster's data, certificates, kubeconfig and logs.
	Dir string
	// Bin is the folder with spindle-controlplane and kwok; empty searches
	// as BinDir does.
	Bin string
	// Nodes is how many simulated nodes to create, named node-1, node-2, ...
	Nodes int
	// NodeCPUs and NodeMemory are each node's allocatable CPU and memory
	// (defaults 4 and 16Gi).
	NodeCPUs   float64
	NodeMemory string
}

// Cluster is a running control plane.
type Cluster struct {
	// Kubeconfig is the path of a kubeconfig for the cluster's admin
	// (kubectl --kubeconfig, KUBECONFIG).
	Kubeconfig string
	// Rest is the admin's client configuration.
	Rest *rest.Config
	// Client is an admin client with the core, apiextensions and Spindle
	// types registered.
	Client client.Client

	cfg   Config
	procs []*exec.Cmd
	done  []chan struct{}
	logs  []*os.File
}

// BinDir returns the folder holding the control plane's binaries: dir if it
// is set, else $SPINDLE_KUBE_BIN, else the cache scripts/kube-tools.sh fills
// ($XDG_CACHE_HOME or ~/.cache, spindle/kube/bin), else "" (PATH).
func BinDir(dir string) string {
	if dir != "" {
		return dir
	}
	if d := os.Getenv("SPINDLE_KUBE_BIN"); d != "" {
		return d
	}
	if c, err := os.UserCacheDir(); err == nil {
		d := filepath.Join(c, "spindle", "kube", "bin")
		if _, err := os.Stat(filepath.Join(d, ControlPlaneBinary)); err == nil {
			return d
		}
	}
	return ""
}

// Find returns the path of one of the binaries, or an error that says how to
// build it.
func Find(dir, name string) (string, error) {
	if d := BinDir(dir); d != "" {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found (in $SPINDLE_KUBE_BIN, ~/.cache/spindle/kube/bin or PATH): build it with scripts/kube-tools.sh", name)
}

// Start starts etcd, the API server and kwok, creates the nodes and installs
// the InferenceFunction CRD. Stop ends them; on an error Start stops what it
// started.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("devcluster: dir: required")
	}
	if cfg.Nodes < 0 {
		return nil, fmt.Errorf("devcluster: nodes: must be >= 0, got %d", cfg.Nodes)
	}
	if cfg.NodeCPUs == 0 {
		cfg.NodeCPUs = 4
	}
	if cfg.NodeMemory == "" {
		cfg.NodeMemory = "16Gi"
	}
	cp, err := Find(cfg.Bin, ControlPlaneBinary)
	if err != nil {
		return nil, err
	}
	kwok, err := Find(cfg.Bin, KwokBinary)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	token, err := c.writeSecrets()
	if err != nil {
		return nil, err
	}
	if err := c.startAPIServer(ctx, cp, port); err != nil {
		return nil, err
	}
	if err := c.writeKubeconfig(port, token); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	if err := c.startKwok(kwok); err != nil {
		return nil, err
	}
	if err := c.installCRD(ctx); err != nil {
		return nil, err
	}
	for i := 1; i <= cfg.Nodes; i++ {
		if err := c.AddNode(ctx, fmt.Sprintf("node-%d", i), cfg.NodeCPUs, cfg.NodeMemory); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) path(name string) string { return filepath.Join(c.cfg.Dir, name) }

// writeSecrets writes the service-account signing key and the static token
// file of the cluster's admin, and returns the admin's token.
func (c *Cluster) writeSecrets() (string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(c.path("sa.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", err
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := hex.EncodeToString(b)
	line := token + ",spindle-admin,spindle-admin,system:masters\n"
	return token, os.WriteFile(c.path("tokens.csv"), []byte(line), 0o600)
}

// start runs a binary with its output in a log file of the cluster's folder.
func (c *Cluster) start(name, bin string, args ...string) error {
	log, err := os.OpenFile(c.path(name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("devcluster: start %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	c.procs, c.done, c.logs = append(c.procs, cmd), append(c.done, done), append(c.logs, log)
	return nil
}

func (c *Cluster) startAPIServer(ctx context.Context, bin string, port int) error {
	return c.start("apiserver", bin,
		"--data", c.cfg.Dir, "--",
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// The kubernetes Service's endpoints would name a loopback address.
		"--endpoint-reconciler-type=none",
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+c.path("certs"),
		"--token-auth-file="+c.path("tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+c.path("sa.key"),
		"--service-account-signing-key-file="+c.path("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		// No controller-manager runs, so nothing creates the default
		// service accounts the ServiceAccount admission plugin wants.
		"--disable-admission-plugins=ServiceAccount",
		"--profiling=false",
		"--v=0",
	)
}

func (c *Cluster) writeKubeconfig(port int, token string) error {
	server := "https://127.0.0.1:" + strconv.Itoa(port)
	// The API server writes its self-signed serving certificate at start;
	// wait for it so that clients verify the server instead of skipping TLS.
	crt := filepath.Join(c.path("certs"), "apiserver.crt")
	var ca []byte
	for deadline := time.Now().Add(60 * time.Second); ; {
		if b, err := os.ReadFile(crt); err == nil && len(b) > 0 {
			ca = b
			break
		}
		if err := c.exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("devcluster: %s not written after 60s (see %s)", crt, c.path("apiserver.log"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["spindle-dev"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	kc.AuthInfos["spindle-admin"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["spindle-dev"] = &clientcmdapi.Context{Cluster: "spindle-dev", AuthInfo: "spindle-admin", Namespace: "default"}
	kc.CurrentContext = "spindle-dev"
	c.Kubeconfig = c.path("kubeconfig")
	if err := clientcmd.WriteToFile(*kc, c.Kubeconfig); err != nil {
		return err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	rc.QPS, rc.Burst = 200, 400
	c.Rest = rc
	return nil
}

// exited returns an error if a process of the cluster has ended.
func (c *Cluster) exited() error {
	for i, d := range c.done {
		select {
		case <-d:
			name := strings.TrimSuffix(filepath.Base(c.logs[i].Name()), ".log")
			return fmt.Errorf("devcluster: %s exited: %s; its log ends:\n%s", name, c.procs[i].ProcessState, c.Log(name, 15))
		default:
		}
	}
	return nil
}

func (c *Cluster) waitReady(ctx context.Context) error {
	tr, err := rest.TransportFor(c.Rest)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	deadline := time.Now().Add(120 * time.Second)
	var last string
	for {
		resp, err := hc.Get(c.Rest.Host + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		if err := c.exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("devcluster: API server not ready after 120s: %s", last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	cl, err := NewClient(c.Rest)
	if err != nil {
		return err
	}
	c.Client = cl
	return nil
}

// stages are kwok's instructions for simulated nodes and pods.
//
//go:embed stages.yaml
var stages []byte

func (c *Cluster) startKwok(bin string) error {
	if err := os.WriteFile(c.path("kwok.yaml"), stages, 0o644); err != nil {
		return err
	}
	return c.start("kwok", bin,
		"--config="+c.path("kwok.yaml"),
		"--kubeconfig="+c.Kubeconfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+NodeAnnotation+"=fake",
		"--cidr=10.0.0.1/16",
		"--node-ip=10.0.0.1",
		"--node-lease-duration-seconds=40",
		"--server-address=127.0.0.1:0",
	)
}

func (c *Cluster) installCRD(ctx context.Context) error {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(kubemanifests.CRD, &crd); err != nil {
		return fmt.Errorf("devcluster: CRD: %w", err)
	}
	if err := c.Client.Create(ctx, &crd); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("devcluster: create CRD: %w", err)
	}
	// Wait until the API serves it.
	for deadline := time.Now().Add(30 * time.Second); ; {
		var got apiextensionsv1.CustomResourceDefinition
		if err := c.Client.Get(ctx, client.ObjectKey{Name: crd.Name}, &got); err == nil {
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return errors.New("devcluster: CRD not established after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// AddNode creates a simulated node that kwok keeps Ready.
func (c *Cluster) AddNode(ctx context.Context, name string, cpus float64, memory string) error {
	mem, err := resource.ParseQuantity(memory)
	if err != nil {
		return fmt.Errorf("devcluster: node memory: %w", err)
	}
	cpu := resource.NewMilliQuantity(int64(cpus*1000), resource.DecimalSI)
	res := corev1.ResourceList{corev1.ResourceCPU: *cpu, corev1.ResourceMemory: mem, corev1.ResourcePods: resource.MustParse("110")}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{NodeAnnotation: "fake"},
			Labels:      map[string]string{"type": "kwok", corev1.LabelHostname: name},
		},
		Status: corev1.NodeStatus{Capacity: res, Allocatable: res},
	}
	if err := c.Client.Create(ctx, n); err != nil {
		return fmt.Errorf("devcluster: create node %s: %w", name, err)
	}
	return nil
}

// Stop ends kwok, the API server and etcd, in that order.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
		select {
		case <-c.done[i]:
		case <-time.After(10 * time.Second):
			syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			<-c.done[i]
		}
		c.logs[i].Close()
	}
	c.procs, c.done, c.logs = nil, nil, nil
}

// Log returns the tail of a process's log ("apiserver" or "kwok"), for test
// failures.
func (c *Cluster) Log(name string, n int) string {
	b, _ := os.ReadFile(c.path(name + ".log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Apply creates every object of a multi-document YAML manifest (objects that
// exist already are left as they are).
func (c *Cluster) Apply(ctx context.Context, manifest []byte) error {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("devcluster: manifest: %w", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := c.Client.Create(ctx, &u); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("devcluster: create %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
}

// ServiceAccountConfig returns a client configuration that acts as the
// service account namespace/name, with a token from the TokenRequest API, as
// a pod of that account would have.
func (c *Cluster) ServiceAccountConfig(ctx context.Context, namespace, name string) (*rest.Config, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}}
	if err := c.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
		return nil, fmt.Errorf("devcluster: token for %s/%s: %w", namespace, name, err)
	}
	rc := rest.AnonymousClientConfig(c.Rest)
	rc.BearerToken = tr.Status.Token
	return rc, nil
}
