package jobq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultQueueSize is the queue bound of a pool built without WithQueueSize.
// The ring grows to it on demand: a new pool holds no slots, and a drained
// one keeps at most 1024.
const DefaultQueueSize = 4096

// An Option configures a pool at construction.
type Option func(*config)

type config struct {
	queueSize int
	policy    Policy
	fn        func(context.Context, TaskMessage) error
}

// WithQueueSize bounds the queue to n jobs (DefaultQueueSize if not given).
// Submit waits for room when the queue is full; TrySubmit, Go and the seed
// API's EnQueue calls do as their docs say. Jobs waiting out a retry backoff
// do not count against the bound. It panics if n < 1.
func WithQueueSize(n int) Option {
	if n < 1 {
		panic(fmt.Sprintf("jobq: WithQueueSize: n must be >= 1, got %d", n))
	}
	return func(c *config) { c.queueSize = n }
}

// WithPolicy sets the pool's default policy. Each zero field of a policy
// passed to a submission is taken from it, and each zero field of it from the
// library defaults (see Policy). It panics if p is invalid.
func WithPolicy(p Policy) Option {
	if err := p.validate(); err != nil {
		panic("jobq: WithPolicy: " + strings.TrimPrefix(err.Error(), "jobq: "))
	}
	return func(c *config) { c.policy = p }
}

// Metrics is a snapshot of a pool's counters. The counters only grow; Running
// and Queued are gauges. Once the pool is idle,
// Submitted == Succeeded + Failed + Canceled.
type Metrics struct {
	Submitted uint64 // jobs accepted
	Rejected  uint64 // submissions refused: pool closed, queue full, ctx ended while waiting for room, bad input

	Succeeded uint64 // jobs whose handler returned a nil error
	// Failed counts jobs that ended with an error other than a
	// cancellation: handler errors, timeouts, panics and exhausted retries.
	Failed uint64
	// Canceled counts jobs that ended cancelled: by Cancel, by their ctx
	// ending before they ran or during a retry backoff, by Shutdown giving
	// up on them (ErrClosed), or with a final error that matches
	// context.Canceled or ErrClosed (errors.Is) and is neither a
	// *PanicError nor an *ExhaustedError.
	Canceled uint64
	Retried  uint64 // extra attempts scheduled

	// Running counts the jobs the pool's workers hold now (taken from the
	// queue, running or about to), and the jobs run in place, off the
	// workers: a fork–join child that its submitting handler runs because
	// the queue is full, or a job run in the stead of a goroutine that
	// awaits it (see Result.Await).
	Running int64
	Queued  int64 // jobs accepted and waiting: in the queue (cancelled ones not yet discarded included) or in a retry backoff

	Workers int // worker goroutines alive
}

// task is one queue entry: a submitted job (j), or a fire-and-forget one
// held by value (ctx, in, rt) so that queuing it allocates nothing; a Map
// item is a fire-and-forget one whose outcome goes to its route's sink.
// Every entry is copied in and out of a ring under the pool's lock, with a
// write barrier per pointer word while the GC marks: hence route, which
// keeps a task to four pointer words.
type task[In, Out any] struct {
	j    *job[In, Out]
	ctx  context.Context
	in   In
	rt   *route[Out]
	slot int32 // the Map item's slot in its sink
	k    int32 // the attempts j had made when queued: only that state claims it
}

// route is the policy of fire-and-forget jobs and, for Map items, the sink
// their outcomes go to. A pool's default route serves its Go and
// EnQueueTask jobs without a policy of their own; a Map over a pool has one.
type route[Out any] struct {
	pol  *Policy
	sink itemSink[Out]
}

// ownRoute is the route of a fire-and-forget job with a policy of its own.
type ownRoute[Out any] struct {
	route[Out]
	own Policy // route.pol points here
}

// itemSink receives the outcome of a job that Map queued without a Result.
type itemSink[Out any] interface {
	done(slot int32, out Out, err error)
}

// drop ends t, which will not run, with err.
func (p *Pool[In, Out]) drop(t task[In, Out], err error) {
	if t.j != nil {
		t.j.end(phaseQueued, err)
		return
	}
	p.canceled.Add(1)
	if sink := t.rt.sink; sink != nil {
		var zero Out
		sink.done(t.slot, zero, err)
	}
}

