package jobq

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/seed-bb9ff1e7/jobq/internal/engine"
)

// gauge counts the handlers running at once and the most seen.
type gauge struct{ now, peak atomic.Int64 }

func (g *gauge) enter() {
	n := g.now.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (g *gauge) exit() { g.now.Add(-1) }

// msg is a QueuedMessage.
type msg string

func (m msg) Bytes() []byte { return []byte(m) }

var errJob = errors.New("job failed")

// mixed is a handler whose outcome depends on its input: in%3 == 0
// succeeds with in*10, 1 fails with errJob, 2 panics.
func mixed(_ context.Context, in int) (int, error) {
	switch in % 3 {
	case 0:
		return in * 10, nil
	case 1:
		return 0, fmt.Errorf("job %d: %w", in, errJob)
	default:
		panic(fmt.Sprintf("job %d panics", in))
	}
}

// outcome names how a job with mixed's handler ended.
func outcome(err error) string {
	var pe *PanicError
	switch {
	case err == nil:
		return "succeeded"
	case errors.As(err, &pe):
		return "panicked"
	case errors.Is(err, errJob):
		return "failed"
	default:
		return err.Error()
	}
}

// mixedOutcome is the outcome mixed gives input in.
func mixedOutcome(in int) string {
	return [...]string{"succeeded", "failed", "panicked"}[in%3]
}

// gatedTasks are EnQueueTask functions that each report when they start and
// then block until released, counting how many run at once.
type gatedTasks struct {
	started chan int
	release []chan struct{}
	running gauge
}

func newGatedTasks(n int) *gatedTasks {
	gt := &gatedTasks{started: make(chan int, n), release: make([]chan struct{}, n)}
	for i := range gt.release {
		gt.release[i] = make(chan struct{})
	}
	return gt
}

func (gt *gatedTasks) task(i int) func(context.Context) error {
	return func(context.Context) error {
		gt.running.enter()
		defer gt.running.exit()
		gt.started <- i
		<-gt.release[i]
		return nil
	}
}

// newlyStarted returns the tasks that started since it was last called, in
// the order they reported it.
func (gt *gatedTasks) newlyStarted() []int {
	var ids []int
	for {
		select {
		case i := <-gt.started:
			ids = append(ids, i)
		default:
			return ids
		}
	}
}

// releaseAll lets every task that has not been released yet return.
func (gt *gatedTasks) releaseAll() {
	for _, c := range gt.release {
		select {
		case <-c:
		default:
			close(c)
		}
	}
}

func TestMetricsAddUpAfterMixedWorkload(t *testing.T) {
	checkNoLeak(t)
	ctx := context.Background()
	p := New(3, mixed, WithQueueSize(4))
	t.Cleanup(func() { _ = p.Close() })

	// Paused, the queue fills, and refusals are certain.
	p.Resize(0)
	var rs []*Result[int]
	for i := range 4 {
		rs = append(rs, p.Submit(ctx, i))
	}
	if _, err := p.TrySubmit(ctx, 4); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("TrySubmit on a full queue: err = %v, want ErrQueueFull", err)
	}
	if err := p.TryGo(ctx, 4); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("TryGo on a full queue: err = %v, want ErrQueueFull", err)
	}
	p.Resize(3)
	const n = 60
	for i := 4; i < n; i++ {
		rs = append(rs, p.Submit(ctx, i)) // waits for room as needed
	}
	var got, want []string
	for i, r := range rs {
		v, err := r.Await(ctx)
		got = append(got, outcome(err))
		want = append(want, mixedOutcome(i))
		if err == nil && v != 10*i {
			t.Errorf("job %d returned %d, want %d", i, v, 10*i)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("job outcomes (-want +got):\n%s", diff)
	}
	wantM := Metrics{Submitted: n, Rejected: 2, Succeeded: n / 3, Failed: 2 * n / 3, Workers: 3}
	// The counters are final once every Result has completed; Running is
	// not: a worker holds its job until it comes back for the next, just
	// after completing the Result.
	m := p.Metrics()
	m.Running = 0
	if diff := cmp.Diff(wantM, m); diff != "" {
		t.Fatalf("Metrics once every Result has completed (-want +got):\n%s", diff)
	}

	// Fire-and-forget jobs count the same way; Go never waits, so some
	// may be refused.
	calls := 0
	for i := range 90 {
		calls++
		switch err := p.Go(ctx, i); {
		case err == nil:
			wantM.Submitted++
			switch mixedOutcome(i) {
			case "succeeded":
				wantM.Succeeded++
			default:
				wantM.Failed++
			}
		case errors.Is(err, ErrQueueFull):
			wantM.Rejected++
		default:
			t.Fatalf("Go(%d): %v", i, err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := p.Submit(ctx, 0).Await(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close: err = %v, want ErrClosed", err)
	}
	calls++
	wantM.Rejected++
	wantM.Workers = 0
	m = p.Metrics()
	if diff := cmp.Diff(wantM, m); diff != "" {
		t.Errorf("Metrics after Close (-want +got):\n%s", diff)
	}
	if m.Submitted != m.Succeeded+m.Failed+m.Canceled {
		t.Errorf("Submitted %d != Succeeded %d + Failed %d + Canceled %d", m.Submitted, m.Succeeded, m.Failed, m.Canceled)
	}
	if total := m.Submitted + m.Rejected; total != uint64(n+2+calls) {
		t.Errorf("Submitted + Rejected = %d, want %d submission calls", total, n+2+calls)
	}
}

func TestQueueCountsTasks(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		var mu sync.Mutex
		var payloads []string
		q := NewPool(2, WithFn(func(_ context.Context, m TaskMessage) error {
			mu.Lock()
			payloads = append(payloads, string(m.Payload()))
			mu.Unlock()
			<-gate
			switch string(m.Payload()) {
			case "bad":
				return errJob
			case "panic":
				panic("boom")
			}
			return nil
		}))
		sent := []string{"a", "bad", "b", "panic", "c", "bad"}
		for _, m := range sent {
			if err := q.EnQueue(msg(m)); err != nil {
				t.Fatalf("EnQueue(%q): %v", m, err)
			}
		}
		for _, fail := range []bool{false, true, false} {
			if err := q.EnQueueTask(func(context.Context) error {
				<-gate
				if fail {
					return errJob
				}
				return nil
			}); err != nil {
				t.Fatalf("EnQueueTask: %v", err)
			}
		}
		synctest.Wait()
		type queueCounts struct{ Submitted, Success, Failure, Completed uint64 }
		read := func() queueCounts {
			return queueCounts{q.SubmittedTasks(), q.SuccessTasks(), q.FailureTasks(), q.CompletedTasks()}
		}
		if diff := cmp.Diff(queueCounts{Submitted: 9}, read()); diff != "" {
			t.Errorf("counters while the first two tasks block (-want +got):\n%s", diff)
		}
		close(gate)
		q.Release()
		// Success: a, b, c and two tasks; failure: bad twice, panic, one task.
		if diff := cmp.Diff(queueCounts{Submitted: 9, Success: 5, Failure: 4, Completed: 9}, read()); diff != "" {
			t.Errorf("counters after Release (-want +got):\n%s", diff)
		}
		slices.Sort(payloads)
		sent = slices.Sorted(slices.Values(sent))
		if diff := cmp.Diff(sent, payloads); diff != "" {
			t.Errorf("payloads the WithFn handler got (-sent +got):\n%s", diff)
		}
	})
}

func TestShutdownDrainsQueuedJobs(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		gate := make(chan struct{})
		var ran atomic.Int64
		p := New(2, func(_ context.Context, in int) (int, error) {
			<-gate
			ran.Add(1)
			return in, nil
		}, WithQueueSize(16))
		var rs []*Result[int]
		for i := range 10 {
			rs = append(rs, p.Submit(ctx, i))
		}
		for i := range 5 {
			if err := p.Go(ctx, i); err != nil {
				t.Fatalf("Go: %v", err)
			}
		}
		done := make(chan error, 1)
		go func() { done <- p.Shutdown(ctx) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with every job still to run", err)
		default:
		}
		if _, err := p.TrySubmit(ctx, 99); !errors.Is(err, ErrClosed) {
			t.Errorf("TrySubmit while Shutdown drains: err = %v, want ErrClosed", err)
		}
		close(gate)
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v, want nil", err)
		}
		if got := ran.Load(); got != 15 {
			t.Errorf("%d handlers ran before Shutdown returned, want all 15 accepted jobs", got)
		}
		for i, r := range rs {
			select {
			case <-r.Done():
			default:
				t.Fatalf("job %d's Result had not completed when Shutdown returned", i)
			}
			if v, err := r.Await(ctx); err != nil || v != i {
				t.Errorf("job %d: Await() = %d, %v, want %d, nil", i, v, err, i)
			}
		}
		want := Metrics{Submitted: 15, Rejected: 1, Succeeded: 15}
		if diff := cmp.Diff(want, p.Metrics()); diff != "" {
			t.Errorf("Metrics after Shutdown (-want +got):\n%s", diff)
		}
	})
}

