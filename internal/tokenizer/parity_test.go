package tokenizer

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// corpusEntry is one case of testdata/corpus.json.
type corpusEntry struct {
	Name     string  `json:"name"`
	Text     string  `json:"text"`
	TextPair *string `json:"text_pair"`
	// Repeat > 0 repeats the text (and the pair) that many times, joined by
	// spaces, to make inputs longer than a model accepts.
	Repeat     int `json:"repeat"`
	Truncation *struct {
		MaxLength int       `json:"max_length"`
		Strategy  Strategy  `json:"strategy"`
		Direction Direction `json:"direction"`
	} `json:"truncation"`
	PadTo int `json:"pad_to"`
}

// refItem and refResult are the protocol of tools/node/tokenize.mjs.
type refItem struct {
	Text     string   `json:"text"`
	TextPair *string  `json:"text_pair,omitempty"`
	PadTo    int      `json:"pad_to,omitempty"`
	Slices   [][3]int `json:"slices,omitempty"`
}

type refResult struct {
	InputIDs      []int64  `json:"input_ids"`
	AttentionMask []int64  `json:"attention_mask"`
	TokenTypeIDs  []int64  `json:"token_type_ids"`
	Tokens        []string `json:"tokens"`
	IDsA          []int64  `json:"ids_a"`
	IDsB          []int64  `json:"ids_b"`
	Slices        []string `json:"slices"`
}

func loadCorpus(t testing.TB) []corpusEntry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "corpus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Entries []corpusEntry `json:"entries"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("testdata/corpus.json: %v", err)
	}
	for i := range c.Entries {
		e := &c.Entries[i]
		if e.Repeat > 0 {
			e.Text = strings.TrimSpace(strings.Repeat(e.Text+" ", e.Repeat))
			if e.TextPair != nil {
				p := strings.TrimSpace(strings.Repeat(*e.TextPair+" ", e.Repeat))
				e.TextPair = &p
			}
		}
	}
	return c.Entries
}

