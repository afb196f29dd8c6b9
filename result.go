package jobq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

var (
	// ErrClosed is returned for a submission to a pool that is shutting down
	// or shut down, and is the error of an accepted job that Shutdown gave up
	// on when its deadline passed.
	ErrClosed = errors.New("jobq: pool closed")
	// ErrQueueFull is returned by TrySubmit and Go when the queue holds as
	// many jobs as WithQueueSize allows.
	ErrQueueFull = errors.New("jobq: queue full")
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

// Result phases, kept in the low two bits of Result.state; the 30 bits above
// count the attempts started (at most maxAttempts), so a transition names
// the attempt it ends and a late finisher of an earlier attempt cannot win.
const (
	phaseQueued    = 0 // waiting in the queue, or in backoff before a retry
	phaseRunning   = 1 // an attempt is running
	phaseDone      = 2 // completed; val and err are final
	phaseFinishing = 3 // the winner of an attempt's end is deciding what next
	phaseMask      = 3
)

// maxAttempts is the most attempts a job makes, whatever its policy says:
// the most that Result.state can count.
const maxAttempts = 1<<30 - 1

func mkState(attempt int, phase uint32) uint32 { return uint32(attempt)<<2 | phase }

// Result flags.
const (
	// flagWantCh: ch exists, or is about to (or, since onDone, hook).
	flagWantCh = 1 << iota
	// flagNested marks a job submitted from a handler of its own pool:
	// whoever awaits it while it is still queued runs it. Set before the
	// job is queued.
	flagNested
	// flagAwaited: a handler awaits such a job. Set under the pool's lock.
	flagAwaited
)

func (r *Result[T]) nested() bool { return r.flags.Load()&flagNested != 0 }

// control is what a Result asks of the job behind it.
type control interface {
	cancel()
	help()
}

// closedChan is returned by Done on Results that completed before anyone
// asked for a channel.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Result is the future of one submitted job. It completes exactly once: with
// the handler's output, or with an error that says why not (the handler's
// error, *PanicError, *ExhaustedError, context.Canceled after Cancel,
// context.DeadlineExceeded after a per-attempt timeout, ErrClosed when
// Shutdown gave up on the job, or the submission's own error).
//
// A Result is safe for concurrent use; any number of goroutines may await it.
type Result[T any] struct {
	// The first word holds the state and the flags beside it, so that a
	// job record fits in 128 bytes, a whole number of cache lines, with
	// the fields that an attempt's end and Await touch in its first line.
	state atomic.Uint32 // attempt<<2 | phase
	flags atomic.Uint32 // flagWantCh, flagNested, flagAwaited

	val  T
	err  error
	wait sync.WaitGroup // done when completed: Await without a deadline blocks here
	ctl  control        // nil for a Result that failed at submission

	mu   sync.Mutex
	ch   chan struct{} // made on demand by Done; closed on completion
	hook func()        // onDone: added for stage.go; runs once on completion
}

// failed returns a completed Result holding err.
func failed[T any](err error) *Result[T] {
	r := new(Result[T])
	r.err = err
	r.state.Store(mkState(0, phaseDone))
	return r
}

// complete records the outcome and wakes every waiter. The caller has just
// moved state to done, so it runs once per Result.
func (r *Result[T]) complete(v T, err error) {
	r.val, r.err = v, err
	r.wait.Done()
	if r.flags.Load()&flagWantCh != 0 {
		r.mu.Lock()
		if r.ch != nil && r.ch != closedChan {
			close(r.ch)
			r.ch = closedChan
		}
		hook := r.hook // onDone: added for stage.go
		r.hook = nil
		r.mu.Unlock()
		if hook != nil {
			hook()
		}
	}
}

func (r *Result[T]) isDone() bool { return r.state.Load()&phaseMask == phaseDone }

// Done returns a channel that is closed when the Result completes. The first
// call on a Result that has not completed yet allocates the channel.
func (r *Result[T]) Done() <-chan struct{} {
	if r.isDone() {
		// The state is published after the value; the channel must not
		// close before complete ran, so only trust done for waiters
		// through Wait. Wait returns at once here.
		r.wait.Wait()
		return closedChan
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ch == nil {
		r.ch = make(chan struct{})
		r.flags.Or(flagWantCh)
		// complete may have run before it could see flagWantCh.
		if r.isDone() {
			r.wait.Wait()
			close(r.ch)
			r.ch = closedChan
		}
	}
	return r.ch
}

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
func (r *Result[T]) Await(ctx context.Context) (T, error) {
	if !r.isDone() {
		if r.ctl != nil {
			r.ctl.help()
		}
		if ctx == nil || ctx.Done() == nil {
			r.wait.Wait()
		} else {
			select {
			case <-r.Done():
			case <-ctx.Done():
				// The job may have completed at the same moment;
				// its outcome wins.
				if !r.isDone() {
					var zero T
					return zero, ctx.Err()
				}
			}
		}
	}
	r.wait.Wait()
	return r.val, r.err
}

// Cancel stops the job: a queued job (or one waiting out a retry backoff)
// never runs again; a running one has its ctx cancelled. Either way the
// Result completes at once with context.Canceled, unless it had already
// completed. Cancel is idempotent.
func (r *Result[T]) Cancel() {
	if r.ctl != nil && !r.isDone() {
		r.ctl.cancel()
	}
}

// Attempts reports how many attempts of the job have started so far.
func (r *Result[T]) Attempts() int { return int(r.state.Load() >> 2) }

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

// onDone: added for stage.go.

// onDone arranges for f to run once r has completed: in the goroutine that
// completes r, after Await and Done see the outcome, or at once in the
// caller if r has completed already. A Result holds one pending f: onDone
// reports false, doing nothing, while another is pending. It relies on the
// state reading done before complete runs, as every completion path does.
func (r *Result[T]) onDone(f func()) bool {
	r.mu.Lock()
	if r.hook != nil {
		r.mu.Unlock()
		return false
	}
	r.hook = f
	r.flags.Or(flagWantCh)
	if !r.isDone() {
		r.mu.Unlock()
		return true // complete sees flagWantCh and runs f
	}
	r.hook = nil
	r.mu.Unlock()
	r.wait.Wait() // the outcome is written
	f()
	return true
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
	p.ctl = p
	p.wait.Add(1)
	return &p.Result, p.settle
}

// promise is a Result completed by its maker rather than by a job.
type promise[T any] struct {
	Result[T]
	onCancel func()
}

// settle completes the promise, unless it has completed.
func (p *promise[T]) settle(v T, err error) bool {
	if !p.state.CompareAndSwap(mkState(0, phaseQueued), mkState(0, phaseDone)) {
		return false
	}
	p.complete(v, err)
	return true
}

func (p *promise[T]) cancel() {
	var zero T
	if p.settle(zero, context.Canceled) && p.onCancel != nil {
		p.onCancel()
	}
}

func (p *promise[T]) help() {}
