package gateway

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/metrics"
	"github.com/spindleml/spindle/internal/registry"
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

// deploy checks an upload in a sandboxed child (check.go), stores its files
// and registers (or replaces) the function. The tenant's limits are checked
// first: a deploy they refuse stores nothing, and the upload is cut off at
// the tenant's memory limit.
func (g *Gateway) deploy(w http.ResponseWriter, r *http.Request) {
	who := owner(r)
	lim, err := g.tenants.Limits(who)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
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
	defer os.RemoveAll(staged) // Commit moves it away when the deploy succeeds
	// The name comes first from Spindle's client: refuse a deploy the
	// tenant's function limit forbids before any file is read.
	checkName := func(name string) error {
		if err := registry.ValidateName(name); err != nil {
			return err
		}
		if err := g.checkFunctionCount(who, name, lim.MaxFunctions); err != nil {
			return &limitError{err}
		}
		return nil
	}
	up := upload{dir: staged, maxBytes: lim.MaxMemoryBytes, checkName: checkName}
	if err := up.read(mr); err != nil {
		writeError(w, uploadStatus(err), err.Error())
		return
	}
	if up.over {
		writeError(w, http.StatusForbidden, fmt.Sprintf("tenant %q: the model's files are over the memory limit of %d bytes", who, lim.MaxMemoryBytes))
		return
	}
	if err := checkName(up.name); err != nil {
		writeError(w, uploadStatus(err), err.Error())
		return
	}
	if err := up.pickModel(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := g.check(r.Context(), checkRequest{owner: who, name: up.name, dir: staged, modelFile: up.modelFile, kind: up.kind, config: up.config, uploadBytes: up.bytes})
	var ue *uploadError
	switch {
	case errors.As(err, &ue):
		writeError(w, http.StatusBadRequest, ue.msg)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	f := registry.Function{Name: up.name, Owner: who, Task: cmp.Or(up.kind, api.TaskInfer), TaskConfig: res.TaskConfig, Batch: up.batch, Created: time.Now().UTC(), Artifact: res.Artifact}
	if res.Metadata != nil {
		f.Metadata = *res.Metadata
	}
	if up.modelFile == "" {
		staged = ""
	} else {
		f.ModelFile = filepath.ToSlash(up.modelFile)
	}
	g.register(w, f, staged)
}

// upload is a deploy's multipart body as it is read: the form fields, and
// the file parts saved into dir.
type upload struct {
	dir string
	// maxBytes caps the files together (the tenant's memory limit); 0 means
	// no cap. over is set when they went past it.
	maxBytes int64
	over     bool
	// checkName vets the name as soon as it is read.
	checkName func(name string) error

	name, modelFile, kind string
	// batch is the batching policy (api.ParseBatchPolicy's form).
	batch  string
	config json.RawMessage
	files  []string
	bytes  int64
}

// read reads every part of mr, stopping early once the files are over
// maxBytes.
func (u *upload) read(mr *multipart.Reader) error {
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("body: %w", err)
		}
		if err := u.readPart(part); err != nil || u.over {
			return err
		}
	}
}

func (u *upload) readPart(part *multipart.Part) error {
	switch part.FormName() {
	case "name", "model", "task", "batch":
		b, err := io.ReadAll(io.LimitReader(part, 1024))
		if err != nil {
			return fmt.Errorf("%s: %w", part.FormName(), err)
		}
		v := strings.TrimSpace(string(b))
		switch part.FormName() {
		case "name":
			u.name = v
			return u.checkName(v)
		case "model":
			u.modelFile = v
		case "batch":
			p, err := api.ParseBatchPolicy(v)
			if err != nil {
				return fmt.Errorf("batch: %w", err)
			}
			u.batch = p.String()
		default:
			u.kind = v
		}
	case "config":
		const maxConfig = 1 << 20
		b, err := io.ReadAll(io.LimitReader(part, maxConfig+1))
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if len(b) > maxConfig {
			return fmt.Errorf("config: over %d bytes", maxConfig)
		}
		// The check child takes it as JSON: an object, or null for none.
		if t := bytes.TrimSpace(b); len(t) > 0 && (!json.Valid(t) || (t[0] != '{' && string(t) != "null")) {
			return errors.New("config: want a JSON object")
		}
		u.config = b
	case "file":
		rel, err := partPath(part.Header.Get("Content-Disposition"))
		if err != nil {
			return err
		}
		var src io.Reader = part
		if u.maxBytes > 0 {
			src = io.LimitReader(part, u.maxBytes-u.bytes+1)
		}
		n, err := saveFile(filepath.Join(u.dir, rel), src)
		u.bytes += n
		if err != nil {
			return fmt.Errorf("file %q: %w", rel, err)
		}
		if u.maxBytes > 0 && u.bytes > u.maxBytes {
			u.over = true
		}
		u.files = append(u.files, filepath.ToSlash(rel))
	default:
		return fmt.Errorf("body: unknown field %q (want name, model, file, task, config, batch)", part.FormName())
	}
	return nil
}

// pickModel settles which uploaded file is the model: the one the "model"
// field names, else the only .onnx file; none for an upload without files
// (a function without a model, cpu-burn; the check says what is missing
// for other kinds).
func (u *upload) pickModel() error {
	if u.modelFile == "" {
		for _, f := range u.files {
			if strings.HasSuffix(f, ".onnx") {
				if u.modelFile != "" {
					return errors.New("model: several .onnx files uploaded; name the model file")
				}
				u.modelFile = f
			}
		}
		if u.modelFile == "" {
			if len(u.files) > 0 {
				return errors.New("model: no model file uploaded (want a file part ending in .onnx)")
			}
			return nil
		}
	}
	if !filepath.IsLocal(u.modelFile) {
		return fmt.Errorf("model %q: must be a relative path inside the upload", u.modelFile)
	}
	if _, err := os.Stat(filepath.Join(u.dir, u.modelFile)); err != nil {
		return fmt.Errorf("model %q: not among the uploaded files", u.modelFile)
	}
	return nil
}

