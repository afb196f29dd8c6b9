package jobq

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Map over a Then chain whose stages are all Pools streams each item from
// pool to pool by value: these tests pin down that it behaves as Map over
// a Pool does (results, errors, panics, break, ctx end, the window,
// ItemPolicy, Shutdown), that it costs nothing per item, and that the
// chains it must not stream (fork–join, a stage that is no Pool) still
// work through Submit.

// chain3 returns the three pools of a chain whose item x comes out as
// f3(f2(f1(x))) = 3(x+1)-2 = 3x+1, each handler sleeping a little, by x,
// so that items overtake one another; calls counts each pool's handler
// calls. The pools close as t ends.
func chain3(t *testing.T, calls *[3]atomic.Int64) (p1, p2, p3 *Pool[int, int]) {
	stage := func(k int, f func(int) int) *Pool[int, int] {
		p := New(2, func(_ context.Context, x int) (int, error) {
			calls[k].Add(1)
			time.Sleep(time.Duration((x*7+k)%3) * time.Millisecond)
			return f(x), nil
		})
		t.Cleanup(func() { p.Close() })
		return p
	}
	return stage(0, func(x int) int { return x + 1 }),
		stage(1, func(x int) int { return 3 * x }),
		stage(2, func(x int) int { return x - 2 })
}

// TestMapThenRunsEveryStageOfTheChain: through a chain of three pools,
// nested either way, every item comes out as f3(f2(f1(x))), once, and in
// input order with Ordered; each pool's handler runs once per item.
func TestMapThenRunsEveryStageOfTheChain(t *testing.T) {
	checkNoLeak(t)
	const n = 200
	want := make([]int, n)
	for x := range want {
		want[x] = 3*x + 1
	}
	for _, nesting := range []string{"Then(Then(p1, p2), p3)", "Then(p1, Then(p2, p3))"} {
		for _, mode := range mapModes {
			t.Run(nesting+"/"+mode.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					var calls [3]atomic.Int64
					p1, p2, p3 := chain3(t, &calls)
					s := Then(Then[int, int, int](p1, p2), Stage[int, int](p3))
					if nesting == "Then(p1, Then(p2, p3))" {
						s = Then(Stage[int, int](p1), Then[int, int, int](p2, p3))
					}
					var got []int
					for v, err := range Map(t.Context(), s, counted(n, new(atomic.Int64), new(atomic.Bool)), append([]MapOption{InFlight(16)}, mode.opts...)...) {
						if err != nil {
							t.Fatalf("yielded %v", err)
						}
						got = append(got, v)
					}
					if mode.name == "unordered" {
						slices.Sort(got)
					}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("outputs (-want +got):\n%s", diff)
					}
					for k := range calls {
						if c := calls[k].Load(); c != n {
							t.Errorf("pool %d's handler ran %d times, want %d", k+1, c, n)
						}
					}
				})
				checkStageGoroutinesExited(t)
			})
		}
	}
}

// TestMapThenHandlersSeeTheMapsCtx: every stage's handler gets a ctx that
// carries the values of Map's ctx, and names its own pool as the handler
// ctx's owner (so that fork–join from it is detected), as with Then's
// Submit.
func TestMapThenHandlersSeeTheMapsCtx(t *testing.T) {
	checkNoLeak(t)
	type key struct{}
	var pools [2]*Pool[int, int]
	for k := range pools {
		pools[k] = New(2, func(ctx context.Context, x int) (int, error) {
			if v, _ := ctx.Value(key{}).(string); v != "v" {
				return 0, fmt.Errorf("stage %d: ctx value %q, want \"v\"", k+1, v)
			}
			if !isOwnHandler(ctx, pools[k]) {
				return 0, fmt.Errorf("stage %d: the handler's ctx is not its pool's", k+1)
			}
			return x + 1, nil
		})
		defer pools[k].Close()
	}
	ctx := context.WithValue(context.Background(), key{}, "v")
	var got []int
	for v, err := range Map(ctx, Then[int, int, int](pools[0], pools[1]), slices.Values([]int{1, 2, 3}), Ordered()) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if diff := cmp.Diff([]int{3, 4, 5}, got); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
}

// TestMapThenAllocatesNothingPerItem: a Map over a chain of pools makes no
// Result per item, so a Map of 1000 items allocates what one of 100 does
// (the feeder, the streams, the window's slots); through Results it would
// be two or more allocations per item more.
func TestMapThenAllocatesNothingPerItem(t *testing.T) {
	checkNoLeak(t)
	// Queues far larger than the window: a submitter that waits for room
	// allocates its place in line, and that is not what is measured.
	newPool := func(f func(int) int) *Pool[int, int] {
		p := New(2, func(_ context.Context, x int) (int, error) { return f(x), nil }, WithQueueSize(4*DefaultInFlight))
		t.Cleanup(func() { p.Close() })
		return p
	}
	p1 := newPool(func(x int) int { return x + 1 })
	p2 := newPool(func(x int) int { return 2 * x })
	p3 := newPool(func(x int) int { return x - 1 })
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		s    Stage[int, int]
	}{
		{"Then(p1, p2)", Then[int, int, int](p1, p2)},
		{"Then(Then(p1, p2), p3)", Then(Then[int, int, int](p1, p2), Stage[int, int](p3))},
		{"Then(p1, Then(p2, p3))", Then(Stage[int, int](p1), Then[int, int, int](p2, p3))},
	} {
		for _, mode := range mapModes {
			allocs := func(n int) float64 {
				items := make([]int, n)
				return testing.AllocsPerRun(10, func() {
					k := 0
					for _, err := range Map(ctx, tc.s, slices.Values(items), mode.opts...) {
						if err != nil {
							t.Fatal(err)
						}
						k++
					}
					if k != n {
						t.Fatalf("yielded %d items, want %d", k, n)
					}
				})
			}
			allocs(DefaultInFlight) // the pools' workers and the streams' map are made
			few, many := allocs(100), allocs(1000)
			if many-few > 2 {
				t.Errorf("%s/%s: a Map of 1000 items allocates %v objects, one of 100 %v: %.3f allocs per item, want 0",
					tc.name, mode.name, many, few, (many-few)/900)
			}
		}
	}
}

