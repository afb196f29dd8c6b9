package jobq

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// outcomeOf is a Result's (value, error), compared whole in failure
// messages.
type outcomeOf struct {
	V   int
	Err error
}

// TestBadInput gives every bad input of issue 7 its row and checks its one
// clear answer, and that nothing accepted is lost on the way: programmer
// errors in constructors and options panic naming the argument; runtime
// conditions are errors, counted in Metrics.Rejected, and never run a
// handler; misuse of the lifecycle (Resize, Shutdown, Cancel, Await) has a
// documented, stable outcome.
func TestBadInput(t *testing.T) {
	t.Run("panics", testBadInputPanics)
	t.Run("refused", testBadInputRefused)
	t.Run("lifecycle", testBadInputLifecycle)
}

// testBadInputPanics: programmer errors panic with a message naming the
// argument, and leave no goroutine behind.
func testBadInputPanics(t *testing.T) {
	h := func(context.Context, int) (int, error) { return 0, nil }
	tests := []struct {
		name string
		f    func()
		want string // in the panic message
	}{
		{"New nil handler", func() { New[int, int](1, nil) }, "handler h must not be nil"},
		{"New zero workers", func() { New(0, h) }, "workers must be >= 1"},
		{"New negative workers", func() { New(-1, h) }, "workers must be >= 1"},
		{"NewPool zero size", func() { NewPool(0) }, "size must be >= 1, got 0"},
		{"NewPool negative size", func() { NewPool(-1) }, "size must be >= 1, got -1"},
		{"WithQueueSize negative", func() { WithQueueSize(-1) }, "WithQueueSize: n must be >= 1, got -1"},
		{"WithQueueSize zero", func() { WithQueueSize(0) }, "WithQueueSize: n must be >= 1, got 0"},
		{"WithPolicy negative MaxAttempts", func() { WithPolicy(Policy{MaxAttempts: -1}) }, "jobq: WithPolicy: invalid policy: MaxAttempts"},
		{"WithPolicy negative Timeout", func() { WithPolicy(Policy{Timeout: -time.Second}) }, "Timeout"},
		{"WithPolicy negative MaxElapsed", func() { WithPolicy(Policy{MaxElapsed: -time.Second}) }, "MaxElapsed"},
		{"Proportional NaN", func() { Proportional(math.NaN()) }, "f must be in [0, 1], got NaN"},
		{"Proportional +Inf", func() { Proportional(math.Inf(1)) }, "f must be in [0, 1], got +Inf"},
		{"Proportional negative", func() { Proportional(-0.1) }, "f must be in [0, 1], got -0.1"},
		{"Proportional above 1", func() { Proportional(1.5) }, "f must be in [0, 1], got 1.5"},
		{"Constant negative", func() { Constant(-time.Nanosecond) }, "d must be >= 0"},
		{"Exponential zero base", func() { Exponential(0, time.Second) }, "base must be > 0"},
		{"Exponential max below base", func() { Exponential(time.Second, time.Millisecond) }, "max must be >= base"},
		{"Decorrelated negative base", func() { Decorrelated(-time.Second, time.Second) }, "base must be > 0"},
		{"Resize negative", func() {
			p := New(1, h)
			defer p.Close()
			p.Resize(-1)
		}, "Resize: workers must be >= 0, got -1"},
		{"UpdateWorkerCount negative", func() {
			q := NewPool(1)
			defer q.Release()
			q.UpdateWorkerCount(-2)
		}, "UpdateWorkerCount: n must be >= 0, got -2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			mustPanic(t, tt.want, tt.f)
		})
	}
}

