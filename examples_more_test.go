package jobq_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing/fstest"
	"time"

	"github.com/seed-bb9ff1e7/jobq"
)

// The typed pool.

// A handler may submit to its own pool and await the result: here each
// directory's job sizes its subdirectories in the same pool. Submitting with
// the handler's ctx is what makes this safe: it cannot deadlock, even with
// every worker busy and the queue full.
func ExamplePool() {
	tree := map[string][]string{
		"/":     {"/usr", "/home"},
		"/usr":  {"/usr/bin", "/usr/lib"},
		"/home": {"/home/ann"},
	}
	files := map[string]int{"/": 1, "/usr/bin": 40, "/usr/lib": 120, "/home": 2, "/home/ann": 17}

	var p *jobq.Pool[string, int]
	p = jobq.New(2, func(ctx context.Context, dir string) (int, error) {
		var subdirs []*jobq.Result[int]
		for _, sub := range tree[dir] {
			subdirs = append(subdirs, p.Submit(ctx, sub))
		}
		counts, err := jobq.AwaitAll(ctx, subdirs...)
		if err != nil {
			return 0, err
		}
		n := files[dir]
		for _, c := range counts {
			n += c
		}
		return n, nil
	}, jobq.WithQueueSize(1))
	defer p.Close()

	ctx := context.Background()
	n, err := p.Submit(ctx, "/").Await(ctx)
	fmt.Println(n, "files", err)
	// Output: 180 files <nil>
}

func ExamplePool_Submit() {
	p := jobq.New(4, func(_ context.Context, line string) (int, error) {
		return len(strings.Fields(line)), nil
	})
	defer p.Close()

	ctx := context.Background()
	lines := []string{"the quick brown fox", "jumps over", "the lazy dog"}
	results := make([]*jobq.Result[int], len(lines))
	for i, line := range lines {
		results[i] = p.Submit(ctx, line) // all three run in parallel
	}
	for i, r := range results {
		n, err := r.Await(ctx)
		fmt.Printf("%q: %d words, err %v\n", lines[i], n, err)
	}
	// Output:
	// "the quick brown fox": 4 words, err <nil>
	// "jumps over": 2 words, err <nil>
	// "the lazy dog": 3 words, err <nil>
}

func ExamplePool_Resize() {
	p := jobq.New(4, func(_ context.Context, n int) (int, error) { return n * n, nil })
	defer p.Close()

	p.Resize(0) // pause: jobs queue up, nothing runs
	ctx := context.Background()
	var rs []*jobq.Result[int]
	for n := range 5 {
		rs = append(rs, p.Submit(ctx, n))
	}
	fmt.Println("workers:", p.Workers(), "queued:", p.Metrics().Queued)

	p.Resize(2) // resume with two workers
	squares, err := jobq.AwaitAll(ctx, rs...)
	fmt.Println("workers:", p.Workers(), "squares:", squares, err)
	// Output:
	// workers: 0 queued: 5
	// workers: 2 squares: [0 1 4 9 16] <nil>
}

func ExamplePool_Workers() {
	p := jobq.New(2, func(_ context.Context, s string) (string, error) { return s, nil })
	defer p.Close()
	fmt.Println("sized to", p.Workers())

	p.Resize(8) // a burst is coming: the new workers start at once
	fmt.Println("sized to", p.Workers(), "- alive:", p.Metrics().Workers)

	p.Resize(1) // busy workers retire as their jobs end; Workers is the target
	fmt.Println("sized to", p.Workers())
	// Output:
	// sized to 2
	// sized to 8 - alive: 8
	// sized to 1
}

