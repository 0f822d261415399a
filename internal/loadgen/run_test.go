package loadgen

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// delayServer answers every request after delay, echoing the body's length,
// and counts the requests it saw.
func delayServer(t *testing.T, delay time.Duration) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		b, _ := io.ReadAll(r.Body)
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

type startUsers struct {
	start time.Duration
	users int
}

func startsOf(recs []Record) []startUsers {
	var out []startUsers
	for _, r := range recs {
		out = append(out, startUsers{r.Start, r.Users})
	}
	slices.SortFunc(out, func(a, b startUsers) int { return int(a.start - b.start) })
	return out
}

// runAsync starts Run in a goroutine and returns a function that waits for it.
func runAsync(t *testing.T, cfg Config) func() *Result {
	t.Helper()
	type out struct {
		res *Result
		err error
	}
	ch := make(chan out, 1)
	go func() {
		res, err := Run(context.Background(), cfg)
		ch <- out{res, err}
	}()
	return func() *Result {
		t.Helper()
		o := <-ch
		if o.err != nil {
			t.Fatalf("Run: %v", o.err)
		}
		return o.res
	}
}

func TestClosedLoopRampOnFakeClock(t *testing.T) {
	const delay = 5 * time.Millisecond
	srv, seen := delayServer(t, delay)
	clk := newFakeClock()
	wait := runAsync(t, Config{
		URL:      srv.URL,
		Payload:  JSONBody([]byte(`{"x":1}`)),
		Closed:   &Closed{Ramp: Ramp{Start: 1, Max: 3, SpawnRate: 1}, Think: Think{Min: time.Second, Max: time.Second}},
		Duration: 2500 * time.Millisecond,
		Clock:    clk,
	})
	// Parked on the clock at each step: the duration timer, the spawner while
	// users are still to come, and every user thinking.
	clk.BlockUntil(t, 3) // t=0: timer, spawner, user 1
	clk.Advance(time.Second)
	clk.BlockUntil(t, 4) // t=1: timer, spawner, users 1-2
	clk.Advance(time.Second)
	clk.BlockUntil(t, 4) // t=2: timer, users 1-3 (the spawner is done)
	clk.Advance(500 * time.Millisecond)
	res := wait()

	s := time.Second
	want := []startUsers{{0, 1}, {s, 2}, {s, 2}, {2 * s, 3}, {2 * s, 3}, {2 * s, 3}}
	if got := startsOf(res.Records); !slices.Equal(got, want) {
		t.Errorf("(start, users) = %v, want %v", got, want)
	}
	if seen.Load() != int64(len(want)) {
		t.Errorf("server saw %d requests, want %d", seen.Load(), len(want))
	}
	for _, r := range res.Records {
		if r.Status != 200 || r.Bytes != 7 || r.Latency < delay {
			t.Errorf("record %+v: want status 200, 7 bytes, latency >= the server's %v delay", r, delay)
		}
	}
	if res.Summary.OK != 6 || res.Summary.Errors != 0 {
		t.Errorf("summary %+v", res.Summary)
	}
}

func TestOpenLoopConstantOnFakeClock(t *testing.T) {
	const delay = 3 * time.Millisecond
	srv, seen := delayServer(t, delay)
	clk := newFakeClock()
	wait := runAsync(t, Config{
		URL:      srv.URL,
		Open:     &Open{Rate: Constant(4)},
		Duration: time.Second,
		Clock:    clk,
	})
	for range 3 {
		clk.BlockUntil(t, 2) // the duration timer and the next arrival
		clk.Advance(250 * time.Millisecond)
	}
	res := wait() // the arrival at 1 s is past the duration: the run ends
	ms := time.Millisecond
	want := []startUsers{{0, 0}, {250 * ms, 0}, {500 * ms, 0}, {750 * ms, 0}}
	if got := startsOf(res.Records); !slices.Equal(got, want) {
		t.Errorf("(start, users) = %v, want %v", got, want)
	}
	if seen.Load() != 4 {
		t.Errorf("server saw %d requests, want 4", seen.Load())
	}
	for _, r := range res.Records {
		if !r.OK() || r.Latency < delay {
			t.Errorf("record %+v: want ok with latency >= %v", r, delay)
		}
	}
}

