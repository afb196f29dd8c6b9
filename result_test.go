package jobq

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAwaitCtxBoundsOnlyTheWait(t *testing.T) {
	tests := []struct {
		name     string
		ctx      func() (context.Context, context.CancelFunc)
		wantErr  error
		wantWait time.Duration // in fake time
	}{
		{"already cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled, 0},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 2*time.Second)
		}, context.DeadlineExceeded, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hctx := make(chan context.Context, 1)
				gate := make(chan struct{})
				p := New(1, func(ctx context.Context, in int) (int, error) {
					hctx <- ctx
					<-gate
					return in, ctx.Err()
				})
				r := p.Submit(context.Background(), 42)
				running := <-hctx

				ctx, cancel := tt.ctx()
				defer cancel()
				start := time.Now()
				if _, err := r.Await(ctx); !errors.Is(err, tt.wantErr) {
					t.Errorf("Await with a ctx that ends = %v, want %v", err, tt.wantErr)
				}
				if waited := time.Since(start); waited != tt.wantWait {
					t.Errorf("Await waited %v, want %v", waited, tt.wantWait)
				}
				if isDone(r) {
					t.Error("the Result completed when the wait's ctx ended")
				}
				if err := running.Err(); err != nil {
					t.Errorf("the handler's ctx ended with the wait's: %v", err)
				}

				close(gate)
				if got, err := r.Await(context.Background()); got != 42 || err != nil {
					t.Errorf("Await again = %d, %v; want 42, nil", got, err)
				}
				p.Close()
				checkCounts(t, p.Metrics(), counts{Submitted: 1, Succeeded: 1})
			})
		})
	}
}

func TestAwaitFromManyGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedPool(1)
		r := g.Submit(context.Background(), -4)
		<-g.started
		got := make(chan int, 10)
		for i := range 10 {
			go func() {
				ctx := context.Background()
				if i%2 == 0 { // both ways of waiting
					var cancel context.CancelFunc
					ctx, cancel = context.WithCancel(ctx)
					defer cancel()
				}
				v, _ := r.Await(ctx)
				got <- v
			}()
		}
		synctest.Wait()
		close(g.gate)
		for range 10 {
			if v := <-got; v != -40 {
				t.Errorf("a waiter got %d, want -40", v)
			}
		}
		g.Close()
	})
}

func TestDoneClosesOnCompletion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedPool(1)
		r := g.Submit(context.Background(), -1)
		<-g.started
		done := r.Done()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Done closed while the job runs")
		default:
		}
		if again := r.Done(); again != done {
			t.Error("Done returned a different channel on a second call")
		}

		close(g.gate)
		<-done // blocks for ever, a deadlock in the bubble, if it never closes
		if !isDone(r) {
			t.Error("Done on a completed Result is not closed")
		}
		if got, err := r.Await(context.Background()); got != -10 || err != nil {
			t.Errorf("Await after Done = %d, %v; want -10, nil", got, err)
		}

		// A Result that failed at submission is complete from the start.
		g.Close()
		refused := g.Submit(context.Background(), 1)
		if !isDone(refused) {
			t.Error("Done of a refused submission is not closed")
		}
	})
}

func TestAttemptsCountsStartedAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedPool(1, WithQueueSize(1))
		running, queued := g.fill(t)
		refused, _ := g.TrySubmit(context.Background(), 9)
		for _, c := range []struct {
			name string
			r    *Result[int]
			want int
		}{
			{"running", running, 1},
			{"queued", queued, 0},
			{"refused", refused, 0},
		} {
			if got := c.r.Attempts(); got != c.want {
				t.Errorf("%s job: Attempts() = %d, want %d", c.name, got, c.want)
			}
		}
		close(g.gate)
		if _, err := AwaitAll(context.Background(), running, queued); err != nil {
			t.Fatal(err)
		}
		if a, b := running.Attempts(), queued.Attempts(); a != 1 || b != 1 {
			t.Errorf("after completion: Attempts() = %d and %d, want 1 and 1", a, b)
		}
		g.Close()
	})
}

func TestCancelQueuedJobNeverRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedPool(1)
		running := g.Submit(context.Background(), -1)
		<-g.started
		queued := g.Submit(context.Background(), 2)

		queued.Cancel()
		if !isDone(queued) {
			t.Fatal("Cancel did not complete the queued job's Result at once")
		}
		if _, err := queued.Await(context.Background()); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled queued job: %v, want context.Canceled", err)
		}
		if n := queued.Attempts(); n != 0 {
			t.Errorf("cancelled queued job: Attempts() = %d, want 0", n)
		}

		close(g.gate)
		if _, err := running.Await(context.Background()); err != nil {
			t.Errorf("running job: %v", err)
		}
		g.Close()
		if n := g.callsOf(2); n != 0 {
			t.Errorf("cancelled queued job ran %d times, want never", n)
		}
		checkCounts(t, g.Metrics(), counts{Submitted: 2, Succeeded: 1, Canceled: 1})
	})
}

func TestCancelRunningJobCancelsItsCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started := make(chan struct{})
		observed := make(chan error, 1)
		gate := make(chan struct{})
		p := New(1, func(ctx context.Context, in int) (int, error) {
			close(started)
			<-ctx.Done()
			observed <- ctx.Err()
			<-gate
			return in, nil // too late: the Result has completed
		})
		r := p.Submit(context.Background(), 7)
		<-started

		r.Cancel()
		if err := <-observed; !errors.Is(err, context.Canceled) {
			t.Errorf("handler's ctx.Err() = %v, want context.Canceled", err)
		}
		if !isDone(r) {
			t.Error("Cancel did not complete the running job's Result at once")
		}
		if got, err := r.Await(context.Background()); got != 0 || !errors.Is(err, context.Canceled) {
			t.Errorf("Await = %d, %v; want 0, context.Canceled", got, err)
		}
		if m := p.Metrics(); m.Running != 1 {
			t.Errorf("Running = %d while the cancelled handler has not returned, want 1", m.Running)
		}

		close(gate)
		p.Close()
		if got, err := r.Await(context.Background()); got != 0 || !errors.Is(err, context.Canceled) {
			t.Errorf("after the handler returned: Await = %d, %v; want 0, context.Canceled", got, err)
		}
		checkCounts(t, p.Metrics(), counts{Submitted: 1, Canceled: 1})
	})
}

// TestCancelReachesAHandlerThatOnlyPollsErr: jobs on a worker whose last
// attempt ended clean take over that attempt's ctx generation (see
// worker.begin). Cancel must still reach such an attempt, whose handler
// never asks for Done, and the next job on the worker must get a live ctx.
func TestCancelReachesAHandlerThatOnlyPollsErr(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started := make(chan int, 3)
		p := New(1, func(ctx context.Context, in int) (int, error) {
			started <- in
			if in != 2 {
				return in, ctx.Err()
			}
			for ctx.Err() == nil { // polls, never asks for Done
				runtime.Gosched()
			}
			return in, ctx.Err()
		})
		defer p.Close()
		ctx := context.Background()
		if v, err := p.Submit(ctx, 1).Await(ctx); v != 1 || err != nil {
			t.Fatalf("first job: Await = %d, %v; want 1, nil", v, err)
		}
		r := p.Submit(ctx, 2)
		<-started
		<-started
		r.Cancel()
		if _, err := r.Await(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled job: Await error = %v, want context.Canceled", err)
		}
		// The worker returns once its handler has seen the cancellation;
		// the next job on it must see a live ctx.
		if v, err := p.Submit(ctx, 3).Await(ctx); v != 3 || err != nil {
			t.Errorf("job after the cancelled one: Await = %d, %v; want 3, nil", v, err)
		}
	})
}

// A handler that ignores its timeout keeps its worker, still holding the
// job, while the job's retry runs on another worker: Cancel must reach the
// retry's ctx, not stop at the timed-out attempt.
func TestCancelReachesTheRetryOfATimedOutAttemptThatStillRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		firstStarted := make(chan struct{})
		secondStarted := make(chan struct{})
		release := make(chan struct{})
		observed := make(chan error, 1)
		p := New(1, func(ctx context.Context, in int) (int, error) {
			if calls.Add(1) == 1 {
				close(firstStarted)
				<-release // ignores its ctx and its timeout
				return 0, errors.New("late")
			}
			close(secondStarted)
			<-ctx.Done()
			observed <- ctx.Err()
			return 0, ctx.Err()
		})
		r := p.Submit(context.Background(), 1,
			Policy{MaxAttempts: 2, Timeout: time.Second, Backoff: Constant(time.Millisecond)})
		<-firstStarted
		// The retry needs a second worker: the first, which comes first
		// in the pool's list, holds the timed-out attempt.
		p.Resize(2)
		time.Sleep(time.Second + time.Millisecond)
		<-secondStarted

		r.Cancel()
		if err := <-observed; !errors.Is(err, context.Canceled) {
			t.Errorf("retry's ctx.Err() = %v, want context.Canceled", err)
		}
		if _, err := r.Await(context.Background()); !errors.Is(err, context.Canceled) {
			t.Errorf("Await error = %v, want context.Canceled", err)
		}
		close(release)
		p.Close()
	})
}