// TestMapThenItemErrorsComeFromEitherStage: an item that fails in the
// first stage, or in the second, is yielded as (0, *ItemError) with its
// input index, wrapping its handler's error; one that failed in the first
// stage never reaches the second; the stream goes on.
func TestMapThenItemErrorsComeFromEitherStage(t *testing.T) {
	checkNoLeak(t)
	errFirst, errSecond := errors.New("first stage failed"), errors.New("second stage failed")
	for _, mode := range mapModes {
		t.Run(mode.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 30
				var secondCalls [n]atomic.Int64
				p1 := New(2, func(_ context.Context, x int) (int, error) {
					time.Sleep(time.Duration(x%4) * time.Millisecond)
					if x%5 == 1 {
						return 0, fmt.Errorf("x=%d: %w", x, errFirst)
					}
					return x, nil
				})
				defer p1.Close()
				p2 := New(2, func(_ context.Context, x int) (int, error) {
					secondCalls[x].Add(1)
					time.Sleep(time.Duration(x%3) * time.Millisecond)
					if x%5 == 2 {
						return 0, fmt.Errorf("x=%d: %w", x, errSecond)
					}
					return 10*x + 10, nil
				})
				defer p2.Close()
				got := make(map[int]pair)
				var order []int
				for v, err := range Map(t.Context(), Then[int, int, int](p1, p2), counted(n, new(atomic.Int64), new(atomic.Bool)), append([]MapOption{InFlight(8)}, mode.opts...)...) {
					x := v/10 - 1
					if err != nil {
						var ie *ItemError
						if !errors.As(err, &ie) {
							t.Fatalf("yielded %d, %v: want an *ItemError", v, err)
						}
						x = ie.Index
						want := map[int]error{1: errFirst, 2: errSecond}[x%5]
						if want == nil || !errors.Is(err, want) || v != 0 {
							t.Errorf("item %d: yielded %d, %v; want 0 and an error wrapping %v", x, v, err, want)
						}
					}
					if x < 0 || x >= n {
						t.Fatalf("yielded %d, %v: no item has that outcome", v, err)
					}
					if _, dup := got[x]; dup {
						t.Errorf("item %d yielded twice", x)
					}
					got[x] = pairOf(v, err)
					order = append(order, x)
				}
				for x := range n {
					want := pair{V: 10*x + 10, Index: -1}
					switch x % 5 {
					case 1:
						want = pair{Index: x, Err: fmt.Sprintf("jobq: item %d: x=%d: %v", x, x, errFirst)}
					case 2:
						want = pair{Index: x, Err: fmt.Sprintf("jobq: item %d: x=%d: %v", x, x, errSecond)}
					}
					if diff := cmp.Diff(want, got[x]); diff != "" {
						t.Errorf("item %d (-want +got):\n%s", x, diff)
					}
					wantCalls := int64(1)
					if x%5 == 1 {
						wantCalls = 0 // failed in the first stage
					}
					if c := secondCalls[x].Load(); c != wantCalls {
						t.Errorf("item %d ran %d times in the second stage, want %d", x, c, wantCalls)
					}
				}
				if mode.name == "ordered" && !slices.IsSorted(order) {
					t.Errorf("ordered: items yielded in the order %v", order)
				}
			})
		})
	}
}

// TestMapThenPanicInAStageIsTheItemsError: a handler that panics, or calls
// runtime.Goexit, in any stage of a chain ends that item with a
// *PanicError, which the later stages never see; the other items go on,
// and the pools with them.
func TestMapThenPanicInAStageIsTheItemsError(t *testing.T) {
	checkNoLeak(t)
	for _, tc := range []struct {
		name   string
		stage  int // the pool, from 0, whose handler fails for odd items
		goexit bool
	}{
		{"panic in the first stage", 0, false},
		{"panic in the second stage", 1, false},
		{"panic in the third stage", 2, false},
		{"Goexit in the second stage", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var later atomic.Int64 // odd items' calls in the stages after tc.stage
				var pools [3]*Pool[int, int]
				for k := range pools {
					pools[k] = New(2, func(_ context.Context, x int) (int, error) {
						if x%2 == 1 {
							switch {
							case k > tc.stage:
								later.Add(1)
							case k == tc.stage && tc.goexit:
								runtime.Goexit()
							case k == tc.stage:
								panic(fmt.Sprintf("boom %d", x))
							}
						}
						return x, nil
					})
					defer pools[k].Close()
				}
				s := Then(Then[int, int, int](pools[0], pools[1]), Stage[int, int](pools[2]))
				const n = 12
				var got []int
				for v, err := range Map(t.Context(), s, counted(n, new(atomic.Int64), new(atomic.Bool)), Ordered(), InFlight(4)) {
					var ie *ItemError
					var pe *PanicError
					switch {
					case err == nil:
						got = append(got, v)
					case !errors.As(err, &ie) || !errors.As(err, &pe) || ie.Index%2 != 1:
						t.Errorf("yielded %d, %v: want an *ItemError for an odd item wrapping a *PanicError", v, err)
					case tc.goexit && !errors.Is(err, errGoexit):
						t.Errorf("item %d: %v, want the Goexit's *PanicError", ie.Index, err)
					case !tc.goexit && pe.Value != fmt.Sprintf("boom %d", ie.Index):
						t.Errorf("item %d: panic value %v, want %q", ie.Index, pe.Value, fmt.Sprintf("boom %d", ie.Index))
					default:
						got = append(got, -ie.Index)
					}
				}
				want := []int{0, -1, 2, -3, 4, -5, 6, -7, 8, -9, 10, -11}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("outcomes, -index for a failed item (-want +got):\n%s", diff)
				}
				if later.Load() != 0 {
					t.Errorf("failed items ran %d times in later stages, want never", later.Load())
				}
				// The pools live on.
				for k, p := range pools {
					if v, err := await(t, p.Submit(t.Context(), 4)); v != 4 || err != nil {
						t.Errorf("after the stream, pool %d: %d, %v; want 4, nil", k+1, v, err)
					}
				}
			})
		})
	}
}

