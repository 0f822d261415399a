package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// jsonValue is one JSON value with its object keys in document order (a map
// would sort them): exactly one of scalar (the value's JSON text), keys/vals
// (an object) or elems (an array, isArr) is set.
type jsonValue struct {
	scalar string
	isObj  bool
	keys   []string
	vals   []jsonValue
	isArr  bool
	elems  []jsonValue
}

// formatJSON indents src for a terminal, one object member or composite
// array element per line, but keeps every array of scalars on one line: a
// tensor's data or an embedding of 384 floats reads as one line each, not as
// a column of numbers. Numbers keep their text; the output is valid JSON.
func formatJSON(src []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	v, err := readJSON(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more than one JSON value")
	}
	var b strings.Builder
	writeJSON(&b, v, "")
	b.WriteByte('\n')
	return []byte(b.String()), nil
}

func readJSON(dec *json.Decoder) (jsonValue, error) {
	tok, err := dec.Token()
	if err != nil {
		return jsonValue{}, err
	}
	switch tok := tok.(type) {
	case json.Delim:
		switch tok {
		case '{':
			v := jsonValue{isObj: true}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return jsonValue{}, err
				}
				val, err := readJSON(dec)
				if err != nil {
					return jsonValue{}, err
				}
				v.keys = append(v.keys, k.(string))
				v.vals = append(v.vals, val)
			}
			_, err := dec.Token() // '}'
			return v, err
		case '[':
			v := jsonValue{isArr: true}
			for dec.More() {
				e, err := readJSON(dec)
				if err != nil {
					return jsonValue{}, err
				}
				v.elems = append(v.elems, e)
			}
			_, err := dec.Token() // ']'
			return v, err
		}
		return jsonValue{}, fmt.Errorf("unexpected %v", tok)
	case json.Number:
		return jsonValue{scalar: tok.String()}, nil
	case nil:
		return jsonValue{scalar: "null"}, nil
	default: // string or bool
		return jsonValue{scalar: quoteJSON(tok)}, nil
	}
}

// quoteJSON encodes a string or bool as JSON without HTML escaping, so a
// label like "<unk>" prints as it is.
func quoteJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v) // a string or a bool always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

func (v jsonValue) composite() bool { return v.isObj || v.isArr }

func writeJSON(b *strings.Builder, v jsonValue, indent string) {
	const step = "  "
	switch {
	case v.isObj && len(v.keys) == 0:
		b.WriteString("{}")
	case v.isObj:
		b.WriteString("{\n")
		for i, k := range v.keys {
			b.WriteString(indent + step + quoteJSON(k) + ": ")
			writeJSON(b, v.vals[i], indent+step)
			if i < len(v.keys)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "}")
	case v.isArr && !anyComposite(v.elems):
		b.WriteByte('[')
		for i, e := range v.elems {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(e.scalar)
		}
		b.WriteByte(']')
	case v.isArr:
		b.WriteString("[\n")
		for i, e := range v.elems {
			b.WriteString(indent + step)
			writeJSON(b, e, indent+step)
			if i < len(v.elems)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "]")
	default:
		b.WriteString(v.scalar)
	}
}

func anyComposite(vs []jsonValue) bool {
	for _, v := range vs {
		if v.composite() {
			return true
		}
	}
	return false
}
