package instance

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spindleml/spindle/internal/api"
	"github.com/spindleml/spindle/internal/engine"
	"github.com/spindleml/spindle/internal/tensor"
)

// Dynamic batching (issue 15): requests to the model whose inputs agree in
// everything but the first (batch) dimension are concatenated along it into
// one engine run, and the outputs split back. A transformer at saturation
// then reads its weights once per batch, not once per request.
//
// It works by combining: each request joins a queue, then asks the worker
// pool for a slot as it always did. The first to get one takes every
// compatible request waiting (its own first, up to Max rows) and runs them
// together; a request whose work another took releases its slot and waits
// for its answer. So an idle function runs each request at once, alone, and
// only requests that already wait are batched, unless Delay lets a run wait
// for more.

// batchItem is one request in the batch queue.
type batchItem struct {
	ctx    context.Context
	inputs map[string]*tensor.Tensor
	key    string
	rows   int
	seq    int // the sequence length, when the policy pads

	taken   bool          // a run has it (under batcher.mu)
	done    chan struct{} // closed when outs or err is set
	outs    map[string]*tensor.Tensor
	release func() // gives a lone run's output memory back
	err     error
	served  int // requests in the run that served it
}

// batcher queues a server's requests for combined runs.
type batcher struct {
	s       *Server
	policy  api.BatchPolicy
	mu      sync.Mutex
	queue   []*batchItem
	arrived chan struct{} // a token per arrival, for a run waiting out Delay

	// sizes counts runs by the requests they served (index: requests, the
	// last bucket all larger ones), for metrics.
	sizes [33]atomic.Int64

	// lastRun is how long the last run took and lastEnd when it ended
	// (Unix ns): with no Delay set, a run that starts within a run's time
	// of the last one's end is under load, and waits a quarter of a run
	// (at most autoWait) for the requests on their way (with one CPU their
	// handlers cannot even read them while a run computes).
	lastRun, lastEnd atomic.Int64

	// seqOutputs, when the policy pads, says which outputs have the
	// sequence as their second dimension (cut back per request).
	seqOutputs map[string]bool
}

// autoWait bounds the wait of a run without a Delay under load.
const autoWait = 2 * time.Millisecond

func newBatcher(s *Server, p api.BatchPolicy) *batcher {
	b := &batcher{s: s, policy: p, arrived: make(chan struct{}, 1)}
	if p.Pad != "" {
		b.seqOutputs = map[string]bool{}
		for _, o := range s.model.Outputs {
			// Outputs with a dynamic second dimension follow the sequence
			// (a transformer's hidden states); the others are pooled.
			b.seqOutputs[o.Name] = len(o.Shape) >= 2 && o.Shape[1] < 0
		}
	}
	return b
}

// batchable reports whether a model's inputs and outputs all have a
// dynamic first dimension, along which requests can be joined, and, when
// pad names the attention mask, whether that input exists and every input
// has a dynamic second dimension (the sequence) to pad.
func batchable(m *engine.Model, pad string) bool {
	for _, vs := range [][]engine.ValueInfo{m.Inputs, m.Outputs} {
		for _, v := range vs {
			if len(v.Shape) == 0 || v.Shape[0] >= 0 || v.DType.Size() == 0 && !v.DType.Wide() {
				return false
			}
		}
	}
	if pad != "" {
		found := false
		for _, v := range m.Inputs {
			if len(v.Shape) < 2 || v.Shape[1] >= 0 {
				return false
			}
			found = found || v.Name == pad
		}
		if !found {
			return false
		}
	}
	return len(m.Inputs) > 0
}