// TestMapThenBreakCancelsItemsInTheChain: when the consumer breaks while
// items run in one stage of the chain, the second or the first, and
// others wait in its queue, Map returns, the running handlers see their
// ctx cancelled, the queued items never run, none goes on to a later
// stage, no goroutine is left, and both pools serve another Map as before.
func TestMapThenBreakCancelsItemsInTheChain(t *testing.T) {
	checkNoLeak(t)
	for _, held := range []int{1, 0} {
		for _, mode := range mapModes {
			t.Run(fmt.Sprintf("running in p%d/%s", held+1, mode.name), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					const window = 6
					var calls [2]atomic.Int64
					observed := make(chan error, window)
					var pools [2]*Pool[int, int]
					for k := range pools {
						// Pool held has 2 workers, whose handlers block on
						// items but 0 (and those of the second stream); the
						// other pool passes items on, with one worker if it
						// is first, so that it hands items on in input
						// order and item 0 is not queued behind items that
						// block.
						workers := 2
						if k != held {
							workers = 1
						}
						pools[k] = New(workers, func(ctx context.Context, x int) (int, error) {
							calls[k].Add(1)
							if k != held || x == 0 || x >= 100 {
								return x, nil
							}
							<-ctx.Done()
							observed <- ctx.Err()
							return 0, ctx.Err()
						})
					}
					defer func() {
						// Shutdown gives up at once: a handler that the
						// break failed to reach cannot hang the test.
						gaveUp, cancel := context.WithCancel(t.Context())
						cancel()
						for _, p := range pools {
							_ = p.Shutdown(gaveUp)
						}
					}()
					hp := pools[held]
					s := Then[int, int, int](pools[0], pools[1])
					var pulled atomic.Int64
					var returned atomic.Bool
					var got []pair
					for v, err := range Map(t.Context(), s, counted(-1, &pulled, &returned), append([]MapOption{InFlight(window)}, mode.opts...)...) {
						got = append(got, pairOf(v, err))
						synctest.Wait() // the window is full, its items in the held pool
						if m := hp.Metrics(); m.Running != 2 || m.Queued != window-3 {
							t.Errorf("before the break, p%d runs %d items and queues %d; want 2 and %d", held+1, m.Running, m.Queued, window-3)
						}
						break
					}
					checkStageGoroutinesExited(t)
					if diff := cmp.Diff([]pair{{V: 0, Index: -1}}, got); diff != "" {
						t.Errorf("yielded (-want +got):\n%s", diff)
					}
					if !returned.Load() || pulled.Load() != window {
						t.Errorf("source returned %v after %d pulls; want it to return after InFlight = %d", returned.Load(), pulled.Load(), window)
					}
					for range 2 {
						select {
						case err := <-observed:
							if !errors.Is(err, context.Canceled) {
								t.Errorf("a running handler's ctx ended with %v, want context.Canceled", err)
							}
						case <-time.After(time.Hour):
							t.Fatalf("an hour after the break, a handler of p%d still runs with its ctx live (metrics %+v)", held+1, hp.Metrics())
						}
					}
					synctest.Wait()
					if c := calls[held].Load(); c != 3 {
						t.Errorf("p%d ran %d items, want 3 (item 0 and the 2 running at the break; the queued ones never)", held+1, c)
					}
					if m := hp.Metrics(); m.Running != 0 || m.Queued != 0 || m.Succeeded != 1 || m.Canceled != window-1 {
						t.Errorf("p%d metrics after the break %+v; want 1 succeeded, %d cancelled, none left", held+1, m, window-1)
					}
					wantOther := map[int]int64{0: 1, 1: window}[held] // p2 gets item 0 only; p1 passed all on
					if c := calls[1-held].Load(); c != wantOther {
						t.Errorf("p%d ran %d items, want %d", 2-held, c, wantOther)
					}

					// The pools serve a new stream as before.
					var again []int
					for v, err := range Map(t.Context(), s, slices.Values([]int{100, 101, 102, 103, 104, 105, 106, 107}), mode.opts...) {
						if err != nil {
							t.Fatalf("after the break: %v", err)
						}
						again = append(again, v)
					}
					slices.Sort(again)
					if diff := cmp.Diff([]int{100, 101, 102, 103, 104, 105, 106, 107}, again); diff != "" {
						t.Errorf("after the break, outputs (-want +got):\n%s", diff)
					}
				})
				checkStageGoroutinesExited(t)
			})
		}
	}
}

// TestMapThenCtxEndMidStream: when ctx ends while items run or wait in the
// chain's second stage, Map yields what had succeeded, then ctx.Err() as
// its last pair, and returns with no goroutine of its own left; the
// second stage's running handlers see their ctx end, its queued items
// never run.
func TestMapThenCtxEndMidStream(t *testing.T) {
	checkNoLeak(t)
	for _, mode := range mapModes {
		t.Run(mode.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var blocked atomic.Int64 // second-stage calls that waited for ctx
				// One worker in p1 hands items to p2 in input order, so
				// that items 0 to 2 are not queued behind items that block.
				p1 := New(1, func(_ context.Context, x int) (int, error) { return x, nil })
				defer p1.Close()
				p2 := New(2, func(ctx context.Context, x int) (int, error) {
					if x < 3 {
						return 10 * x, nil
					}
					blocked.Add(1)
					<-ctx.Done()
					return 0, ctx.Err()
				})
				defer p2.Close()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				var pulled atomic.Int64
				var returned atomic.Bool
				var got []pair
				for v, err := range Map(ctx, Then[int, int, int](p1, p2), counted(-1, &pulled, &returned), append([]MapOption{InFlight(6)}, mode.opts...)...) {
					if got = append(got, pairOf(v, err)); len(got) == 3 {
						synctest.Wait() // items 3 to 8 run or wait in p2
						cancel()
					}
				}
				checkStageGoroutinesExited(t)
				if len(got) == 4 && mode.name == "unordered" {
					slices.SortFunc(got[:3], func(a, b pair) int { return a.V - b.V })
				}
				want := []pair{{V: 0, Index: -1}, {V: 10, Index: -1}, {V: 20, Index: -1}, {Index: -1, Err: context.Canceled.Error()}}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("yielded (-want +got):\n%s", diff)
				}
				if !returned.Load() || pulled.Load() > 9 {
					t.Errorf("source returned %v after %d pulls; want it to return after at most 9", returned.Load(), pulled.Load())
				}
				synctest.Wait()
				if m := p2.Metrics(); blocked.Load() != 2 || m.Running != 0 || m.Queued != 0 || m.Submitted != m.Succeeded+m.Canceled+m.Failed {
					t.Errorf("%d second-stage handlers waited for ctx, p2 metrics %+v; want 2 (its workers) and every item ended", blocked.Load(), m)
				}
			})
		})
	}
	t.Run("deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p1 := New(2, func(_ context.Context, x int) (int, error) { return x, nil })
			defer p1.Close()
			p2 := New(2, func(ctx context.Context, x int) (int, error) {
				<-ctx.Done()
				return 0, ctx.Err()
			})
			defer p2.Close()
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start := time.Now()
			var got []pair
			for v, err := range Map(ctx, Then[int, int, int](p1, p2), slices.Values(make([]int, 100)), InFlight(8)) {
				got = append(got, pairOf(v, err))
			}
			if diff := cmp.Diff([]pair{{Index: -1, Err: context.DeadlineExceeded.Error()}}, got); diff != "" {
				t.Errorf("yielded (-want +got):\n%s", diff)
			}
			if d := time.Since(start); d != time.Second {
				t.Errorf("the stream ended after %v, want 1s", d)
			}
		})
	})
}

