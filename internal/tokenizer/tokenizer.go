package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
)

var (
	// ErrInvalid marks a malformed tokenizer.json or an invalid option.
	ErrInvalid = errors.New("tokenizer: invalid")
	// ErrUnsupported marks a tokenizer.json component this package does not
	// implement (a BPE model, a Metaspace pre-tokenizer, ...).
	ErrUnsupported = errors.New("tokenizer: unsupported")
	// ErrTooLong marks a text longer than the limit in strict mode, or one that a
	// truncation strategy cannot shorten enough.
	ErrTooLong = errors.New("tokenizer: text too long")
)

// Strategy chooses which text loses tokens when a pair is too long.
type Strategy string

const (
	// LongestFirst shortens the longer text first (the default).
	LongestFirst Strategy = "longest_first"
	// OnlyFirst shortens only the first text.
	OnlyFirst Strategy = "only_first"
	// OnlySecond shortens only the second text of a pair.
	OnlySecond Strategy = "only_second"
)

// Direction is the side tokens are removed from (truncation) or added to
// (padding).
type Direction string

const (
	// Right is the end of the sequence (the default).
	Right Direction = "right"
	// Left is the start of the sequence.
	Left Direction = "left"
)

// Truncation limits an encoding to MaxLength tokens, special tokens included.
// The zero Strategy is LongestFirst and the zero Direction is Right.
type Truncation struct {
	MaxLength int
	Strategy  Strategy
	Direction Direction
}

// Padding extends encodings with the padding token (attention mask 0). Length
// > 0 pads every encoding to at least Length tokens; Length 0 pads each batch to
// its longest encoding. MultipleOf > 0 then rounds the length up to a multiple.
// An empty Token is filled in from the tokenizer.json padding section.
type Padding struct {
	Length     int
	MultipleOf int
	Direction  Direction
	ID         int64
	TypeID     int64
	Token      string
}

// Encoding is a tokenized text, ready for a BERT-style model. All slices have
// the same length; the zero Encoding has none. Offsets are byte offsets into
// the text the token came from (for a pair, the second text's tokens point into
// the second text; their type id tells them apart); special and padding tokens
// have [0, 0]. See the package documentation for other units.
type Encoding struct {
	IDs           []int64
	TypeIDs       []int64
	AttentionMask []int64
	Tokens        []string
	Offsets       [][2]int
}

// Option changes how one call encodes, overriding tokenizer.json.
type Option func(*settings)

type settings struct {
	trunc   *Truncation
	pad     *Padding
	strict  bool
	special bool
}

// WithTruncation truncates to t, replacing tokenizer.json's truncation section.
func WithTruncation(t Truncation) Option {
	return func(s *settings) { s.trunc = &t }
}

// WithoutTruncation turns truncation off.
func WithoutTruncation() Option {
	return func(s *settings) { s.trunc = nil }
}

// WithPadding pads as p says, replacing tokenizer.json's padding section.
func WithPadding(p Padding) Option {
	return func(s *settings) { s.pad = &p }
}

// WithoutPadding turns padding off.
func WithoutPadding() Option {
	return func(s *settings) { s.pad = nil }
}

// WithStrict makes a text longer than the truncation limit an ErrTooLong error
// naming the length and the limit, instead of truncating it. Without a
// truncation limit nothing is too long.
func WithStrict() Option {
	return func(s *settings) { s.strict = true }
}

// WithoutSpecialTokens leaves out the post-processor's special tokens ([CLS],
// [SEP]); the type ids of the texts stay as the template sets them.
func WithoutSpecialTokens() Option {
	return func(s *settings) { s.special = false }
}

// Tokenizer encodes text with one tokenizer.json. It is immutable and safe for
// concurrent use; the zero value is not usable, call Load or LoadBytes.
type Tokenizer struct {
	norm   []normStep // nil: no normalizer
	bert   bool       // BertPreTokenizer; false: no pre-tokenizer
	model  *wordPiece
	added  *addedSet
	post   *template
	trunc  *Truncation // nil: no truncation
	pad    *Padding    // nil: no padding
	padTok string      // padding token named by tokenizer.json, for Padding.Token ""
	pool   *sync.Pool  // *workspace
}

// Load reads a HuggingFace tokenizer.json.
func Load(path string) (*Tokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	t, err := LoadBytes(b)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %q: %w", path, err)
	}
	return t, nil
}

