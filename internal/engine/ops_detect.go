package engine

import (
	"fmt"
	"slices"

	"github.com/spindleml/spindle/internal/tensor"
)

// Detection post-processing (issue 13, item 5).

func init() {
	register("NonMaxSuppression", newNMS)
}

// newNMS selects, per batch and class, boxes in order of falling score,
// skipping those whose score is not above score_threshold and those
// overlapping an already selected box by more than iou_threshold (IoU),
// at most max_output_boxes_per_class of them. Output: [selected 3] int64
// rows of (batch, class, box), batch by batch, class by class, best first.
// Equal scores go in box order.
func newNMS(n *Node) (Kernel, error) {
	center := n.Int("center_point_box", 0)
	if center != 0 && center != 1 {
		return nil, fmt.Errorf("attribute center_point_box: %d, must be 0 or 1", center)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		if err := checkInputs(in, 2, 5); err != nil {
			return nil, err
		}
		boxes, scores := in[0], in[1]
		if boxes.DType != tensor.Float32 || len(boxes.Shape) != 3 || boxes.Shape[2] != 4 {
			return nil, fmt.Errorf("input boxes: %s, must be float32 [batches boxes 4]", boxes)
		}
		B, N := boxes.Shape[0], boxes.Shape[1]
		if scores.DType != tensor.Float32 || len(scores.Shape) != 3 || scores.Shape[0] != B || scores.Shape[2] != N {
			return nil, fmt.Errorf("input scores: %s, must be float32 [%d classes %d]", scores, B, N)
		}
		C := scores.Shape[1]
		scalar := func(i int, name string) (*tensor.Tensor, error) {
			if i >= len(in) || in[i] == nil {
				return nil, nil
			}
			if in[i].Len() != 1 {
				return nil, fmt.Errorf("input %s: shape %s, must hold one value", name, tensor.ShapeString(in[i].Shape))
			}
			return in[i], nil
		}
		maxOut := int64(0)
		if t, err := scalar(2, "max_output_boxes_per_class"); err != nil {
			return nil, err
		} else if t != nil {
			v, err := castTensor(t, tensor.Int64)
			if err != nil {
				return nil, fmt.Errorf("input max_output_boxes_per_class: %w", err)
			}
			maxOut = max(v.I64[0], 0)
		}
		iou, scoreMin, useScore := float32(0), float32(0), false
		if t, err := scalar(3, "iou_threshold"); err != nil {
			return nil, err
		} else if t != nil {
			if t.DType != tensor.Float32 {
				return nil, fmt.Errorf("input iou_threshold: %s, must be float32", t)
			}
			iou = t.F32[0]
			if iou < 0 || iou > 1 {
				return nil, fmt.Errorf("input iou_threshold: %v, must be in [0, 1]", iou)
			}
		}
		if t, err := scalar(4, "score_threshold"); err != nil {
			return nil, err
		} else if t != nil {
			if t.DType != tensor.Float32 {
				return nil, fmt.Errorf("input score_threshold: %s, must be float32", t)
			}
			scoreMin, useScore = t.F32[0], true
		}
		// corners[i] is box i as (ymin, xmin, ymax, xmax).
		corners := make([][4]float32, B*N)
		for i := range corners {
			b := boxes.F32[4*i : 4*i+4]
			if center == 1 {
				xc, yc, w, h := b[0], b[1], b[2], b[3]
				corners[i] = [4]float32{yc - h/2, xc - w/2, yc + h/2, xc + w/2}
			} else {
				corners[i] = [4]float32{min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])}
			}
		}
		overlaps := func(a, b [4]float32) bool {
			areaA := (a[2] - a[0]) * (a[3] - a[1])
			areaB := (b[2] - b[0]) * (b[3] - b[1])
			if areaA <= 0 || areaB <= 0 {
				return false
			}
			ih := min(a[2], b[2]) - max(a[0], b[0])
			iw := min(a[3], b[3]) - max(a[1], b[1])
			if ih <= 0 || iw <= 0 {
				return false
			}
			inter := ih * iw
			return inter/(areaA+areaB-inter) > iou
		}
		var sel []int64
		order := make([]int, 0, N)
		for b := range B {
			for c := range C {
				sc := scores.F32[(b*C+c)*N : (b*C+c+1)*N]
				order = order[:0]
				for i, s := range sc {
					if !useScore || s > scoreMin {
						order = append(order, i)
					}
				}
				slices.SortStableFunc(order, func(x, y int) int {
					switch {
					case sc[x] > sc[y]:
						return -1
					case sc[x] < sc[y]:
						return 1
					}
					return 0
				})
				var kept []int
				for _, i := range order {
					if int64(len(kept)) >= maxOut {
						break
					}
					ok := true
					for _, k := range kept {
						if overlaps(corners[b*N+i], corners[b*N+k]) {
							ok = false
							break
						}
					}
					if ok {
						kept = append(kept, i)
						sel = append(sel, int64(b), int64(c), int64(i))
					}
				}
			}
		}
		return []*tensor.Tensor{tensor.FromI64(sel, len(sel)/3, 3)}, nil
	}, nil
}
