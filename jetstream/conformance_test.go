package jetstream_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-bb9ff1e7/jobq"
)

// backend is one implementation of the promises both jobq.Pool and the
// JetStream queue make: a Stage served by workers running h, and the
// workers' Shutdown.
type backend struct {
	name string
	// atLeastOnce: a job may run more than once (after a lost lease);
	// the pool runs each attempt once.
	atLeastOnce bool
	// start returns the stage, its workers' Shutdown, and a function that
	// returns once a Cancel has reached the workers: at once for the pool,
	// whose Cancel acts in place; a round trip through the server for the
	// queue, whose Cancel reaches workers as a message.
	start func(t *testing.T, workers int, h jobq.Handler[int, int]) (jobq.Stage[int, int], func(context.Context) error, func())
}

var backends = []backend{
	{
		name: "pool",
		start: func(t *testing.T, workers int, h jobq.Handler[int, int]) (jobq.Stage[int, int], func(context.Context) error, func()) {
			p := jobq.New(workers, h)
			t.Cleanup(func() { p.Close() })
			return p, p.Shutdown, func() {}
		},
	},
	{
		name:        "jetstream",
		atLeastOnce: true,
		start: func(t *testing.T, workers int, h jobq.Handler[int, int]) (jobq.Stage[int, int], func(context.Context) error, func()) {
			s := testServer(t)
			nc := connect(t, s)
			q := open[int, int](t, nc, testConfig())
			w, err := q.Serve(workers, h)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			// The workers share nc: its round trip sees the
			// cancellation delivered to them.
			return q, w.Shutdown, func() { nc.Flush() }
		},
	},
}

func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("EveryAcceptedJobEndsOnce", func(t *testing.T) { conformEndsOnce(t, b) })
			t.Run("Policies", func(t *testing.T) { conformPolicies(t, b) })
			t.Run("CancelQueued", func(t *testing.T) { conformCancelQueued(t, b) })
			t.Run("CancelRunning", func(t *testing.T) { conformCancelRunning(t, b) })
			t.Run("ShutdownRunsWhatRuns", func(t *testing.T) { conformShutdown(t, b) })
		})
	}
}

func conformEndsOnce(t *testing.T, b backend) {
	var mu sync.Mutex
	seen := map[int]int{}
	st, _, _ := b.start(t, 4, func(ctx context.Context, in int) (int, error) {
		mu.Lock()
		seen[in]++
		mu.Unlock()
		return in * 2, nil
	})
	var rs []*jobq.Result[int]
	for i := range 200 {
		rs = append(rs, st.Submit(context.Background(), i))
	}
	for i, r := range rs {
		if v, err := await[int](t, r); err != nil || v != 2*i {
			t.Fatalf("job %d: %d, %v", i, v, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range 200 {
		// The JetStream queue promises at least once: with no worker
		// lost, as here, it runs each job once too, but a lost lease
		// would run it again.
		if n := seen[i]; n < 1 || (!b.atLeastOnce && n != 1) {
			t.Errorf("job %d ran %d times", i, n)
		}
	}
}

func conformPolicies(t *testing.T, b backend) {
	var calls sync.Map // input -> *atomic.Int32
	st, _, _ := b.start(t, 4, func(ctx context.Context, in int) (int, error) {
		c, _ := calls.LoadOrStore(in, new(atomic.Int32))
		n := c.(*atomic.Int32).Add(1)
		switch in {
		case 1: // fails twice
			if n < 3 {
				return 0, errors.New("flaky")
			}
		case 2:
			return 0, errors.New("always")
		case 3:
			return 0, jobq.Permanent(errors.New("bad"))
		case 4:
			<-ctx.Done()
			return 0, ctx.Err()
		case 5:
			panic("boom")
		}
		return in, nil
	})
	retry := jobq.Policy{MaxAttempts: 3, Backoff: jobq.Constant(5 * time.Millisecond)}
	ctx := context.Background()
	if v, err := await[int](t, st.Submit(ctx, 1, retry)); err != nil || v != 1 {
		t.Errorf("retried job: %d, %v", v, err)
	}
	var ee *jobq.ExhaustedError
	if _, err := await[int](t, st.Submit(ctx, 2, retry)); !errors.As(err, &ee) || ee.Attempts != 3 || len(ee.Errs) != 3 {
		t.Errorf("exhausted job: %v", err)
	}
	if _, err := await[int](t, st.Submit(ctx, 3, retry)); err == nil || err.Error() != "bad" || errors.As(err, &ee) {
		t.Errorf("permanent error: %v", err)
	}
	if _, err := await[int](t, st.Submit(ctx, 4, jobq.Policy{Timeout: 20 * time.Millisecond})); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: %v", err)
	}
	var pe *jobq.PanicError
	if _, err := await[int](t, st.Submit(ctx, 5, retry)); !errors.As(err, &pe) || pe.Value != "boom" {
		t.Errorf("panic: %v", err)
	}
	for in, want := range map[int]int32{1: 3, 2: 3, 3: 1, 5: 1} {
		c, _ := calls.Load(in)
		if n := c.(*atomic.Int32).Load(); n != want {
			t.Errorf("input %d ran %d times, want %d", in, n, want)
		}
	}
}

func conformCancelQueued(t *testing.T, b backend) {
	started, gate := make(chan struct{}), make(chan struct{})
	var ranQueued atomic.Bool
	st, _, reached := b.start(t, 1, func(ctx context.Context, in int) (int, error) {
		if in == 0 {
			close(started)
			<-gate
		}
		if in == 1 {
			ranQueued.Store(true)
		}
		return in, nil
	})
	first := st.Submit(context.Background(), 0)
	<-started
	queued := st.Submit(context.Background(), 1)
	queued.Cancel()
	// Completes at once, before the worker frees up.
	if _, err := queued.Await(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled queued job: %v", err)
	}
	reached()
	close(gate)
	if _, err := await[int](t, first); err != nil {
		t.Fatal(err)
	}
	if v, err := await[int](t, st.Submit(context.Background(), 2)); err != nil || v != 2 {
		t.Fatalf("a later job: %d, %v", v, err)
	}
	if ranQueued.Load() {
		t.Errorf("the cancelled job ran")
	}
}

func conformCancelRunning(t *testing.T, b backend) {
	started, seen := make(chan struct{}), make(chan error, 1)
	st, _, _ := b.start(t, 1, func(ctx context.Context, in int) (int, error) {
		close(started)
		<-ctx.Done()
		seen <- ctx.Err()
		return 0, ctx.Err()
	})
	r := st.Submit(context.Background(), 1)
	<-started
	r.Cancel()
	if _, err := r.Await(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("after Cancel: %v", err)
	}
	if err := <-seen; !errors.Is(err, context.Canceled) {
		t.Errorf("handler's ctx: %v", err)
	}
}

func conformShutdown(t *testing.T, b backend) {
	started, gate := make(chan struct{}), make(chan struct{})
	st, shutdown, _ := b.start(t, 1, func(ctx context.Context, in int) (int, error) {
		close(started)
		<-gate
		return in, nil
	})
	r := st.Submit(context.Background(), 7)
	<-started
	done := make(chan error)
	go func() { done <- shutdown(context.Background()) }()
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if v, err := await[int](t, r); err != nil || v != 7 {
		t.Errorf("running job across Shutdown: %d, %v", v, err)
	}
	// Where the two differ: past its deadline a pool's Shutdown ends its
	// jobs with ErrClosed, while a JetStream worker hands them back to
	// run elsewhere (TestShutdownGivesUpAndHandsBackRunningJobs).
}
