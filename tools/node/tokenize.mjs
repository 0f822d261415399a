// Reference tokenizer for Spindle's Go tokenizer tests (internal/tokenizer).
//
// Reads one JSON object on stdin:
//   {"tokenizer": "/path/to/tokenizer.json",
//    "items": [{"text": "...", "text_pair": "..." (optional),
//               "pad_to": 32 (optional),
//               "slices": [[start, end, which], ...] (optional)}]}
// and prints one JSON object on stdout:
//   {"results": [{"input_ids": [...], "attention_mask": [...],
//                 "token_type_ids": [...], "tokens": [...],
//                 "ids_a": [...], "ids_b": [...] | null,
//                 "slices": ["...", ...]}]}
//
// The tokenizer is built by @huggingface/transformers from the local
// tokenizer.json alone (no network, no model hub). Encodings are never
// truncated here: transformers.js truncates the finished sequence, dropping the
// final [SEP], where the Rust tokenizers library (what the models were trained
// with) truncates the texts before adding special tokens. The Go test derives
// the truncated reference from ids_a and ids_b instead.
//
// transformers.js reports no offsets, so "slices" lets the Go test check its
// UTF-16 offsets against JavaScript's own string indexing: each
// [start, end, which] comes back as text.slice(start, end), or
// text_pair.slice(start, end) when which is 1.
import { BertTokenizer } from '@huggingface/transformers';
import fs from 'node:fs';

const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const tokenizerJSON = JSON.parse(fs.readFileSync(input.tokenizer, 'utf8'));
// A minimal tokenizer_config: no model_max_length, so nothing is truncated;
// the pad token is the one tokenizer.json's padding section names.
const tok = new BertTokenizer(tokenizerJSON, {
  pad_token: tokenizerJSON.padding?.pad_token ?? '[PAD]',
});

const results = input.items.map((item) => {
  const pair = item.text_pair ?? null;
  const opts = { return_tensor: false, add_special_tokens: true };
  if (pair !== null) opts.text_pair = pair;
  if (item.pad_to) {
    opts.padding = 'max_length';
    opts.max_length = item.pad_to;
  }
  const enc = tok(item.text, opts);
  const plain = { return_tensor: false, add_special_tokens: false };
  const out = {
    input_ids: enc.input_ids,
    attention_mask: enc.attention_mask,
    token_type_ids: enc.token_type_ids,
    tokens: tok.tokenize(item.text, pair === null ? {} : { pair, add_special_tokens: false }),
    ids_a: tok(item.text, plain).input_ids,
    ids_b: pair === null ? null : tok(pair, plain).input_ids,
  };
  if (item.slices) {
    out.slices = item.slices.map(([s, e, which]) => (which === 1 ? pair : item.text).slice(s, e));
  }
  return out;
});
process.stdout.write(JSON.stringify({ results }));
