package jobq

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// stageGoroutines returns the stacks of the live goroutines that code in
// stage.go started.
func stageGoroutines() []string {
	var left []string
	for _, g := range jobqGoroutines() {
		lines := strings.Split(g, "\n")
		for i := 0; i+1 < len(lines); i++ {
			if strings.HasPrefix(lines[i], "created by ") && strings.Contains(lines[i+1], "/stage.go:") {
				left = append(left, g)
				break
			}
		}
	}
	return left
}

// checkNoStageGoroutines fails t if a goroutine that stage.go started is
// alive, without waiting for any to exit.
func checkNoStageGoroutines(t *testing.T) {
	t.Helper()
	if left := stageGoroutines(); len(left) > 0 {
		t.Errorf("%d goroutine(s) started by stage.go alive:\n\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// checkStageGoroutinesExited fails t unless every goroutine that stage.go
// started exits within moments: Batch's and Map's feeders have signalled
// that they are done by the time the iteration returns, but signalling
// precedes their very last instructions.
func checkStageGoroutinesExited(t *testing.T) {
	t.Helper()
	for pause := 10 * time.Microsecond; ; pause *= 2 {
		if len(stageGoroutines()) == 0 {
			return
		}
		if pause > time.Second {
			checkNoStageGoroutines(t)
			return
		}
		// Not synchronisation: a bound on a goroutine's last steps.
		time.Sleep(pause)
	}
}

// counted yields 0, 1, … n-1 (forever if n < 0), counting the items pulled in
// *pulled and setting *returned when it returns.
func counted(n int, pulled *atomic.Int64, returned *atomic.Bool) iter.Seq[int] {
	return func(yield func(int) bool) {
		defer returned.Store(true)
		for i := 0; n < 0 || i < n; i++ {
			pulled.Add(1)
			if !yield(i) {
				return
			}
		}
	}
}

func double(_ context.Context, x int) (int, error) { return 2 * x, nil }

// await awaits r, failing t if it does not complete within moments: a
// bound, so that a Result that never completes fails the test instead of
// hanging it.
func await[T any](t *testing.T, r *Result[T]) (T, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := r.Await(ctx)
	if err == context.DeadlineExceeded && ctx.Err() != nil {
		t.Fatal("the Result did not complete")
	}
	return v, err
}

// pair is one (value, error) of a stream, as tests compare them.
type pair struct {
	V     int
	Index int    // ItemError's Index; -1 when err is not an *ItemError
	Err   string // err's message, empty for nil
}

func pairOf(v int, err error) pair {
	p := pair{V: v, Index: -1}
	if err != nil {
		p.Err = err.Error()
		var ie *ItemError
		if errors.As(err, &ie) {
			p.Index = ie.Index
		}
	}
	return p
}

func TestMapYieldsEachResultOnce(t *testing.T) {
	checkNoLeak(t)
	p := New(4, double)
	defer p.Close()
	const n = 1000
	var got, want []int
	for v, err := range Map(context.Background(), p, counted(n, new(atomic.Int64), new(atomic.Bool))) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	for i := range n {
		want = append(want, 2*i)
	}
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sorted outputs (-want +got):\n%s", diff)
	}
	checkStageGoroutinesExited(t) // the feeder has exited
}

func TestMapIsReiterable(t *testing.T) {
	checkNoLeak(t)
	p := New(2, double)
	defer p.Close()
	out := Map(context.Background(), p, slices.Values([]int{1, 2, 3}), Ordered())
	for round := range 2 {
		var got []int
		for v, err := range out {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
		if diff := cmp.Diff([]int{2, 4, 6}, got); diff != "" {
			t.Errorf("round %d (-want +got):\n%s", round, diff)
		}
	}
}

func TestMapOrderedKeepsInputOrderUnderRandomDelays(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		// Pseudo-random delays, the same on every run; in the bubble they
		// take no real time.
		p := New(8, func(_ context.Context, x int) (int, error) {
			time.Sleep(time.Duration(x*7919%17) * time.Millisecond)
			return x, nil
		})
		defer p.Close()
		const n = 300
		want := make([]int, n)
		for i := range want {
			want[i] = i
		}
		run := func(opts ...MapOption) []int {
			var got []int
			for v, err := range Map(t.Context(), p, slices.Values(want), opts...) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, v)
			}
			return got
		}
		if diff := cmp.Diff(want, run(Ordered(), InFlight(16))); diff != "" {
			t.Errorf("Ordered outputs (-want +got):\n%s", diff)
		}
		// The check above means something only if the delays reorder
		// completions: unordered, they do.
		unordered := run(InFlight(16))
		if slices.Equal(unordered, want) {
			t.Error("unordered outputs came in input order: the delays do not reorder the jobs")
		}
		slices.Sort(unordered)
		if diff := cmp.Diff(want, unordered); diff != "" {
			t.Errorf("sorted unordered outputs (-want +got):\n%s", diff)
		}
	})
}

func TestMapYieldsCompletedResultsBeforePullingMore(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		p := New(2, double)
		defer p.Close()
		const n = 6
		var pulled atomic.Int64
		// A slow source: each job has long completed when it yields the
		// next item.
		src := func(yield func(int) bool) {
			for i := range n {
				time.Sleep(time.Second)
				pulled.Add(1)
				if !yield(i) {
					return
				}
			}
		}
		var at []int64 // items pulled when each result came
		for _, err := range Map(t.Context(), p, src, InFlight(n)) {
			if err != nil {
				t.Fatal(err)
			}
			at = append(at, pulled.Load())
		}
		// Result k completed before item k+1 was pulled, so it comes at
		// the latest while Map submits item k+1, not when the window
		// fills up.
		for k, got := range at {
			if want := min(int64(k+2), n); got > want {
				t.Errorf("result %d came after %d items were pulled, want at most %d (all: %v)", k, got, want, at)
				break
			}
		}
	})
}

