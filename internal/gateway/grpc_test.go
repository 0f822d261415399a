package gateway

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spindleml/spindle/internal/oip/oipgrpc"
	"github.com/spindleml/spindle/internal/tenant"
)

// startGRPC serves tg's gRPC API on a loopback port and returns its address.
func startGRPC(t *testing.T, tg *testGateway) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tg.ServeGRPC(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ln.Addr().String()
}

func f32le(v ...float32) []byte {
	var b []byte
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

// TestGRPC calls every method of the gRPC service with Spindle's generated
// Go stub: health, metadata, readiness (a wrong version is not ready), and
// inference from raw contents and from typed contents, whose results are
// the REST API's; errors come back as the status codes that mean the same.
func TestGRPC(t *testing.T) {
	tg := newTestGateway(t, Config{})
	tg.deploy(t, "add", addModel())
	conn, err := grpc.NewClient(startGRPC(t, tg), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := oipgrpc.NewGRPCInferenceServiceClient(conn)
	ctx := context.Background()
	if r, err := c.ServerLive(ctx, &oipgrpc.ServerLiveRequest{}); err != nil || !r.Live {
		t.Errorf("ServerLive: %v %v", r, err)
	}
	if r, err := c.ServerMetadata(ctx, &oipgrpc.ServerMetadataRequest{}); err != nil || r.Name != "spindle" || len(r.Extensions) == 0 {
		t.Errorf("ServerMetadata: %v %v", r, err)
	}
	for _, v := range []struct {
		version string
		ready   bool
	}{{"", true}, {"1", true}, {"2", false}} {
		if r, err := c.ModelReady(ctx, &oipgrpc.ModelReadyRequest{Name: "add", Version: v.version}); err != nil || r.Ready != v.ready {
			t.Errorf("ModelReady version %q: %v %v, want %v", v.version, r, err, v.ready)
		}
	}
	md, err := c.ModelMetadata(ctx, &oipgrpc.ModelMetadataRequest{Name: "add"})
	if err != nil || md.Name != "add" || md.Inputs[0].Datatype != "FP32" || md.Inputs[0].Shape[0] != 4 || md.Outputs[0].Name != "y" {
		t.Errorf("ModelMetadata: %v %v", md, err)
	}
	in := &oipgrpc.ModelInferRequest_InferInputTensor{Name: "x", Datatype: "FP32", Shape: []int64{4}}
	r, err := c.ModelInfer(ctx, &oipgrpc.ModelInferRequest{ModelName: "add", Id: "g1", Inputs: []*oipgrpc.ModelInferRequest_InferInputTensor{in},
		RawInputContents: [][]byte{f32le(1, 2, 3, 4)}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Id != "g1" || len(r.Outputs) != 1 || r.Outputs[0].Name != "y" || string(r.RawOutputContents[0]) != string(f32le(2, 3, 4, 5)) {
		t.Errorf("ModelInfer: %v", r)
	}
	typed := &oipgrpc.ModelInferRequest_InferInputTensor{Name: "x", Datatype: "FP32", Shape: []int64{4},
		Contents: &oipgrpc.InferTensorContents{Fp32Contents: []float32{1, 2, 3, 4}}}
	if r2, err := c.ModelInfer(ctx, &oipgrpc.ModelInferRequest{ModelName: "add", Inputs: []*oipgrpc.ModelInferRequest_InferInputTensor{typed}}); err != nil ||
		string(r2.RawOutputContents[0]) != string(r.RawOutputContents[0]) {
		t.Errorf("ModelInfer from typed contents: %v %v", r2, err)
	}
	for _, e := range []struct {
		name string
		req  *oipgrpc.ModelInferRequest
		code codes.Code
		msg  string
	}{
		{"unknown model", &oipgrpc.ModelInferRequest{ModelName: "nope", Inputs: []*oipgrpc.ModelInferRequest_InferInputTensor{in}, RawInputContents: [][]byte{f32le(1, 2, 3, 4)}},
			codes.NotFound, `function "nope" is not deployed`},
		{"short raw contents", &oipgrpc.ModelInferRequest{ModelName: "add", Inputs: []*oipgrpc.ModelInferRequest_InferInputTensor{in}, RawInputContents: [][]byte{f32le(1, 2)}},
			codes.InvalidArgument, "binary_data_size: 8 bytes, shape [4] of FP32 needs 16"},
		{"raw contents for some inputs", &oipgrpc.ModelInferRequest{ModelName: "add", Inputs: []*oipgrpc.ModelInferRequest_InferInputTensor{in, in}, RawInputContents: [][]byte{f32le(1, 2, 3, 4)}},
			codes.InvalidArgument, "raw_input_contents: 1 entries for 2 inputs"},
		{"wrong version", &oipgrpc.ModelInferRequest{ModelName: "add", ModelVersion: "7", Inputs: []*oipgrpc.ModelInferRequest_InferInputTensor{in}, RawInputContents: [][]byte{f32le(1, 2, 3, 4)}},
			codes.NotFound, `has no version "7"`},
	} {
		_, err := c.ModelInfer(ctx, e.req)
		if st, _ := status.FromError(err); st.Code() != e.code || !strings.Contains(st.Message(), e.msg) {
			t.Errorf("%s: %v, want %s containing %q", e.name, err, e.code, e.msg)
		}
	}
}

// TestGRPCKeys checks that with API keys a gRPC call needs the tenant's key
// in the authorization metadata, as REST calls need it in the header, and
// that a tenant sees its own function and not another's.
func TestGRPCKeys(t *testing.T) {
	tg, admin := keysGateway(t)
	acme := tg.createTenant(t, admin, "acme", tenant.Limits{})
	other := tg.createTenant(t, admin, "other", tenant.Limits{})
	if err := tg.deployAs(t, acme, "add", addModel()); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(startGRPC(t, tg), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := oipgrpc.NewGRPCInferenceServiceClient(conn)
	as := func(key string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key)
	}
	in := []*oipgrpc.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{4}}}
	req := &oipgrpc.ModelInferRequest{ModelName: "add", Inputs: in, RawInputContents: [][]byte{f32le(1, 2, 3, 4)}}
	for _, tt := range []struct {
		name string
		ctx  context.Context
		code codes.Code
	}{
		{"no key", context.Background(), codes.Unauthenticated},
		{"wrong key", as("spk_wrong"), codes.Unauthenticated},
		{"another tenant", as(other), codes.NotFound},
		{"the owner", as(acme), codes.OK},
	} {
		r, err := c.ModelInfer(tt.ctx, req)
		if st, _ := status.FromError(err); st.Code() != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
		if tt.code == codes.OK && (r == nil || string(r.RawOutputContents[0]) != string(f32le(2, 3, 4, 5))) {
			t.Errorf("%s: %v", tt.name, r)
		}
	}
	if r, err := c.ServerLive(context.Background(), &oipgrpc.ServerLiveRequest{}); err != nil || !r.Live {
		t.Errorf("ServerLive needs no key: %v %v", r, err)
	}
}

// TestGRPCPythonClient runs a gRPC client that is not Spindle's: Debian's
// python3-grpcio, with stubs generated at test time from the .proto by
// python3-grpc-tools (scripts/testdeps.sh installs both).
func TestGRPCPythonClient(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import grpc, grpc_tools").Run(); err != nil {
		t.Fatalf("python3-grpcio and python3-grpc-tools are needed (run scripts/testdeps.sh): %v", err)
	}
	tg := newTestGateway(t, Config{})
	tg.deploy(t, "add", addModel())
	addr := startGRPC(t, tg)
	protoDir, _ := filepath.Abs(filepath.Join("..", "oip", "oipgrpc"))
	cmd := exec.Command("/usr/bin/python3", filepath.Join("testdata", "grpc_client.py"), protoDir, addr, "add")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python client: %v\n%s", err, out)
	}
	got := map[string]map[string]any{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			t.Fatalf("python client printed %q", sc.Text())
		}
		got[line["call"].(string)] = line
	}
	want := map[string]string{
		"ServerLive":          `{"call":"ServerLive","live":true}`,
		"ServerReady":         `{"call":"ServerReady","ready":true}`,
		"ModelReady":          `{"call":"ModelReady","ready":true}`,
		"ModelMetadata":       `{"call":"ModelMetadata","inputs":[["x","FP32",[4]]],"name":"add","outputs":[["y","FP32",[4]]]}`,
		"ModelInfer":          `{"call":"ModelInfer","id":"py-1","outputs":[["y","FP32",[4]]],"values":[2,3,4,5]}`,
		"ModelInferContents":  `{"call":"ModelInferContents","values":[1.5,0,11,1]}`,
		"error wrong shape":   "INVALID_ARGUMENT",
		"error unknown model": "NOT_FOUND",
	}
	for call, w := range want {
		line, ok := got[call]
		if !ok {
			t.Errorf("%s: no answer\n%s", call, out)
			continue
		}
		if strings.HasPrefix(call, "error") {
			if line["code"] != w {
				t.Errorf("%s: %v, want code %s", call, line, w)
			}
			continue
		}
		b, _ := json.Marshal(line)
		if string(b) != w {
			t.Errorf("%s: %s, want %s", call, b, w)
		}
	}
	if sm := got["ServerMetadata"]; sm == nil || sm["name"] != "spindle" {
		t.Errorf("ServerMetadata: %v", sm)
	}
}
