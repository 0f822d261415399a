package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimThesisJSON(t *testing.T) {
	out := mustRun(t, "sim", "--scenario", "thesis", "--duration", "90s", "--json")
	var rep simReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if rep.Scenario != "thesis" || rep.Nodes != 1 || rep.Cores != 64 || rep.DurationS != 90 || len(rep.Runs) != 4 {
		t.Fatalf("report %+v", rep)
	}
	runs := map[string]simRun{}
	for _, r := range rep.Runs {
		runs[r.Policy] = r
		if r.Summary.Requests == 0 || r.Summary.Requests != r.Summary.Completed+r.Summary.Dropped+r.Summary.Unfinished {
			t.Errorf("%s: %+v", r.Policy, r.Summary)
		}
		if r.Series != nil {
			t.Errorf("%s: series without --series", r.Policy)
		}
	}
	if h, p := runs["hybrid"].Summary, runs["hpa"].Summary; h.PeakMemory >= p.PeakMemory {
		t.Errorf("peak memory: hybrid %d, hpa %d", h.PeakMemory, p.PeakMemory)
	}
	if !strings.Contains(runs["static"].Spec, "vcpus=56") {
		t.Errorf("static spec %q", runs["static"].Spec)
	}
}

func TestSimTableAndCSV(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "series")
	out := mustRun(t, "sim", "--policy", "hybrid,predictive", "--duration", "30s", "--param", "slo=300ms", "--csv", dir)
	for _, want := range []string{"scenario thesis: 1 node x 64 cores, 1 function, 30s of load", "over SLO 300ms", "hybrid", "predictive"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hpa") {
		t.Errorf("table has a policy not asked for:\n%s", out)
	}
	f, err := os.Open(filepath.Join(dir, "thesis-predictive.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 31 || rows[0][0] != "t_s" || rows[0][5] != "vcpus" || rows[1][0] != "1" {
		t.Errorf("csv: %d rows, first %v %v", len(rows), rows[0], rows[min(1, len(rows)-1)])
	}
}

func TestSimBadFlags(t *testing.T) {
	tests := []struct {
		msg  string
		args []string
	}{
		{`--scenario "nope": must be one of thesis, poisson, step, burst`, []string{"--scenario", "nope"}},
		{`--policy: bad autoscale spec: policy "knative"`, []string{"--policy", "hybrid,knative"}},
		{`--policy "hpa": given twice`, []string{"--policy", "hpa,hpa"}},
		{"--nodes 0: must be positive", []string{"--nodes", "0"}},
		{"--duration -1s: must be positive", []string{"--duration", "-1s"}},
		{"bogus: unknown parameter", []string{"--param", "bogus=1"}},
		{"hybrid: bad autoscale spec: slo: must be > 0", []string{"--param", "slo=0s"}},
		{`--service: bad distribution: "gamma:1s"`, []string{"--service", "gamma:1s"}},
		{"want 0 argument(s)", []string{"extra"}},
		{"unknown flag: --bogus", []string{"--bogus"}},
	}
	for _, tc := range tests {
		t.Run(tc.msg, func(t *testing.T) {
			wantExit2(t, tc.msg, append([]string{"sim"}, tc.args...)...)
		})
	}
}
