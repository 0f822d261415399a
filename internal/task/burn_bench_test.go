package task

import (
	"context"
	"testing"
)

// BenchmarkBurnUnit times one unit of cpu-burn work: DefaultItersPerMS is set
// so that this is about 1 ms on the reference machine.
func BenchmarkBurnUnit(b *testing.B) {
	for b.Loop() {
		Burn(context.Background(), 1, DefaultItersPerMS)
	}
}
