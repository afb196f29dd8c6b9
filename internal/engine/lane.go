package engine

import "sync/atomic"

// lane is a bounded multi-producer, multi-consumer FIFO queue that takes
// no lock: the queue of a pool's Map items (see Stream), which submitters
// push and workers pop without the pool's lock.
//
// Each cell carries a sequence number that says whose turn it is: a cell
// whose sequence equals the push position is free for that push; one whose
// sequence is the position plus one holds the value for that pop. A push
// claims its position by compare-and-swap, writes the value and publishes
// it by storing the sequence; a pop does the same from the other end and
// hands the cell back to the push one lap ahead. The positions only grow,
// so they also count the values ever pushed and popped (a push counts from
// its claim, before its value is published).
type lane[T any] struct {
	_     [64]byte
	enq   atomic.Uint64 // the next push position: pushes ever claimed
	_     [56]byte
	deq   atomic.Uint64 // the next pop position: values ever popped
	_     [56]byte
	mask  uint64
	cells []cell[T]
}

type cell[T any] struct {
	seq atomic.Uint64
	v   T
}

// newLane returns an empty lane of size cells; size is a power of two,
// at least 2.
func newLane[T any](size int) *lane[T] {
	if size < 2 || size&(size-1) != 0 {
		panic("jobq: newLane: size must be a power of two >= 2")
	}
	l := &lane[T]{mask: uint64(size - 1), cells: make([]cell[T], size)}
	for i := range l.cells {
		l.cells[i].seq.Store(uint64(i))
	}
	return l
}

// push appends *v, or reports false if the lane is full.
func (l *lane[T]) push(v *T) bool {
	pos := l.enq.Load()
	for {
		c := &l.cells[pos&l.mask]
		switch d := int64(c.seq.Load() - pos); {
		case d == 0:
			if l.enq.CompareAndSwap(pos, pos+1) {
				c.v = *v
				c.seq.Store(pos + 1)
				return true
			}
			pos = l.enq.Load()
		case d < 0:
			return false // the cell still holds the value of a lap ago
		default:
			pos = l.enq.Load() // another push took pos
		}
	}
}

// pop moves the oldest value into *v and zeroes its cell, or reports false
// if no value is published at the head.
func (l *lane[T]) pop(v *T) bool {
	pos := l.deq.Load()
	for {
		c := &l.cells[pos&l.mask]
		switch d := int64(c.seq.Load() - (pos + 1)); {
		case d == 0:
			if l.deq.CompareAndSwap(pos, pos+1) {
				*v = c.v
				var zero T
				c.v = zero
				c.seq.Store(pos + l.mask + 1)
				return true
			}
			pos = l.deq.Load()
		case d < 0:
			return false // empty, or its push has not published yet
		default:
			pos = l.deq.Load() // another pop took pos
		}
	}
}

// pushed counts the pushes ever claimed.
func (l *lane[T]) pushed() uint64 { return l.enq.Load() }

// popped counts the values ever popped.
func (l *lane[T]) popped() uint64 { return l.deq.Load() }

// held counts the values claimed and not yet popped, published or not.
func (l *lane[T]) held() uint64 {
	d := l.popped() // first: a pop never passes a push
	return l.pushed() - d
}

// laneHook, set by tests alone, runs at the points of the lane's protocol
// where an interleaving must be forced: "push" as a Stream.Submit is about
// to push, "idle" as a worker that found nothing is about to say it is
// idle (under p.mu).
var laneHook atomic.Pointer[func(point string)]

func atLaneHook(point string) {
	if h := laneHook.Load(); h != nil {
		(*h)(point)
	}
}

// streamLane is a pool's lane of Map items, with what its pushers and the
// workers that pop it without the pool's lock read of the pool's state.
// The pool makes it at its first stream (NewStream) and keeps it.
//
// The lane's items are jobs held by value, accepted at their push: the
// pool's counts add the lane's positions (acceptedAll, queued). Two
// orderings keep the lock-free side from losing an item; Go's atomic
// operations are sequentially consistent, which both rely on:
//   - idle: a worker about to park stores the idle count, then looks at
//     the lane once more; a pusher publishes, then loads the count and, if
//     a worker is idle, wakes one under the lock (Stream.Submit, next);
//   - stopped: Shutdown stores it, then the drain reads the lane's pushes;
//     a pusher claims its position, then loads it and, if intake has
//     stopped, settles its item under the lock (late).
type streamLane[In, Out any] struct {
	lane[task[In, Out]]
	idle    atomic.Int32 // len(p.idle), stored under p.mu at every change
	stopped atomic.Bool  // intake stopped: set under p.mu as Shutdown begins
	excess  atomic.Bool  // more workers live than wanted: workers visit p.mu
	_       [56]byte
}

