package experiment

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/client"
)

// platform is a real `spindle up` the experiment started: its own home in a
// temporary folder, a gateway on a free loopback port.
type platform struct {
	URL    string
	home   string
	cmd    *exec.Cmd
	done   chan struct{}
	client *client.Client
	http   *http.Client

	mu  sync.Mutex
	log []string // the gateway's output lines
}

// startPlatform runs `spindle up --listen 127.0.0.1:0` with extra flags and
// waits for its "Spindle is up" line.
func (e *Env) startPlatform(ctx context.Context, extra ...string) (*platform, error) {
	home, err := os.MkdirTemp("", "spindle-bench-")
	if err != nil {
		return nil, err
	}
	return e.startPlatformIn(ctx, home, extra...)
}

// startPlatformIn is startPlatform with the data directory home, which stop
// removes.
func (e *Env) startPlatformIn(ctx context.Context, home string, extra ...string) (*platform, error) {
	if e.Exe == "" {
		return nil, ErrNoExe
	}
	var err error
	args := append([]string{"up", "--listen", "127.0.0.1:0", "--home", home}, extra...)
	if e.StemCells != nil {
		args = append(args, "--stem-cells", strconv.Itoa(*e.StemCells))
	}
	cmd := exec.Command(e.Exe, args...)
	// The platform and its instances die with us, whatever happens.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		os.RemoveAll(home)
		return nil, fmt.Errorf("start %s up: %w", e.Exe, err)
	}
	p := &platform{home: home, cmd: cmd, done: make(chan struct{}), http: newHTTPClient()}
	up := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log = append(p.log, line)
			p.mu.Unlock()
			if rest, ok := strings.CutPrefix(line, "Spindle is up: gateway "); ok {
				url, _, _ := strings.Cut(rest, ",")
				select {
				case up <- url:
				default:
				}
			}
		}
	}()
	go func() { cmd.Wait(); pw.Close(); close(p.done) }()
	select {
	case p.URL = <-up:
	case <-p.done:
		os.RemoveAll(home)
		return nil, fmt.Errorf("spindle up exited: %s", p.tail(10))
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, fmt.Errorf("spindle up: not up after 30 s: %s", p.tail(10))
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
	if p.client, err = client.New(p.URL); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// stop ends the platform (SIGTERM to its process group, so instances stop
// too; SIGKILL after 15 s) and removes its home.
func (p *platform) stop() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	p.http.CloseIdleConnections()
	os.RemoveAll(p.home)
}

// tail returns the platform's last n output lines.
func (p *platform) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log[max(0, len(p.log)-n):], " | ")
}

var startedRE = regexp.MustCompile(`msg="instance started" function=(\S+) pid=(\d+) .*elapsed=(\S+)`)

// instanceStart returns how long the gateway took to start function's
// instance with pid, from its log ("instance started ... elapsed=").
func (p *platform) instanceStart(function string, pid int) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.log) - 1; i >= 0; i-- {
		m := startedRE.FindStringSubmatch(p.log[i])
		if m == nil || !strings.HasSuffix(m[1], "/"+function) || m[2] != strconv.Itoa(pid) {
			continue
		}
		d, err := time.ParseDuration(m[3])
		return d, err == nil
	}
	return 0, false
}

var loadedRE = regexp.MustCompile(`msg="model loaded" report=".* in ([0-9.]+[a-zµ]+)"`)

// modelLoad returns the load time the function's latest instance logged
// ("model loaded" with the load report).
func (p *platform) modelLoad(ctx context.Context, function string) (time.Duration, error) {
	b, err := p.client.Logs(ctx, function, 64<<10)
	if err != nil {
		return 0, err
	}
	ms := loadedRE.FindAllSubmatch(b, -1)
	if len(ms) == 0 {
		return 0, fmt.Errorf("%s: no \"model loaded\" line in the instance log", function)
	}
	return time.ParseDuration(string(ms[len(ms)-1][1]))
}

// instances lists function's running instances.
func (p *platform) instances(ctx context.Context, function string) ([]api.InstanceInfo, error) {
	d, err := p.client.Describe(ctx, function)
	if err != nil {
		return nil, err
	}
	return d.Instances, nil
}

// post sends body to url and returns the latency and status; a non-2xx
// answer is an error carrying the body.
func (p *platform) post(ctx context.Context, url string, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	lat := time.Since(start)
	if err != nil {
		return lat, err
	}
	if resp.StatusCode/100 != 2 {
		return lat, fmt.Errorf("POST %s: HTTP %d: %.300s", url, resp.StatusCode, b)
	}
	return lat, nil
}

// newHTTPClient returns a client for loopback load: no proxy, many idle
// connections.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
}

// inferURL is the gateway's OIP inference URL for function.
func (p *platform) inferURL(function string) string {
	return p.URL + "/v2/models/" + function + "/infer"
}
