package task

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/tensor"
)

// maxLabels bounds a labels file (ImageNet-21k has 21843).
const maxLabels = 100000

// readLabels reads a labels file: one label per line, in the order of the
// model's output columns; blank lines at the end are ignored, blank or
// repeated labels elsewhere are errors naming the line.
func readLabels(dir, name string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, configErrorf("labels %q: not among the function's files (upload it beside the model)", name)
		}
		return nil, configErrorf("labels %q: %v", name, err)
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	lines := strings.Split(strings.TrimRight(string(b), " \t\r\n"), "\n")
	if len(lines) == 1 && strings.TrimSpace(lines[0]) == "" {
		return nil, configErrorf("labels %q: empty (want one label per line)", name)
	}
	if len(lines) > maxLabels {
		return nil, configErrorf("labels %q: %d labels, over the limit of %d", name, len(lines), maxLabels)
	}
	seen := make(map[string]int, len(lines))
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			return nil, configErrorf("labels %q line %d: empty label", name, i+1)
		}
		if j, dup := seen[l]; dup {
			return nil, configErrorf("labels %q line %d: label %q repeats line %d", name, i+1, l, j+1)
		}
		seen[l] = i
		lines[i] = l
	}
	return lines, nil
}

// Label is one ranked class of a classification answer.
type Label struct {
	Label string  `json:"label"`
	Score float64 `json:"score"`
}

// Labels is the answer for one classified input, best first.
type Labels struct {
	Labels []Label `json:"labels"`
}

// rank scores one row of outputs (softmax when soft) and returns the best k
// labels, highest score first; ties keep the label order.
func rank(row []float32, labels []string, k int, soft bool) []Label {
	scores := make([]float64, len(row))
	for i, v := range row {
		scores[i] = float64(v)
	}
	if soft {
		softmax(scores)
	}
	out := make([]Label, len(row))
	for i, s := range scores {
		out[i] = Label{Label: labels[i], Score: s}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Score > out[j].Score })
	return out[:min(k, len(out))]
}

// softmax replaces x with exp(x - max) / sum, in place.
func softmax(x []float64) {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, v)
	}
	var sum float64
	for i, v := range x {
		x[i] = math.Exp(v - m)
		sum += x[i]
	}
	for i := range x {
		x[i] /= sum
	}
}

// findInput returns the model input called name, or, when name is "", the
// only input; the error names the rule.
func findInput(m *engine.Model, name, field string) (engine.ValueInfo, error) {
	if name == "" {
		if len(m.Inputs) != 1 {
			return engine.ValueInfo{}, configErrorf("config: %s: the model has %d inputs (%s); name the one to feed", field, len(m.Inputs), valueNames(m.Inputs))
		}
		return m.Inputs[0], nil
	}
	for _, v := range m.Inputs {
		if v.Name == name {
			return v, nil
		}
	}
	return engine.ValueInfo{}, configErrorf("config: %s: the model has no input %q (inputs: %s)", field, name, valueNames(m.Inputs))
}

// findOutput returns the output called name; when name is "", the only output,
// else the first of prefer that the model has.
func findOutput(m *engine.Model, name string, prefer ...string) (engine.ValueInfo, error) {
	if name == "" {
		if len(m.Outputs) == 1 {
			return m.Outputs[0], nil
		}
		for _, p := range prefer {
			for _, v := range m.Outputs {
				if v.Name == p {
					return v, nil
				}
			}
		}
		return engine.ValueInfo{}, configErrorf("config: output: the model has outputs %s and none is called %s; name the one to read", valueNames(m.Outputs), strings.Join(prefer, " or "))
	}
	for _, v := range m.Outputs {
		if v.Name == name {
			return v, nil
		}
	}
	return engine.ValueInfo{}, configErrorf("config: output: the model has no output %q (outputs: %s)", name, valueNames(m.Outputs))
}

func valueNames(vs []engine.ValueInfo) string {
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.Name
	}
	return strings.Join(names, ", ")
}

// checkFloatOutput checks that an output is floating point with the given rank
// (when declared).
func checkFloatOutput(v engine.ValueInfo, rank int, want string) error {
	switch v.DType {
	case tensor.Float32, tensor.Float16, tensor.Float64:
	default:
		return configErrorf("model output %q: dtype %s, the task needs floating point %s", v.Name, v.DType, want)
	}
	if v.Shape != nil && len(v.Shape) != rank {
		return configErrorf("model output %q: shape %s has rank %d, the task needs %s", v.Name, tensor.ShapeString(v.Shape), len(v.Shape), want)
	}
	return nil
}

// checkScores checks a classification output [batch, classes] against the
// number of labels.
func checkScores(v engine.ValueInfo, labels []string, file string) error {
	if err := checkFloatOutput(v, 2, "scores [batch, classes]"); err != nil {
		return err
	}
	if v.Shape != nil && v.Shape[1] >= 0 && v.Shape[1] != len(labels) {
		return configErrorf("labels %q: %d labels, but model output %q has %d classes (shape %s)", file, len(labels), v.Name, v.Shape[1], tensor.ShapeString(v.Shape))
	}
	return nil
}

// floats returns a float output's values as float32.
func floats(t *tensor.Tensor) ([]float32, bool) {
	switch t.DType {
	case tensor.Float32:
		return t.F32, true
	case tensor.Float64:
		out := make([]float32, len(t.F64))
		for i, v := range t.F64 {
			out[i] = float32(v)
		}
		return out, true
	}
	return nil, false
}

// outputRows checks a model's answer for rows inputs: output name present,
// floating point, shape [rows, cols] with cols == want when want > 0.
func outputRows(outs map[string]*tensor.Tensor, name string, rows, want int) ([]float32, int, error) {
	t := outs[name]
	if t == nil {
		return nil, 0, fmt.Errorf("model gave no output %q", name)
	}
	v, ok := floats(t)
	if !ok || len(t.Shape) != 2 || t.Shape[0] != rows || (want > 0 && t.Shape[1] != want) {
		w := "cols"
		if want > 0 {
			w = fmt.Sprint(want)
		}
		return nil, 0, fmt.Errorf("model output %q: %s %s, want float [%d %s]", name, t.DType, tensor.ShapeString(t.Shape), rows, w)
	}
	return v, t.Shape[1], nil
}