// worker is one worker goroutine's state.
type worker[In, Out any] struct {
	p    *Pool[In, Out]
	wake chan struct{} // buffered; a send wakes the worker from idle

	// A job handed to the worker as it is woken; set under p.mu by the
	// waker, read by the worker after the wake-up.
	hand   task[In, Out]
	handed bool
	// busy: the worker holds a job it took from the queue (or was
	// handed), from the taking until it comes back for the next. Guarded
	// by p.mu, which both ends hold anyway, so counting Running costs the
	// hot path nothing.
	busy bool
	// fired: the fire-and-forget jobs without a sink that the worker ran
	// to success, counted under p.mu as it comes back for the next job,
	// in the same critical section that clears busy.
	fired uint64
	// plain: the worker's last attempt had no deadline, so that nothing
	// but Cancel, while the worker holds the job, cancels it late (see
	// worker.begin). Only the worker's goroutine touches it.
	plain bool

	rc        atomic.Pointer[runCtx] // the handler ctx of the worker's attempts
	succeeded atomic.Uint64
	failed    atomic.Uint64

	// cur: the submitted job the worker took from the queue, was handed,
	// or runs inline, from the taking until it comes back for the next,
	// for Cancel and Shutdown to find. Guarded by p.mu, which both ends
	// hold anyway, so it costs the hot path no atomic operation (an
	// inline record sets it before p.mu publishes the record). The
	// entry may be stale (someone else claimed the job), so whoever
	// reads it checks the job's state or tolerates acting on an ended
	// attempt.
	cur *job[In, Out]
	// curK: for an inline record, the attempt of cur that it runs.
	curK int

	// The per-attempt timeout timer, reused across attempts.
	tmu      sync.Mutex
	timer    *time.Timer
	armRC    *runCtx
	armGen   uint64
	armJob   *job[In, Out]
	armK     int
	deadline time.Time
}

// queue is the Buffer a pool keeps its jobs in. It names a concrete type,
// not the interface, so that a push or pop in the pool's locked sections is
// a direct call rather than a dynamic one (through a Buffer interface value,
// BenchmarkGo measured 13% slower). Any Buffer can be swapped in here.
type queue[T any] = Ring[T]

var _ Buffer[int] = (*queue[int])(nil)

// Pool is a fixed, resizable set of workers running a typed handler over a
// bounded queue. Every method is safe for concurrent use. See New.
type Pool[In, Out any] struct {
	// The fields are laid out by cache line (a Pool is allocated in a size
	// class that is a multiple of 64 bytes, so it starts on a line; see
	// TestPoolLayout). Every submission and dequeue takes mu and touches
	// line 0; they read lines 1 and 2, which change rarely; line 3 onwards
	// is read-mostly, and what submitters write on their own goes last.

	// Line 0: the lock and the bounded queue beside it.
	mu   sync.Mutex
	ring queue[task[In, Out]]

	// Lines 1 and 2: read under mu on the hot paths, written rarely.
	retries   Ring[task[In, Out]] // retries whose backoff ended; unbounded
	target    int
	idle      []*worker[In, Out]
	all       []*worker[In, Out]
	waiters   int // submitters waiting for room
	closing   bool
	abandoned bool
	drainDone bool
	sweeping  bool // a sweep goroutine runs
	_         [4]byte

	// Read on every job, written once (or, quitting, at a give-up).
	h        Handler[In, Out]
	def      Policy        // the pool default merged over the library defaults
	defRoute route[Out]    // the route of fire-and-forget jobs with def
	room     chan struct{} // a token passed to one submitter waiting for room
	quit     chan struct{} // closed when intake stops
	drained  chan struct{} // closed when everything accepted has ended
	quitting atomic.Bool   // abandoned, for workers holding a job outside mu
	_        [40]byte      // keeps submitted off quitting's line; the size a multiple of a line

	submitted uint64 // guarded by mu; written by submitters alone
	backoffs  map[*job[In, Out]]struct{}
	inline    []*worker[In, Out] // records of the jobs run in place, off the workers (see runAttempt)
	// limbo is non-zero while jobs are held in no queue for a moment (a
	// timeout or Shutdown's give-up ending them, a retry leaving its
	// backoff) or run off the workers: a closing pool does not drain
	// meanwhile (see leaveLimbo).
	limbo int

	rejected, succeeded, failed, canceled, retried atomic.Uint64
}

func (p *Pool[In, Out]) init(c *config, workers int) {
	p.def = c.policy.merge(defaultPolicy)
	p.defRoute.pol = &p.def
	p.ring = *NewRing[task[In, Out]](c.queueSize)
	p.room = make(chan struct{}, 1)
	p.quit = make(chan struct{})
	p.drained = make(chan struct{})
	p.Resize(workers)
}

