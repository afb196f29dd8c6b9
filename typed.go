// Package jobq is an in-memory job queue and typed pipeline library.
//
// A [Pool] runs a typed [Handler] on a fixed, resizable number of worker
// goroutines that take jobs from a bounded ring buffer. Each submission
// returns a [Result] future to await; [Pool.Go] queues a job without one.
//
//	p := jobq.New(8, func(ctx context.Context, url string) (int, error) { ... })
//	defer p.Close()
//	r := p.Submit(ctx, "https://example.com", jobq.Policy{MaxAttempts: 3, Timeout: time.Second})
//	n, err := r.Await(ctx)
//
// A [Policy], per submission or as the pool default, adds retries with
// backoff and jitter, per-attempt timeouts and an overall deadline. Retries
// wait on timers, never in a worker. Stages chain pools into pipelines: per
// item with [Then], and as streams over iterators with [Map], [Batch] and
// [Values]. Every accepted job ends exactly once; [Pool.Shutdown] stops
// intake, runs what was accepted and waits for it, or gives up at its
// deadline with [ErrClosed]. [Pool.Metrics] counts what happened.
//
// The seed API, [NewPool] with [Queue.EnQueue] and [Queue.EnQueueTask],
// is a thin adapter over the same engine.
//
// Costs: on the hot paths a submission takes one lock and, when a worker is
// idle, one wake-up; [Pool.Go] and [Queue.EnQueueTask] allocate nothing,
// [Pool.Submit] allocates its Result, [Map] over a Pool allocates nothing per
// item unless the pool's policy has a Timeout or MaxElapsed. A retry
// allocates a record for a job that had none. The comparative benchmarks
// live in internal/benchcmp.
package jobq

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"time"
)

// Handler is a typed job handler. ctx carries the submission ctx's values
// and cancellation, the attempt's deadline (Policy.Timeout, MaxElapsed), and
// the pool's own cancellation (Result.Cancel, Shutdown past its deadline).
// The ctx is the pool's and is reused for the worker's next job: do not keep
// it after the handler returns. Contexts derived from it with a cancellation
// (context.WithCancel, WithTimeout, WithDeadline, AfterFunc,
// errgroup.WithContext), and its Done channel, are safe to keep: once a
// handler has asked for them, the ctx is cancelled when the handler returns
// and is not reused. context.WithValue alone does not count: a value
// context kept past the handler would see the worker's next job; derive it
// from WithCancel(ctx) to keep it. The same holds once a job is submitted
// with the ctx, or with a context derived from it, to any Pool or through
// Map or Then: such a job that the handler does not await is cancelled when
// the handler returns, unless it has ended. To let a job outlive the
// handler, submit it with context.WithoutCancel(ctx), which keeps the ctx's
// values.
type Handler[In, Out any] func(ctx context.Context, in In) (Out, error)

// New returns a pool of workers running h, ready for submissions. Options
// set the queue bound (WithQueueSize) and the default policy (WithPolicy).
// It panics if workers < 1 or h is nil.
//
// Call Shutdown or Close when done with the pool: its workers are goroutines
// that live until then.
func New[In, Out any](workers int, h Handler[In, Out], opts ...Option) *Pool[In, Out] {
	if workers < 1 {
		panic("jobq: New: workers must be >= 1")
	}
	if h == nil {
		panic("jobq: New: handler h must not be nil")
	}
	c := configure(opts)
	if c.fn != nil {
		panic("jobq: New: WithFn applies only to NewPool; New takes a typed handler")
	}
	p := &Pool[In, Out]{h: h}
	p.init(c, workers)
	return p
}

// job is one submitted job: its Result, and all the job needs to run and to
// be retried. It is the one allocation of a Submit.
type job[In, Out any] struct {
	Result[Out]
	p   *Pool[In, Out]
	ctx context.Context
	in  In
	// rs holds the job's own policy, if it has one (see policy), and what
	// its retries carry; nil until either is needed. The job's flags,
	// nested and awaited, live in its Result, beside its state: with no
	// policy pointer of its own, a job of small In and Out takes 128
	// bytes (see Result).
	rs *retryState
}

