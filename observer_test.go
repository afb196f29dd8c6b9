package jobq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
)

// endView is the part of an End that the observer tests compare whole.
type endView struct {
	Outcome  Outcome
	Err      string
	Attempts int
}

// viewsOf returns the views of ends, sorted so that the order in which
// concurrent jobs ended does not matter.
func viewsOf(ends []End) []endView {
	vs := make([]endView, 0, len(ends))
	for _, e := range ends {
		v := endView{Outcome: e.Outcome, Attempts: e.Attempts}
		if e.Err != nil {
			v.Err = e.Err.Error()
		}
		vs = append(vs, v)
	}
	slices.SortFunc(vs, func(a, b endView) int {
		return cmp.Or(cmp.Compare(a.Outcome, b.Outcome), cmp.Compare(a.Err, b.Err), cmp.Compare(a.Attempts, b.Attempts))
	})
	return vs
}

// Inputs of observedHandler, by what the handler does with them.
const (
	inFail     = -1 // returns errObserved
	inPanic    = -2 // panics with "kaboom"
	inBlock    = -3 // announces itself on started and returns ctx.Err() once ctx ends
	inThird    = -4 // fails until its third attempt
	inAlways   = -5 // fails every attempt
	inOverTime = -6 // ignores its ctx and runs for a minute
)

var errObserved = errors.New("observed failure")

// observedHandler does what its input says (see inFail and the rest);
// any other input n it returns.
func observedHandler(started chan<- int) Handler[int, int] {
	return func(ctx context.Context, n int) (int, error) {
		switch n {
		case inFail:
			return 0, errObserved
		case inPanic:
			panic("kaboom")
		case inBlock:
			started <- n
			<-ctx.Done()
			return 0, ctx.Err()
		case inThird:
			if k := Attempt(ctx); k < 3 {
				return 0, fmt.Errorf("attempt %d failed", k)
			}
			return 3, nil
		case inAlways:
			return 0, fmt.Errorf("attempt %d failed", Attempt(ctx))
		case inOverTime:
			time.Sleep(time.Minute)
			return n, nil
		}
		return n, nil
	}
}

