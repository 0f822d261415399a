package engine

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/spindleml/spindle/internal/tensor"
)

// Text ops over string and token tensors: StringNormalizer and
// TfIdfVectorizer, as classic NLP pipelines exported from scikit-learn
// (sklearn-onnx) hold them.

func init() {
	register("StringNormalizer", newStringNormalizer)
	register("TfIdfVectorizer", newTfIdfVectorizer)
	register("StringConcat", newStringConcat)
	register("StringSplit", newStringSplit)
	register("RegexFullMatch", newRegexFullMatch)
}

// stringInput returns input i, which must be a string tensor.
func stringInput(in []*tensor.Tensor, i int, name string) (*tensor.Tensor, error) {
	if in[i].DType != tensor.String {
		return nil, fmt.Errorf("input %s: dtype %s, must be string", name, in[i].DType)
	}
	return in[i], nil
}

// newStringConcat joins X and Y elementwise, broadcasting.
func newStringConcat(*Node) (Kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 2); err != nil {
			return nil, err
		}
		x, err := stringInput(in, 0, "X")
		if err != nil {
			return nil, err
		}
		y, err := stringInput(in, 1, "Y")
		if err != nil {
			return nil, err
		}
		shape, err := broadcastShapes(x.Shape, y.Shape)
		if err != nil {
			return nil, fmt.Errorf("inputs X and Y: %w", err)
		}
		out := tensor.New(tensor.String, shape...)
		broadcastApply(out.S, shape, x.S, x.Shape, y.S, y.Shape, func(a, b string) string { return a + b })
		return []*tensor.Tensor{out}, nil
	}, nil
}

// newStringSplit splits each string of X at delimiter (at runs of spaces
// when delimiter is empty or absent), at most maxsplit times when given, as
// splitString says. Outputs: Y
// of X's shape plus one axis as long as the most parts, padded with empty
// strings, and Z, each string's count of parts (int64).
func newStringSplit(n *Node) (Kernel, error) {
	delim := n.String("delimiter", "")
	maxSplit := -1
	if n.Has("maxsplit") {
		if maxSplit = int(n.Int("maxsplit", 0)); maxSplit < 0 {
			return nil, fmt.Errorf("attribute maxsplit: %d, must be >= 0", maxSplit)
		}
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x, err := stringInput(in, 0, "X")
		if err != nil {
			return nil, err
		}
		parts := make([][]string, len(x.S))
		width := 0
		for i, s := range x.S {
			parts[i] = splitString(s, delim, maxSplit)
			width = max(width, len(parts[i]))
		}
		if len(x.S)*width > maxElements {
			return nil, fmt.Errorf("output Y: %d x %d strings, more than %d", len(x.S), width, maxElements)
		}
		y := tensor.New(tensor.String, append(slices.Clone(x.Shape), width)...)
		z := tensor.New(tensor.Int64, x.Shape...)
		for i, p := range parts {
			copy(y.S[i*width:], p)
			z.I64[i] = int64(len(p))
		}
		return []*tensor.Tensor{y, z}, nil
	}, nil
}

// splitString splits s as ONNX Runtime's StringSplit does: an empty s has
// no parts; with a delimiter, the parts between its occurrences (empty ones
// kept), at most maxSplit+1 of them when maxSplit >= 0, the last holding the
// rest; without one, the runs of non-space characters (spaces, ' ' only,
// separate them and are dropped at both ends), the last part, when maxSplit
// stops the splitting, holding the rest with trailing spaces trimmed.
func splitString(s, delim string, maxSplit int) []string {
	if s == "" {
		return nil
	}
	n := -1 // all
	if maxSplit >= 0 {
		n = maxSplit + 1
	}
	if delim != "" {
		return strings.SplitN(s, delim, n)
	}
	var out []string
	rest := strings.TrimLeft(s, " ")
	for rest != "" {
		if len(out) == n-1 {
			return append(out, strings.TrimRight(rest, " "))
		}
		end := strings.IndexByte(rest, ' ')
		if end < 0 {
			return append(out, rest)
		}
		out = append(out, rest[:end])
		rest = strings.TrimLeft(rest[end:], " ")
	}
	return out
}