// retryState is what a job with a policy of its own, or that may be
// retried, carries between attempts. Only whoever holds the job (the winner
// of its state transition) touches it, but for timer, which is guarded by
// the pool's lock, and pol, set before the job is queued.
type retryState struct {
	pol   Policy // the job's own policy, merged over the pool's default; used when own
	own   bool
	start time.Time     // first attempt's start; zero until a MaxElapsed needs it
	prev  time.Duration // the last backoff delay
	errs  []error       // earlier attempts' errors
	timer *time.Timer   // the backoff timer
	// stopCtx unregisters the backoff's watch on the job's ctx, which
	// ends the backoff early when the ctx ends. Guarded like timer.
	stopCtx func() bool
}

// merged resolves a submission's policies into one, merged over the pool
// default; own is false when none was given, and the pool default applies.
func (p *Pool[In, Out]) merged(pol []Policy) (m Policy, own bool, err error) {
	switch len(pol) {
	case 0:
		return m, false, nil
	case 1:
	default:
		return m, false, fmt.Errorf("%w: %d policies given, want at most 1", ErrInvalidPolicy, len(pol))
	}
	if err := pol[0].validate(); err != nil {
		return m, false, err
	}
	return pol[0].merge(p.def), true, nil
}

// route is merged for a fire-and-forget job: with no policy given, the
// pool's default route, shared; otherwise a route of its own, which costs
// one allocation.
func (p *Pool[In, Out]) route(pol []Policy) (*route[Out], error) {
	if len(pol) == 0 {
		return &p.defRoute, nil
	}
	m, own, err := p.merged(pol)
	if err != nil || !own {
		return &p.defRoute, err
	}
	rt := &ownRoute[Out]{own: m}
	rt.pol = &rt.own
	return &rt.route, nil
}

// ownPolicy is merged for a submitted job: nil with no policy given (the
// pool default applies); otherwise the job's retry state, holding the
// merged policy, which costs one allocation.
func (p *Pool[In, Out]) ownPolicy(pol []Policy) (*retryState, error) {
	if len(pol) == 0 {
		return nil, nil
	}
	m, own, err := p.merged(pol)
	if err != nil || !own {
		return nil, err
	}
	return &retryState{pol: m, own: true}, nil
}

// policy is j's policy: its own, or the pool's default.
func (j *job[In, Out]) policy() *Policy {
	if rs := j.rs; rs != nil && rs.own {
		return &rs.pol
	}
	return &j.p.def
}

// Submit queues in for the handler and returns its Result. It waits for room
// while the queue is full, until ctx ends; the Result then fails with
// ctx.Err() and the job never runs. After Shutdown the Result fails with
// ErrClosed. pol, at most one, overrides the pool's default policy for this
// job. ctx also gives the handler its values and cancellation.
//
// Cost: one allocation (the Result, 128 bytes for small In and Out) with no
// policy or the pool's, and one more (the job's retry state) with a policy
// of its own or a MaxElapsed. Measured on 2 cores, Submit plus Await
// of a trivial job costs about 250-420 ns, about 4 times a hand-written
// channel pool with a result slot per job and faster than the result APIs
// of pond, conc and errgroup (BenchmarkSubmitAwait here and in
// internal/benchcmp). That channel pool, made to allocate and await a bare
// future per job holding a ctx, an error and a state word (80 bytes),
// already takes about 2.3 times as long, and Submit plus Await about 1.6
// times that (BenchmarkChannelPoolFutures/job). The same channel pool
// returning each result on a reply channel of its own, as hand-written
// pools usually do, takes 2 to 4.5 times the result-slot pool, and Submit
// plus Await about 1.2 times that (BenchmarkChannelPoolFutures/reply). A
// Timeout adds a timer reset per attempt.
//
// Called from a handler of the same pool with the handler's ctx, Submit
// never waits: when the queue is full, the job runs at once in the caller.
func (p *Pool[In, Out]) Submit(ctx context.Context, in In, pol ...Policy) *Result[Out] {
	r, _ := p.submit(ctx, in, pol, true)
	return r
}

