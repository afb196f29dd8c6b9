package jobq

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"
)

// endLog records what an observer set with WithObserver sees.
type endLog struct {
	mu   sync.Mutex
	ends []End
}

func (l *endLog) observe(e End) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ends = append(l.ends, e)
}

func (l *endLog) all() []End {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]End(nil), l.ends...)
}

func TestGroupWaitSeesOnlyItsOwnJobs(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		g := newGatedPool(2)
		blocked := g.Group(context.Background())
		other := g.Group(context.Background())
		if err := blocked.Go(-1); err != nil {
			t.Fatal(err)
		}
		<-g.started // a worker holds the blocked group's job
		rs := []*Result[int]{other.Submit(1), other.Submit(2)}
		if err := other.Go(3); err != nil {
			t.Fatal(err)
		}

		if err := other.Wait(); err != nil {
			t.Errorf("other group's Wait = %v, want nil", err)
		}
		for i, r := range rs {
			if !isDone(r) {
				t.Errorf("other group's job %d is not done once its Wait returned", i+1)
			}
		}
		if n := g.callsOf(3); n != 1 {
			t.Errorf("other group's Go job ran %d times by the time Wait returned, want 1", n)
		}

		waited := make(chan error, 1)
		go func() { waited <- blocked.Wait() }()
		synctest.Wait()
		select {
		case err := <-waited:
			t.Fatalf("blocked group's Wait returned %v while its job still runs", err)
		default:
		}
		close(g.gate)
		if err := <-waited; err != nil {
			t.Errorf("blocked group's Wait = %v, want nil", err)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		checkCounts(t, g.Metrics(), counts{Submitted: 4, Succeeded: 4})
	})
}

