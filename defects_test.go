package jobq

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"weak"
)

// The seven defects of issue 16, each reproduced as the issue states it.
// Checked against bc10b6a: every test here fails there (with TryGo
// written as Go, that commit's call that did not wait).

// TestHandlerThatCallsGoexitEndsItsJobAndTheWorkerLivesOn: runtime.Goexit
// (t.FailNow, gomock) in a handler ends its job with a *PanicError; the job
// behind it runs, Close returns and Metrics add up.
func TestHandlerThatCallsGoexitEndsItsJobAndTheWorkerLivesOn(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		p := New(1, func(_ context.Context, n int) (int, error) {
			if n == 0 {
				runtime.Goexit()
			}
			return n, nil
		})
		ctx := context.Background()
		r0, r1 := p.Submit(ctx, 0), p.Submit(ctx, 1)
		if err := p.Go(ctx, 0); err != nil {
			t.Fatal(err)
		}
		var pe *PanicError
		if _, err := r0.Await(ctx); !errors.As(err, &pe) || !errors.Is(err, errGoexit) {
			t.Errorf("the Goexit job: err = %v, want a *PanicError for Goexit", err)
		}
		if v, err := r1.Await(ctx); v != 1 || err != nil {
			t.Errorf("the job behind it: %d, %v; want 1, nil", v, err)
		}
		p.Close()
		checkCounts(t, p.Metrics(), counts{Submitted: 3, Succeeded: 1, Failed: 2})
	})
}

// TestWaitingSubmitGetsTheFirstFreedSlot: room is handed out as a buffered
// channel does: a Submit waiting on a full queue gets the first slot that
// frees, and a TrySubmit does not take it meanwhile.
func TestWaitingSubmitGetsTheFirstFreedSlot(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		p := New(1, func(_ context.Context, n int) (int, error) {
			<-gate
			return n, nil
		}, WithQueueSize(10))
		defer p.Close()
		defer close(gate)
		ctx := context.Background()
		p.Submit(ctx, 0)
		synctest.Wait() // the worker holds job 0
		for i := 1; i <= 10; i++ {
			if _, err := p.TrySubmit(ctx, i); err != nil {
				t.Fatalf("TrySubmit(%d) with room: %v", i, err)
			}
		}
		waited := make(chan *Result[int], 1)
		go func() { waited <- p.Submit(ctx, 11) }()
		synctest.Wait() // it waits for room
		if _, err := p.TrySubmit(ctx, 12); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("TrySubmit while a Submit waits: %v, want ErrQueueFull", err)
		}
		gate <- struct{}{} // job 0 ends: the worker takes job 1, a slot frees
		synctest.Wait()
		select {
		case <-waited:
		default:
			t.Fatalf("the waiting Submit is still blocked with a free slot (%s)", p.e.Dump())
		}
		if _, err := p.TrySubmit(ctx, 13); !errors.Is(err, ErrQueueFull) {
			t.Errorf("TrySubmit took a slot the waiter had: %v, want ErrQueueFull", err)
		}
	})
}

// TestNewAndGrownPoolsAcceptWorkersPlusQueueSizeAtOnce: workers are ready
// for a job as soon as the pool, or Resize, returns.
func TestNewAndGrownPoolsAcceptWorkersPlusQueueSizeAtOnce(t *testing.T) {
	checkNoLeak(t)
	gate := make(chan struct{})
	p := New(10, func(_ context.Context, n int) (int, error) {
		<-gate
		return n, nil
	}, WithQueueSize(1))
	ctx := context.Background()
	for i := range 11 {
		if err := p.TryGo(ctx, i); err != nil {
			t.Fatalf("TryGo #%d of 11 on a new pool of 10 workers and a queue of 1: %v", i+1, err)
		}
	}
	p.Resize(15)
	for i := range 5 {
		if err := p.TryGo(ctx, i); err != nil {
			t.Fatalf("TryGo #%d of 5 after growing by 5: %v", i+1, err)
		}
	}
	close(gate)
	p.Close()
	checkCounts(t, p.Metrics(), counts{Submitted: 16, Succeeded: 16})
}