// runReference runs tools/node/tokenize.mjs (transformers.js) over items.
func runReference(t *testing.T, tokenizerPath string, items []refItem) []refResult {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "..", "tools", "node", "tokenize.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(filepath.Dir(script), "node_modules", "@huggingface", "transformers")
	if _, err := os.Stat(mod); err != nil {
		t.Fatalf("transformers.js not installed (%v): run scripts/testdeps.sh", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (%v): install Node.js and run scripts/testdeps.sh", err)
	}
	in, err := json.Marshal(map[string]any{"tokenizer": tokenizerPath, "items": items})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	var res struct {
		Results []refResult `json:"results"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node output: %v", err)
	}
	if len(res.Results) != len(items) {
		t.Fatalf("node returned %d results for %d items", len(res.Results), len(items))
	}
	return res.Results
}

// TestParityTransformersJS encodes testdata/corpus.json with the real BERT
// tokenizer in Go and with @huggingface/transformers, and compares ids, type
// ids, attention masks and tokens. Truncated cases are compared against the
// untruncated reference with the dropped tokens taken out (transformers.js
// truncates differently, see doc.go). transformers.js reports no offsets, so
// offsets are checked two ways: each token's source substring must normalize to
// the token, and the UTF-16 offsets from ConvertOffsets must slice the same
// substring out of the JavaScript string.
func TestParityTransformersJS(t *testing.T) {
	path := bertJSON(t)
	tok := loadBERT(t)
	entries := loadCorpus(t)
	padding, _ := tok.Padding()

	gots := make([]Encoding, len(entries))
	items := make([]refItem, len(entries))
	for i, e := range entries {
		opts := []Option{WithoutTruncation(), WithoutPadding()}
		if e.Truncation != nil {
			opts = append(opts, WithTruncation(Truncation{
				MaxLength: e.Truncation.MaxLength, Strategy: e.Truncation.Strategy, Direction: e.Truncation.Direction,
			}))
		}
		if e.PadTo > 0 {
			p := padding
			p.Length = e.PadTo
			opts = append(opts, WithPadding(p))
		}
		var got Encoding
		var err error
		if e.TextPair != nil {
			got, err = tok.EncodePair(e.Text, *e.TextPair, opts...)
		} else {
			got, err = tok.Encode(e.Text, opts...)
		}
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		gots[i] = got
		items[i] = refItem{Text: e.Text, TextPair: e.TextPair, PadTo: e.PadTo}
		items[i].Slices = utf16Slices(t, e, got)
	}
	refs := runReference(t, path, items)

	for i, e := range entries {
		t.Run(e.Name, func(t *testing.T) {
			got, ref := gots[i], refs[i]
			want := ref
			if e.Truncation != nil {
				want = truncatedReference(t, e, ref)
			}
			if !slices.Equal(got.IDs, want.InputIDs) {
				t.Errorf("ids (-want +got):\n-%v\n+%v\ntokens %q", want.InputIDs, got.IDs, got.Tokens)
			}
			if !slices.Equal(got.TypeIDs, want.TokenTypeIDs) {
				t.Errorf("type ids (-want +got):\n-%v\n+%v", want.TokenTypeIDs, got.TypeIDs)
			}
			if !slices.Equal(got.AttentionMask, want.AttentionMask) {
				t.Errorf("attention mask (-want +got):\n-%v\n+%v", want.AttentionMask, got.AttentionMask)
			}
			if e.Truncation == nil {
				var content []string
				for k, o := range got.Offsets {
					if o[0] != o[1] {
						content = append(content, got.Tokens[k])
					}
				}
				if !slices.Equal(content, ref.Tokens) {
					t.Errorf("tokens (-want +got):\n-%q\n+%q", ref.Tokens, content)
				}
			}
			checkSourceSpans(t, tok, e, got)
			var wantSlices []string
			for k, o := range got.Offsets {
				if o[0] != o[1] {
					wantSlices = append(wantSlices, sourceText(e, got.TypeIDs[k])[o[0]:o[1]])
				}
			}
			if !slices.Equal(ref.Slices, wantSlices) {
				t.Errorf("JavaScript slices at the UTF-16 offsets (-want +got):\n-%q\n+%q", wantSlices, ref.Slices)
			}
		})
	}
}

// sourceText is the text a token with the given type id came from (the BERT
// template gives the second text type id 1).
func sourceText(e corpusEntry, typeID int64) string {
	if typeID == 1 && e.TextPair != nil {
		return *e.TextPair
	}
	return e.Text
}

// utf16Slices converts the offsets of got's text tokens to UTF-16, as the node
// script's "slices" requests.
func utf16Slices(t *testing.T, e corpusEntry, got Encoding) [][3]int {
	t.Helper()
	var out [][3]int
	for k, o := range got.Offsets {
		if o[0] == o[1] {
			continue
		}
		which := int(got.TypeIDs[k])
		u, err := ConvertOffsets(sourceText(e, got.TypeIDs[k]), [][2]int{o}, UTF16)
		if err != nil {
			t.Fatalf("%s: ConvertOffsets: %v", e.Name, err)
		}
		out = append(out, [3]int{u[0][0], u[0][1], which})
	}
	return out
}

// truncatedReference takes out of the untruncated reference encoding the
// tokens truncation drops. It relies on the BERT layout [CLS] A [SEP] (B [SEP])
// and on truncLengths, which TestTruncLengths checks against the Rust
// library's own cases.
func truncatedReference(t *testing.T, e corpusEntry, ref refResult) refResult {
	t.Helper()
	pair := e.TextPair != nil
	na, nb := len(ref.IDsA), len(ref.IDsB)
	added := 2
	n2 := -1
	if pair {
		added, n2 = 3, nb
	}
	if len(ref.InputIDs) != na+nb+added {
		t.Fatalf("reference has %d ids, want %d+%d+%d", len(ref.InputIDs), na, nb, added)
	}
	strategy := e.Truncation.Strategy
	if strategy == "" {
		strategy = LongestFirst
	}
	k1, k2, err := truncLengths(na, n2, e.Truncation.MaxLength-added, strategy)
	if err != nil {
		t.Fatal(err)
	}
	if full := na + nb + added; full > e.Truncation.MaxLength && k1+max(k2, 0)+added != e.Truncation.MaxLength {
		t.Fatalf("truncLengths kept %d+%d+%d tokens, want max_length %d", k1, k2, added, e.Truncation.MaxLength)
	}
	keep := make([]bool, len(ref.InputIDs))
	keep[0] = true
	keep[1+na] = true
	keepRange := func(first, n, k int) {
		lo := first
		if e.Truncation.Direction == Left {
			lo = first + n - k
		}
		for j := lo; j < lo+k; j++ {
			keep[j] = true
		}
	}
	keepRange(1, na, k1)
	if pair {
		keepRange(2+na, nb, k2)
		keep[len(keep)-1] = true
	}
	var out refResult
	for j, ok := range keep {
		if ok {
			out.InputIDs = append(out.InputIDs, ref.InputIDs[j])
			out.TokenTypeIDs = append(out.TokenTypeIDs, ref.TokenTypeIDs[j])
			out.AttentionMask = append(out.AttentionMask, ref.AttentionMask[j])
		}
	}
	return out
}

// checkSourceSpans checks that each text token's offsets cover the text it
// was made from: a word piece's source normalizes to the piece (less the
// continuing-subword prefix), or contains it when one source character
// decomposes into several pieces (Hangul syllables into jamo); an added
// token's source is the token itself; an [UNK]'s source is one whole
// non-blank word. Spaces the normalizer puts around CJK ideographs are trimmed.
func checkSourceSpans(t *testing.T, tok *Tokenizer, e corpusEntry, got Encoding) {
	t.Helper()
	for k, o := range got.Offsets {
		if o[0] == o[1] {
			continue
		}
		src := sourceText(e, got.TypeIDs[k])[o[0]:o[1]]
		token := got.Tokens[k]
		switch {
		case got.IDs[k] == tok.model.unk.id:
			n := strings.TrimSpace(tok.normalizeString(src))
			if n == "" || strings.IndexFunc(n, unicode.IsSpace) >= 0 {
				t.Errorf("token %d [UNK] covers %q (normalized %q), want one word", k, src, n)
			}
		case strings.HasPrefix(token, "[") && strings.HasSuffix(token, "]") && src == token:
		default:
			want := strings.TrimPrefix(token, "##")
			n := strings.TrimSpace(tok.normalizeString(src))
			if n != want && (utf8.RuneCountInString(src) != 1 || !strings.Contains(n, want)) {
				t.Errorf("token %d %q covers %q, which normalizes to %q", k, token, src, n)
			}
		}
	}
}

func TestTruncatedReferenceSanity(t *testing.T) {
	// A guard on the test helper itself: with max_length 5 a single text of 6
	// tokens keeps [CLS], its first 3 tokens and [SEP].
	e := corpusEntry{Truncation: &struct {
		MaxLength int       `json:"max_length"`
		Strategy  Strategy  `json:"strategy"`
		Direction Direction `json:"direction"`
	}{MaxLength: 5}}
	ref := refResult{
		InputIDs:      []int64{101, 1, 2, 3, 4, 5, 6, 102},
		TokenTypeIDs:  make([]int64, 8),
		AttentionMask: []int64{1, 1, 1, 1, 1, 1, 1, 1},
		IDsA:          []int64{1, 2, 3, 4, 5, 6},
	}
	got := truncatedReference(t, e, ref)
	if want := []int64{101, 1, 2, 3, 102}; !slices.Equal(got.InputIDs, want) {
		t.Errorf("ids = %v, want %v", got.InputIDs, want)
	}
	e.Truncation.Direction = Left
	got = truncatedReference(t, e, ref)
	if want := []int64{101, 4, 5, 6, 102}; !slices.Equal(got.InputIDs, want) {
		t.Errorf("left: ids = %v, want %v", got.InputIDs, want)
	}
}

// randomPools are the character classes TestParityRandom mixes. They leave
// out what doc.go lists as deliberate differences from transformers.js (capital
// sigma, CJK outside the BMP, unassigned code points).
var randomPools = []string{
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
	" \t\n\r\u00a0\u3000\u2028",
	"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¿¡«»—–…·•",
	"éèêëàâäçñöüÅåØøÆæßÉÈÇÑ",
	"\u0301\u0308\u0323\u0327\u030a\u0345",
	"你好世界中文字符東京大",
	"こんにちはカタカナ",
	"안녕하세요한국어",
	"مرحبابالعالم",
	"नमस्तेदुनिया",
	"สวัสดีชาวโลก",
	"😀🍕👍🏽❤️👩‍👩‍👧🇫🇷",
	"\u200b\u200c\u200d\ufeff\u00ad\u0000\u0007\u001f\u007f\u0085",
	"ΑΒΓΔΕΖΗΘαβγδεζηθάέή",
	"АБВГДабвгдЁё",
	"ǅǈǋǲ ﬁﬂ ＡＢＣａｂｃ１２３ ²³¹ ½",
	"İıĞğŞş",
	"[CLS][SEP][MASK][UNK][PAD]",
}

// TestParityRandom compares ids and type ids with transformers.js on random
// texts and pairs mixing scripts, marks, spaces, punctuation and control
// characters (fixed seed).
func TestParityRandom(t *testing.T) {
	path := bertJSON(t)
	tok := loadBERT(t)
	rng := rand.New(rand.NewPCG(1, 2))
	pools := make([][]rune, len(randomPools))
	for i, p := range randomPools {
		pools[i] = []rune(p)
	}
	randomText := func(minLen int) string {
		var b strings.Builder
		for range minLen + rng.IntN(48) {
			p := pools[rng.IntN(len(pools))]
			b.WriteRune(p[rng.IntN(len(p))])
		}
		return b.String()
	}
	items := make([]refItem, 600)
	gots := make([]Encoding, len(items))
	for i := range items {
		items[i].Text = randomText(0)
		var err error
		if i%2 == 0 {
			gots[i], err = tok.Encode(items[i].Text, WithoutTruncation(), WithoutPadding())
		} else {
			// A non-empty pair: transformers.js takes "" for no pair at all.
			pair := randomText(1)
			items[i].TextPair = &pair
			gots[i], err = tok.EncodePair(items[i].Text, pair, WithoutTruncation(), WithoutPadding())
		}
		if err != nil {
			t.Fatalf("%q: %v", items[i].Text, err)
		}
	}
	refs := runReference(t, path, items)
	bad := 0
	for i, ref := range refs {
		if !slices.Equal(gots[i].IDs, ref.InputIDs) || !slices.Equal(gots[i].TypeIDs, ref.TokenTypeIDs) {
			if bad++; bad <= 5 {
				t.Errorf("%q / %v: ids (-want +got):\n-%v\n+%v\ntype ids (-want +got):\n-%v\n+%v", items[i].Text,
					items[i].TextPair, ref.InputIDs, gots[i].IDs, ref.TokenTypeIDs, gots[i].TypeIDs)
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d texts differ in all", bad)
	}
}