// configure applies opts over the defaults.
func configure(opts []Option) *config {
	c := &config{queueSize: DefaultQueueSize}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Resize sets the number of workers. Growing starts workers at once;
// shrinking retires idle workers at once and busy ones as their jobs end.
// Resize(0) pauses the pool: jobs queue up and run when it grows again (a
// graceful Shutdown of a paused pool with queued jobs waits for that). Once
// Shutdown has drained the pool, Resize starts no workers. It panics if
// workers < 0.
func (p *Pool[In, Out]) Resize(workers int) {
	if workers < 0 {
		panic(fmt.Sprintf("jobq: Resize: workers must be >= 0, got %d", workers))
	}
	p.mu.Lock()
	p.target = workers
	for len(p.all) < p.target && !p.drainDone {
		w := p.newWorker()
		w.wake = make(chan struct{}, 1)
		p.all = append(p.all, w)
		go p.work(w)
	}
	for n := len(p.all) - p.target; n > 0 && len(p.idle) > 0; n-- {
		p.wakeOne()
	}
	p.mu.Unlock()
}

// Workers reports the number of workers the pool is sized to.
func (p *Pool[In, Out]) Workers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

// Metrics returns a snapshot of the pool's counters.
func (p *Pool[In, Out]) Metrics() Metrics {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := Metrics{
		Submitted: p.submitted,
		Rejected:  p.rejected.Load(),
		Succeeded: p.succeeded.Load(),
		Failed:    p.failed.Load(),
		Canceled:  p.canceled.Load(),
		Retried:   p.retried.Load(),
		Queued:    int64(p.ring.Len() + p.retries.Len() + len(p.backoffs)),
		Workers:   len(p.all),
	}
	for _, w := range p.all {
		if w.busy {
			m.Running++
		}
		m.Succeeded += w.succeeded.Load() + w.fired
		m.Failed += w.failed.Load()
	}
	for _, w := range p.inline {
		// A job run in place (fork–join with the queue full, an
		// awaiting handler's help, an awaited retry) runs a handler
		// too, until its attempt has ended.
		if s := w.cur.state.Load(); s == mkState(w.curK, phaseRunning) || s == mkState(w.curK, phaseFinishing) {
			m.Running++
		}
		m.Succeeded += w.succeeded.Load()
		m.Failed += w.failed.Load()
	}
	return m
}

// enqueue queues t. With wait it waits for room while the queue is full,
// until ctx ends; without, it fails at once with ErrQueueFull.
func (p *Pool[In, Out]) enqueue(ctx context.Context, t task[In, Out], wait bool) error {
	p.mu.Lock()
	for {
		if p.closing {
			p.mu.Unlock()
			return ErrClosed
		}
		if p.ring.Push(t) {
			break
		}
		if !wait {
			p.mu.Unlock()
			return ErrQueueFull
		}
		p.waiters++
		p.mu.Unlock()
		var err error
		select {
		case <-p.room:
		case <-p.quit:
		case <-ctx.Done():
			err = ctx.Err()
		}
		p.mu.Lock()
		p.waiters--
		if err != nil {
			p.passRoom() // the token may have come to this waiter
			p.mu.Unlock()
			return err
		}
	}
	p.submitted++
	var w *worker[In, Out]
	if n := len(p.idle); n > 0 {
		// An idle worker means the queue was empty: hand the job
		// straight to it, which spares it the lock and the queue.
		w = p.idle[n-1]
		p.idle = p.idle[:n-1]
		w.hand, _ = p.ring.Pop()
		w.handed, w.busy, w.cur = true, true, w.hand.j
	}
	// After the hand-off, which frees the slot again: with a queue of
	// one, a submitter waiting for room would otherwise never hear of it.
	p.passRoom()
	p.mu.Unlock()
	if w != nil {
		w.wake <- struct{}{}
	}
	return nil
}

// passRoom hands the room token to a waiting submitter once at least half
// the queue is free (or, for a queue of one, all of it), so a submitter that
// waited pushes many jobs per wake-up rather than one. p.mu is held.
func (p *Pool[In, Out]) passRoom() {
	if p.waiters > 0 && p.ring.Cap()-p.ring.Len() >= max(p.ring.Cap()/2, 1) {
		select {
		case p.room <- struct{}{}:
		default:
		}
	}
}

// newWorker returns a worker record of p, not started.
func (p *Pool[In, Out]) newWorker() *worker[In, Out] {
	w := &worker[In, Out]{p: p}
	w.rc.Store(&runCtx{owner: p})
	return w
}

// endAttempt ends the attempt that ran with rc, replacing w's ctx by a fresh
// one if rc may still be watched from elsewhere.
func (w *worker[In, Out]) endAttempt(rc *runCtx) {
	if !rc.end() {
		w.rc.Store(&runCtx{owner: w.p})
	}
}

// cancelRunning cancels the ctx of the running attempt of j, which Cancel
// has just ended, wherever it runs. Cancel is rare: it looks for j rather
// than have every attempt record where it runs.
//
// It cancels the current ctx generation of every worker whose cur is j.
// While p.mu is held such a worker begins no other attempt, so at worst
// the generation is one that has ended: a stale entry's (the job was
// claimed elsewhere), or that of j's attempt which ended meanwhile, or the
// one before j's attempt, if the worker has not begun it yet (attempt then
// sees j ended and does not run it). Each of those is harmless: the ctx is
// left with its cancelled flag set, before the worker takes its next task,
// so that task's attempt begins a new generation, begin clearing the flag
// (worker.begin's plain path, which skips runCtx.begin, requires the flags
// clear).
func (p *Pool[In, Out]) cancelRunning(j *job[In, Out]) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, list := range [][]*worker[In, Out]{p.all, p.inline} {
		for _, w := range list {
			if w.cur == j {
				w.rc.Load().cancelCurrent(context.Canceled)
			}
		}
	}
}