// TestPolicyFunctionPanicEndsItsJobOnEveryPath: a Backoff, Jitter, RetryIf
// or OnRetry that panics ends its job with a *PanicError, whichever way it
// was submitted; the pool and the process live on.
func TestPolicyFunctionPanicEndsItsJobOnEveryPath(t *testing.T) {
	boom := func() { panic("policy function") }
	policies := map[string]Policy{
		"Backoff": {MaxAttempts: 3, Backoff: func(int, time.Duration, float64) time.Duration { boom(); return 0 }},
		"Jitter":  {MaxAttempts: 3, Jitter: func(time.Duration, float64) time.Duration { boom(); return 0 }},
		"RetryIf": {MaxAttempts: 3, RetryIf: func(error) bool { boom(); return false }},
		"OnRetry": {MaxAttempts: 3, OnRetry: func(int, error, time.Duration) { boom() }},
	}
	errJob := errors.New("job failed")
	for name, pol := range policies {
		t.Run(name, func(t *testing.T) {
			checkNoLeak(t)
			var ends sync.Map
			observe := WithObserver(func(e End) { ends.Store(e.Err != nil, e) })
			h := func(context.Context, int) (int, error) { return 0, errJob }
			ctx := context.Background()
			isPanic := func(err error) bool {
				var pe *PanicError
				return errors.As(err, &pe) && pe.Value == "policy function"
			}

			p := New(1, h, observe)
			if _, err := p.Submit(ctx, 1, pol).Await(ctx); !isPanic(err) {
				t.Errorf("Submit: err = %v, want the policy's *PanicError", err)
			}
			if err := p.Go(ctx, 2, pol); err != nil {
				t.Fatal(err)
			}
			mp, next := New(1, h, WithPolicy(pol)), New(1, h)
			defer mp.Close()
			defer next.Close()
			for _, err := range Map(ctx, Stage[int, int](mp), func(yield func(int) bool) { yield(3) }) {
				if !isPanic(err) {
					t.Errorf("Map: err = %v, want the policy's *PanicError", err)
				}
			}
			chain := Then[int, int, int](p, next)
			if _, err := chain.Submit(ctx, 4, pol).Await(ctx); !isPanic(err) {
				t.Errorf("Then: err = %v, want the policy's *PanicError", err)
			}
			p.Close()
			if m := p.Metrics(); m.Failed != 3 || m.Submitted != 3 {
				t.Errorf("Metrics %+v: want 3 submitted, 3 failed (Submit, Go, Then's first stage)", m)
			}
			if e, ok := ends.Load(true); !ok || !isPanic(e.(End).Err) {
				t.Errorf("the observer saw %v, want the policy's *PanicError", e)
			}

			q := NewPool(1)
			if err := q.EnQueueTask(func(context.Context) error { return errJob }, pol); err != nil {
				t.Fatal(err)
			}
			q.Release()
			if n := q.FailureTasks(); n != 1 {
				t.Errorf("EnQueueTask: %d failures, want 1", n)
			}
		})
	}
}

// TestTimeoutNeverLosesToTheHandlerItCancelled: an attempt past its
// Timeout fails with DeadlineExceeded, even when its handler returns a
// success as soon as its ctx is done.
func TestTimeoutNeverLosesToTheHandlerItCancelled(t *testing.T) {
	checkNoLeak(t)
	p := New(4, func(ctx context.Context, _ int) (int, error) {
		<-ctx.Done()
		return 42, nil
	})
	defer p.Close()
	ctx := context.Background()
	var rs []*Result[int]
	for i := range 500 {
		rs = append(rs, p.Submit(ctx, i, Policy{Timeout: time.Millisecond}))
	}
	won := 0
	for _, r := range rs {
		if _, err := r.Await(ctx); !errors.Is(err, context.DeadlineExceeded) {
			won++
		}
	}
	if won > 0 {
		t.Errorf("%d of 500 attempts past their Timeout did not fail with DeadlineExceeded", won)
	}
}

