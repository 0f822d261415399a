package tokenizer

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// fileJSON is the part of a HuggingFace tokenizer.json this package reads. The
// decoder section is not needed to encode and is ignored.
type fileJSON struct {
	Truncation    *truncationJSON `json:"truncation"`
	Padding       *paddingJSON    `json:"padding"`
	AddedTokens   []addedJSON     `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	Model         json.RawMessage `json:"model"`
	PostProcessor json.RawMessage `json:"post_processor"`
}

type truncationJSON struct {
	Direction string `json:"direction"`
	MaxLength int    `json:"max_length"`
	Strategy  string `json:"strategy"`
	Stride    int    `json:"stride"`
}

type paddingJSON struct {
	Strategy        json.RawMessage `json:"strategy"`
	Direction       string          `json:"direction"`
	PadToMultipleOf *int            `json:"pad_to_multiple_of"`
	PadID           int64           `json:"pad_id"`
	PadTypeID       int64           `json:"pad_type_id"`
	PadToken        string          `json:"pad_token"`
}

type addedJSON struct {
	ID         int64  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized *bool  `json:"normalized"`
	Special    bool   `json:"special"`
}

type typedJSON struct {
	Type string `json:"type"`
}

type bertNormalizerJSON struct {
	CleanText          *bool `json:"clean_text"`
	HandleChineseChars *bool `json:"handle_chinese_chars"`
	StripAccents       *bool `json:"strip_accents"`
	Lowercase          *bool `json:"lowercase"`
}

type sequenceJSON struct {
	Normalizers []json.RawMessage `json:"normalizers"`
}

type wordPieceJSON struct {
	Type                    string           `json:"type"`
	Vocab                   map[string]int64 `json:"vocab"`
	UnkToken                *string          `json:"unk_token"`
	ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
	MaxInputCharsPerWord    *int             `json:"max_input_chars_per_word"`
}

type templateJSON struct {
	Single        []templateItemJSON          `json:"single"`
	Pair          []templateItemJSON          `json:"pair"`
	SpecialTokens map[string]specialTokenJSON `json:"special_tokens"`
}

type templateItemJSON struct {
	SpecialToken *struct {
		ID     string `json:"id"`
		TypeID int64  `json:"type_id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID     string `json:"id"`
		TypeID int64  `json:"type_id"`
	} `json:"Sequence"`
}

type specialTokenJSON struct {
	ID     string   `json:"id"`
	IDs    []int64  `json:"ids"`
	Tokens []string `json:"tokens"`
}

type bertProcessingJSON struct {
	Sep []json.RawMessage `json:"sep"`
	Cls []json.RawMessage `json:"cls"`
}

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// isNull reports whether a raw JSON value is absent or null.
func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// parseNormalizer builds the normalization steps of a normalizer section; a nil
// result means no normalization.
func parseNormalizer(raw json.RawMessage, field string) ([]normStep, error) {
	if isNull(raw) {
		return nil, nil
	}
	var t typedJSON
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, field, err)
	}
	switch t.Type {
	case "BertNormalizer":
		var b bertNormalizerJSON
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, field, err)
		}
		lower := boolOr(b.Lowercase, true)
		return bertSteps(boolOr(b.CleanText, true), boolOr(b.HandleChineseChars, true),
			boolOr(b.StripAccents, lower), lower), nil
	case "Lowercase":
		return []normStep{lowercase}, nil
	case "NFD":
		return []normStep{nfd}, nil
	case "StripAccents":
		return []normStep{dropNonspacingMarks}, nil
	case "Sequence":
		var s sequenceJSON
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, field, err)
		}
		var steps []normStep
		for i, sub := range s.Normalizers {
			st, err := parseNormalizer(sub, fmt.Sprintf("%s.normalizers[%d]", field, i))
			if err != nil {
				return nil, err
			}
			steps = append(steps, st...)
		}
		return steps, nil
	default:
		return nil, fmt.Errorf("%w: %s: normalizer %q (supported: BertNormalizer, Lowercase, NFD, StripAccents, Sequence)",
			ErrUnsupported, field, t.Type)
	}
}