func TestShutdownWaitsForRetriesInBackoff(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var attempts atomic.Int64
		p := New(1, func(context.Context, int) (int, error) {
			if attempts.Add(1) == 1 {
				return 0, errJob
			}
			return 7, nil
		})
		r := p.Submit(ctx, 1, Policy{MaxAttempts: 2, Backoff: Constant(time.Second)})
		synctest.Wait() // the first attempt has failed; the job waits out its backoff
		start := time.Now()
		if err := p.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v, want nil", err)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Errorf("Shutdown returned after %v, want 1s, when the retry ran", waited)
		}
		if v, err := r.Await(ctx); err != nil || v != 7 {
			t.Errorf("Await() = %d, %v, want 7, nil from the retry", v, err)
		}
		if got := r.Attempts(); got != 2 {
			t.Errorf("Attempts() = %d, want 2", got)
		}
	})
}

func TestEverySubmissionPathRefusesAfterShutdown(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		submit func(p *Pool[int, int], q *Queue) error
	}{
		{"Submit", func(p *Pool[int, int], _ *Queue) error {
			r := p.Submit(ctx, 1)
			select {
			case <-r.Done():
			default:
				return errors.New("the Result of a refused Submit has not completed")
			}
			_, err := r.Await(ctx)
			return err
		}},
		{"TrySubmit", func(p *Pool[int, int], _ *Queue) error {
			r, err := p.TrySubmit(ctx, 1)
			if _, rerr := r.Await(ctx); rerr != err {
				return fmt.Errorf("TrySubmit returned %v, its Result %v", err, rerr)
			}
			return err
		}},
		{"Go", func(p *Pool[int, int], _ *Queue) error { return p.Go(ctx, 1) }},
		{"EnQueue", func(_ *Pool[int, int], q *Queue) error { return q.EnQueue(msg("x")) }},
		{"EnQueueTask", func(_ *Pool[int, int], q *Queue) error {
			return q.EnQueueTask(func(context.Context) error { return nil })
		}},
	}
	for _, tt := range tests {
		for _, stop := range []string{"Shutdown", "Close/Release"} {
			t.Run(tt.name+" after "+stop, func(t *testing.T) {
				checkNoLeak(t)
				var ran atomic.Int64
				p := New(2, func(context.Context, int) (int, error) { ran.Add(1); return 0, nil })
				q := NewPool(2, WithFn(func(context.Context, TaskMessage) error { ran.Add(1); return nil }))
				if stop == "Shutdown" {
					if err := p.Shutdown(ctx); err != nil {
						t.Fatal(err)
					}
					if err := q.Shutdown(ctx); err != nil {
						t.Fatal(err)
					}
				} else {
					if err := p.Close(); err != nil {
						t.Fatal(err)
					}
					q.Release()
				}
				if err := tt.submit(p, q); !errors.Is(err, ErrClosed) {
					t.Errorf("err = %v, want ErrClosed", err)
				}
				if got := ran.Load(); got != 0 {
					t.Errorf("%d handlers ran after the pool closed", got)
				}
				m := p.Metrics()
				m.Rejected += q.Metrics().Rejected
				m.Submitted += q.SubmittedTasks()
				if diff := cmp.Diff(Metrics{Rejected: 1}, m); diff != "" {
					t.Errorf("Metrics of the Pool and the Queue together (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestShutdownIsIdempotent(t *testing.T) {
	checkNoLeak(t)
	ctx := context.Background()
	p := New(2, mixed)
	if _, err := p.Submit(ctx, 0).Await(ctx); err != nil {
		t.Fatal(err)
	}
	for i, stop := range []func() error{
		func() error { return p.Shutdown(ctx) },
		func() error { return p.Shutdown(ctx) },
		p.Close,
		func() error { return p.Shutdown(ctx) },
	} {
		if err := stop(); err != nil {
			t.Errorf("stop #%d: %v, want nil", i+1, err)
		}
	}
	q := NewPool(2)
	q.Release()
	q.Release()
	if err := q.Shutdown(ctx); err != nil {
		t.Errorf("Queue.Shutdown after Release: %v, want nil", err)
	}
}

func TestShutdownIsSafeAlongsideSubmitters(t *testing.T) {
	checkNoLeak(t)
	ctx := context.Background()
	var ran atomic.Int64
	p := New(4, func(_ context.Context, in int) (int, error) {
		ran.Add(1)
		return in, nil
	}, WithQueueSize(8))
	t.Cleanup(func() { _ = p.Close() })

	const submitters = 8
	var (
		calls, accepted, rejected atomic.Int64
		mu                        sync.Mutex
		results                   []*Result[int]
		warm, wg                  sync.WaitGroup
	)
	warm.Add(submitters)
	wg.Add(submitters)
	for s := range submitters {
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if i == 10 {
					warm.Done()
				}
				calls.Add(1)
				var err error
				switch (s + i) % 3 {
				case 0:
					r := p.Submit(ctx, i)
					select {
					case <-r.Done():
						_, err = r.Await(ctx)
						if err != nil && !errors.Is(err, ErrClosed) {
							t.Errorf("Submit: %v", err)
						}
					default:
					}
					mu.Lock()
					results = append(results, r)
					mu.Unlock()
				case 1:
					var r *Result[int]
					if r, err = p.TrySubmit(ctx, i); err == nil {
						mu.Lock()
						results = append(results, r)
						mu.Unlock()
					}
				case 2:
					err = p.Go(ctx, i)
				}
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, ErrQueueFull):
					rejected.Add(1)
				case errors.Is(err, ErrClosed):
					rejected.Add(1)
					if i >= 10 {
						return
					}
				default:
					t.Errorf("submission: %v", err)
					return
				}
			}
		}()
	}
	warm.Wait()
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- p.Shutdown(ctx) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("Shutdown: %v, want nil", err)
		}
	}
	wg.Wait()

	// Every accepted job ran to completion, and nothing refused ran.
	for _, r := range results {
		if _, err := r.Await(ctx); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("an accepted job failed: %v", err)
		}
	}
	m := p.Metrics()
	if m.Submitted != uint64(ran.Load()) {
		t.Errorf("Submitted = %d, but %d handlers ran", m.Submitted, ran.Load())
	}
	if got := uint64(accepted.Load()); got != m.Submitted {
		t.Errorf("submitters saw %d submissions accepted, Submitted = %d", got, m.Submitted)
	}
	if got := uint64(rejected.Load()); got != m.Rejected {
		t.Errorf("submitters saw %d submissions refused, Rejected = %d", got, m.Rejected)
	}
	if m.Submitted+m.Rejected != uint64(calls.Load()) {
		t.Errorf("Submitted %d + Rejected %d != %d submission calls", m.Submitted, m.Rejected, calls.Load())
	}
	want := Metrics{Submitted: m.Submitted, Rejected: m.Rejected, Succeeded: m.Submitted}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("Metrics after Shutdown (-want +got):\n%s", diff)
	}
}