func TestObserverSeesEveryJobOnceWithItsOutcome(t *testing.T) {
	retry3 := Policy{MaxAttempts: 3, Backoff: Constant(0)}
	bg := context.Background()
	panicked := endView{Failed, "jobq: handler panicked: kaboom", 1}
	tests := []struct {
		name string
		opts []Option
		// run submits the jobs; the test then closes the pool.
		run       func(t *testing.T, p *Pool[int, int], started <-chan int)
		want      []endView
		fakeClock bool // run under synctest
	}{
		{
			name: "Submit succeeds",
			run:  func(t *testing.T, p *Pool[int, int], _ <-chan int) { p.Submit(bg, 7) },
			want: []endView{{Succeeded, "", 1}},
		},
		{
			name: "Go succeeds",
			run:  func(t *testing.T, p *Pool[int, int], _ <-chan int) { p.Go(bg, 7) },
			want: []endView{{Succeeded, "", 1}},
		},
		{
			name: "handler error",
			run: func(t *testing.T, p *Pool[int, int], _ <-chan int) {
				p.Submit(bg, inFail)
				p.Go(bg, inFail)
			},
			want: []endView{{Failed, errObserved.Error(), 1}, {Failed, errObserved.Error(), 1}},
		},
		{
			name: "Go job panics",
			run:  func(t *testing.T, p *Pool[int, int], _ <-chan int) { p.Go(bg, inPanic) },
			want: []endView{panicked},
		},
		{
			name: "Go job with a ctx of its own panics",
			run: func(t *testing.T, p *Pool[int, int], _ <-chan int) {
				ctx, cancel := context.WithCancel(bg)
				t.Cleanup(cancel)
				p.Go(ctx, inPanic)
			},
			want: []endView{panicked},
		},
		{
			name: "Go job with a Timeout panics",
			run: func(t *testing.T, p *Pool[int, int], _ <-chan int) {
				p.Go(bg, inPanic, Policy{Timeout: time.Hour})
			},
			want: []endView{panicked},
		},
		{
			name: "retries until success",
			run: func(t *testing.T, p *Pool[int, int], _ <-chan int) {
				p.Submit(bg, inThird, retry3)
				p.Go(bg, inThird, retry3)
			},
			want: []endView{{Succeeded, "", 3}, {Succeeded, "", 3}},
		},
		{
			name: "Go job held by value retries under the pool policy",
			opts: []Option{WithPolicy(retry3)},
			run:  func(t *testing.T, p *Pool[int, int], _ <-chan int) { p.Go(bg, inThird) },
			want: []endView{{Succeeded, "", 3}},
		},
		{
			name: "retries exhausted",
			run: func(t *testing.T, p *Pool[int, int], _ <-chan int) {
				p.Submit(bg, inAlways, Policy{MaxAttempts: 2})
				p.Go(bg, inAlways, Policy{MaxAttempts: 2})
			},
			want: []endView{
				{Failed, "jobq: gave up after 2 attempts: attempt 2 failed", 2},
				{Failed, "jobq: gave up after 2 attempts: attempt 2 failed", 2},
			},
		},
		{
			name: "timeout",
			run: func(t *testing.T, p *Pool[int, int], _ <-chan int) {
				p.Go(bg, inOverTime, Policy{Timeout: time.Second})
			},
			want:      []endView{{Failed, context.DeadlineExceeded.Error(), 1}},
			fakeClock: true,
		},
		{
			name: "Cancel of a running and of a queued job",
			run: func(t *testing.T, p *Pool[int, int], started <-chan int) {
				running := p.Submit(bg, inBlock)
				<-started
				queued := p.Submit(bg, 1)
				queued.Cancel()
				running.Cancel()
			},
			want: []endView{{Canceled, context.Canceled.Error(), 0}, {Canceled, context.Canceled.Error(), 1}},
		},
		{
			name: "queued job whose ctx ends",
			run: func(t *testing.T, p *Pool[int, int], started <-chan int) {
				running := p.Submit(bg, inBlock)
				<-started
				ctx, cancel := context.WithCancel(bg)
				r := p.Submit(ctx, 1)
				gctx, gcancel := context.WithCancel(bg)
				p.Go(gctx, 2)
				cancel()
				gcancel()
				synctest.Wait() // their watches have ended them (see TestObserverSaysNoAttemptForAJobWhoseCtxEndedAsItWasClaimed)
				if !isDone(r) {
					t.Error("the queued job is still open after its ctx ended")
				}
				running.Cancel()
			},
			want: []endView{
				{Canceled, context.Canceled.Error(), 0},
				{Canceled, context.Canceled.Error(), 0},
				{Canceled, context.Canceled.Error(), 1},
			},
			fakeClock: true,
		},
		{
			name: "Shutdown gives up",
			run: func(t *testing.T, p *Pool[int, int], started <-chan int) {
				retrying := make(chan struct{})
				inBackoff := p.Submit(bg, inFail, Policy{MaxAttempts: 2, Backoff: Constant(time.Hour),
					OnRetry: func(int, error, time.Duration) { close(retrying) }})
				<-retrying // it waits an hour before its retry
				running := p.Submit(bg, inBlock)
				<-started
				queued := p.Submit(bg, 1)
				p.Go(bg, 2)
				ctx, cancel := context.WithCancel(bg)
				cancel()
				if err := p.Shutdown(ctx); err != context.Canceled {
					t.Errorf("Shutdown(done ctx) = %v, want context.Canceled", err)
				}
				for _, r := range []*Result[int]{running, queued, inBackoff} {
					<-r.Done()
				}
			},
			want: []endView{
				{Canceled, ErrClosed.Error(), 0},
				{Canceled, ErrClosed.Error(), 0},
				{Canceled, ErrClosed.Error(), 1}, // the job in backoff: one attempt made
				{Canceled, ErrClosed.Error(), 1},
			},
		},
		{
			name: "Map's items",
			run: func(t *testing.T, p *Pool[int, int], _ <-chan int) {
				for _, err := range Map(bg, p, slices.Values([]int{1, 2, inFail, 3})) {
					if err != nil && !errors.Is(err, errObserved) {
						t.Errorf("Map item: %v", err)
					}
				}
			},
			want: []endView{{Succeeded, "", 1}, {Succeeded, "", 1}, {Succeeded, "", 1}, {Failed, errObserved.Error(), 1}},
		},
		{
			name: "Map's items with a Timeout",
			run: func(t *testing.T, p *Pool[int, int], _ <-chan int) {
				for range Map(bg, p, slices.Values([]int{1, inFail})) {
				}
			},
			opts: []Option{WithPolicy(Policy{Timeout: time.Hour})},
			want: []endView{{Succeeded, "", 1}, {Failed, errObserved.Error(), 1}},
		},
		{
			name: "Group's jobs",
			run: func(t *testing.T, p *Pool[int, int], _ <-chan int) {
				g := p.Group(bg)
				g.Go(1)
				g.Submit(inFail)
				g.Wait()
			},
			want: []endView{{Succeeded, "", 1}, {Failed, errObserved.Error(), 1}},
		},
		{
			name: "refused submissions are not jobs",
			opts: []Option{WithQueueSize(1)},
			run: func(t *testing.T, p *Pool[int, int], started <-chan int) {
				running := p.Submit(bg, inBlock)
				<-started
				p.Go(bg, 1) // fills the queue
				if err := p.TryGo(bg, 2); !errors.Is(err, ErrQueueFull) {
					t.Errorf("TryGo = %v, want ErrQueueFull", err)
				}
				p.Submit(bg, 3, Policy{MaxAttempts: -1})
				running.Cancel()
			},
			want: []endView{{Succeeded, "", 1}, {Canceled, context.Canceled.Error(), 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			body := func(t *testing.T) {
				var log endLog
				started := make(chan int, 8)
				p := New(1, observedHandler(started), append(tt.opts, WithObserver(log.observe))...)
				tt.run(t, p, started)
				if err := p.Close(); err != nil {
					t.Fatal(err)
				}
				checkObserved(t, p.Metrics(), log.all(), tt.want)
			}
			if tt.fakeClock {
				synctest.Test(t, body)
			} else {
				body(t)
			}
		})
	}
}

// checkObserved checks the ends an observer saw once Close returned
// against want and m.
func checkObserved(t *testing.T, m Metrics, ends []End, want []endView) {
	t.Helper()
	if diff := gocmp.Diff(want, viewsOf(ends)); diff != "" {
		t.Errorf("ends observed once Close returned (-want +got):\n%s", diff)
	}
	if n := m.Succeeded + m.Failed + m.Canceled; uint64(len(ends)) != n || m.Submitted != n {
		t.Errorf("observer saw %d ends; Metrics %+v", len(ends), m)
	}
	for _, e := range ends {
		if (e.Outcome == Succeeded) != (e.Err == nil) {
			t.Errorf("end %+v: Outcome and Err disagree", e)
		}
		if e.Queued < 0 || e.Running < 0 {
			t.Errorf("end %+v: negative duration", e)
		}
		var pe *PanicError
		if errors.As(e.Err, &pe) {
			if pe.Value != "kaboom" {
				t.Errorf("PanicError value %v, want kaboom", pe.Value)
			}
			if !strings.Contains(string(pe.Stack), "observedHandler") {
				t.Errorf("PanicError's stack does not name the panicking handler:\n%s", pe.Stack)
			}
		}
		var ee *ExhaustedError
		if errors.As(e.Err, &ee) && (ee.Attempts != e.Attempts || len(ee.Errs) != e.Attempts) {
			t.Errorf("end %+v: ExhaustedError holds %d attempts, %d errors", e, ee.Attempts, len(ee.Errs))
		}
	}
}

func TestObserverSeesEveryTaskOfTheSeedAPI(t *testing.T) {
	checkNoLeak(t)
	var log endLog
	q := NewPool(1, WithObserver(log.observe))
	tasks := []func(context.Context) error{
		func(context.Context) error { return nil },
		func(context.Context) error { return errObserved },
		func(context.Context) error { panic("kaboom") },
	}
	for _, task := range tasks {
		if err := q.EnQueueTask(task); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.EnQueueTask(func(context.Context) error { return errObserved }, Policy{MaxAttempts: 2}); err != nil {
		t.Fatal(err)
	}
	q.Release()
	want := []endView{
		{Succeeded, "", 1},
		{Failed, "jobq: gave up after 2 attempts: observed failure", 2},
		{Failed, "jobq: handler panicked: kaboom", 1},
		{Failed, errObserved.Error(), 1},
	}
	if diff := gocmp.Diff(want, viewsOf(log.all())); diff != "" {
		t.Errorf("ends observed once Release returned (-want +got):\n%s", diff)
	}
}

func TestObserverWithFnMessages(t *testing.T) {
	checkNoLeak(t)
	var log endLog
	q := NewPool(1, WithObserver(log.observe), WithFn(func(_ context.Context, m TaskMessage) error {
		if string(m.Payload()) == "bad" {
			return errObserved
		}
		return nil
	}))
	for _, s := range []string{"good", "bad"} {
		if err := q.EnQueue(rawMessage(s)); err != nil {
			t.Fatal(err)
		}
	}
	q.Release()
	want := []endView{{Succeeded, "", 1}, {Failed, errObserved.Error(), 1}}
	if diff := gocmp.Diff(want, viewsOf(log.all())); diff != "" {
		t.Errorf("ends observed (-want +got):\n%s", diff)
	}
}

type rawMessage string

func (m rawMessage) Bytes() []byte { return []byte(m) }

// TestObserverTimesQueuedAndRunning checks the durations on synctest's
// fake clock, where they are exact: job 2 waits 1s in the queue behind
// job 1, which runs 1s, and then runs 2s itself.
func TestObserverTimesQueuedAndRunning(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		var log endLog
		p := New(1, func(_ context.Context, d time.Duration) (int, error) {
			time.Sleep(d) // the fake clock: this is the work being timed
			return 0, nil
		}, WithObserver(log.observe))
		time.Sleep(time.Millisecond) // the jobs start off the pool's epoch (see TestObserverTimesAJobStartedAtThePoolsCreation)
		first := p.Submit(context.Background(), time.Second)
		second := p.Submit(context.Background(), 2*time.Second)
		<-first.Done()
		<-second.Done()
		p.Close()
		ends := log.all()
		want := []End{
			{Outcome: Succeeded, Attempts: 1, Queued: 0, Running: time.Second},
			{Outcome: Succeeded, Attempts: 1, Queued: time.Second, Running: 2 * time.Second},
		}
		if diff := gocmp.Diff(want, ends); diff != "" {
			t.Errorf("ends (-want +got):\n%s", diff)
		}
	})
}