// wakeOne wakes an idle worker. p.mu is held.
func (p *Pool[In, Out]) wakeOne() {
	n := len(p.idle)
	w := p.idle[n-1]
	p.idle = p.idle[:n-1]
	w.wake <- struct{}{} // never blocks: an idle worker's buffer is empty
}

// work is a worker goroutine's loop. A worker takes one job at a time, so
// jobs start in the order they were queued (retries first).
func (p *Pool[In, Out]) work(w *worker[In, Out]) {
	p.mu.Lock()
	for {
		if len(p.all) > p.target {
			p.retire(w)
			return
		}
		var t task[In, Out]
		var ok bool
		if p.retries.Len() > 0 {
			t, ok = p.retries.Pop()
		} else {
			t, ok = p.ring.Pop()
		}
		if ok {
			w.busy, w.cur = true, t.j
			p.passRoom()
			p.mu.Unlock()
			ok = w.run(t)
		} else {
			if p.settled() && (p.abandoned || !p.anyBusy()) {
				// Nothing is left or can come back: every worker may go.
				// A job a worker holds can come back as a retry (its
				// timeout fires while its handler ignores ctx), so while
				// one does, unless Shutdown gave up, idle workers stay.
				for len(p.idle) > 0 {
					p.wakeOne()
				}
				p.retire(w)
				return
			}
			p.idle = append(p.idle, w)
			p.mu.Unlock()
			<-w.wake
			if w.handed {
				// The waker set hand (and busy) before the wake-up,
				// under p.mu.
				t = w.hand
				w.hand, w.handed = task[In, Out]{}, false
				ok = w.run(t)
			}
		}
		p.mu.Lock()
		w.busy, w.cur = false, nil
		if ok {
			w.fired++
		}
	}
}

// run runs one job taken from the queue, unless Shutdown has given up on
// the jobs meanwhile. It reports a fire-and-forget job that succeeded and
// is left for the caller to count in w.fired.
func (w *worker[In, Out]) run(t task[In, Out]) bool {
	if w.p.quitting.Load() {
		w.p.drop(t, ErrClosed)
		return false
	}
	if t.j != nil {
		w.runJob(t)
		return false
	}
	return w.runFire(t)
}

// anyBusy reports whether a worker holds a job. p.mu is held.
func (p *Pool[In, Out]) anyBusy() bool {
	for _, w := range p.all {
		if w.busy {
			return true
		}
	}
	return false
}

// retire removes w from the pool, keeping its counts. p.mu is held and is
// released.
func (p *Pool[In, Out]) retire(w *worker[In, Out]) {
	for i, x := range p.all {
		if x == w {
			last := len(p.all) - 1
			p.all[i], p.all[last] = p.all[last], nil
			p.all = p.all[:last]
			break
		}
	}
	p.succeeded.Add(w.succeeded.Load() + w.fired)
	p.failed.Add(w.failed.Load())
	p.checkDrained()
	p.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
}

// checkDrained closes drained once the last worker has gone, intake has
// stopped and nothing accepted is left to run. With no worker left and only
// ended jobs' entries at the front of the queues, it starts sweep to
// discard them. p.mu is held.
func (p *Pool[In, Out]) checkDrained() {
	if p.drainDone || len(p.all) != 0 {
		return
	}
	if p.settled() {
		p.drainDone = true
		close(p.drained)
		return
	}
	if p.closing && !p.sweeping && p.staleFront() {
		// No worker is left to discard the entries of jobs that ended
		// while queued (cancelled, or run in place by an awaiting
		// handler): discard them, so that a paused pool whose accepted
		// jobs have all ended drains.
		p.sweeping = true
		go p.sweep()
	}
}

// staleFront reports whether the next entry a worker would take is one of a
// job that someone else has claimed or ended. p.mu is held.
func (p *Pool[In, Out]) staleFront() bool {
	t, ok := p.retries.peek()
	if !ok {
		if t, ok = p.ring.peek(); !ok {
			return false
		}
	}
	return t.j != nil && t.j.state.Load() != mkState(int(t.k), phaseQueued)
}

// sweep discards stale entries off the front of a closing pool's queues
// while it has no worker, as a worker would: for an ended job, once it is
// counted.
func (p *Pool[In, Out]) sweep() {
	p.mu.Lock()
	for len(p.all) == 0 && p.staleFront() {
		t, ok := p.retries.Pop()
		if !ok {
			t, _ = p.ring.Pop()
		}
		p.passRoom()
		p.mu.Unlock()
		t.j.awaitEnder()
		p.mu.Lock()
	}
	p.sweeping = false
	p.checkDrained()
	p.mu.Unlock()
}