// TrySubmit is Submit without waiting: when the queue is full it returns
// ErrQueueFull at once, and ErrClosed after Shutdown; the Result returned
// with an error has completed with it. From a handler of the same pool it
// fails likewise, where Submit would run the job in the calling handler.
func (p *Pool[In, Out]) TrySubmit(ctx context.Context, in In, pol ...Policy) (*Result[Out], error) {
	return p.submit(ctx, in, pol, false)
}

func (p *Pool[In, Out]) submit(ctx context.Context, in In, pol []Policy, wait bool) (*Result[Out], error) {
	if ctx == nil {
		p.rejected.Add(1)
		return failed[Out](errNilContext), errNilContext
	}
	rs, err := p.ownPolicy(pol)
	if err != nil {
		p.rejected.Add(1)
		return failed[Out](err), err
	}
	j := p.newJob(ctx, in)
	j.rs = rs
	mayRunInline := wait // on a full queue TrySubmit fails with ErrQueueFull instead
	if rc := keepHandlerCtx(ctx); rc != nil && rc.owner == any(p) {
		j.flags.Or(flagNested)
		wait = false
	}
	err = p.enqueue(ctx, task[In, Out]{j: j}, wait)
	if err == ErrQueueFull && j.nested() && mayRunInline {
		// Fork–join with the queue full: the caller runs the child.
		// The caller may be no worker of p (Then submits to next from
		// a goroutine of its own): keep a closing p from draining while
		// the child runs.
		p.mu.Lock()
		p.submitted++
		p.limbo++
		p.mu.Unlock()
		defer p.leaveLimbo()
		j.runInline()
		return &j.Result, nil
	}
	if err != nil {
		p.rejected.Add(1)
		j.state.Store(mkState(0, phaseDone))
		var zero Out
		j.complete(zero, err)
		return &j.Result, err
	}
	return &j.Result, nil
}

// Go queues in for the handler without a Result: the outcome shows only in
// Metrics. It never waits: it returns ErrQueueFull when the queue is full and
// ErrClosed after Shutdown. pol, at most one, overrides the pool's default
// policy; a per-attempt timeout cancels the handler's ctx, and the job's
// outcome is taken when the handler returns.
//
// Cost: no allocation without a policy of its own (one with one); a retry
// allocates a record for the job. Measured on 2 cores, a trivial job costs
// about 100-200 ns end to end, 1.5 to 2.3 times a plain worker pool fed
// through a buffered channel (BenchmarkGo beside BenchmarkChannelPool).
func (p *Pool[In, Out]) Go(ctx context.Context, in In, pol ...Policy) error {
	return p.fire(ctx, in, pol, false)
}

func (p *Pool[In, Out]) fire(ctx context.Context, in In, pol []Policy, wait bool) error {
	if ctx == nil {
		p.rejected.Add(1)
		return errNilContext
	}
	rt, err := p.route(pol)
	if err == nil {
		keepHandlerCtx(ctx)
		err = p.enqueue(ctx, task[In, Out]{ctx: ctx, in: in, rt: rt}, wait)
	}
	if err != nil {
		p.rejected.Add(1)
	}
	return err
}

// call runs the handler, turning a panic into a *PanicError.
func (p *Pool[In, Out]) call(ctx context.Context, in In) (out Out, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return p.h(ctx, in)
}

// deadline is the end of an attempt starting now, zero when unbounded.
func deadline(pol *Policy, start, now time.Time) time.Time {
	var d time.Time
	if pol.Timeout > 0 {
		d = now.Add(pol.Timeout)
	}
	if pol.MaxElapsed > 0 {
		if e := start.Add(pol.MaxElapsed); d.IsZero() || e.Before(d) {
			d = e
		}
	}
	return d
}