// laneCells is the size of the lane of a pool whose queue holds size jobs:
// the largest power of two within the queue's bound, at most 256; 0 for a
// queue of one, whose Map items use the queue.
func laneCells(size int) int {
	n := 256
	for n > size {
		n >>= 1
	}
	if n < 2 {
		return 0
	}
	return n
}

// openLane makes p's lane if it has none, and returns it (nil for a queue
// too small to have one). p.mu is held.
func (p *Pool[In, Out]) openLane() *streamLane[In, Out] {
	if sl := p.sl.Load(); sl != nil {
		return sl
	}
	n := laneCells(p.ring.Cap())
	if n == 0 {
		return nil
	}
	sl := &streamLane[In, Out]{lane: *newLane[task[In, Out]](n)}
	sl.idle.Store(int32(len(p.idle)))
	sl.stopped.Store(p.phase != open)
	sl.excess.Store(p.live > p.target)
	p.sl.Store(sl)
	return sl
}

// idleChanged mirrors len(p.idle) for the lane's pushers. p.mu is held.
func (p *Pool[In, Out]) idleChanged() {
	if sl := p.sl.Load(); sl != nil {
		sl.idle.Store(int32(len(p.idle)))
	}
}

// excessChanged tells workers off the lock whether some must retire.
// p.mu is held.
func (p *Pool[In, Out]) excessChanged() {
	if sl := p.sl.Load(); sl != nil {
		sl.excess.Store(p.live > p.target)
	}
}

// laneHeld counts the lane's items not yet popped. p.mu is held.
func (p *Pool[In, Out]) laneHeld() uint64 {
	if sl := p.sl.Load(); sl != nil {
		return sl.held()
	}
	return 0
}

// pushed follows a push to sl: it wakes an idle worker, if any, for the
// item, or settles it under the lock if intake stopped meanwhile.
func (p *Pool[In, Out]) pushed(sl *streamLane[In, Out]) {
	if sl.stopped.Load() {
		p.late()
		return
	}
	if sl.idle.Load() > 0 {
		p.mu.Lock()
		p.wakeForLane(sl)
		p.mu.Unlock()
	}
}

// wakeForLane wakes an idle worker while the lane holds an item. p.mu is
// held.
func (p *Pool[In, Out]) wakeForLane(sl *streamLane[In, Out]) {
	if len(p.idle) > 0 && sl.held() > 0 {
		p.wakeIdle(nil)
	}
}

// late settles a push that found intake stopped after it claimed its
// position. The drain may have counted it or not: while workers are left
// to run it, one is woken if it needs to be; once Shutdown has given up or
// the pool has drained, nobody will, and the lane's items end with
// ErrClosed.
func (p *Pool[In, Out]) late() {
	p.mu.Lock()
	if p.phase == closing {
		p.wakeForLane(p.sl.Load())
		p.mu.Unlock()
		return
	}
	left := p.takeLane()
	p.mu.Unlock()
	p.endLane(left)
}

// takeLane pops every item the lane holds. p.mu is held.
func (p *Pool[In, Out]) takeLane() []task[In, Out] {
	sl := p.sl.Load()
	if sl == nil {
		return nil
	}
	var left []task[In, Out]
	var t task[In, Out]
	for sl.pop(&t) {
		left = append(left, t)
	}
	return left
}

// endLane ends the lane's items in left, which never ran, with ErrClosed.
// The lane counted them out of Queued as they were popped.
func (p *Pool[In, Out]) endLane(left []task[In, Out]) {
	for i := range left {
		p.endValue(nil, &left[i], *new(Out), ErrClosed, Canceled, 0, 0)
	}
}