// Shutdown stops intake at once: later submissions fail with ErrClosed, and
// submitters waiting for room give up with it. It then waits until every
// accepted job has ended, queued ones and ones in retry backoff included, and
// every worker has exited, and returns nil.
//
// If ctx ends first, Shutdown gives up: queued jobs and jobs in backoff end
// with ErrClosed without running, running handlers have their ctx cancelled
// and their Results complete with ErrClosed, and Shutdown returns ctx.Err()
// without waiting for handlers that ignore their ctx. Two races are left to
// the moment: an attempt that ended on its own as Shutdown gave up (its
// handler returned, its timeout fired, its ctx ended, Cancel came) keeps that
// outcome, and its Result may complete just after Shutdown returns; and a
// handler whose worker was calling it then may start just after, with its
// ctx cancelled already. No handler starts later with a live ctx.
//
// Shutdown is idempotent and safe to call concurrently with anything,
// itself included.
func (p *Pool[In, Out]) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if !p.closing {
		p.closing = true
		close(p.quit)
		for len(p.idle) > 0 {
			p.wakeOne()
		}
	}
	p.checkDrained()
	p.mu.Unlock()
	select {
	case <-p.drained:
		return nil
	case <-ctx.Done():
	}
	p.abandon()
	return ctx.Err()
}

// Close is Shutdown(context.Background()): it returns once every accepted
// job has ended. It always returns nil.
func (p *Pool[In, Out]) Close() error { return p.Shutdown(context.Background()) }

// abandon ends every job that has not ended with ErrClosed and cancels the
// running handlers' ctx.
func (p *Pool[In, Out]) abandon() {
	p.mu.Lock()
	p.abandoned = true
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
		j.rs.stopBackoff()
		left = append(left, task[In, Out]{j: j})
	}
	clear(p.backoffs)
	for len(p.idle) > 0 {
		p.wakeOne() // nothing is left for them: let them exit
	}
	running := append(append([]*worker[In, Out](nil), p.all...), p.inline...)
	var held []*job[In, Out] // the jobs the workers hold, running or about to
	for _, w := range running {
		if w.cur != nil {
			held = append(held, w.cur)
		}
	}
	// The jobs taken out above are in no queue until dropped, and the
	// held ones are yet to be ended: limbo keeps a concurrent Shutdown
	// from seeing the pool drained before they are counted.
	p.limbo++
	p.mu.Unlock()
	defer p.leaveLimbo()

	for _, t := range left {
		p.drop(t, ErrClosed)
	}
	// A held job its worker has not claimed yet is left to it: run or
	// attempt sees quitting and ends the job with ErrClosed.
	for _, j := range held {
		j.end(phaseRunning, ErrClosed)
	}
	for _, w := range running {
		w.rc.Load().cancelCurrent(context.Canceled)
	}
}

// backoff holds j, whose attempt failed, for delay before it is queued
// again. The timer, not a worker, waits.
func (p *Pool[In, Out]) backoff(j *job[In, Out], k int, delay time.Duration) {
	p.mu.Lock()
	if p.abandoned {
		p.mu.Unlock()
		j.state.Store(mkState(k, phaseQueued))
		j.end(phaseQueued, ErrClosed)
		return
	}
	if p.backoffs == nil {
		p.backoffs = make(map[*job[In, Out]]struct{})
	}
	p.backoffs[j] = struct{}{}
	j.rs.timer = time.AfterFunc(delay, j.requeue)
	if j.ctx.Done() != nil {
		// A job whose ctx ends in backoff ends then, not when the
		// backoff would: requeue, run by the watch, ends it.
		j.rs.stopCtx = context.AfterFunc(j.ctx, j.requeue)
	}
	j.state.Store(mkState(k, phaseQueued))
	p.mu.Unlock()
}

// stopBackoff stops the backoff's timer and its watch on the job's ctx.
// p.mu is held.
func (rs *retryState) stopBackoff() {
	rs.timer.Stop()
	if rs.stopCtx != nil {
		rs.stopCtx()
		rs.stopCtx = nil
	}
}

// unbackoff takes j out of backoff, if it is there.
func (p *Pool[In, Out]) unbackoff(j *job[In, Out]) {
	p.mu.Lock()
	if _, ok := p.backoffs[j]; ok {
		delete(p.backoffs, j)
		j.rs.stopBackoff()
	}
	// j may have ended in the queue of a pool with no worker to discard it.
	p.wakeIfDrained()
	p.mu.Unlock()
}

// settled reports whether intake has stopped and no accepted job is left to
// run or can come back: none queued, in backoff, or in limbo. p.mu is held.
func (p *Pool[In, Out]) settled() bool {
	return p.closing && p.ring.Len() == 0 && p.retries.Len() == 0 && len(p.backoffs) == 0 && p.limbo == 0
}

// wakeIfDrained lets idle workers exit once a closing pool has settled, and
// checks whether it has drained: for whoever just took a job out of backoff
// or limbo. p.mu is held.
func (p *Pool[In, Out]) wakeIfDrained() {
	if p.settled() {
		for len(p.idle) > 0 {
			p.wakeOne()
		}
	}
	p.checkDrained()
}

