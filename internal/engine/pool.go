// Package engine is jobq's worker core: the pool of workers, its queues,
// the job lifecycle (lifecycle.go), the one attempt protocol (attempt.go)
// and the handler contexts (ctx.go). The jobq package wraps it with the
// public API, the documentation and the validation.
package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrClosed: the pool is shutting down or shut down.
	ErrClosed = errors.New("jobq: pool closed")
	// ErrQueueFull: the queue holds as many jobs as its bound allows.
	ErrQueueFull = errors.New("jobq: queue full")
)

// Handler runs one attempt of a job.
type Handler[In, Out any] func(ctx context.Context, in In) (Out, error)

// Outcome is how a job ended.
type Outcome uint8

const (
	Succeeded Outcome = iota + 1
	Failed
	Canceled
)

// End describes a job that ended, for the end observer.
type End struct {
	Outcome  Outcome
	Err      error
	Attempts int
	Queued   time.Duration // waiting: in the queue and in backoff
	Running  time.Duration // its attempts' handlers running
}

// Config configures a Pool.
type Config struct {
	QueueSize int
	Policy    Policy // the pool's default, merged
	// OnEnd, when set, observes every job's end.
	OnEnd func(End)

	epoch time.Time // the pool's start, the origin of its observer times
}

// Sink receives the outcome of a job held by value that has one: a Map's
// item.
type Sink[Out any] interface {
	Done(slot int32, out Out, err error)
}

// route is what jobs held by value share: their handler ctx, their
// policy and, for a Map's, their sink.
type route[Out any] struct {
	sc   *sharedCtx
	pol  *Policy
	sink Sink[Out]
}

// task is one queue entry: a job with a record (j), or one held by value
// (rt). Entries are copied in and out under the pool's lock, so the task is
// kept small and moved by pointer.
type task[In, Out any] struct {
	j    *Job[In, Out]
	in   In
	rt   *route[Out]
	k    int32 // j's attempts when queued: only that state claims it
	slot int32 // a Map item's slot in its sink
	at   int64 // submission time (observer only)
}

// Pool phases.
const (
	open      = iota
	closing   // intake stopped: what was accepted runs
	abandoned // Shutdown gave up: what was accepted ended with ErrClosed
	drained   // every accepted job ended and no worker is left
)

// Pool is the worker core.
//
// Lock order: Pool.mu, then a worker's tmu; a job's ctx's lock (taken by
// context.AfterFunc and its stop) after Pool.mu; an attemptCtx's ext.mu
// after any of them (adopt and disown take it under Pool.mu; closeExt
// takes no other lock while holding it). Nothing takes Pool.mu while
// holding another.
//
// Invariants, under mu: accepted counts the jobs ever queued, handed or
// run in place; ended counts those whose end is complete (counted,
// observed, Future completed); a pool that is not open has drained once
// ended == accepted and live == 0, where accepted counts the pushes to
// the lane of Map items too (acceptedAll; see streamLane). Every worker is either in idle,
// parked on its wake channel, or busy with a job; an idle worker means
// both queues hold no live entry. Waiters are served, in order, whenever
// a slot frees, before any new submission.
type Pool[In, Out any] struct {
	// The fields are laid out by cache line, in 512 bytes, the largest
	// size class whose objects start on a line (TestPoolLayout). Every
	// submission and dequeue takes mu and touches line 0; lines 1 to 3
	// are read on the hot paths and written rarely; what submitters write
	// on every job has line 4 to itself, and workers write on their own
	// lines (see worker).

	// Line 0: the lock and the bounded queue beside it.
	mu   sync.Mutex
	ring Ring[task[In, Out]] // new submissions

	// Lines 1 to 3: read under mu on the hot paths, written rarely.
	retries Ring[task[In, Out]] // unbounded: retries whose backoff ended
	h       Handler[In, Out]
	idle    []*worker[In, Out]
	waiters []*waiter[In, Out]
	phase   int
	target  int
	live    int
	onEnd   func(End)
	cfg     *Config
	def     route[Out]                          // the route of value jobs with the pool's policy
	sl      atomic.Pointer[streamLane[In, Out]] // Map items' lane, from the first stream on

	// Line 4: written by submitters alone, on every job.
	accepted uint64 // jobs ever queued, handed or run in place
	_        [56]byte

	// Lines 5 to 7: written rarely, under mu but for the atomics.
	ended    uint64 // jobs counted as ended off the workers, and by retired ones (see endedAll)
	waitIn   uint64 // moves into Backoff
	waitOut  uint64 // moves out of Queued or Backoff off the workers, and retired workers' claims
	all      []*worker[In, Out]
	backoffs map[*Job[In, Out]]struct{}
	inline   map[*worker[In, Out]]struct{} // runners off the workers
	streams  map[*Stream[In, Out]]struct{} // open streams, for abandon
	quit     chan struct{}                 // closed when intake stops
	done     chan struct{}                 // closed once drained
	sc       sharedCtx                     // the handler ctx of bare fire-and-forget jobs
	cancelSC context.CancelFunc

	outcomes
	rejected, retried atomic.Uint64
	spare             *worker[In, Out] // runners off the workers kept for reuse, linked by next
	spares            int32
	quitting          atomic.Bool // abandoned, for readers outside mu
}