func TestMapPullsOnlyAsResultsAreConsumed(t *testing.T) {
	checkNoLeak(t)
	p := New(4, double)
	defer p.Close()
	for _, ordered := range []bool{false, true} {
		for _, n := range []int{1, 3, 8} {
			t.Run(fmt.Sprintf("ordered=%v/InFlight(%d)", ordered, n), func(t *testing.T) {
				opts := []MapOption{InFlight(n)}
				if ordered {
					opts = append(opts, Ordered())
				}
				var pulled, consumed, worst atomic.Int64
				src := func(yield func(int) bool) {
					for i := range 500 {
						// Items pulled, this one included, and not yet consumed.
						ahead := pulled.Add(1) - consumed.Load()
						if ahead > worst.Load() {
							worst.Store(ahead)
						}
						if !yield(i) {
							return
						}
					}
				}
				for _, err := range Map(context.Background(), p, src, opts...) {
					if err != nil {
						t.Fatal(err)
					}
					consumed.Add(1)
				}
				if got := consumed.Load(); got != 500 {
					t.Errorf("consumed %d results, want 500", got)
				}
				if w := worst.Load(); w > int64(n) {
					t.Errorf("the source was pulled %d items ahead of the consumer, want at most InFlight = %d", w, n)
				}
			})
		}
	}
}

func TestMapKeepsInFlightItemsRunningAtOnce(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		const n = 6
		var started atomic.Int64
		all := make(chan struct{})
		// Each handler waits until n handlers run at once; if Map kept
		// fewer in flight, the bubble's clock would reach the minute.
		p := New(n, func(_ context.Context, x int) (int, error) {
			if started.Add(1) == n {
				close(all)
			}
			select {
			case <-all:
				return x, nil
			case <-time.After(time.Minute):
				return 0, fmt.Errorf("only %d handlers ran at once", started.Load())
			}
		})
		defer p.Close()
		for _, ordered := range []bool{false, true} {
			started.Store(0)
			all = make(chan struct{})
			opts := []MapOption{InFlight(n)}
			if ordered {
				opts = append(opts, Ordered())
			}
			got := 0
			for _, err := range Map(t.Context(), p, slices.Values(make([]int, n)), opts...) {
				if err != nil {
					t.Errorf("ordered=%v: %v", ordered, err)
				}
				got++
			}
			if got != n {
				t.Errorf("ordered=%v: got %d results, want %d", ordered, got, n)
			}
		}
	})
}

func TestMapBreakCancelsInFlightJobs(t *testing.T) {
	checkNoLeak(t)
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("ordered=%v", ordered), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 4
				started := make(chan int, n)
				observed := make(chan error, n)
				p := New(n, func(ctx context.Context, x int) (int, error) {
					if x == 0 {
						// Item 0 completes once the others run, so
						// they are running when the consumer breaks.
						for range n - 1 {
							<-started
						}
						return 0, nil
					}
					started <- x
					<-ctx.Done()
					observed <- ctx.Err()
					return 0, ctx.Err()
				})
				var pulled atomic.Int64
				var returned atomic.Bool
				opts := []MapOption{InFlight(n)}
				if ordered {
					opts = append(opts, Ordered())
				}
				var got []pair
				for v, err := range Map(t.Context(), p, counted(-1, &pulled, &returned), opts...) {
					got = append(got, pairOf(v, err))
					break
				}
				checkStageGoroutinesExited(t)
				if diff := cmp.Diff([]pair{{V: 0, Index: -1}}, got); diff != "" {
					t.Errorf("yielded (-want +got):\n%s", diff)
				}
				if !returned.Load() || pulled.Load() != n {
					t.Errorf("source returned %v after %d pulls; want it to return after InFlight = %d", returned.Load(), pulled.Load(), n)
				}
				for range n - 1 {
					if err := <-observed; !errors.Is(err, context.Canceled) {
						t.Errorf("a running handler's ctx ended with %v, want context.Canceled", err)
					}
				}
				if err := p.Close(); err != nil {
					t.Fatal(err)
				}
				if m := p.Metrics(); m.Canceled != n-1 || m.Succeeded != 1 {
					t.Errorf("metrics %+v, want 1 succeeded and %d cancelled", m, n-1)
				}
			})
		})
	}
}

func TestMapStopsWhenCtxIsCancelled(t *testing.T) {
	checkNoLeak(t)
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("ordered=%v", ordered), func(t *testing.T) {
			started := make(chan struct{})
			var observed atomic.Int64
			p := New(2, func(ctx context.Context, x int) (int, error) {
				if x == 0 {
					<-started // item 1 runs when ctx is cancelled
					return 0, nil
				}
				if x == 1 {
					close(started)
				}
				<-ctx.Done()
				observed.Add(1)
				return 0, ctx.Err()
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var pulled atomic.Int64
			var returned atomic.Bool
			// As many workers as items in flight: item 0 waits for item 1
			// to start, which needs a free worker (see
			// TestEngineJobsStartInSubmissionOrder).
			opts := []MapOption{InFlight(2)}
			if ordered {
				opts = append(opts, Ordered())
			}
			var got []pair
			for v, err := range Map(ctx, p, counted(-1, &pulled, &returned), opts...) {
				got = append(got, pairOf(v, err))
				cancel()
			}
			checkStageGoroutinesExited(t)
			// The job errors that ctx's end caused are not reported item
			// by item: one last pair says ctx ended.
			want := []pair{{V: 0, Index: -1}, {V: 0, Index: -1, Err: context.Canceled.Error()}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("yielded (-want +got):\n%s", diff)
			}
			if !returned.Load() || pulled.Load() > 3 {
				t.Errorf("source returned %v after %d pulls; want it to return after at most 3", returned.Load(), pulled.Load())
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if m := p.Metrics(); observed.Load() < 1 || m.Running != 0 || m.Submitted != m.Succeeded+m.Failed+m.Canceled {
				t.Errorf("%d handlers saw ctx end, metrics %+v; want at least 1 and every job ended", observed.Load(), m)
			}
		})
	}
}

func TestMapStopsAtCtxDeadline(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		p := New(2, func(ctx context.Context, x int) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		})
		defer p.Close()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		var got []pair
		for v, err := range Map(ctx, p, slices.Values(make([]int, 100)), InFlight(8)) {
			got = append(got, pairOf(v, err))
		}
		want := []pair{{V: 0, Index: -1, Err: context.DeadlineExceeded.Error()}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("yielded (-want +got):\n%s", diff)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("the stream ended after %v, want 1s", d)
		}
	})
}

