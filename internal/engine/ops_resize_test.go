package engine

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/onnx/onnxpb"
	"github.com/spindleml/spindle/internal/tensor"
)

func TestResize(t *testing.T) {
	x12 := f32([]float32{1, 2}, 1, 1, 1, 2)
	x13 := f32([]float32{1, 2, 3}, 1, 1, 1, 3)
	x14 := f32([]float32{1, 2, 3, 4}, 1, 1, 1, 4)
	scales := func(s float32) *tensor.Tensor { return f32([]float32{1, 1, 1, s}, 4) }
	sizes := func(n int64) *tensor.Tensor { return i64([]int64{1, 1, 1, n}, 4) }
	mode := func(m string) modelgen.Attr { return modelgen.AString("mode", m) }
	coord := func(c string) modelgen.Attr { return modelgen.AString("coordinate_transformation_mode", c) }
	runOpTests(t, "Resize", []opTest{
		// half_pixel: output i reads input (i+0.5)/2-0.5 = -0.25, 0.25, 0.75, 1.25.
		{name: "nearest half_pixel", inputs: []*tensor.Tensor{x12, nil, scales(2)}, want: []*tensor.Tensor{f32([]float32{1, 1, 2, 2}, 1, 1, 1, 4)}},
		{name: "nearest constant scales", inputs: []*tensor.Tensor{x12, nil, scales(2)}, consts: []int{2},
			want: []*tensor.Tensor{f32([]float32{1, 1, 2, 2}, 1, 1, 1, 4)}},
		{name: "nearest round_prefer_ceil", attrs: []modelgen.Attr{modelgen.AString("nearest_mode", "round_prefer_ceil")},
			inputs: []*tensor.Tensor{x12, nil, nil, sizes(3)}, // reads -0.1667, 0.5, 1.1667
			want:   []*tensor.Tensor{f32([]float32{1, 2, 2}, 1, 1, 1, 3)}},
		{name: "nearest tf_half_pixel_for_nn shrinking", attrs: []modelgen.Attr{coord("tf_half_pixel_for_nn")},
			inputs: []*tensor.Tensor{x14, nil, scales(0.5)}, want: []*tensor.Tensor{f32([]float32{2, 4}, 1, 1, 1, 2)}},
		{name: "linear half_pixel clamps", attrs: []modelgen.Attr{mode("linear")}, inputs: []*tensor.Tensor{x13, nil, nil, sizes(6)},
			want: []*tensor.Tensor{f32([]float32{1, 1.25, 1.75, 2.25, 2.75, 3}, 1, 1, 1, 6)}},
		{name: "linear align_corners", attrs: []modelgen.Attr{mode("linear"), coord("align_corners")},
			inputs: []*tensor.Tensor{x13, nil, nil, sizes(5)}, consts: []int{3},
			want: []*tensor.Tensor{f32([]float32{1, 1.5, 2, 2.5, 3}, 1, 1, 1, 5)}},
		{name: "linear both axes", attrs: []modelgen.Attr{mode("linear"), coord("align_corners")},
			inputs: []*tensor.Tensor{f32([]float32{0, 2, 4, 6}, 1, 1, 2, 2), nil, nil, i64([]int64{1, 1, 3, 3}, 4)},
			want:   []*tensor.Tensor{f32([]float32{0, 1, 2, 2, 3, 4, 4, 5, 6}, 1, 1, 3, 3)}},
		// roi [0, 1.5] on the last axis: reads 0, 2.25 and 4.5, which is outside.
		{name: "tf_crop_and_resize extrapolates", attrs: []modelgen.Attr{mode("linear"), coord("tf_crop_and_resize"), modelgen.AFloat("extrapolation_value", 10)},
			inputs: []*tensor.Tensor{x14, f32([]float32{0, 0, 0, 0, 1, 1, 1, 1.5}, 8), nil, sizes(3)},
			want:   []*tensor.Tensor{f32([]float32{1, 3.25, 10}, 1, 1, 1, 3)}},
		// Inside, cubic convolution reproduces a ramp; at 0.5 and 6.5 the taps
		// -1 and 8 read the edge values (0 and 7), so the ramp bends there:
		// 0*c0 + 0*c1 + 1*c2 + 2*c3 with c = (-0.09375, 0.59375, 0.59375, -0.09375).
		{name: "cubic on a ramp", attrs: []modelgen.Attr{mode("cubic"), coord("align_corners")},
			inputs: []*tensor.Tensor{f32(seq(0, 8), 1, 1, 1, 8), nil, nil, sizes(15)},
			want:   []*tensor.Tensor{f32([]float32{0, 0.40625, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.59375, 7}, 1, 1, 1, 15)}},
		{name: "opset 18 axes", opset: 18, attrs: []modelgen.Attr{modelgen.AInts("axes", 3)}, inputs: []*tensor.Tensor{x12, nil, f32([]float32{2}, 1)},
			want: []*tensor.Tensor{f32([]float32{1, 1, 2, 2}, 1, 1, 1, 4)}},
		{name: "opset 18 not_larger", opset: 18, attrs: []modelgen.Attr{modelgen.AInts("axes", 2, 3), modelgen.AString("keep_aspect_ratio_policy", "not_larger")},
			inputs: []*tensor.Tensor{x12, nil, nil, i64([]int64{4, 4}, 2)}, // scale min(4/1, 4/2) = 2
			want:   []*tensor.Tensor{f32([]float32{1, 1, 2, 2, 1, 1, 2, 2}, 1, 1, 2, 4)}},
		// Resize-10: asymmetric coordinates, and nearest rounds down when enlarging.
		{name: "opset 10", opset: 10, inputs: []*tensor.Tensor{x13, scales(2)},
			want: []*tensor.Tensor{f32([]float32{1, 1, 2, 2, 3, 3}, 1, 1, 1, 6)}},
	})
	runOpErrTests(t, "Resize", []opErrTest{
		{name: "antialias", opset: 18, attrs: []modelgen.Attr{modelgen.AInt("antialias", 1)}, inputs: []*tensor.Tensor{x12, nil, scales(2)},
			unsupported: true, fragments: []string{"antialias"}},
		{name: "mode", attrs: []modelgen.Attr{mode("area")}, inputs: []*tensor.Tensor{x12, nil, scales(2)}, fragments: []string{"mode", "area"}},
		{name: "scales and sizes", inputs: []*tensor.Tensor{x12, nil, scales(2), sizes(4)}, fragments: []string{"exactly one"}},
		{name: "scales length", inputs: []*tensor.Tensor{x12, nil, f32([]float32{2}, 1)}, fragments: []string{"scales", "one per axis"}},
		{name: "negative scale", inputs: []*tensor.Tensor{x12, nil, scales(-1)}, fragments: []string{"scales", "> 0"}},
	})
}