// maxSpares bounds the runners off the workers that a pool keeps for reuse.
const maxSpares = 64

// New returns a running pool of workers.
func New[In, Out any](workers int, h Handler[In, Out], cfg Config) *Pool[In, Out] {
	p := &Pool[In, Out]{h: h, cfg: &cfg, onEnd: cfg.OnEnd}
	p.ring = *NewRing[task[In, Out]](cfg.QueueSize)
	p.def.pol = &p.cfg.Policy
	p.def.sc = &p.sc
	ctx, cancel := context.WithCancel(context.Background())
	p.sc = sharedCtx{Context: ctx, pool: p}
	p.cancelSC = cancel
	p.quit = make(chan struct{})
	p.done = make(chan struct{})
	p.cfg.epoch = time.Now()
	p.Resize(workers)
	return p
}

// Policy returns the pool's default policy.
func (p *Pool[In, Out]) Policy() *Policy { return &p.cfg.Policy }

// worker is one worker goroutine's state, laid out by cache line in 256
// bytes: what a waker writes, what the worker writes on every job, and the
// timer.
type worker[In, Out any] struct {
	p    *Pool[In, Out]
	wake chan struct{} // buffered; a send wakes the worker from idle
	// Under p.mu: the job handed to the worker as it is woken.
	hand task[In, Out]

	handed bool
	busy   bool          // under p.mu: it holds a job
	resume bool          // its goroutine exits by Goexit: start another
	cur    *Job[In, Out] // under p.mu: the record it runs, for Shutdown's give-up
	// Under p.mu, on the worker's own line: what it has done, summed by
	// Metrics and the drain, and folded into the pool's when it retires.
	claimed uint64 // jobs it took from Queued
	ended   uint64 // jobs it ended
	fired   uint64 // value jobs that succeeded
	// Only the worker's goroutine touches these between its visits to
	// p.mu, which folds them into the above.
	unended      uint64
	pendingFired uint64
	// The worker's runs, which pop and runLane keep fair: lane items
	// taken in a row (at most laneBurst while the queue holds jobs), and
	// jobs taken from the queue in a row (at most laneBurst while the
	// lane holds items). Set by pop and lastLook under p.mu, and by
	// runLane.
	laneRun, queueRun int32

	outcomes

	timer[In, Out]                  // the per-attempt timeout timer, reused
	next           *worker[In, Out] // under p.mu: the next spare runner off the workers
	_              [40]byte
}

// waiter is a submitter waiting for room.
type waiter[In, Out any] struct {
	t     task[In, Out]
	ready chan error // buffered: nil once its task is queued, or why not
}

// Resize sets the number of workers. Growing starts workers at once, each
// ready for a job as soon as it exists; shrinking retires idle workers at
// once and busy ones as their jobs end.
func (p *Pool[In, Out]) Resize(workers int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = workers
	for p.live < p.target && p.phase != drained {
		w := &worker[In, Out]{p: p, wake: make(chan struct{}, 1)}
		p.live++
		p.all = append(p.all, w)
		if p.pop(w, &w.hand) || p.lastLook(w, &w.hand) {
			p.handTo(w, &w.hand)
			w.wake <- struct{}{}
		} else {
			p.idle = append(p.idle, w)
			p.idleChanged()
		}
		go p.work(w, true)
	}
	for n := p.live - p.target; n > 0 && len(p.idle) > 0; n-- {
		p.wakeIdle(nil)
	}
	p.excessChanged()
}

// Workers reports the number of workers the pool is sized to.
func (p *Pool[In, Out]) Workers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

