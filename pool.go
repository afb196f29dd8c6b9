package jobq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/seed-bb9ff1e7/jobq/internal/engine"
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
	onEnd     func(engine.End)
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

// Outcome is how a job ended, as Metrics counts it.
type Outcome uint8

const (
	Succeeded Outcome = Outcome(engine.Succeeded) // its handler returned a nil error
	Failed    Outcome = Outcome(engine.Failed)    // it ended with an error other than a cancellation
	Canceled  Outcome = Outcome(engine.Canceled)  // it was cancelled; see Metrics.Canceled
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Succeeded:
		return "succeeded"
	case Failed:
		return "failed"
	case Canceled:
		return "canceled"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// End describes how one job ended, for the observer set with WithObserver.
type End struct {
	Outcome  Outcome
	Err      error         // the job's final error; nil when it succeeded
	Attempts int           // attempts started; 0 for a job that ended before it ran
	Queued   time.Duration // time it waited: in the queue, for room after a retry, in backoff
	Running  time.Duration // time its handlers ran, all attempts together
}

// WithObserver sets f to observe every job's end, whether submitted with
// Submit, Go, EnQueue, EnQueueTask or through Map, exactly once, before its
// Result completes. A job is counted in Metrics before f sees it, except
// the success, on its first attempt, of a job held without a record (a Go
// job with a bare context.Background() and the pool's policy, or a Map
// item, under a policy without Timeout or MaxElapsed), which its worker
// counts as it comes back for its next job, before the pool can be idle.
// A panic in a Go job reaches f as a *PanicError with its stack. f runs in
// the goroutine that ended the job (usually a worker), so it must be safe
// for concurrent use and quick: a slow f holds that worker. Since the
// job's Result has not completed yet, f must not await or cancel it. It
// panics if f is nil.
//
// Cost: nothing when not set; when set, about three clock readings per job
// (BenchmarkGoObserver: on 2 cores about 130-220 ns a trivial job).
func WithObserver(f func(End)) Option {
	if f == nil {
		panic("jobq: WithObserver: f must not be nil")
	}
	return func(c *config) {
		c.onEnd = func(e engine.End) {
			f(End{Outcome: Outcome(e.Outcome), Err: e.Err, Attempts: e.Attempts, Queued: e.Queued, Running: e.Running})
		}
	}
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
	Queued  int64 // jobs accepted and waiting: in the queue or in a retry backoff

	Workers int // worker goroutines alive
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
	c := configure(opts)
	fn := c.fn
	h := func(ctx context.Context, j legacyJob) (struct{}, error) {
		if j.fn != nil {
			return struct{}{}, j.fn(ctx)
		}
		return struct{}{}, fn(ctx, j.msg)
	}
	return &Queue{p: newPool(size, h, c), hasFn: fn != nil}
}

// EnQueue encodes m with m.Bytes() at once and queues it for the WithFn
// handler. It waits for room while the queue is full; it returns ErrClosed
// after Shutdown or Release, and an error if the Queue has no WithFn handler.
// It costs one allocation per message (the TaskMessage the handler gets).
func (q *Queue) EnQueue(m QueuedMessage, pol ...Policy) error {
	if !q.hasFn {
		q.p.e.Reject()
		return errNoFn
	}
	if m == nil {
		q.p.e.Reject()
		return errors.New("jobq: EnQueue: nil message")
	}
	return q.enqueue(legacyJob{msg: m.Bytes()}, pol)
}

// EnQueueTask queues fn to run on a worker with the pool's ctx, done at
// Shutdown's give-up. It waits for room while the queue is full and returns
// ErrClosed after Shutdown or Release. It allocates nothing without a
// policy of its own (see Pool.Go).
func (q *Queue) EnQueueTask(fn func(ctx context.Context) error, pol ...Policy) error {
	if fn == nil {
		q.p.e.Reject()
		return errors.New("jobq: EnQueueTask: nil fn")
	}
	return q.enqueue(legacyJob{fn: fn}, pol)
}

func (q *Queue) enqueue(j legacyJob, pol []Policy) error {
	return q.p.Go(context.Background(), j, pol...)
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

// configure applies opts over the defaults.
func configure(opts []Option) *config {
	c := &config{queueSize: DefaultQueueSize}
	for _, o := range opts {
		o(c)
	}
	return c
}
