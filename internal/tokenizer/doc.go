// Package tokenizer turns text into the token ids, type ids and attention masks a
// BERT-style model reads, from a HuggingFace tokenizer.json.
//
// It implements the WordPiece pipeline of the Rust `tokenizers` library, which is
// what BERT-family models (all-MiniLM, bge, e5, ...) were trained with:
//
//	added tokens ([CLS], [MASK], ... matched in the raw text)
//	-> normalizer   BertNormalizer: clean text, space out CJK ideographs,
//	                strip accents (NFD, drop Mn), lowercase; or a Sequence of
//	                NFD, StripAccents, Lowercase and BertNormalizer
//	-> pre-tokenizer BertPreTokenizer: split on whitespace, isolate punctuation
//	-> model        WordPiece: greedy longest-match-first sub-words
//	-> truncation   longest_first / only_first / only_second, before special tokens
//	-> post-processor TemplateProcessing or BertProcessing: [CLS] $A [SEP] $B [SEP]
//	-> padding      to a fixed length or to the longest encoding of a batch
//
// Truncation and padding come from tokenizer.json and can be overridden per call
// with Options. A Tokenizer is immutable after Load and safe for concurrent use.
//
// # Offsets
//
// Encoding.Offsets are byte offsets into the original Go string, so
// text[o[0]:o[1]] is the source of a token; special and padding tokens get
// [0, 0]. The Rust library reports the same byte offsets; its Python binding
// converts them to code-point indices and JavaScript code works in UTF-16 code
// units: ConvertOffsets gives either (Runes, UTF16).
//
// # Where this differs from transformers.js
//
// The tests compare against @huggingface/transformers (tools/node/tokenize.mjs):
// ids, type ids and masks agree on the test corpus and on random text. Where
// transformers.js and the Rust library disagree, this package follows Rust:
//   - truncation removes text tokens and keeps the final [SEP]
//     (transformers.js cuts the finished sequence, [SEP] included);
//   - CJK ideographs outside the Basic Multilingual Plane (U+20000...) are spaced
//     out like the others (transformers.js tests UTF-16 code units and misses them);
//   - unassigned code points (category Cn) are removed with control characters;
//   - EncodePair with an empty second text still adds the pair's [SEP]
//     (transformers.js treats "" as no pair);
//   - accents are stripped before lowercasing, and lowercasing maps one code point
//     at a time, so a word-final capital sigma becomes σ, not ς.
package tokenizer