// runFire runs a fire-and-forget job on w. It reports a job without a sink
// that succeeded, which it leaves for its caller to count.
func (w *worker[In, Out]) runFire(t task[In, Out]) bool {
	p := w.p
	if err := t.ctx.Err(); err != nil {
		p.drop(t, err) // its ctx ended while it waited
		return false
	}
	pol, sink := t.rt.pol, t.rt.sink
	var start, dl time.Time
	if pol.Timeout > 0 || pol.MaxElapsed > 0 || pol.MaxAttempts > 1 {
		start = time.Now()
		dl = deadline(pol, start, start)
	}
	rc, gen := w.begin(t.ctx, dl)
	if p.quitting.Load() {
		// Shutdown gave up on the jobs after this one left the queue,
		// too early to see it: it must not start.
		w.endAttempt(rc)
		p.drop(t, ErrClosed)
		return false
	}
	if !dl.IsZero() {
		w.arm(rc, gen, nil, 1, dl)
	}
	out, err := p.call(rc, t.in)
	if !dl.IsZero() {
		w.disarm()
	}
	own := rc.ownErr() // timed out, or Shutdown gave up on it (not the parent's)
	if own != nil {
		err = own
	}
	w.endAttempt(rc)
	if err == nil {
		if sink == nil {
			return true
		}
		w.succeeded.Add(1)
		sink.done(t.slot, out, nil)
		return false
	}
	if own == context.Canceled {
		// Shutdown gave up on it: no retry, and the error a Result gets.
		p.drop(t, ErrClosed)
		return false
	}
	if delay, ok := pol.retry(t.ctx, 1, err, 0, time.Since(start), rand.Float64); ok {
		// Only now does the job need a record of its own.
		j := p.newJob(t.ctx, t.in)
		j.rs = &retryState{start: start}
		if pol != &p.def {
			j.rs.pol, j.rs.own = *pol, true
		}
		if sink != nil {
			j.sendTo(sink, t.slot)
		}
		j.state.Store(mkState(1, phaseFinishing))
		j.retryLater(1, err, delay)
		return false
	}
	err = finalErr(pol, t.ctx, 1, err, nil)
	p.count(w, err)
	if sink != nil {
		var zero Out
		sink.done(t.slot, zero, err)
	}
	return false
}

// begin readies w's handler ctx for an attempt with parent ctx and deadline
// dl, and returns it with the attempt's generation.
func (w *worker[In, Out]) begin(ctx context.Context, dl time.Time) (*runCtx, uint64) {
	rc := w.rc.Load()
	if w.plain && dl.IsZero() && rc.state.Load()&ctxFlags == 0 {
		// The last attempt on rc had no deadline either, and it ended
		// clean: no timer or watch can reach it late, and Cancel reaches
		// a job's attempt only while w holds the job (cancelRunning
		// finds it by w.cur, under the pool's lock, and sets the flags
		// it would leave). So this attempt may take over its generation
		// and spare begin's atomic operation. Shutdown's give-up
		// cancels whatever runs on rc, this attempt included.
		rc.parent = ctx
		return rc, rc.state.Load() >> 2
	}
	gen := rc.begin(ctx, dl)
	w.plain = dl.IsZero() // a timer may fire late: see arm
	return rc, gen
}

// submitItem queues in for Map, waiting for room like Submit: the outcome
// goes to slot of rt's sink. rt, the Map's route, has the pool's default
// policy. Without a Timeout or MaxElapsed in the pool's policy
// no Result is made, so it allocates nothing. With one, the item gets a job
// record, as Submit makes: an attempt's deadline ends a job at once, even if
// its handler ignores ctx, where a fire-and-forget job's outcome waits for
// the handler.
func (p *Pool[In, Out]) submitItem(ctx context.Context, in In, rt *route[Out], slot int32) error {
	t := task[In, Out]{ctx: ctx, in: in, rt: rt, slot: slot}
	if p.def.Timeout > 0 || p.def.MaxElapsed > 0 {
		j := p.newJob(ctx, in)
		j.sendTo(rt.sink, slot)
		t = task[In, Out]{j: j}
	}
	err := p.enqueue(ctx, t, true)
	if err != nil {
		p.rejected.Add(1)
	}
	return err
}

// newJob makes the record of a job of p, not yet queued: the Result it
// completes, and what its attempts need.
func (p *Pool[In, Out]) newJob(ctx context.Context, in In) *job[In, Out] {
	j := &job[In, Out]{p: p, ctx: ctx, in: in}
	j.ctl = j
	j.wait.Add(1)
	return j
}

// sendTo hands j's outcome to sink's slot once j completes: a Map item that
// has a record.
func (j *job[In, Out]) sendTo(sink itemSink[Out], slot int32) {
	j.onDone(func() { sink.done(slot, j.val, j.err) })
}

