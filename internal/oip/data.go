package oip

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/spindleml/spindle/internal/tensor"
)

// dataError is an error inside a tensor's data: suffix extends the data field's
// path ("[0][3]"), msg states the rule.
type dataError struct {
	suffix string
	msg    string
}

// dataScanner converts the JSON of a tensor's data straight into a typed slice.
// It scans bytes itself rather than decoding into []any, which for a 1x3x224x224
// image would allocate an interface per element.
type dataScanner struct {
	b         []byte
	i         int
	dt        tensor.DType
	wide      tensor.DType // Float16 or BFloat16: values rounded to it, held as float32
	datatype  string       // the protocol name of dt, for messages
	shape     []int
	allowNull bool

	t    *tensor.Tensor // nil when the data cannot match the shape anyway
	want int            // elements the shape needs
	n    int            // elements seen
	idx  []int          // index at each depth, for error paths
}

// decodeData converts raw, the JSON "data" of a tensor, into a tensor of dt and
// shape. The data is either a flat array of all elements in row-major order or
// arrays nested exactly as the shape; a rank-0 tensor may also be a bare value.
func decodeData(raw []byte, dt tensor.DType, datatype string, shape []int, allowNull bool) (*tensor.Tensor, *dataError) {
	var wide tensor.DType
	if dt.Wide() {
		wide, dt = dt, tensor.Float32 // float16 or bfloat16 values, held as float32
	}
	s := &dataScanner{b: raw, dt: dt, wide: wide, datatype: datatype, shape: shape, allowNull: allowNull,
		want: tensor.NumElements(shape), idx: make([]int, max(len(shape), 1))}
	// Every element takes at least one byte plus a separator, so a shape that
	// needs more than that cannot match and is never allocated: its error
	// reports the count once scanning is done.
	if s.want <= len(raw)/2+1 {
		s.t = tensor.New(dt, shape...)
	}
	s.space()
	var err *dataError
	switch {
	case s.i >= len(s.b):
		return nil, &dataError{msg: "is empty"}
	case s.b[s.i] != '[':
		if len(shape) != 0 {
			return nil, &dataError{msg: fmt.Sprintf("must be an array, not %s", s.kind())}
		}
		err = s.elem()
	case len(shape) > 1 && s.nextIsArray():
		err = s.nested(0)
	default:
		err = s.flat()
	}
	if err != nil {
		return nil, err
	}
	s.space()
	if s.i < len(s.b) {
		return nil, &dataError{msg: fmt.Sprintf("unexpected %s after the data", s.kind())}
	}
	if s.n != s.want {
		return nil, &dataError{msg: fmt.Sprintf("has %d elements, shape %s needs %d", s.n, tensor.ShapeString(shape), s.want)}
	}
	return s.t, nil
}

func (s *dataScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// nextIsArray reports whether the first element of the array at s.i is an array.
func (s *dataScanner) nextIsArray() bool {
	for j := s.i + 1; j < len(s.b); j++ {
		switch s.b[j] {
		case ' ', '\t', '\n', '\r':
		case '[':
			return true
		default:
			return false
		}
	}
	return false
}

// kind names the JSON value at s.i for messages.
func (s *dataScanner) kind() string {
	if s.i >= len(s.b) {
		return "the end of the data"
	}
	switch c := s.b[s.i]; {
	case c == '[':
		return "an array"
	case c == '{':
		return "an object"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || c >= '0' && c <= '9':
		return "a number"
	}
	return strconv.QuoteRune(rune(s.b[s.i]))
}

// path formats the index of the element being scanned at the given depth.
func (s *dataScanner) path(depth int) string {
	var b strings.Builder
	for _, i := range s.idx[:depth+1] {
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(i))
		b.WriteByte(']')
	}
	return b.String()
}

// flat scans an array of elements.
func (s *dataScanner) flat() *dataError {
	s.i++ // '['
	s.space()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.space()
		if err := s.elem(); err != nil {
			err.suffix = "[" + strconv.Itoa(s.n-1) + "]"
			return err
		}
		if done, err := s.next(); done || err != nil {
			return err
		}
	}
}