func TestCancelIsIdempotentAndKeepsTheOutcome(t *testing.T) {
	errFailed := errors.New("failed")
	tests := []struct {
		name    string
		in      int // -1: gated; 2: succeeds; 3: fails
		running bool
		finish  bool // let the job complete before cancelling
		wantVal int
		wantErr error
		want    counts
	}{
		{"twice on a queued job", 2, false, false, 0, context.Canceled, counts{Submitted: 2, Succeeded: 1, Canceled: 1}},
		{"twice on a running job", -1, true, false, 0, context.Canceled, counts{Submitted: 1, Canceled: 1}},
		{"after success", 2, false, true, 20, nil, counts{Submitted: 2, Succeeded: 2}},
		{"after failure", 3, false, true, 0, errFailed, counts{Submitted: 2, Succeeded: 1, Failed: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				started := make(chan struct{}, 1)
				gate := make(chan struct{})
				p := New(1, func(ctx context.Context, in int) (int, error) {
					switch in {
					case -1:
						started <- struct{}{}
						<-gate
						return 0, ctx.Err()
					case 3:
						return 0, errFailed
					}
					return in * 10, nil
				})
				var r *Result[int]
				if tt.running {
					r = p.Submit(context.Background(), tt.in)
					<-started
				} else {
					blocker := p.Submit(context.Background(), -1)
					<-started
					r = p.Submit(context.Background(), tt.in)
					defer blocker.Await(context.Background())
				}
				if tt.finish {
					close(gate)
					_, _ = r.Await(context.Background())
				}
				r.Cancel()
				r.Cancel()
				if !tt.finish {
					close(gate)
				}
				got, err := r.Await(context.Background())
				if got != tt.wantVal || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
					t.Errorf("Await = %d, %v; want %d, %v", got, err, tt.wantVal, tt.wantErr)
				}
				r.Cancel()
				p.Close()
				checkCounts(t, p.Metrics(), tt.want)
			})
		})
	}
}

func TestCancelOnARefusedSubmissionIsANoOp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedPool(1, WithQueueSize(1))
		running, queued := g.fill(t)
		refused, _ := g.TrySubmit(context.Background(), 5)
		refused.Cancel()
		if _, err := refused.Await(context.Background()); !errors.Is(err, ErrQueueFull) {
			t.Errorf("cancelled refused Result: %v, want ErrQueueFull kept", err)
		}
		close(g.gate)
		if _, err := AwaitAll(context.Background(), running, queued); err != nil {
			t.Fatal(err)
		}
		g.Close()
		checkCounts(t, g.Metrics(), counts{Submitted: 2, Rejected: 2, Succeeded: 2})
	})
}

func TestAwaitAll(t *testing.T) {
	errBad := errors.New("bad input")
	tests := []struct {
		name     string
		ins      []int // 0 fails; -1 is gated and never released before AwaitAll returns
		want     []int
		wantErr  error
		wantText string
	}{
		{"all succeed, in order", []int{3, 1, 2}, []int{30, 10, 20}, nil, ""},
		{"none", nil, []int{}, nil, ""},
		{"stops at the first error", []int{5, 0, -1}, []int{50}, errBad, "jobq: job 1: bad input"},
		{"first error wins over later ones", []int{0, 0}, []int{}, errBad, "jobq: job 0: bad input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				gate := make(chan struct{})
				p := New(2, func(ctx context.Context, in int) (int, error) {
					switch in {
					case 0:
						return 0, errBad
					case -1:
						<-gate
					}
					return in * 10, nil
				})
				var rs []*Result[int]
				for _, in := range tt.ins {
					rs = append(rs, p.Submit(context.Background(), in))
				}
				got, err := AwaitAll(context.Background(), rs...)
				if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
					t.Errorf("AwaitAll error = %v, want one wrapping %v", err, tt.wantErr)
				}
				if err != nil && err.Error() != tt.wantText {
					t.Errorf("AwaitAll error text = %q, want %q", err, tt.wantText)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("AwaitAll values (-want +got):\n%s", diff)
				}
				close(gate)
				p.Close()
			})
		})
	}
}

func TestAwaitAllCtxBoundsTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedPool(1)
		rs := []*Result[int]{g.Submit(context.Background(), 1), g.Submit(context.Background(), -1)}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		got, err := AwaitAll(ctx, rs...)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("AwaitAll = %v, want context.DeadlineExceeded", err)
		}
		if diff := cmp.Diff([]int{10}, got); diff != "" {
			t.Errorf("values before the wait ended (-want +got):\n%s", diff)
		}
		close(g.gate)
		if got, err := AwaitAll(context.Background(), rs...); err != nil || !cmp.Equal(got, []int{10, -10}) {
			t.Errorf("AwaitAll again = %v, %v; want [10 -10], nil", got, err)
		}
		g.Close()
	})
}