// TestObserverTimesRetriesAndBackoff: the backoff counts as queued, the
// attempts' run times add up.
func TestObserverTimesRetriesAndBackoff(t *testing.T) {
	checkNoLeak(t)
	for _, via := range []string{"Submit", "Go"} {
		t.Run(via, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var log endLog
				p := New(1, func(ctx context.Context, _ int) (int, error) {
					time.Sleep(time.Second)
					if Attempt(ctx) < 3 {
						return 0, errObserved
					}
					return 0, nil
				}, WithObserver(log.observe), WithPolicy(Policy{MaxAttempts: 3, Backoff: Constant(5 * time.Second)}))
				time.Sleep(time.Millisecond)
				if via == "Submit" {
					p.Submit(context.Background(), 0)
				} else {
					p.Go(context.Background(), 0)
				}
				p.Close()
				want := []End{{Outcome: Succeeded, Attempts: 3, Queued: 10 * time.Second, Running: 3 * time.Second}}
				if diff := gocmp.Diff(want, log.all()); diff != "" {
					t.Errorf("ends (-want +got):\n%s", diff)
				}
			})
		})
	}
}

// TestObserverTimesAJobStartedAtThePoolsCreation: under synctest the
// clock does not move between New and the first attempt.
func TestObserverTimesAJobStartedAtThePoolsCreation(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		var log endLog
		p := New(1, func(_ context.Context, d time.Duration) (int, error) {
			time.Sleep(d)
			return 0, nil
		}, WithObserver(log.observe))
		p.Submit(context.Background(), time.Second)
		p.Go(context.Background(), 2*time.Second)
		p.Close()
		want := []End{
			{Outcome: Succeeded, Attempts: 1, Queued: 0, Running: time.Second},
			{Outcome: Succeeded, Attempts: 1, Queued: time.Second, Running: 2 * time.Second},
		}
		if diff := gocmp.Diff(want, log.all()); diff != "" {
			t.Errorf("ends (-want +got):\n%s", diff)
		}
	})
}