func TestMapStopsAtCtxEndEvenIfHandlersIgnoreIt(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		p := New(2, func(_ context.Context, x int) (int, error) {
			<-gate // ignores its ctx
			return x, nil
		})
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		var got []pair
		for v, err := range Map(ctx, p, slices.Values(make([]int, 100)), InFlight(4)) {
			got = append(got, pairOf(v, err))
		}
		d := time.Since(start)
		close(gate)
		p.Close()
		want := []pair{{V: 0, Index: -1, Err: context.DeadlineExceeded.Error()}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("yielded (-want +got):\n%s", diff)
		}
		if d != time.Second {
			t.Errorf("the stream ended after %v, want 1s", d)
		}
		// The 2 queued jobs never run; the 2 running ones saw their ctx
		// cancelled, ignored it, and so succeeded, unseen by the stream.
		if m := p.Metrics(); m.Canceled != 2 || m.Succeeded != 2 {
			t.Errorf("metrics %+v, want the 2 queued jobs cancelled and the 2 running ones run out", m)
		}
	})
}

func TestMapDoesNotStartWithCtxEnded(t *testing.T) {
	checkNoLeak(t)
	p := New(1, double)
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var pulled atomic.Int64
	var got []pair
	for v, err := range Map(ctx, p, counted(10, &pulled, new(atomic.Bool))) {
		got = append(got, pairOf(v, err))
	}
	if diff := cmp.Diff([]pair{{Index: -1, Err: context.Canceled.Error()}}, got); diff != "" {
		t.Errorf("yielded (-want +got):\n%s", diff)
	}
	if pulled.Load() != 0 || p.Metrics().Submitted != 0 {
		t.Errorf("pulled %d items, submitted %d jobs; want none", pulled.Load(), p.Metrics().Submitted)
	}
}

func TestMapItemErrorsCarryIndexAndStreamGoesOn(t *testing.T) {
	checkNoLeak(t)
	errOdd := errors.New("odd")
	p := New(3, func(_ context.Context, x int) (int, error) {
		if x%2 == 1 {
			return 0, fmt.Errorf("x=%d: %w", x, errOdd)
		}
		return 10 * x, nil
	})
	defer p.Close()
	var got []pair
	for v, err := range Map(context.Background(), p, slices.Values([]int{100, 101, 102, 103, 104}), Ordered()) {
		if err != nil && !errors.Is(err, errOdd) {
			t.Errorf("error %v does not wrap the handler's", err)
		}
		got = append(got, pairOf(v, err))
	}
	want := []pair{
		{V: 1000, Index: -1},
		{Index: 1, Err: "jobq: item 1: x=101: odd"},
		{V: 1020, Index: -1},
		{Index: 3, Err: "jobq: item 3: x=103: odd"},
		{V: 1040, Index: -1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("yielded (-want +got):\n%s", diff)
	}
}

func TestMapReportsRefusedSubmissions(t *testing.T) {
	checkNoLeak(t)
	p := New(1, double)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	var got []pair
	for v, err := range Map(context.Background(), p, slices.Values([]int{1, 2}), Ordered()) {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("error %v, want one wrapping ErrClosed", err)
		}
		got = append(got, pairOf(v, err))
	}
	want := []pair{{Index: 0, Err: "jobq: item 0: " + ErrClosed.Error()}, {Index: 1, Err: "jobq: item 1: " + ErrClosed.Error()}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("yielded (-want +got):\n%s", diff)
	}
}

// A Map item running when Shutdown gives up ends with ErrClosed, as a
// Result does, not with the ctx cancellation its handler saw, and is not
// retried.
func TestMapItemShutdownGaveUpOnEndsWithErrClosed(t *testing.T) {
	checkNoLeak(t)
	started := make(chan struct{})
	p := New(1, func(ctx context.Context, x int) (int, error) {
		close(started)
		<-ctx.Done()
		return 0, ctx.Err()
	}, WithPolicy(Policy{MaxAttempts: 3}))
	gaveUp := make(chan error, 1)
	go func() {
		<-started
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		gaveUp <- p.Shutdown(ctx)
	}()
	n := 0
	for _, err := range Map(context.Background(), p, slices.Values([]int{1})) {
		n++
		if !errors.Is(err, ErrClosed) {
			t.Errorf("item error %v, want one wrapping ErrClosed", err)
		}
	}
	if n != 1 {
		t.Errorf("Map yielded %d items, want 1", n)
	}
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown = %v, want context.Canceled", err)
	}
	checkCounts(t, p.Metrics(), counts{Submitted: 1, Canceled: 1})
}

func TestMapErrorThatStopsTheConsumerStopsUpstream(t *testing.T) {
	checkNoLeak(t)
	errBad := errors.New("bad")
	parse := New(2, func(_ context.Context, x int) (int, error) {
		if x == 10 {
			return 0, errBad
		}
		return x, nil
	})
	defer parse.Close()
	dbl := New(2, double)
	defer dbl.Close()

	var pulled atomic.Int64
	var returned atomic.Bool
	var first error
	stop := func(err error) bool { first = err; return false }
	ctx := context.Background()
	var got []int
	for v, err := range Map(ctx, dbl, Values(Map(ctx, parse, counted(1000, &pulled, &returned), Ordered(), InFlight(4)), stop)) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	checkStageGoroutinesExited(t)
	slices.Sort(got)
	if diff := cmp.Diff([]int{0, 2, 4, 6, 8, 10, 12, 14, 16, 18}, got); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	var ie *ItemError
	if !errors.As(first, &ie) || ie.Index != 10 || !errors.Is(first, errBad) {
		t.Errorf("first error %v, want an *ItemError for item 10 wrapping %v", first, errBad)
	}
	// Item 10 failed with at most 3 items behind it in flight.
	if !returned.Load() || pulled.Load() > 15 {
		t.Errorf("source returned %v after %d pulls; want it to return after at most 15", returned.Load(), pulled.Load())
	}
}