// TestMapThenWindowSpansTheChain: the items pulled from the source and
// not yet yielded never exceed InFlight, counting those in the second
// stage. With the second stage held, the feeder pulls exactly InFlight
// items and stops, all of them in the second pool; released, the stream
// goes on with random job times in both stages and a slow consumer, and
// the bound holds throughout: on the items pulled and not yielded, as
// the source, both stages' handlers and the consumer see them, and on the
// items between the start of their first stage and the end of their
// second.
func TestMapThenWindowSpansTheChain(t *testing.T) {
	checkNoLeak(t)
	for _, mode := range mapModes {
		t.Run(mode.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const window, n = 5, 120
				var pulled, yielded, worst atomic.Int64
				var inChain, worstInChain atomic.Int64 // from p1's handler's start to p2's handler's end
				observe := func() {
					if d := pulled.Load() - yielded.Load(); d > worst.Load() {
						worst.Store(d)
					}
					if d := inChain.Load(); d > worstInChain.Load() {
						worstInChain.Store(d)
					}
				}
				gate := make(chan struct{})
				var open atomic.Bool // gate is closed: the consumer may be slow
				p1 := New(3, func(_ context.Context, x int) (int, error) {
					inChain.Add(1)
					observe()
					if x >= window { // the first window's items go straight to p2
						time.Sleep(time.Duration(x*31%4) * time.Millisecond)
					}
					observe()
					return x, nil
				})
				defer p1.Close()
				p2 := New(2, func(_ context.Context, x int) (int, error) {
					observe()
					<-gate
					time.Sleep(time.Duration(x*7919%5) * time.Millisecond)
					observe()
					inChain.Add(-1)
					return x, nil
				})
				defer p2.Close()
				src := func(yield func(int) bool) {
					for i := range n {
						pulled.Add(1)
						observe()
						if !yield(i) {
							return
						}
					}
				}
				held := make(chan struct{})
				go func() {
					defer close(held)
					synctest.Wait() // the second stage holds what it got
					if got := pulled.Load(); got != window {
						t.Errorf("with the second stage held, the source gave %d items; want exactly InFlight = %d", got, window)
					}
					m1, m2 := p1.Metrics(), p2.Metrics()
					if in1, in2 := m1.Running+m1.Queued, m2.Running+m2.Queued; in1 != 0 || in2 != window {
						t.Errorf("with the second stage held, %d items in p1 and %d in p2; want 0 and %d", in1, in2, window)
					}
					if y := yielded.Load(); y != 0 {
						t.Errorf("with the second stage held, %d items yielded; want none", y)
					}
					open.Store(true)
					close(gate)
				}()
				k := 0
				for v, err := range Map(t.Context(), Then[int, int, int](p1, p2), src, append([]MapOption{InFlight(window)}, mode.opts...)...) {
					if err != nil {
						t.Fatal(err)
					}
					if mode.name == "ordered" && v != k {
						t.Errorf("ordered: yielded item %d at position %d", v, k)
					}
					k++
					observe()
					if open.Load() {
						time.Sleep(time.Duration(k%3) * time.Millisecond) // a slow consumer at times
					}
					yielded.Add(1)
				}
				<-held
				if k != n {
					t.Errorf("yielded %d items, want %d", k, n)
				}
				if w := worst.Load(); w > window {
					t.Errorf("%d items pulled and not yielded at once, want at most InFlight = %d", w, window)
				}
				if w := worstInChain.Load(); w > window {
					t.Errorf("%d items in the chain's stages at once, want at most InFlight = %d", w, window)
				}
			})
		})
	}
}

