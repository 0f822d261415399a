package tokenizer

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// nchar is one code point of normalized text with the byte span of the
// original text it came from, so that every token can be traced back to its
// source (the alignment the Rust library keeps in NormalizedString).
type nchar struct {
	r          rune
	start, end int
}

// normStep is one normalization pass: it appends the transformed src to dst
// (which never aliases src) and returns dst.
type normStep func(dst, src []nchar) []nchar

// bertSteps is BertNormalizer, in the Rust library's order: clean, CJK, strip
// accents, lowercase (huggingface/tokenizers normalizers/bert.rs).
func bertSteps(clean, chinese, stripAccents, lower bool) []normStep {
	var s []normStep
	if clean {
		s = append(s, cleanText)
	}
	if chinese {
		s = append(s, spaceChinese)
	}
	if stripAccents {
		s = append(s, nfd, dropNonspacingMarks)
	}
	if lower {
		s = append(s, lowercase)
	}
	return s
}

// appendChars appends the code points of s, whose first byte is at offset base
// in the original text. Invalid UTF-8 bytes become U+FFFD spanning one byte.
func appendChars(dst []nchar, s string, base int) []nchar {
	for i, r := range s {
		size := 1
		if r >= utf8.RuneSelf {
			_, size = utf8.DecodeRuneInString(s[i:])
		}
		dst = append(dst, nchar{r: r, start: base + i, end: base + i + size})
	}
	return dst
}

// applyNorm runs steps over chars, using spare as the second buffer; it returns
// the result and the other buffer for reuse.
func applyNorm(steps []normStep, chars, spare []nchar) (out, rest []nchar) {
	for _, st := range steps {
		next := st(spare[:0], chars)
		spare = chars
		chars = next
	}
	return chars, spare
}

// isControl is BERT's control-character test: Unicode category C (Cc, Cf, Co,
// Cs and unassigned Cn), except tab, newline and carriage return, which count as
// whitespace.
func isControl(r rune) bool {
	if r < utf8.RuneSelf {
		return (r < 0x20 || r == 0x7f) && r != '\t' && r != '\n' && r != '\r'
	}
	if unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z) {
		return false
	}
	return true // Cc, Cf, Co, Cs, or assigned to no category (Cn)
}

// isWhitespace is Unicode's White_Space property, which includes \t \n \r.
func isWhitespace(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || (r >= '\t' && r <= '\r')
	}
	return unicode.IsSpace(r)
}

// isChinese reports whether r is a CJK ideograph, by the block list of the
// original BERT (and of the Rust library).
func isChinese(r rune) bool {
	switch {
	case r >= 0x4E00 && r <= 0x9FFF,
		r >= 0x3400 && r <= 0x4DBF,
		r >= 0x20000 && r <= 0x2A6DF,
		r >= 0x2A700 && r <= 0x2B73F,
		r >= 0x2B740 && r <= 0x2B81F,
		r >= 0x2B920 && r <= 0x2CEAF,
		r >= 0xF900 && r <= 0xFAFF,
		r >= 0x2F800 && r <= 0x2FA1F:
		return true
	}
	return false
}

// isPunct is BERT's punctuation: every ASCII non-alphanumeric printable
// character (33-47, 58-64, 91-96, 123-126) and Unicode category P.
func isPunct(r rune) bool {
	if r < utf8.RuneSelf {
		return (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126)
	}
	return unicode.IsPunct(r)
}

// cleanText removes NUL, U+FFFD and control characters and turns every
// whitespace character into a plain space.
func cleanText(dst, src []nchar) []nchar {
	for _, c := range src {
		if c.r == 0 || c.r == utf8.RuneError || isControl(c.r) {
			continue
		}
		if isWhitespace(c.r) {
			c.r = ' '
		}
		dst = append(dst, c)
	}
	return dst
}

// spaceChinese puts a space on each side of every CJK ideograph, so that each
// becomes a word of its own. The spaces take an empty span at the ideograph's
// start; they never reach a token.
func spaceChinese(dst, src []nchar) []nchar {
	for _, c := range src {
		if isChinese(c.r) {
			sp := nchar{r: ' ', start: c.start, end: c.start}
			dst = append(dst, sp, c, sp)
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// nfd decomposes to Unicode Normalization Form D, keeping each produced code
// point aligned with the character it came from. Decomposing one code point at
// a time and then putting combining marks in canonical order (UAX #15) gives
// the same text as decomposing the whole string.
func nfd(dst, src []nchar) []nchar {
	var in [utf8.UTFMax]byte
	var out [4 * utf8.UTFMax * 4]byte
	markRun := -1 // start index in dst of the current run of combining marks
	for _, c := range src {
		if c.r < 0xC0 { // nothing below U+00C0 decomposes canonically
			dst = append(dst, c)
			markRun = -1
			continue
		}
		n := utf8.EncodeRune(in[:], c.r)
		dec := norm.NFD.Append(out[:0], in[:n]...)
		for len(dec) > 0 {
			r, size := utf8.DecodeRune(dec)
			ccc := norm.NFD.Properties(dec[:size]).CCC()
			dec = dec[size:]
			d := nchar{r: r, start: c.start, end: c.end}
			if ccc == 0 {
				markRun = -1
				dst = append(dst, d)
				continue
			}
			if markRun < 0 {
				markRun = len(dst)
			}
			// Insertion sort into the run by combining class, stable.
			dst = append(dst, d)
			for j := len(dst) - 1; j > markRun && cccOf(dst[j-1].r) > ccc; j-- {
				dst[j], dst[j-1] = dst[j-1], dst[j]
			}
		}
	}
	return dst
}

func cccOf(r rune) uint8 {
	var b [utf8.UTFMax]byte
	n := utf8.EncodeRune(b[:], r)
	return norm.NFD.Properties(b[:n]).CCC()
}

// dropNonspacingMarks removes category Mn, the accents NFD split off.
func dropNonspacingMarks(dst, src []nchar) []nchar {
	for _, c := range src {
		if c.r >= 0x300 && unicode.Is(unicode.Mn, c.r) {
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// lowercase maps each code point to its full lowercase form, as Rust's
// char::to_lowercase does: Go's simple mapping plus the one unconditional
// multi-character mapping of SpecialCasing.txt, U+0130 -> i U+0307.
func lowercase(dst, src []nchar) []nchar {
	for _, c := range src {
		switch {
		case c.r < utf8.RuneSelf:
			if c.r >= 'A' && c.r <= 'Z' {
				c.r += 'a' - 'A'
			}
		case c.r == 0x130:
			dst = append(dst, nchar{r: 'i', start: c.start, end: c.end})
			c.r = 0x307
		default:
			c.r = unicode.ToLower(c.r)
		}
		dst = append(dst, c)
	}
	return dst
}