// TestEngineJobsStartInSubmissionOrder pins down what Map's in-flight
// window relies on: a job does not wait behind a running job while a job
// submitted after it holds another worker.
func TestEngineJobsStartInSubmissionOrder(t *testing.T) {
	checkNoLeak(t)
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := New(2, func(ctx context.Context, x int) (int, error) {
		switch x {
		case 0:
			select {
			case <-started:
				return 0, nil
			case <-time.After(10 * time.Second): // a bound, not synchronisation
				return 0, errors.New("job 1 never started")
			}
		case 1:
			close(started)
			return 0, nil
		}
		<-ctx.Done() // jobs 2 and 3 hold a worker until the test ends
		return 0, ctx.Err()
	})
	defer p.Close()
	r := p.Submit(ctx, 0)
	for x := 1; x < 4; x++ {
		p.Submit(ctx, x)
	}
	if _, err := r.Await(context.Background()); err != nil {
		t.Error(err)
	}
	cancel()
}

// sharedStage hands out one Result for every submission, as a caching stage
// might.
type sharedStage struct{ r *Result[int] }

func (s sharedStage) Submit(context.Context, int, ...Policy) *Result[int] { return s.r }

func TestMapWithAStageSharingOneResult(t *testing.T) {
	checkNoLeak(t)
	gate := make(chan struct{})
	p := New(1, func(_ context.Context, x int) (int, error) {
		<-gate
		return x, nil
	})
	defer p.Close()
	s := sharedStage{p.Submit(context.Background(), 7)}
	src := func(yield func(int) bool) {
		_ = yield(1) && yield(2) && yield(3)
		close(gate) // all three items wait on the one job
	}
	var got []int
	for v, err := range Map(context.Background(), Stage[int, int](s), src, InFlight(4)) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	checkStageGoroutinesExited(t)
	if diff := cmp.Diff([]int{7, 7, 7}, got); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
}

func TestMapPanicsOnProgrammerErrors(t *testing.T) {
	p := New(1, double)
	defer p.Close()
	ctx := context.Background()
	src := slices.Values([]int{1})
	mustPanic(t, "InFlight: n must be >= 1, got 0", func() { InFlight(0) })
	mustPanic(t, "InFlight: n must be >= 1, got -3", func() { InFlight(-3) })
	var nilCtx context.Context
	mustPanic(t, "Map: ctx must not be nil", func() { Map(nilCtx, p, src) })
	mustPanic(t, "Map: s must not be nil", func() { Map[int, int](ctx, nil, src) })
	mustPanic(t, "Map: in must not be nil", func() { Map(ctx, p, nil) })
	mustPanic(t, "Values: in must not be nil", func() { Values[int](nil, func(error) bool { return true }) })
	mustPanic(t, "Values: onErr must not be nil", func() { Values(Map(ctx, p, src), nil) })
	mustPanic(t, "Then: first must not be nil", func() { Then[int, int, int](nil, p) })
	mustPanic(t, "Then: next must not be nil", func() { Then[int, int, int](p, nil) })
	mustPanic(t, "Batch: size must be >= 1, got 0", func() { Batch(src, 0, time.Second) })
	mustPanic(t, "Batch: in must not be nil", func() { Batch[int](nil, 1, 0) })
	mustPanic(t, "Flatten: in must not be nil", func() { Flatten[int](nil) })
}

func TestValuesHandsErrorsToOnErr(t *testing.T) {
	e1, e2 := errors.New("e1"), errors.New("e2")
	in := []struct {
		v   int
		err error
	}{{1, nil}, {0, e1}, {2, nil}, {0, e2}, {3, nil}}
	for _, tc := range []struct {
		name       string
		goOn       bool
		wantValues []int
		wantErrs   []error
		wantPulled int
	}{
		{"go on", true, []int{1, 2, 3}, []error{e1, e2}, 5},
		{"stop", false, []int{1}, []error{e1}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pulled := 0
			src := func(yield func(int, error) bool) {
				for _, p := range in {
					pulled++
					if !yield(p.v, p.err) {
						return
					}
				}
			}
			var errs []error
			var got []int
			for v := range Values(src, func(err error) bool { errs = append(errs, err); return tc.goOn }) {
				got = append(got, v)
			}
			if diff := cmp.Diff(tc.wantValues, got); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantErrs, errs, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if pulled != tc.wantPulled {
				t.Errorf("pulled %d pairs, want %d", pulled, tc.wantPulled)
			}
		})
	}
}

func TestThenChainsStages(t *testing.T) {
	checkNoLeak(t)
	errFirst, errNext := errors.New("first failed"), errors.New("next failed")
	var nextCalls atomic.Int64
	first := New(2, func(_ context.Context, x int) (int, error) {
		if x < 0 {
			return 0, errFirst
		}
		return x + 1, nil
	})
	defer first.Close()
	next := New(2, func(_ context.Context, x int) (string, error) {
		nextCalls.Add(1)
		if x > 100 {
			return "", errNext
		}
		return strconv.Itoa(2 * x), nil
	})
	defer next.Close()
	s := Then(first, next)
	for _, tc := range []struct {
		in        int
		want      string
		wantErr   error
		nextCalls int64
	}{
		{in: 1, want: "4", nextCalls: 1},
		{in: -1, wantErr: errFirst, nextCalls: 0},
		{in: 200, wantErr: errNext, nextCalls: 1},
	} {
		nextCalls.Store(0)
		got, err := await(t, s.Submit(context.Background(), tc.in))
		if got != tc.want || err != tc.wantErr || nextCalls.Load() != tc.nextCalls {
			t.Errorf("Submit(%d): %q, %v, next ran %d times; want %q, %v, %d times",
				tc.in, got, err, nextCalls.Load(), tc.want, tc.wantErr, tc.nextCalls)
		}
	}
}