// TestObserverCountsTheAttemptOfAGoJobThatFailsAtOnce: a Go job held by
// value that fails without the clock moving (synctest) made one attempt.
func TestObserverCountsTheAttemptOfAGoJobThatFailsAtOnce(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		var log endLog
		p := New(1, observedHandler(nil), WithObserver(log.observe))
		time.Sleep(time.Millisecond)
		p.Go(context.Background(), inFail)
		p.Go(context.Background(), inPanic)
		p.Close()
		want := []endView{{Failed, "jobq: handler panicked: kaboom", 1}, {Failed, errObserved.Error(), 1}}
		if diff := gocmp.Diff(want, viewsOf(log.all())); diff != "" {
			t.Errorf("ends (-want +got):\n%s", diff)
		}
	})
}

func TestWithObserverNilPanics(t *testing.T) {
	mustPanic(t, "WithObserver", func() { WithObserver(nil) })
	mustPanic(t, "f must not be nil", func() { WithObserver(nil) })
}

func TestOutcomeString(t *testing.T) {
	got := []string{Succeeded.String(), Failed.String(), Canceled.String(), Outcome(9).String()}
	want := []string{"succeeded", "failed", "canceled", "Outcome(9)"}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("Outcome names (-want +got):\n%s", diff)
	}
}