func ExamplePool_Close() {
	// One worker runs the jobs in the order they were queued.
	p := jobq.New(1, func(_ context.Context, to string) (struct{}, error) {
		fmt.Println("mail sent to", to)
		return struct{}{}, nil
	})
	ctx := context.Background()
	for _, to := range []string{"ann", "bob", "cy"} {
		if err := p.Go(ctx, to); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println("Close:", p.Close()) // returns once all three are sent
	fmt.Println("Go after Close:", p.Go(ctx, "dee"))
	// Output:
	// mail sent to ann
	// mail sent to bob
	// mail sent to cy
	// Close: <nil>
	// Go after Close: jobq: pool closed
}

// A Handler is a plain function: name it to test it on its own, and read the
// submission ctx's values in it.
func ExampleHandler() {
	type requestIDKey struct{}
	var thumbnail jobq.Handler[string, string] = func(ctx context.Context, image string) (string, error) {
		id, _ := ctx.Value(requestIDKey{}).(string)
		return fmt.Sprintf("[%s] %s", id, strings.TrimSuffix(image, ".png")+"_thumb.png"), nil
	}

	ctx := context.WithValue(context.Background(), requestIDKey{}, "req-42")
	fmt.Println(thumbnail(ctx, "cat.png")) // called directly

	p := jobq.New(2, thumbnail)
	defer p.Close()
	fmt.Println(p.Submit(ctx, "dog.png").Await(context.Background())) // the job sees ctx's values
	// Output:
	// [req-42] cat_thumb.png <nil>
	// [req-42] dog_thumb.png <nil>
}

// Options are values: collect them from configuration and pass them to New
// (or NewPool) together.
func ExampleOption() {
	cfg := struct{ QueueSize, Retries int }{QueueSize: 64, Retries: 2}

	var opts []jobq.Option
	if cfg.QueueSize > 0 {
		opts = append(opts, jobq.WithQueueSize(cfg.QueueSize))
	}
	if cfg.Retries > 0 {
		opts = append(opts, jobq.WithPolicy(jobq.Policy{
			MaxAttempts: 1 + cfg.Retries,
			Backoff:     jobq.Constant(time.Millisecond),
		}))
	}
	var calls atomic.Int32
	p := jobq.New(2, func(_ context.Context, key string) (string, error) {
		if calls.Add(1) == 1 {
			return "", errors.New("cache miss")
		}
		return "value of " + key, nil
	}, opts...)
	defer p.Close()

	ctx := context.Background()
	r := p.Submit(ctx, "user:7")
	v, err := r.Await(ctx)
	fmt.Println(v, err, "after", r.Attempts(), "attempts")
	// Output: value of user:7 <nil> after 2 attempts
}

func ExampleWithQueueSize() {
	started, release := make(chan struct{}), make(chan struct{})
	p := jobq.New(1, func(_ context.Context, n int) (int, error) {
		if n == 0 {
			close(started)
		}
		<-release
		return n, nil
	}, jobq.WithQueueSize(2)) // without it the bound is jobq.DefaultQueueSize

	ctx := context.Background()
	_ = p.Go(ctx, 0)
	<-started // job 0 holds the only worker; the queue is empty
	for n := 1; n <= 3; n++ {
		fmt.Printf("TryGo(%d): %v\n", n, p.TryGo(ctx, n))
	}
	m := p.Metrics()
	fmt.Println("running:", m.Running, "queued:", m.Queued, "rejected:", m.Rejected)

	close(release)
	p.Close()
	fmt.Println("succeeded:", p.Metrics().Succeeded, "- default bound:", jobq.DefaultQueueSize)
	// Output:
	// TryGo(1): <nil>
	// TryGo(2): <nil>
	// TryGo(3): jobq: queue full
	// running: 1 queued: 2 rejected: 1
	// succeeded: 3 - default bound: 4096
}

// Metrics is a snapshot: gauges (Running, Queued) say what happens now, and
// the counters add up once the pool is idle.
func ExampleMetrics() {
	started, release := make(chan struct{}, 5), make(chan struct{})
	p := jobq.New(2, func(_ context.Context, n int) (int, error) {
		started <- struct{}{}
		<-release
		if n == 4 {
			return 0, errors.New("bad record")
		}
		return n, nil
	})
	ctx := context.Background()
	for n := range 5 {
		_ = p.Go(ctx, n)
	}
	<-started
	<-started // both workers are busy now; three jobs wait
	m := p.Metrics()
	fmt.Printf("now: running %d, queued %d, workers %d\n", m.Running, m.Queued, m.Workers)

	close(release)
	p.Close()
	m = p.Metrics()
	fmt.Printf("done: submitted %d = succeeded %d + failed %d + canceled %d\n",
		m.Submitted, m.Succeeded, m.Failed, m.Canceled)
	// Output:
	// now: running 2, queued 3, workers 2
	// done: submitted 5 = succeeded 4 + failed 1 + canceled 0
}

// A Stage is anything that turns an In into a Result[Out]: a *Pool, or a
// chain of pools built with Then. Code written against Stage takes either.
func ExampleStage() {
	ctx := context.Background()
	totalLen := func(s jobq.Stage[string, int], words ...string) (int, error) {
		var rs []*jobq.Result[int]
		for _, w := range words {
			rs = append(rs, s.Submit(ctx, w))
		}
		lens, err := jobq.AwaitAll(ctx, rs...)
		total := 0
		for _, n := range lens {
			total += n
		}
		return total, err
	}

	length := jobq.New(2, func(_ context.Context, s string) (int, error) { return len(s), nil })
	defer length.Close()
	trim := jobq.New(2, func(_ context.Context, s string) (string, error) { return strings.TrimSpace(s), nil })
	defer trim.Close()

	fmt.Println(totalLen(length, " go ", "jobq"))
	fmt.Println(totalLen(jobq.Then(trim, length), " go ", "jobq"))
	// Output:
	// 8 <nil>
	// 6 <nil>
}

// Results.

// A Result may be awaited by any number of goroutines: here one lookup
// serves three callers.
func ExampleResult() {
	var lookups atomic.Int32
	p := jobq.New(1, func(_ context.Context, host string) (string, error) {
		lookups.Add(1)
		return "192.0.2.7", nil // a DNS lookup, say
	})
	defer p.Close()

	ctx := context.Background()
	r := p.Submit(ctx, "db.internal")
	var wg sync.WaitGroup
	addrs := make([]string, 3)
	for i := range addrs {
		wg.Go(func() { addrs[i], _ = r.Await(ctx) })
	}
	wg.Wait()
	fmt.Println(addrs, "lookups:", lookups.Load())
	// Output: [192.0.2.7 192.0.2.7 192.0.2.7] lookups: 1
}

// Await's ctx bounds the wait only: when it ends first, the job goes on and
// can be awaited again.
func ExampleResult_Await() {
	release := make(chan struct{})
	p := jobq.New(1, func(_ context.Context, quarter string) (string, error) {
		<-release // a slow report
		return "report for " + quarter, nil
	})
	defer p.Close()

	ctx := context.Background()
	r := p.Submit(ctx, "Q3")

	wait, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_, err := r.Await(wait)
	fmt.Println("gave up waiting:", err)

	close(release)
	fmt.Println(r.Await(ctx)) // the job was not stopped
	// Output:
	// gave up waiting: context deadline exceeded
	// report for Q3 <nil>
}

// Done lets a Result take part in a select: here a hedged request takes the
// first mirror to answer and cancels the other.
func ExampleResult_Done() {
	p := jobq.New(2, func(ctx context.Context, mirror string) (string, error) {
		if mirror == "eu" {
			<-ctx.Done() // this mirror hangs until cancelled
			return "", ctx.Err()
		}
		return "payload from " + mirror, nil
	})
	defer p.Close()

	ctx := context.Background()
	eu, us := p.Submit(ctx, "eu"), p.Submit(ctx, "us")
	var first, other *jobq.Result[string]
	select {
	case <-eu.Done():
		first, other = eu, us
	case <-us.Done():
		first, other = us, eu
	}
	other.Cancel()
	fmt.Println(first.Await(ctx))
	_, err := other.Await(ctx)
	fmt.Println("other mirror:", err)
	// Output:
	// payload from us <nil>
	// other mirror: context canceled
}

func ExampleResult_Attempts() {
	var calls atomic.Int32
	p := jobq.New(1, func(_ context.Context, addr string) (string, error) {
		if calls.Add(1) <= 2 {
			return "", errors.New("connection reset")
		}
		return "connected to " + addr, nil
	})
	defer p.Close()

	ctx := context.Background()
	r := p.Submit(ctx, "db-1:5432", jobq.Policy{MaxAttempts: 5, Backoff: jobq.Constant(time.Millisecond)})
	v, err := r.Await(ctx)
	fmt.Println(v, err)
	fmt.Println("attempts:", r.Attempts())
	// Output:
	// connected to db-1:5432 <nil>
	// attempts: 3
}

func ExampleExhaustedError() {
	errRefused := errors.New("connection refused")
	var calls atomic.Int32
	p := jobq.New(1, func(_ context.Context, host string) (string, error) {
		return "", fmt.Errorf("dial %s (try %d): %w", host, calls.Add(1), errRefused)
	})
	defer p.Close()

	ctx := context.Background()
	_, err := p.Submit(ctx, "db.internal", jobq.Policy{MaxAttempts: 3, Backoff: jobq.Constant(time.Millisecond)}).Await(ctx)
	fmt.Println(err)

	var ex *jobq.ExhaustedError
	if errors.As(err, &ex) {
		for _, e := range ex.Errs {
			fmt.Println(" -", e)
		}
	}
	fmt.Println("refused:", errors.Is(err, errRefused)) // errors.Is sees every attempt's error
	// Output:
	// jobq: gave up after 3 attempts: dial db.internal (try 3): connection refused
	//  - dial db.internal (try 1): connection refused
	//  - dial db.internal (try 2): connection refused
	//  - dial db.internal (try 3): connection refused
	// refused: true
}

func ExamplePanicError() {
	p := jobq.New(1, func(_ context.Context, fields []string) (string, error) {
		return fields[2], nil // panics on a short record
	})
	defer p.Close()

	ctx := context.Background()
	_, err := p.Submit(ctx, []string{"ann", "42"}).Await(ctx)
	fmt.Println(err)
	var pe *jobq.PanicError
	if errors.As(err, &pe) {
		fmt.Println("stack captured:", len(pe.Stack) > 0)
	}
	var re runtime.Error
	fmt.Println("runtime error:", errors.As(err, &re)) // Unwrap reaches an error panic value

	// The worker survived: the pool goes on.
	fmt.Println(p.Submit(ctx, []string{"bob", "37", "Lyon"}).Await(ctx))
	// Output:
	// jobq: handler panicked: runtime error: index out of range [2] with length 2
	// stack captured: true
	// runtime error: true
	// Lyon <nil>
}

// Unwrap returns every attempt's error, so errors.Is and errors.As look at
// them all.
func ExampleExhaustedError_Unwrap() {
	// Say the first attempt timed out and the second was refused access.
	err := error(&jobq.ExhaustedError{Attempts: 2, Errs: []error{
		context.DeadlineExceeded,
		&fs.PathError{Op: "open", Path: "/data/in.csv", Err: fs.ErrPermission},
	}})
	fmt.Println("timed out once:", errors.Is(err, context.DeadlineExceeded))
	var pe *fs.PathError
	if errors.As(err, &pe) {
		fmt.Println("path:", pe.Path)
	}
	// Output:
	// timed out once: true
	// path: /data/in.csv
}

// The message names the number of attempts and the last attempt's error.
func ExampleExhaustedError_Error() {
	err := &jobq.ExhaustedError{Attempts: 2, Errs: []error{
		errors.New("503 service unavailable"),
		errors.New("502 bad gateway"),
	}}
	fmt.Println(err)
	// Output: jobq: gave up after 2 attempts: 502 bad gateway
}

// When the handler panics with an error, Unwrap returns it, so errors.Is and
// errors.As reach it; a panic with any other value unwraps to nil.
func ExamplePanicError_Unwrap() {
	p := jobq.New(1, func(_ context.Context, data string) (int, error) {
		if !strings.HasSuffix(data, "}") {
			panic(fmt.Errorf("decode: %w", io.ErrUnexpectedEOF)) // a bug: it should return the error
		}
		return len(data), nil
	})
	defer p.Close()

	ctx := context.Background()
	_, err := p.Submit(ctx, `{"id": 7`).Await(ctx)
	fmt.Println(err)
	fmt.Println("unexpected EOF:", errors.Is(err, io.ErrUnexpectedEOF))
	// Output:
	// jobq: handler panicked: decode: unexpected EOF
	// unexpected EOF: true
}

func ExamplePanicError_Error() {
	fmt.Println(&jobq.PanicError{Value: "assignment to entry in nil map"})
	// Output: jobq: handler panicked: assignment to entry in nil map
}

// ErrQueueFull, ErrClosed and ErrInvalidPolicy are the errors a submission
// can be refused with; compare them with errors.Is.
func Example_errors() {
	p := jobq.New(1, func(_ context.Context, n int) (int, error) { return n, nil }, jobq.WithQueueSize(1))
	p.Resize(0) // pause the pool: jobs stay in the queue
	ctx := context.Background()

	fmt.Println(p.Go(ctx, 1))
	for _, err := range []error{
		p.TryGo(ctx, 2), // the queue holds one job already
		p.Go(ctx, 3, jobq.Policy{MaxAttempts: -1}),
	} {
		switch {
		case errors.Is(err, jobq.ErrQueueFull):
			fmt.Println("full, try later:", err)
		case errors.Is(err, jobq.ErrInvalidPolicy):
			fmt.Println("bug in the caller:", err)
		}
	}

	p.Resize(1)
	p.Close()
	if err := p.Go(ctx, 4); errors.Is(err, jobq.ErrClosed) {
		fmt.Println("shut down:", err)
	}
	// Output:
	// <nil>
	// full, try later: jobq: queue full
	// bug in the caller: jobq: invalid policy: MaxAttempts must be >= 0, got -1
	// shut down: jobq: pool closed
}

// Policies: backoff and jitter. A Backoff or Jitter is a plain function, so
// the delays it gives can be printed; a pool calls them with a random r.

// A custom Backoff: linear, 1ms more before each retry.
func ExampleBackoff() {
	linear := jobq.Backoff(func(n int, _ time.Duration, _ float64) time.Duration {
		return time.Duration(n) * time.Millisecond
	})

	var calls atomic.Int32
	p := jobq.New(1, func(_ context.Context, id int) (int, error) {
		if calls.Add(1) < 3 {
			return 0, errors.New("busy")
		}
		return id, nil
	})
	defer p.Close()

	pol := jobq.Policy{
		MaxAttempts: 5,
		Backoff:     linear,
		OnRetry: func(attempt int, err error, delay time.Duration) {
			fmt.Printf("attempt %d: %v, next in %v\n", attempt, err, delay)
		},
	}
	ctx := context.Background()
	fmt.Println(p.Submit(ctx, 7, pol).Await(ctx))
	// Output:
	// attempt 1: busy, next in 1ms
	// attempt 2: busy, next in 2ms
	// 7 <nil>
}

func ExampleConstant() {
	b := jobq.Constant(250 * time.Millisecond)
	var prev time.Duration
	for n := 1; n <= 3; n++ {
		prev = b(n, prev, 0)
		fmt.Printf("retry %d after %v\n", n, prev)
	}
	// Output:
	// retry 1 after 250ms
	// retry 2 after 250ms
	// retry 3 after 250ms
}

func ExampleExponential() {
	b := jobq.Exponential(100*time.Millisecond, time.Second)
	var delays []time.Duration
	for n := 1; n <= 6; n++ {
		delays = append(delays, b(n, 0, 0))
	}
	fmt.Println(delays)
	fmt.Println(b(1000, 0, 0)) // capped, never overflows
	// Output:
	// [100ms 200ms 400ms 800ms 1s 1s]
	// 1s
}

// Decorrelated randomises itself: each delay is in [base, 3*previous),
// capped at max. Here it is called with fixed values of r to show the
// range: r = 0 gives the lower bound, r = 0.5 the middle of the range.
func ExampleDecorrelated() {
	b := jobq.Decorrelated(10*time.Millisecond, time.Second)
	for _, r := range []float64{0, 0.5} {
		var prev time.Duration
		var delays []time.Duration
		for n := 1; n <= 6; n++ {
			prev = b(n, prev, r)
			delays = append(delays, prev)
		}
		fmt.Printf("r=%v: %v\n", r, delays)
	}
	// Output:
	// r=0: [10ms 10ms 10ms 10ms 10ms 10ms]
	// r=0.5: [20ms 35ms 57.5ms 91.25ms 141.875ms 217.8125ms]
}

// The Jitter functions spread a delay d with a uniform random r in [0, 1),
// which a pool draws for each retry. Called here with fixed values of r, they
// show the range each one covers.
func ExampleJitter() {
	d := time.Second
	quarter := jobq.Proportional(0.25)
	fmt.Println("r     FullJitter  EqualJitter  Proportional(0.25)")
	for _, r := range []float64{0, 0.25, 0.5, 0.75} {
		fmt.Printf("%-4v  %-10v  %-11v  %v\n", r, jobq.FullJitter(d, r), jobq.EqualJitter(d, r), quarter(d, r))
	}
	// Output:
	// r     FullJitter  EqualJitter  Proportional(0.25)
	// 0     0s          500ms        750ms
	// 0.25  250ms       625ms        875ms
	// 0.5   500ms       750ms        1s
	// 0.75  750ms       875ms        1.125s
}

// Proportional(0.25) spreads each delay over ±25%, here [150ms, 250ms) for
// a 200ms backoff, so that many clients failing together do not retry
// together. It is called with fixed values of r to show where they land.
func ExampleProportional() {
	pol := jobq.Policy{
		MaxAttempts: 4,
		Backoff:     jobq.Exponential(200*time.Millisecond, 5*time.Second),
		Jitter:      jobq.Proportional(0.25),
	}
	d := pol.Backoff(1, 0, 0)
	for _, r := range []float64{0, 0.5, 0.75} {
		fmt.Printf("r=%v: first retry after %v\n", r, pol.Jitter(d, r))
	}
	// Output:
	// r=0: first retry after 150ms
	// r=0.5: first retry after 200ms
	// r=0.75: first retry after 225ms
}

// Pipelines.

// Ordered makes Map yield in input order, whatever the order the jobs end in.
// Here each item's job waits for the next item's, so they finish last to
// first.
func ExampleOrdered() {
	done := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{}), "c": make(chan struct{})}
	next := map[string]string{"a": "b", "b": "c"}
	var mu sync.Mutex
	var finished []string
	p := jobq.New(3, func(_ context.Context, s string) (string, error) {
		if n, ok := next[s]; ok {
			<-done[n]
		}
		mu.Lock()
		finished = append(finished, s)
		mu.Unlock()
		close(done[s])
		return strings.ToUpper(s), nil
	})
	defer p.Close()

	ctx := context.Background()
	for s, err := range jobq.Map(ctx, p, slices.Values([]string{"a", "b", "c"}), jobq.Ordered()) {
		fmt.Println(s, err)
	}
	fmt.Println("finished:", finished)
	// Output:
	// A <nil>
	// B <nil>
	// C <nil>
	// finished: [c b a]
}

