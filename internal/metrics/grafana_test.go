package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// grafanaDashboard is the part of a Grafana dashboard JSON the test reads.
type grafanaDashboard struct {
	Title  string `json:"title"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestGrafanaDashboardMetricsExist checks that every metric the repository's
// Grafana dashboard (deploy/grafana) queries is one the gateway exports,
// histograms by their _bucket, _sum and _count series, and that the
// dashboard charts what issue 17 lists: rate, latency quantiles, errors,
// vCPUs, instances, memory, cold starts and scaling decisions.
func TestGrafanaDashboardMetricsExist(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/spindle-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	m := New()
	record(m)
	m.ObserveBatch("resnet", 4)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range fams {
		name := f.GetName()
		exported[name] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				exported[name+s] = true
			}
		}
	}
	metric := regexp.MustCompile(`\b(spindle_[a-z_]+|process_[a-z_]+|go_[a-z_]+)\b`)
	var queried []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := metric.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("panel %q queries %s, which the gateway does not export", p.Title, n)
				}
				queried = append(queried, n)
			}
		}
	}
	for _, want := range []string{
		"spindle_requests_total", "spindle_request_duration_seconds_bucket", "spindle_vcpus", "spindle_instances",
		"spindle_memory_rss_bytes", "spindle_memory_pss_bytes", "spindle_instance_starts_total",
		"spindle_cold_start_seconds_bucket", "spindle_scaling_decisions_total",
	} {
		if !slices.Contains(queried, want) {
			t.Errorf("the dashboard charts nothing from %s", want)
		}
	}
}

// TestPrometheusScrapeConfig checks that the example scrape config parses
// and scrapes the gateway's /metrics at an interval the dashboard's rates
// can use.
func TestPrometheusScrapeConfig(t *testing.T) {
	b, err := os.ReadFile("../../deploy/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Global struct {
			ScrapeInterval     string `yaml:"scrape_interval"`
			EvaluationInterval string `yaml:"evaluation_interval"`
		} `yaml:"global"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			Authorization struct {
				Type            string `yaml:"type"`
				CredentialsFile string `yaml:"credentials_file"`
			} `yaml:"authorization"`
		} `yaml:"scrape_configs"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	if d, err := time.ParseDuration(cfg.Global.ScrapeInterval); err != nil || d <= 0 || d > 15*time.Second {
		t.Errorf("scrape_interval %q: want a duration of at most 15 s", cfg.Global.ScrapeInterval)
	}
	if len(cfg.ScrapeConfigs) != 1 {
		t.Fatalf("%d scrape configs, want the gateway's", len(cfg.ScrapeConfigs))
	}
	sc := cfg.ScrapeConfigs[0]
	if sc.JobName != "spindle" || sc.MetricsPath != "/metrics" || len(sc.StaticConfigs) != 1 || len(sc.StaticConfigs[0].Targets) != 1 {
		t.Errorf("scrape config %+v: want job spindle on /metrics with one target", sc)
	}
	if sc.Authorization.Type != "Bearer" || !strings.HasSuffix(sc.Authorization.CredentialsFile, "admin.key") {
		t.Errorf("authorization %+v: want the admin key file as a bearer token", sc.Authorization)
	}
}