func TestThenCancelReachesTheLiveStage(t *testing.T) {
	checkNoLeak(t)
	for _, stage := range []string{"first", "next"} {
		t.Run(stage, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				started := make(chan string, 2)
				observed := make(chan error, 2)
				var calls atomic.Int64
				handler := func(name string) Handler[int, int] {
					return func(ctx context.Context, x int) (int, error) {
						calls.Add(1)
						if name != stage {
							return x, nil
						}
						started <- name
						<-ctx.Done()
						observed <- ctx.Err()
						return 0, ctx.Err()
					}
				}
				first := New(1, handler("first"))
				next := New(1, handler("next"))
				// Ending the submission ctx releases a handler that Cancel
				// failed to reach, so a failure cannot hang the test.
				ctx, release := context.WithCancel(t.Context())
				defer func() {
					release()
					first.Close()
					next.Close()
				}()

				r := Then(first, next).Submit(ctx, 1)
				<-started
				r.Cancel()
				if _, err := r.Await(context.Background()); err != context.Canceled {
					t.Errorf("Await after Cancel: %v, want context.Canceled", err)
				}
				select {
				case err := <-observed:
					if err != context.Canceled {
						t.Errorf("the %s stage's handler saw its ctx end with %v, want context.Canceled", stage, err)
					}
				case <-time.After(time.Minute):
					t.Fatalf("Cancel did not reach the %s stage's running handler", stage)
				}
				release()
				first.Close()
				next.Close()
				wantCalls := map[string]int64{"first": 1, "next": 2}[stage]
				if calls.Load() != wantCalls {
					t.Errorf("handlers ran %d times, want %d (nothing after the cancelled stage)", calls.Load(), wantCalls)
				}
			})
		})
	}
}

func TestThenAppliesThePolicyToEachStage(t *testing.T) {
	checkNoLeak(t)
	errFlaky := errors.New("flaky")
	flakyOnce := func(calls *atomic.Int64) Handler[int, int] {
		return func(_ context.Context, x int) (int, error) {
			if calls.Add(1) == 1 {
				return 0, errFlaky
			}
			return x + 1, nil
		}
	}
	for _, tc := range []struct {
		name         string
		pol          []Policy
		want         int
		wantErr      error
		wantAttempts int
	}{
		{"retried in each stage", []Policy{{MaxAttempts: 2, Backoff: Constant(0)}}, 3, nil, 4},
		{"no retry", nil, 0, errFlaky, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c1, c2 atomic.Int64
			first := New(1, flakyOnce(&c1))
			defer first.Close()
			next := New(1, flakyOnce(&c2))
			defer next.Close()
			r := Then(first, next).Submit(context.Background(), 1, tc.pol...)
			got, err := await(t, r)
			if got != tc.want || !errors.Is(err, tc.wantErr) || r.Attempts() != tc.wantAttempts {
				t.Errorf("got %d, %v after %d attempts; want %d, %v after %d",
					got, err, r.Attempts(), tc.want, tc.wantErr, tc.wantAttempts)
			}
		})
	}
}

func TestThenCarriesTheSubmissionCtx(t *testing.T) {
	checkNoLeak(t)
	type key struct{}
	first := New(1, func(ctx context.Context, x int) (int, error) { return x + len(ctx.Value(key{}).(string)), nil })
	defer first.Close()
	next := New(1, func(ctx context.Context, x int) (string, error) { return fmt.Sprint(ctx.Value(key{}), x), nil })
	defer next.Close()
	ctx := context.WithValue(context.Background(), key{}, "v")
	got, err := await(t, Then(first, next).Submit(ctx, 1))
	if got != "v2" || err != nil {
		t.Errorf("got %q, %v; want \"v2\", nil", got, err)
	}
}

func TestMapOverThen(t *testing.T) {
	checkNoLeak(t)
	inc := New(2, func(_ context.Context, x int) (int, error) { return x + 1, nil })
	defer inc.Close()
	dbl := New(2, double)
	defer dbl.Close()
	var got []int
	for v, err := range Map(context.Background(), Then(inc, dbl), slices.Values([]int{0, 1, 2, 3}), Ordered()) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if diff := cmp.Diff([]int{2, 4, 6, 8}, got); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
}

func TestBatchFlushesBySize(t *testing.T) {
	for _, tc := range []struct {
		n, size int
		want    [][]int
	}{
		{10, 3, [][]int{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9}}},
		{4, 1, [][]int{{0}, {1}, {2}, {3}}},
		{4, 4, [][]int{{0, 1, 2, 3}}},
		{4, 100, [][]int{{0, 1, 2, 3}}},
		{0, 3, nil},
	} {
		for _, maxWait := range []time.Duration{0, time.Hour} {
			t.Run(fmt.Sprintf("n=%d/size=%d/maxWait=%v", tc.n, tc.size, maxWait), func(t *testing.T) {
				var got [][]int
				for b := range Batch(counted(tc.n, new(atomic.Int64), new(atomic.Bool)), tc.size, maxWait) {
					got = append(got, b)
				}
				checkStageGoroutinesExited(t)
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("batches (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestBatchFlushesByTimeAndNeverEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxWait = 10 * time.Millisecond
		more := make(chan struct{})
		last := make(chan struct{})
		time.AfterFunc(6*maxWait, func() { close(last) })
		src := func(yield func(int) bool) {
			_ = yield(1) && yield(2)
			<-more // blocked past maxWait: [1 2] goes by time
			_ = yield(3) && yield(4) && yield(5)
			<-last // [3 4 5] went by size; nothing is pending now
			yield(6)
		}
		type batch struct {
			Items []int
			At    time.Duration
		}
		start := time.Now()
		var got []batch
		for b := range Batch(src, 3, maxWait) {
			got = append(got, batch{b, time.Since(start)})
			if len(got) == 1 {
				close(more)
			}
		}
		want := []batch{
			{[]int{1, 2}, maxWait},
			{[]int{3, 4, 5}, maxWait},
			{[]int{6}, 6 * maxWait}, // the end of the source flushes it
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("batches (-want +got):\n%s", diff)
		}
	})
}

func TestBatchTimerStartsAtTheBatchsFirstItem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxWait = 10 * time.Millisecond
		src := func(yield func(int) bool) {
			time.Sleep(25 * time.Millisecond) // idle: no batch, no timer
			_ = yield(1) && yield(2)
			time.Sleep(4 * time.Millisecond)
			yield(3)
			time.Sleep(time.Hour)
		}
		start := time.Now()
		for b := range Batch(src, 5, maxWait) {
			if diff := cmp.Diff([]int{1, 2, 3}, b); diff != "" {
				t.Errorf("batch (-want +got):\n%s", diff)
			}
			if d := time.Since(start); d != 35*time.Millisecond {
				t.Errorf("batch flushed at %v, want 35ms: maxWait after its first item", d)
			}
			break
		}
	})
}