// InFlight bounds how many items Map holds at once (jobq.DefaultInFlight
// without it): a pool of 8 then works on at most 2 items of this stream.
func ExampleInFlight() {
	var mu sync.Mutex
	running, peak := 0, 0
	p := jobq.New(8, func(_ context.Context, url string) (int, error) {
		mu.Lock()
		running++
		peak = max(peak, running)
		mu.Unlock()
		defer func() { mu.Lock(); running--; mu.Unlock() }()
		return len(url), nil
	})
	defer p.Close()

	urls := []string{"a.example", "bb.example", "ccc.example", "dddd.example", "eeeee.example"}
	total := 0
	for n, err := range jobq.Map(context.Background(), p, slices.Values(urls), jobq.InFlight(2)) {
		if err == nil {
			total += n
		}
	}
	fmt.Println("bytes:", total, "- at most 2 at once:", peak <= 2)
	// Output: bytes: 55 - at most 2 at once: true
}

// MapOptions are values: choose them at run time, as from a flag.
func ExampleMapOption() {
	p := jobq.New(4, func(_ context.Context, s string) (string, error) { return strings.ToUpper(s), nil })
	defer p.Close()

	ordered := true // say, from a -ordered flag
	opts := []jobq.MapOption{jobq.InFlight(16)}
	if ordered {
		opts = append(opts, jobq.Ordered())
	}
	var out []string
	for s, err := range jobq.Map(context.Background(), p, slices.Values([]string{"x", "y", "z"}), opts...) {
		if err == nil {
			out = append(out, s)
		}
	}
	fmt.Println(out)
	// Output: [X Y Z]
}