// TestMapThenItemPolicyAppliesAtEachStage: ItemPolicy's policy governs the
// item at every pool of the chain, each filling its zero fields from its
// own pool's default policy; without it each pool's default applies.
func TestMapThenItemPolicyAppliesAtEachStage(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		var calls1, calls2 atomic.Int64
		flaky := func(calls *atomic.Int64, fails int, f func(int) int) Handler[int, int] {
			return func(ctx context.Context, x int) (int, error) {
				calls.Add(1)
				if Attempt(ctx) <= fails {
					return 0, errors.New("transient")
				}
				return f(x), nil
			}
		}
		// p1 fails each item once, p2 twice, then they succeed.
		p1 := New(2, flaky(&calls1, 1, func(x int) int { return x + 1 }))
		defer p1.Close()
		p2 := New(2, flaky(&calls2, 2, func(x int) int { return 2 * x }))
		defer p2.Close()
		// The same, with defaults that retry enough.
		var calls1d, calls2d atomic.Int64
		q1 := New(2, flaky(&calls1d, 1, func(x int) int { return x + 1 }), WithPolicy(Policy{MaxAttempts: 2}))
		defer q1.Close()
		q2 := New(2, flaky(&calls2d, 2, func(x int) int { return 2 * x }), WithPolicy(Policy{MaxAttempts: 3}))
		defer q2.Close()
		items := []int{1, 2, 3, 4}
		for _, tc := range []struct {
			name         string
			s            Stage[int, int]
			c1, c2       *atomic.Int64
			opts         []MapOption
			ok           bool
			want1, want2 int64 // handler calls per item
		}{
			{"pool defaults of 1 attempt", Then[int, int, int](p1, p2), &calls1, &calls2, nil, false, 1, 0},
			{"ItemPolicy(MaxAttempts: 2)", Then[int, int, int](p1, p2), &calls1, &calls2, []MapOption{ItemPolicy(Policy{MaxAttempts: 2})}, false, 2, 2},
			{"ItemPolicy(MaxAttempts: 3)", Then[int, int, int](p1, p2), &calls1, &calls2, []MapOption{ItemPolicy(Policy{MaxAttempts: 3})}, true, 2, 3},
			{"pool defaults that retry", Then[int, int, int](q1, q2), &calls1d, &calls2d, nil, true, 2, 3},
			{"ItemPolicy's zero MaxAttempts from each pool", Then[int, int, int](q1, q2), &calls1d, &calls2d, []MapOption{ItemPolicy(Policy{Backoff: Constant(time.Second)})}, true, 2, 3},
			{"ItemPolicy(MaxAttempts: 1) over retrying defaults", Then[int, int, int](q1, q2), &calls1d, &calls2d, []MapOption{ItemPolicy(Policy{MaxAttempts: 1})}, false, 1, 0},
		} {
			tc.c1.Store(0)
			tc.c2.Store(0)
			var got []int
			failed := 0
			for v, err := range Map(t.Context(), tc.s, slices.Values(items), append([]MapOption{Ordered()}, tc.opts...)...) {
				if err != nil {
					failed++
					continue
				}
				got = append(got, v)
			}
			if tc.ok {
				if diff := cmp.Diff([]int{4, 6, 8, 10}, got); diff != "" || failed != 0 {
					t.Errorf("%s: %d failed, outputs (-want +got):\n%s", tc.name, failed, diff)
				}
			} else if len(got) != 0 || failed != len(items) {
				t.Errorf("%s: %d ok, %d failed; want every item failed", tc.name, len(got), failed)
			}
			if c1, c2 := tc.c1.Load(), tc.c2.Load(); c1 != tc.want1*int64(len(items)) || c2 != tc.want2*int64(len(items)) {
				t.Errorf("%s: the stages' handlers ran %d and %d times; want %d and %d",
					tc.name, c1, c2, tc.want1*int64(len(items)), tc.want2*int64(len(items)))
			}
		}

		// A Timeout ends each attempt of a second-stage item at its
		// deadline though its handler ignores ctx: with records, at both
		// stages, as the policy has a deadline.
		slow := New(3, func(_ context.Context, x int) (int, error) {
			if x == 0 {
				time.Sleep(time.Hour) // ignores its ctx
			}
			return x, nil
		})
		defer slow.Close()
		calls1.Store(0)
		start := time.Now()
		var got []pair
		for v, err := range Map(t.Context(), Then[int, int, int](p1, slow), slices.Values([]int{-1, 1}), Ordered(),
			ItemPolicy(Policy{MaxAttempts: 2, Timeout: time.Second, Backoff: Constant(0)})) {
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("item error %v, want one wrapping context.DeadlineExceeded", err)
			}
			got = append(got, pair{V: v, Index: pairOf(v, err).Index})
		}
		if diff := cmp.Diff([]pair{{Index: 0}, {V: 2, Index: -1}}, got); diff != "" {
			t.Errorf("with ItemPolicy(MaxAttempts: 2, Timeout: 1s), yielded (-want +got):\n%s", diff)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("with ItemPolicy(MaxAttempts: 2, Timeout: 1s), the stream took %v; want 2s (two timed-out attempts of item 0)", d)
		}
		if c := calls1.Load(); c != 4 {
			t.Errorf("the first stage ran %d attempts, want 4 (each item retried once)", c)
		}
		time.Sleep(2 * time.Hour) // the workers come free
	})
}

// TestMapThenShutdownOfTheSecondPool: once the chain's second pool shuts
// down while the Map runs, the items it had taken still end (run, with a
// graceful Shutdown; with ErrClosed, when Shutdown gives up), those that
// reach it later end with ErrClosed, nothing hangs, and every item is
// yielded exactly once.
func TestMapThenShutdownOfTheSecondPool(t *testing.T) {
	checkNoLeak(t)
	for _, giveUp := range []bool{false, true} {
		for _, mode := range mapModes {
			name := "graceful/" + mode.name
			if giveUp {
				name = "giving up/" + mode.name
			}
			t.Run(name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					const window, n = 4, 20
					started := make(chan struct{})
					gate := make(chan struct{})
					// One worker in p1 hands items to p2 in input order.
					p1 := New(1, func(_ context.Context, x int) (int, error) { return x, nil })
					defer p1.Close()
					p2 := New(1, func(ctx context.Context, x int) (int, error) {
						if x == 0 {
							close(started)
							select {
							case <-gate:
							case <-ctx.Done():
								return 0, ctx.Err()
							}
						}
						return 10 * x, nil
					})
					shut := make(chan error, 1)
					go func() {
						<-started
						synctest.Wait() // items 1 to 3 wait in p2's queue
						ctx := t.Context()
						if giveUp {
							c, cancel := context.WithCancel(ctx)
							cancel()
							ctx = c
						}
						go func() { shut <- p2.Shutdown(ctx) }()
						synctest.Wait() // p2 has stopped taking items
						close(gate)
					}()
					outcomes := make(map[int]error)
					var order []int
					for v, err := range Map(t.Context(), Then[int, int, int](p1, p2), counted(n, new(atomic.Int64), new(atomic.Bool)), append([]MapOption{InFlight(window)}, mode.opts...)...) {
						x := v / 10
						if err != nil {
							var ie *ItemError
							if !errors.As(err, &ie) || !errors.Is(err, ErrClosed) || v != 0 {
								t.Errorf("yielded %d, %v; want 0 and an *ItemError wrapping ErrClosed", v, err)
								continue
							}
							x = ie.Index
						}
						if _, dup := outcomes[x]; dup {
							t.Errorf("item %d yielded twice", x)
						}
						outcomes[x] = err
						order = append(order, x)
					}
					if err := <-shut; giveUp != (err != nil) {
						t.Errorf("Shutdown = %v", err)
					}
					for x := range n {
						err, ok := outcomes[x]
						wantOK := !giveUp && x < window // taken by p2 before it shut down
						switch {
						case !ok:
							t.Errorf("item %d never yielded", x)
						case wantOK && err != nil:
							t.Errorf("item %d: %v; want it run, as p2 had taken it", x, err)
						case !wantOK && err == nil:
							t.Errorf("item %d succeeded; want ErrClosed", x)
						}
					}
					if mode.name == "ordered" && !slices.IsSorted(order) {
						t.Errorf("ordered: items yielded in the order %v", order)
					}
					// The first pool was not shut down with the second.
					if v, err := await(t, p1.Submit(t.Context(), 7)); v != 7 || err != nil {
						t.Errorf("p1 after p2's Shutdown: %d, %v; want 7, nil", v, err)
					}
				})
			})
		}
	}
}

