package benchcmp

import (
	"context"
	"iter"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/alitto/pond/v2"
	"github.com/gammazero/workerpool"
	"github.com/panjf2000/ants/v2"
	"github.com/sourcegraph/conc/pool"
	"golang.org/x/sync/errgroup"

	"github.com/seed-bb9ff1e7/jobq"
)

// Every benchmark runs b.N tasks per implementation and returns only once all
// of them have finished, so ns/op is the cost of one task from submission to
// completion at full throughput. Pools are built before b.ResetTimer and torn
// down after b.StopTimer; scoped groups (conc, errgroup) start their
// goroutines lazily, so that part of their cost is timed, as in real use.
const (
	queueSize  = 1024 // bound of every queue that takes one: the channel floor, jobq, pond
	window     = 1024 // futures submitted before any is awaited in BenchmarkSubmitAwait
	submitters = 8    // concurrent submitters in BenchmarkSubmitters8
	ioWorkers  = 1000 // workers in BenchmarkIOBound
	ioSleep    = time.Millisecond
)

// BenchmarkFireAndForget submits trivial tasks from one goroutine without
// waiting for any single one: the per-task overhead of each pool.
func BenchmarkFireAndForget(b *testing.B) {
	workers := runtime.GOMAXPROCS(0)
	body := func() { work(1) }
	for _, p := range funcPools {
		b.Run(p.name, func(b *testing.B) { runFuncPool(b, p, workers, 1, body) })
	}
}

// BenchmarkSubmitAwait submits typed jobs and awaits each result, in rounds
// of window submissions followed by window awaits so submission and execution
// overlap.
func BenchmarkSubmitAwait(b *testing.B) {
	workers := runtime.GOMAXPROCS(0)
	for _, impl := range awaitImpls {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			round, stop := impl.start(b, workers)
			b.ResetTimer()
			sum := 0
			for lo := 0; lo < b.N; lo += window {
				sum += round(lo, min(lo+window, b.N))
			}
			b.StopTimer()
			stop()
			// work(i) = 2i+1, and the first n odd numbers add up to n².
			if want := b.N * b.N; sum != want {
				b.Fatalf("sum of results = %d, want %d", sum, want)
			}
		})
	}
}

// BenchmarkIOBound runs tasks that sleep for ioSleep on ioWorkers workers, as
// a pool fronting a slow service would. The ideal is ioSleep/ioWorkers per
// task, reported as ideal-ns/op.
func BenchmarkIOBound(b *testing.B) {
	body := func() { time.Sleep(ioSleep) }
	for _, p := range funcPools {
		b.Run(p.name, func(b *testing.B) {
			runFuncPool(b, p, ioWorkers, 1, body)
			b.ReportMetric(float64(ioSleep)/ioWorkers, "ideal-ns/op")
		})
	}
}

// BenchmarkPipeline3 streams b.N ints through three trivial stages, each
// with GOMAXPROCS workers.
func BenchmarkPipeline3(b *testing.B) {
	b.Run("channels", benchPipelineChannels)
	b.Run("jobq-Map", func(b *testing.B) { benchPipelineMap(b) })
	b.Run("jobq-Map-ordered", func(b *testing.B) { benchPipelineMap(b, jobq.Ordered()) })
	b.Run("jobq-Then", func(b *testing.B) { benchPipelineThen(b) })
}

// BenchmarkSubmitters8 is BenchmarkFireAndForget with submitters goroutines
// sharing the b.N submissions: contention on the pool's intake.
func BenchmarkSubmitters8(b *testing.B) {
	workers := runtime.GOMAXPROCS(0)
	body := func() { work(1) }
	for _, p := range funcPools {
		b.Run(p.name, func(b *testing.B) { runFuncPool(b, p, workers, submitters, body) })
	}
}

// BenchmarkCPU1us runs tasks that each spin the CPU for about 1µs (the exact
// figure, calibrated at start, is reported as work-ns) on one worker per core.
// "inline" runs the same work in the benchmark's own goroutine.
func BenchmarkCPU1us(b *testing.B) {
	rounds, ns := calibrateSpin()
	workers := runtime.GOMAXPROCS(0)
	body := func() { spin(rounds) }
	b.Run("inline", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			body()
		}
		b.ReportMetric(ns, "work-ns")
	})
	for _, p := range funcPools {
		b.Run(p.name, func(b *testing.B) {
			runFuncPool(b, p, workers, 1, body)
			b.ReportMetric(ns, "work-ns")
		})
	}
}

// work is the trivial task; being out of line, its call cannot be removed.
//
//go:noinline
func work(i int) int { return 2*i + 1 }