// batchKey describes what must agree for requests to share a run: every
// input's name, dtype and shape past the first dimension (past the second,
// the sequence, when padded); and returns the rows (the first dimension,
// the same for every input) and the sequence length (the second, the same
// for every input, when padded).
func batchKey(inputs map[string]*tensor.Tensor, padded bool) (key string, rows, seq int, ok bool) {
	names := make([]string, 0, len(inputs))
	for n := range inputs {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	rows, seq = -1, -1
	for _, n := range names {
		t := inputs[n]
		if len(t.Shape) == 0 || t.DType.Size() == 0 || rows >= 0 && t.Shape[0] != rows {
			return "", 0, 0, false
		}
		rows = t.Shape[0]
		if !padded {
			fmt.Fprintf(&b, "%s:%d%v;", n, t.DType, t.Shape[1:])
			continue
		}
		if len(t.Shape) < 2 || seq >= 0 && t.Shape[1] != seq {
			return "", 0, 0, false
		}
		seq = t.Shape[1]
		fmt.Fprintf(&b, "%s:%d%v;", n, t.DType, t.Shape[2:])
	}
	return b.String(), rows, seq, rows > 0 && (!padded || seq > 0)
}

// BatchSizeHeader is the response header in which an instance that batches
// says how many requests the run that served the request held; the gateway
// turns it into the spindle_batch_size histogram.
const BatchSizeHeader = "Spindle-Batch-Size"

// run serves one request's inputs, in a batch when others wait; served is
// how many requests the run held. The caller calls release once it has
// written the outputs.
func (b *batcher) run(ctx context.Context, inputs map[string]*tensor.Tensor) (outs map[string]*tensor.Tensor, release func(), served int, err error) {
	key, rows, seq, ok := batchKey(inputs, b.policy.Pad != "")
	if !ok {
		release = func() {}
		err := b.s.pool.Do(ctx, func() error {
			var err error
			outs, release, err = b.s.runOwned(ctx, inputs)
			return err
		})
		return outs, release, 1, err
	}
	it := &batchItem{ctx: ctx, inputs: inputs, key: key, rows: rows, seq: seq, done: make(chan struct{}), release: func() {}}
	b.mu.Lock()
	b.queue = append(b.queue, it)
	b.mu.Unlock()
	select {
	case b.arrived <- struct{}{}:
	default:
	}
	err = b.s.pool.Do(ctx, func() error {
		batch := b.take(it)
		if batch != nil {
			b.runBatch(batch)
		}
		return nil
	})
	if err != nil {
		// No slot (queue full, deadline, cancel): withdraw, unless a run
		// already has the request, in which case its answer stands.
		b.mu.Lock()
		if !it.taken {
			b.queue = slices.DeleteFunc(b.queue, func(x *batchItem) bool { return x == it })
			b.mu.Unlock()
			return nil, func() {}, 0, err
		}
		b.mu.Unlock()
	}
	<-it.done
	return it.outs, it.release, it.served, it.err
}

// take returns the batch a run that got a slot for it serves: it and the
// compatible requests waiting after it, up to Max rows, waiting up to Delay
// for more when short; nil when another run already has it.
func (b *batcher) take(it *batchItem) []*batchItem {
	b.mu.Lock()
	if it.taken {
		b.mu.Unlock()
		return nil
	}
	batch, rows := b.collectLocked(it, nil, 0)
	b.mu.Unlock()
	delay := b.policy.Delay
	if last := time.Duration(b.lastRun.Load()); delay == 0 && time.Since(time.Unix(0, b.lastEnd.Load())) < last {
		delay = min(autoWait, last/4)
	}
	if delay > 0 && rows < b.policy.Max {
		deadline := time.NewTimer(delay)
		defer deadline.Stop()
	wait:
		for rows < b.policy.Max {
			select {
			case <-b.arrived:
				b.mu.Lock()
				batch, rows = b.collectLocked(it, batch, rows)
				b.mu.Unlock()
			case <-deadline.C:
				break wait
			}
		}
	}
	return batch
}

// collectLocked adds to batch (which starts with it) the compatible waiting
// requests not yet taken, while the rows stay within Max, and takes them
// off the queue.
func (b *batcher) collectLocked(it *batchItem, batch []*batchItem, rows int) ([]*batchItem, int) {
	if batch == nil {
		it.taken = true
		batch, rows = []*batchItem{it}, it.rows
	}
	kept := b.queue[:0]
	for _, x := range b.queue {
		switch {
		case x.taken:
		case x.key == it.key && rows+x.rows <= b.policy.Max && x.ctx.Err() == nil:
			x.taken = true
			batch = append(batch, x)
			rows += x.rows
		default:
			kept = append(kept, x)
		}
	}
	clear(b.queue[len(kept):])
	b.queue = kept
	return batch, rows
}

// runBatch runs batch as one engine run and answers each request with its
// rows of the outputs. When the joined run fails (one request's input, or
// the batch's memory), each request runs alone, so one request cannot fail
// another.
func (b *batcher) runBatch(batch []*batchItem) {
	b.sizes[min(len(batch), len(b.sizes)-1)].Add(1)
	began := time.Now()
	defer func() {
		end := time.Now()
		b.lastRun.Store(int64(end.Sub(began)))
		b.lastEnd.Store(end.UnixNano())
	}()
	answer := func(it *batchItem, outs map[string]*tensor.Tensor, err error) {
		it.outs, it.err, it.served = outs, err, len(batch)
		close(it.done)
	}
	if len(batch) == 1 {
		outs, release, err := b.s.runOwned(batch[0].ctx, batch[0].inputs)
		batch[0].release = release
		answer(batch[0], outs, err)
		return
	}
	ctx, cancel := batchContext(batch)
	defer cancel()
	joined, err := joinRows(batch, b.policy.Pad != "")
	var outs map[string]*tensor.Tensor
	release := func() {}
	if err == nil {
		outs, release, err = b.s.runOwned(ctx, joined)
	}
	var parts []map[string]*tensor.Tensor
	if err == nil {
		parts, err = splitRows(outs, batch, b.seqOutputs)
	}
	release()
	if err != nil {
		for _, it := range batch {
			outs, release, err := b.s.runOwned(it.ctx, it.inputs)
			it.release = release
			answer(it, outs, err)
		}
		return
	}
	for i, it := range batch {
		answer(it, parts[i], nil)
	}
}

// batchContext is the context of a joined run: not cancelled when one of
// its requests goes away, and ending at the latest of their deadlines.
func batchContext(batch []*batchItem) (context.Context, context.CancelFunc) {
	var last time.Time
	for _, it := range batch {
		d, ok := it.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.WithoutCancel(batch[0].ctx))
		}
		if d.After(last) {
			last = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(batch[0].ctx), last)
}