// TestMapThenReleasesFirstStageWorkersWaitingForRoom: with the second
// pool's queue full, the first pool's workers wait for room there, as
// Then's do; a break, ctx's end, or a Shutdown of either pool releases
// them, nothing hangs, items that reach the second pool after a break
// never run, and with a Shutdown every item is yielded exactly once.
func TestMapThenReleasesFirstStageWorkersWaitingForRoom(t *testing.T) {
	checkNoLeak(t)
	for _, how := range []string{"break", "ctx end", "p2 Shutdown", "p2 Shutdown gives up", "p1 Shutdown"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n, window = 40, 16
				var calls1, calls2 atomic.Int64
				zero := make(chan struct{}) // closed when item 0 reaches p2, so that it runs first there
				gate := make(chan struct{}) // holds p2's items but 0
				p1 := New(4, func(_ context.Context, x int) (int, error) {
					calls1.Add(1)
					if x != 0 {
						<-zero
					}
					return x, nil
				})
				defer p1.Close()
				p2 := New(1, func(ctx context.Context, x int) (int, error) {
					calls2.Add(1)
					if x == 0 {
						close(zero)
						return 0, nil
					}
					select {
					case <-gate:
						return 10 * x, nil
					case <-ctx.Done():
						return 0, ctx.Err()
					}
				}, WithQueueSize(1))
				defer p2.Close()
				defer func() {
					select {
					case <-gate:
					default:
						close(gate)
					}
				}()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				yielded := make(map[int]error)
				var last error
				for v, err := range Map(ctx, Then[int, int, int](p1, p2), counted(n, new(atomic.Int64), new(atomic.Bool)), InFlight(window)) {
					x := v / 10
					var ie *ItemError
					if errors.As(err, &ie) {
						x = ie.Index
					} else if err != nil {
						last = err
						continue
					}
					if _, dup := yielded[x]; dup {
						t.Errorf("item %d yielded twice", x)
					}
					yielded[x] = err
					if len(yielded) > 1 {
						continue
					}
					// Item 0 is out: one item runs in p2, one fills its
					// queue, 4 wait for room in p1's 4 workers, 9 wait in
					// p1's queue.
					synctest.Wait()
					if m1, m2 := p1.Metrics(), p2.Metrics(); calls1.Load() != 7 || m1.Queued != window-7 || m2.Running != 1 || m2.Queued != 1 {
						t.Errorf("p1 ran %d items and queues %d, p2 runs %d and queues %d; want 7, %d, 1, 1",
							calls1.Load(), m1.Queued, m2.Running, m2.Queued, window-7)
					}
					if how == "break" {
						break
					}
					switch how {
					case "ctx end":
						cancel()
					case "p2 Shutdown gives up":
						gaveUp, cancel := context.WithCancel(t.Context())
						cancel()
						if err := p2.Shutdown(gaveUp); !errors.Is(err, context.Canceled) {
							t.Errorf("p2.Shutdown = %v, want context.Canceled", err)
						}
					default:
						p := map[string]*Pool[int, int]{"p1 Shutdown": p1, "p2 Shutdown": p2}[how]
						go p.Close()
						synctest.Wait() // the pool stops taking items, then its held items run
						close(gate)
					}
				}
				synctest.Wait()
				if m1, m2 := p1.Metrics(), p2.Metrics(); m1.Running != 0 || m1.Queued != 0 || m2.Running != 0 || m2.Queued != 0 {
					t.Errorf("after the stream, p1 runs %d and queues %d items, p2 %d and %d; want none", m1.Running, m1.Queued, m2.Running, m2.Queued)
				}
				var ok []int
				for x, err := range yielded {
					if err == nil {
						ok = append(ok, x)
					} else if !errors.Is(err, ErrClosed) {
						t.Errorf("item %d: %v, want an error wrapping ErrClosed", x, err)
					}
				}
				slices.Sort(ok)
				switch how {
				case "break", "ctx end":
					if c := calls2.Load(); c != 2 {
						t.Errorf("p2 ran %d items, want 2 (items 0 and 1): the others reached it once the stream was over", c)
					}
					if diff := cmp.Diff([]int{0}, ok); diff != "" || len(yielded) != 1 {
						t.Errorf("%d items yielded; succeeded (-want +got):\n%s", len(yielded), diff)
					}
					if wantLast := map[string]error{"ctx end": context.Canceled}[how]; last != wantLast {
						t.Errorf("last pair %v, want %v", last, wantLast)
					}
				default:
					// p2 runs item 0 and the 2 items it had taken (which
					// of p1's, the race to p2 decides), unless it gave
					// up; p1 runs all it had taken, the window, and p2
					// the items in their turn.
					want := map[string]int{"p2 Shutdown": 3, "p2 Shutdown gives up": 1, "p1 Shutdown": window}[how]
					if len(ok) != want || ok[0] != 0 || len(yielded) != n || last != nil {
						t.Errorf("%d items yielded, last pair %v, items %v succeeded; want %d, nil, and %d items, item 0 among them",
							len(yielded), last, ok, n, want)
					}
				}
			})
		})
	}
}

