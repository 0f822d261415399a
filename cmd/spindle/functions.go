package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/client"
	"github.com/spindleml/spindle/internal/quantize"
	"github.com/spindleml/spindle/internal/sandbox"
	"github.com/spindleml/spindle/internal/task"
)

func newDeployCmd() *cobra.Command {
	var model, kind, quant, batch string
	var configs, files []string
	cmd := &cobra.Command{
		Use:   "deploy NAME --model PATH [--task KIND [--config KEY=VALUE|JSON]... [--file PATH]...] [--batch auto|max=N[,delay=D][,pad=MASK]]",
		Short: "Deploy a model (and its external data) as function NAME, optionally with a task endpoint",
		Long: `Deploy a model (and its external data) as function NAME.

With --task the function also answers POST /v1/tasks/NAME with JSON (task kinds:
` + strings.Join(task.Kinds(), ", ") + `). --file uploads the task's extra files
(tokenizer.json, labels.txt) beside the model; --config sets task options, as
KEY=VALUE (VALUE is read as JSON when it parses, else as a string) or as one JSON
object. cpu-burn takes no --model.

--batch joins requests whose inputs agree in all but their first (batch)
dimension into one run: auto batches what is already waiting (up to 32 rows;
an idle function adds no latency), max=N,delay=D caps the rows and lets a run
wait up to D for more; pad=MASK (a transformer's attention mask input) also
batches requests of different lengths, padded to the longest and cut back.
Models without a dynamic first dimension run unbatched.`,
		Example: `  spindle deploy sentiment --model model.onnx --task text-classification --file tokenizer.json --file labels.txt --config max_length=64
  spindle deploy burn --task cpu-burn --config burn_ms=200
  spindle deploy minilm --model model.onnx --batch max=16,delay=2ms,pad=attention_mask`,
		Args: args("NAME"),
	}
	gw := gatewayFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "ONNX model file `PATH`")
	f.StringVar(&kind, "task", "", "task endpoint `KIND`: "+strings.Join(task.Kinds(), ", ")+" (default: raw inference only)")
	f.StringArrayVar(&configs, "config", nil, "task option as `KEY=VALUE`, or a JSON object (repeatable)")
	f.StringArrayVar(&files, "file", nil, "extra file `PATH` for the task, e.g. tokenizer.json or labels.txt (repeatable)")
	f.StringVar(&quant, "quantize", "", "quantize the model before the upload: `int8` (as 'spindle model quantize' does)")
	f.StringVar(&batch, "batch", "", "dynamic batching `POLICY`: auto, or max=N[,delay=D][,pad=MASK] (default off)")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if model == "" && kind != task.CPUBurn {
			return usagef("--model: required (only --task cpu-burn runs without one)")
		}
		if kind == "" && (len(configs) > 0 || len(files) > 0) {
			return usagef("--config and --file: only with --task")
		}
		if model != "" {
			if err := regularFile("--model "+model, model); err != nil {
				return err
			}
		}
		for _, p := range files {
			if err := regularFile("--file "+p, p); err != nil {
				return err
			}
		}
		cfg, err := taskConfigFlags(configs)
		if err != nil {
			return err
		}
		if batch != "" {
			if _, err := api.ParseBatchPolicy(batch); err != nil {
				return usagef("--batch: %v", err)
			}
		}
		switch {
		case quant == "":
		case quant != "int8":
			return usagef("--quantize %q: the only mode is int8", quant)
		case model == "":
			return usagef("--quantize: needs --model")
		default:
			// Quantized here, on the caller's machine: the gateway never
			// runs a tenant's model, and the upload is a quarter the size.
			dir, err := os.MkdirTemp("", "spindle-quantize-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			out := filepath.Join(dir, strings.TrimSuffix(filepath.Base(model), filepath.Ext(model))+".int8.onnx")
			rep, err := quantize.Dynamic(model, out, quantize.Options{})
			if err != nil {
				return fmt.Errorf("--quantize int8: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "quantized %s: %d nodes on int8, weights %.1f MiB -> %.1f MiB\n", model, rep.Quantized, float64(rep.FloatBytes)/(1<<20), float64(rep.QuantizedBytes)/(1<<20))
			model = out
		}
		c, err := newClient(cmd, *gw)
		if err != nil {
			return err
		}
		fn, err := c.DeployWith(context.Background(), a[0], model, client.DeployOptions{Task: kind, Config: cfg, Files: files, Batch: batch})
		if err != nil {
			return err
		}
		if fn.ModelFile == "" {
			fmt.Fprintf(cmd.OutOrStdout(), "deployed %s (task %s, no model)\n", fn.Name, fn.Task)
			return nil
		}
		fmt.Fprintf(cmd.OutOrStdout(), "deployed %s (model %s, %d bytes, digest %.12s", fn.Name, fn.ModelFile, fn.ModelBytes, fn.ModelDigest)
		if fn.Task != task.Infer {
			fmt.Fprintf(cmd.OutOrStdout(), ", task %s", fn.Task)
		}
		fmt.Fprintln(cmd.OutOrStdout(), ")")
		return nil
	}
	return cmd
}

// taskConfigFlags merges --config flags into one JSON object: each is a JSON
// object, or KEY=VALUE with VALUE taken as JSON when it parses (64, false,
// [0.5,0.5,0.5]) and as a string otherwise. The result is checked locally so a
// typo fails before the upload.
func taskConfigFlags(flags []string) (json.RawMessage, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	m := map[string]json.RawMessage{}
	for _, fl := range flags {
		if strings.HasPrefix(strings.TrimSpace(fl), "{") {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal([]byte(fl), &obj); err != nil {
				return nil, usagef("--config %s: not a JSON object: %v", fl, err)
			}
			maps.Copy(m, obj)
			continue
		}
		k, v, ok := strings.Cut(fl, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usagef("--config %q: want KEY=VALUE or a JSON object", fl)
		}
		raw := json.RawMessage(v)
		if !json.Valid(raw) {
			raw, _ = json.Marshal(v)
		}
		m[strings.TrimSpace(k)] = raw
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, usagef("--config: %v", err)
	}
	if _, err := task.ParseConfig(b); err != nil {
		return nil, usagef("--config: %v", err)
	}
	return b, nil
}

func newInvokeCmd() *cobra.Command {
	var inputs []string
	var out, body, img string
	cmd := &cobra.Command{
		Use:   "invoke NAME (--input NAME=FILE.npy ... [--out DIR] | --json BODY | --image FILE)",
		Short: "Invoke function NAME through the gateway",
		Long: `Invoke function NAME through the gateway: raw inference with --input, or the
function's task endpoint with --json (a JSON body, e.g. '{"text": "..."}') or
--image (a PNG or JPEG file, for image-classification).`,
		Args: args("NAME"),
	}
	gw := gatewayFlag(cmd)
	cmd.Flags().StringArrayVar(&inputs, "input", nil, "input tensor as `NAME=FILE.npy` (repeatable)")
	cmd.Flags().StringVar(&out, "out", "", "folder `DIR` for OUTPUT_NAME.npy files (default: print a summary)")
	cmd.Flags().StringVar(&body, "json", "", "JSON `BODY` for the task endpoint")
	cmd.Flags().StringVar(&img, "image", "", "PNG or JPEG `FILE` for the task endpoint")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		modes := 0
		for _, set := range []bool{len(inputs) > 0 || out != "", cmd.Flags().Changed("json"), img != ""} {
			if set {
				modes++
			}
		}
		if modes > 1 {
			return usagef("--input/--out, --json and --image: give one")
		}
		c, err := newClient(cmd, *gw)
		if err != nil {
			return err
		}
		if cmd.Flags().Changed("json") || img != "" {
			return invokeTask(cmd, c, a[0], body, img)
		}
		ins, err := readInputs(inputs)
		if err != nil {
			return err
		}
		names, outs, err := c.Infer(context.Background(), a[0], ins)
		if err != nil {
			return err
		}
		return writeOutputs(cmd, out, names, outs)
	}
	return cmd
}

