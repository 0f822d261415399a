package gateway

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spindleml/spindle/internal/autoscale"
	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/instance"
	"github.com/spindleml/spindle/internal/metrics"
	"github.com/spindleml/spindle/internal/onnx"
	"github.com/spindleml/spindle/internal/registry"
	"github.com/spindleml/spindle/internal/task"
)

// Deploy upload format (multipart/form-data, parts in any order):
//   - "name":  the function name;
//   - "model": the model file's path relative to the upload root (default: the
//     only .onnx file uploaded);
//   - "file":  one part per file, its Content-Disposition filename the path
//     relative to the upload root (external data keeps its place beside the
//     model; a task's extra files, tokenizer.json or labels.txt, sit at the
//     paths its config names, by default at the root);
//   - "task":  the task kind (package task), default "infer": raw OIP v2 only;
//   - "config": the task's JSON config (task.Config).
//
// A cpu-burn function has no model and no files.

// deploy stores an uploaded model, checks that it loads and compiles, and
// registers (or replaces) the function.
func (g *Gateway) deploy(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, g.cfg.MaxUploadBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("body: want multipart/form-data with fields name, model and file parts: %v", err))
		return
	}
	staged, err := g.store.Stage()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	committed := false
	defer func() {
		if !committed {
			os.RemoveAll(staged)
		}
	}()
	var name, modelFile, kind string
	var rawConfig []byte
	var files []string
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			writeError(w, statusForBody(err), fmt.Sprintf("body: %v", err))
			return
		}
		switch part.FormName() {
		case "name", "model", "task":
			b, err := io.ReadAll(io.LimitReader(part, 1024))
			if err != nil {
				writeError(w, statusForBody(err), fmt.Sprintf("%s: %v", part.FormName(), err))
				return
			}
			switch part.FormName() {
			case "name":
				name = strings.TrimSpace(string(b))
			case "model":
				modelFile = strings.TrimSpace(string(b))
			default:
				kind = strings.TrimSpace(string(b))
			}
		case "config":
			const maxConfig = 1 << 20
			b, err := io.ReadAll(io.LimitReader(part, maxConfig+1))
			if err != nil {
				writeError(w, statusForBody(err), fmt.Sprintf("config: %v", err))
				return
			}
			if len(b) > maxConfig {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("config: over %d bytes", maxConfig))
				return
			}
			rawConfig = b
		case "file":
			rel, err := partPath(part.Header.Get("Content-Disposition"))
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			if err := saveFile(filepath.Join(staged, rel), part); err != nil {
				writeError(w, statusForBody(err), fmt.Sprintf("file %q: %v", rel, err))
				return
			}
			files = append(files, filepath.ToSlash(rel))
		default:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("body: unknown field %q (want name, model, file, task, config)", part.FormName()))
			return
		}
	}
	if err := registry.ValidateName(name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	kind = cmp.Or(kind, task.Infer)
	var taskCfg task.Config
	switch {
	case kind != task.Infer && !task.IsKind(kind):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("task %q: unknown (want %s or %s)", kind, task.Infer, strings.Join(task.Kinds(), ", ")))
		return
	case kind == task.Infer && len(bytes.TrimSpace(rawConfig)) > 0:
		writeError(w, http.StatusBadRequest, "config: only task functions take a config (set task)")
		return
	case kind != task.Infer:
		if taskCfg, err = task.ParseConfig(rawConfig); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if kind != task.Infer && !task.NeedsModel(kind) {
		g.deployModelless(w, r, name, kind, taskCfg, files, modelFile)
		return
	}
	if modelFile == "" {
		for _, f := range files {
			if strings.HasSuffix(f, ".onnx") {
				if modelFile != "" {
					writeError(w, http.StatusBadRequest, "model: several .onnx files uploaded; name the model file")
					return
				}
				modelFile = f
			}
		}
	}
	if modelFile == "" {
		writeError(w, http.StatusBadRequest, "model: no model file uploaded (want a file part ending in .onnx)")
		return
	}
	if !filepath.IsLocal(modelFile) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("model %q: must be a relative path inside the upload", modelFile))
		return
	}
	if _, err := os.Stat(filepath.Join(staged, modelFile)); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("model %q: not among the uploaded files", modelFile))
		return
	}
	// Load in place to reject a broken model now rather than at its first request.
	src, err := onnx.Load(filepath.Join(staged, modelFile), onnx.Mmap)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("model: %v", trimStaged(err, staged)))
		return
	}
	compiled, err := engine.Compile(src)
	if err != nil {
		src.Close()
		writeError(w, http.StatusBadRequest, fmt.Sprintf("model: %v", trimStaged(err, staged)))
		return
	}
	md := instance.Metadata(name, compiled)
	// Build the task too: a model that does not fit it, or a missing
	// tokenizer or labels file, is rejected now.
	if kind != task.Infer {
		if _, err := task.New(kind, taskCfg, staged, compiled); err != nil {
			src.Close()
			writeError(w, http.StatusBadRequest, trimStaged(err, staged))
			return
		}
	}
	src.Close()

	digest, size, err := g.store.Commit(staged)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	committed = true
	f := registry.Function{Name: name, Owner: owner(r), Task: kind, TaskConfig: canonicalConfig(kind, taskCfg), ModelDigest: digest, ModelFile: filepath.ToSlash(modelFile), ModelBytes: size, Metadata: md, Created: time.Now().UTC()}
	g.register(w, f)
}

