package jobq_test

import (
	"context"
	"errors"
	"expvar"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/seed-bb9ff1e7/jobq"
)

// A Group waits for its own jobs only and returns the first error, as
// errgroup does; the pool goes on serving other callers.
func ExamplePool_Group() {
	p := jobq.New(4, func(_ context.Context, word string) (int, error) {
		if word == "" {
			return 0, errors.New("empty word")
		}
		return len(word), nil
	})
	defer p.Close()

	g := p.Group(context.Background())
	var rs []*jobq.Result[int]
	for _, w := range []string{"a", "bb", "ccc"} {
		rs = append(rs, g.Submit(w))
	}
	if err := g.Wait(); err != nil {
		fmt.Println("Wait:", err)
		return
	}
	for _, r := range rs {
		n, _ := r.Await(context.Background()) // done: Wait has returned
		fmt.Println(n)
	}

	bad := p.Group(context.Background())
	bad.Go("ok")
	bad.Go("")
	fmt.Println("Wait:", bad.Wait())
	// Output:
	// 1
	// 2
	// 3
	// Wait: empty word
}

// With CancelOnError the group's first error cancels its other jobs: the
// running one sees its ctx cancelled, the queued one never runs, and Wait
// returns the error that started it, not their cancellations.
func ExampleCancelOnError() {
	submitted := make(chan struct{})
	p := jobq.New(2, func(ctx context.Context, name string) (string, error) {
		if name == "bad" {
			<-submitted // fails once every job of the example is in
			return "", errors.New("bad input")
		}
		<-ctx.Done() // a long job that honours its ctx
		return "", ctx.Err()
	})
	defer p.Close()

	g := p.Group(context.Background(), jobq.CancelOnError())
	slow := g.Submit("slow")
	g.Go("bad")
	queued := g.Submit("queued") // both workers are busy: it waits in the queue
	close(submitted)
	fmt.Println("Wait:", g.Wait())
	_, err := slow.Await(context.Background())
	fmt.Println("slow:", err)
	_, err = queued.Await(context.Background())
	fmt.Println("queued:", err)
	m := p.Metrics()
	fmt.Println("failed:", m.Failed, "canceled:", m.Canceled)
	// Output:
	// Wait: bad input
	// slow: context canceled
	// queued: context canceled
	// failed: 1 canceled: 2
}

// TryGo never waits: with the worker busy and the queue full it refuses at
// once, where Go would wait for room.
func ExamplePool_TryGo() {
	started, gate := make(chan struct{}), make(chan struct{})
	p := jobq.New(1, func(_ context.Context, n int) (struct{}, error) {
		if n == 1 {
			close(started)
			<-gate
		}
		return struct{}{}, nil
	}, jobq.WithQueueSize(1))

	ctx := context.Background()
	p.Go(ctx, 1) // the worker takes it
	<-started
	p.Go(ctx, 2) // fills the queue
	err := p.TryGo(ctx, 3)
	fmt.Println(err, errors.Is(err, jobq.ErrQueueFull))
	close(gate)
	p.Close()
	m := p.Metrics()
	fmt.Println("succeeded:", m.Succeeded, "rejected:", m.Rejected)
	// Output:
	// jobq: queue full true
	// succeeded: 2 rejected: 1
}

// Attempt tells a handler which attempt it is, for logging or idempotency
// keys; outside a handler it is 0.
func ExampleAttempt() {
	p := jobq.New(1, func(ctx context.Context, key string) (string, error) {
		n := jobq.Attempt(ctx)
		fmt.Println("attempt", n)
		if n < 3 {
			return "", errors.New("try again")
		}
		return fmt.Sprintf("%s-%d", key, n), nil
	})
	defer p.Close()

	pol := jobq.Policy{MaxAttempts: 3, Backoff: jobq.Constant(time.Millisecond)}
	v, err := p.Submit(context.Background(), "order-42", pol).Await(context.Background())
	fmt.Println(v, err)
	fmt.Println("outside a handler:", jobq.Attempt(context.Background()))
	// Output:
	// attempt 1
	// attempt 2
	// attempt 3
	// order-42-3 <nil>
	// outside a handler: 0
}