func TestWorkerBoundIsNeverExceeded(t *testing.T) {
	for _, workers := range []int{1, 2, 3, 8} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			checkNoLeak(t)
			ctx := context.Background()
			var g gauge
			p := New(workers, func(_ context.Context, in int) (int, error) {
				g.enter()
				defer g.exit()
				for range 3 {
					runtime.Gosched()
				}
				return in, nil
			}, WithQueueSize(16))
			t.Cleanup(func() { _ = p.Close() })
			var rs []*Result[int]
			for i := range 400 {
				if i%2 == 0 {
					rs = append(rs, p.Submit(ctx, i))
				} else {
					err := p.Go(ctx, i)
					for errors.Is(err, ErrQueueFull) { // Go never waits for room
						runtime.Gosched()
						err = p.Go(ctx, i)
					}
					if err != nil {
						t.Fatalf("Go: %v", err)
					}
				}
			}
			if _, err := AwaitAll(ctx, rs...); err != nil {
				t.Fatal(err)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if peak := g.peak.Load(); peak > int64(workers) {
				t.Errorf("%d handlers ran at once on %d workers", peak, workers)
			}
		})
	}
}

func TestWorkerBoundFollowsResize(t *testing.T) {
	// Each phase resizes an idle pool, then runs jobs: at no point may more
	// handlers run than the phase's size.
	checkNoLeak(t)
	ctx := context.Background()
	var g gauge
	p := New(4, func(_ context.Context, in int) (int, error) {
		g.enter()
		defer g.exit()
		for range 3 {
			runtime.Gosched()
		}
		return in, nil
	}, WithQueueSize(16))
	t.Cleanup(func() { _ = p.Close() })
	for _, size := range []int{4, 1, 6, 2, 3, 1, 5} {
		p.Resize(size)
		if got := p.Workers(); got != size {
			t.Fatalf("Workers() = %d after Resize(%d)", got, size)
		}
		g.peak.Store(0)
		var rs []*Result[int]
		for i := range 200 {
			rs = append(rs, p.Submit(ctx, i))
		}
		if _, err := AwaitAll(ctx, rs...); err != nil {
			t.Fatal(err)
		}
		if peak := g.peak.Load(); peak > int64(size) {
			t.Errorf("after Resize(%d), %d handlers ran at once", size, peak)
		}
	}
}

// enqueueOneByOne queues gt's tasks from..to-1, letting the pool settle
// after each, so an idle worker takes each task alone and no worker takes a
// batch of several: the Queue's state follows from the calls alone.
func enqueueOneByOne(t *testing.T, q *Queue, gt *gatedTasks, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := q.EnQueueTask(gt.task(i)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
	}
}