// Metrics is a snapshot of a pool's counters.
type Metrics struct {
	Submitted, Rejected                  uint64
	Succeeded, Failed, Canceled, Retried uint64
	Running, Queued                      int64
	Workers                              int
}

// Metrics returns a snapshot of the counters.
func (p *Pool[In, Out]) Metrics() Metrics {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := Metrics{
		Submitted: p.acceptedAll(),
		Rejected:  p.rejected.Load(),
		Succeeded: p.succeeded.Load(),
		Failed:    p.failed.Load(),
		Canceled:  p.canceled.Load(),
		Retried:   p.retried.Load(),
		Workers:   p.live,
	}
	for _, w := range p.all {
		if w.busy {
			m.Running++
		}
		m.Succeeded += w.succeeded.Load() + w.fired
		m.Failed += w.failed.Load()
		m.Canceled += w.canceled.Load()
	}
	for w := range p.inline {
		if ph := w.cur.Phase(); ph == Running || ph == Finishing {
			m.Running++ // until its attempt ends, not its runner
		}
		m.Succeeded += w.succeeded.Load()
		m.Failed += w.failed.Load()
		m.Canceled += w.canceled.Load()
	}
	m.Queued = p.queued()
	return m
}

// queued counts the jobs in Queued or Backoff: every move into those
// phases, less every move out. p.mu is held.
func (p *Pool[In, Out]) queued() int64 {
	n := p.accepted + p.waitIn - p.waitOut
	for _, w := range p.all {
		n -= w.claimed
	}
	if sl := p.sl.Load(); sl != nil {
		n += sl.held()
	}
	return int64(n)
}

// acceptedAll counts the jobs ever accepted: queued, handed or run in
// place, and pushed to the lane. p.mu is held.
func (p *Pool[In, Out]) acceptedAll() uint64 {
	n := p.accepted
	if sl := p.sl.Load(); sl != nil {
		n += sl.pushed()
	}
	return n
}

// Reject counts a submission refused before it reached the pool.
func (p *Pool[In, Out]) Reject() { p.rejected.Add(1) }

// enqueue queues t. With wait it waits for room, in arrival order, until
// ctx ends; without, it fails at once with ErrQueueFull, also while others
// wait. A job with a record whose ctx can end gets a watch that ends it
// as soon as the ctx does, while it waits.
func (p *Pool[In, Out]) enqueue(ctx context.Context, t *task[In, Out], wait bool) error {
	if p.onEnd != nil {
		t.at = p.now() // the observer's Queued counts a wait for room too
		if t.j != nil {
			t.j.sd().at = t.at
		}
	}
	for spins := 0; ; spins++ {
		err := p.offer(ctx, t, wait, spins < maxSpins)
		if err != errSpin {
			return err
		}
		// Full: the workers, likely waiting for this P, free many
		// slots in the time a waiter would park and be woken for one.
		runtime.Gosched()
	}
}

// maxSpins is how many times a submitter that would wait for room yields
// first.
const maxSpins = 4

// errSpin: the queue is full and the submitter may yield and try again.
var errSpin = errors.New("spin")

