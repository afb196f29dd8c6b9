package jobq

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// mapModes are the two ways Map yields, for tests that cover both.
var mapModes = []struct {
	name string
	opts []MapOption
}{
	{"unordered", nil},
	{"ordered", []MapOption{Ordered()}},
}

// TestMapLeavesNoGoroutine: however the stream ends (the consumer breaks,
// ctx ends, the source panics, before or after it was told to stop, the
// stage's Submit panics), the source has returned, a panic has reached the
// consumer, and no goroutine of Map's is left once the loop is over; also
// for a fork–join Map, run by a handler of the pool the items go to.
func TestMapLeavesNoGoroutine(t *testing.T) {
	checkNoLeak(t)
	type end struct {
		name      string
		s         func(t *testing.T, p *Pool[int, int]) Stage[int, int]
		src       func(pulled *atomic.Int64, returned *atomic.Bool) func(func(int) bool)
		breakAt   int    // the consumer breaks at its breakAt-th result (from 1); 0: never
		cancelAt  int    // the consumer cancels ctx at its cancelAt-th result; 0: never
		wantPanic string // the panic the consumer must see
	}
	pool := func(_ *testing.T, p *Pool[int, int]) Stage[int, int] { return p }
	then := func(t *testing.T, p *Pool[int, int]) Stage[int, int] { return Then(p, Stage[int, int](second(t))) }
	endless := func(pulled *atomic.Int64, returned *atomic.Bool) func(func(int) bool) {
		return counted(-1, pulled, returned)
	}
	panicking := func(pulled *atomic.Int64, returned *atomic.Bool) func(func(int) bool) {
		return func(yield func(int) bool) {
			defer returned.Store(true)
			for i := range 5 {
				pulled.Add(1)
				if !yield(i) {
					return
				}
			}
			panic("source boom")
		}
	}
	panickingOnceStopped := func(pulled *atomic.Int64, returned *atomic.Bool) func(func(int) bool) {
		return func(yield func(int) bool) {
			defer returned.Store(true)
			for i := 0; ; i++ {
				pulled.Add(1)
				if !yield(i) {
					panic("source boom once stopped")
				}
			}
		}
	}
	for _, tc := range []end{
		{name: "break", s: pool, src: endless, breakAt: 3},
		{name: "break over Then", s: then, src: endless, breakAt: 3},
		{name: "ctx end", s: pool, src: endless, cancelAt: 2},
		{name: "ctx end over Then", s: then, src: endless, cancelAt: 2},
		{name: "source panic", s: pool, src: panicking, wantPanic: "source boom"},
		{name: "source panic once stopped", s: pool, src: panickingOnceStopped, breakAt: 3, wantPanic: "source boom once stopped"},
		{name: "stage panic", s: func(_ *testing.T, p *Pool[int, int]) Stage[int, int] { return &panicAt{p: p, at: 4} }, src: endless, wantPanic: "stage boom at 4"},
	} {
		for _, mode := range mapModes {
			for _, forkJoin := range []bool{false, true} {
				name := tc.name + "/" + mode.name
				if forkJoin {
					name += "/fork–join"
				}
				t.Run(name, func(t *testing.T) {
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					var pulled atomic.Int64
					var returned atomic.Bool
					var recovered any
					results := 0
					var p *Pool[int, int]
					consume := func(ctx context.Context) {
						defer func() { recovered = recover() }()
						opts := append([]MapOption{InFlight(4)}, mode.opts...)
						for _, err := range Map(ctx, tc.s(t, p), tc.src(&pulled, &returned), opts...) {
							if err != nil {
								continue
							}
							results++
							if results == tc.cancelAt {
								cancel()
							}
							if results == tc.breakAt {
								break
							}
						}
					}
					if !forkJoin {
						p = New(2, double)
						defer p.Close()
						consume(ctx)
					} else {
						// One worker, held by the handler that consumes.
						p = New(1, func(hctx context.Context, x int) (int, error) {
							if x == -1 {
								consume(hctx)
								return 0, nil
							}
							return 2 * x, nil
						}, WithQueueSize(2))
						defer p.Close()
						if _, err := p.Submit(ctx, -1).Await(context.Background()); err != nil && tc.cancelAt == 0 {
							t.Errorf("the consuming handler failed: %v", err)
						}
					}
					if s, _ := recovered.(string); tc.wantPanic != "" && !strings.Contains(s, tc.wantPanic) || tc.wantPanic == "" && recovered != nil {
						t.Errorf("the consumer recovered %v, want %q", recovered, tc.wantPanic)
					}
					if !returned.Load() {
						t.Errorf("Map returned before its source did (%d pulled)", pulled.Load())
					}
					checkStageGoroutinesExited(t)
				})
			}
		}
	}
}