// TestObserverSaysNoAttemptForAJobWhoseCtxEndedAsItWasClaimed: a queued
// job whose ctx ends as a worker claims it never runs, and its end says
// it made no attempt, as one ended by its ctx's watch does.
func TestObserverSaysNoAttemptForAJobWhoseCtxEndedAsItWasClaimed(t *testing.T) {
	checkNoLeak(t)
	var log endLog
	gate := make(chan struct{})
	started := make(chan struct{})
	var calls atomic.Int32
	p := New(1, func(_ context.Context, n int) (int, error) {
		if n == 0 {
			started <- struct{}{}
			<-gate
			return 0, nil
		}
		calls.Add(1)
		return n, nil
	}, WithObserver(log.observe))
	defer p.Close()
	const rounds = 200
	for range rounds {
		running := p.Submit(context.Background(), 0)
		<-started
		ctx, cancel := context.WithCancel(context.Background())
		r := p.Submit(ctx, 1)
		cancel()           // its watch ends it, or the worker's claim finds its ctx done:
		gate <- struct{}{} // the race this test runs
		<-running.Done()
		<-r.Done()
	}
	p.Close()
	if n := calls.Load(); n != 0 {
		t.Fatalf("jobs whose ctx ended before they ran ran %d times", n)
	}
	var bad []End
	for _, e := range log.all() {
		if e.Outcome == Canceled && e.Attempts != 0 {
			bad = append(bad, e)
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d jobs that never ran were observed with Attempts > 0: %+v", len(bad), rounds, bad[0])
	}
}