// register records a deployed function and stops the instances of the one it
// replaces: they serve the old model.
func (g *Gateway) register(w http.ResponseWriter, f registry.Function) {
	if !g.putWithinLimits(w, f) {
		return
	}
	g.stopFunction(fnKey(f.Owner, f.Name))
	writeJSON(w, http.StatusCreated, f)
}

// deployModelless registers a function whose task runs no model (cpu-burn):
// nothing goes into the model store.
func (g *Gateway) deployModelless(w http.ResponseWriter, r *http.Request, name, kind string, cfg task.Config, files []string, modelFile string) {
	if len(files) > 0 || modelFile != "" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("file: task %s takes no model and no files", kind))
		return
	}
	if _, err := task.New(kind, cfg, "", nil); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	g.register(w, registry.Function{Name: name, Owner: owner(r), Task: kind, TaskConfig: canonicalConfig(kind, cfg), Created: time.Now().UTC()})
}

// canonicalConfig is the config as the registry keeps it: the fields set, in
// a fixed order; nil for none.
func canonicalConfig(kind string, cfg task.Config) json.RawMessage {
	if kind == task.Infer {
		return nil
	}
	b, _ := json.Marshal(cfg) // plain fields: cannot fail
	if string(b) == "{}" {
		return nil
	}
	return b
}

// partPath extracts and validates the relative path a file part was uploaded
// under. (multipart.Part.FileName drops directories, which external data needs.)
func partPath(disposition string) (string, error) {
	_, params, err := mime.ParseMediaType(disposition)
	if err != nil {
		return "", fmt.Errorf("file: bad Content-Disposition: %v", err)
	}
	rel := params["filename"]
	if rel == "" {
		return "", errors.New("file: part has no filename")
	}
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("file %q: must be a relative path without '..'", rel)
	}
	return filepath.Clean(rel), nil
}

func saveFile(path string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return errors.New("uploaded twice")
		}
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// statusForBody maps a body read error to 413 for an oversized upload, else 400.
func statusForBody(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// trimStaged removes the staging folder from an error message, so users see the
// paths they uploaded.
func trimStaged(err error, staged string) string {
	return strings.ReplaceAll(err.Error(), staged+string(filepath.Separator), "")
}

func (g *Gateway) list(w http.ResponseWriter, r *http.Request) {
	fs, err := g.reg.List(owner(r))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if fs == nil {
		fs = []registry.Function{}
	}
	writeJSON(w, http.StatusOK, fs)
}

func (g *Gateway) describe(w http.ResponseWriter, r *http.Request) {
	f, ok := g.lookup(w, r)
	if !ok {
		return
	}
	type instanceInfo struct {
		Pid      int     `json:"pid"`
		Addr     string  `json:"addr"`
		InFlight int64   `json:"in_flight"`
		VCPU     float64 `json:"vcpu"`
		RSS      uint64  `json:"rss_bytes"`
		PSS      uint64  `json:"pss_bytes"`
	}
	key := fnKey(f.Owner, f.Name)
	out := struct {
		registry.Function
		VCPU      float64               `json:"current_vcpu"`
		Instances []instanceInfo        `json:"instances"`
		Latency   metrics.FunctionStats `json:"recent_latency"`
		Decisions []autoscale.Record    `json:"recent_decisions"`
	}{Function: f, VCPU: g.vcpuOf(f), Instances: []instanceInfo{}, Latency: g.stats.Snapshot(key, g.clock.Now()), Decisions: g.decisions(key)}
	g.mu.Lock()
	fn := g.fns[key]
	g.mu.Unlock()
	if fn != nil {
		fn.mu.Lock()
		fn.pruneLocked()
		out.VCPU = fn.vcpu
		for _, r := range fn.replicas {
			out.Instances = append(out.Instances, instanceInfo{Pid: r.proc.Pid, Addr: r.proc.Addr, InFlight: r.inflight.Load(), VCPU: fn.vcpu})
		}
		fn.mu.Unlock()
	}
	for i := range out.Instances {
		out.Instances[i].RSS, out.Instances[i].PSS, _ = metrics.ReadMemory(out.Instances[i].Pid)
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *Gateway) remove(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := g.reg.Delete(owner(r), name); err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("function %q is not deployed", name))
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	g.stopFunction(fnKey(owner(r), name))
	writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
}
