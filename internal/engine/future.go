package engine

import (
	"context"
	"sync"
	"sync/atomic"
)

// Control is what a Future asks of the work behind it: a job of a pool, a
// chain of stages, or a promise.
type Control interface {
	// Cancel ends the work, completing the Future with context.Canceled
	// unless it has completed.
	Cancel()
	// Help runs the work in the calling goroutine if it is a fork–join
	// child still queued; otherwise it does nothing.
	Help()
	// Attempts reports the attempts started so far.
	Attempts() int
}

// closedChan is returned by Done on Futures that completed before anyone
// asked for a channel.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Future is a value that completes once. The public jobq.Result is a
// Future.
//
// Invariants: done turns 1 exactly once, by Complete's winner, which then
// writes val and err and releases wait; readers trust val and err only
// after wait. ch and hook are guarded by mu; ch is made on demand.
type Future[T any] struct {
	done   atomic.Uint32 // 1 once a Complete has won
	wantCh atomic.Bool   // ch or hook exists: Complete takes mu
	val    T
	err    error
	wait   sync.WaitGroup // released once val and err are written
	ctl    Control        // nil for a Future that failed at submission

	mu   sync.Mutex
	ch   chan struct{} // closed on completion
	hook func()        // runs once, on completion
}

// Init readies f, not yet completed, for completion by ctl's work.
func (f *Future[T]) Init(ctl Control) {
	f.ctl = ctl
	f.wait.Add(1)
}

// FailedFuture returns a completed Future holding err.
func FailedFuture[T any](err error) *Future[T] {
	f := new(Future[T])
	f.err = err
	f.done.Store(1)
	return f
}

// Ctl returns the work behind f, nil if none.
func (f *Future[T]) Ctl() Control { return f.ctl }

// Complete completes f with (v, err) and reports whether it won: only the
// first Complete of an Init-ed Future does.
func (f *Future[T]) Complete(v T, err error) bool {
	if !f.done.CompareAndSwap(0, 1) {
		return false
	}
	f.val, f.err = v, err
	f.wait.Done()
	if f.wantCh.Load() {
		f.mu.Lock()
		if f.ch != nil && f.ch != closedChan {
			close(f.ch)
		}
		f.ch = closedChan
		hook := f.hook
		f.hook = nil
		f.mu.Unlock()
		if hook != nil {
			hook()
		}
	}
	return true
}

// IsDone reports whether a Complete has won; the outcome may be a moment
// from readable (Await waits for it).
func (f *Future[T]) IsDone() bool { return f.done.Load() != 0 }

// Done returns a channel closed once f has completed.
func (f *Future[T]) Done() <-chan struct{} {
	if f.IsDone() {
		f.wait.Wait()
		return closedChan
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ch == nil {
		f.ch = make(chan struct{})
		f.wantCh.Store(true)
		if f.IsDone() { // Complete ran before it could see wantCh
			f.wait.Wait()
			close(f.ch)
			f.ch = closedChan
		}
	}
	return f.ch
}

// Await waits for f, bounded by ctx, and returns its outcome; it helps
// the work first (see Control.Help).
func (f *Future[T]) Await(ctx context.Context) (T, error) {
	if !f.IsDone() {
		if f.ctl != nil {
			f.ctl.Help()
		}
		if ctx != nil && ctx.Done() != nil && !f.IsDone() {
			select {
			case <-f.Done():
			case <-ctx.Done():
				if !f.IsDone() { // completed meanwhile: its outcome wins
					var zero T
					return zero, ctx.Err()
				}
			}
		}
	}
	f.wait.Wait()
	return f.val, f.err
}

// Outcome returns the outcome of a completed f.
func (f *Future[T]) Outcome() (T, error) {
	f.wait.Wait()
	return f.val, f.err
}

// OnDone arranges for fn to run once f has completed: in the goroutine
// that completes f, or at once if f has completed. A Future holds one
// pending fn: OnDone reports false, doing nothing, while one is pending.
func (f *Future[T]) OnDone(fn func()) bool {
	f.mu.Lock()
	if f.hook != nil {
		f.mu.Unlock()
		return false
	}
	f.wantCh.Store(true)
	if !f.IsDone() {
		f.hook = fn
		f.mu.Unlock()
		return true
	}
	f.mu.Unlock()
	f.wait.Wait()
	fn()
	return true
}
