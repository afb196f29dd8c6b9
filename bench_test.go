package jobq

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The floor every hot path is measured against: a plain worker pool of
// goroutines ranging over a buffered channel.
type chanPool struct {
	ch chan func()
	wg sync.WaitGroup
}

func newChanPool(workers, size int) *chanPool {
	c := &chanPool{ch: make(chan func(), size)}
	c.wg.Add(workers)
	for range workers {
		go func() {
			defer c.wg.Done()
			for f := range c.ch {
				f()
			}
		}()
	}
	return c
}

func (c *chanPool) close() { close(c.ch); c.wg.Wait() }

var sink atomic.Int64

func benchWorkers() int { return runtime.GOMAXPROCS(0) }

// checkSink fails b unless the tasks added n each to sink, b.N times.
func checkSink(b *testing.B, n int64) {
	if got, want := sink.Load(), n*int64(b.N); got != want {
		b.Fatalf("the tasks added %d to sink, want %d: not every task ran", got, want)
	}
}

// BenchmarkChannelPool is the floor for BenchmarkGo and BenchmarkEnQueueTask.
// Like them, it times b.N trivial tasks end to end: the last ones drain
// inside the timer.
func BenchmarkChannelPool(b *testing.B) {
	c := newChanPool(benchWorkers(), 1024)
	task := func() { sink.Add(1) }
	sink.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c.ch <- task
	}
	c.close()
	b.StopTimer()
	checkSink(b, 1)
}

func BenchmarkGo(b *testing.B) { benchGo(b) }

// benchGo times b.N trivial Go jobs end to end on a pool built with opts;
// Go waits for room while the queue is full.
func benchGo(b *testing.B, opts ...Option) {
	p := New(benchWorkers(), func(_ context.Context, n int) (struct{}, error) {
		sink.Add(int64(n))
		return struct{}{}, nil
	}, append([]Option{WithQueueSize(1024)}, opts...)...)
	ctx := context.Background()
	sink.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := p.Go(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
	_ = p.Close()
	b.StopTimer()
	checkSink(b, 1)
}

func BenchmarkEnQueueTask(b *testing.B) {
	q := NewPool(benchWorkers(), WithQueueSize(1024))
	task := func(context.Context) error { sink.Add(1); return nil }
	sink.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := q.EnQueueTask(task); err != nil {
			b.Fatal(err)
		}
	}
	q.Release()
	b.StopTimer()
	checkSink(b, 1)
}

// awaitWindow is how many jobs the result benchmarks submit before they
// await them all.
const awaitWindow = 256