// Values turns Map's (value, error) stream into plain values. This onErr keeps
// the first error and stops, which cancels the jobs still in flight.
func ExampleValues() {
	parse := jobq.New(2, func(_ context.Context, s string) (int, error) { return strconv.Atoi(s) })
	defer parse.Close()

	ctx := context.Background()
	var firstErr error
	stop := func(err error) bool { firstErr = err; return false }
	src := slices.Values([]string{"1", "2", "x", "4", "5"})
	for n := range jobq.Values(jobq.Map(ctx, parse, src, jobq.Ordered()), stop) {
		fmt.Println(n)
	}
	fmt.Println("stopped:", firstErr)
	// Output:
	// 1
	// 2
	// stopped: jobq: item 2: strconv.Atoi: parsing "x": invalid syntax
}

// A stage that works on batches (one query for many ids) sits between Batch
// and Flatten, so the stream stays one item at a time on both sides.
func ExampleFlatten() {
	lookup := jobq.New(2, func(_ context.Context, ids []int) ([]string, error) {
		names := make([]string, len(ids)) // SELECT name FROM users WHERE id IN (...)
		for i, id := range ids {
			names[i] = "user" + strconv.Itoa(id)
		}
		return names, nil
	})

	ctx := context.Background()
	skip := func(error) bool { return true }
	batches := jobq.Batch(slices.Values([]int{1, 2, 3, 4, 5}), 2, 0)
	names := jobq.Flatten(jobq.Values(jobq.Map(ctx, lookup, batches, jobq.Ordered()), skip))
	fmt.Println(slices.Collect(names))

	lookup.Close()
	fmt.Println("queries:", lookup.Metrics().Submitted)
	// Output:
	// [user1 user2 user3 user4 user5]
	// queries: 3
}

