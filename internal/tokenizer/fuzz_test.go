package tokenizer

import (
	"errors"
	"testing"
)

// FuzzEncode feeds arbitrary text (and pairs) to the real BERT tokenizer. The
// property: no panic, no error without strict mode, all slices of the same
// length, and every offset a range of whole code points of its own text.
func FuzzEncode(f *testing.F) {
	tok := loadBERT(f)
	for _, e := range loadCorpus(f) {
		pair := ""
		if e.TextPair != nil {
			pair = *e.TextPair
		}
		f.Add(e.Text, pair)
	}
	f.Add("a\xffb\xc3", "\xe2\x82")
	f.Add("İ\u0345\u0301ǅ\u1e9e", "\U0002a6d6\U0002b820")
	f.Fuzz(func(t *testing.T, text, pair string) {
		configs := [][]Option{
			nil, // tokenizer.json's truncation and padding: 128 tokens
			{WithoutTruncation(), WithoutPadding()},
			{WithTruncation(Truncation{MaxLength: 5, Direction: Left}), WithPadding(Padding{MultipleOf: 8})},
		}
		for _, opts := range configs {
			e, err := tok.Encode(text, opts...)
			if err != nil {
				t.Fatalf("Encode(%q): %v", text, err)
			}
			checkEncoding(t, e, text, text)
			e, err = tok.EncodePair(text, pair, opts...)
			if err != nil {
				t.Fatalf("EncodePair(%q, %q): %v", text, pair, err)
			}
			checkEncoding(t, e, text, pair)
		}
		strict := []Option{WithTruncation(Truncation{MaxLength: 6}), WithStrict(), WithoutPadding()}
		if e, err := tok.EncodePair(text, pair, strict...); err != nil {
			if !errors.Is(err, ErrTooLong) {
				t.Fatalf("strict EncodePair: error %v, want nil or ErrTooLong", err)
			}
		} else if len(e.IDs) > 6 {
			t.Fatalf("strict EncodePair returned %d tokens, limit 6", len(e.IDs))
		}
	})
}

// checkEncoding checks the invariants of any encoding of a (type id 0) and b
// (type id 1) by the BERT template.
func checkEncoding(t *testing.T, e Encoding, a, b string) {
	t.Helper()
	n := len(e.IDs)
	if len(e.TypeIDs) != n || len(e.AttentionMask) != n || len(e.Tokens) != n || len(e.Offsets) != n {
		t.Fatalf("lengths ids %d type ids %d mask %d tokens %d offsets %d",
			n, len(e.TypeIDs), len(e.AttentionMask), len(e.Tokens), len(e.Offsets))
	}
	for i, o := range e.Offsets {
		src := a
		if e.TypeIDs[i] == 1 {
			src = b
		}
		if _, err := ConvertOffsets(src, [][2]int{o}, Runes); err != nil {
			t.Fatalf("token %d %q: offsets %v: %v", i, e.Tokens[i], o, err)
		}
		if e.AttentionMask[i] == 0 && (e.Tokens[i] != "[PAD]" || o != [2]int{}) {
			t.Fatalf("token %d %q has mask 0 but is not padding", i, e.Tokens[i])
		}
	}
}

// FuzzLoadBytes feeds arbitrary bytes to the tokenizer.json parser: no panic,
// and a tokenizer that loads encodes text with consistent lengths.
func FuzzLoadBytes(f *testing.F) {
	f.Add(miniConfig(f, nil))
	f.Add(miniConfig(f, func(m map[string]any) {
		m["post_processor"] = map[string]any{"type": "BertProcessing", "sep": []any{"[SEP]", 3}, "cls": []any{"[CLS]", 2}}
		m["truncation"] = map[string]any{"max_length": 3, "strategy": "OnlySecond", "direction": "Left"}
		m["padding"] = map[string]any{"strategy": "BatchLongest", "pad_to_multiple_of": 3, "pad_token": "[PAD]"}
	}))
	f.Add(miniConfig(f, func(m map[string]any) {
		m["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "NFD"}, map[string]any{"type": "Lowercase"}}}
		m["pre_tokenizer"] = nil
		m["added_tokens"] = []any{map[string]any{"id": 7, "content": "Ab", "normalized": true, "lstrip": true, "rstrip": true}}
	}))
	f.Add([]byte(`{"model":{"type":"WordPiece","vocab":{"[UNK]":0}},"post_processor":null}`))
	f.Add([]byte(`{"model":{"type":"WordPiece","vocab":{"[UNK]":0}},"padding":{"strategy":{"Fixed":2}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := LoadBytes(b)
		if err != nil {
			return
		}
		for _, text := range []string{"Hello, wörld [MASK] ab AB", "", "  "} {
			if e, err := tok.Encode(text); err == nil {
				checkLengths(t, e)
			}
			if e, err := tok.EncodePair(text, "x y"); err == nil {
				checkLengths(t, e)
			}
		}
	})
}

func checkLengths(t *testing.T, e Encoding) {
	t.Helper()
	n := len(e.IDs)
	if len(e.TypeIDs) != n || len(e.AttentionMask) != n || len(e.Tokens) != n || len(e.Offsets) != n {
		t.Fatalf("lengths ids %d type ids %d mask %d tokens %d offsets %d",
			n, len(e.TypeIDs), len(e.AttentionMask), len(e.Tokens), len(e.Offsets))
	}
}
