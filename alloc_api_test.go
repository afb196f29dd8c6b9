package jobq

import (
	"context"
	"testing"
	"time"
)

// succeedAtOnce is a Retry fn that succeeds on its first call.
func succeedAtOnce(context.Context) (int, error) { return 1, nil }

// TestRetryAndGoAllocateNothing pins the costs the doc comments of Retry
// and Go state: a Retry whose fn succeeds at once, without a Timeout or
// MaxElapsed, and a Go with context.Background() on a pool without an
// observer, allocate nothing.
func TestRetryAndGoAllocateNothing(t *testing.T) {
	checkNoLeak(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		pol  Policy
	}{
		{"default policy", Policy{}},
		{"retrying policy", Policy{MaxAttempts: 5, Backoff: Exponential(time.Millisecond, time.Second), Jitter: FullJitter,
			RetryIf: func(error) bool { return true }, OnRetry: func(int, error, time.Duration) {}}},
	} {
		pol := tt.pol
		allocs := testing.AllocsPerRun(200, func() {
			if v, err := Retry(ctx, pol, succeedAtOnce); v != 1 || err != nil {
				t.Fatalf("Retry = %d, %v; want 1, nil", v, err)
			}
		})
		if allocs != 0 {
			t.Errorf("Retry succeeding at once under the %s: %v allocs/op, want 0", tt.name, allocs)
		}
	}

	done := make(chan struct{}, 1)
	p := New(2, func(context.Context, int) (struct{}, error) {
		done <- struct{}{}
		return struct{}{}, nil
	})
	defer p.Close()
	allocs := testing.AllocsPerRun(200, func() {
		if err := p.Go(ctx, 1); err != nil {
			t.Fatal(err)
		}
		<-done // one job at a time: no queue growth is measured
	})
	if allocs != 0 {
		t.Errorf("Go without an observer: %v allocs/op, want 0", allocs)
	}
}
