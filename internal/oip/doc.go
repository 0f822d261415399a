// Package oip encodes and decodes the JSON bodies of the Open Inference Protocol
// (KServe's "V2 inference protocol", REST flavour), converting tensor data to and
// from Spindle tensors.
//
// The types follow the protocol's REST specification
// (kserve/open-inference-protocol, specification/protocol/inference_rest.md):
// inference request and response, model metadata and error bodies, with the
// spec's JSON field names. Only JSON tensor data is supported; the binary data
// extension is rejected with a clear error.
//
// Decoding is strict where the spec is, and says where the body is wrong: every
// error DecodeRequest returns for a bad body is a *FieldError naming the JSON
// path ("inputs[0].data[3]") and the rule, and wraps ErrBadRequest. Member names
// match exactly (not case-insensitively, as encoding/json would); unknown
// members are ignored, as the spec allows extensions.
//
// JSON has no NaN or infinity. Encoders write a non-finite float as null, and
// DecodeResponse reads null in float data as NaN; DecodeRequest rejects null,
// since a request carrying it is far more likely a client bug than a deliberate
// NaN input.
package oip
