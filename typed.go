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
	"sync"

	"github.com/seed-bb9ff1e7/jobq/internal/engine"
)

// Handler is a typed job handler. Its ctx is a context.Context like any
// other: its values never change, it is safe to use from any goroutine, and
// it may be kept after the handler returns. It carries the submission ctx's
// values and cancellation, the attempt's deadline (Policy.Timeout,
// MaxElapsed), and the pool's own cancellation (Result.Cancel, Shutdown past
// its deadline); Attempt(ctx) tells the attempt. A job with a ctx of its own
// (the submission ctx carries values or can be cancelled, or the attempt has
// a deadline) gets one that is done once its handler has returned, so a
// child job submitted with it and not awaited is cancelled then, unless it
// has ended; submit it with context.WithoutCancel(ctx) to let it outlive
// the handler. A fire-and-forget job submitted with a bare
// context.Background() and the pool's policy shares the pool's ctx, done
// at Shutdown's give-up; a Map's items share the Map's, done when the Map
// returns.
type Handler[In, Out any] func(ctx context.Context, in In) (Out, error)

// Pool is a fixed, resizable set of workers running a typed handler over a
// bounded queue. Every method is safe for concurrent use. See New.
type Pool[In, Out any] struct {
	e   *engine.Pool[In, Out]
	def Policy // the pool default merged over the library defaults
}

// New returns a pool of workers running h, ready for submissions. Options
// set the queue bound (WithQueueSize), the default policy (WithPolicy) and
// the end observer (WithObserver). It panics if workers < 1 or h is nil.
//
// Call Shutdown or Close when done with the pool: its workers are goroutines
// that live until then.
func New[In, Out any](workers int, h Handler[In, Out], opts ...Option) *Pool[In, Out] {
	if workers < 1 {
		panic(fmt.Sprintf("jobq: New: workers must be >= 1, got %d", workers))
	}
	if h == nil {
		panic("jobq: New: handler h must not be nil")
	}
	c := configure(opts)
	if c.fn != nil {
		panic("jobq: New: WithFn applies only to NewPool; New takes a typed handler")
	}
	return newPool(workers, engine.Handler[In, Out](h), c)
}

func newPool[In, Out any](workers int, h engine.Handler[In, Out], c *config) *Pool[In, Out] {
	p := &Pool[In, Out]{def: c.policy.merge(defaultPolicy)}
	p.e = engine.New(workers, h, engine.Config{
		QueueSize: c.queueSize,
		Policy:    p.def.resolved(),
		OnEnd:     c.onEnd,
	})
	return p
}

// policy resolves the one policy a submission gave, over the pool's default.
func (p *Pool[In, Out]) policy(pol []Policy) (engine.Policy, error) {
	if len(pol) > 1 {
		return engine.Policy{}, fmt.Errorf("%w: %d policies given, want at most 1", ErrInvalidPolicy, len(pol))
	}
	if err := pol[0].validate(); err != nil {
		return engine.Policy{}, err
	}
	m := pol[0].merge(p.def)
	return m.resolved(), nil
}

// Submit queues in for the handler and returns its Result. It waits for room
// while the queue is full, in arrival order with other waiting submitters,
// until ctx ends; the Result then fails with ctx.Err() and the job never
// runs. After Shutdown the Result fails with ErrClosed. pol, at most one,
// overrides the pool's default policy for this job. ctx also gives the
// handler its values and cancellation; a job whose ctx ends while it is
// queued ends then, cancelled, without waiting for a worker.
//
// Cost: one allocation (the Result, which is also the first attempt's
// handler ctx), with or without a policy of its own; a ctx that can be
// cancelled adds the watch that ends the job when it does (about three
// allocations), except a handler's own ctx, which watches its children
// without allocating. The README and internal/benchcmp give the measured
// costs.
//
// Called from a handler of the same pool with the handler's ctx, Submit
// never waits: when the queue is full, the job runs at once in the caller.
func (p *Pool[In, Out]) Submit(ctx context.Context, in In, pol ...Policy) *Result[Out] {
	r, _ := p.submit(ctx, in, pol, true)
	return r
}

// TrySubmit is Submit without waiting: when the queue is full, or other
// submitters wait for room, it returns ErrQueueFull at once, and ErrClosed
// after Shutdown; the Result returned with an error has completed with it.
// From a handler of the same pool it fails likewise, where Submit would run
// the job in the calling handler.
func (p *Pool[In, Out]) TrySubmit(ctx context.Context, in In, pol ...Policy) (*Result[Out], error) {
	return p.submit(ctx, in, pol, false)
}

