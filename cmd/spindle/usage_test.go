package main

import "testing"

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"", 0, false},
		{"0", 0, false}, // no limit, as --memory 0 and --max-memory 0 document
		{"0GiB", 0, false},
		{"1000000", 1000000, false},
		{"512MiB", 512 << 20, false},
		{"2GiB", 2 << 30, false},
		{"1.5G", 3 << 29, false},
		{"2 gb", 2e9, false},
		{"0.5", 0, true}, // neither nothing nor a whole byte
		{"-1", 0, true},
		{"12XB", 0, true},
		{"GiB", 0, true},
		{"9000000TiB", 0, true},
	}
	for _, tc := range tests {
		got, err := parseBytes(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestFlagsCheckedLocally checks flags that are refused before any gateway is
// asked: exit 2 naming the flag, even with no gateway listening.
func TestFlagsCheckedLocally(t *testing.T) {
	const noGateway = "--gateway=http://127.0.0.1:1"
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"scale vcpu not a multiple", []string{"scale", "f", "--vcpu", "0.3", noGateway}, "--vcpu 0.3: must be a positive multiple of 0.25"},
		{"scale nothing to change", []string{"scale", "f", noGateway}, "set --vcpu, --memory or both"},
		{"scale vcpu zero", []string{"scale", "f", "--vcpu", "0", noGateway}, "--vcpu 0: must be a positive multiple"},
		{"up stem cells negative", []string{"up", "--stem-cells", "-1", "--home", "/nonexistent/never"}, "--stem-cells -1: must be between 0 and 64"},
		{"scale memory too small", []string{"scale", "f", "--vcpu", "1", "--memory", "1KiB", noGateway}, `--memory "1KiB": memory: 1024 bytes must be 0 (no limit) or at least`},
		{"scale memory unit", []string{"scale", "f", "--vcpu", "1", "--memory", "2XB", noGateway}, `--memory "2XB": unknown unit`},
		{"tenant max-memory", []string{"tenant", "create", "x", "--max-memory", "0.5", noGateway}, `--max-memory "0.5": must be 0 (no limit) or between`},
		{"logs bytes", []string{"logs", "f", "--bytes", "0", noGateway}, "--bytes: 0 must be positive"},
		{"sgemm time", []string{"bench", "sgemm", "--time", "0s"}, "--time 0s: must be positive"},
		{"kube dev nodes", []string{"kube", "dev", "--nodes", "0"}, "--nodes: must be 1 to 1000"},
		{"kube dev node memory", []string{"kube", "dev", "--node-memory", "lots"}, `--node-memory: "lots": want a positive Kubernetes quantity`},
		{"kube image binary", []string{"kube", "image", "-o", "/tmp/never.tar"}, "--binary: required"},
		{"kube image dynamic binary", []string{"kube", "image", "--binary", "/bin/sh", "-o", "/tmp/never.tar"}, "not a static binary"},
		{"operator simulated load", []string{"operator", "--kubeconfig", "/nonexistent/kubeconfig"}, "--kubeconfig: stat /nonexistent/kubeconfig"},
		{"node agent node", []string{"node-agent", "--node", ""}, "--node: required"},
		{"operator gateway stats url", []string{"operator", "--gateway-stats", "10.0.0.5:9090"}, `--gateway-stats: "10.0.0.5:9090": want a gateway's admin URL`},
		{"operator gateway selector", []string{"operator", "--gateway-selector", "a b"}, `--gateway-selector: "a b": want a label selector`},
		{"operator gateway port", []string{"operator", "--gateway-admin-port", "0"}, "--gateway-admin-port: must be 1 to 65535, got 0"},
		{"gateway namespace", []string{"gateway"}, "--namespace: required"},
		{"gateway tenant keys", []string{"gateway", "--namespace", "default", "--tenant-keys", "/nonexistent/keys.json"}, "--tenant-keys: open /nonexistent/keys.json"},
		{"gateway max waiting", []string{"gateway", "--namespace", "default", "--max-waiting", "0"}, "--max-waiting: must be at least 1, got 0"},
		{"kube dev processes nodes", []string{"kube", "dev", "--processes", "--nodes", "300"}, "--nodes: at most 254 with --processes, got 300"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantExit2(t, tc.msg, tc.args...) })
	}
}