func TestBatchStopsTheSourceWhenTheConsumerBreaks(t *testing.T) {
	for _, maxWait := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprintf("maxWait=%v", maxWait), func(t *testing.T) {
			var pulled atomic.Int64
			var returned atomic.Bool
			var got [][]int
			for b := range Batch(counted(-1, &pulled, &returned), 3, maxWait) {
				got = append(got, b)
				break
			}
			checkStageGoroutinesExited(t)
			if !returned.Load() {
				t.Error("Batch returned before its source did")
			}
			// The feeder goroutine may pull one item ahead.
			if n := pulled.Load(); n > 4 {
				t.Errorf("pulled %d items for one batch of 3, want at most 4", n)
			}
			if diff := cmp.Diff([][]int{{0, 1, 2}}, got); diff != "" {
				t.Errorf("batches (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBatchRaisesTheSourcesPanicInTheConsumer(t *testing.T) {
	src := func(yield func(int) bool) {
		yield(1)
		panic("boom")
	}
	var got any
	func() {
		defer func() { got = recover() }()
		for range Batch(src, 3, time.Hour) {
			t.Error("a batch was yielded")
		}
	}()
	if got != "boom" {
		t.Errorf("recovered %v, want the source's panic \"boom\"", got)
	}
	checkStageGoroutinesExited(t)
}

func TestFlatten(t *testing.T) {
	in := slices.Values([][]int{{1, 2}, {}, {3}, nil, {4, 5}})
	if diff := cmp.Diff([]int{1, 2, 3, 4, 5}, slices.Collect(Flatten(in))); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	var got []int
	for v := range Flatten(in) {
		if got = append(got, v); v == 3 {
			break
		}
	}
	if diff := cmp.Diff([]int{1, 2, 3}, got); diff != "" {
		t.Errorf("items up to the break (-want +got):\n%s", diff)
	}
}

func TestBatchFlattenRoundTrip(t *testing.T) {
	want := slices.Collect(counted(50, new(atomic.Int64), new(atomic.Bool)))
	got := slices.Collect(Flatten(Batch(slices.Values(want), 7, time.Hour)))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
}

// A three-stage pipeline: parse, square, format. Ordered keeps the output
// in input order; Values hands each stage's failures to report and lets the
// stream go on.
func ExampleMap() {
	ctx := context.Background()
	parse := New(2, func(_ context.Context, s string) (int, error) { return strconv.Atoi(s) })
	defer parse.Close()
	square := New(2, func(_ context.Context, n int) (int, error) { return n * n, nil })
	defer square.Close()
	format := New(2, func(_ context.Context, n int) (string, error) { return fmt.Sprintf("[%d]", n), nil })
	defer format.Close()

	var failed []error
	report := func(err error) bool { failed = append(failed, err); return true }
	src := slices.Values([]string{"1", "2", "x", "4"})
	out := Map(ctx, format, Values(Map(ctx, square, Values(Map(ctx, parse, src, Ordered()), report), Ordered()), report), Ordered())
	for s, err := range out {
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(s)
	}
	fmt.Println("failed:", failed)
	// Output:
	// [1]
	// [4]
	// [16]
	// failed: [jobq: item 2: strconv.Atoi: parsing "x": invalid syntax]
}

func ExampleBatch() {
	for b := range Batch(slices.Values([]int{1, 2, 3, 4, 5, 6, 7}), 3, time.Second) {
		fmt.Println(b)
	}
	// Output:
	// [1 2 3]
	// [4 5 6]
	// [7]
}

func ExampleThen() {
	parse := New(1, func(_ context.Context, s string) (int, error) { return strconv.Atoi(s) })
	defer parse.Close()
	half := New(1, func(_ context.Context, n int) (float64, error) { return float64(n) / 2, nil })
	defer half.Close()
	parseHalf := Then(parse, half)
	fmt.Println(parseHalf.Submit(context.Background(), "3").Await(context.Background()))
	fmt.Println(parseHalf.Submit(context.Background(), "three").Await(context.Background()))
	// Output:
	// 1.5 <nil>
	// 0 strconv.Atoi: parsing "three": invalid syntax
}

// TestMapFromAHandlerOfItsOwnPoolRunsItsItems: a handler that Maps items
// through its own pool, with every worker busy in such a handler, runs the
// items itself as Await would (fork–join); Map used to sleep waiting for a
// worker that never came.
func TestMapFromAHandlerOfItsOwnPoolRunsItsItems(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p *Pool[int, int]
		p = New(1, func(ctx context.Context, x int) (int, error) {
			if x >= 0 {
				return x, nil
			}
			sum := 0
			for v, err := range Map(ctx, p, slices.Values([]int{1, 2, 3})) {
				if err != nil {
					return 0, err
				}
				sum += v
			}
			return sum, nil
		})
		defer p.Close()
		got, err := p.Submit(context.Background(), -1).Await(context.Background())
		if err != nil || got != 6 {
			t.Fatalf("got %d, %v; want 6, nil", got, err)
		}
	})
}

// TestThenAwaitedFromAHandlerOfNextsPool: a handler of next's pool submits
// a Then chain with its own ctx and awaits it: once first's job completes,
// next's job is queued behind the awaiting handler, which holds the only
// worker. The chain runs it in place, as Await runs a fork–join child; it
// used to deadlock.
func TestThenAwaitedFromAHandlerOfNextsPool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		p := New(1, func(_ context.Context, x int) (int, error) {
			<-gate // first's job ends only once the q handler awaits
			return 2 * x, nil
		})
		defer p.Close()
		var q *Pool[int, int]
		var chain Stage[int, int]
		q = New(1, func(ctx context.Context, x int) (int, error) {
			if x >= 0 {
				return x + 1, nil
			}
			return chain.Submit(ctx, 5).Await(ctx)
		})
		defer q.Close()
		chain = Then[int, int, int](p, q)
		r := q.Submit(context.Background(), -1)
		synctest.Wait() // the q handler is blocked in Await, p's in the gate
		close(gate)
		got, err := r.Await(context.Background())
		if err != nil || got != 11 {
			t.Fatalf("got %d, %v; want 11, nil", got, err)
		}
	})
}

