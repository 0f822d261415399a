package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/client"
	"github.com/spindleml/spindle/internal/gateway"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/npy"
	"github.com/spindleml/spindle/internal/oip"
	"github.com/spindleml/spindle/internal/registry"
	"github.com/spindleml/spindle/internal/sandbox"
	"github.com/spindleml/spindle/internal/tenant"
	"github.com/spindleml/spindle/internal/tensor"
)

func newUpCmd() *cobra.Command {
	var listen, grpcListen, home, auth, cpuProfile string
	var demo, noCgroups bool
	var idle time.Duration
	var vcpu float64
	var policy string
	var params []string
	var stemCells int
	cmd := &cobra.Command{
		Use:   "up [--listen ADDR] [--grpc-listen ADDR|off] [--home DIR] [--auth open|keys] [--demo]",
		Short: "Run the platform on this machine (gateway, registry, instances)",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := filepath.Abs(homeDir(home))
			if err != nil {
				return err
			}
			if auth != gateway.AuthOpen && auth != gateway.AuthKeys {
				return usagef("--auth %q: must be %s or %s", auth, gateway.AuthOpen, gateway.AuthKeys)
			}
			adminKey, adminNote, err := loadAdminKey(home, auth)
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find own binary: %w", err)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			if err := (sandbox.Limits{CPU: vcpu}).Validate(); err != nil || vcpu <= 0 {
				return usagef("--vcpu %v: must be a positive multiple of %v", vcpu, sandbox.CPUStep)
			}
			if stemCells < 0 || stemCells > 64 {
				return usagef("--stem-cells %d: must be between 0 and 64", stemCells)
			}
			if idle <= 0 {
				return usagef("--idle %v: must be positive", idle)
			}
			var scaling *autoscale.Spec
			if policy != "off" {
				kv, err := autoscale.ParseParams(params)
				if err != nil {
					return usagef("--autoscale-param: %v", err)
				}
				spec, err := autoscale.ParseSpec(autoscale.Policy(policy), kv)
				if err != nil {
					return usagef("--autoscale %s: %v", policy, err)
				}
				if _, set := kv["idle-to-zero"]; !set && spec.IdleToZero > 0 {
					spec.IdleToZero = idle // one idle setting for the platform: --idle
				}
				scaling = &spec
			} else if len(params) > 0 {
				return usagef("--autoscale-param: needs a policy (--autoscale is off)")
			}
			caps, err := sandbox.Detect(sandbox.Options{DisableCgroups: noCgroups})
			if err != nil {
				return err
			}
			defer caps.Controller.Close()
			g, err := gateway.New(gateway.Config{
				Home: home, Exe: exe, Logger: log, Auth: auth, AdminKey: adminKey,
				Sandbox: caps, IdleTimeout: idle, DefaultVCPU: vcpu, Autoscale: scaling, StemCells: stemCells,
			})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				g.Close()
				return usagef("--listen %q: %v", listen, err)
			}
			if err := g.CheckListen(ln.Addr()); err != nil {
				ln.Close()
				g.Close()
				return usagef("--listen %q: %w; listen on 127.0.0.1 or use --auth keys", listen, gateway.ErrOpenNotLoopback)
			}
			var gln net.Listener
			if grpcListen != "off" {
				addr, err := grpcAddr(grpcListen, listen)
				if err == nil {
					gln, err = net.Listen("tcp", addr)
				}
				if err != nil {
					ln.Close()
					g.Close()
					return usagef("--grpc-listen %q: %v", grpcListen, err)
				}
				if err := g.CheckListen(gln.Addr()); err != nil {
					ln.Close()
					gln.Close()
					g.Close()
					return usagef("--grpc-listen %q: %w; listen on 127.0.0.1 or use --auth keys", grpcListen, gateway.ErrOpenNotLoopback)
				}
			}
			if cpuProfile != "" {
				pf, err := os.Create(cpuProfile)
				if err != nil {
					return usagef("--cpuprofile: %v", err)
				}
				defer pf.Close()
				if err := pprof.StartCPUProfile(pf); err != nil {
					return usagef("--cpuprofile: %v", err)
				}
				defer pprof.StopCPUProfile()
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			served := make(chan error, 1)
			go func() { served <- g.Serve(ctx, ln) }()
			if gln != nil {
				go func() {
					if err := g.ServeGRPC(ctx, gln); err != nil {
						log.Error("gRPC server", "err", err)
					}
				}()
			}

			base := "http://" + ln.Addr().String()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Spindle is up: gateway %s, data in %s\n", base, home)
			fmt.Fprintf(out, "Dashboard: %s/ (open it in a browser)\n", base)
			if gln != nil {
				fmt.Fprintf(out, "gRPC (Open Inference Protocol, inference.GRPCInferenceService): %s\n", gln.Addr())
			}
			fmt.Fprintf(out, "Sandbox: %s\n", caps)
			if scaling != nil {
				fmt.Fprintf(out, "Autoscaling: %s (SLO %s on p99 over %s, every %s)\n", scaling.Policy, scaling.SLO, scaling.Window, scaling.Interval)
			} else {
				fmt.Fprintln(out, "Autoscaling: off (instances start on demand and stop when idle)")
			}
			if auth == gateway.AuthOpen {
				fmt.Fprintln(out, "Access: open (loopback only), no API keys needed; 'spindle up --auth keys' requires them.")
			} else {
				fmt.Fprintln(out, "Access: API keys required (Authorization: Bearer KEY); create tenants with 'spindle tenant create NAME'.")
				fmt.Fprintln(out, adminNote)
			}
			if demo {
				if err := deployDemo(ctx, cmd, base, home, adminKey, auth == gateway.AuthKeys); err != nil {
					stop()
					<-served
					return fmt.Errorf("demo: %w", err)
				}
			}
			err = <-served
			if errors.Is(err, context.Canceled) {
				err = nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "gateway address")
	f.StringVar(&grpcListen, "grpc-listen", "", "gRPC address (Open Inference Protocol); default: --listen's host and the next port (any free port when --listen's is 0); off: no gRPC")
	f.DurationVar(&idle, "idle", 5*time.Minute, "stop a function's instances after this long without requests (scale to zero)")
	f.Float64Var(&vcpu, "vcpu", 1, "default CPU allotment per instance, in vCPUs (multiples of 0.25)")
	f.StringVar(&policy, "autoscale", "hybrid", "scaling policy for every function: hybrid, hpa, static, predictive or off")
	f.StringArrayVar(&params, "autoscale-param", nil, "policy parameter as key=value, e.g. slo=300ms (repeatable; see 'spindle sim --help')")
	f.IntVar(&stemCells, "stem-cells", 2, "pre-started instances kept ready for cold starts: 1 + those taken in the last minute, at most N (0: none, every instance a new process)")
	f.BoolVar(&noCgroups, "no-cgroups", false, "run instances without cgroups (no CPU quota or memory limit), as on machines without cgroup access")
	f.StringVar(&home, "home", "", "data directory (default $SPINDLE_HOME or ./.spindle)")
	f.StringVar(&auth, "auth", gateway.AuthOpen, "open: no API keys, loopback only; keys: every request needs a tenant's key")
	f.BoolVar(&demo, "demo", false, "generate and deploy the MNIST demo function and print how to call it")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write the gateway's CPU profile to `FILE` until it stops (go tool pprof reads it)")
	return cmd
}