// TestMapPassesOnTheSourcesGoexit: a source that calls runtime.Goexit (as
// t.FailNow does) in the feeder ends the consuming goroutine likewise, once
// the feeder has exited, as it did when the source ran in the consumer.
func TestMapPassesOnTheSourcesGoexit(t *testing.T) {
	checkNoLeak(t)
	for _, mode := range mapModes {
		p := New(2, double)
		exited := make(chan struct{})
		after := false
		go func() {
			defer close(exited)
			src := func(yield func(int) bool) {
				yield(1)
				runtime.Goexit()
			}
			for range Map(context.Background(), p, src, mode.opts...) {
			}
			after = true
		}()
		<-exited
		if after {
			t.Errorf("%s: the consumer went on after the loop; want it ended by the source's Goexit", mode.name)
		}
		checkStageGoroutinesExited(t)
		p.Close()
	}
}

// second returns a pool that doubles, closed as t ends: the second stage of
// Then stages.
func second(t *testing.T) *Pool[int, int] {
	q := New(2, double)
	t.Cleanup(func() { q.Close() })
	return q
}

// panicAt passes items to p and panics at the at-th submission, with items
// of p in flight.
type panicAt struct {
	p  *Pool[int, int]
	at int
	n  int
}

func (s *panicAt) Submit(ctx context.Context, in int, pol ...Policy) *Result[int] {
	if s.n++; s.n == s.at {
		panic(fmt.Sprintf("stage boom at %d", s.at))
	}
	return s.p.Submit(ctx, in, pol...)
}

// TestMapNeverExceedsItsWindow: with random job times and a slow consumer,
// the items pulled from the source and not yet consumed never exceed
// InFlight, as seen by the source, the handlers and the consumer, over a
// Pool, over another Stage, and fork–join from a handler of the pool.
func TestMapNeverExceedsItsWindow(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		const window, n = 5, 300
		var pulled, consumed, worst atomic.Int64
		observe := func() {
			if d := pulled.Load() - consumed.Load(); d > worst.Load() {
				worst.Store(d)
			}
		}
		work := func(x int) (int, error) {
			observe()
			time.Sleep(time.Duration(x*7919%13) * time.Millisecond)
			observe()
			return x, nil
		}
		stream := func(ctx context.Context, s Stage[int, int], opts []MapOption) {
			src := func(yield func(int) bool) {
				for i := range n {
					pulled.Add(1)
					observe()
					if !yield(i) {
						return
					}
				}
			}
			for _, err := range Map(ctx, s, src, opts...) {
				if err != nil {
					t.Error(err)
					return
				}
				observe()
				time.Sleep(time.Duration(consumed.Load()%3) * time.Millisecond) // a slow consumer
				consumed.Add(1)
			}
		}
		p := New(4, func(_ context.Context, x int) (int, error) { return work(x) })
		defer p.Close()
		var fj *Pool[int, int]
		var fjOpts []MapOption // the fork–join stream's, set before it starts
		fj = New(2, func(ctx context.Context, x int) (int, error) {
			if x < 0 {
				stream(ctx, fj, fjOpts)
				return 0, nil
			}
			return work(x)
		}, WithQueueSize(2))
		defer fj.Close()
		for _, st := range []struct {
			name string
			run  func(opts []MapOption)
		}{
			{"Pool", func(opts []MapOption) { stream(t.Context(), p, opts) }},
			{"Then", func(opts []MapOption) { stream(t.Context(), Then(p, Stage[int, int](second(t))), opts) }},
			{"fork–join", func(opts []MapOption) {
				fjOpts = opts
				if _, err := fj.Submit(t.Context(), -1).Await(t.Context()); err != nil {
					t.Error(err)
				}
			}},
		} {
			for _, mode := range mapModes {
				pulled.Store(0)
				consumed.Store(0)
				worst.Store(0)
				st.run(append([]MapOption{InFlight(window)}, mode.opts...))
				if consumed.Load() != n {
					t.Errorf("%s/%s: consumed %d, want %d", st.name, mode.name, consumed.Load(), n)
				}
				if w := worst.Load(); w > window {
					t.Errorf("%s/%s: %d items pulled and not consumed at once, want at most InFlight = %d", st.name, mode.name, w, window)
				}
			}
		}
	})
}

