package tokenizer

import "fmt"

const (
	seqSpecial int8 = -1
	seqA       int8 = 0
	seqB       int8 = 1
)

// tmplPiece is one item of a post-processing template: a special token (one or
// more ids) or the place of sequence A or B, each with its type id.
type tmplPiece struct {
	seq    int8
	typeID int64
	ids    []int64
	tokens []string
}

// template is TemplateProcessing; BertProcessing is the template
// "[CLS] $A [SEP]" / "[CLS] $A:0 [SEP]:0 $B:1 [SEP]:1".
type template struct {
	single, pair []tmplPiece
}

func (t *template) pieces(pair bool) []tmplPiece {
	if pair {
		return t.pair
	}
	return t.single
}

// added is the number of special tokens the template adds.
func (t *template) added(pair bool) int {
	n := 0
	for _, p := range t.pieces(pair) {
		n += len(p.ids)
	}
	return n
}

// build lays out the final encoding of a and b (b nil for a single text) with
// room for pad more tokens.
func (t *template) build(a, b []piece, pair, special bool, pad int) Encoding {
	n := len(a) + len(b)
	if special {
		n += t.added(pair)
	}
	enc := Encoding{
		IDs:           make([]int64, 0, n+pad),
		TypeIDs:       make([]int64, 0, n+pad),
		AttentionMask: make([]int64, 0, n+pad),
		Tokens:        make([]string, 0, n+pad),
		Offsets:       make([][2]int, 0, n+pad),
	}
	for _, p := range t.pieces(pair) {
		switch p.seq {
		case seqSpecial:
			if !special {
				continue
			}
			for i, id := range p.ids {
				enc.IDs = append(enc.IDs, id)
				enc.TypeIDs = append(enc.TypeIDs, p.typeID)
				enc.AttentionMask = append(enc.AttentionMask, 1)
				enc.Tokens = append(enc.Tokens, p.tokens[i])
				enc.Offsets = append(enc.Offsets, [2]int{})
			}
		case seqA, seqB:
			src := a
			if p.seq == seqB {
				src = b
			}
			for _, pc := range src {
				enc.IDs = append(enc.IDs, pc.id)
				enc.TypeIDs = append(enc.TypeIDs, p.typeID)
				enc.AttentionMask = append(enc.AttentionMask, 1)
				enc.Tokens = append(enc.Tokens, pc.tok)
				enc.Offsets = append(enc.Offsets, [2]int{pc.start, pc.end})
			}
		}
	}
	return enc
}

// truncLengths is how many tokens of each sequence survive truncation to max
// tokens (special tokens already subtracted); n2 < 0 means there is no second
// sequence. It follows truncate_encodings of the Rust library
// (tokenizers/src/utils/truncation.rs): longest_first keeps the shorter
// sequence whole when it fits in half and splits evenly otherwise, the odd
// token going to the second sequence.
func truncLengths(n1, n2, max int, s Strategy) (int, int, error) {
	pair := n2 >= 0
	total := n1 + max0(n2)
	if total <= max {
		return n1, n2, nil
	}
	remove := total - max
	switch s {
	case LongestFirst:
		if !pair {
			return max, n2, nil
		}
		short, long := n1, n2
		swap := short > long
		if swap {
			short, long = long, short
		}
		if short > max {
			long = short
		} else {
			long = maxInt(short, max-short)
		}
		if short+long > max {
			short = max / 2
			long = short + max%2
		}
		if swap {
			return long, short, nil
		}
		return short, long, nil
	case OnlyFirst:
		if n1 <= remove {
			return 0, 0, fmt.Errorf("%w: truncation: only_first would have to remove %d of the first text's %d tokens",
				ErrTooLong, remove, n1)
		}
		return n1 - remove, n2, nil
	case OnlySecond:
		if !pair {
			return 0, 0, fmt.Errorf("%w: truncation.strategy: only_second needs a text pair", ErrInvalid)
		}
		if n2 <= remove {
			return 0, 0, fmt.Errorf("%w: truncation: only_second would have to remove %d of the second text's %d tokens",
				ErrTooLong, remove, n2)
		}
		return n1, n2 - remove, nil
	}
	return 0, 0, fmt.Errorf("%w: truncation.strategy: %q, want longest_first, only_first or only_second", ErrInvalid, s)
}

func max0(n int) int { return maxInt(n, 0) }

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// cut keeps n pieces, from the start (Right truncation drops the right end) or
// from the end (Left).
func cut(p []piece, n int, d Direction) []piece {
	if n >= len(p) {
		return p
	}
	if d == Left {
		return p[len(p)-n:]
	}
	return p[:n]
}

// pad extends enc to length n with the padding token.
func pad(enc *Encoding, n int, p *Padding) {
	k := n - len(enc.IDs)
	if k <= 0 {
		return
	}
	if p.Direction == Left {
		enc.IDs = prepend(enc.IDs, k, p.ID)
		enc.TypeIDs = prepend(enc.TypeIDs, k, p.TypeID)
		enc.AttentionMask = prepend(enc.AttentionMask, k, 0)
		enc.Tokens = prepend(enc.Tokens, k, p.Token)
		enc.Offsets = prepend(enc.Offsets, k, [2]int{})
		return
	}
	for range k {
		enc.IDs = append(enc.IDs, p.ID)
		enc.TypeIDs = append(enc.TypeIDs, p.TypeID)
		enc.AttentionMask = append(enc.AttentionMask, 0)
		enc.Tokens = append(enc.Tokens, p.Token)
		enc.Offsets = append(enc.Offsets, [2]int{})
	}
}

func prepend[T any](s []T, k int, v T) []T {
	out := make([]T, k, k+len(s))
	for i := range out {
		out[i] = v
	}
	return append(out, s...)
}

// padTarget is the length a batch whose longest encoding has longest tokens is
// padded to.
func padTarget(p *Padding, longest int) int {
	n := longest
	if p.Length > 0 {
		n = p.Length
	}
	if p.MultipleOf > 0 && n%p.MultipleOf != 0 {
		n += p.MultipleOf - n%p.MultipleOf
	}
	return n
}

func (p tmplPiece) withType(id int64) tmplPiece {
	p.typeID = id
	return p
}