// LoadBytes parses the contents of a HuggingFace tokenizer.json.
func LoadBytes(b []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: tokenizer.json: %v", ErrInvalid, err)
	}
	t := &Tokenizer{pool: &sync.Pool{New: func() any { return new(workspace) }}}
	var err error
	if t.norm, err = parseNormalizer(f.Normalizer, "normalizer"); err != nil {
		return nil, err
	}
	if t.bert, err = parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if t.model, err = parseModel(f.Model); err != nil {
		return nil, err
	}
	if t.added, err = parseAdded(f.AddedTokens, t.norm); err != nil {
		return nil, err
	}
	if t.post, err = parsePostProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	if t.trunc, err = parseTruncation(f.Truncation); err != nil {
		return nil, err
	}
	if t.trunc != nil {
		if err := t.checkTruncation(t.trunc, false, true); err != nil {
			return nil, err
		}
	}
	if t.pad, err = parsePadding(f.Padding); err != nil {
		return nil, err
	}
	if t.pad != nil {
		t.padTok = t.pad.Token
	}
	return t, nil
}

// With returns a copy of t whose defaults are changed by opts, for callers that
// always encode the same way (a model that takes unpadded input, say).
func (t *Tokenizer) With(opts ...Option) (*Tokenizer, error) {
	s := t.settings(opts)
	if s.trunc != nil {
		if err := t.checkTruncation(s.trunc, false, true); err != nil {
			return nil, err
		}
	}
	if err := checkPadding(s.pad); err != nil {
		return nil, err
	}
	c := *t
	c.trunc, c.pad = s.trunc, s.pad
	return &c, nil
}

// Truncation returns the default truncation and whether there is one.
func (t *Tokenizer) Truncation() (Truncation, bool) {
	if t.trunc == nil {
		return Truncation{}, false
	}
	return *t.trunc, true
}

// Padding returns the default padding and whether there is one.
func (t *Tokenizer) Padding() (Padding, bool) {
	if t.pad == nil {
		return Padding{}, false
	}
	return *t.pad, true
}

// TokenID returns the id of a vocabulary token or added token.
func (t *Tokenizer) TokenID(tok string) (int64, bool) {
	if e, ok := t.model.first[tok]; ok {
		return e.id, true
	}
	for _, l := range t.added.raw {
		for _, a := range l {
			if a.content == tok {
				return a.id, true
			}
		}
	}
	for _, l := range t.added.norm {
		for _, a := range l {
			if a.content == tok {
				return a.id, true
			}
		}
	}
	return 0, false
}

func (t *Tokenizer) settings(opts []Option) settings {
	s := settings{trunc: t.trunc, pad: t.pad, special: true}
	for _, o := range opts {
		o(&s)
	}
	return s
}

// checkTruncation validates tr for encodings with the template's special
// tokens (special true) or without.
func (t *Tokenizer) checkTruncation(tr *Truncation, pair, special bool) error {
	switch tr.Strategy {
	case "", LongestFirst, OnlyFirst, OnlySecond:
	default:
		return fmt.Errorf("%w: truncation.strategy: %q, want longest_first, only_first or only_second", ErrInvalid, tr.Strategy)
	}
	switch tr.Direction {
	case "", Right, Left:
	default:
		return fmt.Errorf("%w: truncation.direction: %q, want right or left", ErrInvalid, tr.Direction)
	}
	n := 0
	if special {
		n = t.post.added(pair)
	}
	if tr.MaxLength < n {
		return fmt.Errorf("%w: truncation.max_length: %d leaves no room for the %d special tokens", ErrInvalid, tr.MaxLength, n)
	}
	return nil
}

func checkPadding(p *Padding) error {
	if p == nil {
		return nil
	}
	if p.Length < 0 {
		return fmt.Errorf("%w: padding.length: %d is negative", ErrInvalid, p.Length)
	}
	if p.MultipleOf < 0 {
		return fmt.Errorf("%w: padding.multiple_of: %d is negative", ErrInvalid, p.MultipleOf)
	}
	switch p.Direction {
	case "", Right, Left:
	default:
		return fmt.Errorf("%w: padding.direction: %q, want right or left", ErrInvalid, p.Direction)
	}
	return nil
}

// Encode tokenizes one text. An empty or whitespace-only text gives the
// special tokens alone ([CLS] [SEP]).
func (t *Tokenizer) Encode(text string, opts ...Option) (Encoding, error) {
	encs, err := t.encodeBatch([][2]string{{text}}, false, opts)
	if err != nil {
		return Encoding{}, err
	}
	return encs[0], nil
}

// EncodePair tokenizes a pair of texts (a question and a passage, two
// sentences): [CLS] a [SEP] b [SEP] with type id 1 for b's part.
func (t *Tokenizer) EncodePair(a, b string, opts ...Option) (Encoding, error) {
	encs, err := t.encodeBatch([][2]string{{a, b}}, true, opts)
	if err != nil {
		return Encoding{}, err
	}
	return encs[0], nil
}