// TestMapOrderedKeepsOrderUnderRetriesAndTimeouts: items that fail and are
// retried, or time out and are retried, complete far out of input order;
// Ordered still yields them in input order.
func TestMapOrderedKeepsOrderUnderRetriesAndTimeouts(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		const n = 100
		want := make([]int, n)
		for i := range want {
			want[i] = i
		}
		stream := func(ctx context.Context, s Stage[int, int]) []int {
			var got []int
			for v, err := range Map(ctx, s, slices.Values(want), Ordered(), InFlight(16)) {
				if err != nil {
					t.Error(err)
					break
				}
				got = append(got, v)
			}
			return got
		}
		var p *Pool[int, int]
		var forked []int // the fork–join stream's outputs
		p = New(4, func(ctx context.Context, x int) (int, error) {
			if x < 0 {
				forked = stream(ctx, p)
				return 0, nil
			}
			if Attempt(ctx) == 1 {
				switch x % 3 {
				case 0:
					return 0, errors.New("transient")
				case 1:
					<-ctx.Done() // times out
					return 0, ctx.Err()
				}
			}
			return x, nil
		}, WithPolicy(Policy{MaxAttempts: 2, Timeout: time.Second, Backoff: Constant(10 * time.Millisecond)}))
		defer p.Close()
		for _, s := range []Stage[int, int]{p, Then(Stage[int, int](p), Stage[int, int](second(t)))} {
			got := stream(t.Context(), s)
			if _, ok := s.(*Pool[int, int]); !ok {
				for i := range got {
					got[i] /= 2 // Then's second stage doubles
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%T: outputs (-want +got):\n%s", s, diff)
			}
		}
		// Fork–join: the stream runs in a handler of p, which the policy
		// must not time out.
		if _, err := p.Submit(t.Context(), -1, Policy{MaxAttempts: 1, Timeout: time.Hour}).Await(t.Context()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, forked); diff != "" {
			t.Errorf("fork–join: outputs (-want +got):\n%s", diff)
		}
		if m := p.Metrics(); m.Retried == 0 {
			t.Error("no item was retried: the test does not reorder completions")
		}
	})
}

// TestMapYieldsWhatSucceededBeforeCtxEnds: when ctx ends, the items that had
// already succeeded and were held back for the order are yielded, in input
// order, before ctx's error; the item that failed because ctx ended is not.
func TestMapYieldsWhatSucceededBeforeCtxEnds(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		p := New(4, func(ctx context.Context, x int) (int, error) {
			if x == 0 {
				<-ctx.Done() // holds the others back until ctx ends
				return 0, ctx.Err()
			}
			return 2 * x, nil
		})
		defer p.Close()
		for k, s := range []Stage[int, int]{p, Then(Stage[int, int](p), Stage[int, int](second(t)))} {
			ctx, cancel := context.WithCancel(t.Context())
			go func() {
				time.Sleep(time.Second) // items 1 to 3 have long succeeded
				cancel()
			}()
			var got []pair
			for v, err := range Map(ctx, s, slices.Values([]int{0, 1, 2, 3}), Ordered()) {
				got = append(got, pairOf(v, err))
			}
			f := k + 1 // Then's second stage doubles
			want := []pair{{V: 2 * f, Index: -1}, {V: 4 * f, Index: -1}, {V: 6 * f, Index: -1}, {Index: -1, Err: context.Canceled.Error()}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%T: yielded (-want +got):\n%s", s, diff)
			}
		}
	})
}