// TestMapThenForkJoinFromAHandlerOfAPoolOfTheChain: a handler of one of
// the chain's pools that runs Map over the chain with its own ctx, each
// pool of one worker and a small queue, finishes without deadlock with
// the right results, whichever pool of the chain it belongs to, and
// whether its job was submitted (a record's ctx) or streamed by a Map of
// its own (a stream's shared ctx).
func TestMapThenForkJoinFromAHandlerOfAPoolOfTheChain(t *testing.T) {
	checkNoLeak(t)
	for _, owner := range []int{0, 1, 2} {
		for _, mode := range mapModes {
			for _, streamed := range []bool{false, true} {
				name := fmt.Sprintf("handler of p%d/%s", owner+1, mode.name)
				if streamed {
					name += "/streamed"
				}
				t.Run(name, func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
						const n = 16
						var pools [3]*Pool[int, int]
						var s Stage[int, int]
						fs := [3]func(int) int{
							func(x int) int { return x + 1 },
							func(x int) int { return 3 * x },
							func(x int) int { return x - 2 },
						}
						for k := range pools {
							pools[k] = New(1, func(ctx context.Context, x int) (int, error) {
								if x >= 0 {
									return fs[k](x), nil
								}
								var got []int
								for v, err := range Map(ctx, s, counted(n, new(atomic.Int64), new(atomic.Bool)), mode.opts...) {
									if err != nil {
										return 0, err
									}
									got = append(got, v)
								}
								if mode.name == "unordered" {
									slices.Sort(got)
								}
								for i, v := range got {
									if v != 3*i+1 {
										return 0, fmt.Errorf("outputs %v, want 3x+1 for each x", got)
									}
								}
								if len(got) != n {
									return 0, fmt.Errorf("%d outputs, want %d", len(got), n)
								}
								return len(got), nil
							}, WithQueueSize(2))
							defer pools[k].Close()
						}
						s = Then(Then[int, int, int](pools[0], pools[1]), Stage[int, int](pools[2]))
						type outcome struct {
							v   int
							err error
						}
						done := make(chan outcome, 1)
						if streamed {
							go func() {
								for v, err := range Map(t.Context(), pools[owner], slices.Values([]int{-1})) {
									done <- outcome{v, err}
								}
							}()
						} else {
							r := pools[owner].Submit(t.Context(), -1)
							go func() {
								v, err := r.Await(t.Context())
								done <- outcome{v, err}
							}()
						}
						select {
						case o := <-done:
							if o.v != n || o.err != nil {
								t.Errorf("the handler returned %d, %v; want %d, nil", o.v, o.err, n)
							}
						case <-time.After(time.Hour):
							t.Fatalf("an hour on, the handler's Map has not finished: deadlock (p1 %+v, p2 %+v, p3 %+v)",
								pools[0].Metrics(), pools[1].Metrics(), pools[2].Metrics())
						}
					})
				})
			}
		}
	}
}

// funcStage is a Stage that is no Pool: its Submit returns a Result it has
// already completed with f(in), counting its calls.
type funcStage struct {
	f     func(int) (int, error)
	calls atomic.Int64
}

func (s *funcStage) Submit(_ context.Context, in int, _ ...Policy) *Result[int] {
	s.calls.Add(1)
	r, settle := NewPromise[int](nil)
	settle(s.f(in))
	return r
}

// TestMapThenWithAStageThatIsNoPool: a chain with a stage of its own
// anywhere in it goes through its stages' Submit, and gives each item's
// outcome as a chain of Pools would.
func TestMapThenWithAStageThatIsNoPool(t *testing.T) {
	checkNoLeak(t)
	errOdd := errors.New("odd")
	inc := New(2, func(_ context.Context, x int) (int, error) { return x + 1, nil })
	defer inc.Close()
	dbl := New(2, double)
	defer dbl.Close()
	for _, tc := range []struct {
		name  string
		s     func(own Stage[int, int]) Stage[int, int]
		ownIn func(int) int // the input the own stage gets for item x
		f     func(int) int // what the chain does to item x, own stage included
	}{
		{"Then(pool, own)", func(own Stage[int, int]) Stage[int, int] { return Then(Stage[int, int](inc), own) },
			func(x int) int { return x + 1 }, func(x int) int { return 100*(x+1) + 1 }},
		{"Then(own, pool)", func(own Stage[int, int]) Stage[int, int] { return Then(own, Stage[int, int](inc)) },
			func(x int) int { return x }, func(x int) int { return 100*x + 2 }},
		{"Then(Then(pool, pool), own)", func(own Stage[int, int]) Stage[int, int] { return Then(Then[int, int, int](dbl, inc), own) },
			func(x int) int { return 2*x + 1 }, func(x int) int { return 100*(2*x+1) + 1 }},
		{"Then(pool, Then(own, pool))", func(own Stage[int, int]) Stage[int, int] {
			return Then(Stage[int, int](inc), Then(own, Stage[int, int](dbl)))
		}, func(x int) int { return x + 1 }, func(x int) int { return 2 * (100*(x+1) + 1) }},
	} {
		for _, mode := range mapModes {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				// The own stage fails odd inputs, so that an item's input
				// decides its outcome, whatever stage feeds it.
				own := &funcStage{f: func(x int) (int, error) {
					if x%2 == 1 {
						return 0, errOdd
					}
					return 100*x + 1, nil
				}}
				const n = 40
				var got []pair
				for v, err := range Map(context.Background(), tc.s(own), counted(n, new(atomic.Int64), new(atomic.Bool)), append([]MapOption{InFlight(8)}, mode.opts...)...) {
					if err != nil && !errors.Is(err, errOdd) {
						t.Errorf("error %v, want one wrapping %v", err, errOdd)
					}
					got = append(got, pairOf(v, err))
				}
				var want []pair
				for x := range n {
					if tc.ownIn(x)%2 == 1 {
						want = append(want, pair{Index: x, Err: fmt.Sprintf("jobq: item %d: %v", x, errOdd)})
					} else {
						want = append(want, pair{V: tc.f(x), Index: -1})
					}
				}
				if mode.name == "unordered" {
					key := func(p pair) int { return p.V*1000 + p.Index }
					slices.SortFunc(got, func(a, b pair) int { return key(a) - key(b) })
					slices.SortFunc(want, func(a, b pair) int { return key(a) - key(b) })
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("yielded (-want +got):\n%s", diff)
				}
				if c := own.calls.Load(); c != n {
					t.Errorf("the own stage's Submit ran %d times, want once per item (%d)", c, n)
				}
				checkStageGoroutinesExited(t)
			})
		}
	}
}