// testBadInputRefused: bad submissions are errors, not panics; each is
// counted once in Rejected, and no handler runs.
func testBadInputRefused(t *testing.T) {
	var nilCtx context.Context
	bg := context.Background()
	noop := func(context.Context) error { return nil }
	// submitAll makes every typed submission with ctx and pol and returns
	// their errors; Submit's is its Result's, which must have completed.
	submitAll := func(ctx context.Context, pol ...Policy) func(*testing.T, *Pool[int, int], *Queue) []error {
		return func(t *testing.T, p *Pool[int, int], _ *Queue) []error {
			r := p.Submit(ctx, 1, pol...)
			if !isDone(r) {
				t.Errorf("Submit: the refused job's Result has not completed")
			}
			_, subErr := r.Await(bg)
			tr, tryErr := p.TrySubmit(ctx, 1, pol...)
			if _, err := tr.Await(bg); err != tryErr {
				t.Errorf("TrySubmit returned %v, its Result holds %v; want the same error", tryErr, err)
			}
			return []error{subErr, tryErr, p.Go(ctx, 1, pol...)}
		}
	}
	enqueueTask := func(pol ...Policy) func(*testing.T, *Pool[int, int], *Queue) []error {
		return func(_ *testing.T, _ *Pool[int, int], q *Queue) []error {
			return []error{q.EnQueueTask(noop, pol...), q.EnQueue(msg("m"), pol...)}
		}
	}
	tests := []struct {
		name   string
		closed bool // shut the pools down before the calls
		calls  func(*testing.T, *Pool[int, int], *Queue) []error
		wantIs error // nil: any non-nil error
	}{
		{"nil ctx", false, submitAll(nilCtx), nil},
		{"negative MaxAttempts", false, submitAll(bg, Policy{MaxAttempts: -1}), ErrInvalidPolicy},
		{"negative Timeout", false, submitAll(bg, Policy{Timeout: -time.Nanosecond}), ErrInvalidPolicy},
		{"negative MaxElapsed", false, submitAll(bg, Policy{MaxElapsed: -time.Hour}), ErrInvalidPolicy},
		{"two policies", false, submitAll(bg, Policy{}, Policy{}), ErrInvalidPolicy},
		{"EnQueue negative MaxAttempts", false, enqueueTask(Policy{MaxAttempts: -3}), ErrInvalidPolicy},
		{"EnQueue negative Timeout", false, enqueueTask(Policy{Timeout: -time.Second}), ErrInvalidPolicy},
		{"EnQueue negative MaxElapsed", false, enqueueTask(Policy{MaxElapsed: -time.Second}), ErrInvalidPolicy},
		{"EnQueueTask nil fn", false, func(_ *testing.T, _ *Pool[int, int], q *Queue) []error {
			return []error{q.EnQueueTask(nil)}
		}, nil},
		{"EnQueue nil message", false, func(_ *testing.T, _ *Pool[int, int], q *Queue) []error {
			return []error{q.EnQueue(nil)}
		}, nil},
		{"EnQueue without WithFn", false, func(_ *testing.T, _ *Pool[int, int], q *Queue) []error {
			return []error{q.EnQueue(msg("m"))}
		}, nil},
		{"after Shutdown", true, submitAll(bg), ErrClosed},
		{"EnQueue and EnQueueTask after Shutdown", true, enqueueTask(), ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			var ran atomic.Int64
			p := New(1, func(context.Context, int) (int, error) { ran.Add(1); return 1, nil })
			var opts []Option
			if tt.name != "EnQueue without WithFn" {
				opts = append(opts, WithFn(func(context.Context, TaskMessage) error { ran.Add(1); return nil }))
			}
			q := NewPool(1, opts...)
			defer p.Close()
			defer q.Release()
			if tt.closed {
				if err := p.Shutdown(bg); err != nil {
					t.Fatal(err)
				}
				if err := q.Shutdown(bg); err != nil {
					t.Fatal(err)
				}
			}
			var errs []error
			if msg := recoverText(func() { errs = tt.calls(t, p, q) }); msg != "" {
				t.Fatalf("a bad submission panicked: %s", msg)
			}
			for i, err := range errs {
				if err == nil || (tt.wantIs != nil && !errors.Is(err, tt.wantIs)) {
					t.Errorf("call %d: error %v, want one wrapping %v", i, err, tt.wantIs)
				}
			}
			p.Close()
			q.Release()
			if n := ran.Load(); n != 0 {
				t.Errorf("%d handlers ran for refused submissions", n)
			}
			got := countsOf(p.Metrics())
			qm := countsOf(q.Metrics())
			got.Rejected += qm.Rejected
			got.Submitted += qm.Submitted
			if diff := cmp.Diff(counts{Rejected: uint64(len(errs))}, got); diff != "" {
				t.Errorf("Metrics of the Pool and the Queue together (-want +got):\n%s", diff)
			}
		})
	}
}