func TestUpdateWorkerCountWhileJobsRun(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		const jobs = 8
		gt := newGatedTasks(jobs)
		q := NewPool(2)
		defer q.Release()
		defer gt.releaseAll() // runs first, so that Release can return
		enqueueOneByOne(t, q, gt, 0, jobs)
		running := gt.newlyStarted()
		if len(running) != 2 || q.BusyWorkers() != 2 {
			t.Fatalf("on 2 workers, %d tasks started (%v), BusyWorkers() = %d, want 2 and 2", len(running), running, q.BusyWorkers())
		}

		// Growing starts workers at once: the new concurrency is reached
		// while the first tasks still run.
		q.UpdateWorkerCount(5)
		synctest.Wait()
		running = append(running, gt.newlyStarted()...)
		if len(running) != 5 || q.BusyWorkers() != 5 {
			t.Fatalf("after growing to 5, %d tasks run (%v), BusyWorkers() = %d, want 5 and 5", len(running), running, q.BusyWorkers())
		}

		// Shrinking lets running tasks finish: nothing is stopped, and no
		// task starts until fewer than 2 run.
		q.UpdateWorkerCount(2)
		synctest.Wait()
		if s := gt.newlyStarted(); len(s) > 0 || q.BusyWorkers() != 5 {
			t.Fatalf("right after shrinking to 2, tasks %v started and BusyWorkers() = %d, want none and 5", s, q.BusyWorkers())
		}
		for k, i := range running[:3] {
			close(gt.release[i])
			synctest.Wait()
			if s := gt.newlyStarted(); len(s) > 0 {
				t.Fatalf("shrunk to 2 with %d tasks still running, tasks %v started", 5-k-1, s)
			}
		}
		running = running[3:]
		if got := q.BusyWorkers(); got != 2 {
			t.Fatalf("BusyWorkers() = %d once the extra tasks finished, want 2", got)
		}
		if got := q.Metrics().Workers; got != 2 {
			t.Errorf("Metrics().Workers = %d once the extra tasks finished, want 2", got)
		}

		// From now on, 2 run at a time, until every task has run.
		gt.running.peak.Store(gt.running.now.Load())
		ran := 3
		for len(running) > 0 {
			i := running[0]
			running = running[1:]
			close(gt.release[i])
			ran++
			synctest.Wait()
			running = append(running, gt.newlyStarted()...)
			if want := min(2, jobs-ran); len(running) != want {
				t.Fatalf("on 2 workers with %d tasks left, %d run (%v), want %d", jobs-ran, len(running), running, want)
			}
		}
		if peak := gt.running.peak.Load(); peak > 2 {
			t.Errorf("on 2 workers, %d tasks ran at once", peak)
		}
		q.Release()
		if got := q.SuccessTasks(); got != jobs {
			t.Errorf("SuccessTasks() = %d, want %d", got, jobs)
		}
	})
}

func TestResizeZeroPausesAndResumes(t *testing.T) {
	t.Run("before jobs", func(t *testing.T) {
		checkNoLeak(t)
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			var ran atomic.Int64
			p := New(2, func(_ context.Context, in int) (int, error) {
				ran.Add(1)
				return in, nil
			})
			defer p.Close()
			p.Resize(0)
			var rs []*Result[int]
			for i := range 5 {
				rs = append(rs, p.Submit(ctx, i))
			}
			synctest.Wait()
			if got := ran.Load(); got != 0 {
				t.Fatalf("paused, %d handlers ran", got)
			}
			if got := p.Workers(); got != 0 {
				t.Errorf("paused, Workers() = %d, want 0", got)
			}
			if diff := cmp.Diff(Metrics{Submitted: 5, Queued: 5}, p.Metrics()); diff != "" {
				t.Errorf("Metrics while paused (-want +got):\n%s", diff)
			}
			p.Resize(3)
			got, err := AwaitAll(ctx, rs...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]int{0, 1, 2, 3, 4}, got); diff != "" {
				t.Errorf("outputs after resuming (-want +got):\n%s", diff)
			}
		})
	})
	t.Run("while a job runs", func(t *testing.T) {
		checkNoLeak(t)
		synctest.Test(t, func(t *testing.T) {
			const jobs = 4
			gt := newGatedTasks(jobs)
			q := NewPool(1)
			defer q.Release()
			defer gt.releaseAll()
			enqueueOneByOne(t, q, gt, 0, jobs)
			running := gt.newlyStarted()
			if len(running) != 1 {
				t.Fatalf("on 1 worker, tasks %v started, want 1", running)
			}
			q.UpdateWorkerCount(0)
			close(gt.release[running[0]])
			synctest.Wait()
			if s := gt.newlyStarted(); len(s) > 0 {
				t.Fatalf("paused with Resize(0), tasks %v started once the running one finished", s)
			}
			if m := q.Metrics(); m.Workers != 0 || m.Running != 0 || m.Queued != jobs-1 {
				t.Errorf("paused: Workers %d, Running %d, Queued %d, want 0, 0, %d", m.Workers, m.Running, m.Queued, jobs-1)
			}
			q.UpdateWorkerCount(1)
			gt.releaseAll()
			q.Release()
			if got := q.SuccessTasks(); got != jobs {
				t.Errorf("after resuming, SuccessTasks() = %d, want %d", got, jobs)
			}
		})
	})
}

func TestResizeDownHoldsWithABacklog(t *testing.T) {
	// Paused, the queue fills; the pool then resumes with a deep backlog,
	// where a worker could take several jobs at once (a batched dequeue),
	// and shrinks or pauses again. Only the new size may run.
	for _, tt := range []struct {
		name          string
		workers, down int
	}{
		{"shrink from 2 to 1", 2, 1},
		{"pause with Resize(0)", 1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			synctest.Test(t, func(t *testing.T) {
				const jobs = 12
				gt := newGatedTasks(jobs)
				q := NewPool(1)
				defer q.Release()
				defer gt.releaseAll()
				q.UpdateWorkerCount(0)
				for i := range jobs {
					if err := q.EnQueueTask(gt.task(i)); err != nil {
						t.Fatal(err)
					}
				}
				q.UpdateWorkerCount(tt.workers)
				synctest.Wait()
				running := gt.newlyStarted()
				if len(running) != tt.workers {
					t.Fatalf("on %d workers, tasks %v started", tt.workers, running)
				}
				q.UpdateWorkerCount(tt.down)
				for _, i := range running[:tt.workers-tt.down] {
					close(gt.release[i])
				}
				synctest.Wait()
				if s := gt.newlyStarted(); len(s) > 0 {
					t.Errorf("resized to %d with %d tasks running, tasks %v started", tt.down, tt.down, s)
				}
				if got := q.BusyWorkers(); got != int64(tt.down) {
					t.Errorf("BusyWorkers() = %d after resizing to %d, want %d", got, tt.down, tt.down)
				}
				q.UpdateWorkerCount(tt.workers)
			})
		})
	}
}

