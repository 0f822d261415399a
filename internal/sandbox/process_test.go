package sandbox

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestStartReadsAddressBeforeReady starts children that print their address
// and readiness in one write, so both lines are read before Start looks:
// every start must return the address (a select over two channels once
// picked "ready" first at random and failed the start).
func TestStartReadsAddressBeforeReady(t *testing.T) {
	const script = `printf 'SPINDLE-LISTEN 127.0.0.1:1234\nSPINDLE-READY\n'; exec sleep 30`
	for i := range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p, err := Start(ctx, Spec{Path: "/bin/sh", Args: []string{"-c", script}})
		cancel()
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		if p.Addr != "127.0.0.1:1234" {
			t.Errorf("start %d: Addr %q, want 127.0.0.1:1234", i, p.Addr)
		}
		p.Kill()
		<-p.Done()
	}
}

// TestStartReadyWithoutAddress refuses a child that reports ready without
// ever printing its address.
func TestStartReadyWithoutAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := Start(ctx, Spec{Path: "/bin/sh", Args: []string{"-c", `echo SPINDLE-READY; exec sleep 30`}})
	if err == nil {
		p.Kill()
		t.Fatal("Start succeeded for a child that never printed its address")
	}
}

// TestReadProtocol feeds the whole of a child's stdout at once, as a reader
// that is ahead of Start would see it: ready carries the address of the
// listen line before it, and other lines go to the log.
func TestReadProtocol(t *testing.T) {
	tests := []struct {
		name, out, addr string
		logged          []string
	}{
		{"listen then ready", "SPINDLE-LISTEN 127.0.0.1:80\nSPINDLE-READY\n", "127.0.0.1:80", nil},
		{"log lines around", "hello\nSPINDLE-LISTEN 127.0.0.1:80\nworld\nSPINDLE-READY\nbye\n", "127.0.0.1:80", []string{"hello", "world", "bye"}},
		{"ready without address", "SPINDLE-READY\n", "", nil},
		{"last address wins", "SPINDLE-LISTEN a:1\nSPINDLE-LISTEN b:2\nSPINDLE-READY\nSPINDLE-READY\n", "b:2", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready := make(chan string, 1)
			var logged []string
			readProtocol(strings.NewReader(tt.out), ready, func(l string) { logged = append(logged, l) })
			select {
			case got := <-ready:
				if got != tt.addr {
					t.Errorf("ready sent %q, want %q", got, tt.addr)
				}
			default:
				t.Fatal("ready sent nothing")
			}
			if !slices.Equal(logged, tt.logged) {
				t.Errorf("logged %q, want %q", logged, tt.logged)
			}
		})
	}
}
