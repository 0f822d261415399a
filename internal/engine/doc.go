// Package engine executes ONNX graphs: it compiles a loaded model into a
// topologically ordered plan of kernels once, then runs that plan for any number of
// concurrent requests.
//
// A compiled Model is immutable, so one Model serves every worker goroutine of a
// function instance (the thesis's shared-model worker pool, ch. 5.1). Weights are
// never written, because they may be views into a read-only mapping.
//
// Quantized models (issue 14) take one of three forms, and all of them end on
// the int8 kernels (kernels.QGemm: u8 x s8 -> s32, exact):
//
//   - dynamic (ONNX Runtime's quantize_dynamic, Optimum): DynamicQuantizeLinear,
//     then MatMulInteger, Cast and the scale Mul (contrib DynamicQuantizeMatMul
//     and MatMulIntegerToFloat expand to the same ops, contrib_quant.go); the
//     fuser makes each such group, with the bias, activation and residual after
//     it, one spindle.QMatMul step (fuse_quant.go);
//   - QDQ (quantize_static's default): DequantizeLinear feeding a MatMul or Conv
//     is rewritten before compile into the integer form (qdq.go), which the fuser
//     runs as spindle.QMatMul or spindle.QConv;
//   - QOperator (QLinearConv, QLinearMatMul with constant weights): their own
//     fast kernels, requantised exactly as the ops define.
//
// Constant weights are packed once (kernels.PackQB, or an artifact's
// PackedQSuffix companion mapped in place); zero points are corrected after
// the integer sums with the operands' row and column sums.
package engine