// newRegexFullMatch says, for each string of X, whether pattern (RE2
// syntax, as ONNX specifies) matches all of it.
func newRegexFullMatch(n *Node) (Kernel, error) {
	re, err := regexp.Compile(`^(?:` + n.String("pattern", "") + `)$`)
	if err != nil {
		return nil, fmt.Errorf("attribute pattern: %w", err)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x, err := stringInput(in, 0, "X")
		if err != nil {
			return nil, err
		}
		y := tensor.New(tensor.Bool, x.Shape...)
		for i, s := range x.S {
			y.B[i] = re.MatchString(s)
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}

// Strings returns string-list attribute name, or nil when it is absent.
func (n *Node) Strings(name string) []string {
	a, ok := n.attrs[name]
	if !ok {
		return nil
	}
	out := make([]string, len(a.GetStrings()))
	for i, s := range a.GetStrings() {
		out[i] = string(s)
	}
	return out
}

// newStringNormalizer drops stopwords from a [C] or [1, C] string tensor and
// changes the case of what is left (case_change_action LOWER, UPPER or NONE).
// Stopwords match case-insensitively unless is_case_sensitive is 1. When
// every string is a stopword the output keeps one empty string, as ONNX
// Runtime does. The locale attribute is accepted; case mapping is Unicode's.
func newStringNormalizer(n *Node) (Kernel, error) {
	action := n.String("case_change_action", "NONE")
	var change func(string) string
	switch action {
	case "NONE":
		change = func(s string) string { return s }
	case "LOWER":
		change = strings.ToLower
	case "UPPER":
		change = strings.ToUpper
	default:
		return nil, fmt.Errorf("attribute case_change_action: %q, must be LOWER, UPPER or NONE", action)
	}
	sensitive := n.Int("is_case_sensitive", 0) != 0
	stop := map[string]bool{}
	for _, w := range n.Strings("stopwords") {
		if !sensitive {
			w = strings.ToLower(w)
		}
		stop[w] = true
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 1, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if x.DType != tensor.String {
			return nil, fmt.Errorf("input X: dtype %s, must be string", x.DType)
		}
		if r := len(x.Shape); r != 1 && !(r == 2 && x.Shape[0] == 1) {
			return nil, fmt.Errorf("input X: shape %s, must be [C] or [1, C]", tensor.ShapeString(x.Shape))
		}
		var kept []string
		for _, s := range x.S {
			key := s
			if !sensitive {
				key = strings.ToLower(s)
			}
			if !stop[key] {
				kept = append(kept, change(s))
			}
		}
		if len(kept) == 0 {
			kept = []string{""}
		}
		shape := []int{len(kept)}
		if len(x.Shape) == 2 {
			shape = []int{1, len(kept)}
		}
		return []*tensor.Tensor{{DType: tensor.String, Shape: shape, S: kept}}, nil
	}, nil
}

// tfidf is a compiled TfIdfVectorizer: its pool of n-grams keyed by their
// tokens' encoding, each with its position in the pool, which picks its
// weight and (through ngram_indexes) its output column.
type tfidf struct {
	minN, maxN, maxSkip int
	mode                string
	strings             bool           // the pool holds strings, else integers
	ids                 map[string]int // n-gram -> position in the pool
	prefixes            map[string]bool
	cols                []int // ngram_indexes
	weights             []float32
	width               int // output columns: max(ngram_indexes) + 1
}

// newTfIdfVectorizer counts, in each row of a [C] or [N, C] tensor of
// integers or strings, the n-grams of its pool (min_gram_length to
// max_gram_length tokens, consecutive or with up to max_skip_count tokens
// skipped between them), and weights the counts by mode: TF (counts), IDF
// (weight where present) or TFIDF (count x weight). Unigrams are counted once
// whatever the skip, as ONNX Runtime does.
func newTfIdfVectorizer(n *Node) (Kernel, error) {
	t := &tfidf{
		minN: int(n.Int("min_gram_length", 0)), maxN: int(n.Int("max_gram_length", 0)),
		maxSkip: int(n.Int("max_skip_count", 0)), mode: n.String("mode", ""),
		weights: n.Floats("weights", nil),
	}
	if t.minN < 1 || t.maxN < t.minN {
		return nil, fmt.Errorf("attributes min_gram_length %d and max_gram_length %d: need 1 <= min <= max", t.minN, t.maxN)
	}
	if t.maxSkip < 0 {
		return nil, fmt.Errorf("attribute max_skip_count: %d, must be >= 0", t.maxSkip)
	}
	if t.mode != "TF" && t.mode != "IDF" && t.mode != "TFIDF" {
		return nil, fmt.Errorf("attribute mode: %q, must be TF, IDF or TFIDF", t.mode)
	}
	ints, strs := n.Ints("pool_int64s", nil), n.Strings("pool_strings")
	if (len(ints) > 0) == (len(strs) > 0) {
		return nil, fmt.Errorf("attributes pool_int64s and pool_strings: exactly one must be set")
	}
	t.strings = len(strs) > 0
	poolLen := max(len(ints), len(strs))
	token := func(i int) string {
		if t.strings {
			return encodeToken(strs[i])
		}
		return encodeInt(ints[i])
	}
	counts, indexes := n.Ints("ngram_counts", nil), n.Ints("ngram_indexes", nil)
	if len(counts) == 0 {
		return nil, fmt.Errorf("attribute ngram_counts: required (where each size of n-gram starts in the pool)")
	}
	t.ids, t.prefixes = map[string]int{}, map[string]bool{}
	k := 0 // the n-gram's position in pool order, its entry in ngram_indexes
	for g, start := range counts {
		size := g + 1
		end := int64(poolLen)
		if g+1 < len(counts) {
			end = counts[g+1]
		}
		if start < 0 || end < start || end > int64(poolLen) || (end-start)%int64(size) != 0 {
			return nil, fmt.Errorf("attribute ngram_counts: %v does not split a pool of %d tokens into %d-grams at entry %d", counts, poolLen, size, g)
		}
		for p := int(start); p < int(end); p += size {
			if k >= len(indexes) {
				return nil, fmt.Errorf("attribute ngram_indexes: %d entries, the pool holds more n-grams", len(indexes))
			}
			col := indexes[k]
			if col < 0 || col >= maxElements {
				return nil, fmt.Errorf("attribute ngram_indexes: entry %d is %d, must be in [0, 2^30)", k, col)
			}
			var key strings.Builder
			for j := range size {
				if j > 0 {
					t.prefixes[key.String()] = true
				}
				key.WriteString(token(p + j))
			}
			t.ids[key.String()] = k
			t.cols = append(t.cols, int(col))
			t.width = max(t.width, int(col)+1)
			k++
		}
	}
	if k != len(indexes) {
		return nil, fmt.Errorf("attribute ngram_indexes: %d entries for %d n-grams", len(indexes), k)
	}
	if len(t.weights) > 0 && len(t.weights) != k {
		return nil, fmt.Errorf("attribute weights: %d entries, need one per n-gram of the pool (%d)", len(t.weights), k)
	}
	return t.run, nil
}

func (t *tfidf) run(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if err := checkInputs(in, 1, 1); err != nil {
		return nil, err
	}
	x := in[0]
	var token func(i int) string
	switch {
	case t.strings && x.DType == tensor.String:
		token = func(i int) string { return encodeToken(x.S[i]) }
	case !t.strings && x.DType == tensor.Int64:
		token = func(i int) string { return encodeInt(x.I64[i]) }
	case !t.strings && x.DType == tensor.Int32:
		token = func(i int) string { return encodeInt(int64(x.I32[i])) }
	default:
		want := "int32 or int64"
		if t.strings {
			want = "string"
		}
		return nil, fmt.Errorf("input X: dtype %s, the pool is of %s tokens", x.DType, want)
	}
	var rows, c int
	switch len(x.Shape) {
	case 1:
		rows, c = 1, x.Shape[0]
	case 2:
		rows, c = x.Shape[0], x.Shape[1]
	default:
		return nil, fmt.Errorf("input X: shape %s, must be [C] or [N, C]", tensor.ShapeString(x.Shape))
	}
	shape := []int{t.width}
	if len(x.Shape) == 2 {
		shape = []int{rows, t.width}
	}
	if rows*t.width > maxElements {
		return nil, fmt.Errorf("output: %d x %d elements, more than %d", rows, t.width, maxElements)
	}
	out := tensor.New(tensor.Float32, shape...)
	freq := make([]float32, len(t.cols))
	for r := range rows {
		clear(freq)
		t.count(freq, func(i int) string { return token(r*c + i) }, c)
		row := out.F32[r*t.width : (r+1)*t.width]
		for k, f := range freq {
			if f == 0 {
				continue
			}
			w := float32(1)
			if len(t.weights) > 0 {
				w = t.weights[k]
			}
			switch t.mode {
			case "TF":
				row[t.cols[k]] += f
			case "IDF":
				row[t.cols[k]] += w
			case "TFIDF":
				row[t.cols[k]] += f * w
			}
		}
	}
	return []*tensor.Tensor{out}, nil
}

// count adds one row's n-gram counts, by pool position, into freq: for each skip distance and
// start, the n-gram grows a token at a time while it is a prefix of a pooled
// one.
func (t *tfidf) count(freq []float32, token func(i int) string, c int) {
	first := t.minN
	for dist := 1; dist <= t.maxSkip+1; dist++ {
		for start := 0; start < c; start++ {
			if start+dist*(first-1) >= c {
				break
			}
			var key strings.Builder
			for size, i := 1, start; size <= t.maxN && i < c; size, i = size+1, i+dist {
				key.WriteString(token(i))
				k := key.String()
				if id, ok := t.ids[k]; ok && size >= first {
					freq[id]++
				}
				if !t.prefixes[k] {
					break
				}
			}
		}
		// Unigrams do not depend on the skip: count them once.
		if first == 1 {
			if first++; first > t.maxN {
				break
			}
		}
	}
}

// encodeInt and encodeToken give every token a self-delimiting key, so
// concatenated keys name one n-gram each.
func encodeInt(v int64) string {
	return string(binary.LittleEndian.AppendUint64(nil, uint64(v)))
}

func encodeToken(s string) string {
	return string(binary.AppendUvarint(nil, uint64(len(s)))) + s
}