// finalErr is the final error of a job whose attempt k failed with err, given the
// errors of its earlier attempts.
func finalErr(pol *Policy, ctx context.Context, k int, err error, errs []error) error {
	if pol.MaxAttempts > 1 && pol.retryable(ctx, err) {
		return &ExhaustedError{Attempts: k, Errs: append(errs, err)}
	}
	return err
}

// runJob claims submitted job j and runs its next attempt on w.
func (w *worker[In, Out]) runJob(t task[In, Out]) {
	// A stale entry (its attempt was run by an awaiting handler, and the
	// job may now wait in backoff) must not claim the job.
	k := int(t.k)
	if !t.j.state.CompareAndSwap(mkState(k, phaseQueued), mkState(k+1, phaseRunning)) {
		// Cancelled, abandoned, or run by an awaiting handler. This
		// stale entry may be the last thing a closing pool held.
		t.j.awaitEnder()
		return
	}
	w.attempt(t.j, k+1)
}

// attempt runs attempt k of claimed job j on w.
func (w *worker[In, Out]) attempt(j *job[In, Out], k int) {
	p := w.p
	var zero Out
	if err := j.ctx.Err(); err != nil {
		// Its ctx ended while it waited: it is cancelled, whatever
		// the ctx's error, as runFire counts it.
		j.endAs(phaseRunning, err, true)
		return
	}
	pol := j.policy()
	var dl time.Time
	if pol.Timeout > 0 || pol.MaxElapsed > 0 {
		now := time.Now()
		start := now
		if pol.MaxElapsed > 0 {
			// Only MaxElapsed needs the first attempt's start.
			if j.rs == nil {
				j.rs = new(retryState)
			}
			if j.rs.start.IsZero() {
				j.rs.start = now
			}
			start = j.rs.start
		}
		dl = deadline(pol, start, now)
		if !now.Before(dl) {
			// MaxElapsed passed while the retry waited for a worker:
			// the attempt ends at its deadline without running.
			j.finish(w, k, zero, context.DeadlineExceeded)
			return
		}
	}
	rc, gen := w.begin(j.ctx, dl)
	// Cancel may have ended the attempt before begin, cancelling the ctx
	// generation before it, and Shutdown may have given up on the jobs
	// before this goroutine claimed j, or before an inline runner's record
	// was published.
	if j.state.Load() != mkState(k, phaseRunning) || p.quitting.Load() {
		j.end(phaseRunning, ErrClosed) // no-op unless quitting
		w.endAttempt(rc)
		return
	}
	if !dl.IsZero() {
		w.arm(rc, gen, j, k, dl)
	}
	out, err := p.call(rc, j.in)
	if !dl.IsZero() {
		w.disarm()
	}
	w.endAttempt(rc)
	j.finish(w, k, out, err)
}

// finish ends attempt k of j with (out, err), unless someone (a timeout,
// Cancel, Shutdown) ended it first: it completes the Result, or schedules a
// retry. w is the worker that ran the attempt, nil when not called by it.
func (j *job[In, Out]) finish(w *worker[In, Out], k int, out Out, err error) {
	running := mkState(k, phaseRunning)
	if err == nil {
		if j.state.CompareAndSwap(running, mkState(k, phaseDone)) {
			j.p.count(w, nil)
			j.complete(out, nil)
		} else {
			j.awaitEnder()
		}
		return
	}
	if !j.state.CompareAndSwap(running, mkState(k, phaseFinishing)) {
		j.awaitEnder() // ended by someone else
		return
	}
	// RetryIf, Backoff and Jitter run while the job is finishing: should
	// one panic (recovered by an awaiting handler that ran the attempt in
	// place), the job must not stay finishing for ever, never completed
	// nor counted, with Cancel spinning on it. It ends with the panic.
	// (A panicking OnRetry leaves it in backoff, no longer finishing.)
	decided := false
	defer func() {
		if decided {
			return
		}
		v := recover()
		// This attempt's finishing state only: a panicking OnRetry still
		// starts the backoff, after which a later attempt may be
		// finishing.
		if j.state.CompareAndSwap(mkState(k, phaseFinishing), mkState(k, phaseDone)) {
			perr := &PanicError{Value: v, Stack: debug.Stack()}
			j.p.count(w, perr)
			var zero Out
			j.complete(zero, perr)
		}
		panic(v)
	}()
	pol := j.policy()
	var prev, elapsed time.Duration
	var errs []error
	if rs := j.rs; rs != nil {
		prev, errs = rs.prev, rs.errs
		if pol.MaxElapsed > 0 {
			elapsed = time.Since(rs.start)
		}
	}
	if delay, ok := pol.retry(j.ctx, k, err, prev, elapsed, rand.Float64); ok {
		j.retryLater(k, err, delay) // leaves finishing for queued
		decided = true
		return
	}
	// finalErr may call RetryIf: it runs while the job is finishing, for
	// the deferred recovery above, and not once it is done, when a panic
	// would leave a done job that never completes, for awaitEnder to wait
	// on for ever.
	final := finalErr(pol, j.ctx, k, err, errs)
	decided = true
	j.state.Store(mkState(k, phaseDone))
	j.p.count(w, final)
	var zero Out
	j.complete(zero, final)
}