// testBadInputLifecycle: Resize, Shutdown, Cancel and Await used at the
// wrong time or too often.
func testBadInputLifecycle(t *testing.T) {
	bg := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"Resize(0) pauses: jobs queue up and run when it grows", func(t *testing.T) {
			g := newGatedPool(2)
			g.Resize(0)
			if got := g.Workers(); got != 0 {
				t.Errorf("Workers() after Resize(0) = %d, want 0", got)
			}
			var rs []*Result[int]
			for i := 1; i <= 3; i++ {
				rs = append(rs, g.Submit(bg, i))
			}
			if err := g.Go(bg, 4); err != nil {
				t.Fatalf("Go on a paused pool: %v", err)
			}
			synctest.Wait()
			for i, r := range rs {
				if isDone(r) {
					t.Errorf("job %d ran on a paused pool", i+1)
				}
			}
			if m := g.Metrics(); m.Queued != 4 || m.Running != 0 || m.Workers != 0 {
				t.Errorf("paused pool: Queued %d, Running %d, Workers %d; want 4, 0, 0", m.Queued, m.Running, m.Workers)
			}
			g.Resize(1)
			got, err := AwaitAll(bg, rs...)
			if diff := cmp.Diff([]int{10, 20, 30}, got); diff != "" || err != nil {
				t.Errorf("after Resize(1): AwaitAll err %v, outputs (-want +got):\n%s", err, diff)
			}
			g.Close()
			checkCounts(t, g.Metrics(), counts{Submitted: 4, Succeeded: 4})
		}},
		{"Resize below zero panics and leaves the pool as it was", func(t *testing.T) {
			g := newGatedPool(3)
			mustPanic(t, "workers must be >= 0", func() { g.Resize(-1) })
			if got := g.Workers(); got != 3 {
				t.Errorf("Workers() after Resize(-1) = %d, want 3", got)
			}
			if got, err := awaitBounded(t, g.Submit(bg, 5)); got != 50 || err != nil {
				t.Errorf("job after the panic = %d, %v; want 50, nil", got, err)
			}
			g.Close()
			checkCounts(t, g.Metrics(), counts{Submitted: 1, Succeeded: 1})
		}},
		{"Shutdown of a paused pool gives up at its deadline, ending queued jobs with ErrClosed", func(t *testing.T) {
			g := newGatedPool(1)
			g.Resize(0)
			rs := []*Result[int]{g.Submit(bg, 1), g.Submit(bg, 2)}
			ctx, cancel := context.WithTimeout(bg, time.Second)
			defer cancel()
			start := time.Now()
			if err := g.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
			}
			if waited := time.Since(start); waited != time.Second {
				t.Errorf("Shutdown returned after %v, want its 1s deadline", waited)
			}
			for i, r := range rs {
				if !isDone(r) {
					t.Errorf("job %d pending after Shutdown gave up", i+1)
				} else if _, err := r.Await(bg); !errors.Is(err, ErrClosed) {
					t.Errorf("job %d: %v, want ErrClosed", i+1, err)
				}
			}
			checkCounts(t, g.Metrics(), counts{Submitted: 2, Canceled: 2})
		}},
		{"concurrent and repeated Shutdown all return nil once every job has run", func(t *testing.T) {
			g := newGatedPool(2, WithQueueSize(4))
			var rs []*Result[int]
			for i := -2; i <= 3; i++ { // two gated, running; four queued
				rs = append(rs, g.Submit(bg, i))
				if i < 0 {
					<-g.started // so that the queue holds only the other four
				}
			}
			errs := make(chan error, 8)
			var wg sync.WaitGroup
			for range 6 {
				wg.Go(func() { errs <- g.Shutdown(bg) })
			}
			wg.Go(func() { errs <- g.Close() })
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(bg, time.Hour)
				defer cancel()
				errs <- g.Shutdown(ctx)
			})
			synctest.Wait()
			if len(errs) != 0 {
				t.Errorf("%d Shutdown calls returned while jobs were still running", len(errs))
			}
			close(g.gate)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("Shutdown: %v, want nil", err)
				}
			}
			if err := g.Shutdown(bg); err != nil {
				t.Errorf("Shutdown once more: %v, want nil", err)
			}
			got, err := AwaitAll(bg, rs...)
			if diff := cmp.Diff([]int{-20, -10, 0, 10, 20, 30}, got); diff != "" || err != nil {
				t.Errorf("AwaitAll err %v, outputs (-want +got):\n%s", err, diff)
			}
			checkCounts(t, g.Metrics(), counts{Submitted: 6, Succeeded: 6})
		}},
		{"Cancel twice on a queued job keeps the first outcome", func(t *testing.T) {
			g := newGatedPool(1, WithQueueSize(1))
			running, queued := g.fill(t)
			queued.Cancel()
			first := outcomeOf{}
			first.V, first.Err = queued.Await(bg)
			queued.Cancel()
			checkSameOutcome(t, queued, first)
			if !errors.Is(first.Err, context.Canceled) {
				t.Errorf("cancelled queued job: %v, want context.Canceled", first.Err)
			}
			close(g.gate)
			_, _ = running.Await(bg)
			g.Close()
			if n := g.callsOf(2); n != 0 {
				t.Errorf("the cancelled job ran %d times", n)
			}
			checkSameOutcome(t, queued, first)
			checkCounts(t, g.Metrics(), counts{Submitted: 2, Rejected: 1, Succeeded: 1, Canceled: 1}) // Rejected: fill's TrySubmit
		}},
		{"Cancel twice on a running job keeps the first outcome", func(t *testing.T) {
			g := newGatedPool(1)
			running := g.Submit(bg, -1)
			<-g.started
			running.Cancel()
			running.Cancel()
			first := outcomeOf{}
			first.V, first.Err = running.Await(bg)
			if !errors.Is(first.Err, context.Canceled) {
				t.Errorf("cancelled running job: %v, want context.Canceled", first.Err)
			}
			close(g.gate) // the handler returns -10, nil: too late
			g.Close()
			running.Cancel()
			checkSameOutcome(t, running, first)
			checkCounts(t, g.Metrics(), counts{Submitted: 1, Canceled: 1})
		}},
		{"Cancel after completion keeps the outcome", func(t *testing.T) {
			p := New(1, mixed)
			ok, failed, panicked := p.Submit(bg, 3), p.Submit(bg, 4), p.Submit(bg, 5)
			var firsts []outcomeOf
			for _, r := range []*Result[int]{ok, failed, panicked} {
				v, err := awaitBounded(t, r)
				firsts = append(firsts, outcomeOf{v, err})
				r.Cancel()
				r.Cancel()
			}
			p.Close()
			for i, r := range []*Result[int]{ok, failed, panicked} {
				checkSameOutcome(t, r, firsts[i])
			}
			checkCounts(t, p.Metrics(), counts{Submitted: 3, Succeeded: 1, Failed: 2})
		}},
		{"Await on a finished Result returns the same value and error every time", func(t *testing.T) {
			g := newGatedPool(1, WithQueueSize(1))
			running, queued := g.fill(t)
			refused, _ := g.TrySubmit(bg, 3) // ErrQueueFull
			queued.Cancel()
			close(g.gate)
			p := New(1, mixed)
			rs := []*Result[int]{running, queued, refused, p.Submit(bg, 3), p.Submit(bg, 4), p.Submit(bg, 5)}
			done, cancel := context.WithCancel(bg)
			cancel()
			for i, r := range rs {
				v, err := awaitBounded(t, r)
				first := outcomeOf{v, err}
				checkSameOutcome(t, r, first)
				// A finished Result's outcome wins over a ctx that has
				// ended: Await's ctx bounds only a wait.
				v, err = r.Await(done)
				if diff := cmp.Diff(first, outcomeOf{v, err}, cmpopts.EquateErrors()); diff != "" || err != first.Err {
					t.Errorf("Result %d: Await with an ended ctx (-first +now):\n%s", i, diff)
				}
			}
			g.Close()
			p.Close()
			checkCounts(t, g.Metrics(), counts{Submitted: 2, Rejected: 2, Succeeded: 1, Canceled: 1}) // fill refuses one too
			checkCounts(t, p.Metrics(), counts{Submitted: 3, Succeeded: 1, Failed: 2})
		}},
		{"Submit: a handler that returns after its timeout is counted once", func(t *testing.T) {
			p := New(1, func(context.Context, int) (int, error) {
				time.Sleep(2 * time.Second) // ignores its ctx
				return 1, nil
			})
			start := time.Now()
			r := p.Submit(bg, 1, Policy{Timeout: time.Second})
			if _, err := awaitBounded(t, r); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Await = %v, want context.DeadlineExceeded", err)
			}
			if at := time.Since(start); at != time.Second {
				t.Errorf("the Result completed at %v, want at the 1s timeout", at)
			}
			p.Close() // the handler returns at 2s, succeeding too late
			checkSameOutcome(t, r, outcomeOf{0, context.DeadlineExceeded})
			checkCounts(t, p.Metrics(), counts{Submitted: 1, Failed: 1})
		}},
		{"Go: a handler that returns after its timeout is counted once", func(t *testing.T) {
			p := New(1, func(context.Context, int) (int, error) {
				time.Sleep(2 * time.Second) // ignores its ctx
				return 1, nil
			})
			if err := p.Go(bg, 1, Policy{Timeout: time.Second}); err != nil {
				t.Fatal(err)
			}
			p.Close()
			checkCounts(t, p.Metrics(), counts{Submitted: 1, Failed: 1})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			synctest.Test(t, tt.run)
		})
	}
}

// checkSameOutcome fails t unless r, awaited now, gives want: the same
// value and the very same error.
func checkSameOutcome(t *testing.T, r *Result[int], want outcomeOf) {
	t.Helper()
	for range 2 {
		v, err := r.Await(context.Background())
		got := outcomeOf{v, err}
		if diff := cmp.Diff(want, got, cmpopts.EquateErrors()); diff != "" || err != want.Err {
			t.Errorf("Await (-first +now):\n%s(errors %p, %p)", diff, want.Err, err)
			return
		}
	}
}
