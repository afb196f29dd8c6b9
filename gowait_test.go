package jobq

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestGoBlocksWhileTheQueueIsFullAndGetsInWhenRoomFrees(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		g := newGatedPool(1, WithQueueSize(1))
		running, queued := g.fill(t) // one rejection
		returned := make(chan error, 1)
		go func() { returned <- g.Go(context.Background(), 3) }()
		synctest.Wait()
		select {
		case err := <-returned:
			t.Fatalf("Go on a full queue returned %v at once, want it to wait for room", err)
		default:
		}
		if m := g.Metrics(); m.Rejected != 1 || m.Submitted != 2 {
			t.Errorf("while Go waits: Submitted %d, Rejected %d; want 2, 1", m.Submitted, m.Rejected)
		}

		close(g.gate) // job -1 ends, job 2 runs, and room frees for job 3
		if err := <-returned; err != nil {
			t.Fatalf("Go once room freed = %v, want nil", err)
		}
		if _, err := AwaitAll(context.Background(), running, queued); err != nil {
			t.Fatal(err)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		if n := g.callsOf(3); n != 1 {
			t.Errorf("the job Go waited to submit ran %d times, want 1", n)
		}
		checkCounts(t, g.Metrics(), counts{Submitted: 3, Rejected: 1, Succeeded: 3})
	})
}

func TestGoWithAPolicyAlsoWaitsForRoom(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		g := newGatedPool(1, WithQueueSize(1))
		g.fill(t)
		returned := make(chan error, 1)
		go func() { returned <- g.Go(context.Background(), 3, Policy{MaxAttempts: 2}) }()
		synctest.Wait()
		select {
		case err := <-returned:
			t.Fatalf("Go with a policy on a full queue returned %v at once, want it to wait", err)
		default:
		}
		close(g.gate)
		if err := <-returned; err != nil {
			t.Fatalf("Go once room freed = %v, want nil", err)
		}
		g.Close()
		if n := g.callsOf(3); n != 1 {
			t.Errorf("job 3 ran %d times, want 1", n)
		}
	})
}

func TestTryGoRefusesAtOnceWhenTheQueueIsFull(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		g := newGatedPool(1, WithQueueSize(1))
		g.fill(t) // one rejection
		start := time.Now()
		for _, pol := range [][]Policy{nil, {{MaxAttempts: 3}}} {
			if err := g.TryGo(context.Background(), 3, pol...); !errors.Is(err, ErrQueueFull) {
				t.Errorf("TryGo (%d policies) on a full queue = %v, want ErrQueueFull", len(pol), err)
			}
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("TryGo took %v of the fake clock, want 0: it must not wait", d)
		}

		// While a Go waits for room, TryGo does not take the slot that frees.
		waiting := make(chan error, 1)
		go func() { waiting <- g.Go(context.Background(), 4) }()
		synctest.Wait()
		if err := g.TryGo(context.Background(), 5); !errors.Is(err, ErrQueueFull) {
			t.Errorf("TryGo while a Go waits = %v, want ErrQueueFull", err)
		}
		close(g.gate)
		if err := <-waiting; err != nil {
			t.Errorf("waiting Go = %v, want nil", err)
		}
		g.Close()
		for _, in := range []int{3, 5} {
			if n := g.callsOf(in); n != 0 {
				t.Errorf("refused job %d ran %d times, want never", in, n)
			}
		}
		checkCounts(t, g.Metrics(), counts{Submitted: 3, Rejected: 4, Succeeded: 3})
	})
}

func TestTryGoSucceedsWithRoomAndFailsAfterClose(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		g := newGatedPool(1, WithQueueSize(1))
		if err := g.TryGo(context.Background(), 1); err != nil {
			t.Errorf("TryGo with room = %v, want nil", err)
		}
		g.Close()
		if err := g.TryGo(context.Background(), 2); !errors.Is(err, ErrClosed) {
			t.Errorf("TryGo after Close = %v, want ErrClosed", err)
		}
		if err := g.Go(context.Background(), 3); !errors.Is(err, ErrClosed) {
			t.Errorf("Go after Close = %v, want ErrClosed", err)
		}
		if n := g.callsOf(1); n != 1 {
			t.Errorf("job 1 ran %d times, want 1", n)
		}
	})
}

func TestGoWhoseCtxEndsWhileWaitingReturnsCtxErr(t *testing.T) {
	checkNoLeak(t)
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		end  func(cancel context.CancelFunc) // ends ctx
		want error
	}{
		{
			name: "cancelled",
			ctx:  func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			end:  func(cancel context.CancelFunc) { cancel() },
			want: context.Canceled,
		},
		{
			name: "deadline",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Second)
			},
			end:  func(context.CancelFunc) { time.Sleep(time.Second) }, // the fake clock reaches the deadline
			want: context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newGatedPool(1, WithQueueSize(1))
				g.fill(t)
				ctx, cancel := tt.ctx()
				defer cancel()
				returned := make(chan error, 1)
				go func() { returned <- g.Go(ctx, 3) }()
				synctest.Wait()
				select {
				case err := <-returned:
					t.Fatalf("Go returned %v before its ctx ended, want it to wait", err)
				default:
				}
				tt.end(cancel)
				if err := <-returned; err != tt.want {
					t.Errorf("Go = %v, want %v", err, tt.want)
				}
				close(g.gate)
				g.Close()
				if n := g.callsOf(3); n != 0 {
					t.Errorf("the job whose Go gave up ran %d times, want never", n)
				}
				checkCounts(t, g.Metrics(), counts{Submitted: 2, Rejected: 2, Succeeded: 2})
			})
		})
	}
}
