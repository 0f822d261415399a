package experiment

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spindleml/spindle/internal/loadgen"
	"github.com/spindleml/spindle/internal/oip"
	"github.com/spindleml/spindle/internal/tensor"
)

// GatewayExperiment measures what the gateway adds to each request (issue
// 15, item 5).
var GatewayExperiment = Experiment{Name: "gateway", Title: "What the gateway adds to a request: CPU and latency, JSON and binary", Ref: "issue 15", Run: GatewayCost}

// gatewayRate is the open-loop rate of the measurement, requests a second
// (issue 15's target is stated at 2,000).
const gatewayRate = 2000

// GatewayCost sends the same open-loop load of MNIST requests (2,000 a
// second, --duration long, 10 s by default, 3 s with --quick) straight to an
// instance and through the gateway, with a JSON body and with a binary one
// (the binary tensor data extension), and reports per request the CPU the
// gateway process used (from /proc, utime + stime) and the latency each
// path had: the gateway's cost is the difference.
func GatewayCost(ctx context.Context, env *Env) (*Report, error) {
	path, err := env.ensureModel("mnist-cnn")
	if err != nil {
		return nil, err
	}
	p, err := env.startPlatform(ctx, "--autoscale", "off", "--grpc-listen", "off")
	if err != nil {
		return nil, err
	}
	defer p.stop()
	if _, err := p.client.Deploy(ctx, "mnist", path); err != nil {
		return nil, err
	}
	bodies, err := mnistBodies()
	if err != nil {
		return nil, err
	}
	if _, err := p.post(ctx, p.inferURL("mnist"), bodies["json"].body); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	insts, err := p.instances(ctx, "mnist")
	if err != nil || len(insts) == 0 {
		return nil, fmt.Errorf("the instance: %v (%d running)", err, len(insts))
	}
	direct := "http://" + insts[0].Addr + "/v2/models/mnist/infer"
	gwPid := p.cmd.Process.Pid
	dur := env.Duration
	if dur == 0 {
		dur = 10 * time.Second
		if env.Quick {
			dur = 3 * time.Second
		}
	}
	type result struct {
		body, path string
		sum        loadgen.Summary
		gwCPU      time.Duration
	}
	var results []result
	for _, kind := range []string{"json", "binary"} {
		b := bodies[kind]
		for _, target := range []string{"instance", "gateway"} {
			url := direct
			if target == "gateway" {
				url = p.inferURL("mnist")
			}
			env.logf("   %s body, %s: %d req/s for %s", kind, target, gatewayRate, dur)
			before, err := processCPU(gwPid)
			if err != nil {
				return nil, err
			}
			res, err := loadgen.Run(ctx, loadgen.Config{
				URL: url, Method: http.MethodPost, Header: b.header, Payload: &loadgen.Bodies{Data: [][]byte{b.body}, Type: b.contentType},
				Open: &loadgen.Open{Rate: loadgen.Constant(gatewayRate), MaxInFlight: 1000}, Duration: dur, Timeout: 10 * time.Second,
			})
			if err != nil {
				return nil, fmt.Errorf("%s body to the %s: %w", kind, target, err)
			}
			after, err := processCPU(gwPid)
			if err != nil {
				return nil, err
			}
			results = append(results, result{kind, target, res.Summary, after - before})
		}
	}
	tab := Table{Caption: fmt.Sprintf("MNIST at %d requests a second for %s, straight to the instance and through the gateway", gatewayRate, dur),
		Header: []string{"body", "to", "requests", "errors", "p50", "p99", "gateway CPU per request"}}
	for _, r := range results {
		per := "-"
		if r.sum.Requests > 0 {
			per = (r.gwCPU / time.Duration(r.sum.Requests)).Round(time.Microsecond).String()
		}
		tab.Rows = append(tab.Rows, []string{r.body, r.path, strconv.Itoa(r.sum.Requests), strconv.Itoa(r.sum.Errors),
			r.sum.P50.Round(10 * time.Microsecond).String(), r.sum.P99.Round(10 * time.Microsecond).String(), per})
	}
	rep := &Report{Sections: []Section{{Heading: "Cost per request", Tables: []Table{tab}}}}
	for i := 0; i+1 < len(results); i += 2 {
		d, g := results[i], results[i+1]
		cpu := time.Duration(0)
		if g.sum.Requests > 0 {
			cpu = (g.gwCPU - d.gwCPU*time.Duration(g.sum.Requests)/time.Duration(max(d.sum.Requests, 1))) / time.Duration(g.sum.Requests)
		}
		rep.Summary = append(rep.Summary, fmt.Sprintf("%s body: the gateway adds %s of CPU per request (target <= 30µs) and %s to p99 (target <= 0.5 ms) at %d req/s",
			g.body, cpu.Round(time.Microsecond), (g.sum.P99-d.sum.P99).Round(10*time.Microsecond), gatewayRate))
	}
	rep.Notes = append(rep.Notes, "The load generator runs in this process, on the same machine as the gateway and the instance; the CPU column is the gateway process's alone (utime + stime), its idle use during the straight-to-instance runs subtracted in the summary.")
	return rep, nil
}

// gatewayBody is a request body and what goes with it.
type gatewayBody struct {
	body        []byte
	contentType string
	header      http.Header
}

// mnistBodies returns one MNIST request as JSON and as the binary tensor
// data extension lays it out, and asks for the output in the same form.
func mnistBodies() (map[string]gatewayBody, error) {
	x := tensor.New(tensor.Float32, 1, 1, 28, 28)
	for i := range x.F32 {
		x.F32[i] = float32(i%255) / 255
	}
	js, err := loadgen.OIPRequest(map[string]*tensor.Tensor{"input": x})
	if err != nil {
		return nil, err
	}
	raw := make([]byte, 0, 4*len(x.F32))
	for _, v := range x.F32 {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
	}
	head, err := json.Marshal(oip.InferRequest{
		Inputs:     []oip.RequestInput{{Name: "input", Shape: []int64{1, 1, 28, 28}, Datatype: "FP32", Parameters: oip.Parameters{oip.ParamBinarySize: len(raw)}}},
		Parameters: oip.Parameters{oip.ParamBinaryOutput: true},
	})
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set(oip.HeaderLength, strconv.Itoa(len(head)))
	return map[string]gatewayBody{
		"json":   {body: js, contentType: "application/json"},
		"binary": {body: append(head, raw...), contentType: "application/octet-stream", header: h},
	}, nil
}

// processCPU is the CPU time (user and system) process pid has used.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command (which may hold spaces) start after ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks, nil
}
