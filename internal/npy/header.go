package npy

import (
	"fmt"
	"strconv"
	"strings"
)

// header is the content of a .npy header dict.
type header struct {
	descr   string
	fortran bool
	shape   []int
}

// tuple and list are Python tuple and list literals.
type (
	tuple []any
	list  []any
)

// maxDepth bounds nesting in a header literal (a structured descr nests lists
// and tuples a few levels deep), so a hostile header cannot recurse deeply.
const maxDepth = 32

// parseHeader parses hdr, a Python dict literal as numpy's safe_eval accepts it,
// followed by padding whitespace. Keys may come in any order; the dict must have
// exactly the keys descr, fortran_order and shape.
func parseHeader(hdr []byte) (header, error) {
	p := &litParser{s: string(hdr)}
	p.space()
	v, err := p.value(0)
	if err == nil {
		p.space()
		if p.i < len(p.s) {
			err = p.errorf("unexpected %s after the dict", p.describe())
		}
	}
	if err != nil {
		return header{}, formatErr("header: %v", err)
	}
	d, ok := v.(dict)
	if !ok {
		return header{}, formatErr("header: is %s, not a dict", typeName(v))
	}
	var h header
	var seen [3]bool
	for _, kv := range d {
		switch kv.key {
		case "descr":
			seen[0] = true
			switch x := kv.val.(type) {
			case string:
				h.descr = x
			case list:
				return header{}, formatErr("header: descr is a list (a structured dtype), which is not supported (supported: %s)", supported)
			default:
				return header{}, formatErr("header: descr is %s, not a string", typeName(kv.val))
			}
		case "fortran_order":
			seen[1] = true
			b, ok := kv.val.(bool)
			if !ok {
				return header{}, formatErr("header: fortran_order is %s, not True or False", typeName(kv.val))
			}
			h.fortran = b
		case "shape":
			seen[2] = true
			t, ok := kv.val.(tuple)
			if !ok {
				return header{}, formatErr("header: shape is %s, not a tuple", typeName(kv.val))
			}
			h.shape = make([]int, len(t))
			for i, e := range t {
				n, ok := e.(int64)
				if !ok {
					return header{}, formatErr("header: shape[%d] is %s, not an int", i, typeName(e))
				}
				if n < 0 || n > int64(maxInt) {
					return header{}, formatErr("header: shape[%d] is %d, must be between 0 and %d", i, n, maxInt)
				}
				h.shape[i] = int(n)
			}
		default:
			return header{}, formatErr("header: unexpected key %s (a .npy header has exactly 'descr', 'fortran_order' and 'shape')", pyRepr(kv.key))
		}
	}
	for i, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[i] {
			return header{}, formatErr("header: missing key '%s'", k)
		}
	}
	return h, nil
}

// dict is a Python dict literal with string keys, in source order.
type dict []keyVal

type keyVal struct {
	key string
	val any
}

// litParser parses the subset of Python literals that .npy headers use:
// dicts with string keys, tuples, lists, strings, ints, True, False and None.
// Values are string, int64, bool, nil, tuple, list or dict.
type litParser struct {
	s string
	i int
}

