package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Protocol lines a child prints on stdout.
const (
	ListenLine = "SPINDLE-LISTEN "
	// LoadedLine, optional, says before the ready line how long the child
	// took to load its model, as a Go duration ("SPINDLE-LOADED 4.6ms").
	LoadedLine = "SPINDLE-LOADED "
	ReadyLine  = "SPINDLE-READY"
)

// Spec says what process to start.
type Spec struct {
	// Path and Args are the program and its arguments (without argv[0]).
	Path string
	Args []string
	// Env is added to the parent's environment.
	Env []string
	// Dir is the child's working directory; "" means the parent's.
	Dir string
	// Log receives the child's stderr and non-protocol stdout; nil discards it.
	Log io.Writer
	// Cgroup confines the child from its first instruction; nil runs it
	// unconfined. The Process owns it: it is closed after the child exits.
	Cgroup *Cgroup
	// Caps says which namespaces the child gets; the zero value gives none.
	Caps Capabilities
}

// Process is a started child. Its methods are safe for concurrent use.
type Process struct {
	// Addr is the host:port the child serves on.
	Addr string
	Pid  int
	// LoadTime is how long the child said its model load took (its
	// LoadedLine); 0 when it did not say.
	LoadTime time.Duration
	// Cgroup is the child's cgroup (nil when unconfined): the autoscaler resizes
	// the instance through it. It is closed once the child exits.
	Cgroup *Cgroup

	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done closes

	tailMu sync.Mutex
	tail   []string // last stderr lines, for error messages
}

// Start runs the child and waits until it reports ready, fails, or ctx ends (then
// the child is killed). A child that exits before ready yields an error holding
// the last lines of its stderr.
func Start(ctx context.Context, spec Spec) (*Process, error) {
	cmd := command(spec)
	// Own namespaces where the machine allows, and an own process group: a
	// signal to the platform's terminal does not reach instances directly, the
	// gateway stops them in order.
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := spec.Cgroup.Start(cmd); err != nil {
		spec.Cgroup.Close()
		return nil, fmt.Errorf("start %s: %w", spec.Path, err)
	}
	p := &Process{Pid: cmd.Process.Pid, Cgroup: spec.Cgroup, cmd: cmd, done: make(chan struct{})}
	logw := spec.Log
	if logw == nil {
		logw = io.Discard
	}
	var logMu sync.Mutex
	writeLog := func(line string) {
		logMu.Lock()
		fmt.Fprintln(logw, line)
		logMu.Unlock()
	}

	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() {
		defer pipes.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			writeLog(line)
			p.tailMu.Lock()
			p.tail = append(p.tail, line)
			if len(p.tail) > 20 {
				p.tail = p.tail[len(p.tail)-20:]
			}
			p.tailMu.Unlock()
		}
	}()
	ready := make(chan readiness, 1)
	go func() {
		defer pipes.Done()
		readProtocol(stdout, ready, writeLog)
	}()
	go func() {
		pipes.Wait() // Wait must not run before the pipes are drained
		p.err = spec.Cgroup.ExitError(cmd.Wait())
		spec.Cgroup.Close()
		close(p.done)
	}()

	select {
	case rd := <-ready:
		if rd.addr == "" {
			p.Kill()
			return nil, errors.New("instance reported ready before its address")
		}
		p.Addr, p.LoadTime = rd.addr, rd.load
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("instance exited before ready (%v): %s", p.err, p.Tail())
	case <-ctx.Done():
		p.Kill()
		<-p.done
		return nil, fmt.Errorf("instance not ready: %w", ctx.Err())
	}
}

// readiness is what a child said up to its ready line.
type readiness struct {
	addr string        // from the last listen line; "" for none
	load time.Duration // from the last loaded line; 0 for none
}

// readProtocol reads a child's stdout: at the ready line it sends what the
// listen and loaded lines before it said on ready, once; every other line
// goes to log. One reader sees the lines in order, so the address is known
// when readiness is: two channels, one per line, would let a select see
// "ready" first.
func readProtocol(r io.Reader, ready chan<- readiness, log func(string)) {
	sc := bufio.NewScanner(r)
	var rd readiness
	sent := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, ListenLine):
			rd.addr = strings.TrimSpace(strings.TrimPrefix(line, ListenLine))
		case strings.HasPrefix(line, LoadedLine):
			if d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(line, LoadedLine))); err == nil && d >= 0 {
				rd.load = d
			} else {
				log(line) // not the protocol's: the child's own output
			}
		case line == ReadyLine:
			if !sent {
				ready <- rd
				sent = true
			}
		default:
			log(line)
		}
	}
}

// command returns the exec.Cmd for spec: its own namespaces where the
// machine allows, and its own process group, so that a signal to the
// platform's terminal does not reach instances directly (the gateway stops
// them in order); killed when the platform dies.
func command(spec Spec) *exec.Cmd {
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Dir = spec.Dir
	attr := NamespaceAttrs(spec.Caps)
	attr.Setpgid = true
	attr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr = attr
	return cmd
}

// Run runs a child to completion, confined as Start confines one, and
// returns what it wrote on stdout, up to maxOut bytes (more is an error).
// Its stderr goes to spec.Log. A child that exits non-zero returns its
// stdout and an error (wrapping ErrOOMKilled when the kernel killed it for
// its memory limit); one still running when ctx ends is killed, and the
// error wraps ctx's. spec.Cgroup is closed before Run returns.
func Run(ctx context.Context, spec Spec, maxOut int) ([]byte, error) {
	cmd := command(spec)
	var out limitedBuffer
	out.max = maxOut
	cmd.Stdout = &out
	logw := spec.Log
	if logw == nil {
		logw = io.Discard
	}
	cmd.Stderr = logw
	defer spec.Cgroup.Close()
	if err := spec.Cgroup.Start(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return out.Bytes(), fmt.Errorf("%s: %w", spec.Path, ctx.Err())
	}
	if err = spec.Cgroup.ExitError(err); err != nil {
		return out.Bytes(), err
	}
	if out.over {
		return out.Bytes(), fmt.Errorf("%s: wrote more than %d bytes on stdout", spec.Path, maxOut)
	}
	return out.Bytes(), nil
}

// limitedBuffer keeps the first max bytes written to it and notes whether
// there were more.
type limitedBuffer struct {
	buf  bytes.Buffer // not embedded: its ReadFrom would bypass Write
	max  int
	over bool
}

// Bytes returns what was kept.
func (b *limitedBuffer) Bytes() []byte { return b.buf.Bytes() }

// Write keeps what fits and reports all of p written, so that the child's
// output is drained, not blocked.
func (b *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := b.max - b.buf.Len(); n > room {
		b.over = true
		p = p[:max(room, 0)]
	}
	b.buf.Write(p)
	return n, nil
}

// Tail returns the last lines the child wrote to stderr, joined by " | ".
func (p *Process) Tail() string {
	p.tailMu.Lock()
	defer p.tailMu.Unlock()
	return strings.Join(p.tail, " | ")
}

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the child has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns the child's exit error once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Kill stops the child at once.
func (p *Process) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
}

// Stop asks the child to drain and exit (SIGTERM), and kills it after grace.
func (p *Process) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.Kill()
		<-p.done
	}
	return nil
}