func TestUpsample(t *testing.T) {
	x := f32([]float32{1, 2, 3, 4}, 1, 1, 2, 2)
	runOpTests(t, "Upsample", []opTest{
		{name: "opset 9 nearest", opset: 9, inputs: []*tensor.Tensor{x, f32([]float32{1, 1, 1, 2}, 4)},
			want: []*tensor.Tensor{f32([]float32{1, 1, 2, 2, 3, 3, 4, 4}, 1, 1, 2, 4)}},
		// Asymmetric linear: reads 0, 0.5, 1, 1.5 (clamped to 1).
		{name: "opset 7 linear, scales attribute", opset: 7,
			attrs: []modelgen.Attr{modelgen.AString("mode", "linear"),
				{Name: proto.String("scales"), Type: onnxpb.AttributeProto_FLOATS.Enum(), Floats: []float32{1, 1, 1, 2}}},
			inputs: []*tensor.Tensor{x}, want: []*tensor.Tensor{f32([]float32{1, 1.5, 2, 2, 3, 3.5, 4, 4}, 1, 1, 2, 4)}},
	})
}

// TestResizeNearestOnePass checks the one-pass nearest resize against the
// separable path (one resampling per axis with the same taps), for up- and
// downsampling, every nearest_mode and coordinate mode that gathers, at 1
// and 3 threads.
func TestResizeNearestOnePass(t *testing.T) {
	shapes := []struct{ in, out []int }{
		{[]int{1, 3, 5, 7}, []int{1, 3, 10, 14}},
		{[]int{2, 2, 9, 8}, []int{2, 2, 4, 3}},
		{[]int{1, 4, 6, 6}, []int{1, 4, 13, 5}},
		{[]int{3, 17}, []int{6, 40}},
		{[]int{64}, []int{7}},
		{[]int{1, 2, 3, 40}, []int{1, 2, 6, 80}}, // rows doubled with kernels.Interleave2
		{[]int{1, 2, 4, 9}, []int{1, 2, 8, 9}},   // rows copied whole
	}
	for _, coord := range []string{"asymmetric", "half_pixel", "align_corners", "pytorch_half_pixel"} {
		for _, nearest := range []string{"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"} {
			r := &resizeAttrs{mode: "nearest", coord: coord, nearest: nearest}
			for _, sh := range shapes {
				x := randTensor(uint64(len(sh.in)), sh.in...)
				want := x
				var idx [][]int
				for ax := range sh.out {
					s := float64(sh.out[ax]) / float64(sh.in[ax])
					taps, w, ntap, _ := r.axisTaps(sh.in[ax], sh.out[ax], s, 0, 1)
					idx = append(idx, taps)
					want = resizeAxis(want, ax, sh.out[ax], taps, w, ntap, 0)
				}
				for _, threads := range []int{1, 3} {
					got := resizeNearest(x, sh.out, idx, threads)
					if d := maxDiff(got, want); d != 0 {
						t.Errorf("%s %s %v -> %v, %d threads: differs by %g", coord, nearest, sh.in, sh.out, threads, d)
					}
				}
			}
		}
	}
}
