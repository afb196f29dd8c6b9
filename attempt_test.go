package jobq

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// attemptSeen is what a handler reports of Attempt: of its own ctx, and of
// ctxs derived from it.
type attemptSeen struct {
	Own, WithValue, WithCancel, WithTimeout int
}

func TestAttemptCountsAcrossRetriesInsideAHandler(t *testing.T) {
	checkNoLeak(t)
	type key struct{}
	tests := []struct {
		name   string
		opts   []Option
		submit func(p *Pool[int, int]) error
	}{
		{"Submit", nil, func(p *Pool[int, int]) error {
			_, err := p.Submit(context.Background(), 0, Policy{MaxAttempts: 3, Backoff: Constant(time.Second)}).Await(context.Background())
			return err
		}},
		{"Go held by value under the pool policy", []Option{WithPolicy(Policy{MaxAttempts: 3})}, func(p *Pool[int, int]) error {
			return p.Go(context.Background(), 0)
		}},
		{"Go with a Timeout", nil, func(p *Pool[int, int]) error {
			return p.Go(context.Background(), 0, Policy{MaxAttempts: 3, Timeout: time.Hour})
		}},
		{"Go with a ctx of its own", nil, func(p *Pool[int, int]) error {
			ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, 1))
			defer cancel()
			if err := p.Go(ctx, 0, Policy{MaxAttempts: 3}); err != nil {
				return err
			}
			p.Close() // before cancel
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var seen []attemptSeen
				p := New(1, func(ctx context.Context, _ int) (int, error) {
					vctx := context.WithValue(ctx, key{}, 2)
					cctx, cancel := context.WithCancel(ctx)
					defer cancel()
					tctx, tcancel := context.WithTimeout(ctx, time.Minute)
					defer tcancel()
					mu.Lock()
					seen = append(seen, attemptSeen{Attempt(ctx), Attempt(vctx), Attempt(cctx), Attempt(tctx)})
					n := len(seen)
					mu.Unlock()
					if n < 3 {
						return 0, errors.New("not yet")
					}
					return n, nil
				}, tt.opts...)
				if err := tt.submit(p); err != nil {
					t.Fatal(err)
				}
				p.Close()
				want := []attemptSeen{{1, 1, 1, 1}, {2, 2, 2, 2}, {3, 3, 3, 3}}
				if diff := cmp.Diff(want, seen); diff != "" {
					t.Errorf("Attempt inside the handler (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestAttemptIsZeroOutsideAHandler(t *testing.T) {
	checkNoLeak(t)
	type key struct{}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, 1))
	defer cancel()
	for name, c := range map[string]context.Context{"Background": context.Background(), "TODO": context.TODO(), "derived": ctx} {
		if n := Attempt(c); n != 0 {
			t.Errorf("Attempt(%s) = %d, want 0", name, n)
		}
	}
	// Nor is Retry's fn a handler; the pool's submitter is not either.
	Retry(context.Background(), Policy{}, func(ctx context.Context) (int, error) {
		if n := Attempt(ctx); n != 0 {
			t.Errorf("Attempt inside Retry's fn = %d, want 0 (not a handler)", n)
		}
		return 0, nil
	})
}

func TestAttemptOfAHandlerCtxKeptAfterItReturns(t *testing.T) {
	checkNoLeak(t)
	kept := make(chan context.Context, 2)
	p := New(1, func(ctx context.Context, _ int) (int, error) {
		kept <- ctx
		if Attempt(ctx) == 1 {
			return 0, errors.New("again")
		}
		return 0, nil
	})
	if _, err := p.Submit(context.Background(), 0, Policy{MaxAttempts: 2, Backoff: Constant(0)}).Await(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.Close()
	first, second := <-kept, <-kept
	if a, b := Attempt(first), Attempt(second); a != 1 || b != 2 {
		t.Errorf("Attempt of the kept ctxs = %d, %d; want 1, 2 (a ctx's values never change)", a, b)
	}
}