// awaitEnder waits, if someone else (Cancel, Shutdown's give-up, a
// timeout) has just ended j, until they have counted and completed it: a
// moment, as they do so right after the state change. The caller's worker
// then comes back for its next job, or retires and lets a closing pool
// drain, only once the count is in, so a Shutdown that returns nil never
// finds Metrics one short.
func (j *job[In, Out]) awaitEnder() {
	if j.state.Load()&phaseMask == phaseDone {
		j.wait.Wait()
	}
}

// retryLater puts j, whose attempt k failed with err, in backoff for delay.
// j is finishing attempt k, and only its caller holds it; it turns queued
// once it is in backoff, so that nobody can claim it on the way.
func (j *job[In, Out]) retryLater(k int, err error, delay time.Duration) {
	if j.rs == nil {
		j.rs = new(retryState)
	}
	j.rs.errs = append(j.rs.errs, err)
	j.rs.prev = delay
	j.p.retried.Add(1)
	// OnRetry observes the retry before its wait starts, so that it
	// happens before the next attempt; deferred, the backoff starts even
	// if OnRetry panics. Until then the job is in phaseFinishing, kept
	// from a draining pool by its busy worker or by limbo.
	defer j.p.backoff(j, k, delay)
	if f := j.policy().OnRetry; f != nil {
		f(k, err, delay)
	}
}

// requeue runs when j's backoff ends, by its timer or as its ctx ends: it
// queues j for its next attempt, ahead of new submissions and regardless of
// the queue bound. A job whose ctx has ended ends here, cancelled; the retry
// of a job that a goroutine awaits runs here, in its stead.
func (j *job[In, Out]) requeue() {
	p := j.p
	p.mu.Lock()
	if _, ok := p.backoffs[j]; !ok {
		p.mu.Unlock()
		return // cancelled or abandoned meanwhile
	}
	delete(p.backoffs, j)
	j.rs.stopBackoff() // its ctx may have ended it before the timer
	k := int(j.state.Load() >> 2)
	if err := j.ctx.Err(); err != nil {
		// Its ctx ended during the backoff (the watch beside the timer
		// fired): it ends now, cancelled, rather than when a worker
		// comes free to take it. In no queue meanwhile: limbo keeps a
		// closing pool from draining before it is counted.
		p.limbo++
		p.mu.Unlock()
		defer p.leaveLimbo()
		j.endAs(phaseQueued, err, true)
		return
	}
	if j.flags.Load()&flagAwaited != 0 {
		// A handler of this pool awaits j, holding its worker: run the
		// retry here, in its stead, as help does, rather than wait for
		// a worker that may never come free.
		p.limbo++ // in no queue meanwhile: keep Shutdown from draining
		p.mu.Unlock()
		defer p.leaveLimbo()
		if j.state.CompareAndSwap(mkState(k, phaseQueued), mkState(k+1, phaseRunning)) {
			j.runAttempt(k + 1)
		}
		return
	}
	p.retries.Push(task[In, Out]{j: j, k: int32(k)})
	if len(p.idle) > 0 {
		p.wakeOne()
	}
	p.mu.Unlock()
}