// wrappedPool is a Stage of its own built on a Pool it embeds: its Submit
// changes each item (here, adds 1000) before handing it to the pool, as a
// stage that validates, logs or routes items would.
type wrappedPool struct {
	*Pool[int, int]
	calls atomic.Int64
}

func (w *wrappedPool) Submit(ctx context.Context, in int, pol ...Policy) *Result[int] {
	w.calls.Add(1)
	return w.Pool.Submit(ctx, in+1000, pol...)
}

// TestMapThenCallsTheSubmitOfAStageThatEmbedsAPool: a Stage that embeds a
// *Pool and has a Submit of its own is not a Pool: Map, alone or through
// Then, must go through its Submit, as it did before Map streamed chains.
// (Embedding promotes the Pool's unexported methods, so a check for them
// finds a Pool there.)
func TestMapThenCallsTheSubmitOfAStageThatEmbedsAPool(t *testing.T) {
	checkNoLeak(t)
	p := New(2, double)
	defer p.Close()
	q := New(2, double)
	defer q.Close()
	for _, tc := range []struct {
		name string
		s    func(w *wrappedPool) Stage[int, int]
		want []int
	}{
		{"Map(w)", func(w *wrappedPool) Stage[int, int] { return w }, []int{2002, 2004, 2006}},
		{"Map(Then(w, pool))", func(w *wrappedPool) Stage[int, int] { return Then(Stage[int, int](w), Stage[int, int](q)) }, []int{4004, 4008, 4012}},
		{"Map(Then(pool, w))", func(w *wrappedPool) Stage[int, int] { return Then(Stage[int, int](q), Stage[int, int](w)) }, []int{2004, 2008, 2012}},
	} {
		w := &wrappedPool{Pool: p}
		var got []int
		for v, err := range Map(context.Background(), tc.s(w), slices.Values([]int{1, 2, 3}), Ordered()) {
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			got = append(got, v)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" || w.calls.Load() != 3 {
			t.Errorf("%s: the wrapper's Submit ran %d times, want 3; outputs (-want +got):\n%s", tc.name, w.calls.Load(), diff)
		}
	}
}

// TestMapThenStreamsEveryChainOfPools: Map takes the by-value path over a
// Pool and over every nesting of Then chains of Pools, but not from a
// handler of any pool of the chain (fork–join), nor when a stage is no
// Pool; the behaviour tests above pass either way, so this pins the path.
func TestMapThenStreamsEveryChainOfPools(t *testing.T) {
	p1, p2, p3 := New(1, double), New(1, double), New(1, double)
	other := New(1, double)
	for _, p := range []*Pool[int, int]{p1, p2, p3, other} {
		defer p.Close()
	}
	promise := &funcStage{f: func(x int) (int, error) { return x, nil }}
	for _, tc := range []struct {
		name   string
		s      Stage[int, int]
		pools  []*Pool[int, int] // the chain's pools: from their handlers, no streaming
		stream bool
	}{
		{"p1", p1, []*Pool[int, int]{p1}, true},
		{"Then(p1, p2)", Then[int, int, int](p1, p2), []*Pool[int, int]{p1, p2}, true},
		{"Then(Then(p1, p2), p3)", Then(Then[int, int, int](p1, p2), Stage[int, int](p3)), []*Pool[int, int]{p1, p2, p3}, true},
		{"Then(p1, Then(p2, p3))", Then(Stage[int, int](p1), Then[int, int, int](p2, p3)), []*Pool[int, int]{p1, p2, p3}, true},
		{"Then(p1, promise)", Then[int, int, int](p1, promise), nil, false},
		{"Then(promise, Then(p1, p2))", Then(Stage[int, int](promise), Then[int, int, int](p1, p2)), nil, false},
		{"wrapped p1", &wrappedPool{Pool: p1}, nil, false},
	} {
		st := streamerOf(tc.s)
		if got := st != nil && st.canStream(nil); got != tc.stream {
			t.Errorf("%s: streams from a plain ctx: %v, want %v", tc.name, got, tc.stream)
		}
		if !tc.stream {
			continue
		}
		if !st.canStream(other.e) {
			t.Errorf("%s: does not stream from a handler of a pool outside it", tc.name)
		}
		for i, p := range tc.pools {
			if st.canStream(p.e) {
				t.Errorf("%s: streams from a handler of its pool %d", tc.name, i+1)
			}
		}
	}
}

// TestMapThenHandsNothingOnAfterABreak: a first-stage handler that ignores
// its ctx and succeeds after the Map has broken off does not hand its
// output to the next pool, which sees no submission, no end and no
// observer call for it.
func TestMapThenHandsNothingOnAfterABreak(t *testing.T) {
	checkNoLeak(t)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	p1 := New(1, func(_ context.Context, x int) (int, error) {
		if x == 1 {
			started <- struct{}{}
			<-release // ignores its ctx
		}
		return x, nil
	})
	defer p1.Close()
	var ends atomic.Int64
	p2 := New(1, double, WithObserver(func(End) { ends.Add(1) }))
	defer p2.Close()
	for v, err := range Map(context.Background(), Then[int, int, int](p1, p2), slices.Values([]int{0, 1}), InFlight(2)) {
		if err != nil {
			t.Fatal(err)
		}
		if v != 0 {
			t.Fatalf("yielded %d, want item 0 first (doubled: 0)", v)
		}
		<-started // item 1 runs in p1
		break
	}
	before := p2.Metrics()
	close(release)
	if err := p1.Shutdown(context.Background()); err != nil { // item 1 has ended, its output handled
		t.Fatal(err)
	}
	if err := p2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := p2.Metrics()
	if after.Submitted != before.Submitted || after.Canceled != before.Canceled || after.Rejected != before.Rejected {
		t.Errorf("the next pool's counts moved after the break: before %+v, after %+v", before, after)
	}
	if n := ends.Load(); n != 1 {
		t.Errorf("the next pool observed %d ends, want 1 (item 0 only)", n)
	}
}