// grpcAddr is the gRPC address: given, or the REST address rest's host and
// the next port (port 0, any free one, when rest's is 0).
func grpcAddr(given, rest string) (string, error) {
	if given != "" {
		return given, nil
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", err
	}
	if p == 0 || p == 65535 {
		return net.JoinHostPort(host, "0"), nil
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1)), nil
}

// loadAdminKey returns the admin key ($SPINDLE_ADMIN_KEY, else HOME/admin.key,
// created with --auth keys when missing) and a line saying where it is. In open
// mode a missing key is fine: the key only matters once keys are required.
func loadAdminKey(home, auth string) (key, note string, err error) {
	if key = os.Getenv("SPINDLE_ADMIN_KEY"); key != "" {
		return key, "Admin key: from $SPINDLE_ADMIN_KEY.", nil
	}
	path := filepath.Join(home, "admin.key")
	if auth == gateway.AuthOpen {
		key, err = tenant.LoadAdminKey(path)
		return key, "", err
	}
	if err := os.MkdirAll(home, 0o755); err != nil {
		return "", "", err
	}
	key, created, err := tenant.LoadOrCreateAdminKey(path)
	if err != nil {
		return "", "", err
	}
	if created {
		return key, fmt.Sprintf("Admin key (shown once, saved to %s): %s", path, key), nil
	}
	return key, fmt.Sprintf("Admin key: in %s.", path), nil
}