// count records how a job ended, on w's own counters when a worker ended it.
func (p *Pool[In, Out]) count(w *worker[In, Out], err error) {
	switch {
	case err == nil:
		if w != nil {
			w.succeeded.Add(1)
		} else {
			p.succeeded.Add(1)
		}
	case isCancellation(err):
		p.canceled.Add(1)
	default:
		if w != nil {
			w.failed.Add(1)
		} else {
			p.failed.Add(1)
		}
	}
}

// isCancellation reports whether a job that ended with err was cancelled
// rather than failed.
func isCancellation(err error) bool {
	var pe *PanicError
	if errors.As(err, &pe) {
		return false
	}
	var ex *ExhaustedError
	if errors.As(err, &ex) {
		return false // it used up its retries: it failed
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed)
}

// arm starts the attempt timer: at deadline, the attempt's ctx is cancelled
// and, for a submitted job, its attempt ends with context.DeadlineExceeded.
// The timer may fire late, after disarm: so an attempt that arms it leaves
// worker.plain false and the next attempt begins a new ctx generation.
func (w *worker[In, Out]) arm(rc *runCtx, gen uint64, j *job[In, Out], k int, deadline time.Time) {
	w.tmu.Lock()
	w.armRC, w.armGen, w.armJob, w.armK, w.deadline = rc, gen, j, k, deadline
	if w.timer == nil {
		w.timer = time.AfterFunc(time.Until(deadline), w.fire)
	} else {
		w.timer.Reset(time.Until(deadline))
	}
	w.tmu.Unlock()
}

func (w *worker[In, Out]) disarm() {
	w.tmu.Lock()
	w.armRC, w.armJob = nil, nil
	w.timer.Stop()
	w.tmu.Unlock()
}

func (w *worker[In, Out]) fire() {
	w.tmu.Lock()
	rc, gen, j, k := w.armRC, w.armGen, w.armJob, w.armK
	if rc == nil || time.Now().Before(w.deadline) {
		// Disarmed, or a stale firing from an earlier arming.
		w.tmu.Unlock()
		return
	}
	w.armRC, w.armJob = nil, nil
	w.tmu.Unlock()
	rc.cancel(gen, context.DeadlineExceeded, false)
	if j != nil {
		// Until finish has completed j or put it in backoff, j is in
		// no queue: keep a closing pool from draining meanwhile.
		p := w.p
		p.mu.Lock()
		p.limbo++
		p.mu.Unlock()
		defer p.leaveLimbo()
		var zero Out
		j.finish(nil, k, zero, context.DeadlineExceeded)
	}
}

// The seed API: a Queue of untyped messages and task functions, kept as a
// thin adapter over Pool.

// QueuedMessage is a message for EnQueue: Bytes encodes it.
type QueuedMessage interface {
	Bytes() []byte
}

// TaskMessage is what the WithFn handler receives: Payload returns the bytes
// the QueuedMessage encoded to.
type TaskMessage interface {
	Payload() []byte
}

// WithFn sets the handler that NewPool's Queue runs for each message passed
// to EnQueue. It panics if fn is nil. New rejects it (it has a typed handler).
func WithFn(fn func(context.Context, TaskMessage) error) Option {
	if fn == nil {
		panic("jobq: WithFn: fn must not be nil")
	}
	return func(c *config) { c.fn = fn }
}

// payload is the TaskMessage that EnQueue hands to the WithFn handler.
type payload []byte

func (b payload) Payload() []byte { return b }

// legacyJob is one seed-API job: a task function, or an encoded message.
type legacyJob struct {
	fn  func(context.Context) error
	msg payload
}

// errNoFn is EnQueue's answer on a Queue built without WithFn.
var errNoFn = errors.New("jobq: EnQueue needs a handler: build the Queue with WithFn")

// Queue is the seed's untyped job queue: a Pool whose jobs are task
// functions (EnQueueTask) or messages run by the WithFn handler (EnQueue).
type Queue struct {
	p     *Pool[legacyJob, struct{}]
	hasFn bool
}

// NewPool returns a Queue with size workers. It panics if size < 1.
func NewPool(size int, opts ...Option) *Queue {
	if size < 1 {
		panic(fmt.Sprintf("jobq: NewPool: size must be >= 1, got %d", size))
	}
	q := &Queue{p: new(Pool[legacyJob, struct{}])}
	var fn func(context.Context, TaskMessage) error
	q.p.h = func(ctx context.Context, j legacyJob) (struct{}, error) {
		if j.fn != nil {
			return struct{}{}, j.fn(ctx)
		}
		return struct{}{}, fn(ctx, j.msg)
	}
	c := configure(opts)
	fn = c.fn
	q.hasFn = fn != nil
	q.p.init(c, size)
	return q
}

// EnQueue encodes m with m.Bytes() at once and queues it for the WithFn
// handler. It waits for room while the queue is full; it returns ErrClosed
// after Shutdown or Release, and an error if the Queue has no WithFn handler.
// It costs one allocation per message (the TaskMessage the handler gets).
func (q *Queue) EnQueue(m QueuedMessage, pol ...Policy) error {
	if !q.hasFn {
		q.p.rejected.Add(1)
		return errNoFn
	}
	if m == nil {
		q.p.rejected.Add(1)
		return errors.New("jobq: EnQueue: nil message")
	}
	return q.enqueue(legacyJob{msg: m.Bytes()}, pol)
}