// parsePreTokenizer reports whether the BERT pre-tokenizer is configured (false:
// none, each normalized segment is one word).
func parsePreTokenizer(raw json.RawMessage) (bool, error) {
	if isNull(raw) {
		return false, nil
	}
	var t typedJSON
	if err := json.Unmarshal(raw, &t); err != nil {
		return false, fmt.Errorf("%w: pre_tokenizer: %v", ErrInvalid, err)
	}
	if t.Type != "BertPreTokenizer" {
		return false, fmt.Errorf("%w: pre_tokenizer: pre-tokenizer %q (supported: BertPreTokenizer)", ErrUnsupported, t.Type)
	}
	return true, nil
}

func parseModel(raw json.RawMessage) (*wordPiece, error) {
	if isNull(raw) {
		return nil, fmt.Errorf("%w: model: missing", ErrInvalid)
	}
	var w wordPieceJSON
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("%w: model: %v", ErrInvalid, err)
	}
	if w.Type != "WordPiece" {
		return nil, fmt.Errorf("%w: model.type: model %q (supported: WordPiece)", ErrUnsupported, w.Type)
	}
	unk := "[UNK]"
	if w.UnkToken != nil {
		unk = *w.UnkToken
	}
	prefix := "##"
	if w.ContinuingSubwordPrefix != nil {
		prefix = *w.ContinuingSubwordPrefix
	}
	maxChars := 100
	if w.MaxInputCharsPerWord != nil {
		maxChars = *w.MaxInputCharsPerWord
	}
	return newWordPiece(w.Vocab, unk, prefix, maxChars)
}

// parsePostProcessor builds the template; a null section gives a template with
// no special tokens ($A:0 and $A:0 $B:1).
func parsePostProcessor(raw json.RawMessage) (*template, error) {
	if isNull(raw) {
		return &template{
			single: []tmplPiece{{seq: seqA}},
			pair:   []tmplPiece{{seq: seqA}, {seq: seqB, typeID: 1}},
		}, nil
	}
	var t typedJSON
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("%w: post_processor: %v", ErrInvalid, err)
	}
	switch t.Type {
	case "TemplateProcessing":
		var tj templateJSON
		if err := json.Unmarshal(raw, &tj); err != nil {
			return nil, fmt.Errorf("%w: post_processor: %v", ErrInvalid, err)
		}
		return newTemplate(tj)
	case "BertProcessing":
		var bj bertProcessingJSON
		if err := json.Unmarshal(raw, &bj); err != nil {
			return nil, fmt.Errorf("%w: post_processor: %v", ErrInvalid, err)
		}
		cls, err := tokenIDPair(bj.Cls, "post_processor.cls")
		if err != nil {
			return nil, err
		}
		sep, err := tokenIDPair(bj.Sep, "post_processor.sep")
		if err != nil {
			return nil, err
		}
		return &template{
			single: []tmplPiece{cls.withType(0), {seq: seqA}, sep.withType(0)},
			pair:   []tmplPiece{cls.withType(0), {seq: seqA}, sep.withType(0), {seq: seqB, typeID: 1}, sep.withType(1)},
		}, nil
	default:
		return nil, fmt.Errorf("%w: post_processor: post-processor %q (supported: TemplateProcessing, BertProcessing)",
			ErrUnsupported, t.Type)
	}
}