// TestQueuedJobWhoseCtxEndsEndsThen: a queued job whose submission ctx is
// cancelled completes then, counted Canceled, without waiting for a
// worker, and never runs.
func TestQueuedJobWhoseCtxEndsEndsThen(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		ran := make(chan int, 4)
		p := New(1, func(_ context.Context, n int) (int, error) {
			ran <- n
			<-gate
			return n, nil
		})
		bg := context.Background()
		p.Submit(bg, 0)
		<-ran // the only worker holds job 0
		ctx, cancel := context.WithCancel(bg)
		r := p.Submit(ctx, 1)
		goCtx, goCancel := context.WithCancel(bg)
		if err := p.Go(goCtx, 2); err != nil {
			t.Fatal(err)
		}
		cancel()
		goCancel()
		synctest.Wait()
		select {
		case <-r.Done():
		default:
			t.Fatal("the queued job's Result is still open after its ctx ended")
		}
		if _, err := r.Await(bg); !errors.Is(err, context.Canceled) {
			t.Errorf("its error: %v, want context.Canceled", err)
		}
		if m := p.Metrics(); m.Canceled != 2 || m.Queued != 0 {
			t.Errorf("Metrics %+v: want Canceled 2, Queued 0", m)
		}
		close(gate)
		p.Close()
		close(ran)
		for n := range ran {
			if n != 0 {
				t.Errorf("job %d ran after its ctx ended", n)
			}
		}
	})
}

// TestHandlerCtxKeptAfterTheHandlerReturns: a handler's ctx is a
// context.Context like any other: a goroutine that keeps it sees its
// values for ever, sees it done once the handler has returned, and races
// with nothing the pool does next (run with -race).
func TestHandlerCtxKeptAfterTheHandlerReturns(t *testing.T) {
	checkNoLeak(t)
	type key struct{}
	kept := make(chan context.Context, 1)
	p := New(1, func(ctx context.Context, n int) (int, error) {
		if n == 0 {
			kept <- ctx
		}
		return n, nil
	})
	defer p.Close()
	first := context.WithValue(context.Background(), key{}, "first")
	if _, err := p.Submit(first, 0).Await(first); err != nil {
		t.Fatal(err)
	}
	ctx := <-kept
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 1000 {
			if v := ctx.Value(key{}); v != "first" {
				t.Errorf("the kept ctx's value turned %v", v)
				return
			}
		}
	})
	for i := 1; i <= 200; i++ {
		next := context.WithValue(context.Background(), key{}, "next")
		if _, err := p.Submit(next, i).Await(next); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	select {
	case <-ctx.Done():
	default:
		t.Error("the kept ctx is not done after its handler returned")
	}
	if ctx.Err() == nil {
		t.Error("the kept ctx's Err is nil after its handler returned")
	}
	if Attempt(ctx) != 1 {
		t.Errorf("Attempt(kept ctx) = %d, want 1", Attempt(ctx))
	}
}

// TestGoexitLeavesNothingOfItsJobReachable checks that a job handed
// straight to an idle worker, whose handler calls runtime.Goexit, is not
// kept alive by the worker afterwards: its input must be collectable once
// the job has ended and nobody else holds it.
func TestGoexitLeavesNothingOfItsJobReachable(t *testing.T) {
	checkNoLeak(t)
	type big struct {
		goexit bool
		_      [1 << 16]byte
	}
	for _, goexit := range []bool{false, true} {
		p := New(1, func(_ context.Context, b *big) (int, error) {
			if b.goexit {
				runtime.Goexit()
			}
			return 1, nil
		})
		// The new pool's worker is idle, so the job is handed to it.
		wp := func() weak.Pointer[big] {
			b := &big{goexit: goexit}
			if _, err := p.Submit(context.Background(), b).Await(context.Background()); (err == nil) == goexit {
				t.Fatalf("goexit %v: Await error %v", goexit, err)
			}
			return weak.Make(b)
		}()
		freed := false
		for range 1000 { // until the worker's goroutine has unwound
			runtime.GC()
			if freed = wp.Value() == nil; freed {
				break
			}
			runtime.Gosched()
		}
		if !freed {
			t.Errorf("goexit %v: the job's input is still reachable after it ended", goexit)
		}
		p.Close()
	}
}
