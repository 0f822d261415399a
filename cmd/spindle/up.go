package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/spindleml/spindle/internal/client"
	"github.com/spindleml/spindle/internal/gateway"
	"github.com/spindleml/spindle/internal/modelgen"
	"github.com/spindleml/spindle/internal/npy"
	"github.com/spindleml/spindle/internal/oip"
	"github.com/spindleml/spindle/internal/tensor"
)

func newUpCmd() *cobra.Command {
	var listen, home string
	var demo bool
	cmd := &cobra.Command{
		Use:   "up [--listen ADDR] [--home DIR] [--demo]",
		Short: "Run the platform on this machine (gateway, registry, instances)",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if home == "" {
				home = os.Getenv("SPINDLE_HOME")
			}
			if home == "" {
				home = ".spindle"
			}
			home, err := filepath.Abs(home)
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find own binary: %w", err)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			g, err := gateway.New(gateway.Config{Home: home, Exe: exe, Logger: log})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				g.Close()
				return usagef("--listen %q: %v", listen, err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			served := make(chan error, 1)
			go func() { served <- g.Serve(ctx, ln) }()

			base := "http://" + ln.Addr().String()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Spindle is up: gateway %s, data in %s\n", base, home)
			fmt.Fprintln(out, "Access: open, no API keys (listening on loopback only unless --listen says otherwise).")
			if demo {
				if err := deployDemo(ctx, cmd, base, home); err != nil {
					stop()
					<-served
					return fmt.Errorf("demo: %w", err)
				}
			}
			err = <-served
			if errors.Is(err, context.Canceled) {
				err = nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "gateway address")
	f.StringVar(&home, "home", "", "data directory (default $SPINDLE_HOME or ./.spindle)")
	f.BoolVar(&demo, "demo", false, "generate and deploy the MNIST demo function and print how to call it")
	return cmd
}

// deployDemo generates the MNIST CNN, deploys it as "mnist" through the gateway's
// own API, writes a sample request, and prints commands that work as pasted.
func deployDemo(ctx context.Context, cmd *cobra.Command, base, home string) error {
	dir := filepath.Join(home, "demo")
	modelDir := filepath.Join(dir, "mnist-cnn")
	if err := modelgen.Generate("mnist-cnn", modelDir, 1); err != nil {
		return err
	}
	c, err := client.New(base)
	if err != nil {
		return err
	}
	if _, err := c.Deploy(ctx, "mnist", filepath.Join(modelDir, "model.onnx")); err != nil {
		return err
	}
	img := demoDigit()
	npyPath := filepath.Join(dir, "input.npy")
	if err := npy.WriteFile(npyPath, img); err != nil {
		return err
	}
	data, err := json.Marshal(img.F32)
	if err != nil {
		return err
	}
	req := oip.InferRequest{Inputs: []oip.RequestInput{{Name: "input", Shape: []int64{1, 1, 28, 28}, Datatype: "FP32", Data: data}}}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	reqPath := filepath.Join(dir, "mnist-request.json")
	if err := os.WriteFile(reqPath, body, 0o644); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Demo function \"mnist\" deployed (MNIST CNN, 21,840 parameters). Try:\n")
	fmt.Fprintf(out, "  curl -s -X POST %s/v2/models/mnist/infer -H 'Content-Type: application/json' -d @%s\n", base, reqPath)
	fmt.Fprintf(out, "  go run ./cmd/spindle invoke mnist --gateway %s --input input=%s\n", base, npyPath)
	return nil
}

// demoDigit draws a "7" into a 28x28 image, values in [0, 1].
func demoDigit() *tensor.Tensor {
	t := tensor.New(tensor.Float32, 1, 1, 28, 28)
	set := func(y, x int) {
		if y >= 0 && y < 28 && x >= 0 && x < 28 {
			t.F32[y*28+x] = 1
		}
	}
	for x := 6; x <= 21; x++ {
		set(6, x)
		set(7, x)
	}
	for y := 8; y <= 23; y++ {
		x := 21 - (y-8)*8/15
		set(y, x)
		set(y, x-1)
	}
	return t
}
