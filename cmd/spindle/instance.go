package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/artifact"
	"github.com/spindleml/spindle/internal/instance"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/oip"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/sandbox"
	"github.com/spindleml/spindle/internal/task"
)

// newInstanceCmd is `spindle instance`, the function instance the platform starts
// as a child process. It reports its address and readiness on stdout (see package
// sandbox) and logs to stderr.
func newInstanceCmd() *cobra.Command {
	var cfg instance.Config
	var listen, load, taskConfig, batch string
	var drain, follow time.Duration
	var check, stem bool
	var artifactPath string
	var maxMemory int64
	cmd := &cobra.Command{
		Use:    "instance --name NAME --model PATH [--task KIND --task-config JSON|FILE] [--listen ADDR]",
		Short:  "Serve one model (started by the platform, not by users)",
		Hidden: true,
		Args:   args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stem {
				return runStem(cmd, cfg, listen, drain)
			}
			if cfg.Name == "" {
				return usagef("--name: required")
			}
			if cfg.ModelPath == "" && cfg.Task != task.CPUBurn && !check {
				return usagef("--model: required (only --task cpu-burn runs without one)")
			}
			if taskConfig != "" {
				raw, err := readTaskConfig(taskConfig)
				if err != nil {
					return err
				}
				cfg.TaskConfig = raw
			}
			mode, err := onnx.ParseLoadMode(load)
			if err != nil {
				return usagef("--load: %v", err)
			}
			if cfg.Batch, err = api.ParseBatchPolicy(batch); err != nil {
				return usagef("--batch: %v", err)
			}
			cfg.Load = mode
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
			if check {
				return runCheck(cmd.OutOrStdout(), cmd.ErrOrStderr(), cfg, maxMemory, artifactPath)
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()

			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return usagef("--listen %q: %v", listen, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), sandbox.ListenLine+ln.Addr().String())
			srv := instance.New(cfg)
			began := time.Now()
			rep, err := srv.Load()
			if err != nil {
				ln.Close()
				return err
			}
			took := time.Since(began)
			cfg.Logger.Info("model loaded", "report", rep.String(), "took", took)
			fmt.Fprintln(cmd.OutOrStdout(), sandbox.LoadedLine+took.String())
			fmt.Fprintln(cmd.OutOrStdout(), sandbox.ReadyLine)
			if follow > 0 {
				go srv.FollowCPU(ctx, follow, sandbox.OwnCPULimit)
			}
			err = srv.Serve(ctx, ln, drain)
			srv.Close()
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Name, "name", "", "function name")
	f.StringVar(&cfg.ModelPath, "model", "", "model file")
	f.StringVar(&listen, "listen", "127.0.0.1:0", "address to serve on")
	f.StringVar(&load, "load", string(onnx.Mmap), "load mode: copy, single or mmap")
	f.IntVar(&cfg.Workers, "workers", 0, "concurrent inferences (default GOMAXPROCS)")
	f.Int64Var(&cfg.MemoryLimit, "memory-limit", 0, "the memory limit in bytes the instance runs under (0: none); each request's memory budget is its share")
	f.IntVar(&cfg.Queue, "queue", 0, "requests that may wait for a worker (default 64 per worker)")
	f.StringVar(&batch, "batch", "off", "dynamic batching: off, auto (what is waiting, up to 32 rows) or max=N[,delay=D][,pad=MASK]")
	f.DurationVar(&drain, "drain", 10*time.Second, "how long in-flight requests may finish on shutdown")
	f.DurationVar(&follow, "follow-cgroup", 0, "read the instance's cgroup CPU limit every `PERIOD` and size the workers to it (a Kubernetes pod resized in place; 0: off, the gateway tells instead)")
	f.StringVar(&cfg.Task, "task", "", "task endpoint kind: "+strings.Join(task.Kinds(), ", ")+" (default: raw inference only)")
	f.StringVar(&taskConfig, "task-config", "", "task config as JSON, or a JSON file")
	f.StringVar(&cfg.TaskDir, "task-dir", "", "folder of the task's files (default: the model's folder)")
	f.BoolVar(&stem, "stem", false, "start without a function and take one later (POST /_spindle/assign): a pre-started instance")
	f.BoolVar(&check, "check", false, "check the model and task as a deploy does, print the result as JSON and exit")
	f.StringVar(&artifactPath, "artifact", "", "with --check, also compile the model into an artifact at `PATH` (as 'spindle model compile')")
	f.Int64Var(&maxMemory, "max-memory", 0, "with --check, bytes of address space the check may map besides the model's files (0: no limit)")
	return cmd
}

// runStem is `spindle instance --stem`: a stem cell that reports ready once
// it listens and loads a model when the platform assigns it one.
func runStem(cmd *cobra.Command, cfg instance.Config, listen string, drain time.Duration) error {
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return usagef("--listen %q: %v", listen, err)
	}
	fmt.Fprintln(cmd.OutOrStdout(), sandbox.ListenLine+ln.Addr().String())
	if err := warmStem(); err != nil {
		cfg.Logger.Warn("stem cell warm-up", "err", err)
	}
	fmt.Fprintln(cmd.OutOrStdout(), sandbox.ReadyLine)
	st := instance.NewStem(cfg)
	err = st.Serve(ctx, ln, drain)
	st.Close()
	return err
}

