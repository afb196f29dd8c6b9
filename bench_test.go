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

// BenchmarkChannelPool is the floor for BenchmarkGo and BenchmarkEnQueueTask.
func BenchmarkChannelPool(b *testing.B) {
	c := newChanPool(benchWorkers(), 1024)
	task := func() { sink.Add(1) }
	b.ReportAllocs()
	for b.Loop() {
		c.ch <- task
	}
	c.close()
}

func BenchmarkGo(b *testing.B) {
	p := New(benchWorkers(), func(_ context.Context, n int) (struct{}, error) {
		sink.Add(int64(n))
		return struct{}{}, nil
	}, WithQueueSize(1024))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		for p.Go(ctx, 1) == ErrQueueFull {
			runtime.Gosched()
		}
	}
	_ = p.Close()
}

func BenchmarkEnQueueTask(b *testing.B) {
	q := NewPool(benchWorkers(), WithQueueSize(1024))
	task := func(context.Context) error { sink.Add(1); return nil }
	b.ReportAllocs()
	for b.Loop() {
		_ = q.EnQueueTask(task)
	}
	q.Release()
}

// BenchmarkChannelPoolResults is the floor for BenchmarkSubmitAwait: each job
// carries a result slot, and a window of jobs is awaited with a WaitGroup.
func BenchmarkChannelPoolResults(b *testing.B) {
	type job struct {
		in  int
		out *int
		wg  *sync.WaitGroup
	}
	ch := make(chan job, 1024)
	var workers sync.WaitGroup
	for range benchWorkers() {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range ch {
				*j.out = j.in * 2
				j.wg.Done()
			}
		}()
	}
	const window = 256
	outs := make([]int, window)
	var wg sync.WaitGroup
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		wg.Add(1)
		ch <- job{in: i, out: &outs[i%window], wg: &wg}
		if i++; i%window == 0 {
			wg.Wait()
		}
	}
	wg.Wait()
	close(ch)
	workers.Wait()
}

// BenchmarkChannelPoolFutures is the floor of a future per job: the channel
// pool of BenchmarkChannelPoolResults, but each submission allocates its own
// future (32 bytes: input, output, WaitGroup), which the worker completes
// and the submitter awaits, in windows of 256 as BenchmarkSubmitAwait does.
// Its gap to BenchmarkChannelPoolResults is what any API that hands out a
// future per job pays for the allocation and its garbage.
func BenchmarkChannelPoolFutures(b *testing.B) {
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
	const window = 256
	fs := make([]*future, 0, window)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f := &future{in: i}
		f.wg.Add(1)
		ch <- f
		fs = append(fs, f)
		if i++; len(fs) == window {
			for _, f := range fs {
				f.wg.Wait()
			}
			fs = fs[:0]
		}
	}
	for _, f := range fs {
		f.wg.Wait()
	}
	close(ch)
	workers.Wait()
}

func BenchmarkSubmitAwait(b *testing.B) { benchSubmitAwait(b) }

// benchSubmitAwait submits b.N trivial jobs with pol and awaits them in
// windows of 256, as BenchmarkChannelPoolResults does.
func benchSubmitAwait(b *testing.B, pol ...Policy) {
	p := New(benchWorkers(), func(_ context.Context, n int) (int, error) { return n * 2, nil }, WithQueueSize(1024))
	ctx := context.Background()
	const window = 256
	rs := make([]*Result[int], 0, window)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		rs = append(rs, p.Submit(ctx, i, pol...))
		if i++; len(rs) == window {
			for _, r := range rs {
				_, _ = r.Await(ctx)
			}
			rs = rs[:0]
		}
	}
	for _, r := range rs {
		_, _ = r.Await(ctx)
	}
	_ = p.Close()
}

func BenchmarkRing(b *testing.B) {
	for _, depth := range []int{0, 100, 10000} {
		b.Run("depth="+itoa(depth), func(b *testing.B) {
			r := NewRing[task[int, int]](depth + 1)
			for i := range depth {
				r.Push(task[int, int]{in: i})
			}
			b.ReportAllocs()
			for b.Loop() {
				r.Push(task[int, int]{in: 1})
				r.Pop()
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
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
