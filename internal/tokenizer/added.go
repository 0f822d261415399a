package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// addedToken is an entry of tokenizer.json's added_tokens: a string that is
// matched as a whole before the model sees the text ([CLS], [MASK], ...).
type addedToken struct {
	content    string
	id         int64
	singleWord bool // match only when not inside a word
	lstrip     bool // the match swallows whitespace on its left
	rstrip     bool // ... and on its right
	normalized bool // matched in normalized text rather than raw text
	normRunes  []rune
}

// addedSet holds the added tokens indexed by their first byte (raw) or first
// normalized code point, each list longest first.
type addedSet struct {
	raw  map[byte][]*addedToken
	norm map[rune][]*addedToken
}

// segment is a byte range of the original text, either an added token (tok
// set) or text for the normal pipeline.
type segment struct {
	start, end int
	tok        *addedToken
}

// nsegment is the same over a slice of normalized chars.
type nsegment struct {
	start, end int
	tok        *addedToken
}

func isWordChar(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// splitRaw cuts text at the leftmost-longest matches of the raw added tokens.
func (a *addedSet) splitRaw(text string, segs []segment) []segment {
	last := 0
	if len(a.raw) == 0 {
		return append(segs, segment{0, len(text), nil})
	}
	for i := 0; i < len(text); {
		var hit *addedToken
		for _, t := range a.raw[text[i]] {
			if !strings.HasPrefix(text[i:], t.content) {
				continue
			}
			if t.singleWord && !rawSingleWord(text, i, i+len(t.content)) {
				continue
			}
			hit = t
			break
		}
		if hit == nil {
			i++
			continue
		}
		s, e := i, i+len(hit.content)
		if hit.lstrip {
			for s > last {
				r, size := utf8.DecodeLastRuneInString(text[last:s])
				if !isWhitespace(r) {
					break
				}
				s -= size
			}
		}
		if hit.rstrip {
			for e < len(text) {
				r, size := utf8.DecodeRuneInString(text[e:])
				if !isWhitespace(r) {
					break
				}
				e += size
			}
		}
		if s > last {
			segs = append(segs, segment{last, s, nil})
		}
		segs = append(segs, segment{s, e, hit})
		last, i = e, e
	}
	if last < len(text) {
		segs = append(segs, segment{last, len(text), nil})
	}
	return segs
}

func rawSingleWord(text string, s, e int) bool {
	if s > 0 {
		if r, _ := utf8.DecodeLastRuneInString(text[:s]); isWordChar(r) {
			return false
		}
	}
	if e < len(text) {
		if r, _ := utf8.DecodeRuneInString(text[e:]); isWordChar(r) {
			return false
		}
	}
	return true
}

// splitNormalized cuts normalized chars at the matches of the normalized added
// tokens.
func (a *addedSet) splitNormalized(chars []nchar, segs []nsegment) []nsegment {
	if len(a.norm) == 0 {
		return append(segs, nsegment{0, len(chars), nil})
	}
	last := 0
	for i := 0; i < len(chars); {
		var hit *addedToken
		for _, t := range a.norm[chars[i].r] {
			if !runesAt(chars, i, t.normRunes) {
				continue
			}
			if t.singleWord && !normSingleWord(chars, i, i+len(t.normRunes)) {
				continue
			}
			hit = t
			break
		}
		if hit == nil {
			i++
			continue
		}
		s, e := i, i+len(hit.normRunes)
		if hit.lstrip {
			for s > last && isWhitespace(chars[s-1].r) {
				s--
			}
		}
		if hit.rstrip {
			for e < len(chars) && isWhitespace(chars[e].r) {
				e++
			}
		}
		if s > last {
			segs = append(segs, nsegment{last, s, nil})
		}
		segs = append(segs, nsegment{s, e, hit})
		last, i = e, e
	}
	if last < len(chars) {
		segs = append(segs, nsegment{last, len(chars), nil})
	}
	return segs
}

func runesAt(chars []nchar, i int, want []rune) bool {
	if len(chars)-i < len(want) {
		return false
	}
	for k, r := range want {
		if chars[i+k].r != r {
			return false
		}
	}
	return true
}

func normSingleWord(chars []nchar, s, e int) bool {
	return (s == 0 || !isWordChar(chars[s-1].r)) && (e == len(chars) || !isWordChar(chars[e].r))
}