// deployDemo generates the MNIST CNN, deploys it as "mnist" through the gateway's
// own API, writes a sample request, and prints commands that work as pasted.
// With keys required it deploys as tenant "demo", issuing it a fresh key.
func deployDemo(ctx context.Context, cmd *cobra.Command, base, home, adminKey string, keys bool) error {
	dir := filepath.Join(home, "demo")
	modelDir := filepath.Join(dir, "mnist-cnn")
	if err := modelgen.Generate("mnist-cnn", modelDir, 1); err != nil {
		return err
	}
	var key string
	if keys {
		var err error
		if key, err = demoTenantKey(ctx, base, adminKey); err != nil {
			return err
		}
	}
	c, err := client.New(base, client.WithKey(key))
	if err != nil {
		return err
	}
	if _, err := c.Deploy(ctx, "mnist", filepath.Join(modelDir, "model.onnx")); err != nil {
		return err
	}
	img := demoDigit()
	npyPath := filepath.Join(dir, "input.npy")
	if err := npy.WriteFile(npyPath, img); err != nil {
		return err
	}
	data, err := json.Marshal(img.F32)
	if err != nil {
		return err
	}
	req := oip.InferRequest{Inputs: []oip.RequestInput{{Name: "input", Shape: []int64{1, 1, 28, 28}, Datatype: "FP32", Data: data}}}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	reqPath := filepath.Join(dir, "mnist-request.json")
	if err := os.WriteFile(reqPath, body, 0o644); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	header, keyFlag := "", ""
	if key != "" {
		fmt.Fprintf(out, "Demo tenant \"demo\" key (new each start): %s\n", key)
		header, keyFlag = fmt.Sprintf(" -H 'Authorization: Bearer %s'", key), " --key "+key
	}
	fmt.Fprintf(out, "Demo function \"mnist\" deployed (MNIST CNN, 21,840 parameters). Try:\n")
	fmt.Fprintf(out, "  curl -s -X POST %s/v2/models/mnist/infer -H 'Content-Type: application/json'%s -d @%s\n", base, header, reqPath)
	fmt.Fprintf(out, "  go run ./cmd/spindle invoke mnist --gateway %s%s --input input=%s\n", base, keyFlag, npyPath)
	tenant, paste := registry.DefaultOwner, ""
	if key != "" {
		tenant, paste = "demo", " (paste the demo key when it asks)"
	}
	fmt.Fprintf(out, "Watch it live on the dashboard: %s/#/f/%s/mnist%s\n", base, tenant, paste)
	return nil
}

// demoTenantKey creates tenant "demo", or issues it a new key when it exists
// from an earlier start (keys are not stored, so the old one cannot be shown).
func demoTenantKey(ctx context.Context, base, adminKey string) (string, error) {
	admin, err := client.New(base, client.WithKey(adminKey))
	if err != nil {
		return "", err
	}
	t, err := admin.CreateTenant(ctx, "demo", tenant.Limits{})
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status == http.StatusConflict {
		t, err = admin.RotateKey(ctx, "demo")
	}
	return t.Key, err
}

// demoDigit draws a "7" into a 28x28 image, values in [0, 1].
func demoDigit() *tensor.Tensor {
	t := tensor.New(tensor.Float32, 1, 1, 28, 28)
	set := func(y, x int) {
		if y >= 0 && y < 28 && x >= 0 && x < 28 {
			t.F32[y*28+x] = 1
		}
	}
	for x := 6; x <= 21; x++ {
		set(6, x)
		set(7, x)
	}
	for y := 8; y <= 23; y++ {
		x := 21 - (y-8)*8/15
		set(y, x)
		set(y, x-1)
	}
	return t
}