// end completes j with err, which is not nil, if it is still in phase from,
// and counts it as count would: a queued job that Shutdown abandons, or a
// running one that Cancel cancels or whose Result Shutdown gives up on. It
// reports whether it ended j.
func (j *job[In, Out]) end(from uint32, err error) bool {
	return j.endAs(from, err, isCancellation(err))
}

// endAs is end, counting j as Canceled if canceled and as Failed otherwise,
// whatever err: a job whose ctx ended before it ran is cancelled, though
// its error may be context.DeadlineExceeded.
func (j *job[In, Out]) endAs(from uint32, err error, canceled bool) bool {
	for {
		s := j.state.Load()
		if s&phaseMask != from {
			return false
		}
		if j.state.CompareAndSwap(s, s&^phaseMask|phaseDone) {
			if canceled {
				j.p.canceled.Add(1)
			} else {
				j.p.failed.Add(1)
			}
			var zero Out
			j.complete(zero, err)
			return true
		}
	}
}

// cancel implements Result.Cancel.
func (j *job[In, Out]) cancel() {
	for {
		switch j.state.Load() & phaseMask {
		case phaseDone:
			return
		case phaseQueued:
			if j.end(phaseQueued, context.Canceled) {
				j.p.unbackoff(j)
				return
			}
		case phaseRunning:
			if j.end(phaseRunning, context.Canceled) {
				j.p.cancelRunning(j)
				return
			}
		case phaseFinishing:
			// The attempt is ending; see whether it completes or
			// goes back to the queue for a retry.
			runtime.Gosched()
		}
	}
}

// help runs j in the calling goroutine if j was submitted from a handler of
// its own pool and has not started yet: the awaiting handler's worker does
// the work instead of blocking on it.
func (j *job[In, Out]) help() {
	if !j.nested() {
		return
	}
	p := j.p
	p.mu.Lock()
	j.flags.Or(flagAwaited) // its retries will run where its backoff ends
	_, inBackoff := p.backoffs[j]
	// Queued and not in backoff: in the queue, where a worker may not
	// come for it while its awaiting parents hold them all.
	s := j.state.Load()
	run := !inBackoff && s&phaseMask == phaseQueued
	if run {
		// The helper may be no worker of p (Then helps next's job from
		// a goroutine of its own): keep a closing p from draining
		// meanwhile.
		p.limbo++
	}
	p.mu.Unlock()
	if !run {
		return
	}
	// Deferred: a panic out of the attempt (OnRetry, RetryIf, a
	// completion hook) unwinds into the awaiting handler, whose pool
	// lives on and must still be able to drain.
	defer p.leaveLimbo()
	if k := int(s >> 2); j.state.CompareAndSwap(s, mkState(k+1, phaseRunning)) {
		j.runAttempt(k + 1)
	}
}

// leaveLimbo ends a job's stay in limbo.
func (p *Pool[In, Out]) leaveLimbo() {
	p.mu.Lock()
	p.limbo--
	p.wakeIfDrained()
	p.mu.Unlock()
}

// runInline runs every attempt of j in the calling goroutine: j's first
// attempt has not been queued.
func (j *job[In, Out]) runInline() {
	j.state.Store(mkState(1, phaseRunning))
	j.runAttempt(1)
}

// runAttempt runs attempt k of claimed job j in the calling goroutine, on a
// worker record of its own; retries go through the queue as usual.
func (j *job[In, Out]) runAttempt(k int) {
	p := j.p
	w := p.newWorker()
	w.cur, w.curK = j, k // for Cancel and Shutdown, like a worker's; and Metrics
	p.mu.Lock()
	p.inline = append(p.inline, w)
	p.mu.Unlock()
	defer w.dropInline()
	w.attempt(j, k)
}

// dropInline removes inline record w from its pool, keeping its counts.
func (w *worker[In, Out]) dropInline() {
	p := w.p
	p.mu.Lock()
	for i, x := range p.inline {
		if x == w {
			p.inline = append(p.inline[:i], p.inline[i+1:]...)
			break
		}
	}
	// In the critical section that drops w from p.inline, where Metrics
	// counted them until now.
	p.succeeded.Add(w.succeeded.Load())
	p.failed.Add(w.failed.Load())
	p.mu.Unlock()
}