// offer is one try of enqueue; with spin, a full queue without waiters
// answers errSpin instead of waiting.
func (p *Pool[In, Out]) offer(ctx context.Context, t *task[In, Out], wait, spin bool) error {
	p.mu.Lock()
	if p.phase != open {
		p.mu.Unlock()
		return ErrClosed
	}
	if len(p.waiters) == 0 {
		if n := len(p.idle); n > 0 {
			// An idle worker means the queues are empty: hand the job
			// straight to it.
			w := p.idle[n-1]
			p.idle = p.idle[:n-1]
			p.idleChanged()
			p.accept(t)
			p.claimFor(w, t)
			p.mu.Unlock()
			w.wake <- struct{}{}
			return nil
		}
		if p.ring.PushFrom(t) {
			p.accept(t)
			p.mu.Unlock()
			return nil
		}
	}
	if !wait {
		p.mu.Unlock()
		return ErrQueueFull
	}
	if spin && len(p.waiters) == 0 {
		p.mu.Unlock()
		return errSpin
	}
	wt := &waiter[In, Out]{t: *t, ready: make(chan error, 1)}
	p.waiters = append(p.waiters, wt)
	p.mu.Unlock()
	select {
	case err := <-wt.ready:
		return err
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.waiters {
		if x == wt {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return ctx.Err()
		}
	}
	return <-wt.ready // served (or refused) as ctx ended
}

// accept counts t in, as it enters a queue or a worker. p.mu is held.
func (p *Pool[In, Out]) accept(t *task[In, Out]) {
	p.accepted++
	if p.onEnd != nil && t.at == 0 { // not stamped by enqueue: a job run in place
		t.at = p.now()
		if t.j != nil {
			t.j.sd().at = t.at
		}
	}
	if j := t.j; j != nil && j.ctx().Done() != nil {
		j.watch()
	}
}

// serveWaiters moves waiting submitters' jobs into the ring while it has
// room: a slot that frees goes to the longest waiter. p.mu is held.
func (p *Pool[In, Out]) serveWaiters() {
	for len(p.waiters) > 0 && p.ring.PushFrom(&p.waiters[0].t) {
		wt := p.waiters[0]
		p.waiters[0] = nil
		p.waiters = p.waiters[1:]
		p.accept(&wt.t)
		wt.ready <- nil
	}
}

// pop moves the next live entry into *t: retries first, then the queue,
// then the lane, but the lane's head before the queue once w has taken
// laneBurst jobs in a row from the queue. A record's entry
// is claimed here, under mu; entries of jobs that ended or moved on are
// dropped. With none, it leaves *t zero, holding nothing alive. p.mu is
// held.
func (p *Pool[In, Out]) pop(w *worker[In, Out], t *task[In, Out]) bool {
	sl := p.sl.Load()
	for {
		if !p.retries.PopInto(t) {
			// The lane's turn: the queue is empty, or w took laneBurst
			// jobs in a row from it, which must not starve the lane.
			// (Dead retry entries were dropped above; live ones went
			// first.)
			if sl != nil && (p.ring.Len() == 0 || w.queueRun >= laneBurst) && sl.pop(t) {
				w.laneRun, w.queueRun = 1, 0
				return true // counted out of Queued by the lane
			}
			if !p.ring.PopInto(t) {
				*t = task[In, Out]{}
				return false
			}
			w.laneRun = 0
			w.queueRun++
			if len(p.waiters) > 0 {
				p.serveWaiters()
			}
		}
		if t.j == nil {
			w.claimed++
			return true
		}
		if p.claim(t.j, int(t.k), w) {
			return true
		}
	}
}

// claim starts the next attempt of j, queued after k attempts, for w, or
// for a runner off the workers when w is nil. p.mu is held.
func (p *Pool[In, Out]) claim(j *Job[In, Out], k int, w *worker[In, Out]) bool {
	if !j.claim(k) {
		return false
	}
	if w != nil {
		w.claimed++
	} else {
		p.waitOut++
	}
	j.unwatch()
	return true
}

// claimFor hands t, just accepted, to idle worker w. p.mu is held.
func (p *Pool[In, Out]) claimFor(w *worker[In, Out], t *task[In, Out]) {
	if t.j == nil {
		w.claimed++
	} else if !p.claim(t.j, int(t.k), w) {
		return // ended as it was handed (its ctx had ended): w finds nothing
	}
	p.handTo(w, t)
}

// handTo gives claimed t to w, which is not idle, for its wake-up. p.mu
// is held.
func (p *Pool[In, Out]) handTo(w *worker[In, Out], t *task[In, Out]) {
	w.hand, w.handed, w.busy, w.cur = *t, true, true, t.j
}

// wakeIdle wakes an idle worker, handing it t if not nil. p.mu is held.
func (p *Pool[In, Out]) wakeIdle(t *task[In, Out]) {
	n := len(p.idle)
	w := p.idle[n-1]
	p.idle = p.idle[:n-1]
	p.idleChanged()
	if t != nil {
		p.handTo(w, t)
	}
	w.wake <- struct{}{} // never blocks: an idle worker's buffer is empty
}

// work is a worker goroutine's loop. parked: the worker starts idle, as a
// new one does.
func (p *Pool[In, Out]) work(w *worker[In, Out], parked bool) {
	defer func() {
		if w.resume {
			// A handler called runtime.Goexit, which no one can stop:
			// its job has ended; another goroutine takes the worker on.
			// The unwind skipped wait's clearing of a handed job.
			w.resume = false
			w.hand = task[In, Out]{}
			go p.work(w, false)
		}
	}()
	if parked && !p.wait(w) {
		return
	}
	var t task[In, Out]
	for {
		p.mu.Lock()
		ok := p.next(w, &t)
		p.mu.Unlock()
		if !ok {
			if !p.wait(w) {
				return
			}
			continue
		}
		w.resume = true
		p.attempt(w, &t)
		if t.j == nil {
			if sl := p.sl.Load(); sl != nil {
				p.runLane(w, sl, &t)
			}
		}
		w.resume = false
	}
}

// laneBurst bounds a worker's runs both ways. After a job held by value it
// runs the lane's items without the pool's lock until it has taken
// laneBurst of them in a row; then it visits the lock, which counts what it
// ended and serves the queues first. And after laneBurst jobs in a row from
// the queue, the lane's head goes first (see pop).
const laneBurst = 8

// runLane runs items of sl on w, which is busy and holds no record, until
// w's run of them reaches laneBurst, while the pool wants w and has not
// given up.
func (p *Pool[In, Out]) runLane(w *worker[In, Out], sl *streamLane[In, Out], t *task[In, Out]) {
	for w.laneRun < laneBurst && !sl.excess.Load() && !p.quitting.Load() && sl.pop(t) {
		w.laneRun++
		w.queueRun = 0
		p.attemptValue(w, t)
	}
}

// wait parks idle w until it is woken; it runs what it was handed, and
// reports whether the worker goes on.
func (p *Pool[In, Out]) wait(w *worker[In, Out]) bool {
	<-w.wake
	// The waker wrote these under p.mu before its send, and nobody
	// writes them again before w is idle again.
	if w.p == nil {
		return false // retired
	}
	if w.handed {
		w.handed = false
		w.resume = true
		p.attempt(w, &w.hand)
		w.resume = false
		w.hand = task[In, Out]{}
	}
	return true
}

// next counts what w ended and moves its next job into *t: retries first,
// then the queue. With none, w parks (it is then in idle) or, if it is no
// longer wanted, retires. p.mu is held.
func (p *Pool[In, Out]) next(w *worker[In, Out], t *task[In, Out]) bool {
	w.busy, w.cur = false, nil
	w.fired += w.pendingFired
	w.ended += w.unended
	w.pendingFired, w.unended = 0, 0
	if p.phase != open {
		p.checkDrained()
	}
	if p.live > p.target || p.phase == drained {
		p.retire(w)
		return false
	}
	if p.pop(w, t) {
		w.busy, w.cur = true, t.j
		return true
	}
	if p.phase != open && p.endedAll() == p.acceptedAll() {
		p.retire(w)
		return false
	}
	if p.lastLook(w, t) {
		w.busy = true
		return true
	}
	p.idle = append(p.idle, w) // the idle count already says so
	return false
}

// lastLook is the look at the lane of a worker that found nothing and is
// about to go idle: it says w is idle first, so that a push this look
// misses sees w idle and wakes it (see Stream.Submit). It reports whether
// it moved an item into *t; if not, the caller adds w to p.idle, which
// the idle count already counts. p.mu is held.
func (p *Pool[In, Out]) lastLook(w *worker[In, Out], t *task[In, Out]) bool {
	sl := p.sl.Load()
	if sl == nil {
		return false
	}
	atLaneHook("idle")
	sl.idle.Store(int32(len(p.idle) + 1))
	if !sl.pop(t) {
		return false
	}
	sl.idle.Store(int32(len(p.idle)))
	w.laneRun, w.queueRun = 1, 0
	return true
}

// retire removes w from the pool, keeping its counts, and lets its
// goroutine exit: w.p turns nil. p.mu is held.
func (p *Pool[In, Out]) retire(w *worker[In, Out]) {
	for i, x := range p.all {
		if x == w {
			last := len(p.all) - 1
			p.all[i], p.all[last] = p.all[last], nil
			p.all = p.all[:last]
			break
		}
	}
	p.live--
	p.excessChanged()
	p.ended += w.ended
	p.waitOut += w.claimed
	p.addAll(&w.outcomes, w.fired)
	w.stopTimer()
	w.p = nil
	w.wake <- struct{}{} // for wait, which sees w.p nil: never blocks, w is not idle
	p.checkDrained()
}

// addEnded counts n jobs ended off the workers. p.mu is held.
func (p *Pool[In, Out]) addEnded(n uint64) {
	p.ended += n
	p.checkDrained()
}

// endedAll counts the jobs ended, by workers and others. p.mu is held.
func (p *Pool[In, Out]) endedAll() uint64 {
	n := p.ended
	for _, w := range p.all {
		n += w.ended
	}
	return n
}

// checkDrained lets idle workers go once a closing pool has ended every
// job it accepted, and marks it drained once none is left. p.mu is held.
func (p *Pool[In, Out]) checkDrained() {
	if p.phase == open || p.phase == drained || p.endedAll() != p.acceptedAll() {
		return
	}
	for len(p.idle) > 0 {
		p.wakeIdle(nil)
	}
	if p.live == 0 {
		p.phase = drained
		close(p.done)
	}
}

// Shutdown stops intake, waits for every accepted job to end and every
// worker to exit, and returns nil; if ctx ends first it gives up (see
// abandon) and returns ctx.Err().
func (p *Pool[In, Out]) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.phase == open {
		p.phase = closing
		if sl := p.sl.Load(); sl != nil {
			sl.stopped.Store(true) // before the drain reads the lane's pushes
		}
		close(p.quit)
		for _, wt := range p.waiters {
			wt.ready <- ErrClosed
		}
		p.waiters = nil
		p.checkDrained()
	}
	p.mu.Unlock()
	select {
	case <-p.done:
		return nil
	default:
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
	}
	p.abandon()
	return ctx.Err()
}