// nested scans the array for dimension depth of the shape.
func (s *dataScanner) nested(depth int) *dataError {
	s.i++ // '['
	count := 0
	s.space()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
	} else {
		for {
			s.idx[depth] = count
			s.space()
			if depth < len(s.shape)-1 {
				if s.i >= len(s.b) || s.b[s.i] != '[' {
					return &dataError{s.path(depth), fmt.Sprintf("must be an array (dimension %d of shape %s), not %s",
						depth+1, tensor.ShapeString(s.shape), s.kind())}
				}
				if err := s.nested(depth + 1); err != nil {
					return err
				}
			} else if err := s.elem(); err != nil {
				err.suffix = s.path(depth)
				return err
			}
			count++
			if done, err := s.next(); err != nil {
				err.suffix = s.path(depth - 1)
				return err
			} else if done {
				break
			}
		}
	}
	if count != s.shape[depth] {
		return &dataError{s.path(depth - 1), fmt.Sprintf("has %d elements, shape %s needs %d at dimension %d",
			count, tensor.ShapeString(s.shape), s.shape[depth], depth)}
	}
	return nil
}

// next consumes the ',' or ']' after an array element and reports whether the
// array ended. Its errors leave the path to the caller.
func (s *dataScanner) next() (done bool, err *dataError) {
	s.space()
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case ',':
			s.i++
			return false, nil
		case ']':
			s.i++
			return true, nil
		}
	}
	return false, &dataError{msg: fmt.Sprintf("expected ',' or ']', found %s", s.kind())}
}

// elem scans one element and stores it. Its errors leave the path to the caller.
func (s *dataScanner) elem() *dataError {
	fail := func(format string, args ...any) *dataError {
		return &dataError{msg: fmt.Sprintf(format, args...)}
	}
	k := s.n
	s.n++
	if s.i >= len(s.b) {
		return fail("expected a value, found the end of the data")
	}
	store := s.t != nil && k < s.want
	switch c := s.b[s.i]; {
	case c == '-' || c >= '0' && c <= '9':
		tok, integral := s.number()
		if tok == nil {
			return fail("invalid number")
		}
		if s.dt == tensor.Bool {
			return fail("expected true or false, not %s", short(tok))
		}
		if s.dt == tensor.String {
			return fail("expected a string, not %s (datatype BYTES)", short(tok))
		}
		if msg := s.putNumber(k, store, tok, integral); msg != "" {
			return fail("%s", msg)
		}
		return nil
	case c == 't' || c == 'f':
		v := c == 't'
		word := "false"
		if v {
			word = "true"
		}
		if !s.literal(word) {
			return fail("invalid literal")
		}
		if s.dt != tensor.Bool {
			return fail("expected %s, not %s (datatype %s)", map[bool]string{true: "a string", false: "a number"}[s.dt == tensor.String], word, s.datatype)
		}
		if store {
			s.t.B[k] = v
		}
		return nil
	case c == '"':
		end, serr := skipString(s.b, s.i)
		if serr != nil {
			return fail("invalid string")
		}
		tok := s.b[s.i:end]
		s.i = end
		switch s.dt {
		case tensor.String:
		case tensor.Bool:
			return fail("expected true or false, not a string")
		default:
			return fail("expected a number, not a string (datatype %s)", s.datatype)
		}
		if store {
			var v string
			if err := json.Unmarshal(tok, &v); err != nil {
				return fail("invalid string")
			}
			s.t.S[k] = v
		}
		return nil
	case c == 'n':
		if !s.literal("null") {
			return fail("invalid literal")
		}
		if !s.allowNull || s.dt != tensor.Float32 && s.dt != tensor.Float64 {
			return fail("null is not a valid %s value", s.datatype)
		}
		if store && s.dt == tensor.Float32 {
			s.t.F32[k] = float32(math.NaN())
		} else if store {
			s.t.F64[k] = math.NaN()
		}
		return nil
	}
	want := "a number"
	switch s.dt {
	case tensor.Bool:
		want = "true or false"
	case tensor.String:
		want = "a string"
	}
	return fail("expected %s, not %s", want, s.kind())
}

