package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/spindleml/spindle/internal/loadgen"
)

// newLoadCmd is `spindle load`: a load generator for one function or URL.
func newLoadCmd() *cobra.Command {
	var (
		rawURL, task, think, arrival, step, body, csvPath, method string
		inputs, randoms                                           []string
		users, startUsers, maxRequests, variants, maxInFlight     int
		spawnRate, rate                                           float64
		duration, timeout, every                                  time.Duration
		seed                                                      uint64
	)
	cmd := &cobra.Command{
		Use:   "load [FUNCTION] [--url URL] [--users N --spawn-rate R --think MIN-MAX | --rate R | --step S:D:EVERY[:MAX]] [--body FILE | --input N=F.npy | --random N=DT:SHAPE] [--duration D] [--max-requests N] [--csv FILE]",
		Short: "Send load to a function (or a URL) and report latency percentiles",
		Long: `Send load to FUNCTION through the gateway (POST /v2/models/FUNCTION/infer, or
/v1/tasks/FUNCTION with --task) or to --url, and report p50/p90/p99/p99.9/max
latency and errors. Every request goes to --csv as a row.

Closed loop (the default, as Locust): --start-users users at once, --spawn-rate
more each second up to --users, each waiting --think between an answer and its
next request. The thesis's load (ch. 6) is the default: 1 -> 100 users, +2/s,
2-3 s think time.

Open loop: --rate R starts R requests a second (--arrival poisson for a Poisson
process), or --step START:STEP:EVERY[:MAX] raises the rate in steps.

The run stops at --duration or --max-requests, whichever comes first. A
FUNCTION needs its inputs (--random, --input or --body), --task a --body; a
run in which every request failed exits 1.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			gw, _ := cmd.Flags().GetString("gateway")
			target, err := loadTarget(a, rawURL, gw, task)
			if err != nil {
				return err
			}
			cfg := loadgen.Config{URL: target, Method: method, Duration: duration, MaxRequests: maxRequests, Timeout: timeout, Seed: seed}
			if cfg.Payload, err = loadPayload(body, inputs, randoms, variants, seed); err != nil {
				return err
			}
			// Without a payload the requests would be GETs, which neither
			// endpoint answers: every one would fail.
			switch {
			case cfg.Payload == nil && task != "":
				return usagef("--task %s: a task request needs a JSON body: give --body FILE (e.g. a file holding {\"text\": \"...\"})", task)
			case cfg.Payload == nil && rawURL == "":
				return usagef("FUNCTION %s: an inference request needs inputs: give --random NAME=DATATYPE:D1xD2... (e.g. --random input=FP32:1x1x28x28), --input NAME=FILE.npy or --body FILE", a[0])
			}
			key, _ := cmd.Flags().GetString("key")
			if key == "" {
				key = os.Getenv("SPINDLE_KEY")
			}
			if key != "" {
				cfg.Header = http.Header{"Authorization": {"Bearer " + key}}
			}
			open := cmd.Flags().Changed("rate") || step != ""
			switch {
			case open && (cmd.Flags().Changed("users") || cmd.Flags().Changed("spawn-rate") || cmd.Flags().Changed("think")):
				return usagef("--rate/--step (open loop) and --users/--spawn-rate/--think (closed loop) exclude each other")
			case open:
				o := &loadgen.Open{Poisson: arrival == "poisson", MaxInFlight: maxInFlight}
				if arrival != "constant" && arrival != "poisson" {
					return usagef("--arrival %q: must be constant or poisson", arrival)
				}
				if step != "" {
					if cmd.Flags().Changed("rate") {
						return usagef("--rate and --step: give one")
					}
					s, err := loadgen.ParseStep(step)
					if err != nil {
						return usagef("--step: %v", err)
					}
					o.Rate = s
				} else {
					o.Rate = loadgen.Constant(rate)
				}
				cfg.Open = o
			default:
				th, err := loadgen.ParseThink(think)
				if err != nil {
					return usagef("--think: %v", err)
				}
				if !cmd.Flags().Changed("start-users") {
					startUsers = min(startUsers, users)
				}
				cfg.Closed = &loadgen.Closed{Ramp: loadgen.Ramp{Start: startUsers, Max: users, SpawnRate: spawnRate}, Think: th}
			}
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}

			var csvw *loadgen.CSVWriter
			if csvPath != "" {
				f, err := os.Create(csvPath)
				if err != nil {
					return usagef("--csv: %v", err)
				}
				defer f.Close()
				if csvw, err = loadgen.NewCSVWriter(f); err != nil {
					return err
				}
			}
			prog := &loadgen.Progress{}
			cfg.OnRecord = func(r loadgen.Record) {
				prog.Add(r)
				if csvw != nil {
					csvw.Add(r)
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			stderr := cmd.ErrOrStderr()
			tty := loadgen.IsTerminal(stderr)
			if every == 0 {
				every = 5 * time.Second
				if tty {
					every = 250 * time.Millisecond
				}
			}
			fmt.Fprintf(stderr, "load: %s -> %s\n", describeLoad(&cfg), target)
			progCtx, progDone := context.WithCancel(ctx)
			shown := make(chan struct{})
			go func() { prog.Show(progCtx, stderr, tty, every); close(shown) }()
			res, err := loadgen.Run(ctx, cfg)
			progDone()
			<-shown
			if err != nil {
				return usageError{err}
			}
			if csvw != nil {
				if err := csvw.Flush(); err != nil {
					return fmt.Errorf("--csv %s: %w", csvPath, err)
				}
			}
			fmt.Fprint(cmd.OutOrStdout(), res.Summary)
			if csvPath != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "records: %s (%d rows)\n", csvPath, len(res.Records))
			}
			if s := res.Summary; s.AllFailed() {
				return fmt.Errorf("load: all %d requests failed (%s)", s.Requests, s.StatusCounts())
			}
			return nil
		},
	}
	f := cmd.Flags()
	gatewayFlag(cmd)
	f.StringVar(&rawURL, "url", "", "send to this `URL` instead of a function (http or https)")
	f.StringVar(&task, "task", "", "send to the task endpoint /v1/tasks/`NAME` instead of OIP inference")
	f.StringVar(&method, "method", "", "HTTP `METHOD` (default POST with a body, GET without)")
	f.IntVar(&users, "users", loadgen.ThesisRamp.Max, "closed loop: users at the end of the ramp")
	f.IntVar(&startUsers, "start-users", loadgen.ThesisRamp.Start, "closed loop: users at the start")
	f.Float64Var(&spawnRate, "spawn-rate", loadgen.ThesisRamp.SpawnRate, "closed loop: users added per second (0: all at once)")
	f.StringVar(&think, "think", "2s-3s", "closed loop: wait after each answer, `MIN-MAX` or fixed (0: none)")
	f.Float64Var(&rate, "rate", 0, "open loop: requests per second")
	f.StringVar(&arrival, "arrival", "constant", "open loop: `ARRIVALS`, constant or poisson")
	f.StringVar(&step, "step", "", "open loop: stepped rate `START:STEP:EVERY[:MAX]`, e.g. 5:5:10s:50")
	f.IntVar(&maxInFlight, "max-in-flight", 1000, "open loop: outstanding requests before arrivals are dropped (and counted as errors)")
	f.StringVar(&body, "body", "", "request body `FILE` (JSON)")
	f.StringArrayVar(&inputs, "input", nil, "input tensor `NAME=FILE.npy`, sent as an OIP request (repeatable)")
	f.StringArrayVar(&randoms, "random", nil, "random input `NAME=DATATYPE:D1xD2...`, e.g. input=FP32:1x1x28x28 (repeatable)")
	f.IntVar(&variants, "variants", 8, "with --random: how many different bodies to cycle through")
	f.DurationVar(&duration, "duration", time.Minute, "stop starting requests after this long (0: no limit)")
	f.IntVar(&maxRequests, "max-requests", 0, "stop after this many requests (0: no limit)")
	f.DurationVar(&timeout, "timeout", time.Minute, "per-request timeout")
	f.StringVar(&csvPath, "csv", "", "write every request (start, latency, status, ...) to this CSV `FILE`")
	f.DurationVar(&every, "progress-every", 0, "progress line interval (default 250ms on a terminal, 5s otherwise)")
	f.Uint64Var(&seed, "seed", 1, "seed for think times, Poisson gaps and random inputs")
	return cmd
}

// loadTarget resolves the target URL from FUNCTION or --task (through gw), or
// --url; exactly one must be given.
func loadTarget(a []string, rawURL, gw, task string) (string, error) {
	given := 0
	for _, set := range []bool{len(a) == 1, rawURL != "", task != ""} {
		if set {
			given++
		}
	}
	gw = strings.TrimRight(gw, "/")
	switch {
	case given != 1:
		return "", usagef("give one of FUNCTION, --task NAME and --url URL")
	case rawURL != "":
		return rawURL, nil
	case task != "":
		return gw + "/v1/tasks/" + url.PathEscape(task), nil
	}
	return gw + "/v2/models/" + url.PathEscape(a[0]) + "/infer", nil
}

// loadPayload builds the request bodies from at most one of the sources.
func loadPayload(body string, inputs, randoms []string, variants int, seed uint64) (loadgen.Payload, error) {
	n := 0
	for _, set := range []bool{body != "", len(inputs) > 0, len(randoms) > 0} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return nil, usagef("--body, --input and --random: give one kind")
	case body != "":
		if err := regularFile("--body "+body, body); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(body)
		if err != nil {
			return nil, usagef("--body: %v", err)
		}
		return loadgen.JSONBody(data), nil
	case len(inputs) > 0:
		ins, err := readInputs(inputs)
		if err != nil {
			return nil, err
		}
		data, err := loadgen.OIPRequest(ins)
		if err != nil {
			return nil, usagef("--input: %v", err)
		}
		return loadgen.JSONBody(data), nil
	case len(randoms) > 0:
		var specs []loadgen.RandomInput
		for _, s := range randoms {
			in, err := loadgen.ParseRandomInput(s)
			if err != nil {
				return nil, usagef("--random: %v", err)
			}
			specs = append(specs, in)
		}
		if variants < 1 {
			return nil, usagef("--variants %d: must be at least 1", variants)
		}
		p, err := loadgen.RandomOIP(specs, variants, seed)
		if err != nil {
			return nil, usagef("--random: %v", err)
		}
		return p, nil
	}
	return nil, nil
}

// describeLoad says in one line what load a run makes.
func describeLoad(c *loadgen.Config) string {
	var s string
	if c.Closed != nil {
		r := c.Closed.Ramp
		s = fmt.Sprintf("closed loop, %d -> %d users at +%g/s, think %v-%v", r.Start, r.Max, r.SpawnRate, c.Closed.Think.Min, c.Closed.Think.Max)
	} else {
		kind := "constant"
		if c.Open.Poisson {
			kind = "poisson"
		}
		s = fmt.Sprintf("open loop, %s arrivals at %v", kind, c.Open.Rate)
	}
	if c.Duration > 0 {
		s += fmt.Sprintf(", for %v", c.Duration)
	}
	if c.MaxRequests > 0 {
		s += fmt.Sprintf(", at most %d requests", c.MaxRequests)
	}
	return s
}
