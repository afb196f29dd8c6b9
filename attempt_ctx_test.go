package jobq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// TestContextWithAttemptIsWhatAttemptReports: a backend outside the package
// sets the attempt its handlers see; a pool's own handler ctx wins over it,
// and n < 1 panics naming n.
func TestContextWithAttemptIsWhatAttemptReports(t *testing.T) {
	bg := context.Background()
	if got := Attempt(ContextWithAttempt(bg, 3)); got != 3 {
		t.Errorf("Attempt(ContextWithAttempt(ctx, 3)) = %d, want 3", got)
	}
	if got := Attempt(context.WithValue(ContextWithAttempt(bg, 300), ctxKeyTyped{}, 1)); got != 300 {
		t.Errorf("Attempt of a ctx derived from ContextWithAttempt(ctx, 300) = %d, want 300", got)
	}
	p := New(1, func(ctx context.Context, _ int) (int, error) { return Attempt(ctx), nil })
	defer p.Close()
	ctx := ContextWithAttempt(bg, 7)
	if got, err := p.Submit(ctx, 0).Await(ctx); got != 1 || err != nil {
		t.Errorf("a pool's handler under a ctx with attempt 7 sees %d, %v; want its own 1", got, err)
	}
	mustPanic(t, "ContextWithAttempt: n must be >= 1, got 0", func() { ContextWithAttempt(bg, 0) })
}

// TestHandlerCtxWatchedDuringItsAttemptIsDoneAtItsEnd: a handler that
// takes its ctx's Done channel, registers a context.AfterFunc on it and
// derives a cancellable ctx from it, and returns, leaves all three done
// once its attempt is over: whether the job succeeded, failed, or failed
// an attempt it retries (that attempt's ctx is done while the next one
// runs), and whatever can end the submission ctx or the attempt.
func TestHandlerCtxWatchedDuringItsAttemptIsDoneAtItsEnd(t *testing.T) {
	type kept struct {
		done    <-chan struct{}
		after   chan struct{}
		derived context.Context
	}
	check := func(t *testing.T, what string, k kept) {
		t.Helper()
		synctest.Wait() // the AfterFunc and the derived ctx's watch run in goroutines
		for name, ch := range map[string]<-chan struct{}{"Done": k.done, "AfterFunc": k.after, "a derived ctx's Done": k.derived.Done()} {
			select {
			case <-ch:
			default:
				t.Errorf("%s: %s is still open after the attempt's end", what, name)
			}
		}
		if err := k.derived.Err(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: a derived ctx's Err = %v, want context.Canceled", what, err)
		}
	}
	type key struct{}
	for _, sub := range []struct {
		name string
		ctx  func(t *testing.T) context.Context
		pol  []Policy
	}{
		{"background", func(*testing.T) context.Context { return context.Background() }, nil},
		{"values", func(*testing.T) context.Context { return context.WithValue(context.Background(), key{}, 1) }, nil},
		{"cancellable", func(t *testing.T) context.Context { return t.Context() }, nil},
		{"timeout", func(*testing.T) context.Context { return context.Background() }, []Policy{{Timeout: time.Hour}}},
	} {
		t.Run(sub.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ks := make(chan kept, 1)
				second := make(chan struct{})
				p := New(1, func(ctx context.Context, n int) (int, error) {
					if Attempt(ctx) == 2 {
						<-second
						return n, nil
					}
					k := kept{done: ctx.Done(), after: make(chan struct{})}
					context.AfterFunc(ctx, func() { close(k.after) })
					var cancel context.CancelFunc
					k.derived, cancel = context.WithCancel(ctx)
					_ = cancel // the attempt's end, not cancel, must end it
					ks <- k
					if n == 0 {
						return n, nil
					}
					return n, errors.New("failed")
				}, WithPolicy(Policy{MaxAttempts: 1}))
				defer p.Close()
				ctx := sub.ctx(t)
				if _, err := p.Submit(ctx, 0, sub.pol...).Await(ctx); err != nil {
					t.Fatalf("succeeding job: %v", err)
				}
				check(t, "succeeded", <-ks)
				if _, err := p.Submit(ctx, 1, sub.pol...).Await(ctx); err == nil {
					t.Fatal("failing job: nil error")
				}
				check(t, "failed", <-ks)
				retry := append([]Policy{}, sub.pol...)
				if len(retry) == 0 {
					retry = append(retry, Policy{})
				}
				retry[0].MaxAttempts, retry[0].Backoff = 2, Constant(time.Millisecond)
				r := p.Submit(ctx, 1, retry...)
				check(t, "retried", <-ks)
				close(second)
				if v, err := r.Await(ctx); v != 1 || err != nil {
					t.Errorf("retried job: %d, %v; want 1, nil", v, err)
				}
			})
		})
	}
}

// TestChildrenWaitingOnAHandlersCtxEndWithIt: jobs a handler submits with
// its own ctx, to its pool or another, and leaves waiting end cancelled
// when the handler returns, without running; the ones it awaits (run in
// place, taken off the ctx's watch from the middle of its list, one of
// them after a retry that watches it again) succeed.
func TestChildrenWaitingOnAHandlersCtxEndWithIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ran := make(chan int, 16)
		child := func(_ context.Context, n int) (int, error) { ran <- n; return n, nil }
		release := make(chan struct{})
		other := New(1, func(ctx context.Context, n int) (int, error) {
			if n < 0 {
				<-release // holds other's worker, so its queue waits
				return 0, nil
			}
			return child(ctx, n)
		})
		defer other.Close()
		other.Go(context.Background(), -1)
		var kids []*Result[int]
		var p *Pool[int, int]
		p = New(1, func(ctx context.Context, n int) (int, error) {
			if n == 7 && Attempt(ctx) == 1 {
				return 0, errors.New("first attempt of child 7")
			}
			if n != 100 {
				return child(ctx, n)
			}
			for i := range 5 {
				kids = append(kids, p.Submit(ctx, i))
			}
			kids = append(kids, other.Submit(ctx, 5), other.Submit(ctx, 6))
			// Child 7 fails once and waits out a backoff, watched again.
			kids = append(kids, p.Submit(ctx, 7, Policy{MaxAttempts: 2, Backoff: Constant(time.Millisecond)}))
			for _, i := range []int{1, 3, 7} {
				if v, err := kids[i].Await(ctx); v != i || err != nil {
					return 0, fmt.Errorf("awaited child %d: %d, %v", i, v, err)
				}
			}
			return 0, nil
		})
		defer p.Close()
		if _, err := p.Submit(context.Background(), 100).Await(context.Background()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the watch ends the waiting children in a goroutine
		for i, r := range kids {
			if i == 1 || i == 3 || i == 7 {
				continue
			}
			select {
			case <-r.Done():
			default:
				t.Fatalf("child %d, left waiting on its parent's ctx, not done after the parent returned", i)
			}
			if _, err := r.Await(context.Background()); !errors.Is(err, context.Canceled) {
				t.Errorf("child %d: %v, want context.Canceled", i, err)
			}
		}
		close(release)
		synctest.Wait()
		close(ran)
		var got []int
		for n := range ran {
			got = append(got, n)
		}
		slices.Sort(got)
		if !slices.Equal(got, []int{1, 3, 7}) {
			t.Errorf("children that ran: %v, want only the awaited 1, 3 and 7", got)
		}
	})
}