// TestTimedBatchRaisesASourcePanicAfterStopInTheConsumer: a source that
// panics as it winds down, after Batch told it to stop. In a timed Batch
// the source runs in the feeder goroutine; its panic must be raised again
// in the consumer, as the untimed Batch (and the doc) have it, not kill the
// process from the feeder. The case runs in a child process, so that the
// old crash fails the test rather than the test binary.
func TestTimedBatchRaisesASourcePanicAfterStopInTheConsumer(t *testing.T) {
	if os.Getenv("JOBQ_BATCH_PANIC_CHILD") == "1" {
		src := func(yield func(int) bool) {
			for i := 0; ; i++ {
				if !yield(i) {
					panic("source cleanup failed")
				}
			}
		}
		defer func() {
			if v := recover(); v != "source cleanup failed" {
				t.Errorf("consumer recovered %v, want the source's panic", v)
			}
		}()
		for range Batch(src, 1, time.Hour) {
			break
		}
		t.Error("the source's panic did not reach the consumer")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestTimedBatchRaisesASourcePanicAfterStopInTheConsumer$", "-test.count=1")
	cmd.Env = append(os.Environ(), "JOBQ_BATCH_PANIC_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// TestBreakingOutOfMapEndsItemsInRetryBackoff: breaking out of a Map over a
// Pool cancels the items in flight, and one waiting out a retry backoff ends
// at once, as its ctx ends; it used to wait out the backoff, counted queued,
// and Close waited for it.
func TestBreakingOutOfMapEndsItemsInRetryBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := New(1, func(_ context.Context, x int) (int, error) {
			if x == 0 {
				return 0, errors.New("transient")
			}
			return x, nil
		}, WithPolicy(Policy{MaxAttempts: 2, Backoff: Constant(time.Hour)}))
		for v, err := range Map(context.Background(), p, slices.Values([]int{0, 1}), InFlight(2)) {
			if err != nil || v != 1 {
				t.Fatalf("got %d, %v; want 1, nil", v, err)
			}
			break // item 0 is in its backoff now
		}
		synctest.Wait()
		if m := p.Metrics(); m.Queued != 0 {
			t.Errorf("after the break: Queued = %d, want 0", m.Queued)
		}
		start := time.Now()
		p.Close()
		if d := time.Since(start); d > 0 {
			t.Errorf("Close waited %v for a cancelled item's backoff", d)
		}
	})
}

// awaitOuterChain awaits outer, a handler of next awaiting a chain whose
// next part awaits a job of first, which yields 100. In a synctest bubble,
// an hour passing means deadlock: next's part ran on first's only worker and
// waits on a job of first queued behind itself; unstick ends that wait.
func awaitOuterChain(t *testing.T, outer *Result[int], unstick func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	v, err := outer.Await(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadlock: next's part of the item ran on first's only worker and awaits a job of first queued behind itself")
		unstick()
		_, _ = outer.Await(context.Background())
	} else if err != nil || v != 100 {
		t.Errorf("outer = %v, %v; want 100, nil", v, err)
	}
}

// TestThenRunsNextsPartOffFirstsWorker: a chain awaited from a handler of
// next, while next has a worker that will come free: next's part of the
// item must not run on first's only worker, where a next handler that
// awaits a job of first would wait on itself.
func TestThenRunsNextsPartOffFirstsWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate1 := make(chan struct{}) // holds first's part until the chain is awaited
		gate2 := make(chan struct{}) // holds next's second worker a while
		stuck, unstick := context.WithCancel(context.Background())
		defer unstick()
		first := New(1, func(_ context.Context, x int) (int, error) {
			if x == 1 {
				<-gate1
			}
			return x, nil
		})
		var next *Pool[int, int]
		next = New(2, func(ctx context.Context, x int) (int, error) {
			switch x {
			case 0: // awaits an item going through first, then next
				return Then[int, int, int](first, next).Submit(ctx, 1).Await(ctx)
			case 1: // next's part of the item: needs a job of first
				return first.Submit(ctx, 100).Await(stuck)
			default: // keeps next's other worker busy for a while
				<-gate2
				return 0, nil
			}
		})
		busy := next.Submit(context.Background(), 2)
		outer := next.Submit(context.Background(), 0)
		synctest.Wait() // outer awaits the chain; first's part waits on gate1
		close(gate1)
		synctest.Wait()
		close(gate2)
		if _, err := busy.Await(context.Background()); err != nil {
			t.Fatal(err)
		}
		awaitOuterChain(t, outer, unstick)
		first.Close()
		next.Close()
	})
}

// closeAfterGiveUp checks that outer, a handler of next that gave up
// awaiting a chain, ended with context.Canceled, then starts next.Close and
// checks that it waits: next's part of the chain still runs. It returns a
// channel closed once Close returns.
func closeAfterGiveUp(t *testing.T, outer *Result[int], next *Pool[int, int]) <-chan struct{} {
	t.Helper()
	if _, err := outer.Await(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("outer: %v, want context.Canceled", err)
	}
	closed := make(chan struct{})
	go func() { _ = next.Close(); close(closed) }()
	synctest.Wait()
	select {
	case <-closed:
		t.Errorf("Close returned while a job of next still runs; Metrics %+v", next.Metrics())
	default:
	}
	return closed
}