// TestMapItemPolicyApplies: ItemPolicy's policy governs each item, over a
// Pool (where it adds attempts and a deadline to the pool's default) and
// over another Stage (to whose Submit it is passed).
func TestMapItemPolicyApplies(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		flaky := New(2, func(ctx context.Context, x int) (int, error) {
			if Attempt(ctx) < 3 {
				return 0, errors.New("transient")
			}
			return x, nil
		})
		defer flaky.Close()
		count := func(s Stage[int, int], opts ...MapOption) (ok, failed int) {
			for _, err := range Map(t.Context(), s, slices.Values([]int{1, 2, 3, 4}), opts...) {
				if err != nil {
					failed++
				} else {
					ok++
				}
			}
			return ok, failed
		}
		if ok, failed := count(flaky); ok != 0 || failed != 4 {
			t.Errorf("without ItemPolicy: %d ok, %d failed; want every item failed (1 attempt)", ok, failed)
		}
		if ok, failed := count(flaky, ItemPolicy(Policy{MaxAttempts: 3})); ok != 4 || failed != 0 {
			t.Errorf("with ItemPolicy(MaxAttempts: 3): %d ok, %d failed; want every item ok", ok, failed)
		}
		rec := &policyRecorder{p: flaky}
		if ok, _ := count(rec, ItemPolicy(Policy{MaxAttempts: 3})); ok != 4 || rec.attempts.Load() != 4*3 {
			t.Errorf("over a Stage: %d ok, policies with %d MaxAttempts in all; want 4 and 12", ok, rec.attempts.Load())
		}

		slow := New(1, func(_ context.Context, x int) (int, error) {
			time.Sleep(time.Hour) // ignores its ctx
			return x, nil
		})
		defer slow.Close()
		start := time.Now()
		for _, err := range Map(t.Context(), slow, slices.Values([]int{1}), ItemPolicy(Policy{Timeout: time.Second})) {
			if d := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || d != time.Second {
				t.Errorf("with ItemPolicy(Timeout: 1s): %v after %v; want DeadlineExceeded after 1s", err, d)
			}
		}
		time.Sleep(time.Hour) // the worker comes free
	})
	mustPanic(t, "ItemPolicy: p is invalid", func() { ItemPolicy(Policy{MaxAttempts: -1}) })
	mustPanic(t, "Timeout must be >= 0", func() { ItemPolicy(Policy{Timeout: -time.Second}) })
}

// policyRecorder passes items to p, adding up the MaxAttempts of the
// policies it is given.
type policyRecorder struct {
	p        *Pool[int, int]
	attempts atomic.Int64
}

func (s *policyRecorder) Submit(ctx context.Context, in int, pol ...Policy) *Result[int] {
	for _, q := range pol {
		s.attempts.Add(int64(q.MaxAttempts))
	}
	return s.p.Submit(ctx, in, pol...)
}