// invokeTask calls the task endpoint with a JSON body or an image file and
// prints the answer, indented with arrays of numbers on one line.
func invokeTask(cmd *cobra.Command, c *client.Client, name, body, img string) error {
	ct, data := "application/json", []byte(body)
	if img != "" {
		if err := regularFile("--image "+img, img); err != nil {
			return err
		}
		var err error
		if data, err = os.ReadFile(img); err != nil {
			return usageError{fmt.Errorf("--image: %w", err)}
		}
		switch strings.ToLower(filepath.Ext(img)) {
		case ".png":
			ct = "image/png"
		case ".jpg", ".jpeg":
			ct = "image/jpeg"
		default:
			ct = http.DetectContentType(data)
		}
	} else if body != "" && !json.Valid(data) {
		return usagef("--json: not valid JSON: %s", body)
	}
	ans, err := c.TaskInvoke(context.Background(), name, ct, bytes.NewReader(data))
	if err != nil {
		return err
	}
	pretty, err := formatJSON(ans)
	if err != nil {
		return fmt.Errorf("answer is not JSON: %w", err)
	}
	_, err = cmd.OutOrStdout().Write(pretty)
	return err
}

func newLsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ls", Short: "List deployed functions", Args: args()}
	gw := gatewayFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := newClient(cmd, *gw)
		if err != nil {
			return err
		}
		fs, err := c.List(context.Background())
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tTASK\tMODEL BYTES\tDIGEST\tCREATED")
		for _, f := range fs {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.12s\t%s\n", f.Name, f.Task, f.ModelBytes, f.ModelDigest, f.Created.Format("2006-01-02 15:04:05"))
		}
		return tw.Flush()
	}
	return cmd
}

func newDescribeCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{Use: "describe NAME", Short: "Show a function, its instances, recent latency and scaling decisions", Args: args("NAME")}
	gw := gatewayFlag(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON (durations in nanoseconds) instead of text")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		c, err := newClient(cmd, *gw)
		if err != nil {
			return err
		}
		d, err := c.Describe(context.Background(), a[0])
		if err != nil {
			return err
		}
		if asJSON {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false)
			return enc.Encode(d)
		}
		printDescription(cmd.OutOrStdout(), d)
		return nil
	}
	return cmd
}

// printDescription writes d for a person: sizes and durations in units,
// one line per instance and per decision.
func printDescription(w io.Writer, d api.FunctionInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "function\t%s (tenant %s)\n", d.Name, d.Owner)
	fmt.Fprintf(tw, "task\t%s\n", d.Task)
	if len(d.TaskConfig) > 0 {
		fmt.Fprintf(tw, "task config\t%s\n", d.TaskConfig)
	}
	if d.ModelFile != "" {
		fmt.Fprintf(tw, "model\t%s, %s, sha256 %.12s\n", d.ModelFile, formatBytes(d.ModelBytes), d.ModelDigest)
		for _, in := range d.Metadata.Inputs {
			fmt.Fprintf(tw, "  input\t%s %s %v\n", in.Name, in.Datatype, in.Shape)
		}
		for _, out := range d.Metadata.Outputs {
			fmt.Fprintf(tw, "  output\t%s %s %v\n", out.Name, out.Datatype, out.Shape)
		}
	}
	fmt.Fprintf(tw, "deployed\t%s\n", d.Created.Local().Format(time.DateTime))
	mem := "none"
	if d.MemoryLimit > 0 {
		mem = formatBytes(d.MemoryLimit)
	}
	fmt.Fprintf(tw, "per instance\t%v vCPU, memory limit %s\n", d.CurrentVCPU, mem)
	fmt.Fprintf(tw, "batching\t%s\n", cmp.Or(d.Batch, "off"))
	fmt.Fprintf(tw, "instances\t%d\n", len(d.Instances))
	for _, in := range d.Instances {
		fmt.Fprintf(tw, "  pid %d\t%s, %d in flight, RSS %s, PSS %s\n", in.Pid, in.Addr, in.InFlight, formatBytes(int64(in.RSS)), formatBytes(int64(in.PSS)))
	}
	l := d.Latency
	fmt.Fprintf(tw, "last minute\t%d requests, %d errors, %.1f req/s, %d in flight\n", l.Count, l.Errors, l.Rate, l.InFlight)
	if l.Count > l.Errors {
		fmt.Fprintf(tw, "  latency\tp50 %s, p95 %s, p99 %s, max %s\n", roundDur(l.P50), roundDur(l.P95), roundDur(l.P99), roundDur(l.Max))
	}
	if len(d.Decisions) > 0 {
		fmt.Fprintf(tw, "scaling\t%d recent decisions\n", len(d.Decisions))
		for _, r := range d.Decisions {
			what := string(r.Decision.Action)
			if r.Err != "" {
				what += " (failed: " + r.Err + ")"
			} else if r.Decision.Changed() && !r.Applied {
				what += " (not applied)"
			}
			fmt.Fprintf(tw, "  %s\t%s: %s\n", r.Time.Local().Format(time.TimeOnly), what, r.Decision.Reason)
		}
	}
	tw.Flush()
}