func TestResizeBelowZeroPanics(t *testing.T) {
	checkNoLeak(t)
	p := New(2, mixed)
	defer p.Close()
	q := NewPool(2)
	defer q.Release()
	mustPanic(t, "workers must be >= 0, got -1", func() { p.Resize(-1) })
	mustPanic(t, "UpdateWorkerCount: n must be >= 0, got -3", func() { q.UpdateWorkerCount(-3) })
	if got := p.Workers(); got != 2 {
		t.Errorf("Workers() = %d after a refused Resize, want 2", got)
	}
}

func TestEnQueueAfterReleaseReturnsErrClosed(t *testing.T) {
	checkNoLeak(t)
	var got atomic.Int64
	q := NewPool(2, WithFn(func(context.Context, TaskMessage) error {
		got.Add(1)
		return nil
	}))
	for i := range 10 {
		if err := q.EnQueue(msg(fmt.Sprint(i))); err != nil {
			t.Fatalf("EnQueue: %v", err)
		}
	}
	q.Release()
	if n := got.Load(); n != 10 {
		t.Errorf("Release returned after %d of 10 messages were handled", n)
	}
	if err := q.EnQueue(msg("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("EnQueue after Release: err = %v, want ErrClosed", err)
	}
	if err := q.EnQueueTask(func(context.Context) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("EnQueueTask after Release: err = %v, want ErrClosed", err)
	}
	if n := got.Load(); n != 10 {
		t.Errorf("%d messages handled, want 10: a refused one ran", n)
	}
}

func TestEnQueueWithoutWithFnFails(t *testing.T) {
	checkNoLeak(t)
	q := NewPool(1)
	defer q.Release()
	err := q.EnQueue(msg("x"))
	if err == nil || errors.Is(err, ErrClosed) {
		t.Fatalf("EnQueue on a Queue without WithFn: err = %v, want an error saying it needs WithFn", err)
	}
	if q.SubmittedTasks() != 0 || q.Metrics().Rejected != 1 {
		t.Errorf("SubmittedTasks() = %d, Rejected = %d, want 0 and 1", q.SubmittedTasks(), q.Metrics().Rejected)
	}
	done := make(chan struct{})
	if err := q.EnQueueTask(func(context.Context) error { close(done); return nil }); err != nil {
		t.Fatalf("EnQueueTask on a Queue without WithFn: %v", err)
	}
	<-done
}

func TestPanickingTaskLeavesPoolWorking(t *testing.T) {
	ctx := context.Background()
	t.Run("Submit", func(t *testing.T) {
		checkNoLeak(t)
		errBoom := errors.New("boom")
		p := New(1, func(_ context.Context, in int) (int, error) {
			switch in {
			case -1:
				panic("boom")
			case -2:
				panic(errBoom)
			}
			return in, nil
		})
		defer p.Close()
		_, err := p.Submit(ctx, -1).Await(ctx)
		var pe *PanicError
		if !errors.As(err, &pe) {
			t.Fatalf("a panicking handler's Result: err = %v (%T), want a *PanicError", err, err)
		}
		if pe.Value != "boom" || len(pe.Stack) == 0 {
			t.Errorf("PanicError{Value: %#v, %d bytes of stack}, want Value \"boom\" and a stack", pe.Value, len(pe.Stack))
		}
		if _, err := p.Submit(ctx, -2).Await(ctx); !errors.Is(err, errBoom) {
			t.Errorf("a handler that panicked with an error: err = %v, want one that wraps it", err)
		}
		// The one worker lives on.
		for i := range 3 {
			if v, err := p.Submit(ctx, i).Await(ctx); err != nil || v != i {
				t.Errorf("after the panics, Await() = %d, %v, want %d, nil", v, err, i)
			}
		}
		// A worker stays busy until it comes back for its next job, just
		// after the Result completes: read the counts once it has exited.
		p.Close()
		want := Metrics{Submitted: 5, Succeeded: 3, Failed: 2}
		if diff := cmp.Diff(want, p.Metrics()); diff != "" {
			t.Errorf("Metrics (-want +got):\n%s", diff)
		}
	})
	queues := []struct {
		name    string
		enqueue func(q *Queue, panics bool) error
	}{
		{"EnQueueTask", func(q *Queue, panics bool) error {
			return q.EnQueueTask(func(context.Context) error {
				if panics {
					panic("boom")
				}
				return nil
			})
		}},
		{"EnQueue", func(q *Queue, panics bool) error {
			if panics {
				return q.EnQueue(msg("panic"))
			}
			return q.EnQueue(msg("ok"))
		}},
	}
	for _, tt := range queues {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			q := NewPool(1, WithFn(func(_ context.Context, m TaskMessage) error {
				if string(m.Payload()) == "panic" {
					panic("boom")
				}
				return nil
			}))
			for i, panics := range []bool{true, false, true, false, false} {
				if err := tt.enqueue(q, panics); err != nil {
					t.Fatalf("#%d: %v", i, err)
				}
			}
			q.Release()
			want := Metrics{Submitted: 5, Succeeded: 3, Failed: 2}
			if diff := cmp.Diff(want, q.Metrics()); diff != "" {
				t.Errorf("Metrics (-want +got):\n%s", diff)
			}
			if got := q.FailureTasks(); got != 2 {
				t.Errorf("FailureTasks() = %d, want 2", got)
			}
		})
	}
}