func ExampleItemError() {
	p := jobq.New(2, func(_ context.Context, s string) (int, error) { return strconv.Atoi(s) })
	defer p.Close()

	ports := []string{"8080", "http", "443"}
	for port, err := range jobq.Map(context.Background(), p, slices.Values(ports), jobq.Ordered()) {
		var ie *jobq.ItemError
		if errors.As(err, &ie) {
			var ne *strconv.NumError
			fmt.Printf("item %d (%q): bad number: %t\n", ie.Index, ports[ie.Index], errors.As(err, &ne))
			continue
		}
		fmt.Println("port", port)
	}
	// Output:
	// port 8080
	// item 1 ("http"): bad number: true
	// port 443
}

// errors.Is and errors.As see through an ItemError to the job's error.
func ExampleItemError_Unwrap() {
	fsys := fstest.MapFS{"a.txt": {Data: []byte("hello")}, "c.txt": {Data: []byte("hi")}}
	size := jobq.New(2, func(_ context.Context, name string) (int64, error) {
		fi, err := fs.Stat(fsys, name)
		if err != nil {
			return 0, err
		}
		return fi.Size(), nil
	})
	defer size.Close()

	names := []string{"a.txt", "b.txt", "c.txt"}
	for n, err := range jobq.Map(context.Background(), size, slices.Values(names), jobq.Ordered()) {
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Println("missing:", err)
			continue
		}
		fmt.Println(n, "bytes")
	}
	// Output:
	// 5 bytes
	// missing: jobq: item 1: open b.txt: file does not exist
	// 2 bytes
}

