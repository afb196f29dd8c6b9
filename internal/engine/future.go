package engine

import (
	"context"
	"runtime"
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
// Invariants: futDone turns on exactly once, by Complete's winner, which
// then writes val and err and releases wait; readers trust val and err
// only after wait. ch and hook are guarded by the futLocked bit, a spin
// lock held for a few instructions: Done and OnDone take it to publish
// them, and Complete only once futWant says one is.
//
// A Future takes 72 bytes and its value's, so that a job record with it
// fits 128 (TestJobRecordLayout): hence the lock bit, where a Mutex would
// take 8 bytes more, and Word.
type Future[T any] struct {
	bits atomic.Uint32 // futDone | futWant | futLocked
	// Word is the work's own: a Job keeps its lifecycle state here.
	Word atomic.Uint32
	val  T
	err  error
	wait sync.WaitGroup // released once val and err are written
	ctl  Control        // nil for a Future that failed at submission
	ch   chan struct{}  // closed on completion; made on demand
	hook func()         // runs once, on completion
}

// Future state bits.
const (
	futDone   = 1 << iota // a Complete has won
	futWant               // ch or hook is set: Complete must lock to see them
	futLocked             // ch and hook are being read or written
)

// Init readies f, not yet completed, for completion by ctl's work.
func (f *Future[T]) Init(ctl Control) {
	f.ctl = ctl
	f.wait.Add(1)
}

// FailedFuture returns a completed Future holding err.
func FailedFuture[T any](err error) *Future[T] {
	f := new(Future[T])
	f.err = err
	f.bits.Store(futDone)
	return f
}

// Ctl returns the work behind f, nil if none.
func (f *Future[T]) Ctl() Control { return f.ctl }

// lock takes the futLocked bit, setting set beside it, and returns the
// state it found.
func (f *Future[T]) lock(set uint32) uint32 {
	for {
		s := f.bits.Load()
		if s&futLocked == 0 && f.bits.CompareAndSwap(s, s|futLocked|set) {
			return s
		}
		// The holder is a few instructions from unlocking, and never
		// blocks before it does: let it run, never sleep. (A sleep here
		// would move a synctest bubble's clock once the holder went on
		// to wait.)
		runtime.Gosched()
	}
}

func (f *Future[T]) unlock() { f.bits.And(^uint32(futLocked)) }

// Complete completes f with (v, err) and reports whether it won: only the
// first Complete of an Init-ed Future does.
func (f *Future[T]) Complete(v T, err error) bool {
	s := f.bits.Or(futDone)
	if s&futDone != 0 {
		return false
	}
	f.val, f.err = v, err
	f.wait.Done()
	if s&futWant != 0 { // Done or OnDone came first: ch or hook is, or is being, set
		f.lock(0)
		ch, hook := f.ch, f.hook
		f.ch, f.hook = closedChan, nil
		f.unlock()
		if ch != nil {
			close(ch)
		}
		if hook != nil {
			hook()
		}
	}
	return true
}

// IsDone reports whether a Complete has won; the outcome may be a moment
// from readable (Await waits for it).
func (f *Future[T]) IsDone() bool { return f.bits.Load()&futDone != 0 }

// Done returns a channel closed once f has completed. Its outcome may be a
// moment from written then: read it with Outcome or Await, which wait.
func (f *Future[T]) Done() <-chan struct{} {
	if f.IsDone() {
		return closedChan
	}
	if f.lock(futWant)&futDone != 0 {
		// Complete won before it could see futWant: it leaves ch alone.
		f.unlock()
		return closedChan
	}
	if f.ch == nil {
		f.ch = make(chan struct{})
	}
	ch := f.ch
	f.unlock()
	return ch // Complete, which will see futWant, closes it
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
	s := f.lock(futWant)
	if f.hook != nil {
		f.unlock()
		return false
	}
	if s&futDone == 0 { // Complete, which will see futWant, runs it
		f.hook = fn
		f.unlock()
		return true
	}
	f.unlock()
	f.wait.Wait()
	fn()
	return true
}
