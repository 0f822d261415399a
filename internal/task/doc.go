// Package task turns JSON or image requests into model inputs and model outputs
// into JSON answers, for the task endpoints (POST /v1/tasks/{name}) that sit on
// top of raw OIP v2 inference.
//
// Kinds and their requests:
//
//	text-classification  {"text": "..."} or {"texts": [...]}, optional
//	                      "text_pair"/"text_pairs" -> {"labels": [{label, score}]}
//	                      ranked by softmax score ({"results": [...]} for texts)
//	embedding             {"text": "..."} or {"texts": [...]} -> {"embedding": [...]}
//	                      or {"embeddings": [[...]]}, L2-normalised
//	image-classification  a PNG or JPEG body (Content-Type image/png or image/jpeg)
//	                      or multipart/form-data field "image" -> top-k labels
//	cpu-burn              empty body or {"ms": N} -> {"burned_ms": N, "result": ...}:
//	                      a fixed amount of CPU work, no model (the thesis's
//	                      CPU-intensive function, for experiments)
//
// A Task is built once per instance by New, which checks that the model's
// inputs and outputs fit the task and loads its extra files (tokenizer.json,
// labels.txt) from the function's folder; a misfit is an error naming the rule,
// reported at deploy time. Handle then serves requests; a request at fault gets
// an *InputError (HTTP 400) naming the field and the rule, never a panic.
package task
