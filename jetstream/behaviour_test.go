package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/seed-bb9ff1e7/jobq"
	"github.com/seed-bb9ff1e7/jobq/jetstream"
)

// runs counts a handler's runs per job ID.
type runs struct {
	mu sync.Mutex
	n  map[string][]int // job ID -> the Attempt of each run
}

func (r *runs) add(ctx context.Context) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string][]int{}
	}
	id := jetstream.JobID(ctx)
	a := jetstream.Attempt(ctx)
	if jobq.Attempt(ctx) != a {
		a = -a // jobq.Attempt must tell the handler the same: the tests' counts then fail
	}
	r.n[id] = append(r.n[id], a)
	return len(r.n[id])
}

func (r *runs) of(id string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.n[id]...)
}

func (r *runs) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.n {
		n += len(v)
	}
	return n
}

func TestRetriesWithBackoff(t *testing.T) {
	s := testServer(t)
	q := open[string, string](t, connect(t, s), testConfig())
	var rn runs
	w := serve(t, q, 2, func(ctx context.Context, in string) (string, error) {
		if rn.add(ctx) < 3 {
			return "", errors.New("flaky")
		}
		return in + "!", nil
	})
	start := time.Now()
	id, r, err := q.Enqueue(context.Background(), "", "hi", jobq.Policy{MaxAttempts: 3, Backoff: jobq.Constant(60 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	v, err := await[string](t, r)
	if err != nil || v != "hi!" {
		t.Fatalf("got %q, %v", v, err)
	}
	if el := time.Since(start); el < 120*time.Millisecond {
		t.Errorf("two 60ms backoffs took %v", el)
	}
	if got := rn.of(id); len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Errorf("attempts seen %v, want [1 2 3]", got)
	}
	// The worker acks after storing the result, so it counts a moment
	// after the Result completes.
	eventually(t, "the worker to count the success", func() bool { return w.Metrics().Succeeded == 1 })
	if m := w.Metrics(); m.Retried != 2 || m.Submitted != 3 {
		t.Errorf("worker metrics %+v", m)
	}
}

func TestLongRetryDelayIsScheduledByTheServer(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	var rn runs
	serve(t, q, 1, func(ctx context.Context, in int) (int, error) {
		if rn.add(ctx) == 1 {
			return 0, jobq.RetryAfter(1100*time.Millisecond, errors.New("later"))
		}
		return in, nil
	})
	start := time.Now()
	v, err := await[int](t, q.Submit(context.Background(), 7, jobq.Policy{MaxAttempts: 2}))
	if err != nil || v != 7 {
		t.Fatalf("got %d, %v", v, err)
	}
	if el := time.Since(start); el < 1100*time.Millisecond {
		t.Errorf("RetryAfter 1.1s ran after %v", el)
	}
}

func TestExhaustedJobGoesToDeadLetter(t *testing.T) {
	s := testServer(t)
	q := open[string, int](t, connect(t, s), testConfig())
	serve(t, q, 2, func(ctx context.Context, in string) (int, error) {
		return 0, errors.New("boom " + in)
	}, jobq.Policy{Backoff: jobq.Constant(10 * time.Millisecond)})
	id, r, _ := q.Enqueue(context.Background(), "", "x", jobq.Policy{MaxAttempts: 3})
	_, err := await[int](t, r)
	var ee *jobq.ExhaustedError
	if !errors.As(err, &ee) || ee.Attempts != 3 || len(ee.Errs) != 3 {
		t.Fatalf("err %v (%T), want an ExhaustedError of 3 attempts", err, err)
	}
	for _, e := range ee.Errs {
		if e.Error() != "boom x" {
			t.Errorf("attempt error %q", e)
		}
	}
	dl, err := q.DeadLetters(context.Background(), 0)
	if err != nil || len(dl) != 1 {
		t.Fatalf("dead letters %v, %v", dl, err)
	}
	if d := dl[0]; d.ID != id || d.Attempts != 3 || d.Input != "x" || !errors.As(d.Err, &ee) {
		t.Errorf("dead letter %+v", d)
	}
}

func TestPermanentErrorIsNotRetried(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	var rn runs
	serve(t, q, 1, func(ctx context.Context, in int) (int, error) {
		rn.add(ctx)
		return 0, jobq.Permanent(errors.New("bad input"))
	})
	_, err := await[int](t, q.Submit(context.Background(), 1, jobq.Policy{MaxAttempts: 5, Backoff: jobq.Constant(time.Millisecond)}))
	var ee *jobq.ExhaustedError
	if err == nil || err.Error() != "bad input" || errors.As(err, &ee) {
		t.Fatalf("err %v, want the permanent error itself", err)
	}
	if n := rn.total(); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

func TestPanicComesBackAsPanicError(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	serve(t, q, 1, func(ctx context.Context, in int) (int, error) { panic("kaput") })
	_, err := await[int](t, q.Submit(context.Background(), 1, jobq.Policy{MaxAttempts: 3}))
	var pe *jobq.PanicError
	if !errors.As(err, &pe) || pe.Value != "kaput" || !strings.Contains(string(pe.Stack), "goroutine") {
		t.Fatalf("err %v (%T), want a PanicError with its stack", err, err)
	}
}

func TestTimeoutLongerThanLeaseKeepsTheJobWithHeartbeats(t *testing.T) {
	s := testServer(t)
	cfg := testConfig()
	cfg.Lease = 400 * time.Millisecond
	q := open[int, int](t, connect(t, s), cfg)
	var rn runs
	serve(t, q, 2, func(ctx context.Context, in int) (int, error) {
		rn.add(ctx)
		select {
		case <-time.After(1200 * time.Millisecond): // three leases of work
			return in, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	id, r, _ := q.Enqueue(context.Background(), "", 5, jobq.Policy{Timeout: 5 * time.Second})
	if v, err := await[int](t, r); err != nil || v != 5 {
		t.Fatalf("got %d, %v", v, err)
	}
	if got := rn.of(id); len(got) != 1 {
		t.Errorf("runs %v: the job was delivered again while it ran", got)
	}
}

func TestTimeoutEndsTheAttempt(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	serve(t, q, 1, func(ctx context.Context, in int) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	_, err := await[int](t, q.Submit(context.Background(), 1, jobq.Policy{Timeout: 50 * time.Millisecond}))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want DeadlineExceeded", err)
	}
}

func TestDedupReturnsTheFirstSubmissionsResult(t *testing.T) {
	s := testServer(t)
	cfg := testConfig()
	q1 := open[string, string](t, connect(t, s), cfg)
	q2 := open[string, string](t, connect(t, s), cfg) // another submitter
	var rn runs
	gate := make(chan struct{})
	serve(t, q1, 2, func(ctx context.Context, in string) (string, error) {
		rn.add(ctx)
		<-gate
		return "done " + in, nil
	})
	id1, r1, err1 := q1.Enqueue(context.Background(), "order-42", "first")
	id2, r2, err2 := q1.Enqueue(context.Background(), "order-42", "second")
	id3, r3, err3 := q2.Enqueue(context.Background(), "order-42", "third")
	if err1 != nil || err2 != nil || err3 != nil || id1 != "order-42" || id2 != id1 || id3 != id1 {
		t.Fatalf("ids %q %q %q, errors %v %v %v", id1, id2, id3, err1, err2, err3)
	}
	close(gate)
	// q1's and q2's connections race to the server: either may be first.
	first, err := await[string](t, r1)
	if err != nil || (first != "done first" && first != "done third") {
		t.Fatalf("submission 1: %q, %v", first, err)
	}
	for i, r := range []*jobq.Result[string]{r2, r3} {
		if v, err := await[string](t, r); err != nil || v != first {
			t.Errorf("submission %d: %q, %v; want %q", i+2, v, err, first)
		}
	}
	// After the first has completed, within the window.
	_, r4, _ := q2.Enqueue(context.Background(), "order-42", "fourth")
	if v, err := await[string](t, r4); err != nil || v != first {
		t.Errorf("late duplicate: %q, %v", v, err)
	}
	if got := rn.of("order-42"); len(got) != 1 {
		t.Errorf("runs %v, want one", got)
	}
	if _, _, err := q1.Enqueue(context.Background(), "no spaces", "x"); !errors.Is(err, jetstream.ErrInvalidKey) {
		t.Errorf("bad key: %v", err)
	}
}

func TestCancelQueuedJobNeverRuns(t *testing.T) {
	s := testServer(t)
	nc, cfg := connect(t, s), testConfig()
	q := open[string, string](t, nc, cfg)
	id, r, err := q.Enqueue(context.Background(), "", "doomed")
	if err != nil {
		t.Fatal(err)
	}
	r.Cancel()
	if _, err := r.Await(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("after Cancel: %v", err)
	}
	// Cancel deletes the job's message once the server has acknowledged
	// it; no worker listens yet, so none hears the cancellation.
	js, _ := natsjs.New(nc)
	eventually(t, "the job's message to be deleted", func() bool {
		st, err := js.Stream(context.Background(), "JOBQ_"+cfg.Name)
		// Stored, then deleted.
		return err == nil && st.CachedInfo().State.LastSeq == 1 && st.CachedInfo().State.Msgs == 0
	})
	var rn runs
	serve(t, q, 2, func(ctx context.Context, in string) (string, error) {
		rn.add(ctx)
		return in, nil
	})
	if v, err := await[string](t, q.Submit(context.Background(), "later")); err != nil || v != "later" {
		t.Fatalf("later job: %q, %v", v, err)
	}
	if got := rn.of(id); len(got) != 0 {
		t.Errorf("cancelled job ran %v", got)
	}
	// Its stored outcome says so too.
	if _, err := await[string](t, q.Result(id)); !errors.Is(err, context.Canceled) {
		t.Errorf("Result(id) after Cancel: %v", err)
	}
}

func TestCancelRunningJobCancelsItsHandler(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	started, stopped := make(chan struct{}), make(chan error, 1)
	w := serve(t, q, 1, func(ctx context.Context, in int) (int, error) {
		close(started)
		<-ctx.Done()
		stopped <- ctx.Err()
		return 0, ctx.Err()
	})
	r := q.Submit(context.Background(), 1)
	<-started
	r.Cancel()
	if _, err := r.Await(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("after Cancel: %v", err)
	}
	if err := <-stopped; !errors.Is(err, context.Canceled) {
		t.Errorf("handler's ctx: %v", err)
	}
	eventually(t, "the worker to count the cancellation", func() bool { return w.Metrics().Canceled == 1 })
}

func TestSubmitCtxEndingCancelsTheJob(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	ctx, cancel := context.WithCancel(context.Background())
	r := q.Submit(ctx, 1)
	cancel()
	if _, err := r.Await(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestShutdownHandsBackFetchedWork(t *testing.T) {
	s := testServer(t)
	cfg := testConfig()
	cfg.Lease = 20 * time.Second // a stranded message would wait this long
	q := open[int, int](t, connect(t, s), cfg)
	gate, started := make(chan struct{}), make(chan struct{}, 10)
	w1, err := q.Serve(1, func(ctx context.Context, in int) (int, error) {
		started <- struct{}{}
		<-gate
		return in, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var rs []*jobq.Result[int]
	for i := range 5 {
		rs = append(rs, q.Submit(context.Background(), i))
	}
	<-started // one runs; the others wait in the worker's prefetch
	done := make(chan error)
	go func() { done <- w1.Shutdown(context.Background()) }()
	eventually(t, "the fetched jobs to be handed back", func() bool { return w1.HandedBack() == 4 })
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	serve(t, q, 2, func(ctx context.Context, in int) (int, error) { return in, nil })
	for i, r := range rs {
		if v, err := await[int](t, r); err != nil || v != i {
			t.Errorf("job %d: %d, %v", i, v, err)
		}
	}
}

func TestShutdownGivesUpAndHandsBackRunningJobs(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	started, canceled := make(chan struct{}), make(chan struct{})
	w1, err := q.Serve(1, func(ctx context.Context, in int) (int, error) {
		close(started)
		<-ctx.Done()
		close(canceled)
		return 0, ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	id, r, _ := q.Enqueue(context.Background(), "", 3)
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w1.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want DeadlineExceeded", err)
	}
	<-canceled
	var rn runs
	serve(t, q, 1, func(ctx context.Context, in int) (int, error) {
		rn.add(ctx)
		return in, nil
	})
	if v, err := await[int](t, r); err != nil || v != 3 {
		t.Fatalf("job after hand-back: %d, %v", v, err)
	}
	if got := rn.of(id); len(got) != 1 || got[0] != 2 {
		t.Errorf("attempts on the second worker %v, want [2]", got)
	}
	w1.Shutdown(context.Background()) // its drain ends once the handler returned
}

func TestCodecErrorsAreClear(t *testing.T) {
	s := testServer(t)
	nc := connect(t, s)
	cfg := testConfig()
	q := open[any, int](t, nc, cfg)
	if _, err := await[int](t, q.Submit(context.Background(), func() {})); !errors.Is(err, jetstream.ErrCodec) {
		t.Errorf("unencodable input: %v", err)
	}
	// A worker whose input type does not match what was submitted.
	wq := open[int, int](t, nc, cfg)
	var rn runs
	serve(t, wq, 1, func(ctx context.Context, in int) (int, error) {
		rn.add(ctx)
		return in, nil
	})
	_, err := await[int](t, q.Submit(context.Background(), "not a number", jobq.Policy{MaxAttempts: 3}))
	if !errors.Is(err, jetstream.ErrCodec) || !strings.Contains(err.Error(), "decode input") {
		t.Errorf("undecodable input: %v", err)
	}
	if n := rn.total(); n != 0 {
		t.Errorf("handler ran %d times", n)
	}
	if dl, _ := q.DeadLetters(context.Background(), 0); len(dl) != 1 {
		t.Errorf("dead letters: %d, want 1", len(dl))
	}
}

func TestPoliciesThatCannotTravelAreRefused(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	cases := []struct {
		pol  jobq.Policy
		want error
	}{
		{jobq.Policy{RetryIf: func(error) bool { return true }}, jetstream.ErrUnsupportedPolicy},
		{jobq.Policy{OnRetry: func(int, error, time.Duration) {}}, jetstream.ErrUnsupportedPolicy},
		{jobq.Policy{MaxAttempts: -1}, jobq.ErrInvalidPolicy},
		{jobq.Policy{Timeout: -1}, jobq.ErrInvalidPolicy},
	}
	for _, c := range cases {
		if _, err := q.TrySubmit(context.Background(), 1, c.pol); !errors.Is(err, c.want) {
			t.Errorf("policy %+v: %v, want %v", c.pol, err, c.want)
		}
	}
}

func TestLostSubmitterFetchesResultByID(t *testing.T) {
	s := testServer(t)
	nc := connect(t, s)
	cfg := testConfig()
	q1, err := jetstream.Open[int, int](context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, r, _ := q1.Enqueue(context.Background(), "", 21)
	q1.Close() // the submitter goes away before any worker
	if _, err := r.Await(context.Background()); !errors.Is(err, jobq.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	q2 := open[int, int](t, nc, cfg)
	pending := q2.Result(id) // waits: no worker yet
	serve(t, q2, 1, func(ctx context.Context, in int) (int, error) { return 2 * in, nil })
	if v, err := await[int](t, pending); err != nil || v != 42 {
		t.Fatalf("Result(id) before: %d, %v", v, err)
	}
	if v, err := await[int](t, q2.Result(id)); err != nil || v != 42 {
		t.Fatalf("Result(id) after: %d, %v", v, err)
	}
}

func TestCrashExhaustedJobGoesToDeadLetter(t *testing.T) {
	s := testServer(t)
	nc := connect(t, s)
	cfg := testConfig()
	cfg.Lease = 200 * time.Millisecond
	cfg.MaxDeliver = 2
	q := open[int, int](t, nc, cfg)
	w, err := q.Serve(1, func(ctx context.Context, in int) (int, error) { return in, nil })
	if err != nil {
		t.Fatal(err)
	}
	w.Close() // the consumer stays
	_, r, _ := q.Enqueue(context.Background(), "", 1)
	// Two "workers" that take the job and die without a word.
	js, _ := natsjs.New(nc)
	cons, err := js.Consumer(context.Background(), "JOBQ_"+cfg.Name, "workers")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := cons.Next(natsjs.FetchMaxWait(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	var rn runs
	serve(t, q, 1, func(ctx context.Context, in int) (int, error) {
		rn.add(ctx)
		return in, nil
	})
	_, err = await[int](t, r)
	var ee *jobq.ExhaustedError
	if !errors.As(err, &ee) || ee.Attempts != 2 || !errors.Is(err, jetstream.ErrLeaseExpired) {
		t.Fatalf("err %v, want an ExhaustedError of 2 lost runs", err)
	}
	if n := rn.total(); n != 0 {
		t.Errorf("the handler ran %d times", n)
	}
	if dl, _ := q.DeadLetters(context.Background(), 0); len(dl) != 1 || dl[0].Attempts != 2 {
		t.Errorf("dead letters %+v", dl)
	}
}

func TestQueueIsAStageForMapAndThen(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	serve(t, q, 4, func(ctx context.Context, in int) (int, error) { return in * 10, nil })
	local := jobq.New(2, func(ctx context.Context, in int) (int, error) { return in + 1, nil })
	defer local.Close()
	chain := jobq.Then[int, int, int](local, q)
	in := func(yield func(int) bool) {
		for i := range 20 {
			if !yield(i) {
				return
			}
		}
	}
	i := 0
	for v, err := range jobq.Map(context.Background(), chain, in, jobq.Ordered()) {
		if err != nil || v != (i+1)*10 {
			t.Fatalf("item %d: %d, %v", i, v, err)
		}
		i++
	}
	if i != 20 {
		t.Fatalf("%d items", i)
	}
}

func TestGoRunsWithoutAResult(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	done := make(chan int, 10)
	w := serve(t, q, 2, func(ctx context.Context, in int) (int, error) {
		if in < 0 {
			return 0, errors.New("negative")
		}
		done <- in
		return in, nil
	})
	for i := range 5 {
		if err := q.Go(context.Background(), i); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Go(context.Background(), -1); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		<-done
	}
	eventually(t, "the failed job to be dead-lettered", func() bool { return w.Metrics().Failed == 1 })
	if dl, _ := q.DeadLetters(context.Background(), 0); len(dl) != 1 || dl[0].Input != -1 {
		t.Errorf("dead letters %+v", dl)
	}
	if err := q.Go(context.Background(), 1, jobq.Policy{RetryIf: func(error) bool { return false }}); !errors.Is(err, jetstream.ErrUnsupportedPolicy) {
		t.Errorf("Go with RetryIf: %v", err)
	}
}

func TestClosedQueueRefusesSubmissions(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	q.Close()
	if _, err := q.TrySubmit(context.Background(), 1); !errors.Is(err, jobq.ErrClosed) {
		t.Errorf("TrySubmit after Close: %v", err)
	}
	if err := q.Go(context.Background(), 1); !errors.Is(err, jobq.ErrClosed) {
		t.Errorf("Go after Close: %v", err)
	}
}

func TestScheduledRetriesInARow(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	var rn runs
	serve(t, q, 1, func(ctx context.Context, in int) (int, error) {
		if rn.add(ctx) < 3 {
			return 0, jobq.RetryAfter(time.Second, errors.New("not yet"))
		}
		return in, nil
	})
	id, r, _ := q.Enqueue(context.Background(), "", 9, jobq.Policy{MaxAttempts: 3})
	if v, err := await[int](t, r); err != nil || v != 9 {
		t.Fatalf("got %d, %v", v, err)
	}
	if got := rn.of(id); len(got) != 3 || got[2] != 3 {
		t.Errorf("attempts %v, want [1 2 3]", got)
	}
}

func TestCancelDuringRetryDelayDropsTheRetry(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	var rn runs
	w := serve(t, q, 1, func(ctx context.Context, in int) (int, error) {
		rn.add(ctx)
		return 0, jobq.RetryAfter(800*time.Millisecond, errors.New("later"))
	})
	r := q.Submit(context.Background(), 1, jobq.Policy{MaxAttempts: 2})
	eventually(t, "the retry to be scheduled", func() bool { return w.Metrics().Retried == 1 })
	r.Cancel()
	if _, err := r.Await(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("after Cancel: %v", err)
	}
	eventually(t, "the worker to drop the retry", func() bool { return w.Metrics().Canceled == 1 })
	if n := rn.total(); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

func TestTrySubmitAndGoFailFastWhileAcknowledgementsAreAwaited(t *testing.T) {
	s := testServer(t)
	nc, err := nats.Connect(s.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cfg := testConfig()
	cfg.MaxPending = 1
	cfg.PublishTimeout = time.Minute
	q := open[int, int](t, nc, cfg)
	s.Shutdown() // no acknowledgement will come
	first := q.Submit(context.Background(), 1)
	if _, err := q.TrySubmit(context.Background(), 2); !errors.Is(err, jobq.ErrQueueFull) {
		t.Errorf("TrySubmit: %v, want ErrQueueFull", err)
	}
	if err := q.Go(context.Background(), 3); !errors.Is(err, jobq.ErrQueueFull) {
		t.Errorf("Go: %v, want ErrQueueFull", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := q.Submit(ctx, 4).Await(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Submit waiting for room: %v, want its ctx's error", err)
	}
	q.Close()
	if _, err := first.Await(context.Background()); !errors.Is(err, jobq.ErrClosed) {
		t.Errorf("unacknowledged job after Close: %v", err)
	}
	if m := q.Metrics(); m.Rejected != 3 || m.Submitted != 0 {
		t.Errorf("metrics %+v", m)
	}
}

func TestForeignMessageGoesToDeadLetter(t *testing.T) {
	s := testServer(t)
	nc, cfg := connect(t, s), testConfig()
	q := open[int, int](t, nc, cfg)
	w := serve(t, q, 1, func(ctx context.Context, in int) (int, error) { return in, nil })
	if err := nc.Publish("jobq."+cfg.Name+".jobs", []byte("7")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the foreign message to be dead-lettered", func() bool { return w.Metrics().Failed == 1 })
	dl, err := q.DeadLetters(context.Background(), 0)
	if err != nil || len(dl) != 1 || dl[0].Input != 7 || !strings.HasPrefix(dl[0].ID, "seq-") {
		t.Fatalf("dead letters %+v, %v", dl, err)
	}
	if err := q.DeleteDeadLetter(context.Background(), dl[0].Seq); err != nil {
		t.Fatal(err)
	}
	if dl, _ := q.DeadLetters(context.Background(), 0); len(dl) != 0 {
		t.Errorf("after DeleteDeadLetter: %+v", dl)
	}
}

func TestCancelRemovesAScheduledRetry(t *testing.T) {
	s := testServer(t)
	nc, cfg := connect(t, s), testConfig()
	q := open[int, int](t, nc, cfg)
	var rn runs
	w := serve(t, q, 1, func(ctx context.Context, in int) (int, error) {
		rn.add(ctx)
		return 0, jobq.RetryAfter(time.Hour, errors.New("much later"))
	})
	r := q.Result(func() string {
		id, _, err := q.Enqueue(context.Background(), "", 1, jobq.Policy{MaxAttempts: 2})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}()) // a handle by ID, which knows no message to delete
	eventually(t, "the retry to be scheduled", func() bool { return w.Metrics().Retried == 1 })
	r.Cancel()
	js, _ := natsjs.New(nc)
	eventually(t, "the scheduled retry to be removed", func() bool {
		st, err := js.Stream(context.Background(), "JOBQ_"+cfg.Name)
		return err == nil && st.CachedInfo().State.LastSeq == 2 && st.CachedInfo().State.Msgs == 0
	})
	if n := rn.total(); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

func TestWorkerPolicyRetryIfAndOnRetry(t *testing.T) {
	s := testServer(t)
	q := open[string, int](t, connect(t, s), testConfig())
	transient := errors.New("transient")
	var mu sync.Mutex
	var retries []int
	serve(t, q, 1, func(ctx context.Context, in string) (int, error) {
		if in == "other" {
			return 0, errors.New("other")
		}
		return 0, transient
	}, jobq.Policy{
		MaxAttempts: 3,
		Backoff:     jobq.Constant(5 * time.Millisecond),
		RetryIf:     func(err error) bool { return errors.Is(err, transient) },
		OnRetry: func(attempt int, err error, delay time.Duration) {
			mu.Lock()
			retries = append(retries, attempt)
			mu.Unlock()
		},
	})
	var ee *jobq.ExhaustedError
	if _, err := await[int](t, q.Submit(context.Background(), "transient")); !errors.As(err, &ee) || ee.Attempts != 3 {
		t.Errorf("retried error: %v", err)
	}
	if _, err := await[int](t, q.Submit(context.Background(), "other")); err == nil || errors.As(err, &ee) {
		t.Errorf("error RetryIf refuses: %v, want it unwrapped", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(retries) != "[1 2]" {
		t.Errorf("OnRetry saw attempts %v, want [1 2]", retries)
	}
}

func TestMaxElapsedBoundsTheRetries(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	var rn runs
	serve(t, q, 1, func(ctx context.Context, in int) (int, error) {
		rn.add(ctx)
		return 0, errors.New("no")
	})
	id, r, _ := q.Enqueue(context.Background(), "", 1,
		jobq.Policy{MaxAttempts: 100, Backoff: jobq.Constant(60 * time.Millisecond), MaxElapsed: 150 * time.Millisecond})
	_, err := await[int](t, r)
	var ee *jobq.ExhaustedError
	if !errors.As(err, &ee) || ee.Attempts < 2 || ee.Attempts > 3 {
		t.Fatalf("err %v, want an ExhaustedError after 2 or 3 attempts", err)
	}
	if n := len(rn.of(id)); n != ee.Attempts {
		t.Errorf("%d runs, error says %d", n, ee.Attempts)
	}
}

func TestPanickingRetryIfEndsTheJobNotTheWorker(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	serve(t, q, 1, func(ctx context.Context, in int) (int, error) {
		if in == 1 {
			return 0, errors.New("fail")
		}
		return in, nil
	}, jobq.Policy{MaxAttempts: 3, RetryIf: func(error) bool { panic("bad RetryIf") }})
	var pe *jobq.PanicError
	if _, err := await[int](t, q.Submit(context.Background(), 1)); !errors.As(err, &pe) || pe.Value != "bad RetryIf" {
		t.Fatalf("err %v, want the RetryIf's panic", err)
	}
	if v, err := await[int](t, q.Submit(context.Background(), 2)); err != nil || v != 2 {
		t.Errorf("the worker after: %d, %v", v, err)
	}
}

func TestPanickingRetryIfOnTheLastAttempt(t *testing.T) {
	s := testServer(t)
	q := open[int, int](t, connect(t, s), testConfig())
	var calls atomic.Int32
	serve(t, q, 1, func(ctx context.Context, in int) (int, error) { return 0, errors.New("fail") },
		jobq.Policy{Backoff: jobq.Constant(time.Millisecond), RetryIf: func(error) bool {
			if calls.Add(1) == 2 {
				panic("bad RetryIf") // asked for the final error after the last attempt
			}
			return true
		}})
	var pe *jobq.PanicError
	if _, err := await[int](t, q.Submit(context.Background(), 1, jobq.Policy{MaxAttempts: 2})); !errors.As(err, &pe) {
		t.Fatalf("err %v, want the RetryIf's panic", err)
	}
}