func TestGroupWaitReturnsTheFirstError(t *testing.T) {
	checkNoLeak(t)
	errFirst, errSecond := errors.New("first"), errors.New("second")
	// One worker runs the jobs in submission order, so errFirst is the
	// first error a job of the group ends with.
	p := New(1, func(_ context.Context, n int) (int, error) {
		switch n {
		case 1:
			return 0, errFirst
		case 2:
			return 0, errSecond
		}
		return n, nil
	})
	defer p.Close()
	g := p.Group(context.Background())
	for _, n := range []int{0, 1, 2, 3} {
		if err := g.Go(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Wait(); err != errFirst {
		t.Errorf("Wait = %v, want %v", err, errFirst)
	}

	ok := p.Group(context.Background())
	r := ok.Submit(7)
	if err := ok.Wait(); err != nil {
		t.Errorf("Wait of a group whose jobs all succeeded = %v, want nil", err)
	}
	if v, err := r.Await(context.Background()); v != 7 || err != nil {
		t.Errorf("its job's Result = %d, %v; want 7, nil", v, err)
	}
}

func TestCancelOnErrorStopsQueuedAndRunningSiblings(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		errBoom := errors.New("boom")
		fail := make(chan struct{})
		started := make(chan int, 8)
		var mu sync.Mutex
		ran := map[int]int{}
		sawCtx := make(chan error, 1)
		p := New(2, func(ctx context.Context, n int) (int, error) {
			mu.Lock()
			ran[n]++
			mu.Unlock()
			started <- n
			switch n {
			case 0: // the running sibling: it waits for its ctx to end
				<-ctx.Done()
				sawCtx <- ctx.Err()
				return 0, ctx.Err()
			case 1: // the job that fails
				<-fail
				return 0, errBoom
			}
			return n, nil
		}, WithQueueSize(8))
		g := p.Group(context.Background(), CancelOnError())
		running := g.Submit(0)
		<-started
		failing := g.Submit(1)
		<-started
		var queued []*Result[int]
		for n := 2; n < 5; n++ {
			queued = append(queued, g.Submit(n)) // both workers are busy: these queue
		}

		close(fail)
		if err := g.Wait(); err != errBoom {
			t.Errorf("Wait = %v, want the failing job's %v, not a sibling's cancellation", err, errBoom)
		}
		if err := <-sawCtx; !errors.Is(err, context.Canceled) {
			t.Errorf("the running sibling's ctx ended with %v, want context.Canceled", err)
		}
		if _, err := running.Await(context.Background()); !errors.Is(err, context.Canceled) {
			t.Errorf("running sibling's Result: %v, want context.Canceled", err)
		}
		if _, err := failing.Await(context.Background()); err != errBoom {
			t.Errorf("failing job's Result: %v, want %v", err, errBoom)
		}
		for i, r := range queued {
			if _, err := r.Await(context.Background()); !errors.Is(err, context.Canceled) {
				t.Errorf("queued sibling %d's Result: %v, want context.Canceled", i+2, err)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		for n := 2; n < 5; n++ {
			if ran[n] != 0 {
				t.Errorf("queued sibling %d ran %d times after the group's first error, want never", n, ran[n])
			}
		}
		mu.Unlock()
		checkCounts(t, p.Metrics(), counts{Submitted: 5, Failed: 1, Canceled: 4})
	})
}

func TestGroupWithoutCancelOnErrorLetsSiblingsRun(t *testing.T) {
	checkNoLeak(t)
	errBoom := errors.New("boom")
	p := New(1, func(ctx context.Context, n int) (int, error) {
		if n == 0 {
			return 0, errBoom
		}
		return n, ctx.Err()
	})
	defer p.Close()
	g := p.Group(context.Background())
	g.Go(0)
	r := g.Submit(1)
	if err := g.Wait(); err != errBoom {
		t.Errorf("Wait = %v, want %v", err, errBoom)
	}
	if v, err := r.Await(context.Background()); v != 1 || err != nil {
		t.Errorf("sibling queued behind the error: %d, %v; want 1, nil (no CancelOnError)", v, err)
	}
}

func TestGroupJobsCountInMetricsAndReachTheObserver(t *testing.T) {
	checkNoLeak(t)
	errBoom := errors.New("boom")
	var log endLog
	p := New(2, func(_ context.Context, n int) (int, error) {
		if n < 0 {
			return 0, errBoom
		}
		return n, nil
	}, WithObserver(log.observe))
	g := p.Group(context.Background())
	for _, n := range []int{1, 2, -1} {
		if err := g.Go(n); err != nil {
			t.Fatal(err)
		}
	}
	g.Submit(3, Policy{MaxAttempts: 2, Backoff: Constant(0)})
	if err := g.Wait(); err != errBoom {
		t.Errorf("Wait = %v, want %v", err, errBoom)
	}
	// The observer sees a job's end before its Result completes, so every
	// end has been seen once Wait returns.
	var succeeded, failed int
	for _, e := range log.all() {
		switch e.Outcome {
		case Succeeded:
			succeeded++
		case Failed:
			failed++
			if e.Err != errBoom {
				t.Errorf("failed end's Err = %v, want %v", e.Err, errBoom)
			}
		}
	}
	if succeeded != 3 || failed != 1 {
		t.Errorf("once Wait returned the observer saw %d successes and %d failures, want 3 and 1: %+v",
			succeeded, failed, log.all())
	}
	checkCounts(t, p.Metrics(), counts{Submitted: 4, Succeeded: 3, Failed: 1})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestGroupSubmissionsAfterCloseAreRefusedAndAreTheGroupsError(t *testing.T) {
	checkNoLeak(t)
	var log endLog
	calls := 0
	p := New(1, func(_ context.Context, n int) (int, error) { calls++; return n, nil }, WithObserver(log.observe))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	g := p.Group(context.Background())
	if err := g.Go(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Group.Go after Close = %v, want ErrClosed", err)
	}
	if err := g.Wait(); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait after a refused Go = %v, want ErrClosed", err)
	}

	g = p.Group(context.Background(), CancelOnError())
	r := g.Submit(2)
	if _, err := r.Await(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Group.Submit after Close: Result %v, want ErrClosed", err)
	}
	if err := g.Wait(); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait after a refused Submit = %v, want ErrClosed", err)
	}
	if calls != 0 {
		t.Errorf("handler ran %d times after Close, want never", calls)
	}
	checkCounts(t, p.Metrics(), counts{Rejected: 2})
	if ends := log.all(); len(ends) != 0 {
		t.Errorf("observer saw %d ends of refused submissions, want none (they were never accepted): %+v", len(ends), ends)
	}
}

func TestGroupRefusesAnInvalidPolicyAsItsError(t *testing.T) {
	checkNoLeak(t)
	p := New(1, func(_ context.Context, n int) (int, error) { return n, nil })
	defer p.Close()
	g := p.Group(context.Background())
	if err := g.Go(1, Policy{MaxAttempts: -1}); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("Go with an invalid policy = %v, want ErrInvalidPolicy", err)
	}
	if err := g.Wait(); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("Wait = %v, want ErrInvalidPolicy", err)
	}
}

