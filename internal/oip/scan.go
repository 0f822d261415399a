package oip

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// This file splits JSON bodies into raw members without decoding them.
// encoding/json validates a body and then skips every json.RawMessage with a
// byte-at-a-time state machine; for a request carrying an image those passes
// cost several times more than converting the numbers. A plain loop over the
// bytes does the same checks far faster, and the small fields are then decoded
// with encoding/json from their own short slices.

// maxDepth is the deepest nesting accepted, as in encoding/json.
const maxDepth = 10000

// syntaxError is a JSON syntax error at a byte offset.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string { return e.msg }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// validate checks that b is exactly one JSON value (RFC 8259), optionally
// surrounded by whitespace. Like encoding/json it accepts invalid UTF-8 inside
// strings.
func validate(b []byte) *syntaxError {
	i, err := skipValue(b, skipSpace(b, 0), 0)
	if err != nil {
		return err
	}
	if i = skipSpace(b, i); i < len(b) {
		return &syntaxError{i, fmt.Sprintf("invalid character %s after top-level value", quoteChar(b[i]))}
	}
	return nil
}

func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

func unexpected(b []byte, i int, context string) *syntaxError {
	if i >= len(b) {
		return &syntaxError{len(b), "unexpected end of JSON input"}
	}
	return &syntaxError{i, fmt.Sprintf("invalid character %s %s", quoteChar(b[i]), context)}
}

// skipValue returns the offset just past the JSON value that starts at b[i].
func skipValue(b []byte, i, depth int) (int, *syntaxError) {
	if i >= len(b) {
		return i, unexpected(b, i, "")
	}
	switch c := b[i]; {
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return i, &syntaxError{i, "exceeded max depth"}
		}
		return skipContainer(b, i, depth+1)
	case c == '"':
		return skipString(b, i)
	case c == '-' || c >= '0' && c <= '9':
		end := numberEnd(b, i)
		if end < 0 {
			return i, unexpected(b, -end, "in numeric literal")
		}
		return end, nil
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	}
	return i, unexpected(b, i, "looking for beginning of value")
}

// skipContainer skips the object or array at b[i].
func skipContainer(b []byte, i, depth int) (int, *syntaxError) {
	obj := b[i] == '{'
	closer := byte(']')
	if obj {
		closer = '}'
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, nil
	}
	for {
		var err *syntaxError
		if obj {
			if i >= len(b) || b[i] != '"' {
				return i, unexpected(b, i, "looking for beginning of object key string")
			}
			if i, err = skipString(b, i); err != nil {
				return i, err
			}
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != ':' {
				return i, unexpected(b, i, "after object key")
			}
			i = skipSpace(b, i+1)
		}
		// Arrays of numbers are the bulk of a body: skip them inline.
		if i < len(b) && (b[i] == '-' || b[i] >= '0' && b[i] <= '9') {
			end := numberEnd(b, i)
			if end < 0 {
				return i, unexpected(b, -end, "in numeric literal")
			}
			i = end
		} else if i, err = skipValue(b, i, depth); err != nil {
			return i, err
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == closer {
			return i + 1, nil
		}
		if obj {
			return i, unexpected(b, i, "after object key:value pair")
		}
		return i, unexpected(b, i, "after array element")
	}
}

// numberEnd returns the offset past the JSON number at b[i], or minus the
// offset of the byte that makes it invalid.
func numberEnd(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	default:
		return -i
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return -i
		}
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return -i
		}
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	}
	return i
}

// skipString skips the string at b[i], checking its escapes.
func skipString(b []byte, i int) (int, *syntaxError) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c < 0x20:
			return i, unexpected(b, i, "in string literal")
		case c == '\\':
			i++
			if i >= len(b) {
				return i, unexpected(b, i, "")
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				for k := 0; k < 4; k++ {
					i++
					if i >= len(b) {
						return i, unexpected(b, i, "")
					}
					if !isHex(b[i]) {
						return i, unexpected(b, i, "in \\u hexadecimal character escape")
					}
				}
			default:
				return i, unexpected(b, i, "in string escape code")
			}
		}
	}
	return i, unexpected(b, i, "")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func skipLiteral(b []byte, i int, word string) (int, *syntaxError) {
	for k := 0; k < len(word); k++ {
		if i+k >= len(b) {
			return i + k, unexpected(b, i+k, "")
		}
		if b[i+k] != word[k] {
			return i + k, unexpected(b, i+k, "in literal "+word+" (expecting "+quoteChar(word[k])+")")
		}
	}
	return i + len(word), nil
}

// object splits a validated JSON value into its members, keyed by the decoded
// key; as in encoding/json, a repeated key's last value wins. ok is false if
// raw is not an object.
func object(raw []byte) (members map[string][]byte, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false
	}
	members = map[string][]byte{}
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] == '"' {
		end, err := skipString(raw, i)
		if err != nil {
			return nil, false // unreachable for validated input
		}
		key := decodeKey(raw[i:end])
		i = skipSpace(raw, end)
		i = skipSpace(raw, i+1) // ':'
		end, err = skipValue(raw, i, 0)
		if err != nil {
			return nil, false
		}
		members[key] = raw[i:end]
		i = skipSpace(raw, end)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return members, true
}

// decodeKey decodes a JSON string literal.
func decodeKey(lit []byte) string {
	for _, c := range lit {
		if c == '\\' {
			var s string
			_ = json.Unmarshal(lit, &s) // validated
			return s
		}
	}
	return string(lit[1 : len(lit)-1])
}

// array splits a validated JSON value into its elements. ok is false if raw is
// not an array.
func array(raw []byte) (elems [][]byte, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, false
	}
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] != ']' {
		end, err := skipValue(raw, i, 0)
		if err != nil {
			return nil, false // unreachable for validated input
		}
		elems = append(elems, raw[i:end])
		i = skipSpace(raw, end)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return elems, true
}