// Retry applies a Policy to one function in the caller's goroutine, no
// pool needed: the same backoff, RetryIf, Permanent and errors as a pool's
// job.
func ExampleRetry() {
	calls := 0
	fetch := func(ctx context.Context) (string, error) {
		calls++
		if calls < 3 {
			return "", fmt.Errorf("503 on call %d", calls)
		}
		return "payload", nil
	}
	pol := jobq.Policy{
		MaxAttempts: 5,
		Backoff:     jobq.Constant(10 * time.Millisecond),
		Timeout:     time.Second, // per attempt
		OnRetry: func(attempt int, err error, delay time.Duration) {
			fmt.Printf("attempt %d: %v; retrying in %v\n", attempt, err, delay)
		},
	}
	v, err := jobq.Retry(context.Background(), pol, fetch)
	fmt.Println(v, err)

	_, err = jobq.Retry(context.Background(), jobq.Policy{MaxAttempts: 2}, func(context.Context) (int, error) {
		return 0, errors.New("down")
	})
	var ee *jobq.ExhaustedError
	fmt.Println(err, errors.As(err, &ee) && len(ee.Errs) == 2)

	_, err = jobq.Retry(context.Background(), pol, func(context.Context) (int, error) {
		return 0, jobq.Permanent(errors.New("404: not retried"))
	})
	fmt.Println(err)
	// Output:
	// attempt 1: 503 on call 1; retrying in 10ms
	// attempt 2: 503 on call 2; retrying in 10ms
	// payload <nil>
	// jobq: gave up after 2 attempts: down true
	// 404: not retried
}

// An observer wired to log/slog: every job's end is logged, a
// fire-and-forget job's panic included, with its stack at hand. (The
// handler here drops the time so that the output is stable; a real one
// would also log e.Queued and e.Running.)
func ExampleWithObserver() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
	observe := func(e jobq.End) {
		if e.Err == nil {
			logger.Info("job ended", "outcome", e.Outcome, "attempts", e.Attempts)
			return
		}
		var pe *jobq.PanicError
		logger.Error("job ended", "outcome", e.Outcome, "attempts", e.Attempts, "err", e.Err,
			"stack", errors.As(e.Err, &pe) && len(pe.Stack) > 0)
	}
	p := jobq.New(1, func(_ context.Context, n int) (int, error) {
		if n < 0 {
			panic("negative input")
		}
		if n == 0 {
			return 0, errors.New("zero")
		}
		return n, nil
	}, jobq.WithObserver(observe))

	ctx := context.Background()
	p.Go(ctx, 1)
	p.Go(ctx, -1)
	p.Go(ctx, 0, jobq.Policy{MaxAttempts: 2, Backoff: jobq.Constant(time.Millisecond)})
	p.Close() // once Close returns, the observer has seen every end
	// Output:
	// level=INFO msg="job ended" outcome=succeeded attempts=1
	// level=ERROR msg="job ended" outcome=failed attempts=1 err="jobq: handler panicked: negative input" stack=true
	// level=ERROR msg="job ended" outcome=failed attempts=2 err="jobq: gave up after 2 attempts: zero" stack=false
}

// exampleEnds is published once per process, as expvar requires.
var exampleEnds = expvar.NewMap("jobq_example_ends")

// An observer feeding expvar counters, published at /debug/vars by any
// program that serves expvar's handler. Prometheus or OpenTelemetry
// counters are fed the same way, from the same End.
func ExampleWithObserver_expvar() {
	ends := exampleEnds.Init() // a program publishes it once, at init
	attempts := new(expvar.Int)
	ends.Set("attempts", attempts)
	p := jobq.New(2, func(_ context.Context, s string) (int, error) {
		if s == "" {
			return 0, errors.New("empty")
		}
		return len(s), nil
	}, jobq.WithObserver(func(e jobq.End) {
		ends.Add(e.Outcome.String(), 1)
		attempts.Add(int64(e.Attempts))
	}))
	for _, s := range strings.Fields("a bb ccc") {
		p.Go(context.Background(), s)
	}
	p.Go(context.Background(), "")
	p.Close()
	fmt.Println(ends)
	// Output:
	// {"attempts": 4, "failed": 1, "succeeded": 3}
}

// FullJitter and EqualJitter are plain functions of type Jitter: pass
// them as values, call them, or wrap them.
func ExampleFullJitter() {
	var j jobq.Jitter = jobq.FullJitter
	fmt.Println(j(time.Second, 0), j(time.Second, 0.25), j(time.Second, 0.999))
	fmt.Println(jobq.EqualJitter(time.Second, 0), jobq.EqualJitter(time.Second, 0.5))

	capped := func(d time.Duration, r float64) time.Duration {
		return min(jobq.FullJitter(d, r), 300*time.Millisecond)
	}
	fmt.Println(jobq.Jitter(capped)(time.Second, 0.5))

	pol := jobq.Policy{MaxAttempts: 4, Backoff: jobq.Exponential(100*time.Millisecond, time.Second), Jitter: jobq.FullJitter}
	fmt.Println(pol.Jitter != nil)
	// Output:
	// 0s 250ms 999ms
	// 500ms 750ms
	// 300ms
	// true
}
