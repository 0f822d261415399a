package bench

import (
	"fmt"
	"os"
	"testing"

	"github.com/spindleml/spindle/internal/onnx"
)

func TestZZDump(t *testing.T) {
	p := os.Getenv("DUMP_MODEL")
	if p == "" {
		t.Skip()
	}
	src, err := onnx.Load(p, onnx.Mmap)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range src.Proto.GetGraph().GetNode() {
		if i > 140 {
			break
		}
		shp := ""
		for _, in := range n.GetInput() {
			if w, ok := src.Weights[in]; ok {
				shp += fmt.Sprint(w.Shape)
			} else {
				shp += "."
			}
		}
		fmt.Println(i, n.GetOpType(), n.GetInput(), n.GetOutput(), shp)
	}
}