// TestCloseWaitsForNextsPartOfAThenRunInPlace: next's part of a chain, run
// in place of a next handler that awaited the chain, is a job of next:
// Close must wait for it even after the awaiting handler gave up and
// returned, and Metrics must count it.
func TestCloseWaitsForNextsPartOfAThenRunInPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate1 := make(chan struct{}) // holds first's part until the chain is awaited
		gate2 := make(chan struct{}) // holds next's part, whose handler ignores ctx
		started := make(chan struct{})
		giveUp, stop := context.WithCancel(context.Background())
		first := New(1, func(_ context.Context, x int) (int, error) {
			<-gate1
			return x, nil
		})
		var next *Pool[int, int]
		next = New(1, func(ctx context.Context, x int) (int, error) {
			if x == 0 {
				return Then[int, int, int](first, next).Submit(ctx, 1).Await(giveUp)
			}
			close(started)
			<-gate2
			return x, nil
		})
		outer := next.Submit(context.Background(), 0)
		synctest.Wait() // outer awaits the chain; first's part waits on gate1
		close(gate1)
		<-started // next's part runs, not on a worker of next
		stop()    // the awaiting handler gives up
		closed := closeAfterGiveUp(t, outer, next)
		close(gate2)
		<-closed
		m := next.Metrics()
		if m.Submitted != m.Succeeded+m.Failed+m.Canceled {
			t.Errorf("after Close, Metrics do not add up: %+v", m)
		}
		first.Close()
	})
}

// TestThenRunsNextsPartOffFirstsWorkerWhenNextsQueueIsFull: a chain
// submitted from a handler of next, with next's queue full when first's
// part completes. next's Submit sees a fork–join child with a full queue
// and runs it inline; it used to do so on first's only worker, where a next
// handler that awaits a job of first waits on itself.
func TestThenRunsNextsPartOffFirstsWorkerWhenNextsQueueIsFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stuck, unstick := context.WithCancel(context.Background())
		defer unstick()
		first := New(1, func(_ context.Context, x int) (int, error) { return x, nil })
		var next *Pool[int, int]
		next = New(1, func(ctx context.Context, x int) (int, error) {
			switch x {
			case 0:
				next.Submit(ctx, 3) // fills next's queue (size 1)
				return Then[int, int, int](first, next).Submit(ctx, 1).Await(ctx)
			case 1: // next's part of the item: needs a job of first
				return first.Submit(ctx, 100).Await(stuck)
			default:
				return 0, nil
			}
		}, WithQueueSize(1))
		outer := next.Submit(context.Background(), 0)
		awaitOuterChain(t, outer, unstick)
		first.Close()
		next.Close()
	})
}

// TestCloseWaitsForAForkJoinChildRunInlineOffItsPoolsWorkers: a fork–join
// child that Submit runs inline because the queue is full is a job of the
// pool, and Close waits for it also when the caller is no worker of the
// pool (here a goroutine of Then's); Close used to return while it ran.
func TestCloseWaitsForAForkJoinChildRunInlineOffItsPoolsWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		started := make(chan struct{})
		giveUp, stop := context.WithCancel(context.Background())
		first := New(1, func(_ context.Context, x int) (int, error) { return x, nil })
		var next *Pool[int, int]
		next = New(1, func(ctx context.Context, x int) (int, error) {
			switch x {
			case 0:
				next.Submit(ctx, 3) // fills next's queue (size 1)
				return Then[int, int, int](first, next).Submit(ctx, 1).Await(giveUp)
			case 1: // ignores ctx
				close(started)
				<-gate
				return x, nil
			default:
				return 0, nil
			}
		}, WithQueueSize(1))
		outer := next.Submit(context.Background(), 0)
		<-started
		stop()
		closed := closeAfterGiveUp(t, outer, next)
		close(gate)
		<-closed
		first.Close()
	})
}

// panicStage's Submit panics, as a user Stage may on bad input.
type panicStage struct{}

func (panicStage) Submit(context.Context, int, ...Policy) *Result[int] { panic("stage boom") }

// nilStage's Submit breaks the Stage contract by returning nil.
type nilStage struct{}

func (nilStage) Submit(context.Context, int, ...Policy) *Result[int] { return nil }

// TestMapRaisesAPanicOfTheStagesSubmit: a panic in the stage's Submit (or
// Map's own panic at a nil Result) must reach the consumer, not leave Map
// stuck in stop waiting for a notice the item will never send.
func TestMapRaisesAPanicOfTheStagesSubmit(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Stage[int, int]
		want string
	}{
		{"panicking Submit", panicStage{}, "stage boom"},
		{"nil Result", nilStage{}, "Submit returned a nil Result"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				got := make(chan any, 1)
				go func() {
					defer func() { got <- recover() }()
					for range Map(context.Background(), tc.s, slices.Values([]int{1, 2})) {
					}
				}()
				synctest.Wait()
				select {
				case v := <-got:
					if s, _ := v.(string); !strings.Contains(s, tc.want) {
						t.Errorf("Map panicked with %v, want %q", v, tc.want)
					}
				default:
					t.Fatalf("Map is stuck after the stage's Submit panicked (want panic %q)", tc.want)
				}
			})
		})
	}
}

// TestMapOverAPoolEndsATimedOutItemAtItsDeadline: a Result completes with
// context.DeadlineExceeded at its attempt's deadline even if the handler
// ignores its ctx (DESIGN: Timeouts), and Map over Then(p, ...) or any
// Result-returning stage yields it then. Map over p itself must not wait
// for the handler instead (here an hour, on synctest's clock).
func TestMapOverAPoolEndsATimedOutItemAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := New(1, func(_ context.Context, x int) (int, error) {
			<-time.After(time.Hour) // ignores its ctx
			return x, nil
		}, WithPolicy(Policy{Timeout: time.Second}), WithQueueSize(4))
		defer p.Close()
		start := time.Now()
		_, err := p.Submit(context.Background(), 1).Await(context.Background())
		if d := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || d != time.Second {
			t.Fatalf("Submit: %v after %v; want DeadlineExceeded after 1s", err, d)
		}
		synctest.Wait()
		<-time.After(time.Hour) // the worker comes free
		start = time.Now()
		for _, err := range Map(context.Background(), p, slices.Values([]int{2})) {
			if d := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || d != time.Second {
				t.Errorf("Map: %v after %v; want DeadlineExceeded after 1s, as Submit", err, d)
			}
		}
	})
}