// runCheck is `spindle instance --check`: it validates the model and task of
// cfg (instance.Check) and prints one line of JSON on w, an api.Check or an
// api.CheckError. An upload at fault exits 2, after the line. maxMemory, when
// set, caps the process's address space at that much besides the mapped
// model files: where the platform has no memory cgroup, a model built to
// exhaust memory then fails the check instead of the machine. With
// artifactPath it also compiles a model that passed into its artifact there
// (a deploy's instances then map prepacked weights); a model that does not
// compile into one is no error, its instances load the model.
func runCheck(w, stderr io.Writer, cfg instance.Config, maxMemory int64, artifactPath string) error {
	if maxMemory > 0 {
		if err := limitAddressSpace(maxMemory, cfg.ModelPath, cfg.TaskDir); err != nil {
			return err
		}
	}
	res, err := instance.Check(cfg)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err != nil {
		enc.Encode(api.CheckError{Error: err.Error()})
		return usageError{err}
	}
	if artifactPath != "" && cfg.ModelPath != "" {
		if err := os.MkdirAll(filepath.Dir(artifactPath), 0o755); err == nil {
			_, err = artifact.Compile(cfg.ModelPath, artifactPath)
		}
		if err != nil {
			// Nothing half-written may reach the model store.
			os.Remove(artifactPath)
			os.Remove(artifactPath + ".data")
			fmt.Fprintf(stderr, "artifact: %v (instances will load the model)\n", err)
		} else {
			res.Artifact = filepath.ToSlash(artifactPath)
		}
	}
	return enc.Encode(res)
}

// limitAddressSpace sets RLIMIT_AS to extra bytes plus the size of the files
// the check maps (the model and its external data, in dirs) plus the Go
// runtime's own reservations.
func limitAddressSpace(extra int64, paths ...string) error {
	const runtimeReserve = 1 << 30
	total := extra + runtimeReserve
	for _, p := range paths {
		if p == "" {
			continue
		}
		filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if info, ierr := d.Info(); ierr == nil {
					total += info.Size()
				}
			}
			return nil
		})
	}
	lim := uint64(total)
	if err := unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: lim, Max: lim}); err != nil {
		return fmt.Errorf("--max-memory: %w", err)
	}
	return nil
}

// readTaskConfig returns --task-config's JSON: the value itself when it is a
// JSON object, else the file it names.
func readTaskConfig(v string) (json.RawMessage, error) {
	if strings.HasPrefix(strings.TrimSpace(v), "{") {
		return json.RawMessage(v), nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return nil, usagef("--task-config: %v", err)
	}
	return b, nil
}

// warmStem runs what a cold start will run once, before the stem cell says
// it is ready: it compiles two small generated models (a CNN and a
// transformer encoder) into artifacts, loads them in a Server and answers an
// inference request for each through its HTTP handler. The first run of
// that code in a process pays for its pages, the runtime's first heap and
// the kernels' thread pool; a stem cell pays before any function waits on it.
func warmStem() error {
	dir, err := os.MkdirTemp("", "spindle-stem-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tiny := modelgen.TransformerConfig{Name: "warm", Layers: 1, Hidden: 32, Heads: 2, FFN: 64, Vocab: 64, MaxPos: 16, TypeVocab: 2, Eps: 1e-12, FusedLayerNorm: true}
	for i, b := range []*modelgen.Builder{modelgen.MNISTCNN(1), modelgen.Transformer(tiny, 1)} {
		src, art := filepath.Join(dir, fmt.Sprint(i, ".onnx")), filepath.Join(dir, fmt.Sprint(i, ".spindle"))
		if err := b.Save(src, modelgen.SaveOptions{}); err != nil {
			return err
		}
		if _, err := artifact.Compile(src, art); err != nil {
			return err
		}
		if err := warmRun(art); err != nil {
			return err
		}
	}
	return nil
}

// warmRun loads the model at path in a Server and sends it one request of
// zeros, dynamic dimensions 4, through its handler.
func warmRun(path string) error {
	srv := instance.New(instance.Config{Name: "warm", ModelPath: path, Workers: 1, Logger: slog.New(slog.DiscardHandler)})
	if _, err := srv.Load(); err != nil {
		return err
	}
	defer srv.Close()
	h := srv.Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/models/warm", nil))
	var md oip.ModelMetadata
	if err := json.Unmarshal(rec.Body.Bytes(), &md); err != nil {
		return err
	}
	req := oip.InferRequest{}
	for _, in := range md.Inputs {
		shape, n := make([]int64, len(in.Shape)), int64(1)
		for i, d := range in.Shape {
			shape[i] = d
			if d < 0 {
				shape[i] = 4
			}
			n *= shape[i]
		}
		data, _ := json.Marshal(make([]int, n))
		req.Inputs = append(req.Inputs, oip.RequestInput{Name: in.Name, Shape: shape, Datatype: in.Datatype, Data: data})
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	rec = httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/v2/models/warm/infer", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK {
		return fmt.Errorf("warm-up request: %d %s", rec.Code, rec.Body.Bytes())
	}
	return nil
}