// The message names the item's index in Map's input, then the job's error.
func ExampleItemError_Error() {
	fmt.Println(&jobq.ItemError{Index: 3, Err: io.ErrUnexpectedEOF})
	// Output: jobq: item 3: unexpected EOF
}

// The seed API: Queue.

// resizeRequest is a QueuedMessage: EnQueue encodes it with Bytes.
type resizeRequest struct {
	Image string
	Width int
}

func (r *resizeRequest) Bytes() []byte {
	return []byte(r.Image + ":" + strconv.Itoa(r.Width))
}

// resizeHandler is the WithFn handler for resizeRequest messages.
func resizeHandler(_ context.Context, msg jobq.TaskMessage) error {
	image, width, ok := strings.Cut(string(msg.Payload()), ":")
	if !ok {
		return jobq.Permanent(fmt.Errorf("malformed message %q", msg.Payload()))
	}
	fmt.Printf("resizing %s to %spx\n", image, width)
	return nil
}

func ExampleNewPool() {
	var total atomic.Int64
	q := jobq.NewPool(4)
	for n := int64(1); n <= 10; n++ {
		if err := q.EnQueueTask(func(context.Context) error { total.Add(n); return nil }); err != nil {
			fmt.Println(err)
		}
	}
	q.Release() // returns once every task has run
	fmt.Println(total.Load(), q.SuccessTasks())
	// Output: 55 10
}