func TestShutdownPastItsDeadline(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		gate := make(chan struct{})
		started := make(chan int, 8)
		sawCancel := make(chan error, 1)
		var ran atomic.Int64
		p := New(2, func(hctx context.Context, in int) (int, error) {
			ran.Add(1)
			started <- in
			switch in {
			case 0: // ignores its ctx
				<-gate
				return in, nil
			case 1: // honours its ctx
				<-hctx.Done()
				sawCancel <- hctx.Err()
				return 0, hctx.Err()
			}
			return in, nil
		}, WithQueueSize(8))
		running := []*Result[int]{p.Submit(ctx, 0), p.Submit(ctx, 1)}
		<-started
		<-started
		var queued []*Result[int]
		for i := 2; i < 5; i++ {
			queued = append(queued, p.Submit(ctx, i))
		}
		for i := 5; i < 7; i++ {
			if err := p.Go(ctx, i); err != nil {
				t.Fatalf("Go: %v", err)
			}
		}

		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		start := time.Now()
		err := p.Shutdown(sctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown past its deadline: err = %v, want context.DeadlineExceeded", err)
		}
		if waited := time.Since(start); waited != 3*time.Second {
			t.Errorf("Shutdown returned after %v, want its 3s deadline", waited)
		}
		for i, r := range queued {
			if _, err := r.Await(ctx); !errors.Is(err, ErrClosed) {
				t.Errorf("queued job %d: err = %v, want ErrClosed", i+2, err)
			}
		}
		for i, r := range running {
			if _, err := r.Await(ctx); !errors.Is(err, ErrClosed) {
				t.Errorf("running job %d: err = %v, want ErrClosed", i, err)
			}
		}
		if err := <-sawCancel; err == nil {
			t.Errorf("the handler honouring its ctx returned with ctx.Err() == nil")
		}
		if waited := time.Since(start); waited != 3*time.Second {
			t.Errorf("the running handler saw its ctx cancelled after %v, want at the 3s deadline", waited)
		}
		synctest.Wait() // the handler that honoured its ctx has returned
		if got := p.Metrics().Running; got != 1 {
			t.Errorf("Running = %d with one handler ignoring its ctx, want 1", got)
		}

		close(gate)
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown once every handler returned: %v, want nil", err)
		}
		if got := ran.Load(); got != 2 {
			t.Errorf("%d handlers ran, want the 2 that were running: queued jobs must not run", got)
		}
		// Seven jobs, each counted once: the late returns of the two
		// running handlers change nothing.
		want := Metrics{Submitted: 7, Canceled: 7}
		if diff := cmp.Diff(want, p.Metrics()); diff != "" {
			t.Errorf("Metrics once everything returned (-want +got):\n%s", diff)
		}
	})
}

func TestShutdownReturnsPromptlyWhenNothingRuns(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// setup returns the shutdown of a pool in the state under test.
		setup func(t *testing.T) func(context.Context) error
	}{
		{"Pool nobody submitted to", func(*testing.T) func(context.Context) error {
			return New(3, mixed).Shutdown
		}},
		{"Queue nobody submitted to", func(*testing.T) func(context.Context) error {
			return NewPool(3).Shutdown
		}},
		{"Pool whose jobs all ended", func(t *testing.T) func(context.Context) error {
			p := New(3, mixed)
			var rs []*Result[int]
			for i := range 9 {
				rs = append(rs, p.Submit(ctx, i))
			}
			for _, r := range rs {
				r.Await(ctx)
			}
			return p.Shutdown
		}},
		{"paused Pool", func(t *testing.T) func(context.Context) error {
			p := New(3, mixed)
			p.Resize(0)
			return p.Shutdown
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			synctest.Test(t, func(t *testing.T) {
				shutdown := tt.setup(t)
				sctx, cancel := context.WithTimeout(ctx, time.Hour)
				defer cancel()
				start := time.Now()
				if err := shutdown(sctx); err != nil {
					t.Errorf("Shutdown: %v, want nil", err)
				}
				if waited := time.Since(start); waited != 0 {
					t.Errorf("Shutdown took %v, want no wait", waited)
				}
			})
		})
	}
}

func TestShutdownReturnsAtItsDeadlineWhenHandlersNeverReturn(t *testing.T) {
	tests := []struct {
		name string
		// setup starts handlers that block on gate, ignoring their ctx,
		// and returns the pool's Shutdown and a count of ended jobs.
		setup func(t *testing.T, gate chan struct{}) (shutdown func(context.Context) error, ended func() uint64)
	}{
		{"Pool", func(t *testing.T, gate chan struct{}) (func(context.Context) error, func() uint64) {
			p := New(2, func(context.Context, int) (int, error) { <-gate; return 0, nil })
			for i := range 4 {
				p.Submit(context.Background(), i)
			}
			return p.Shutdown, func() uint64 { m := p.Metrics(); return m.Succeeded + m.Failed + m.Canceled }
		}},
		{"Queue", func(t *testing.T, gate chan struct{}) (func(context.Context) error, func() uint64) {
			q := NewPool(2)
			for range 4 {
				if err := q.EnQueueTask(func(context.Context) error { <-gate; return nil }); err != nil {
					t.Fatal(err)
				}
			}
			return q.Shutdown, q.CompletedTasks
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			synctest.Test(t, func(t *testing.T) {
				gate := make(chan struct{})
				shutdown, ended := tt.setup(t, gate)
				synctest.Wait()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				start := time.Now()
				if err := shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Shutdown: %v, want context.DeadlineExceeded", err)
				}
				if waited := time.Since(start); waited != 5*time.Second {
					t.Errorf("Shutdown returned after %v, want its 5s deadline", waited)
				}
				close(gate) // the handlers return at last
				if err := shutdown(context.Background()); err != nil {
					t.Errorf("Shutdown once the handlers returned: %v", err)
				}
				if got := ended(); got != 4 {
					t.Errorf("%d jobs ended, want 4", got)
				}
			})
		})
	}
}