func (s *dataScanner) literal(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// number scans a JSON number (RFC 8259 section 6) and returns its text, or ""
// if the text is not a valid number; integral reports that it has neither a
// fraction nor an exponent.
func (s *dataScanner) number() (tok []byte, integral bool) {
	b, start, i := s.b, s.i, s.i
	digits := func() bool {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > j
	}
	if b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if !digits() {
		return nil, false
	}
	integral = true
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return nil, false
		}
		integral = false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return nil, false
		}
		integral = false
	}
	s.i = i
	return b[start:i], integral
}

// putNumber converts tok to the tensor's type and stores it at k if store. It
// returns a message for a value the type cannot hold.
func (s *dataScanner) putNumber(k int, store bool, tok []byte, integral bool) string {
	switch s.dt {
	case tensor.Float32:
		v, err := strconv.ParseFloat(string(tok), 32)
		if err != nil {
			return short(tok) + " overflows FP32"
		}
		switch s.wide {
		case tensor.Float16:
			h := tensor.RoundHalf(float32(v))
			if math.IsInf(float64(h), 0) {
				return short(tok) + " overflows FP16 (at most 65504 in magnitude)"
			}
			v = float64(h)
		case tensor.BFloat16:
			h := tensor.RoundBFloat(float32(v))
			if math.IsInf(float64(h), 0) {
				return short(tok) + " overflows BF16"
			}
			v = float64(h)
		}
		if store {
			s.t.F32[k] = float32(v)
		}
		return ""
	case tensor.Float64:
		v, err := strconv.ParseFloat(string(tok), 64)
		if err != nil {
			return short(tok) + " overflows FP64"
		}
		if store {
			s.t.F64[k] = v
		}
		return ""
	}
	if s.dt == tensor.Uint64 && integral && len(tok) > 0 && tok[0] != '-' {
		// UINT64 reaches past int64: parse it unsigned.
		u, err := strconv.ParseUint(string(tok), 10, 64)
		if err != nil {
			return short(tok) + " is out of range for " + s.datatype
		}
		if store {
			s.t.U64[k] = u
		}
		return ""
	}
	var v int64
	if integral {
		var err error
		if v, err = strconv.ParseInt(string(tok), 10, 64); err != nil {
			return short(tok) + " is out of range for " + s.datatype
		}
	} else {
		// 3.0 and 1e3 are integers written as floats, as some clients send
		// them; accept them while the float is exact (below 2^53).
		f, err := strconv.ParseFloat(string(tok), 64)
		if err != nil || f != math.Trunc(f) {
			return short(tok) + " is not an integer (datatype " + s.datatype + ")"
		}
		if math.Abs(f) >= 1<<53 {
			return short(tok) + " is not an exact integer; write it without a fraction or exponent"
		}
		v = int64(f)
	}
	var lo, hi int64
	switch s.dt {
	case tensor.Int64:
		lo, hi = math.MinInt64, math.MaxInt64
	case tensor.Int32:
		lo, hi = math.MinInt32, math.MaxInt32
	case tensor.Int16:
		lo, hi = math.MinInt16, math.MaxInt16
	case tensor.Int8:
		lo, hi = math.MinInt8, math.MaxInt8
	case tensor.Uint64:
		lo, hi = 0, math.MaxInt64
	case tensor.Uint32:
		lo, hi = 0, math.MaxUint32
	case tensor.Uint16:
		lo, hi = 0, math.MaxUint16
	case tensor.Uint8:
		lo, hi = 0, math.MaxUint8
	}
	if v < lo || v > hi {
		return short(tok) + " is out of range for " + s.datatype
	}
	if store {
		switch s.dt {
		case tensor.Int64:
			s.t.I64[k] = v
		case tensor.Int32:
			s.t.I32[k] = int32(v)
		case tensor.Int16:
			s.t.I16[k] = int16(v)
		case tensor.Int8:
			s.t.I8[k] = int8(v)
		case tensor.Uint64:
			s.t.U64[k] = uint64(v)
		case tensor.Uint32:
			s.t.U32[k] = uint32(v)
		case tensor.Uint16:
			s.t.U16[k] = uint16(v)
		case tensor.Uint8:
			s.t.U8[k] = uint8(v)
		}
	}
	return ""
}

// short truncates a token for an error message.
func short(tok []byte) string {
	if len(tok) > 32 {
		return string(tok[:32]) + "..."
	}
	return string(tok)
}