// spin runs n rounds of xorshift64: pure CPU, no memory traffic.
//
//go:noinline
func spin(n int) uint64 {
	x := uint64(88172645463325252)
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

var calibrateSpin = sync.OnceValues(func() (rounds int, ns float64) {
	// Best of several runs, so a noisy neighbour does not shorten the work.
	measure := func(rounds, calls int) float64 {
		best := math.MaxFloat64
		for range 7 {
			start := time.Now()
			for range calls {
				spin(rounds)
			}
			best = min(best, float64(time.Since(start))/float64(calls))
		}
		return best
	}
	const probe = 1000
	rounds = max(1, int(probe*float64(time.Microsecond)/measure(probe, 1000)))
	return rounds, measure(rounds, 1000)
})

// funcPool is a fire-and-forget implementation, driven by runFuncPool.
type funcPool struct {
	name string
	// start builds a pool of workers running task once per call of submit,
	// whose argument is the task's index (used by pools that take an input).
	// submit may be called from several goroutines and panics on a refusal
	// that should not happen. stop runs once every task has finished and
	// releases the pool.
	start func(b *testing.B, workers int, task func()) (submit func(i int), stop func())
}

// funcPools are the fire-and-forget implementations, floor first.
var funcPools = []funcPool{
	{name: "channel", start: func(_ *testing.B, workers int, task func()) (func(int), func()) {
		p := newChanPool(workers)
		return func(int) { p.tasks <- task }, p.close
	}},
	{name: "jobq-Go", start: func(b *testing.B, workers int, task func()) (func(int), func()) {
		p := jobq.New(workers, func(context.Context, int) (struct{}, error) {
			task()
			return struct{}{}, nil
		}, jobq.WithQueueSize(queueSize))
		ctx := context.Background()
		submit := func(i int) {
			// Go waits for room while the queue is full.
			if err := p.Go(ctx, i); err != nil {
				panic(err)
			}
		}
		return submit, func() {
			if err := p.Close(); err != nil {
				b.Error(err)
			}
		}
	}},
	{name: "jobq-EnQueueTask", start: func(_ *testing.B, workers int, task func()) (func(int), func()) {
		q := jobq.NewPool(workers, jobq.WithQueueSize(queueSize))
		fn := func(context.Context) error {
			task()
			return nil
		}
		submit := func(int) {
			if err := q.EnQueueTask(fn); err != nil {
				panic(err)
			}
		}
		return submit, q.Release
	}},
	{name: "ants", start: func(b *testing.B, workers int, task func()) (func(int), func()) {
		p, err := ants.NewPool(workers)
		if err != nil {
			b.Fatal(err)
		}
		submit := func(int) {
			if err := p.Submit(task); err != nil {
				panic(err)
			}
		}
		return submit, func() {
			// Unlike Release, ReleaseTimeout waits for the workers to exit,
			// so they do not linger into the next measurement.
			if err := p.ReleaseTimeout(10 * time.Second); err != nil {
				b.Error(err)
			}
		}
	}},
	{name: "pond", start: func(_ *testing.B, workers int, task func()) (func(int), func()) {
		p := pond.NewPool(workers, pond.WithQueueSize(queueSize))
		submit := func(int) {
			if err := p.Go(task); err != nil {
				panic(err)
			}
		}
		return submit, p.StopAndWait
	}},
	{name: "conc", start: func(_ *testing.B, workers int, task func()) (func(int), func()) {
		p := pool.New().WithMaxGoroutines(workers)
		return func(int) { p.Go(task) }, p.Wait
	}},
	{name: "errgroup", start: func(b *testing.B, workers int, task func()) (func(int), func()) {
		g := new(errgroup.Group)
		g.SetLimit(workers)
		fn := func() error {
			task()
			return nil
		}
		return func(int) { g.Go(fn) }, func() {
			if err := g.Wait(); err != nil {
				b.Error(err)
			}
		}
	}},
	{name: "workerpool", start: func(_ *testing.B, workers int, task func()) (func(int), func()) {
		wp := workerpool.New(workers)
		return func(int) { wp.Submit(task) }, wp.StopWait
	}},
}

// runFuncPool times b.N runs of body through p, submitted by the given number
// of goroutines, until the last one has finished.
func runFuncPool(b *testing.B, p funcPool, workers, submitters int, body func()) {
	b.ReportAllocs()
	var done sync.WaitGroup
	done.Add(b.N)
	task := func() {
		body()
		done.Done()
	}
	submit, stop := p.start(b, workers, task)
	b.ResetTimer()
	if submitters == 1 {
		for i := range b.N {
			submit(i)
		}
	} else {
		var sub sync.WaitGroup
		for s := range submitters {
			lo, hi := b.N*s/submitters, b.N*(s+1)/submitters
			sub.Go(func() {
				for i := lo; i < hi; i++ {
					submit(i)
				}
			})
		}
		sub.Wait()
	}
	done.Wait()
	b.StopTimer()
	stop()
}

// chanPool is the floor: workers ranging over a buffered channel of funcs.
type chanPool struct {
	tasks   chan func()
	workers sync.WaitGroup
}

func newChanPool(workers int) *chanPool {
	p := &chanPool{tasks: make(chan func(), queueSize)}
	for range workers {
		p.workers.Go(func() {
			for f := range p.tasks {
				f()
			}
		})
	}
	return p
}

func (p *chanPool) close() {
	close(p.tasks)
	p.workers.Wait()
}

// awaitImpl is a typed submit-and-await implementation.
type awaitImpl struct {
	name string
	// start builds a pool of workers and returns round, which computes work(i)
	// for every i in [lo, hi) (at most window of them), submitting all before
	// awaiting any, and returns the sum of the results; stop releases the pool.
	start func(b *testing.B, workers int) (round func(lo, hi int) int, stop func())
}

// resultJob is the floor's typed job: the worker writes work(in) to *out.
type resultJob struct {
	in  int
	out *int
	wg  *sync.WaitGroup
}

// awaitImpls are the submit-and-await implementations, floor first.
var awaitImpls = []awaitImpl{
	{name: "channel", start: func(_ *testing.B, workers int) (func(lo, hi int) int, func()) {
		jobs := make(chan resultJob, queueSize)
		var running sync.WaitGroup
		for range workers {
			running.Go(func() {
				for j := range jobs {
					*j.out = work(j.in)
					j.wg.Done()
				}
			})
		}
		out := make([]int, window)
		var wg sync.WaitGroup
		round := func(lo, hi int) int {
			wg.Add(hi - lo)
			for i := lo; i < hi; i++ {
				jobs <- resultJob{in: i, out: &out[i-lo], wg: &wg}
			}
			wg.Wait()
			return sum(out[:hi-lo])
		}
		return round, func() {
			close(jobs)
			running.Wait()
		}
	}},
	{name: "channel-reply", start: func(_ *testing.B, workers int) (func(lo, hi int) int, func()) {
		// The hand-written pool most code has: a reply channel of one
		// per job, received from in submission order.
		type request struct {
			in    int
			reply chan int
		}
		jobs := make(chan request, queueSize)
		var running sync.WaitGroup
		for range workers {
			running.Go(func() {
				for r := range jobs {
					r.reply <- work(r.in)
				}
			})
		}
		replies := make([]chan int, window)
		round := func(lo, hi int) int {
			for i := lo; i < hi; i++ {
				c := make(chan int, 1)
				replies[i-lo] = c
				jobs <- request{in: i, reply: c}
			}
			s := 0
			for _, c := range replies[:hi-lo] {
				s += <-c
			}
			return s
		}
		return round, func() {
			close(jobs)
			running.Wait()
		}
	}},
	{name: "jobq", start: func(b *testing.B, workers int) (func(lo, hi int) int, func()) {
		p := jobq.New(workers, func(_ context.Context, i int) (int, error) {
			return work(i), nil
		}, jobq.WithQueueSize(queueSize))
		ctx := context.Background()
		rs := make([]*jobq.Result[int], window)
		round := func(lo, hi int) int {
			for i := lo; i < hi; i++ {
				rs[i-lo] = p.Submit(ctx, i)
			}
			s := 0
			for _, r := range rs[:hi-lo] {
				v, err := r.Await(ctx)
				if err != nil {
					b.Fatal(err)
				}
				s += v
			}
			return s
		}
		return round, func() {
			if err := p.Close(); err != nil {
				b.Error(err)
			}
		}
	}},
	{name: "pond", start: func(b *testing.B, workers int) (func(lo, hi int) int, func()) {
		p := pond.NewResultPool[int](workers, pond.WithQueueSize(queueSize))
		rs := make([]pond.ResultTask[int], window)
		round := func(lo, hi int) int {
			for i := lo; i < hi; i++ {
				rs[i-lo] = p.Submit(func() int { return work(i) })
			}
			s := 0
			for _, r := range rs[:hi-lo] {
				v, err := r.Wait()
				if err != nil {
					b.Fatal(err)
				}
				s += v
			}
			return s
		}
		return round, p.StopAndWait
	}},
	{name: "conc", start: func(_ *testing.B, workers int) (func(lo, hi int) int, func()) {
		// A conc pool is single-use: one per round, as its docs intend.
		round := func(lo, hi int) int {
			p := pool.NewWithResults[int]().WithMaxGoroutines(workers)
			for i := lo; i < hi; i++ {
				p.Go(func() int { return work(i) })
			}
			return sum(p.Wait())
		}
		return round, func() {}
	}},
	{name: "errgroup", start: func(b *testing.B, workers int) (func(lo, hi int) int, func()) {
		out := make([]int, window)
		round := func(lo, hi int) int {
			var g errgroup.Group
			g.SetLimit(workers)
			for i := lo; i < hi; i++ {
				g.Go(func() error {
					out[i-lo] = work(i)
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			return sum(out[:hi-lo])
		}
		return round, func() {}
	}},
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

// pipelineStages are the three trivial stages of BenchmarkPipeline3.
var pipelineStages = [3]func(int) int{
	func(x int) int { return x + 1 },
	func(x int) int { return x * 2 },
	func(x int) int { return x - 3 },
}

// pipelineSum is the sum of the pipeline's outputs for the inputs [0, n):
// the sum over i of 2(i+1)-3 = 2i-1.
func pipelineSum(n int) int { return n*(n-1) - n }

func benchPipelineChannels(b *testing.B) {
	b.ReportAllocs()
	workers := runtime.GOMAXPROCS(0)
	src := make(chan int, queueSize)
	var out <-chan int = src
	for _, f := range pipelineStages {
		out = channelStage(out, workers, f)
	}
	n := b.N
	b.ResetTimer()
	go func() {
		for i := range n {
			src <- i
		}
		close(src)
	}()
	got := 0
	for v := range out {
		got += v
	}
	b.StopTimer()
	if want := pipelineSum(n); got != want {
		b.Fatalf("sum of outputs = %d, want %d", got, want)
	}
}

// channelStage starts workers goroutines applying f to in, and returns their
// output channel, closed once in is closed and drained.
func channelStage(in <-chan int, workers int, f func(int) int) <-chan int {
	out := make(chan int, queueSize)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for x := range in {
				out <- f(x)
			}
		})
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out
}

// pipelinePools returns a pool of GOMAXPROCS workers for each stage of
// the pipeline, closed when b ends.
func pipelinePools(b *testing.B) [len(pipelineStages)]*jobq.Pool[int, int] {
	workers := runtime.GOMAXPROCS(0)
	var pools [len(pipelineStages)]*jobq.Pool[int, int]
	for k, f := range pipelineStages {
		pools[k] = jobq.New(workers, func(_ context.Context, x int) (int, error) {
			return f(x), nil
		}, jobq.WithQueueSize(queueSize))
		b.Cleanup(func() { _ = pools[k].Close() })
	}
	return pools
}

// benchPipelineThen is one Map over the three pools chained with Then:
// each item goes from pool to pool without a consumer between them.
func benchPipelineThen(b *testing.B) {
	b.ReportAllocs()
	pools := pipelinePools(b)
	s := jobq.Then(jobq.Then[int, int, int](pools[0], pools[1]), pools[2])
	n := b.N
	b.ResetTimer()
	got := 0
	for v, err := range jobq.Map(context.Background(), s, func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}) {
		if err != nil {
			b.Fatal(err)
		}
		got += v
	}
	b.StopTimer()
	if want := pipelineSum(n); got != want {
		b.Fatalf("sum of outputs = %d, want %d", got, want)
	}
}

func benchPipelineMap(b *testing.B, opts ...jobq.MapOption) {
	b.ReportAllocs()
	pools := pipelinePools(b)
	ctx := context.Background()
	n := b.N
	b.ResetTimer()
	var seq iter.Seq[int] = func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}
	// The first error of any stage stops the pipeline and is kept in err.
	var err error
	stop := func(e error) bool {
		err = e
		return false
	}
	for _, p := range pools[:len(pools)-1] {
		seq = jobq.Values(jobq.Map(ctx, p, seq, opts...), stop)
	}
	got := 0
	for v, e := range jobq.Map(ctx, pools[len(pools)-1], seq, opts...) {
		if e != nil {
			err = e
			break
		}
		got += v
	}
	b.StopTimer()
	for _, p := range pools {
		if err := p.Close(); err != nil {
			b.Error(err)
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	if want := pipelineSum(n); got != want {
		b.Fatalf("sum of outputs = %d, want %d", got, want)
	}
}