// abandon ends every job that has not ended with ErrClosed: queued ones
// and those in backoff never run again, running ones have their ctx
// cancelled.
func (p *Pool[In, Out]) abandon() {
	p.mu.Lock()
	if p.phase == drained {
		p.mu.Unlock()
		return
	}
	p.phase = abandoned
	p.quitting.Store(true)
	var left []task[In, Out]
	for {
		t, ok := p.retries.Pop()
		if !ok {
			if t, ok = p.ring.Pop(); !ok {
				break
			}
		}
		left = append(left, t)
	}
	for j := range p.backoffs {
		left = append(left, task[In, Out]{j: j})
	}
	for _, w := range p.all {
		if w.cur != nil {
			left = append(left, task[In, Out]{j: w.cur})
		}
	}
	for w := range p.inline {
		left = append(left, task[In, Out]{j: w.cur})
	}
	laneLeft := p.takeLane()
	streams := p.streams
	p.streams = nil
	p.mu.Unlock()
	for _, t := range left {
		if t.j == nil {
			p.queuedValueEnded()
			p.endValue(nil, &t, *new(Out), ErrClosed, Canceled, 0, 0)
		} else {
			p.cancelJob(t.j, ErrClosed, Queued, Backoff, Running)
		}
	}
	p.endLane(laneLeft)
	// After: a Map's items with records watch their ctx, which this
	// cancels, and must end with ErrClosed as the others.
	p.sc.ended.Store(true)
	p.cancelSC() // the handler ctx of bare jobs held by value
	for s := range streams {
		s.cancel()
	}
	p.mu.Lock()
	p.checkDrained()
	p.mu.Unlock()
}