// EnQueueTask queues fn to run on a worker with the pool's ctx. It waits for
// room while the queue is full and returns ErrClosed after Shutdown or
// Release. It allocates nothing; measured on 2 cores a trivial task costs
// about 110-200 ns end to end, about 2 times a plain channel worker pool
// (BenchmarkEnQueueTask beside BenchmarkChannelPool).
func (q *Queue) EnQueueTask(fn func(ctx context.Context) error, pol ...Policy) error {
	if fn == nil {
		q.p.rejected.Add(1)
		return errors.New("jobq: EnQueueTask: nil fn")
	}
	return q.enqueue(legacyJob{fn: fn}, pol)
}

func (q *Queue) enqueue(j legacyJob, pol []Policy) error {
	return q.p.fire(context.Background(), j, pol, true)
}

// BusyWorkers reports the number of handlers running now.
func (q *Queue) BusyWorkers() int64 { return q.p.Metrics().Running }

// SubmittedTasks reports the jobs accepted so far.
func (q *Queue) SubmittedTasks() uint64 { return q.p.Metrics().Submitted }

// SuccessTasks reports the jobs that succeeded.
func (q *Queue) SuccessTasks() uint64 { return q.p.Metrics().Succeeded }

// FailureTasks reports the jobs that failed or were cancelled.
func (q *Queue) FailureTasks() uint64 {
	m := q.p.Metrics()
	return m.Failed + m.Canceled
}

// CompletedTasks reports the jobs that ended, whatever the outcome.
func (q *Queue) CompletedTasks() uint64 {
	m := q.p.Metrics()
	return m.Succeeded + m.Failed + m.Canceled
}

// Metrics returns a snapshot of the Queue's counters.
func (q *Queue) Metrics() Metrics { return q.p.Metrics() }

// UpdateWorkerCount resizes the Queue's worker pool, as Pool.Resize does.
// It panics if n < 0.
func (q *Queue) UpdateWorkerCount(n int) {
	if n < 0 {
		panic(fmt.Sprintf("jobq: UpdateWorkerCount: n must be >= 0, got %d", n))
	}
	q.p.Resize(n)
}

// Shutdown stops the Queue as Pool.Shutdown does.
func (q *Queue) Shutdown(ctx context.Context) error { return q.p.Shutdown(ctx) }

// Release stops intake and returns once every accepted job has ended.
func (q *Queue) Release() { _ = q.p.Close() }

// ownerKey is the context key under which a handler's ctx gives itself, so
// that a submission made with it, or with a context derived from it, can be
// recognised: to keep the ctx from reuse (see keep), and, when it is a
// handler of the same pool, for fork–join.
type ownerKey struct{}

// keepHandlerCtx returns the handler ctx that ctx is or derives from, if
// any, marked as kept (see keep): the caller is about to submit a job that
// holds ctx.
func keepHandlerCtx(ctx context.Context) *runCtx {
	rc, _ := ctx.Value(ownerKey{}).(*runCtx)
	if rc != nil {
		rc.keep()
	}
	return rc
}

// runCtx flags, in the low bits of runCtx.state above which the attempt
// generation counts.
const (
	ctxCancelled = 1 // err is set (and done, if made, is closed)
	ctxShared    = 2 // Done or AfterFunc was called: see runCtx
	ctxFlags     = 3
)

// runCtx is the context a handler receives. Each worker owns one and hands
// it to every attempt it runs, so an attempt allocates no context. A handler
// that outlives its attempt (a timeout it ignores) keeps its worker, so the
// ctx is never reused under a running handler.
//
// It carries the submission ctx's values and cancellation, the attempt's
// deadline, and the pool's own cancellation (Cancel, timeout, Shutdown past
// its deadline). An attempt that never asks for Done and never has a
// context derived from its ctx touches no lock: begin and end are an atomic
// operation each. Once Done or AfterFunc is called (context.WithCancel and
// its kin call them), the ctx may be watched from other goroutines: it is
// cancelled when the attempt ends and then retired, never reused, and the
// worker takes a fresh one.
type runCtx struct {
	state atomic.Uint64 // gen<<2 | flags

	// Set by begin, read without a lock while the attempt runs.
	parent   context.Context
	deadline time.Time // attempt deadline; zero when none
	owner    any       // the pool running the handler; set once

	mu   sync.Mutex
	done chan struct{}
	err  error
	// own: the pool's first cancellation of the attempt (timeout,
	// Shutdown's give-up), recorded even when err latched the parent's
	// before it, so that ownErr does not lose it.
	own    error
	stop   func() bool // unregisters the watch on parent
	afters []*func()   // AfterFunc callbacks, run on cancellation
}