// TestMapSetupCostIsNotTheWindow: a Map over a few items costs the same
// whatever its window, as slots are made for the items in flight only.
func TestMapSetupCostIsNotTheWindow(t *testing.T) {
	p := New(2, double)
	defer p.Close()
	ctx := context.Background()
	items := []int{1, 2, 3, 4}
	allocs := func(window int) float64 {
		return testing.AllocsPerRun(50, func() {
			for _, err := range Map(ctx, p, slices.Values(items), InFlight(window)) {
				if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	small, large := allocs(4), allocs(1<<16)
	if large > small+1 {
		t.Errorf("a Map over 4 items allocates %v objects with InFlight(1<<16), %v with InFlight(4); want the same", large, small)
	}
	if small > 30 {
		t.Errorf("a Map over 4 items allocates %v objects, want at most 30", small)
	}
}

// mapStages are the ways a test can run one Map over a pool that doubles:
// straight over the pool (a Stream), over Then (Results), and fork–join,
// from a handler of the pool itself with the handler's ctx (Results the
// consumer helps run). run runs body with the stage and the ctx to pass to
// Map, in a handler for fork–join, where body's panic becomes the job's
// *PanicError; it returns what run's caller gets back.
var mapStages = []struct {
	name string
	run  func(t *testing.T, ctx context.Context, body func(ctx context.Context, s Stage[int, int])) error
}{
	{"Pool", func(t *testing.T, ctx context.Context, body func(context.Context, Stage[int, int])) error {
		p := New(2, double)
		defer p.Close()
		body(ctx, p)
		return nil
	}},
	{"Then", func(t *testing.T, ctx context.Context, body func(context.Context, Stage[int, int])) error {
		p := New(2, func(_ context.Context, x int) (int, error) { return x, nil })
		defer p.Close()
		body(ctx, Then(Stage[int, int](p), Stage[int, int](second(t))))
		return nil
	}},
	{"fork–join", func(t *testing.T, ctx context.Context, body func(context.Context, Stage[int, int])) error {
		var p *Pool[int, int]
		// One worker, held by the handler that runs body: its items run
		// only because Map runs them, in the consumer as they wait in the
		// queue (or in the feeder once the queue is full).
		p = New(1, func(hctx context.Context, x int) (int, error) {
			if x != -1 {
				return 2 * x, nil
			}
			body(hctx, p)
			return 0, nil
		}, WithQueueSize(8))
		defer p.Close()
		_, err := p.Submit(ctx, -1).Await(ctx)
		return err
	}},
}

// TestMapYieldsWhileTheSourceBlocks: a source yields 3 items, then blocks
// until the consumer has received their 3 results; the feeder has
// submitted them, so they come while the source waits. (Map used to pull
// in the consumer's goroutine, which then waited with the source.)
func TestMapYieldsWhileTheSourceBlocks(t *testing.T) {
	checkNoLeak(t)
	for _, st := range mapStages {
		for _, mode := range mapModes {
			t.Run(st.name+"/"+mode.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					release := make(chan struct{})
					src := func(yield func(int) bool) {
						for i := range 3 {
							// Each item comes once Map sleeps: fork–join,
							// its consumer must wake to run it.
							time.Sleep(time.Millisecond)
							if !yield(i) {
								return
							}
						}
						select {
						case <-release:
						case <-time.After(time.Hour):
							t.Error("an hour on, the consumer has not had the 3 results of the items pulled before the source blocked")
							return
						}
						yield(3)
					}
					var got []int
					err := st.run(t, t.Context(), func(ctx context.Context, s Stage[int, int]) {
						for v, err := range Map(ctx, s, src, mode.opts...) {
							if err != nil {
								t.Errorf("yielded %v", err)
								continue
							}
							if got = append(got, v); len(got) == 3 {
								close(release)
							}
						}
					})
					if err != nil {
						t.Fatal(err)
					}
					if mode.name == "unordered" {
						slices.Sort(got)
					}
					if diff := cmp.Diff([]int{0, 2, 4, 6}, got); diff != "" {
						t.Errorf("outputs (-want +got):\n%s", diff)
					}
				})
			})
		}
	}
}

// TestMapEndsWithCtxErrWhenTheSourceStopsAtCtxEnd: a source that returns
// when ctx ends, without yielding again, ends the stream with ctx's error,
// not as if it had run out: the consumer must be able to tell.
func TestMapEndsWithCtxErrWhenTheSourceStopsAtCtxEnd(t *testing.T) {
	checkNoLeak(t)
	for _, st := range mapStages {
		for _, mode := range mapModes {
			t.Run(st.name+"/"+mode.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					var got []pair
					err := st.run(t, t.Context(), func(ctx context.Context, s Stage[int, int]) {
						ctx, cancel := context.WithCancel(ctx) // a handler's, for fork–join
						defer cancel()
						src := func(yield func(int) bool) {
							for i := range 2 {
								if !yield(i) {
									return
								}
							}
							select {
							case <-ctx.Done():
							case <-time.After(time.Hour):
								t.Error("an hour on, the consumer has not cancelled ctx after its 2 results")
							}
						}
						for v, err := range Map(ctx, s, src, mode.opts...) {
							if got = append(got, pairOf(v, err)); len(got) == 2 {
								cancel()
								// The source returns meanwhile, so the
								// stream may end before Map sees ctx end.
								time.Sleep(time.Millisecond)
							}
						}
					})
					if err != nil {
						t.Fatal(err)
					}
					if len(got) == 3 && got[0].V > got[1].V {
						got[0], got[1] = got[1], got[0]
					}
					want := []pair{{V: 0, Index: -1}, {V: 2, Index: -1}, {Index: -1, Err: context.Canceled.Error()}}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("yielded (-want +got):\n%s", diff)
					}
				})
			})
		}
	}
}

