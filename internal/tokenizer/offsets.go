package tokenizer

import "fmt"

// OffsetUnit is the unit of a text position.
type OffsetUnit int

const (
	// Bytes are UTF-8 byte positions, Go's string indices and what Encode returns.
	Bytes OffsetUnit = iota
	// Runes are code-point positions, what HuggingFace's Python tokenizers report.
	Runes
	// UTF16 are UTF-16 code-unit positions, JavaScript's string indices.
	UTF16
)

// ConvertOffsets converts byte offsets into text, as Encode returns them, to
// another unit. An invalid UTF-8 byte counts as one code point and one UTF-16
// unit (it reads as U+FFFD). Offsets outside the text or inside a UTF-8
// sequence are an ErrInvalid error.
func ConvertOffsets(text string, offsets [][2]int, unit OffsetUnit) ([][2]int, error) {
	if unit != Bytes && unit != Runes && unit != UTF16 {
		return nil, fmt.Errorf("%w: unit: %d, want Bytes, Runes or UTF16", ErrInvalid, unit)
	}
	// at[b] is the position in unit of byte b when b starts a code point, and
	// -1 inside one.
	at := make([]int, len(text)+1)
	pos, next := 0, 0
	for b, r := range text {
		for ; next < b; next++ {
			at[next] = -1
		}
		next = b + 1
		switch {
		case unit == Bytes:
			at[b] = b
		case unit == UTF16 && r >= 0x10000:
			at[b] = pos
			pos += 2 // a surrogate pair
		default:
			at[b] = pos
			pos++
		}
	}
	for ; next < len(text); next++ {
		at[next] = -1
	}
	at[len(text)] = pos
	if unit == Bytes {
		at[len(text)] = len(text)
	}
	out := make([][2]int, len(offsets))
	for i, o := range offsets {
		if o[0] < 0 || o[0] > o[1] || o[1] > len(text) {
			return nil, fmt.Errorf("%w: offsets[%d]: [%d, %d] is not a range of a %d-byte text", ErrInvalid, i, o[0], o[1], len(text))
		}
		if at[o[0]] < 0 || at[o[1]] < 0 {
			return nil, fmt.Errorf("%w: offsets[%d]: [%d, %d] cuts a UTF-8 sequence", ErrInvalid, i, o[0], o[1])
		}
		out[i] = [2]int{at[o[0]], at[o[1]]}
	}
	return out, nil
}