// begin readies c for a new attempt and returns its generation. c is not
// shared.
func (c *runCtx) begin(parent context.Context, deadline time.Time) uint64 {
	c.parent = parent
	if !deadline.IsZero() || !c.deadline.IsZero() {
		c.deadline = deadline
	}
	if s := c.state.Load(); s&ctxFlags == 0 && c.state.CompareAndSwap(s, s+4) {
		return s>>2 + 1
	}
	// The last attempt was cancelled: only this goroutine could see it.
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err, c.own = nil, nil
	g := c.state.Load()>>2 + 1
	c.state.Store(g << 2)
	return g
}

// end closes the attempt and reports whether c may serve another. A shared
// ctx is cancelled for good, so that whatever still watches it sees the
// attempt over.
func (c *runCtx) end() bool {
	if c.state.Load()&ctxShared == 0 {
		return true
	}
	c.mu.Lock()
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
	c.mu.Unlock()
	c.cancel(c.state.Load()>>2, context.Canceled, false)
	return false
}

// cancel cancels attempt gen with err (context.Canceled or
// context.DeadlineExceeded, or the parent's error when inherited); it
// reports whether it did.
func (c *runCtx) cancel(gen uint64, err error, inherited bool) bool {
	c.mu.Lock()
	for {
		s := c.state.Load()
		if s>>2 != gen || s&ctxCancelled != 0 {
			if s>>2 == gen && !inherited && c.own == nil {
				// Err stays latched; the pool's cancellation counts.
				c.own = err
			}
			c.mu.Unlock()
			return false
		}
		if c.state.CompareAndSwap(s, s|ctxCancelled) {
			break
		}
	}
	c.err = err
	if !inherited {
		c.own = err
	}
	if c.done != nil {
		close(c.done)
	}
	afters := c.afters
	c.afters = nil
	c.mu.Unlock()
	for _, f := range afters {
		go (*f)()
	}
	return true
}

// cancelCurrent cancels whatever attempt is current.
func (c *runCtx) cancelCurrent(err error) { c.cancel(c.state.Load()>>2, err, false) }

// ownErr is the cancellation the pool applied to the current attempt, if
// any: not the parent's, which the attempt may have inherited.
func (c *runCtx) ownErr() error {
	if c.state.Load()&ctxCancelled == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.own
}

// share marks c as watched from elsewhere and, the first time, starts
// watching the parent's cancellation. c.mu is held.
func (c *runCtx) share() {
	for {
		s := c.state.Load()
		if s&ctxShared != 0 || c.state.CompareAndSwap(s, s|ctxShared) {
			break
		}
	}
	if c.stop == nil && c.state.Load()&ctxCancelled == 0 && c.parent.Done() != nil {
		g, parent := c.state.Load()>>2, c.parent
		c.stop = context.AfterFunc(parent, func() { c.cancel(g, parent.Err(), true) })
	}
}

func (c *runCtx) Deadline() (time.Time, bool) {
	d, ok := c.parent.Deadline()
	if !c.deadline.IsZero() && (!ok || c.deadline.Before(d)) {
		d, ok = c.deadline, true
	}
	return d, ok
}

func (c *runCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		c.share()
		if c.state.Load()&ctxCancelled != 0 {
			close(c.done)
		}
	}
	return c.done
}

// AfterFunc arranges for f to run in its own goroutine once the ctx is
// cancelled, like context.AfterFunc. The context package uses it to cancel
// contexts derived from a handler's ctx without a goroutine of its own.
func (c *runCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.share()
	if c.state.Load()&ctxCancelled != 0 {
		go f()
		return func() bool { return false }
	}
	fp := &f
	c.afters = append(c.afters, fp)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.afters {
			if x == fp {
				c.afters = append(c.afters[:i], c.afters[i+1:]...)
				return true
			}
		}
		return false
	}
}

// Err reports the first cancellation of the attempt, the pool's or the
// parent's. It latches the parent's error as the attempt's own, so that it
// stays the same once non-nil, and Done is closed (if made) before Err
// reports it, as the context contract requires, instead of when the
// parent's watch gets round to it.
func (c *runCtx) Err() error {
	if c.state.Load()&ctxCancelled == 0 {
		perr := c.parent.Err()
		if perr == nil {
			return nil
		}
		if !c.cancel(c.state.Load()>>2, perr, true) && c.state.Load()&ctxCancelled == 0 {
			return perr
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *runCtx) Value(key any) any {
	if _, ok := key.(ownerKey); ok {
		return c
	}
	return c.parent.Value(key)
}

// keep marks c as held beyond its attempt: a job was submitted with it, or
// with a context derived from it. As after Done, the attempt's end then
// cancels c and retires it, so the job never sees c reused for another
// attempt, nor c made its own parent when the job runs on c's worker.
func (c *runCtx) keep() {
	if c.state.Load()&ctxShared != 0 {
		return
	}
	c.mu.Lock()
	c.share()
	c.mu.Unlock()
}
