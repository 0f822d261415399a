package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// piece is one token of a sequence before post-processing.
type piece struct {
	id         int64
	tok        string
	start, end int // byte span in the original text
}

// vocabEntry keeps the token string with its id, so that pieces share the
// vocabulary's strings instead of allocating their own.
type vocabEntry struct {
	id  int64
	tok string
}

// wordPiece is the WordPiece model: greedy longest-match-first splitting of a
// word into vocabulary pieces, the first piece plain and the others carrying
// the continuing-subword prefix (Schuster & Nakajima 2012; BERT's
// tokenization.py WordpieceTokenizer).
type wordPiece struct {
	first    map[string]vocabEntry // every vocabulary entry
	cont     map[string]vocabEntry // entries with the prefix, keyed without it
	unk      vocabEntry
	maxChars int
}

func newWordPiece(vocab map[string]int64, unk, prefix string, maxChars int) (*wordPiece, error) {
	if len(vocab) == 0 {
		return nil, fmt.Errorf("%w: model.vocab: empty", ErrInvalid)
	}
	if maxChars <= 0 {
		return nil, fmt.Errorf("%w: model.max_input_chars_per_word: %d, want > 0", ErrInvalid, maxChars)
	}
	w := &wordPiece{
		first:    make(map[string]vocabEntry, len(vocab)),
		cont:     make(map[string]vocabEntry),
		maxChars: maxChars,
	}
	for tok, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("%w: model.vocab[%q]: id %d is negative", ErrInvalid, tok, id)
		}
		e := vocabEntry{id: id, tok: tok}
		w.first[tok] = e
		if rest, ok := strings.CutPrefix(tok, prefix); ok && rest != "" {
			w.cont[rest] = e
		}
	}
	u, ok := w.first[unk]
	if !ok {
		return nil, fmt.Errorf("%w: model.unk_token: %q is not in the vocabulary", ErrInvalid, unk)
	}
	w.unk = u
	return w, nil
}

// tokenize appends the pieces of one word to out. buf and pos are scratch space
// and are returned for reuse.
func (w *wordPiece) tokenize(word []nchar, out []piece, buf []byte, pos []int) ([]piece, []byte, []int) {
	start, end := spanOf(word)
	if len(word) > w.maxChars {
		return append(out, piece{id: w.unk.id, tok: w.unk.tok, start: start, end: end}), buf, pos
	}
	buf, pos = buf[:0], pos[:0]
	for _, c := range word {
		pos = append(pos, len(buf))
		buf = utf8.AppendRune(buf, c.r)
	}
	pos = append(pos, len(buf))

	mark := len(out)
	for s := 0; s < len(word); {
		dict := w.first
		if s > 0 {
			dict = w.cont
		}
		found := false
		e := len(word)
		for ; e > s; e-- {
			// The string conversion in a map index does not allocate.
			if v, ok := dict[string(buf[pos[s]:pos[e]])]; ok {
				ps, pe := spanOf(word[s:e])
				out = append(out, piece{id: v.id, tok: v.tok, start: ps, end: pe})
				found = true
				break
			}
		}
		if !found {
			// One unknown piece makes the whole word unknown.
			out = append(out[:mark], piece{id: w.unk.id, tok: w.unk.tok, start: start, end: end})
			break
		}
		s = e
	}
	return out, buf, pos
}

// spanOf is the original byte span covered by chars. Canonical reordering can
// put marks out of source order, hence min and max rather than first and last.
func spanOf(chars []nchar) (start, end int) {
	start, end = chars[0].start, chars[0].end
	for _, c := range chars[1:] {
		start = min(start, c.start)
		end = max(end, c.end)
	}
	return start, end
}

// bertWords splits normalized text the way BertPreTokenizer does: whitespace
// separates words and is dropped, and every punctuation character is a word of
// its own. It appends [start, end) index ranges into chars to words.
func bertWords(chars []nchar, words [][2]int) [][2]int {
	begin := -1
	for i, c := range chars {
		switch {
		case isWhitespace(c.r):
			if begin >= 0 {
				words = append(words, [2]int{begin, i})
				begin = -1
			}
		case isPunct(c.r):
			if begin >= 0 {
				words = append(words, [2]int{begin, i})
				begin = -1
			}
			words = append(words, [2]int{i, i + 1})
		default:
			if begin < 0 {
				begin = i
			}
		}
	}
	if begin >= 0 {
		words = append(words, [2]int{begin, len(chars)})
	}
	return words
}