// joinRows concatenates the batch's inputs along their first dimension
// (row-major data: one copy per request); when padded, every input's
// second dimension (the sequence) is first padded with zeros to the
// batch's longest.
func joinRows(batch []*batchItem, padded bool) (map[string]*tensor.Tensor, error) {
	rows, seq := 0, 0
	for _, it := range batch {
		rows += it.rows
		seq = max(seq, it.seq)
	}
	joined := make(map[string]*tensor.Tensor, len(batch[0].inputs))
	for name, first := range batch[0].inputs {
		shape := append([]int{rows}, first.Shape[1:]...)
		if padded {
			shape[1] = seq
		}
		t := tensor.New(first.DType, shape...)
		dst := t.Bytes()
		rowBytes := len(dst) / max(rows, 1) // one row of the joined tensor
		off := 0
		for _, it := range batch {
			src := it.inputs[name].Bytes()
			per := len(src) / it.rows // one row of the request's
			for r := range it.rows {
				copy(dst[off:off+per], src[r*per:(r+1)*per])
				off += rowBytes
			}
		}
		if off != len(dst) {
			return nil, fmt.Errorf("batch: input %q joined %d of %d bytes", name, off, len(dst))
		}
		joined[name] = t
	}
	return joined, nil
}

// splitRows cuts every output along its first dimension into the batch's
// requests' rows, and the outputs seqOutputs names (when padded) along
// their second dimension back to each request's sequence; an output whose
// first dimension is not the batch's rows cannot be split.
func splitRows(outs map[string]*tensor.Tensor, batch []*batchItem, seqOutputs map[string]bool) ([]map[string]*tensor.Tensor, error) {
	rows, seq := 0, 0
	for _, it := range batch {
		rows += it.rows
		seq = max(seq, it.seq)
	}
	parts := make([]map[string]*tensor.Tensor, len(batch))
	for i := range parts {
		parts[i] = make(map[string]*tensor.Tensor, len(outs))
	}
	for name, t := range outs {
		if len(t.Shape) == 0 || t.Shape[0] != rows || t.DType.Size() == 0 {
			return nil, fmt.Errorf("batch: output %q is %s, not %d rows", name, t, rows)
		}
		cut := seqOutputs[name]
		if cut && (len(t.Shape) < 2 || t.Shape[1] != seq) {
			return nil, fmt.Errorf("batch: output %q is %s, not %d long", name, t, seq)
		}
		src := t.Bytes()
		rowBytes := len(src) / rows
		off := 0
		for i, it := range batch {
			shape := append([]int{it.rows}, t.Shape[1:]...)
			keep := rowBytes
			if cut {
				shape[1] = it.seq
				keep = rowBytes / seq * it.seq
			}
			part := tensor.New(t.DType, shape...)
			dst := part.Bytes()
			for r := range it.rows {
				copy(dst[r*keep:(r+1)*keep], src[off:off+keep])
				off += rowBytes
			}
			parts[i][name] = part
		}
	}
	return parts, nil
}

// BatchStats counts the runs by how many requests each served.
type BatchStats struct {
	Policy string `json:"policy"`
	// Runs[i] is the number of runs that served i requests (the last
	// entry: that many or more).
	Runs []int64 `json:"runs"`
}

func (b *batcher) stats() BatchStats {
	st := BatchStats{Policy: b.policy.String(), Runs: make([]int64, len(b.sizes))}
	for i := range b.sizes {
		st.Runs[i] = b.sizes[i].Load()
	}
	return st
}