// One Queue runs both kinds of job: task functions, and messages for its
// WithFn handler.
func ExampleQueue() {
	q := jobq.NewPool(1, jobq.WithFn(resizeHandler))
	_ = q.EnQueue(&resizeRequest{Image: "cat.png", Width: 200})
	_ = q.EnQueueTask(func(context.Context) error {
		fmt.Println("purging the CDN cache")
		return nil
	})
	q.Release()
	// Output:
	// resizing cat.png to 200px
	// purging the CDN cache
}

func ExampleWithFn() {
	q := jobq.NewPool(1, jobq.WithFn(resizeHandler))
	for _, w := range []int{100, 400} {
		_ = q.EnQueue(&resizeRequest{Image: "logo.png", Width: w})
	}
	q.Release()
	fmt.Println("done:", q.SuccessTasks())
	// Output:
	// resizing logo.png to 100px
	// resizing logo.png to 400px
	// done: 2
}

// Bytes is called once, by EnQueue: changing the message afterwards does not
// change the job.
func ExampleQueuedMessage() {
	q := jobq.NewPool(1, jobq.WithFn(resizeHandler))
	req := &resizeRequest{Image: "cat.png", Width: 200}
	_ = q.EnQueue(req)
	req.Width = 999
	q.Release()
	// Output: resizing cat.png to 200px
}

// A TaskMessage carries the bytes a QueuedMessage encoded to; a payload the
// handler cannot decode is a Permanent error, never retried.
func ExampleTaskMessage() {
	q := jobq.NewPool(1, jobq.WithFn(resizeHandler))
	retry := jobq.Policy{MaxAttempts: 3, Backoff: jobq.Constant(time.Millisecond)}
	_ = q.EnQueue(&resizeRequest{Image: "cat.png", Width: 64}, retry)
	_ = q.EnQueue(rawMessage("garbage"), retry)
	q.Release()
	m := q.Metrics()
	fmt.Println("succeeded:", m.Succeeded, "failed:", m.Failed, "retried:", m.Retried)
	// Output:
	// resizing cat.png to 64px
	// succeeded: 1 failed: 1 retried: 0
}

// rawMessage is a QueuedMessage that is already encoded.
type rawMessage string

func (m rawMessage) Bytes() []byte { return []byte(m) }

func ExampleQueue_EnQueue() {
	q := jobq.NewPool(2, jobq.WithFn(resizeHandler))
	err := q.EnQueue(&resizeRequest{Image: "a.png", Width: 32})
	q.Release()
	fmt.Println("before Release:", err)
	fmt.Println("after Release:", q.EnQueue(&resizeRequest{Image: "b.png", Width: 32}))

	plain := jobq.NewPool(1) // no WithFn: it runs task functions only
	defer plain.Release()
	fmt.Println(plain.EnQueue(&resizeRequest{Image: "c.png", Width: 32}))
	// Output:
	// resizing a.png to 32px
	// before Release: <nil>
	// after Release: jobq: pool closed
	// jobq: EnQueue needs a handler: build the Queue with WithFn
}

// A task may take a Policy of its own: here a flaky upload is retried.
func ExampleQueue_EnQueueTask() {
	q := jobq.NewPool(2)
	var tries atomic.Int32
	upload := func(ctx context.Context) error {
		if tries.Add(1) == 1 {
			return errors.New("502 bad gateway")
		}
		return nil
	}
	err := q.EnQueueTask(upload, jobq.Policy{MaxAttempts: 3, Backoff: jobq.Constant(time.Millisecond)})
	fmt.Println("queued:", err)
	q.Release()
	fmt.Println("succeeded:", q.SuccessTasks(), "retried:", q.Metrics().Retried)
	// Output:
	// queued: <nil>
	// succeeded: 1 retried: 1
}

func ExampleQueue_BusyWorkers() {
	started, release := make(chan struct{}, 5), make(chan struct{})
	q := jobq.NewPool(3)
	for range 5 {
		_ = q.EnQueueTask(func(context.Context) error {
			started <- struct{}{}
			<-release
			return nil
		})
	}
	for range 3 {
		<-started // each of the three workers has taken a task
	}
	fmt.Println("busy:", q.BusyWorkers(), "waiting:", q.Metrics().Queued)

	close(release)
	q.Release()
	fmt.Println("busy:", q.BusyWorkers())
	// Output:
	// busy: 3 waiting: 2
	// busy: 0
}

