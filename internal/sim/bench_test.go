package sim

import (
	"testing"

	"github.com/spindleml/spindle/internal/autoscale"
)

// benchScenario runs one scenario per iteration and reports simulated
// requests and events per second of wall time.
func benchScenario(b *testing.B, name string, o Options) {
	for _, p := range autoscale.Policies {
		b.Run(string(p), func(b *testing.B) {
			cfg, err := Scenario(name, p, o)
			if err != nil {
				b.Fatal(err)
			}
			var s Summary
			for b.Loop() {
				r, err := Run(cfg)
				if err != nil {
					b.Fatal(err)
				}
				s = r.Summary
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(s.Requests), "requests")
			b.ReportMetric(float64(s.Events)/sec, "events/s")
		})
	}
}

// BenchmarkThesis is the thesis scenario: one node, one function, 300 s.
func BenchmarkThesis(b *testing.B) { benchScenario(b, "thesis", Options{Seed: 1}) }

// BenchmarkThousandNodes is 1,000 64-core nodes, 4,000 functions of Poisson
// load (20/s each on average), 300 s of virtual time: about 24 million
// requests per policy. Run it with -benchtime 1x.
func BenchmarkThousandNodes(b *testing.B) {
	benchScenario(b, "poisson", Options{Seed: 1, Nodes: 1000})
}