// tokenIDPair decodes BertProcessing's ["[CLS]", 101] tuples.
func tokenIDPair(raw []json.RawMessage, field string) (tmplPiece, error) {
	var p tmplPiece
	if len(raw) != 2 {
		return p, fmt.Errorf("%w: %s: want [token, id], got %d elements", ErrInvalid, field, len(raw))
	}
	var tok string
	var id int64
	if err := json.Unmarshal(raw[0], &tok); err != nil {
		return p, fmt.Errorf("%w: %s[0]: %v", ErrInvalid, field, err)
	}
	if err := json.Unmarshal(raw[1], &id); err != nil {
		return p, fmt.Errorf("%w: %s[1]: %v", ErrInvalid, field, err)
	}
	if id < 0 {
		return p, fmt.Errorf("%w: %s[1]: id %d is negative", ErrInvalid, field, id)
	}
	return tmplPiece{seq: seqSpecial, ids: []int64{id}, tokens: []string{tok}}, nil
}

func newTemplate(tj templateJSON) (*template, error) {
	conv := func(items []templateItemJSON, field string, pair bool) ([]tmplPiece, error) {
		var out []tmplPiece
		seen := map[int8]int{}
		for i, it := range items {
			switch {
			case it.SpecialToken != nil && it.Sequence == nil:
				st, ok := tj.SpecialTokens[it.SpecialToken.ID]
				if !ok {
					return nil, fmt.Errorf("%w: post_processor.%s[%d]: special token %q is not in special_tokens",
						ErrInvalid, field, i, it.SpecialToken.ID)
				}
				if len(st.IDs) == 0 || len(st.IDs) != len(st.Tokens) {
					return nil, fmt.Errorf("%w: post_processor.special_tokens[%q]: %d ids for %d tokens, want the same number and at least one",
						ErrInvalid, it.SpecialToken.ID, len(st.IDs), len(st.Tokens))
				}
				for _, id := range st.IDs {
					if id < 0 {
						return nil, fmt.Errorf("%w: post_processor.special_tokens[%q]: id %d is negative", ErrInvalid, it.SpecialToken.ID, id)
					}
				}
				out = append(out, tmplPiece{seq: seqSpecial, typeID: it.SpecialToken.TypeID, ids: st.IDs, tokens: st.Tokens})
			case it.Sequence != nil && it.SpecialToken == nil:
				var s int8
				switch it.Sequence.ID {
				case "A":
					s = seqA
				case "B":
					s = seqB
				default:
					return nil, fmt.Errorf("%w: post_processor.%s[%d]: sequence %q, want A or B", ErrInvalid, field, i, it.Sequence.ID)
				}
				seen[s]++
				out = append(out, tmplPiece{seq: s, typeID: it.Sequence.TypeID})
			default:
				return nil, fmt.Errorf("%w: post_processor.%s[%d]: want exactly one of SpecialToken or Sequence", ErrInvalid, field, i)
			}
		}
		if seen[seqA] != 1 || (pair && seen[seqB] != 1) || (!pair && seen[seqB] != 0) {
			want := "$A once"
			if pair {
				want = "$A and $B once each"
			}
			return nil, fmt.Errorf("%w: post_processor.%s: want %s", ErrInvalid, field, want)
		}
		return out, nil
	}
	single, err := conv(tj.Single, "single", false)
	if err != nil {
		return nil, err
	}
	pair, err := conv(tj.Pair, "pair", true)
	if err != nil {
		return nil, err
	}
	return &template{single: single, pair: pair}, nil
}

func parseTruncation(t *truncationJSON) (*Truncation, error) {
	if t == nil {
		return nil, nil
	}
	out := &Truncation{MaxLength: t.MaxLength}
	switch t.Strategy {
	case "LongestFirst", "":
		out.Strategy = LongestFirst
	case "OnlyFirst":
		out.Strategy = OnlyFirst
	case "OnlySecond":
		out.Strategy = OnlySecond
	default:
		return nil, fmt.Errorf("%w: truncation.strategy: %q, want LongestFirst, OnlyFirst or OnlySecond", ErrInvalid, t.Strategy)
	}
	d, err := parseDirection(t.Direction, "truncation.direction")
	if err != nil {
		return nil, err
	}
	out.Direction = d
	if t.MaxLength < 0 {
		return nil, fmt.Errorf("%w: truncation.max_length: %d is negative", ErrInvalid, t.MaxLength)
	}
	// stride only shapes the overflowing encodings, which this package does not
	// return; it does not change the main encoding.
	return out, nil
}

