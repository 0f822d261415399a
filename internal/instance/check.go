package instance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/task"
)

// Check validates what a deploy uploaded, as the instance that serves it
// would load it: the task kind and config, the model (load, compile: shape
// and attribute checks, constant folding) and the task built on it (its
// tokenizer or labels file, the model's inputs and outputs). The gateway runs
// it in a sandboxed child (`spindle instance --check`) under the tenant's
// limits and a deadline, so that a model built to exhaust memory or time
// harms only that child. cfg.TaskDir holds the uploaded files; a cpu-burn
// function may upload none. Every error is the upload's fault and says why.
func Check(cfg Config) (api.Check, error) {
	kind := cfg.Task
	if kind == "" {
		kind = task.Infer
	}
	var tcfg task.Config
	switch {
	case kind != task.Infer && !task.IsKind(kind):
		return api.Check{}, fmt.Errorf("task %q: unknown (want %s or %s)", kind, task.Infer, strings.Join(task.Kinds(), ", "))
	case kind == task.Infer && len(bytes.TrimSpace(cfg.TaskConfig)) > 0:
		return api.Check{}, fmt.Errorf("config: only task functions take a config (set task)")
	case kind != task.Infer:
		var err error
		if tcfg, err = task.ParseConfig(cfg.TaskConfig); err != nil {
			return api.Check{}, err
		}
	}
	if !task.NeedsModel(kind) {
		if cfg.ModelPath != "" || hasFiles(cfg.TaskDir) {
			return api.Check{}, fmt.Errorf("file: task %s takes no model and no files", kind)
		}
	} else if cfg.ModelPath == "" {
		return api.Check{}, fmt.Errorf("model: no model file uploaded (want a file part ending in .onnx)")
	}
	s := New(cfg)
	if _, err := s.Load(); err != nil {
		return api.Check{}, err
	}
	defer s.Close()
	out := api.Check{TaskConfig: canonicalConfig(kind, tcfg)}
	if s.model != nil {
		md := Metadata(cfg.Name, s.model)
		st := s.model.Stats()
		out.Metadata = &md
		out.Nodes, out.Steps, out.FoldedBytes, out.PackedBytes = st.Nodes, st.Steps, st.FoldedBytes, st.PackedBytes
	}
	return out, nil
}

// hasFiles reports whether dir holds anything ("" holds nothing).
func hasFiles(dir string) bool {
	if dir == "" {
		return false
	}
	es, err := os.ReadDir(dir)
	return err != nil || len(es) > 0
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
