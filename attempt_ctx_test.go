package jobq

import (
	"context"
	"testing"
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
