package jobq

import (
	"context"
	"errors"
	"fmt"
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
// ctx ends, the source panics, the stage's Submit panics), the source has
// returned and no goroutine of Map's is left once the loop is over.
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
	for _, tc := range []end{
		{name: "break", s: pool, src: endless, breakAt: 3},
		{name: "break over Then", s: then, src: endless, breakAt: 3},
		{name: "ctx end", s: pool, src: endless, cancelAt: 2},
		{name: "ctx end over Then", s: then, src: endless, cancelAt: 2},
		{name: "source panic", s: pool, src: panicking, wantPanic: "source boom"},
		{name: "stage panic", s: func(_ *testing.T, p *Pool[int, int]) Stage[int, int] { return &panicAt{p: p, at: 4} }, src: endless, wantPanic: "stage boom at 4"},
	} {
		for _, mode := range mapModes {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				p := New(2, double)
				defer p.Close()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var pulled atomic.Int64
				var returned atomic.Bool
				var recovered any
				results := 0
				func() {
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
				}()
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
// Pool and over another Stage.
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
		p := New(4, func(_ context.Context, x int) (int, error) {
			observe()
			time.Sleep(time.Duration(x*7919%13) * time.Millisecond)
			observe()
			return x, nil
		})
		defer p.Close()
		for _, st := range []struct {
			name string
			s    Stage[int, int]
		}{{"Pool", p}, {"Then", Then(p, Stage[int, int](second(t)))}} {
			for _, mode := range mapModes {
				pulled.Store(0)
				consumed.Store(0)
				worst.Store(0)
				src := func(yield func(int) bool) {
					for i := range n {
						pulled.Add(1)
						observe()
						if !yield(i) {
							return
						}
					}
				}
				opts := append([]MapOption{InFlight(window)}, mode.opts...)
				for _, err := range Map(t.Context(), st.s, src, opts...) {
					if err != nil {
						t.Fatal(err)
					}
					observe()
					time.Sleep(time.Duration(consumed.Load()%3) * time.Millisecond) // a slow consumer
					consumed.Add(1)
				}
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
		p := New(4, func(ctx context.Context, x int) (int, error) {
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
		const n = 100
		want := make([]int, n)
		for i := range want {
			want[i] = i
		}
		for _, s := range []Stage[int, int]{p, Then(Stage[int, int](p), Stage[int, int](second(t)))} {
			var got []int
			for v, err := range Map(t.Context(), s, slices.Values(want), Ordered(), InFlight(16)) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, v)
			}
			if _, ok := s.(*Pool[int, int]); !ok {
				for i := range got {
					got[i] /= 2 // Then's second stage doubles
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%T: outputs (-want +got):\n%s", s, diff)
			}
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