// uploadStatus maps an error reading an upload to its HTTP status: 413 for
// one over the size limit, 403 for one a tenant limit forbids, 500 for a
// failure of the gateway's disk, 400 for the rest (the body is the client's).
func uploadStatus(err error) int {
	var ioe *ioError
	var le *limitError
	switch {
	case errors.As(err, &ioe):
		return http.StatusInternalServerError
	case errors.As(err, &le):
		return http.StatusForbidden
	}
	return statusForBody(err)
}

// limitError is a deploy its tenant's limits forbid: 403.
type limitError struct{ err error }

func (e *limitError) Error() string { return e.err.Error() }
func (e *limitError) Unwrap() error { return e.err }

// ioError is a failure of the gateway's own disk while saving an upload.
type ioError struct{ err error }

func (e *ioError) Error() string { return e.err.Error() }
func (e *ioError) Unwrap() error { return e.err }

// checkFunctionCount refuses a new function for owner when it already has
// max (0: no limit); replacing one of its functions is always allowed.
func (g *Gateway) checkFunctionCount(owner, name string, max int) error {
	if max <= 0 {
		return nil
	}
	fs, err := g.reg.List(owner)
	if err != nil {
		return err
	}
	for _, f := range fs {
		if f.Name == name {
			return nil
		}
	}
	if len(fs) >= max {
		return fmt.Errorf("tenant %q: function limit %d reached", owner, max)
	}
	return nil
}

// register stores the staged model folder (none when staged is "") and
// records f, within its owner's limits, then stops the instances of the
// function it replaces, which serve the old model, and frees models no
// function uses any more. storeMu orders this with removals, so a model is
// never freed between its commit and its function's registration.
func (g *Gateway) register(w http.ResponseWriter, f registry.Function, staged string) {
	g.storeMu.Lock()
	if staged != "" {
		digest, size, err := g.store.Commit(staged)
		if err != nil {
			g.storeMu.Unlock()
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		f.ModelDigest, f.ModelBytes = digest, size
	}
	old, oldErr := g.reg.Get(f.Owner, f.Name)
	ok := g.putWithinLimits(w, f)
	switch {
	case !ok:
		g.collectLocked(f.ModelDigest)
	case oldErr == nil:
		g.collectLocked(old.ModelDigest)
	}
	g.storeMu.Unlock()
	if !ok {
		return
	}
	g.stopFunction(fnKey(f.Owner, f.Name))
	writeJSON(w, http.StatusCreated, f)
}

// collectLocked removes the model digest from the store when no function
// uses it. The caller holds storeMu.
func (g *Gateway) collectLocked(digest string) {
	if digest == "" {
		return
	}
	fs, err := g.reg.List("")
	if err != nil {
		g.cfg.Logger.Warn("model store: cannot list functions; model kept", "digest", digest, "err", err)
		return
	}
	for _, f := range fs {
		if f.ModelDigest == digest {
			return
		}
	}
	if err := g.store.Remove(digest); err != nil {
		g.cfg.Logger.Warn("model store: remove failed", "digest", digest, "err", err)
	}
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
	rel = filepath.Clean(rel)
	if rel == artifactDir || strings.HasPrefix(rel, artifactDir+"/") {
		return "", fmt.Errorf("file %q: the folder %s is the platform's (compiled artifacts)", rel, artifactDir)
	}
	return rel, nil
}

// saveFile writes r to a new file at path and returns the bytes written.
// A file uploaded twice is the client's error; a failure of the disk is an
// *ioError.
func saveFile(path string, r io.Reader) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, &ioError{err}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return 0, errors.New("uploaded twice")
		}
		return 0, &ioError{err}
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = &ioError{cerr}
	}
	return n, err
}

// statusForBody maps a body read error to 413 for an oversized upload, else 400.
func statusForBody(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
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
	key := fnKey(f.Owner, f.Name)
	out := api.FunctionInfo{Function: f, CurrentVCPU: g.vcpuOf(f), Instances: []api.InstanceInfo{}, Latency: g.stats.Snapshot(key, g.clock.Now()), Decisions: g.decisions(key)}
	g.mu.Lock()
	fn := g.fns[key]
	g.mu.Unlock()
	if fn != nil {
		fn.mu.Lock()
		fn.pruneLocked()
		out.CurrentVCPU = fn.vcpu
		for _, r := range fn.replicas {
			out.Instances = append(out.Instances, api.InstanceInfo{Pid: r.proc.Pid, Addr: r.proc.Addr, InFlight: r.inflight.Load(), VCPU: fn.vcpu})
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
	if err := g.unregister(owner(r), name); err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("function %q is not deployed", name))
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

// unregister deletes a function, frees its model when no other function uses
// it, and stops its instances (they keep their mapped files until they exit).
func (g *Gateway) unregister(owner, name string) error {
	g.storeMu.Lock()
	f, err := g.reg.Get(owner, name)
	if err == nil {
		err = g.reg.Delete(owner, name)
	}
	if err == nil {
		g.collectLocked(f.ModelDigest)
	}
	g.storeMu.Unlock()
	if err != nil {
		return err
	}
	g.stopFunction(fnKey(owner, name))
	g.inferStats.forget(fnKey(owner, name))
	g.board.forget(fnKey(owner, name))
	g.dropLogs(f)
	return nil
}
