package jobq

import (
	"context"
	"errors"
	"fmt"

	"github.com/seed-bb9ff1e7/jobq/internal/engine"
)

var (
	// ErrClosed is returned for a submission to a pool that is shutting down
	// or shut down, and is the error of an accepted job that Shutdown gave up
	// on when its deadline passed.
	ErrClosed = engine.ErrClosed
	// ErrQueueFull is returned by TrySubmit and TryGo when the queue holds as
	// many jobs as WithQueueSize allows.
	ErrQueueFull = engine.ErrQueueFull
	// errNilContext is the answer to a nil submission context.
	errNilContext = errors.New("jobq: nil context")
)

// PanicError is the error of an attempt whose handler panicked. The pool
// recovers the panic, so the worker and the process live on. A PanicError is
// not retried unless the policy's RetryIf says so.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the panicking goroutine's stack, as debug.Stack reports it
}

// Error reports the panic value.
func (e *PanicError) Error() string { return fmt.Sprintf("jobq: handler panicked: %v", e.Value) }

// Unwrap returns the panic value if it is an error, so errors.Is and
// errors.As reach it.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// ExhaustedError is the error of a job whose policy allowed retries and whose
// attempts, or MaxElapsed, ran out before one succeeded.
type ExhaustedError struct {
	Attempts int     // attempts made
	Errs     []error // each attempt's error, first attempt first
}

// Error reports the attempts made and the last attempt's error.
func (e *ExhaustedError) Error() string {
	var last error
	if n := len(e.Errs); n > 0 {
		last = e.Errs[n-1]
	}
	return fmt.Sprintf("jobq: gave up after %d attempts: %v", e.Attempts, last)
}

// Unwrap returns every attempt's error, so errors.Is and errors.As match any.
func (e *ExhaustedError) Unwrap() []error { return e.Errs }

// errGoexit is the value of the *PanicError of a handler that called
// runtime.Goexit.
var errGoexit = errors.New("jobq: handler called runtime.Goexit")

func init() {
	engine.Kinds.Panicked = func(v any, goexit bool, stack []byte) error {
		if goexit {
			v = errGoexit
		}
		return &PanicError{Value: v, Stack: stack}
	}
	engine.Kinds.IsPanic = func(err error) bool {
		var pe *PanicError
		return errors.As(err, &pe)
	}
	engine.Kinds.Exhausted = func(attempts int, errs []error) error {
		return &ExhaustedError{Attempts: attempts, Errs: errs}
	}
	engine.Kinds.IsExhausted = func(err error) bool {
		var ex *ExhaustedError
		return errors.As(err, &ex)
	}
}

// Result is the future of one submitted job. It completes exactly once: with
// the handler's output, or with an error that says why not (the handler's
// error, *PanicError, *ExhaustedError, context.Canceled after Cancel,
// context.DeadlineExceeded after a per-attempt timeout, ErrClosed when
// Shutdown gave up on the job, or the submission's own error).
//
// A Result is safe for concurrent use; any number of goroutines may await it.
type Result[T any] engine.Future[T]

func (r *Result[T]) f() *engine.Future[T] { return (*engine.Future[T])(r) }

func resultOf[T any](f *engine.Future[T]) *Result[T] { return (*Result[T])(f) }

// failed returns a completed Result holding err.
func failed[T any](err error) *Result[T] { return resultOf(engine.FailedFuture[T](err)) }

func (r *Result[T]) isDone() bool { return r.f().IsDone() }

// Done returns a channel that is closed when the Result completes. The first
// call on a Result that has not completed yet allocates the channel.
func (r *Result[T]) Done() <-chan struct{} { return r.f().Done() }

// Await waits for the Result and returns the job's output and error. ctx
// bounds only the wait: when it ends first, Await returns ctx.Err() and the
// job goes on (use Cancel to stop it).
//
// When a handler awaits a job it submitted to its own pool (with its
// handler ctx) and that job has not started, Await runs it in the calling
// goroutine, so fork–join inside a pool cannot deadlock however busy the
// pool is; its retries, once their backoff ends, run likewise in place of
// the awaiting handler rather than wait for a worker.
//
// Await with a ctx that can end, on a Result that has not completed yet,
// allocates one channel (see Done); Await with a ctx that cannot end, such as
// context.Background(), allocates nothing.
func (r *Result[T]) Await(ctx context.Context) (T, error) { return r.f().Await(ctx) }

// Cancel stops the job: a queued job (or one waiting out a retry backoff)
// never runs again; a running one has its ctx cancelled. Either way the
// Result completes at once with context.Canceled, unless it had already
// completed. Cancel is idempotent.
func (r *Result[T]) Cancel() {
	if c := r.f().Ctl(); c != nil && !r.isDone() {
		c.Cancel()
	}
}

// Attempts reports how many attempts of the job have started so far.
func (r *Result[T]) Attempts() int {
	if c := r.f().Ctl(); c != nil {
		return c.Attempts()
	}
	return 0
}

// help runs the job in the calling goroutine if it is a fork–join child
// still queued (see Await).
func (r *Result[T]) help() {
	if c := r.f().Ctl(); c != nil && !r.isDone() {
		c.Help()
	}
}

// nested reports whether r is a job's that was submitted from a handler of
// its own pool.
func (r *Result[T]) nested() bool {
	n, ok := r.f().Ctl().(interface{ Nested() bool })
	return ok && n.Nested()
}

// onDone arranges for f to run once r has completed: in the goroutine that
// completes r, or at once if r has completed. A Result holds one pending
// f: onDone reports false, doing nothing, while another is pending.
func (r *Result[T]) onDone(f func()) bool { return r.f().OnDone(f) }

// AwaitAll awaits every Result in order and returns their outputs. It stops
// at the first error, returning it with the index of the job, and leaves the
// other jobs running; ctx bounds the wait as in Await.
func AwaitAll[T any](ctx context.Context, rs ...*Result[T]) ([]T, error) {
	out := make([]T, len(rs))
	for i, r := range rs {
		v, err := r.Await(ctx)
		if err != nil {
			return out[:i], fmt.Errorf("jobq: job %d: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

// NewPromise returns a Result that its maker completes, and the function
// that completes it: for a Stage outside this package (a remote queue, a
// service) that Map, Then and AwaitAll can mix with Pools.
//
// settle completes r with (v, err) and reports whether it did: only the
// first completion wins, whether it is a settle or a Cancel. Cancel on r
// completes it at once with context.Canceled, then calls onCancel (when not
// nil) in the goroutine that cancelled, so the maker can stop the work;
// onCancel runs at most once, and never after a settle that won. settle is
// safe to call from any goroutine, any number of times.
//
// Cost: two allocations (the Result and its settle function).
func NewPromise[T any](onCancel func()) (r *Result[T], settle func(v T, err error) bool) {
	p := &promise[T]{onCancel: onCancel}
	p.Init(p)
	return resultOf(&p.Future), p.Complete
}

// promise is a Result completed by its maker rather than by a job.
type promise[T any] struct {
	engine.Future[T]
	onCancel func()
}

func (p *promise[T]) Cancel() {
	var zero T
	if p.Complete(zero, context.Canceled) && p.onCancel != nil {
		p.onCancel()
	}
}

func (p *promise[T]) Help()         {}
func (p *promise[T]) Attempts() int { return 0 }
