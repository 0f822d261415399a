package sim

// Typed binary heaps: container/heap would box every event in an interface,
// an allocation per push on the hottest path.

type evKind uint8

const (
	evArrival evKind = iota // open-loop arrival for function a
	evRate                  // function a's open-loop rate changes
	evSpawn                 // function a's closed loop gains a user
	evSend                  // user a sends a request
	evDone                  // instance a's first running request may be done
	evReady                 // instance a has booted and loaded its model
	evTick                  // the autoscaler loop ticks
	evSample                // a time-series point is due
)

type event struct {
	t    float64
	seq  uint64 // ties broken by scheduling order: runs are deterministic
	kind evKind
	a    int32
	gen  uint32 // events whose gen no longer matches their target are stale
}

func (x *event) before(y *event) bool {
	if x.t != y.t {
		return x.t < y.t
	}
	return x.seq < y.seq
}

// eventHeap is a 4-ary min-heap of events. An instance has at most one
// completion event in it, moved in place when its time changes (pos tracks
// where it is), so the heap holds about one event per function, instance
// and user however many requests run.
type eventHeap struct {
	ev  []event
	pos []int32 // pos[instance] is its evDone's index, or -1
}

func (h *eventHeap) len() int { return len(h.ev) }

func (h *eventHeap) set(k int, e event) {
	h.ev[k] = e
	if e.kind == evDone {
		h.pos[e.a] = int32(k)
	}
}

func (h *eventHeap) up(k int) {
	e := h.ev[k]
	for k > 0 {
		p := (k - 1) / 4
		if !e.before(&h.ev[p]) {
			break
		}
		h.set(k, h.ev[p])
		k = p
	}
	h.set(k, e)
}

func (h *eventHeap) down(k int) {
	n := len(h.ev)
	e := h.ev[k]
	for {
		c := 4*k + 1
		if c >= n {
			break
		}
		m := c
		for j := c + 1; j < c+4 && j < n; j++ {
			if h.ev[j].before(&h.ev[m]) {
				m = j
			}
		}
		if !h.ev[m].before(&e) {
			break
		}
		h.set(k, h.ev[m])
		k = m
	}
	h.set(k, e)
}

func (h *eventHeap) push(e event) {
	h.ev = append(h.ev, e)
	h.up(len(h.ev) - 1)
}

func (h *eventHeap) pop() event {
	top := h.ev[0]
	h.removeAt(0)
	return top
}

func (h *eventHeap) removeAt(k int) {
	if h.ev[k].kind == evDone {
		h.pos[h.ev[k].a] = -1
	}
	n := len(h.ev) - 1
	last := h.ev[n]
	h.ev = h.ev[:n]
	if k == n {
		return
	}
	h.set(k, last)
	if k > 0 && last.before(&h.ev[(k-1)/4]) {
		h.up(k)
	} else {
		h.down(k)
	}
}

// setDone schedules instance i's completion at t, moving its event if it
// has one.
func (h *eventHeap) setDone(i int32, t float64, seq uint64) {
	for int(i) >= len(h.pos) {
		h.pos = append(h.pos, -1)
	}
	e := event{t: t, seq: seq, kind: evDone, a: i}
	if k := h.pos[i]; k >= 0 {
		old := h.ev[k]
		h.set(int(k), e)
		if e.before(&old) {
			h.up(int(k))
		} else {
			h.down(int(k))
		}
		return
	}
	h.push(e)
}

// clearDone drops instance i's completion event, if any.
func (h *eventHeap) clearDone(i int32) {
	if int(i) < len(h.pos) && h.pos[i] >= 0 {
		h.removeAt(int(h.pos[i]))
	}
}

// runItem is a running request with the virtual time at which it finishes.
type runItem struct {
	tag float64
	req int32
}

type runHeap []runItem

func (h *runHeap) push(x runItem) {
	*h = append(*h, x)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].tag <= s[i].tag {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *runHeap) pop() runItem {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s[r].tag < s[l].tag {
			m = r
		}
		if s[i].tag <= s[m].tag {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// fifo is a queue of request ids.
type fifo struct {
	buf  []int32
	head int
}

func (q *fifo) len() int { return len(q.buf) - q.head }

func (q *fifo) push(x int32) { q.buf = append(q.buf, x) }

func (q *fifo) peek() int32 { return q.buf[q.head] }

func (q *fifo) pop() int32 {
	x := q.buf[q.head]
	q.head++
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	} else if q.head >= 1024 && q.head*2 >= len(q.buf) {
		n := copy(q.buf, q.buf[q.head:])
		q.buf, q.head = q.buf[:n], 0
	}
	return x
}