// TestMapForkJoinCannotDeadlockABusyPool: more handlers than workers each
// stream items through their own pool, whose small queue is full most of
// the time, with a source that pauses, items that fail and are retried
// after a backoff, and windows of every size. Every worker is held by such
// a handler, so the items run only where Map runs them: in the feeder when
// the queue is full, in the consumer when they wait in the queue, where
// their backoff ends otherwise. Every handler must finish.
func TestMapForkJoinCannotDeadlockABusyPool(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		const drivers, items = 6, 12
		var p *Pool[int, int]
		p = New(2, func(ctx context.Context, x int) (int, error) {
			if x >= 0 {
				if x%4 == 0 && Attempt(ctx) == 1 {
					return 0, errors.New("transient")
				}
				time.Sleep(time.Duration(x%5) * time.Millisecond)
				return x, nil
			}
			d := -x - 1
			opts := []MapOption{InFlight([]int{1, 3, 8}[d%3])}
			if d%2 == 1 {
				opts = append(opts, Ordered())
			}
			src := func(yield func(int) bool) {
				for i := range items {
					if i%3 == d%3 {
						time.Sleep(time.Millisecond) // the source pauses
					}
					if !yield(i) {
						return
					}
				}
			}
			sum := 0
			for v, err := range Map(ctx, p, src, opts...) {
				if err != nil {
					return 0, err
				}
				sum += v
			}
			return sum, nil
		}, WithQueueSize(1), WithPolicy(Policy{MaxAttempts: 2, Backoff: Constant(3 * time.Millisecond)}))
		defer p.Close()
		var rs []*Result[int]
		for d := range drivers {
			rs = append(rs, p.Submit(t.Context(), -d-1))
		}
		want := items * (items - 1) / 2
		for d, r := range rs {
			select {
			case <-r.Done():
			case <-time.After(time.Hour):
				t.Fatalf("handler %d has not finished an hour on: fork–join through Map deadlocked (metrics %+v)", d, p.Metrics())
			}
			if got, err := r.Await(t.Context()); err != nil || got != want {
				t.Errorf("handler %d: %d, %v; want %d, nil", d, got, err, want)
			}
		}
	})
}

// itemErr is the error of item x in TestMapReusesSlotsOutOfOrder.
type itemErr int

func (e itemErr) Error() string { return fmt.Sprintf("item %d failed", int(e)) }

// TestMapReusesSlotsOutOfOrder: items complete in an order other than
// their input order, so that small windows' slots are freed, and taken
// again, out of order many times over; each item is still yielded exactly
// once, with its own outcome, and a failed one with its own input index.
func TestMapReusesSlotsOutOfOrder(t *testing.T) {
	// Windows past the inline chunk of 4 slots, so that slots and the
	// ring's cells are made in chunks too.
	for _, tc := range []struct {
		mode   string
		opts   []MapOption
		window int
	}{
		{"unordered", nil, 4}, {"unordered", nil, 5}, {"unordered", nil, 13},
		{"ordered", []MapOption{Ordered()}, 4}, {"ordered", []MapOption{Ordered()}, 13},
	} {
		t.Run(fmt.Sprintf("%s/InFlight(%d)", tc.mode, tc.window), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := New(4, func(_ context.Context, x int) (int, error) {
					time.Sleep(time.Duration((x*7)%5) * time.Millisecond)
					if x%3 == 0 {
						return 0, itemErr(x)
					}
					return 10 * x, nil
				})
				defer p.Close()
				const n = 300
				opts := append([]MapOption{InFlight(tc.window)}, tc.opts...)
				seen := make([]int, n)
				prev := -1
				// The source pauses now and then, so that the window drains
				// and many releases come before the feeder takes slots again.
				src := func(yield func(int) bool) {
					for i := range n {
						if i%20 == 19 {
							time.Sleep(20 * time.Millisecond)
						}
						if !yield(i) {
							return
						}
					}
				}
				for v, err := range Map(context.Background(), p, src, opts...) {
					x := v / 10
					if err != nil {
						var ie *ItemError
						var xe itemErr
						if !errors.As(err, &ie) || !errors.As(err, &xe) || ie.Index != int(xe) {
							t.Fatalf("error %v: want an *ItemError whose Index is the failed item's", err)
						}
						x = ie.Index
					} else if x%3 == 0 || v%10 != 0 {
						t.Fatalf("yielded %d, nil: no item has that outcome", v)
					}
					if x < 0 || x >= n {
						t.Fatalf("yielded item %d of %d", x, n)
					}
					if tc.opts != nil && x != prev+1 {
						t.Fatalf("ordered: item %d after item %d", x, prev)
					}
					prev = x
					seen[x]++
				}
				for x, k := range seen {
					if k != 1 {
						t.Errorf("item %d yielded %d times, want once", x, k)
					}
				}
			})
		})
	}
}