// queuedValueEnded takes a value job, ended before it ran, off the
// Queued gauge.
func (p *Pool[In, Out]) queuedValueEnded() {
	p.mu.Lock()
	p.waitOut++
	p.mu.Unlock()
}

// Closed returns a channel closed when intake stops.
func (p *Pool[In, Out]) Closed() <-chan struct{} { return p.quit }

// now is the time since the pool's epoch, in ns, plus one: never 0, which
// marks a time not taken.
func (p *Pool[In, Out]) now() int64 { return int64(time.Since(p.cfg.epoch)) + 1 }

// yield backs off a spinning loop: a few Goscheds, then short sleeps.
func yield(spins int) {
	if spins < 16 {
		runtime.Gosched()
	} else {
		time.Sleep(time.Microsecond)
	}
}

// Dump describes the pool's state, for tests that fail.
func (p *Pool[In, Out]) Dump() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	busy := 0
	for _, w := range p.all {
		if w.busy {
			busy++
		}
	}
	return fmt.Sprintf("phase %d target %d live %d idle %d busy %d inline %d ring %d/%d lane %d retries %d backoffs %d waiters %d accepted %d ended %d queued %d",
		p.phase, p.target, p.live, len(p.idle), busy, len(p.inline), p.ring.Len(), p.ring.Cap(), p.laneHeld(), p.retries.Len(), len(p.backoffs), len(p.waiters), p.acceptedAll(), p.endedAll(), p.queued())
}