func TestBusyWorkersReflectsRunningHandlers(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		const jobs = 6
		gt := newGatedTasks(jobs)
		q := NewPool(4)
		defer q.Release()
		defer gt.releaseAll()
		check := func(wantBusy int64, when string) {
			t.Helper()
			synctest.Wait()
			if got := q.BusyWorkers(); got != wantBusy {
				t.Errorf("%s: BusyWorkers() = %d, want %d", when, got, wantBusy)
			}
			if got := q.Metrics().Running; got != wantBusy {
				t.Errorf("%s: Metrics().Running = %d, want %d", when, got, wantBusy)
			}
		}
		check(0, "idle")
		for i := range 3 {
			if err := q.EnQueueTask(gt.task(i)); err != nil {
				t.Fatal(err)
			}
		}
		check(3, "three tasks blocked")
		close(gt.release[0])
		check(2, "one released")
		for i := 3; i < jobs; i++ {
			if err := q.EnQueueTask(gt.task(i)); err != nil {
				t.Fatal(err)
			}
		}
		check(4, "five tasks on four workers")
		if got := q.Metrics().Queued; got != 1 {
			t.Errorf("five tasks on four workers: Queued = %d, want 1", got)
		}
		gt.releaseAll()
		check(0, "all released")
	})
}

func TestConstructorsPanicNamingTheArgument(t *testing.T) {
	h := func(context.Context, int) (int, error) { return 0, nil }
	tests := []struct {
		name string
		f    func()
		want string
	}{
		{"New workers 0", func() { New(0, h) }, "workers must be >= 1"},
		{"New workers -1", func() { New(-1, h) }, "workers must be >= 1"},
		{"New nil handler", func() { New[int, int](1, nil) }, "handler h must not be nil"},
		{"NewPool size 0", func() { NewPool(0) }, "size must be >= 1, got 0"},
		{"NewPool size -2", func() { NewPool(-2) }, "size must be >= 1, got -2"},
		{"WithQueueSize 0", func() { WithQueueSize(0) }, "WithQueueSize: n must be >= 1, got 0"},
		{"WithQueueSize -1", func() { WithQueueSize(-1) }, "WithQueueSize: n must be >= 1, got -1"},
		{"WithFn nil", func() { WithFn(nil) }, "WithFn: fn must not be nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			mustPanic(t, tt.want, tt.f)
		})
	}
}

func TestNewWithWithFnPanicsAndLeaksNothing(t *testing.T) {
	checkNoLeak(t)
	fn := WithFn(func(context.Context, TaskMessage) error { return nil })
	mustPanic(t, "WithFn", func() {
		New(2, func(context.Context, int) (int, error) { return 0, nil }, fn)
	})
}

// TestJobRecordLayout pins the job record's size, the one allocation of a
// Submit (its Result, and its first attempt's handler ctx): a job of small
// In and Out takes 128 bytes, two cache lines, in a size class whose
// objects start on a line, as it did before engine v2.
func TestJobRecordLayout(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is pinned for 64-bit platforms")
	}
	var j engine.Job[int, int]
	const line = 64
	if size := unsafe.Sizeof(j); size != 2*line {
		t.Errorf("engine.Job[int, int] takes %d bytes, want %d", size, 2*line)
	}
	if off := unsafe.Offsetof(j.Future); off != 0 {
		t.Errorf("the Future at offset %d, want 0", off)
	}
	p := New(1, func(_ context.Context, x int) (int, error) { return x, nil })
	defer p.Close()
	for range 8 {
		r := p.Submit(context.Background(), 1) // a job record, on the heap
		if a := uintptr(unsafe.Pointer(r)) % line; a != 0 {
			t.Errorf("job[int, int] allocated at %d mod %d: its size class is not a multiple of a line", a, line)
		}
	}
}

// TestMetricsCountGoJobsOnALivePool checks the counts of fire-and-forget
// jobs while the pool is still up: once its workers have gone idle, every
// accepted job shows as succeeded or failed, and none as running or queued.
// (Workers count a Go job's success as they come back for the next job;
// Close folds their counts into the pool's, so only a live pool shows
// whether Metrics reads them.)
func TestMetricsCountGoJobsOnALivePool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		p := New(3, mixed, WithQueueSize(100))
		defer p.Close()
		want := Metrics{Workers: 3}
		for i := range 90 {
			if err := p.Go(ctx, i); err != nil {
				t.Fatalf("Go(%d): %v", i, err)
			}
			want.Submitted++
			if mixedOutcome(i) == "succeeded" {
				want.Succeeded++
			} else {
				want.Failed++
			}
		}
		synctest.Wait() // every worker is idle, waiting for a job
		if diff := cmp.Diff(want, p.Metrics()); diff != "" {
			t.Errorf("Metrics of an idle live pool (-want +got):\n%s", diff)
		}
	})
}

// TestSubmitWaitingForRoomInAQueueOfOneIsWoken: with WithQueueSize(1), two
// submitters wait for room while the only worker is busy. Each must get in
// once the worker drains the queue: the room a hand-off to an idle worker
// frees must reach the next waiter (the second waiter used to wait
// forever, with the queue empty and the worker idle).
func TestSubmitWaitingForRoomInAQueueOfOneIsWoken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		p := New(1, func(ctx context.Context, in int) (int, error) {
			if in == 0 {
				<-gate
			}
			return in, nil
		}, WithQueueSize(1))
		ctx := context.Background()
		first := p.Submit(ctx, 0)  // runs, held at the gate
		queued := p.Submit(ctx, 1) // fills the queue
		done := make(chan *Result[int], 2)
		for i := 2; i < 4; i++ {
			go func() { done <- p.Submit(ctx, i) }() // both wait for room
		}
		synctest.Wait()
		close(gate)
		for _, r := range []*Result[int]{first, queued} {
			if _, err := r.Await(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			select {
			case r := <-done:
				if _, err := r.Await(ctx); err != nil {
					t.Fatal(err)
				}
			case <-time.After(time.Hour):
				t.Fatalf("a Submit still waits for room an hour later; Metrics %+v", p.Metrics())
			}
		}
		p.Close()
	})
}