// EncodeBatch tokenizes several texts; padding without a fixed Length pads them
// all to the longest.
func (t *Tokenizer) EncodeBatch(texts []string, opts ...Option) ([]Encoding, error) {
	in := make([][2]string, len(texts))
	for i, s := range texts {
		in[i][0] = s
	}
	return t.encodeBatch(in, false, opts)
}

// EncodePairBatch tokenizes several pairs, as EncodePair and EncodeBatch do.
func (t *Tokenizer) EncodePairBatch(pairs [][2]string, opts ...Option) ([]Encoding, error) {
	return t.encodeBatch(pairs, true, opts)
}

// workspace is the scratch memory of one encode, pooled across calls.
type workspace struct {
	chars, spare []nchar
	words        [][2]int
	segs         []segment
	nsegs        []nsegment
	buf          []byte
	pos          []int
	a, b         []piece
}

func (t *Tokenizer) encodeBatch(in [][2]string, pair bool, opts []Option) ([]Encoding, error) {
	s := t.settings(opts)
	if s.trunc != nil {
		if err := t.checkTruncation(s.trunc, pair, s.special); err != nil {
			return nil, err
		}
	}
	if err := checkPadding(s.pad); err != nil {
		return nil, err
	}
	padTo := 0
	if s.pad != nil {
		padTo = s.pad.Length
	}
	ws := t.pool.Get().(*workspace)
	defer t.pool.Put(ws)

	out := make([]Encoding, len(in))
	longest := 0
	for i, texts := range in {
		ws.a = t.encodeText(texts[0], ws, ws.a[:0])
		var b []piece
		if pair {
			ws.b = t.encodeText(texts[1], ws, ws.b[:0])
			b = ws.b
		}
		a := ws.a
		added := 0
		if s.special {
			added = t.post.added(pair)
		}
		if s.trunc != nil {
			limit := s.trunc.MaxLength
			if total := len(a) + len(b) + added; s.strict && total > limit {
				what := "text"
				if pair {
					what = "text pair"
				}
				if len(in) > 1 {
					what = fmt.Sprintf("texts[%d]", i)
				}
				return nil, fmt.Errorf("%w: %s: %d tokens exceeds max length %d", ErrTooLong, what, total, limit)
			}
			n2 := -1
			if pair {
				n2 = len(b)
			}
			strat := s.trunc.Strategy
			if strat == "" {
				strat = LongestFirst
			}
			k1, k2, err := truncLengths(len(a), n2, limit-added, strat)
			if err != nil {
				if len(in) > 1 {
					return nil, fmt.Errorf("texts[%d]: %w", i, err)
				}
				return nil, err
			}
			a = cut(a, k1, s.trunc.Direction)
			if pair {
				b = cut(b, k2, s.trunc.Direction)
			}
		}
		out[i] = t.post.build(a, b, pair, s.special, max(0, padTo-len(a)-len(b)-added))
		longest = max(longest, len(out[i].IDs))
	}
	if s.pad != nil {
		p := *s.pad
		if p.Token == "" {
			p.Token = t.padTok
		}
		n := padTarget(&p, longest)
		for i := range out {
			pad(&out[i], n, &p)
		}
	}
	return out, nil
}

// encodeText runs one text through added-token matching, normalization,
// pre-tokenization and WordPiece, appending its pieces to out.
func (t *Tokenizer) encodeText(text string, ws *workspace, out []piece) []piece {
	ws.segs = t.added.splitRaw(text, ws.segs[:0])
	for _, sg := range ws.segs {
		if sg.tok != nil {
			out = append(out, piece{id: sg.tok.id, tok: sg.tok.content, start: sg.start, end: sg.end})
			continue
		}
		ws.chars = appendChars(ws.chars[:0], text[sg.start:sg.end], sg.start)
		ws.chars, ws.spare = applyNorm(t.norm, ws.chars, ws.spare)
		ws.nsegs = t.added.splitNormalized(ws.chars, ws.nsegs[:0])
		for _, ns := range ws.nsegs {
			chars := ws.chars[ns.start:ns.end]
			if ns.tok != nil {
				st, en := spanOf(chars)
				out = append(out, piece{id: ns.tok.id, tok: ns.tok.content, start: st, end: en})
				continue
			}
			ws.words = ws.words[:0]
			if t.bert {
				ws.words = bertWords(chars, ws.words)
			} else if len(chars) > 0 {
				ws.words = append(ws.words, [2]int{0, len(chars)})
			}
			for _, w := range ws.words {
				out, ws.buf, ws.pos = t.model.tokenize(chars[w[0]:w[1]], out, ws.buf, ws.pos)
			}
		}
	}
	return out
}