// roundDur shows a latency to three significant figures or so.
func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func newRmCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rm NAME", Short: "Remove a function and stop its instances", Args: args("NAME")}
	gw := gatewayFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		c, err := newClient(cmd, *gw)
		if err != nil {
			return err
		}
		if err := c.Remove(context.Background(), a[0]); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "removed", a[0])
		return nil
	}
	return cmd
}

func newLogsCmd() *cobra.Command {
	var n int64
	cmd := &cobra.Command{Use: "logs NAME", Short: "Print the end of a function's instance log", Args: args("NAME")}
	gw := gatewayFlag(cmd)
	cmd.Flags().Int64Var(&n, "bytes", 64<<10, "how many bytes from the end")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if n <= 0 {
			return usagef("--bytes: %d must be positive", n)
		}
		c, err := newClient(cmd, *gw)
		if err != nil {
			return err
		}
		b, err := c.Logs(context.Background(), a[0], n)
		if err != nil {
			return err
		}
		_, err = cmd.OutOrStdout().Write(b)
		return err
	}
	return cmd
}

func newScaleCmd() *cobra.Command {
	var vcpu float64
	var memory string
	cmd := &cobra.Command{
		Use:   "scale NAME [--vcpu X] [--memory SIZE]",
		Short: "Set a function's CPU allotment and memory limit per instance, live (no restart)",
		Long: "Set a function's CPU allotment (--vcpu) and memory limit (--memory), or both, per instance.\n" +
			"Running instances change first; the new values are kept only if every instance took them.",
		Args: args("NAME"),
	}
	gw := gatewayFlag(cmd)
	cmd.Flags().Float64Var(&vcpu, "vcpu", 0, "`X` vCPUs per instance, a multiple of 0.25")
	cmd.Flags().StringVar(&memory, "memory", "", "memory limit per instance, a `SIZE` like 512MiB or 2GiB (0: none)")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		var req api.ScaleRequest
		if cmd.Flags().Changed("vcpu") {
			if err := (sandbox.Limits{CPU: vcpu}).Validate(); err != nil || vcpu <= 0 {
				return usagef("--vcpu %v: must be a positive multiple of %v", vcpu, sandbox.CPUStep)
			}
			req.VCPU = &vcpu
		}
		if cmd.Flags().Changed("memory") {
			n, err := parseBytes(memory)
			if err == nil {
				err = (sandbox.Limits{Memory: n}).Validate()
			}
			if err != nil {
				return usagef("--memory %q: %v", memory, err)
			}
			req.Memory = &n
		}
		if req.VCPU == nil && req.Memory == nil {
			return usagef("set --vcpu, --memory or both")
		}
		c, err := newClient(cmd, *gw)
		if err != nil {
			return err
		}
		res, err := c.Scale(context.Background(), a[0], req)
		if err != nil {
			return err
		}
		mem := "none"
		if res.Memory > 0 {
			mem = formatBytes(res.Memory)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s: %v vCPU, %d workers, memory limit %s, on %d running instance(s)", a[0], res.VCPU, res.Workers, mem, res.Instances)
		if !res.Enforced {
			fmt.Fprint(cmd.OutOrStdout(), " (no CPU quota on this machine: workers and GOMAXPROCS only)")
		}
		fmt.Fprintln(cmd.OutOrStdout())
		return nil
	}
	return cmd
}