// TestRunningCountsAForkJoinChildRunInPlace: a fork–join child that Submit
// runs in the calling handler (queue full) is a handler running now, and
// Metrics counts it in Running (it used to count it nowhere).
func TestRunningCountsAForkJoinChildRunInPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bg := context.Background()
		started := make(chan int, 4)
		gate := make(chan struct{})
		var p *Pool[int, int]
		p = New(1, func(ctx context.Context, in int) (int, error) {
			switch in {
			case 0: // parent: fill the queue of one, then run child 2 in place
				r1 := p.Submit(ctx, 1)
				r2 := p.Submit(ctx, 2)
				_, err1 := r1.Await(ctx)
				_, err2 := r2.Await(ctx)
				return 0, errors.Join(err1, err2)
			case 2:
				started <- in
				<-gate
			}
			return in, nil
		}, WithQueueSize(1))
		r := p.Submit(bg, 0)
		<-started // child 2 runs in the parent's goroutine
		m := p.Metrics()
		inFlight := int64(m.Submitted - m.Succeeded - m.Failed - m.Canceled)
		// Two handlers run (parent 0, child 2); child 1 is queued.
		if m.Running != 2 || m.Running+m.Queued != inFlight {
			t.Errorf("child run in place: Submitted %d, ended %d, Running %d, Queued %d; want Running 2 and Running+Queued = %d in flight",
				m.Submitted, m.Submitted-uint64(inFlight), m.Running, m.Queued, inFlight)
		}
		close(gate)
		if _, err := r.Await(bg); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRunningCountsAnAwaitedRetryRunInPlace: a retry of an awaited nested
// job runs in the timer's goroutine (requeue), and counts in Running while
// its handler runs (Metrics used to show an idle-looking pool, Running 0
// and Queued 0, with a job in flight).
func TestRunningCountsAnAwaitedRetryRunInPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bg := context.Background()
		out := make(chan *Result[int], 1)
		started := make(chan struct{})
		gate := make(chan struct{})
		attempts := 0
		var p *Pool[int, int]
		p = New(1, func(ctx context.Context, in int) (int, error) {
			if in == 0 { // parent: a child that outlives it, as the Handler doc says
				out <- p.Submit(context.WithoutCancel(ctx), 1,
					Policy{MaxAttempts: 2, Backoff: Constant(time.Second)})
				return 0, nil
			}
			attempts++
			if attempts == 1 {
				return 0, errors.New("transient")
			}
			close(started)
			<-gate
			return 1, nil
		})
		parent := p.Submit(bg, 0)
		child := <-out
		synctest.Wait() // the child's first attempt failed: it is in backoff
		done := make(chan error)
		go func() { _, err := child.Await(bg); done <- err }()
		<-started // the retry runs in the backoff timer's goroutine
		m := p.Metrics()
		if m.Running != 1 {
			t.Errorf("retry running in place: Running %d, Queued %d, Submitted %d, ended %d; want Running 1",
				m.Running, m.Queued, m.Submitted, m.Succeeded+m.Failed+m.Canceled)
		}
		close(gate)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, err := parent.Await(bg); err != nil {
			t.Fatalf("parent: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestShutdownOfAPausedPoolWhoseJobsAllEndedReturns: every accepted job of
// a paused pool has ended (cancelled while queued), so a graceful Shutdown
// returns and Queued is 0, with no worker to discard the stale entry
// (Shutdown used to wait for a worker for ever).
func TestShutdownOfAPausedPoolWhoseJobsAllEndedReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bg := context.Background()
		p := New(1, func(ctx context.Context, in int) (int, error) { return in, nil })
		p.Resize(0)
		r := p.Submit(bg, 1)
		r.Cancel()
		if _, err := r.Await(bg); !errors.Is(err, context.Canceled) {
			t.Fatalf("Await = %v, want Canceled", err)
		}
		ctx, cancel := context.WithTimeout(bg, time.Hour)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown with every accepted job ended = %v, want nil", err)
		}
		if m := p.Metrics(); m.Queued != 0 {
			t.Errorf("after Shutdown: Queued %d, want 0", m.Queued)
		}
	})
}

// TestCloseDuringAGiveUpWaitsUntilTheDroppedJobsAreCounted: Shutdown's
// give-up takes the queued jobs out of the queue before it ends and counts
// them. A concurrent Close must not return nil meanwhile (it did, with
// accepted jobs neither counted nor completed).
func TestCloseDuringAGiveUpWaitsUntilTheDroppedJobsAreCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := New(1, func(ctx context.Context, in int) (int, error) { return in, nil })
		p.Resize(0) // paused: the jobs stay queued
		synctest.Wait()
		r1 := p.Submit(context.Background(), 1)
		r2 := p.Submit(context.Background(), 2)
		release := make(chan struct{})
		// A completion hook (as Then installs) that takes a while.
		r1.onDone(func() { <-release })

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		gaveUp := make(chan error, 1)
		go func() { gaveUp <- p.Shutdown(ctx) }()
		synctest.Wait() // abandon is dropping r1, its hook blocked

		closed := make(chan error, 1)
		go func() { closed <- p.Close() }()
		synctest.Wait()
		select {
		case err := <-closed:
			m := p.Metrics()
			if err == nil && m.Submitted != m.Succeeded+m.Failed+m.Canceled {
				t.Errorf("Close returned nil with jobs uncounted: %+v (r2 done: %v)", m, r2.isDone())
			}
		default:
		}
		close(release)
		if err := <-gaveUp; !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown past its deadline = %v, want context.Canceled", err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestMapperLayout pins where a Map stream's inline slots lie: workers
// write them as items complete, so they start on a cache line of the
// mapper as allocated (its size class starts objects on lines, and the
// heap puts an 8-byte header before an object this large with pointers),
// and a line of padding keeps the feeder's fields, which follow, off the
// last slot's line.
func TestMapperLayout(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is pinned for 64-bit platforms")
	}
	const line = 64
	var m mapper[int, int]
	if size := unsafe.Sizeof(m.first[0]); size != line {
		t.Errorf("mapSlot[int] takes %d bytes, want %d", size, line)
	}
	end := unsafe.Offsetof(m.first) + unsafe.Sizeof(m.first)
	if gap := unsafe.Offsetof(m.in) - end; gap < line {
		t.Errorf("the feeder's fields start %d bytes after the inline slots, want a line or more", gap)
	}
	// Its size class, 1792 bytes (28 lines) with the header, starts
	// every mapper on a line.
	if size := unsafe.Sizeof(m); size > 1792-8 {
		t.Errorf("mapper[int, int] takes %d bytes, more than the size class of 1792 holds with its header", size)
	}
	p := New(1, double)
	defer p.Close()
	for range 8 {
		m := newMapper(context.Background(), Stage[int, int](p), mapConfig{window: DefaultInFlight}, nil)
		if a := uintptr(unsafe.Pointer(&m.first)) % line; a != 0 {
			t.Errorf("an allocated mapper's first slot is %d bytes into a line", a)
		}
		m.stream.Close()
	}
}