func (p *litParser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid literal at byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

// describe names what is at the current position, for error messages.
func (p *litParser) describe() string {
	if p.i >= len(p.s) {
		return "end of header"
	}
	return strconv.QuoteRune(rune(p.s[p.i]))
}

// space skips Python whitespace.
func (p *litParser) space() {
	for p.i < len(p.s) && strings.IndexByte(" \t\n\r\f\v", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *litParser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested more than %d levels deep", maxDepth)
	}
	if p.i >= len(p.s) {
		return nil, p.errorf("expected a value, found end of header")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.dict(depth)
	case c == '(':
		return p.seq(depth, ')')
	case c == '[':
		return p.seq(depth, ']')
	case c == '\'' || c == '"' || c == 'u' && p.i+1 < len(p.s) && (p.s[p.i+1] == '\'' || p.s[p.i+1] == '"'):
		return p.str()
	case c == '-' || c >= '0' && c <= '9':
		return p.int()
	}
	for _, w := range []struct {
		word string
		val  any
	}{{"True", true}, {"False", false}, {"None", nil}} {
		if strings.HasPrefix(p.s[p.i:], w.word) && !p.identAt(p.i+len(w.word)) {
			p.i += len(w.word)
			return w.val, nil
		}
	}
	return nil, p.errorf("expected a value, found %s", p.describe())
}

// identAt reports whether an identifier character is at i, so that "Truex" is
// not read as True.
func (p *litParser) identAt(i int) bool {
	if i >= len(p.s) {
		return false
	}
	c := p.s[i]
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func (p *litParser) dict(depth int) (dict, error) {
	p.i++ // '{'
	d := dict{}
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return d, nil
		}
		start := p.i
		k, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		key, ok := k.(string)
		if !ok {
			p.i = start
			return nil, p.errorf("dict key is %s, not a string", typeName(k))
		}
		for _, kv := range d {
			if kv.key == key {
				p.i = start
				return nil, p.errorf("duplicate key %s", pyRepr(key))
			}
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.errorf("expected ':' after key %s, found %s", pyRepr(key), p.describe())
		}
		p.i++
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		d = append(d, keyVal{key, v})
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return d, nil
		}
		return nil, p.errorf("expected ',' or '}' in dict, found %s", p.describe())
	}
}

// seq parses a tuple or list. As in Python, "(x)" without a comma is x itself,
// not a one-element tuple.
func (p *litParser) seq(depth int, end byte) (any, error) {
	p.i++ // '(' or '['
	var items []any
	comma := false
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == end {
			p.i++
			break
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		items = append(items, v)
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			comma = true
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == end {
			p.i++
			break
		}
		return nil, p.errorf("expected ',' or %q, found %s", end, p.describe())
	}
	if end == ']' {
		return list(items), nil
	}
	if len(items) == 1 && !comma {
		return items[0], nil
	}
	return tuple(items), nil
}

// str parses a single- or double-quoted string with an optional u prefix and
// the simple backslash escapes.
func (p *litParser) str() (string, error) {
	if p.s[p.i] == 'u' {
		p.i++
	}
	q := p.s[p.i]
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == q:
			p.i++
			return b.String(), nil
		case c == '\n':
			return "", p.errorf("newline in string")
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return "", p.errorf("unterminated string")
			}
			e, ok := map[byte]byte{'\\': '\\', '\'': '\'', '"': '"', 'n': '\n', 't': '\t', 'r': '\r', '0': 0}[p.s[p.i+1]]
			if !ok {
				return "", p.errorf("unsupported escape \\%c in string", p.s[p.i+1])
			}
			b.WriteByte(e)
			p.i += 2
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return "", p.errorf("unterminated string")
}

// int parses a decimal int with an optional minus sign and the L suffix of
// Python 2 longs, which headers written by NumPy under Python 2 can contain.
func (p *litParser) int() (int64, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
		p.space()
	}
	digits := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	num := p.s[digits:p.i]
	if num == "" {
		return 0, p.errorf("expected digits after '-'")
	}
	if len(num) > 1 && num[0] == '0' {
		p.i = digits
		return 0, p.errorf("int %s has a leading zero", num)
	}
	if p.i < len(p.s) && (p.s[p.i] == 'L' || p.s[p.i] == 'l') {
		p.i++
	}
	if p.identAt(p.i) || p.i < len(p.s) && p.s[p.i] == '.' {
		return 0, p.errorf("only decimal ints are supported, found %s", p.describe())
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		p.i = start
		return 0, p.errorf("int %s is out of range", num)
	}
	if p.s[start] == '-' {
		n = -n
	}
	return n, nil
}

// typeName names a literal's Python type for error messages.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a str"
	case int64:
		return "an int"
	case bool:
		return "a bool"
	case nil:
		return "None"
	case tuple:
		return "a tuple"
	case list:
		return "a list"
	case dict:
		return "a dict"
	}
	return fmt.Sprintf("%T", v)
}

// pyRepr quotes s the way Python's repr quotes a simple str, so error messages
// show header values as they appear in the file.
func pyRepr(s string) string {
	q := strconv.Quote(s)
	if !strings.Contains(s, "'") {
		q = "'" + strings.ReplaceAll(q[1:len(q)-1], `\"`, `"`) + "'"
	}
	return q
}