func (p *Pool[In, Out]) submit(ctx context.Context, in In, pol []Policy, wait bool) (*Result[Out], error) {
	if ctx == nil {
		p.e.Reject()
		return failed[Out](errNilContext), errNilContext
	}
	if len(pol) == 0 {
		j, err := p.e.Submit(ctx, in, wait, wait)
		return resultOf(&j.Future), err
	}
	ep, err := p.policy(pol)
	if err != nil {
		p.e.Reject()
		return failed[Out](err), err
	}
	j, err := p.e.SubmitWith(ctx, in, ep, wait, wait)
	return resultOf(&j.Future), err
}

// Go queues in for the handler without a Result: the outcome shows in
// Metrics and to the end observer (WithObserver). Like Submit it waits for
// room while the queue is full, until ctx ends, and returns ctx.Err() then;
// it returns ErrClosed after Shutdown. pol, at most one, overrides the
// pool's default policy.
//
// Cost: no allocation for a job submitted with context.Background() and
// the pool's policy (unless that policy has a Timeout or MaxElapsed); any
// other Go costs what a Submit does. A retry allocates a record for the
// job. The README and internal/benchcmp give the measured costs.
func (p *Pool[In, Out]) Go(ctx context.Context, in In, pol ...Policy) error {
	return p.fire(ctx, in, pol, true)
}

// TryGo is Go without waiting: when the queue is full, or other submitters
// wait for room, it returns ErrQueueFull at once; ErrClosed after Shutdown.
func (p *Pool[In, Out]) TryGo(ctx context.Context, in In, pol ...Policy) error {
	return p.fire(ctx, in, pol, false)
}

func (p *Pool[In, Out]) fire(ctx context.Context, in In, pol []Policy, wait bool) error {
	if ctx == nil {
		p.e.Reject()
		return errNilContext
	}
	if len(pol) == 0 {
		return p.e.Go(ctx, in, wait)
	}
	ep, err := p.policy(pol)
	if err != nil {
		p.e.Reject()
		return err
	}
	return p.e.GoWith(ctx, in, ep, wait)
}

// Attempt reports, inside a handler, the number of the attempt its ctx
// belongs to, from 1; for any other ctx, 0. A ctx derived from the
// handler's reports the same. Handlers run by a backend outside this
// package (such as jobq/jetstream, where the count includes redeliveries)
// report what it set with ContextWithAttempt.
func Attempt(ctx context.Context) int { return engine.Attempt(ctx) }

// ContextWithAttempt returns a copy of ctx for which Attempt reports n: for
// a backend outside this package that runs Handlers itself, so that they
// read their attempt as they do in a Pool. It panics if n < 1.
//
// Cost: one context value (an allocation for n above 255).
func ContextWithAttempt(ctx context.Context, n int) context.Context {
	if n < 1 {
		panic(fmt.Sprintf("jobq: ContextWithAttempt: n must be >= 1, got %d", n))
	}
	return engine.WithAttempt(ctx, n)
}

// Resize sets the number of workers. Growing starts workers at once, each
// ready to take a job as soon as Resize returns; shrinking retires idle
// workers at once and busy ones as their jobs end. Resize(0) pauses the
// pool: jobs queue up and run when it grows again (a graceful Shutdown of a
// paused pool with queued jobs waits for that). Once Shutdown has drained
// the pool, Resize starts no workers. It panics if workers < 0.
func (p *Pool[In, Out]) Resize(workers int) {
	if workers < 0 {
		panic(fmt.Sprintf("jobq: Resize: workers must be >= 0, got %d", workers))
	}
	p.e.Resize(workers)
}

// Workers reports the number of workers the pool is sized to.
func (p *Pool[In, Out]) Workers() int { return p.e.Workers() }

// Metrics returns a snapshot of the pool's counters.
func (p *Pool[In, Out]) Metrics() Metrics { return Metrics(p.e.Metrics()) }

// Shutdown stops intake at once: later submissions fail with ErrClosed, and
// submitters waiting for room give up with it. It then waits until every
// accepted job has ended, queued ones and ones in retry backoff included, and
// every worker has exited, and returns nil.
//
// If ctx ends first, Shutdown gives up: queued jobs and jobs in backoff end
// with ErrClosed without running, running handlers have their ctx cancelled
// and their Results complete with ErrClosed, and Shutdown returns ctx.Err()
// without waiting for handlers that ignore their ctx. An attempt that ended
// on its own as Shutdown gave up keeps that outcome.
//
// Shutdown is idempotent and safe to call concurrently with anything,
// itself included.
func (p *Pool[In, Out]) Shutdown(ctx context.Context) error { return p.e.Shutdown(ctx) }