func ExampleQueue_UpdateWorkerCount() {
	q := jobq.NewPool(4)
	q.UpdateWorkerCount(0) // pause during a maintenance window
	for range 3 {
		_ = q.EnQueueTask(func(context.Context) error { return nil })
	}
	fmt.Println("waiting:", q.Metrics().Queued, "done:", q.CompletedTasks())

	q.UpdateWorkerCount(2) // resume
	q.Release()
	fmt.Println("waiting:", q.Metrics().Queued, "done:", q.CompletedTasks())
	// Output:
	// waiting: 3 done: 0
	// waiting: 0 done: 3
}

func ExampleQueue_Release() {
	q := jobq.NewPool(2)
	var sent atomic.Int32
	for range 20 {
		_ = q.EnQueueTask(func(context.Context) error { sent.Add(1); return nil })
	}
	q.Release() // nothing accepted is lost
	fmt.Println("sent:", sent.Load())
	fmt.Println(q.EnQueueTask(func(context.Context) error { return nil }))
	// Output:
	// sent: 20
	// jobq: pool closed
}

// Shutdown with a deadline gives up on what is left: the queued task never
// runs and the running one sees its ctx cancelled.
func ExampleQueue_Shutdown() {
	started := make(chan struct{})
	q := jobq.NewPool(1)
	_ = q.EnQueueTask(func(ctx context.Context) error {
		close(started)
		<-ctx.Done() // a long task that honours its ctx
		return ctx.Err()
	})
	<-started
	_ = q.EnQueueTask(func(context.Context) error {
		fmt.Println("never printed")
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	fmt.Println("Shutdown:", q.Shutdown(ctx))
	q.Release() // wait for the running task to return
	fmt.Println("succeeded:", q.SuccessTasks(), "failed or cancelled:", q.FailureTasks())
	// Output:
	// Shutdown: context deadline exceeded
	// succeeded: 0 failed or cancelled: 2
}

func ExampleQueue_SubmittedTasks() {
	q := jobq.NewPool(2)
	for range 3 {
		_ = q.EnQueueTask(func(context.Context) error { return nil })
	}
	q.Release()
	_ = q.EnQueueTask(func(context.Context) error { return nil }) // refused: ErrClosed
	fmt.Println("accepted:", q.SubmittedTasks(), "refused:", q.Metrics().Rejected)
	// Output: accepted: 3 refused: 1
}

func ExampleQueue_SuccessTasks() {
	q := jobq.NewPool(2)
	for n := range 5 {
		_ = q.EnQueueTask(func(context.Context) error {
			if n%2 == 1 {
				return fmt.Errorf("task %d failed", n)
			}
			return nil
		})
	}
	q.Release()
	fmt.Println("succeeded:", q.SuccessTasks(), "of", q.SubmittedTasks())
	// Output: succeeded: 3 of 5
}

// FailureTasks counts errors and panics alike.
func ExampleQueue_FailureTasks() {
	q := jobq.NewPool(2)
	_ = q.EnQueueTask(func(context.Context) error { return errors.New("disk full") })
	_ = q.EnQueueTask(func(context.Context) error { panic("nil map") })
	_ = q.EnQueueTask(func(context.Context) error { return nil })
	q.Release()
	fmt.Println("failed:", q.FailureTasks(), "succeeded:", q.SuccessTasks())
	// Output: failed: 2 succeeded: 1
}

func ExampleQueue_CompletedTasks() {
	q := jobq.NewPool(2)
	for n := range 4 {
		_ = q.EnQueueTask(func(context.Context) error {
			if n == 0 {
				return errors.New("timeout")
			}
			return nil
		})
	}
	q.Release()
	fmt.Printf("%d/%d done (%d ok, %d failed)\n",
		q.CompletedTasks(), q.SubmittedTasks(), q.SuccessTasks(), q.FailureTasks())
	// Output: 4/4 done (3 ok, 1 failed)
}

func ExampleQueue_Metrics() {
	q := jobq.NewPool(2)
	var calls atomic.Int32
	_ = q.EnQueueTask(func(context.Context) error {
		if calls.Add(1) < 3 {
			return errors.New("try again")
		}
		return nil
	}, jobq.Policy{MaxAttempts: 3, Backoff: jobq.Constant(time.Millisecond)})
	q.Release()
	m := q.Metrics()
	fmt.Printf("submitted %d, succeeded %d, retried %d, workers %d\n", m.Submitted, m.Succeeded, m.Retried, m.Workers)
	// Output: submitted 1, succeeded 1, retried 2, workers 0
}
