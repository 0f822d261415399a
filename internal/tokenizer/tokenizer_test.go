package tokenizer

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

// miniConfig is a small BERT-style tokenizer.json whose results can be worked
// out by hand. edit changes the decoded JSON before it is loaded.
func miniConfig(t testing.TB, edit func(m map[string]any)) []byte {
	t.Helper()
	vocab := map[string]int{}
	for i, tok := range []string{
		"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "hello", ",",
		"!", "cafe", "a", "b", "c", "##b", "你", "好", "i", "x",
		"##x", "the", "<x>", "ab",
	} {
		vocab[tok] = i
	}
	special := func(id int, content string) map[string]any {
		return map[string]any{"id": id, "content": content, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": true}
	}
	m := map[string]any{
		"version":    "1.0",
		"truncation": nil,
		"padding":    nil,
		"added_tokens": []any{special(0, "[PAD]"), special(1, "[UNK]"), special(2, "[CLS]"),
			special(3, "[SEP]"), special(4, "[MASK]")},
		"normalizer": map[string]any{"type": "BertNormalizer", "clean_text": true,
			"handle_chinese_chars": true, "strip_accents": nil, "lowercase": true},
		"pre_tokenizer": map[string]any{"type": "BertPreTokenizer"},
		"post_processor": map[string]any{
			"type": "TemplateProcessing",
			"single": []any{
				map[string]any{"SpecialToken": map[string]any{"id": "[CLS]", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"SpecialToken": map[string]any{"id": "[SEP]", "type_id": 0}},
			},
			"pair": []any{
				map[string]any{"SpecialToken": map[string]any{"id": "[CLS]", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"SpecialToken": map[string]any{"id": "[SEP]", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}},
				map[string]any{"SpecialToken": map[string]any{"id": "[SEP]", "type_id": 1}},
			},
			"special_tokens": map[string]any{
				"[CLS]": map[string]any{"id": "[CLS]", "ids": []int{2}, "tokens": []string{"[CLS]"}},
				"[SEP]": map[string]any{"id": "[SEP]", "ids": []int{3}, "tokens": []string{"[SEP]"}},
			},
		},
		"decoder": map[string]any{"type": "WordPiece", "prefix": "##", "cleanup": true},
		"model": map[string]any{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
			"max_input_chars_per_word": 9, "vocab": vocab},
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadMini(t testing.TB, edit func(m map[string]any)) *Tokenizer {
	t.Helper()
	tok, err := LoadBytes(miniConfig(t, edit))
	if err != nil {
		t.Fatalf("LoadBytes: %v", err)
	}
	return tok
}

func TestEncode(t *testing.T) {
	tok := loadMini(t, nil)
	tests := []struct {
		name        string
		text        string
		wantTokens  []string
		wantOffsets [][2]int
	}{
		{"word pieces", "unaffable", []string{"[CLS]", "un", "##aff", "##able", "[SEP]"},
			[][2]int{{}, {0, 2}, {2, 5}, {5, 9}, {}}},
		{"lowercase and punctuation", "Hello, UNAFFABLE!", []string{"[CLS]", "hello", ",", "un", "##aff", "##able", "!", "[SEP]"},
			[][2]int{{}, {0, 5}, {5, 6}, {7, 9}, {9, 12}, {12, 16}, {16, 17}, {}}},
		// é is two bytes; the token "cafe" still covers all of "Café".
		{"accent stripped", "Café", []string{"[CLS]", "cafe", "[SEP]"}, [][2]int{{}, {0, 5}, {}}},
		// A removed combining mark belongs to no token, as in the Rust library.
		{"decomposed accent", "cafe\u0301", []string{"[CLS]", "cafe", "[SEP]"}, [][2]int{{}, {0, 4}, {}}},
		{"unknown piece makes the word unknown", "unxyz", []string{"[CLS]", "[UNK]", "[SEP]"}, [][2]int{{}, {0, 5}, {}}},
		{"word of max_input_chars_per_word", "bbbbbbbbb",
			[]string{"[CLS]", "b", "##b", "##b", "##b", "##b", "##b", "##b", "##b", "##b", "[SEP]"},
			[][2]int{{}, {0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 6}, {6, 7}, {7, 8}, {8, 9}, {}}},
		{"word over max_input_chars_per_word", "bbbbbbbbbb", []string{"[CLS]", "[UNK]", "[SEP]"}, [][2]int{{}, {0, 10}, {}}},
		{"CJK ideographs split", "你好a", []string{"[CLS]", "你", "好", "a", "[SEP]"},
			[][2]int{{}, {0, 3}, {3, 6}, {6, 7}, {}}},
		// U+20000 is outside the BMP; it is still an ideograph of its own.
		{"astral CJK ideograph split", "a\U00020000b", []string{"[CLS]", "a", "[UNK]", "b", "[SEP]"},
			[][2]int{{}, {0, 1}, {1, 5}, {5, 6}, {}}},
		{"zero-width space removed", "a\u200bb", []string{"[CLS]", "ab", "[SEP]"}, [][2]int{{}, {0, 5}, {}}},
		{"unassigned code point removed", "x\u0378x", []string{"[CLS]", "x", "##x", "[SEP]"},
			[][2]int{{}, {0, 1}, {3, 4}, {}}},
		{"control characters removed, tab is a space", "a\x00\x07b\tc", []string{"[CLS]", "ab", "c", "[SEP]"},
			[][2]int{{}, {0, 4}, {5, 6}, {}}},
		{"invalid UTF-8 removed", "a\xffb", []string{"[CLS]", "ab", "[SEP]"}, [][2]int{{}, {0, 3}, {}}},
		{"unicode spaces split", "a\u00a0b\u3000c", []string{"[CLS]", "a", "b", "c", "[SEP]"},
			[][2]int{{}, {0, 1}, {3, 4}, {7, 8}, {}}},
		{"special token in text", "a [MASK] b", []string{"[CLS]", "a", "[MASK]", "b", "[SEP]"},
			[][2]int{{}, {0, 1}, {2, 8}, {9, 10}, {}}},
		{"special token not lowercased", "[mask]", []string{"[CLS]", "[UNK]", "[UNK]", "[UNK]", "[SEP]"},
			[][2]int{{}, {0, 1}, {1, 5}, {5, 6}, {}}},
		{"dotted capital I", "İ", []string{"[CLS]", "i", "[SEP]"}, [][2]int{{}, {0, 2}, {}}},
		{"empty", "", []string{"[CLS]", "[SEP]"}, [][2]int{{}, {}}},
		{"whitespace only", " \t\n\u3000 ", []string{"[CLS]", "[SEP]"}, [][2]int{{}, {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tok.Encode(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Tokens, tt.wantTokens) {
				t.Errorf("tokens (-want +got):\n-%q\n+%q", tt.wantTokens, got.Tokens)
			}
			if !slices.Equal(got.Offsets, tt.wantOffsets) {
				t.Errorf("offsets (-want +got):\n-%v\n+%v", tt.wantOffsets, got.Offsets)
			}
			checkShape(t, got, len(tt.wantTokens))
			for i, tk := range got.Tokens {
				id, ok := tok.TokenID(tk)
				if !ok || id != got.IDs[i] {
					t.Errorf("ids[%d] = %d, want %d (%q)", i, got.IDs[i], id, tk)
				}
			}
		})
	}
}

// checkShape checks that every slice of e has n entries and that the mask is
// 1 for non-padding tokens.
func checkShape(t *testing.T, e Encoding, n int) {
	t.Helper()
	if len(e.IDs) != n || len(e.TypeIDs) != n || len(e.AttentionMask) != n || len(e.Tokens) != n || len(e.Offsets) != n {
		t.Fatalf("lengths ids %d type ids %d mask %d tokens %d offsets %d, want %d",
			len(e.IDs), len(e.TypeIDs), len(e.AttentionMask), len(e.Tokens), len(e.Offsets), n)
	}
}

func TestEncodePair(t *testing.T) {
	tok := loadMini(t, nil)
	tests := []struct {
		name       string
		a, b       string
		opts       []Option
		wantTokens []string
		wantTypes  []int64
	}{
		{"pair", "a", "b c", nil, []string{"[CLS]", "a", "[SEP]", "b", "c", "[SEP]"}, []int64{0, 0, 0, 1, 1, 1}},
		{"empty second text keeps its separator", "a", "", nil, []string{"[CLS]", "a", "[SEP]", "[SEP]"}, []int64{0, 0, 0, 1}},
		{"both empty", "", "", nil, []string{"[CLS]", "[SEP]", "[SEP]"}, []int64{0, 0, 1}},
		{"without special tokens", "a", "b", []Option{WithoutSpecialTokens()}, []string{"a", "b"}, []int64{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tok.EncodePair(tt.a, tt.b, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Tokens, tt.wantTokens) {
				t.Errorf("tokens (-want +got):\n-%q\n+%q", tt.wantTokens, got.Tokens)
			}
			if !slices.Equal(got.TypeIDs, tt.wantTypes) {
				t.Errorf("type ids (-want +got):\n-%v\n+%v", tt.wantTypes, got.TypeIDs)
			}
			checkShape(t, got, len(tt.wantTokens))
		})
	}
}

func TestPostProcessors(t *testing.T) {
	template := loadMini(t, nil)
	bert := loadMini(t, func(m map[string]any) {
		m["post_processor"] = map[string]any{"type": "BertProcessing", "sep": []any{"[SEP]", 3}, "cls": []any{"[CLS]", 2}}
	})
	none := loadMini(t, func(m map[string]any) { m["post_processor"] = nil })
	for _, texts := range [][2]string{{"a", "b c"}, {"hello", ""}, {"", "x"}} {
		want, err := template.EncodePair(texts[0], texts[1])
		if err != nil {
			t.Fatal(err)
		}
		got, err := bert.EncodePair(texts[0], texts[1])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.IDs, want.IDs) || !slices.Equal(got.TypeIDs, want.TypeIDs) {
			t.Errorf("%q: BertProcessing ids %v types %v, TemplateProcessing ids %v types %v",
				texts, got.IDs, got.TypeIDs, want.IDs, want.TypeIDs)
		}
	}
	got, err := none.EncodePair("a", "b")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b"}; !slices.Equal(got.Tokens, want) || !slices.Equal(got.TypeIDs, []int64{0, 1}) {
		t.Errorf("no post-processor: tokens %q types %v, want %q [0 1]", got.Tokens, got.TypeIDs, want)
	}
}

// TestTruncLengths uses the cases of the Rust library's own test
// (truncation.rs, truncate_encodings_longest_first): max 7 over sequences of
// 0, 2, 4 and 8 tokens.
func TestTruncLengths(t *testing.T) {
	tests := []struct {
		n1, n2, max int
		strategy    Strategy
		w1, w2      int
		wantErr     error
	}{
		{0, 0, 7, LongestFirst, 0, 0, nil},
		{0, 2, 7, LongestFirst, 0, 2, nil},
		{0, 4, 7, LongestFirst, 0, 4, nil},
		{0, 8, 7, LongestFirst, 0, 7, nil},
		{2, 0, 7, LongestFirst, 2, 0, nil},
		{2, 2, 7, LongestFirst, 2, 2, nil},
		{2, 4, 7, LongestFirst, 2, 4, nil},
		{2, 8, 7, LongestFirst, 2, 5, nil},
		{4, 0, 7, LongestFirst, 4, 0, nil},
		{4, 2, 7, LongestFirst, 4, 2, nil},
		{4, 4, 7, LongestFirst, 3, 4, nil},
		{4, 8, 7, LongestFirst, 3, 4, nil},
		{8, 0, 7, LongestFirst, 7, 0, nil},
		{8, 2, 7, LongestFirst, 5, 2, nil},
		{8, 4, 7, LongestFirst, 4, 3, nil},
		{8, 8, 7, LongestFirst, 3, 4, nil},
		{4, 4, 0, LongestFirst, 0, 0, nil},
		{9, -1, 7, LongestFirst, 7, -1, nil},
		{9, -1, 7, OnlyFirst, 7, -1, nil},
		{8, 4, 7, OnlyFirst, 3, 4, nil},
		{4, 8, 7, OnlySecond, 4, 3, nil},
		{4, 8, 7, OnlyFirst, 0, 0, ErrTooLong},
		{8, 4, 7, OnlySecond, 0, 0, ErrTooLong},
		{9, -1, 7, OnlySecond, 0, 0, ErrInvalid},
	}
	for _, tt := range tests {
		k1, k2, err := truncLengths(tt.n1, tt.n2, tt.max, tt.strategy)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("truncLengths(%d, %d, %d, %s) error %v, want %v", tt.n1, tt.n2, tt.max, tt.strategy, err, tt.wantErr)
			}
			continue
		}
		if err != nil || k1 != tt.w1 || k2 != tt.w2 {
			t.Errorf("truncLengths(%d, %d, %d, %s) = %d, %d, %v, want %d, %d", tt.n1, tt.n2, tt.max, tt.strategy, k1, k2, err, tt.w1, tt.w2)
		}
	}
}

func TestTruncation(t *testing.T) {
	tok := loadMini(t, nil)
	const text = "a b c a b c" // six tokens
	tests := []struct {
		name       string
		pair       string
		opts       []Option
		wantTokens []string
		wantErr    error
		wantMsg    string
	}{
		{"right", "", []Option{WithTruncation(Truncation{MaxLength: 5})},
			[]string{"[CLS]", "a", "b", "c", "[SEP]"}, nil, ""},
		{"left", "", []Option{WithTruncation(Truncation{MaxLength: 5, Direction: Left})},
			[]string{"[CLS]", "a", "b", "c", "[SEP]"}, nil, ""},
		{"left keeps the end", "", []Option{WithTruncation(Truncation{MaxLength: 4, Direction: Left})},
			[]string{"[CLS]", "b", "c", "[SEP]"}, nil, ""},
		{"only special tokens", "", []Option{WithTruncation(Truncation{MaxLength: 2})},
			[]string{"[CLS]", "[SEP]"}, nil, ""},
		{"fits", "", []Option{WithTruncation(Truncation{MaxLength: 8})},
			[]string{"[CLS]", "a", "b", "c", "a", "b", "c", "[SEP]"}, nil, ""},
		{"pair longest first", "hello", []Option{WithTruncation(Truncation{MaxLength: 6})},
			[]string{"[CLS]", "a", "b", "[SEP]", "hello", "[SEP]"}, nil, ""},
		{"pair only second", "a b c", []Option{WithTruncation(Truncation{MaxLength: 10, Strategy: OnlySecond})},
			[]string{"[CLS]", "a", "b", "c", "a", "b", "c", "[SEP]", "a", "[SEP]"}, nil, ""},
		{"strict", "", []Option{WithTruncation(Truncation{MaxLength: 5}), WithStrict()},
			nil, ErrTooLong, "text: 8 tokens exceeds max length 5"},
		{"strict pair", "a", []Option{WithTruncation(Truncation{MaxLength: 5}), WithStrict()},
			nil, ErrTooLong, "text pair: 10 tokens exceeds max length 5"},
		{"strict within limit", "", []Option{WithTruncation(Truncation{MaxLength: 8}), WithStrict()},
			[]string{"[CLS]", "a", "b", "c", "a", "b", "c", "[SEP]"}, nil, ""},
		{"strict without a limit", "", []Option{WithStrict()},
			[]string{"[CLS]", "a", "b", "c", "a", "b", "c", "[SEP]"}, nil, ""},
		{"max length below special tokens", "", []Option{WithTruncation(Truncation{MaxLength: 1})},
			nil, ErrInvalid, "truncation.max_length: 1 leaves no room for the 2 special tokens"},
		{"pair max length below special tokens", "b", []Option{WithTruncation(Truncation{MaxLength: 2})},
			nil, ErrInvalid, "truncation.max_length: 2 leaves no room for the 3 special tokens"},
		{"only second without a pair", "", []Option{WithTruncation(Truncation{MaxLength: 4, Strategy: OnlySecond})},
			nil, ErrInvalid, "only_second needs a text pair"},
		{"bad strategy", "", []Option{WithTruncation(Truncation{MaxLength: 4, Strategy: "shortest"})},
			nil, ErrInvalid, `truncation.strategy: "shortest"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Encoding
			var err error
			if tt.pair != "" {
				got, err = tok.EncodePair(text, tt.pair, tt.opts...)
			} else {
				got, err = tok.Encode(text, tt.opts...)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("error %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Tokens, tt.wantTokens) {
				t.Errorf("tokens (-want +got):\n-%q\n+%q", tt.wantTokens, got.Tokens)
			}
			checkShape(t, got, len(tt.wantTokens))
		})
	}
}

func TestPadding(t *testing.T) {
	fromFile := loadMini(t, func(m map[string]any) {
		m["padding"] = map[string]any{"strategy": map[string]any{"Fixed": 6}, "direction": "Right",
			"pad_to_multiple_of": nil, "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"}
	})
	pad := Padding{ID: 0, Token: "[PAD]"}
	fixed := func(n int) Padding { p := pad; p.Length = n; return p }
	left := fixed(5)
	left.Direction = Left
	multiple := pad
	multiple.MultipleOf = 4
	tests := []struct {
		name      string
		texts     []string
		opts      []Option
		wantToks  [][]string
		wantMasks [][]int64
	}{
		{"fixed from tokenizer.json", []string{"a"}, nil,
			[][]string{{"[CLS]", "a", "[SEP]", "[PAD]", "[PAD]", "[PAD]"}}, [][]int64{{1, 1, 1, 0, 0, 0}}},
		{"fixed shorter than the text", []string{"a b c a b"}, []Option{WithPadding(fixed(3))},
			[][]string{{"[CLS]", "a", "b", "c", "a", "b", "[SEP]"}}, [][]int64{{1, 1, 1, 1, 1, 1, 1}}},
		{"left", []string{"a"}, []Option{WithPadding(left)},
			[][]string{{"[PAD]", "[PAD]", "[CLS]", "a", "[SEP]"}}, [][]int64{{0, 0, 1, 1, 1}}},
		{"longest in batch", []string{"a", "a b c"}, []Option{WithPadding(pad)},
			[][]string{{"[CLS]", "a", "[SEP]", "[PAD]", "[PAD]"}, {"[CLS]", "a", "b", "c", "[SEP]"}},
			[][]int64{{1, 1, 1, 0, 0}, {1, 1, 1, 1, 1}}},
		{"longest rounded to a multiple", []string{"a", "a b c"}, []Option{WithPadding(multiple)},
			[][]string{{"[CLS]", "a", "[SEP]", "[PAD]", "[PAD]", "[PAD]", "[PAD]", "[PAD]"},
				{"[CLS]", "a", "b", "c", "[SEP]", "[PAD]", "[PAD]", "[PAD]"}},
			[][]int64{{1, 1, 1, 0, 0, 0, 0, 0}, {1, 1, 1, 1, 1, 0, 0, 0}}},
		{"without padding", []string{"a", "a b"}, []Option{WithoutPadding()},
			[][]string{{"[CLS]", "a", "[SEP]"}, {"[CLS]", "a", "b", "[SEP]"}}, [][]int64{{1, 1, 1}, {1, 1, 1, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fromFile.EncodeBatch(tt.texts, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if !slices.Equal(got[i].Tokens, tt.wantToks[i]) {
					t.Errorf("[%d] tokens (-want +got):\n-%q\n+%q", i, tt.wantToks[i], got[i].Tokens)
				}
				if !slices.Equal(got[i].AttentionMask, tt.wantMasks[i]) {
					t.Errorf("[%d] mask (-want +got):\n-%v\n+%v", i, tt.wantMasks[i], got[i].AttentionMask)
				}
				checkShape(t, got[i], len(tt.wantToks[i]))
				for k, tk := range got[i].Tokens {
					if tk == "[PAD]" && (got[i].IDs[k] != 0 || got[i].Offsets[k] != [2]int{}) {
						t.Errorf("[%d] pad token %d: id %d offsets %v, want 0 [0 0]", i, k, got[i].IDs[k], got[i].Offsets[k])
					}
				}
			}
		})
	}
}

func TestAddedTokenFlags(t *testing.T) {
	tok := loadMini(t, func(m map[string]any) {
		m["added_tokens"] = append(m["added_tokens"].([]any),
			map[string]any{"id": 22, "content": "<x>", "lstrip": true, "rstrip": true, "normalized": false, "special": true},
			map[string]any{"id": 23, "content": "AB", "single_word": true, "normalized": true, "special": false},
		)
	})
	tests := []struct {
		name        string
		text        string
		wantTokens  []string
		wantOffsets [][2]int
	}{
		{"lstrip and rstrip swallow spaces", "a  <x>  b", []string{"[CLS]", "a", "<x>", "b", "[SEP]"},
			[][2]int{{}, {0, 1}, {1, 8}, {8, 9}, {}}},
		{"normalized token matches normalized text", "c Ab c", []string{"[CLS]", "c", "AB", "c", "[SEP]"},
			[][2]int{{}, {0, 1}, {2, 4}, {5, 6}, {}}},
		{"single word does not match inside a word", "xab", []string{"[CLS]", "[UNK]", "[SEP]"},
			[][2]int{{}, {0, 3}, {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tok.Encode(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Tokens, tt.wantTokens) || !slices.Equal(got.Offsets, tt.wantOffsets) {
				t.Errorf("tokens %q offsets %v, want %q %v", got.Tokens, got.Offsets, tt.wantTokens, tt.wantOffsets)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(m map[string]any)
		raw     string
		wantErr error
		wantMsg string
	}{
		{"not JSON", nil, "{", ErrInvalid, "tokenizer.json"},
		{"unsupported normalizer", func(m map[string]any) { m["normalizer"] = map[string]any{"type": "NFKC"} },
			"", ErrUnsupported, `normalizer: normalizer "NFKC"`},
		{"unsupported normalizer in a sequence", func(m map[string]any) {
			m["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{
				map[string]any{"type": "NFD"}, map[string]any{"type": "Precompiled"}}}
		}, "", ErrUnsupported, `normalizer.normalizers[1]: normalizer "Precompiled"`},
		{"unsupported pre-tokenizer", func(m map[string]any) { m["pre_tokenizer"] = map[string]any{"type": "Metaspace"} },
			"", ErrUnsupported, `pre-tokenizer "Metaspace"`},
		{"unsupported model", func(m map[string]any) { m["model"] = map[string]any{"type": "BPE"} },
			"", ErrUnsupported, `model "BPE"`},
		{"no model", func(m map[string]any) { delete(m, "model") }, "", ErrInvalid, "model: missing"},
		{"unknown token not in vocabulary", func(m map[string]any) { m["model"].(map[string]any)["unk_token"] = "<unk>" },
			"", ErrInvalid, `model.unk_token: "<unk>" is not in the vocabulary`},
		{"empty vocabulary", func(m map[string]any) { m["model"].(map[string]any)["vocab"] = map[string]int{} },
			"", ErrInvalid, "model.vocab: empty"},
		{"negative id", func(m map[string]any) { m["model"].(map[string]any)["vocab"] = map[string]int{"[UNK]": -1} },
			"", ErrInvalid, "is negative"},
		{"template names an unknown special token", func(m map[string]any) {
			delete(m["post_processor"].(map[string]any)["special_tokens"].(map[string]any), "[SEP]")
		}, "", ErrInvalid, `special token "[SEP]" is not in special_tokens`},
		{"template without $B", func(m map[string]any) {
			pp := m["post_processor"].(map[string]any)
			pp["pair"] = pp["single"]
		}, "", ErrInvalid, "post_processor.pair: want $A and $B once each"},
		{"unsupported post-processor", func(m map[string]any) { m["post_processor"] = map[string]any{"type": "RobertaProcessing"} },
			"", ErrUnsupported, `post-processor "RobertaProcessing"`},
		{"truncation below special tokens", func(m map[string]any) {
			m["truncation"] = map[string]any{"max_length": 1, "strategy": "LongestFirst", "direction": "Right", "stride": 0}
		}, "", ErrInvalid, "truncation.max_length: 1 leaves no room for the 2 special tokens"},
		{"bad truncation strategy", func(m map[string]any) {
			m["truncation"] = map[string]any{"max_length": 8, "strategy": "Longest"}
		}, "", ErrInvalid, `truncation.strategy: "Longest"`},
		{"bad padding strategy", func(m map[string]any) {
			m["padding"] = map[string]any{"strategy": "Longest"}
		}, "", ErrInvalid, `padding.strategy: "Longest"`},
		{"empty added token", func(m map[string]any) {
			m["added_tokens"] = []any{map[string]any{"id": 30, "content": ""}}
		}, "", ErrInvalid, "added_tokens[0].content: empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.raw)
			if tt.raw == "" {
				b = miniConfig(t, tt.edit)
			}
			_, err := LoadBytes(b)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load("testdata/no-such-tokenizer.json"); err == nil || !strings.Contains(err.Error(), "no-such-tokenizer.json") {
		t.Fatalf("error %v, want one naming the file", err)
	}
}

func TestSequenceNormalizer(t *testing.T) {
	tok := loadMini(t, func(m map[string]any) {
		m["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "NFD"}, map[string]any{"type": "StripAccents"}, map[string]any{"type": "Lowercase"},
		}}
	})
	got, err := tok.Encode("CAFÉ")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"[CLS]", "cafe", "[SEP]"}; !slices.Equal(got.Tokens, want) {
		t.Errorf("tokens %q, want %q", got.Tokens, want)
	}
}

func TestNormalizeSteps(t *testing.T) {
	tests := []struct {
		name string
		step normStep
		in   string
		want []nchar
	}{
		// U+0323 (class 220) sorts before U+0301 (class 230).
		{"nfd canonical order", nfd, "a\u0301\u0323", []nchar{{'a', 0, 1}, {0x323, 3, 5}, {0x301, 1, 3}}},
		{"nfd singleton", nfd, "\u212b", []nchar{{'A', 0, 3}, {0x30a, 0, 3}}},
		{"nfd hangul", nfd, "한", []nchar{{0x1112, 0, 3}, {0x1161, 0, 3}, {0x11ab, 0, 3}}},
		{"nfd reorders across characters", nfd, "\u1e0b\u0323", []nchar{{'d', 0, 3}, {0x323, 3, 5}, {0x307, 0, 3}}},
		{"lowercase dotted I", lowercase, "İ", []nchar{{'i', 0, 2}, {0x307, 0, 2}}},
		{"lowercase final sigma one code point at a time", lowercase, "ΟΣ", []nchar{{'ο', 0, 2}, {'σ', 2, 4}}},
		{"clean text", cleanText, "a\u200b\u0085\u2028b", []nchar{{'a', 0, 1}, {' ', 6, 9}, {'b', 9, 10}}},
		{"space chinese", spaceChinese, "a中", []nchar{{'a', 0, 1}, {' ', 1, 1}, {'中', 1, 4}, {' ', 1, 1}}},
		{"drop nonspacing marks", dropNonspacingMarks, "e\u0301\u0903", []nchar{{'e', 0, 1}, {0x903, 3, 6}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.step(nil, appendChars(nil, tt.in, 0))
			if !slices.Equal(got, tt.want) {
				t.Errorf("(-want +got):\n-%+v\n+%+v", tt.want, got)
			}
		})
	}
}

func TestConvertOffsets(t *testing.T) {
	const text = "a😀é" // bytes: a [0,1) 😀 [1,5) é [5,7)
	offs := [][2]int{{0, 1}, {1, 5}, {5, 7}, {0, 7}, {7, 7}}
	tests := []struct {
		name    string
		text    string
		offsets [][2]int
		unit    OffsetUnit
		want    [][2]int
		wantMsg string
	}{
		{"bytes", text, offs, Bytes, offs, ""},
		{"runes", text, offs, Runes, [][2]int{{0, 1}, {1, 2}, {2, 3}, {0, 3}, {3, 3}}, ""},
		{"utf16", text, offs, UTF16, [][2]int{{0, 1}, {1, 3}, {3, 4}, {0, 4}, {4, 4}}, ""},
		{"invalid byte counts once", "\xffa", [][2]int{{0, 1}, {1, 2}}, UTF16, [][2]int{{0, 1}, {1, 2}}, ""},
		{"inside a code point", text, [][2]int{{0, 2}}, Runes, nil, "cuts a UTF-8 sequence"},
		{"inside a code point in bytes", text, [][2]int{{2, 5}}, Bytes, nil, "cuts a UTF-8 sequence"},
		{"past the end", text, [][2]int{{0, 8}}, UTF16, nil, "is not a range of a 7-byte text"},
		{"reversed", text, [][2]int{{5, 1}}, UTF16, nil, "is not a range"},
		{"unknown unit", text, offs, OffsetUnit(9), nil, "unit: 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConvertOffsets(tt.text, tt.offsets, tt.unit)
			if tt.wantMsg != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("error %v, want ErrInvalid containing %q", err, tt.wantMsg)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, %v, want %v", got, err, tt.want)
			}
		})
	}
}

func TestWith(t *testing.T) {
	tok := loadMini(t, func(m map[string]any) {
		m["truncation"] = map[string]any{"max_length": 4, "strategy": "LongestFirst", "direction": "Right", "stride": 0}
	})
	if tr, ok := tok.Truncation(); !ok || tr != (Truncation{MaxLength: 4, Strategy: LongestFirst, Direction: Right}) {
		t.Fatalf("Truncation() = %+v, %v, want the file's", tr, ok)
	}
	loose, err := tok.With(WithoutTruncation(), WithPadding(Padding{Length: 12}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := loose.Truncation(); ok {
		t.Error("With(WithoutTruncation()) still truncates")
	}
	a, err := tok.Encode("a b c a b c")
	if err != nil {
		t.Fatal(err)
	}
	b, err := loose.Encode("a b c a b c")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.IDs) != 4 || len(b.IDs) != 12 {
		t.Errorf("lengths %d (original) and %d (With), want 4 and 12", len(a.IDs), len(b.IDs))
	}
	if _, err := tok.With(WithTruncation(Truncation{MaxLength: 1})); !errors.Is(err, ErrInvalid) {
		t.Errorf("With(max length 1) error %v, want ErrInvalid", err)
	}
}

func TestEncodeBatchErrorNamesText(t *testing.T) {
	tok := loadMini(t, nil)
	_, err := tok.EncodeBatch([]string{"a", "a b c a b c"}, WithTruncation(Truncation{MaxLength: 4}), WithStrict())
	if !errors.Is(err, ErrTooLong) || !strings.Contains(err.Error(), "texts[1]: 8 tokens exceeds max length 4") {
		t.Fatalf("error %v, want ErrTooLong naming texts[1]", err)
	}
}

// TestConcurrentEncode encodes from several goroutines at once; the pooled
// scratch memory must not leak between calls (run with -race to check).
func TestConcurrentEncode(t *testing.T) {
	tok := loadMini(t, nil)
	texts := []string{"unaffable", "Hello, a b c!", "你好", "cafe CAFE café"}
	want := make([]Encoding, len(texts))
	for i, s := range texts {
		var err error
		if want[i], err = tok.Encode(s); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8*len(texts))
	for g := range 8 {
		wg.Go(func() {
			for k := range 50 {
				i := (g + k) % len(texts)
				got, err := tok.Encode(texts[i])
				if err != nil || !slices.Equal(got.IDs, want[i].IDs) {
					errs <- texts[i]
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Errorf("concurrent Encode(%q) differs from a lone one", s)
	}
}

// TestBERTFileSettings checks that the real tokenizer.json's truncation and
// padding sections (max 128, Fixed 128) are the defaults.
func TestBERTFileSettings(t *testing.T) {
	tok := loadBERT(t)
	tr, ok := tok.Truncation()
	if !ok || tr != (Truncation{MaxLength: 128, Strategy: LongestFirst, Direction: Right}) {
		t.Errorf("Truncation() = %+v, %v", tr, ok)
	}
	p, ok := tok.Padding()
	if !ok || p != (Padding{Length: 128, Direction: Right, ID: 0, TypeID: 0, Token: "[PAD]"}) {
		t.Errorf("Padding() = %+v, %v", p, ok)
	}
	got, err := tok.Encode("hello world")
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, got, 128)
	ones := 0
	for _, m := range got.AttentionMask {
		ones += int(m)
	}
	if ones != 4 {
		t.Errorf("attention mask has %d ones, want 4 ([CLS] hello world [SEP])", ones)
	}
	long, err := tok.Encode(strings.Repeat("word ", 300))
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, long, 128)
	if long.Tokens[127] != "[SEP]" {
		t.Errorf("last token of a truncated text is %q, want [SEP]", long.Tokens[127])
	}
}
