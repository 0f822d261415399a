// Package artifact writes compiled model artifacts: an ONNX model whose
// constant MatMul and Gemm weights also appear in the matrix kernels' packed
// layout, with every initializer page-aligned in one external data file.
//
// Loaded with onnx.Mmap, such a model needs neither a packing pass nor a
// private packed copy per process: the engine multiplies with the mapped
// companions in place (engine.PackedSuffix), so processes serving the model
// share every weight page (issue 4, "compiled model artifact"). The artifact
// is still a valid ONNX model; other runtimes ignore the extra initializers.
package artifact