func TestMaxRequestsStopsTheRun(t *testing.T) {
	srv, seen := delayServer(t, 0)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"closed", Config{Closed: &Closed{Ramp: Ramp{Max: 5}}}},
		{"open", Config{Open: &Open{Rate: Constant(1e6)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen.Store(0)
			cfg := tc.cfg
			cfg.URL, cfg.MaxRequests = srv.URL, 37
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Records) != 37 || seen.Load() != 37 || res.Summary.OK != 37 {
				t.Errorf("%d records, server saw %d, %d ok; want 37 each", len(res.Records), seen.Load(), res.Summary.OK)
			}
		})
	}
}

func TestErrorsAreRecorded(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%3 == 0 {
			http.Error(w, "busy", http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	var seenRecs atomic.Int64
	res, err := Run(context.Background(), Config{
		URL: srv.URL, Closed: &Closed{Ramp: Ramp{Max: 1}}, MaxRequests: 30,
		OnRecord: func(Record) { seenRecs.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Summary
	if s.OK != 20 || s.Errors != 10 || s.ByStatus[http.StatusTooManyRequests] != 10 {
		t.Errorf("ok %d errors %d by status %v, want 20, 10, 10x429", s.OK, s.Errors, s.ByStatus)
	}
	if seenRecs.Load() != 30 {
		t.Errorf("OnRecord saw %d records, want 30", seenRecs.Load())
	}

	srv.Close() // nothing listens now: every request fails without an answer
	res, err = Run(context.Background(), Config{URL: srv.URL, Closed: &Closed{Ramp: Ramp{Max: 2}}, MaxRequests: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Records {
		if r.Status != 0 || r.Err == "" || r.OK() {
			t.Errorf("record to a closed server %+v: want status 0 and an error", r)
		}
	}
	if res.Summary.Errors != 4 || res.Summary.ByStatus[0] != 4 {
		t.Errorf("summary %+v, want 4 errors without an answer", res.Summary)
	}
}

func TestCancelEndsTheRun(t *testing.T) {
	arrived := make(chan struct{}, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done() // never answers on its own
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	wait := make(chan *Result, 1)
	go func() {
		res, err := Run(ctx, Config{URL: srv.URL, Closed: &Closed{Ramp: Ramp{Max: 2}}, Duration: time.Hour})
		if err != nil {
			t.Error(err)
		}
		wait <- res
	}()
	<-arrived
	<-arrived
	cancel()
	res := <-wait
	if len(res.Records) != 2 {
		t.Fatalf("%d records, want the 2 cancelled requests", len(res.Records))
	}
	for _, r := range res.Records {
		if r.OK() || r.Err == "" {
			t.Errorf("record %+v: want a failed, cancelled request", r)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	closed := &Closed{Ramp: Ramp{Max: 1}}
	tests := []struct {
		name string
		cfg  Config
		is   error
	}{
		{"no scheme", Config{URL: "localhost:8080", Closed: closed, MaxRequests: 1}, nil},
		{"ftp", Config{URL: "ftp://x/", Closed: closed, MaxRequests: 1}, nil},
		{"both modes", Config{URL: "http://x/", Closed: closed, Open: &Open{Rate: Constant(1)}, MaxRequests: 1}, nil},
		{"no mode", Config{URL: "http://x/", MaxRequests: 1}, nil},
		{"unbounded", Config{URL: "http://x/", Closed: closed}, ErrUnbounded},
		{"negative duration", Config{URL: "http://x/", Closed: closed, Duration: -1}, nil},
		{"bad ramp", Config{URL: "http://x/", Closed: &Closed{Ramp: Ramp{Max: 0}}, MaxRequests: 1}, nil},
		{"bad think", Config{URL: "http://x/", Closed: &Closed{Ramp: Ramp{Max: 1}, Think: Think{Min: 2, Max: 1}}, MaxRequests: 1}, nil},
		{"bad rate", Config{URL: "http://x/", Open: &Open{Rate: Constant(0)}, MaxRequests: 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), tt.cfg)
			if err == nil {
				t.Fatal("Run accepted the config")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
		})
	}
}