// BenchmarkChannelPoolResults is the floor for BenchmarkSubmitAwait: each job
// carries a result slot, and a window of jobs is awaited with one WaitGroup.
func BenchmarkChannelPoolResults(b *testing.B) {
	type job struct {
		in  int
		out *int
		wg  *sync.WaitGroup
	}
	ch := make(chan job, 1024)
	var workers sync.WaitGroup
	for range benchWorkers() {
		workers.Go(func() {
			for j := range ch {
				*j.out = j.in * 2
				j.wg.Done()
			}
		})
	}
	outs := make([]int, awaitWindow)
	var wg sync.WaitGroup
	check := func(i0, n int) {
		wg.Wait()
		for k := range n {
			if outs[k] != 2*(i0+k) {
				b.Fatalf("job %d: out = %d, want %d", i0+k, outs[k], 2*(i0+k))
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		wg.Add(1)
		ch <- job{in: i, out: &outs[i%awaitWindow], wg: &wg}
		if (i+1)%awaitWindow == 0 {
			check(i+1-awaitWindow, awaitWindow)
		}
	}
	check(b.N-b.N%awaitWindow, b.N%awaitWindow)
	b.StopTimer()
	close(ch)
	workers.Wait()
}

// BenchmarkChannelPoolFutures is the floor of a future per job: the channel
// pool of BenchmarkChannelPoolResults, but each job is a future of its own
// (input, output, WaitGroup: 32 bytes) that the worker completes and the
// submitter awaits, in windows as BenchmarkSubmitAwait does. alloc
// allocates each future; reused takes it from an array of one window, so
// the two differ by the allocation and its garbage alone, and reused
// differs from BenchmarkChannelPoolResults by the per-job completion and
// await. job is a future shaped like a job record; reply is what most
// hand-written pools use for a result, a buffered channel per job.
func BenchmarkChannelPoolFutures(b *testing.B) {
	b.Run("alloc", func(b *testing.B) { benchChannelFutures(b, true) })
	b.Run("reused", func(b *testing.B) { benchChannelFutures(b, false) })
	b.Run("job", benchChannelJobFutures)
	b.Run("reply", benchChannelReplyFutures)
}

// benchChannelReplyFutures is the future most hand-written pools use: a
// reply channel of one per job, which the worker sends the output on and the
// submitter receives from (one allocation, the channel), awaited in windows
// as the other variants are.
func benchChannelReplyFutures(b *testing.B) {
	type request struct {
		in    int
		reply chan int
	}
	ch := make(chan request, 1024)
	var workers sync.WaitGroup
	for range benchWorkers() {
		workers.Go(func() {
			for r := range ch {
				r.reply <- r.in * 2
			}
		})
	}
	replies := make([]chan int, 0, awaitWindow)
	await := func(i0 int) {
		for k, c := range replies {
			if v := <-c; v != 2*(i0+k) {
				b.Fatalf("job %d: out = %d, want %d", i0+k, v, 2*(i0+k))
			}
		}
		replies = replies[:0]
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c := make(chan int, 1)
		ch <- request{in: i, reply: c}
		if replies = append(replies, c); len(replies) == awaitWindow {
			await(i + 1 - awaitWindow)
		}
	}
	await(b.N - len(replies))
	b.StopTimer()
	close(ch)
	workers.Wait()
}

// benchChannelJobFutures is the floor of a future that can be a job's: the
// alloc variant's future, carrying besides what any job record must, the
// submission ctx the handler gets, the error, and a state word that Cancel
// could race (80 bytes with pointers, where alloc's 32 have none). The
// worker checks the ctx and moves the state from queued to running to
// done, as a job's attempt must. Nothing else of jobq is there: no policy,
// no metrics, no Cancel, no Done channel.
func benchChannelJobFutures(b *testing.B) {
	type future struct {
		state   atomic.Uint32
		in, out int
		err     error
		ctx     context.Context
		wg      sync.WaitGroup
	}
	ch := make(chan *future, 1024)
	var workers sync.WaitGroup
	for range benchWorkers() {
		workers.Go(func() {
			for f := range ch {
				if err := f.ctx.Err(); err != nil {
					f.err = err
				} else if f.state.CompareAndSwap(0, 1) {
					f.out = f.in * 2
					f.state.Store(2)
				}
				f.wg.Done()
			}
		})
	}
	ctx := context.Background()
	fs := make([]*future, 0, awaitWindow)
	await := func() {
		for _, f := range fs {
			f.wg.Wait()
			if f.out != 2*f.in || f.err != nil {
				b.Fatalf("job %d: out = %d, %v; want %d, nil", f.in, f.out, f.err, 2*f.in)
			}
		}
		fs = fs[:0]
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		f := &future{in: i, ctx: ctx}
		f.wg.Add(1)
		ch <- f
		if fs = append(fs, f); len(fs) == awaitWindow {
			await()
		}
	}
	await()
	b.StopTimer()
	close(ch)
	workers.Wait()
}

func benchChannelFutures(b *testing.B, alloc bool) {
	type future struct {
		in, out int
		wg      sync.WaitGroup
	}
	ch := make(chan *future, 1024)
	var workers sync.WaitGroup
	for range benchWorkers() {
		workers.Go(func() {
			for f := range ch {
				f.out = f.in * 2
				f.wg.Done()
			}
		})
	}
	var slots [awaitWindow]future
	fs := make([]*future, 0, awaitWindow)
	await := func() {
		for _, f := range fs {
			f.wg.Wait()
			if f.out != 2*f.in {
				b.Fatalf("job %d: out = %d, want %d", f.in, f.out, 2*f.in)
			}
		}
		fs = fs[:0]
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		f := &slots[i%awaitWindow] // free: its window was awaited
		if alloc {
			f = new(future)
		}
		f.in = i
		f.wg.Add(1)
		ch <- f
		if fs = append(fs, f); len(fs) == awaitWindow {
			await()
		}
	}
	await()
	b.StopTimer()
	close(ch)
	workers.Wait()
}

func BenchmarkSubmitAwait(b *testing.B) { benchSubmitAwait(b) }

// benchSubmitAwait submits b.N trivial jobs with pol and awaits them in
// windows, as BenchmarkChannelPoolResults does.
func benchSubmitAwait(b *testing.B, pol ...Policy) {
	p := New(benchWorkers(), func(_ context.Context, n int) (int, error) { return n * 2, nil }, WithQueueSize(1024))
	defer p.Close()
	ctx := context.Background()
	rs := make([]*Result[int], 0, awaitWindow)
	await := func(i0 int) {
		for k, r := range rs {
			if v, err := r.Await(ctx); err != nil || v != 2*(i0+k) {
				b.Fatalf("job %d: Await = %d, %v; want %d, nil", i0+k, v, err, 2*(i0+k))
			}
		}
		rs = rs[:0]
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if rs = append(rs, p.Submit(ctx, i, pol...)); len(rs) == awaitWindow {
			await(i + 1 - awaitWindow)
		}
	}
	await(b.N - len(rs))
	b.StopTimer()
}

// BenchmarkSubmitAwaitPolicy measures what a policy costs on the success
// path, beside BenchmarkSubmitAwait: a retry policy that is never used, and
// one with a per-attempt timeout that never fires.
func BenchmarkSubmitAwaitPolicy(b *testing.B) {
	for _, bc := range []struct {
		name string
		pol  []Policy
	}{
		{"none", nil},
		{"retry", []Policy{{MaxAttempts: 3, Backoff: Constant(time.Millisecond)}}},
		{"timeout", []Policy{{Timeout: time.Second}}},
		{"retry+timeout", []Policy{{MaxAttempts: 3, Timeout: time.Second}}},
	} {
		b.Run(bc.name, func(b *testing.B) { benchSubmitAwait(b, bc.pol...) })
	}
}

// BenchmarkForkJoin has each job submit two children to its own pool with
// its ctx and await them: the fork–join path (nested jobs, help, and the
// handler ctx kept by its children). ns/op and allocs/op are per parent.
func BenchmarkForkJoin(b *testing.B) {
	var p *Pool[int, int]
	p = New(benchWorkers(), func(ctx context.Context, n int) (int, error) {
		if n == 0 {
			return 1, nil
		}
		l, r := p.Submit(ctx, 0), p.Submit(ctx, 0)
		x, err := l.Await(ctx)
		if err != nil {
			return 0, err
		}
		y, err := r.Await(ctx)
		return x + y, err
	}, WithQueueSize(1024))
	ctx := context.Background()
	const window = 64
	rs := make([]*Result[int], 0, window)
	b.ReportAllocs()
	for b.Loop() {
		rs = append(rs, p.Submit(ctx, 1))
		if len(rs) == window {
			for _, r := range rs {
				if v, err := r.Await(ctx); v != 2 || err != nil {
					b.Fatalf("parent: %d, %v", v, err)
				}
			}
			rs = rs[:0]
		}
	}
	for _, r := range rs {
		_, _ = r.Await(ctx)
	}
	_ = p.Close()
}

// BenchmarkGoObserver is BenchmarkGo with an end observer set: the
// difference is what observing every job costs (its clock readings and the
// call). Compare with BenchmarkGo and BenchmarkChannelPool in one run.
func BenchmarkGoObserver(b *testing.B) {
	var ended atomic.Int64
	benchGo(b, WithObserver(func(e End) {
		if e.Outcome == Succeeded {
			ended.Add(1)
		}
	}))
	if got := ended.Load(); got != int64(b.N) {
		b.Fatalf("the observer saw %d successes, want %d", got, b.N)
	}
}

// BenchmarkRetry is Retry of a function that succeeds at once, under a
// policy that would retry: it allocates nothing.
func BenchmarkRetry(b *testing.B) {
	ctx := context.Background()
	pol := Policy{MaxAttempts: 3, Backoff: Constant(time.Millisecond), Jitter: FullJitter}
	b.ReportAllocs()
	for b.Loop() {
		if v, err := Retry(ctx, pol, succeedAtOnce); v != 1 || err != nil {
			b.Fatalf("Retry = %d, %v; want 1, nil", v, err)
		}
	}
}