func parseDirection(s, field string) (Direction, error) {
	switch s {
	case "Right", "":
		return Right, nil
	case "Left":
		return Left, nil
	}
	return "", fmt.Errorf("%w: %s: %q, want Right or Left", ErrInvalid, field, s)
}

func parsePadding(p *paddingJSON) (*Padding, error) {
	if p == nil {
		return nil, nil
	}
	out := &Padding{ID: p.PadID, TypeID: p.PadTypeID, Token: p.PadToken}
	var name string
	var fixed struct {
		Fixed *int `json:"Fixed"`
	}
	switch {
	case isNull(p.Strategy):
	case json.Unmarshal(p.Strategy, &name) == nil:
		if name != "BatchLongest" {
			return nil, fmt.Errorf("%w: padding.strategy: %q, want BatchLongest or {\"Fixed\": n}", ErrInvalid, name)
		}
	case json.Unmarshal(p.Strategy, &fixed) == nil && fixed.Fixed != nil:
		if *fixed.Fixed < 0 {
			return nil, fmt.Errorf("%w: padding.strategy.Fixed: %d is negative", ErrInvalid, *fixed.Fixed)
		}
		out.Length = *fixed.Fixed
	default:
		return nil, fmt.Errorf("%w: padding.strategy: want BatchLongest or {\"Fixed\": n}", ErrInvalid)
	}
	d, err := parseDirection(p.Direction, "padding.direction")
	if err != nil {
		return nil, err
	}
	out.Direction = d
	if p.PadToMultipleOf != nil {
		if *p.PadToMultipleOf < 0 {
			return nil, fmt.Errorf("%w: padding.pad_to_multiple_of: %d is negative", ErrInvalid, *p.PadToMultipleOf)
		}
		out.MultipleOf = *p.PadToMultipleOf
	}
	return out, nil
}

func parseAdded(list []addedJSON, norm []normStep) (*addedSet, error) {
	a := &addedSet{raw: map[byte][]*addedToken{}, norm: map[rune][]*addedToken{}}
	for i, j := range list {
		if j.Content == "" {
			return nil, fmt.Errorf("%w: added_tokens[%d].content: empty", ErrInvalid, i)
		}
		if j.ID < 0 {
			return nil, fmt.Errorf("%w: added_tokens[%d].id: %d is negative", ErrInvalid, i, j.ID)
		}
		t := &addedToken{
			content: j.Content, id: j.ID, singleWord: j.SingleWord, lstrip: j.LStrip, rstrip: j.RStrip,
			// As in the Rust library, added tokens are normalized unless they
			// are special or say otherwise.
			normalized: boolOr(j.Normalized, !j.Special),
		}
		if t.normalized && len(norm) > 0 {
			chars := appendChars(nil, j.Content, 0)
			chars, _ = applyNorm(norm, chars, nil)
			for _, c := range chars {
				t.normRunes = append(t.normRunes, c.r)
			}
			if len(t.normRunes) == 0 {
				continue // normalizes to nothing: can never match
			}
			a.norm[t.normRunes[0]] = append(a.norm[t.normRunes[0]], t)
		} else {
			a.raw[j.Content[0]] = append(a.raw[j.Content[0]], t)
		}
	}
	// Longest first, so the first candidate that matches is the longest match.
	for _, l := range a.raw {
		sort.SliceStable(l, func(x, y int) bool { return len(l[x].content) > len(l[y].content) })
	}
	for _, l := range a.norm {
		sort.SliceStable(l, func(x, y int) bool { return len(l[x].normRunes) > len(l[y].normRunes) })
	}
	return a, nil
}