func TestGroupJobsCarryTheGroupsCtx(t *testing.T) {
	checkNoLeak(t)
	type key struct{}
	got := make(chan any, 2)
	p := New(2, func(ctx context.Context, n int) (int, error) {
		got <- ctx.Value(key{})
		return n, nil
	})
	defer p.Close()
	ctx := context.WithValue(context.Background(), key{}, "v")
	for _, opts := range [][]GroupOption{nil, {CancelOnError()}} {
		g := p.Group(ctx, opts...)
		g.Go(1)
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		if v := <-got; v != "v" {
			t.Errorf("handler saw value %v in its ctx (options %d), want the group ctx's %q", v, len(opts), "v")
		}
	}
}

func TestGroupNilCtxPanicsNamingCtx(t *testing.T) {
	checkNoLeak(t)
	p := New(1, func(_ context.Context, n int) (int, error) { return n, nil })
	defer p.Close()
	var nilCtx context.Context
	mustPanic(t, "ctx", func() { p.Group(nilCtx) })
}

func TestGroupWaitWithNoJobsReturnsNil(t *testing.T) {
	checkNoLeak(t)
	p := New(1, func(_ context.Context, n int) (int, error) { return n, nil })
	defer p.Close()
	for _, opts := range [][]GroupOption{nil, {CancelOnError()}} {
		if err := p.Group(context.Background(), opts...).Wait(); err != nil {
			t.Errorf("Wait of an empty group = %v, want nil", err)
		}
	}
}

// TestCancelOnErrorDoesNotTouchOtherGroups checks that one group's error
// cancels only its own jobs.
func TestCancelOnErrorDoesNotTouchOtherGroups(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		errBoom := errors.New("boom")
		g := newGatedPool(2)
		other := g.Group(context.Background(), CancelOnError())
		r := other.Submit(-1)
		<-g.started
		failing := New(1, func(context.Context, int) (int, error) { return 0, errBoom })
		fg := failing.Group(context.Background(), CancelOnError())
		fg.Go(0)
		if err := fg.Wait(); err != errBoom {
			t.Errorf("failing group's Wait = %v, want %v", err, errBoom)
		}
		failing.Close()
		same := g.Group(context.Background(), CancelOnError())
		same.Go(0) // succeeds
		if err := same.Wait(); err != nil {
			t.Errorf("Wait = %v, want nil", err)
		}
		synctest.Wait()
		if isDone(r) {
			t.Fatal("a job of another group ended")
		}
		close(g.gate)
		if err := other.Wait(); err != nil {
			t.Errorf("other group's Wait = %v, want nil", err)
		}
		if diff := cmp.Diff(counts{Submitted: 2, Succeeded: 2}, countsOf(g.Metrics())); diff != "" {
			t.Errorf("Metrics (-want +got):\n%s", diff)
		}
		g.Close()
	})
}

// TestGroupForkJoinInsideThePoolDoesNotDeadlock: a handler that waits for
// a group of children it submitted with its ctx to its own pool, one
// worker, runs them itself, queued or not, as Await does.
func TestGroupForkJoinInsideThePoolDoesNotDeadlock(t *testing.T) {
	checkNoLeak(t)
	for _, tt := range []struct {
		name      string
		queueSize int
		opts      []GroupOption
	}{
		{"room in the queue", 64, nil},
		{"queue of one", 1, nil},
		{"CancelOnError", 64, []GroupOption{CancelOnError()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var p *Pool[int, int]
				// sum(n) is the number of nodes in a binary tree of depth n.
				p = New(1, func(ctx context.Context, n int) (int, error) {
					if n == 0 {
						return 1, nil
					}
					g := p.Group(ctx, tt.opts...)
					left, right := g.Submit(n-1), g.Submit(n-1)
					if err := g.Wait(); err != nil {
						return 0, err
					}
					a, _ := left.Await(ctx)
					b, _ := right.Await(ctx)
					return 1 + a + b, nil
				}, WithQueueSize(tt.queueSize))
				v, err := awaitBounded(t, p.Submit(context.Background(), 5))
				if v != 63 || err != nil {
					t.Errorf("fork–join over groups = %d, %v; want 63, nil", v, err)
				}
				if err := p.Close(); err != nil {
					t.Fatal(err)
				}
				checkCounts(t, p.Metrics(), counts{Submitted: 63, Succeeded: 63})
			})
		})
	}
}