// Close is Shutdown(context.Background()): it returns once every accepted
// job has ended. It always returns nil.
func (p *Pool[In, Out]) Close() error { return p.Shutdown(context.Background()) }

// engineOf returns p's engine, as the handler ctx of p's jobs names it.
func (p *Pool[In, Out]) engineOf() any { return p.e }

// A GroupOption configures a Group.
type GroupOption func(*groupConfig)

type groupConfig struct{ cancelOnError bool }

// CancelOnError makes the group's first error cancel the group's ctx, so
// that its other jobs stop: queued ones end without running, running ones
// see their ctx cancelled. Their cancellations are not the group's error.
func CancelOnError() GroupOption { return func(c *groupConfig) { c.cancelOnError = true } }

// Group is a set of jobs of one pool awaited together, as errgroup.Group
// awaits goroutines: Go and Submit add jobs, Wait waits for every one of
// them and returns the first error. A group's jobs are ordinary jobs of the
// pool (its policies, Metrics, the end observer and fork–join apply), and
// any number of groups may share a pool; Wait sees only its own group's
// jobs and does not shut the pool down. A Group is safe for concurrent
// use; Go and Submit must not be called after Wait has returned, as with
// errgroup and sync.WaitGroup, unless Wait is called again.
type Group[In, Out any] struct {
	p      *Pool[In, Out]
	ctx    context.Context
	cancel context.CancelCauseFunc // with CancelOnError
	wg     sync.WaitGroup
	once   sync.Once
	err    error

	mu     sync.Mutex
	nested []*Result[Out] // fork–join children not yet awaited, for Wait to help; guarded by mu
}

// Group returns a new group of jobs of p, submitted with ctx (or, with
// CancelOnError, a ctx derived from it). Cost: nothing beyond the Group
// without CancelOnError, a cancellable ctx with it, and per job a Submit
// and its completion hook.
func (p *Pool[In, Out]) Group(ctx context.Context, opts ...GroupOption) *Group[In, Out] {
	if ctx == nil {
		panic("jobq: Group: ctx must not be nil")
	}
	var c groupConfig
	for _, o := range opts {
		o(&c)
	}
	g := &Group[In, Out]{p: p, ctx: ctx}
	if c.cancelOnError {
		g.ctx, g.cancel = context.WithCancelCause(ctx)
	}
	return g
}

// Go submits in as a job of the group, waiting for room as Pool.Go does,
// and returns nil once it is queued. A refused submission (ErrClosed, the
// group ctx's error, an invalid policy) returns its error, which also
// counts as the group's error.
func (g *Group[In, Out]) Go(in In, pol ...Policy) error {
	_, err := g.submit(in, pol)
	return err
}

// Submit submits in as a job of the group, as Pool.Submit does, and returns
// its Result. A refused submission's Result holds its error, which also
// counts as the group's error.
func (g *Group[In, Out]) Submit(in In, pol ...Policy) *Result[Out] {
	r, _ := g.submit(in, pol)
	return r
}

func (g *Group[In, Out]) submit(in In, pol []Policy) (*Result[Out], error) {
	g.wg.Add(1)
	r, err := g.p.submit(g.ctx, in, pol, true)
	whenDone(r, func() {
		if _, err := r.f().Outcome(); err != nil {
			g.fail(err)
		}
		g.wg.Done()
	})
	if r.nested() && !r.isDone() {
		// Submitted from a handler of the pool: a Wait in that handler
		// must run it if it is still queued, as Await does.
		g.mu.Lock()
		g.nested = append(g.nested, r)
		g.mu.Unlock()
	}
	return r, err
}

// fail records the group's first error and, with CancelOnError, cancels the
// group's ctx.
func (g *Group[In, Out]) fail(err error) {
	g.once.Do(func() {
		g.err = err
		if g.cancel != nil {
			g.cancel(err)
		}
	})
}

// Wait waits until every job of the group has ended and returns the first
// error one ended with (nil if none did). The other jobs' errors are in
// their Results. With CancelOnError, Wait then cancels the group's ctx,
// releasing it.
//
// In a handler of the pool, for a group made with the handler's ctx, Wait
// runs the group's jobs that have not started in the calling goroutine,
// as Result.Await does, so fork–join with a Group cannot deadlock however
// busy the pool is.
func (g *Group[In, Out]) Wait() error {
	for {
		g.mu.Lock()
		rs := g.nested
		g.nested = nil
		g.mu.Unlock()
		if len(rs) == 0 {
			break
		}
		for _, r := range rs {
			r.Await(context.Background()) // runs r here if it is still queued
		}
	}
	g.wg.Wait()
	if g.cancel != nil {
		g.cancel(context.Canceled)
	}
	return g.err
}
