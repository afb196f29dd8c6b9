package jobq

import (
	"context"
	"fmt"
	"iter"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// pipelineStages are BenchmarkPipeline3's trivial stages.
var pipelineStages = [3]func(int) int{
	func(x int) int { return x + 1 },
	func(x int) int { return x * 2 },
	func(x int) int { return x - 3 },
}

// pipelineSum is the sum of the pipeline's outputs for inputs [0, n): the
// sum over i of 2(i+1)-3 = 2i-1.
func pipelineSum(n int) int { return n*(n-1) - n }

// checkPipelineSum stops b's timer and fails b unless got is the sum of the
// pipeline's outputs for n inputs.
func checkPipelineSum(b *testing.B, got, n int) {
	b.StopTimer()
	if want := pipelineSum(n); got != want {
		b.Fatalf("sum of outputs = %d, want %d", got, want)
	}
}

// pipelineSource yields the pipeline's inputs, 0 to n-1.
func pipelineSource(n int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}
}

// pipelineBuffer is the buffer of the hand-written stages' channels and the
// queue bound of the pools, as in internal/benchcmp.
const pipelineBuffer = 1024

// BenchmarkPipeline3 streams b.N ints through three trivial stages of
// GOMAXPROCS workers each: hand-written goroutine-and-channel stages (the
// floor, whose concurrency the pools match); the same with one goroutine
// per stage (channels-one), where no two goroutines share a channel's end,
// which on 2 cores runs faster than the floor; the same channel stages
// with Map's structure, a feeder per stage and a window (channels-map);
// three Pools chained with Map and Values, unordered and Ordered; and one
// Map over the three Pools chained with Then (jobq-then), where each item
// goes from pool to pool without passing through a consumer between them.
// ns/op and allocs/op are per item.
func BenchmarkPipeline3(b *testing.B) {
	b.Run("channels", func(b *testing.B) { benchPipelineChannels(b, runtime.GOMAXPROCS(0)) })
	b.Run("channels-one", func(b *testing.B) { benchPipelineChannels(b, 1) })
	b.Run("channels-map", benchPipelineChannelsMap)
	b.Run("jobq", func(b *testing.B) { benchPipelineMap(b) })
	b.Run("jobq-ordered", func(b *testing.B) { benchPipelineMap(b, Ordered()) })
	b.Run("jobq-then", func(b *testing.B) { benchPipelineThen(b) })
	b.Run("jobq-then-ordered", func(b *testing.B) { benchPipelineThen(b, Ordered()) })
}

// benchPipelineChannels runs the hand-written stages with workers
// goroutines each.
func benchPipelineChannels(b *testing.B, workers int) {
	b.ReportAllocs()
	src := make(chan int, pipelineBuffer)
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
	checkPipelineSum(b, got, n)
}

// channelStage starts workers goroutines applying f to in, and returns their
// output channel, closed once in is closed and drained.
func channelStage(in <-chan int, workers int, f func(int) int) <-chan int {
	out := make(chan int, pipelineBuffer)
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

// benchPipelineChannelsMap runs the hand-written channel stages with Map's
// structure: per stage, a feeder goroutine pulls the input and hands each
// item to the stage, with at most DefaultInFlight items pulled and not yet
// yielded, and the consuming goroutine yields each result as it comes and
// can stop the stage cleanly. It is that structure built the obvious way,
// from channels alone (the window is a channel of tokens), beside the
// free-running channels floor, which bounds nothing and never stops early.
func benchPipelineChannelsMap(b *testing.B) {
	b.ReportAllocs()
	workers := runtime.GOMAXPROCS(0)
	n := b.N
	seq := pipelineSource(n)
	for _, f := range pipelineStages {
		seq = channelMap(seq, workers, f)
	}
	b.ResetTimer()
	got := 0
	for v := range seq {
		got += v
	}
	checkPipelineSum(b, got, n)
}

// channelMap is Map's structure over a channel stage of workers goroutines
// applying f: a feeder pulls in and sends each item to the stage once the
// window has room; the consumer yields the results and frees their room.
func channelMap(in iter.Seq[int], workers int, f func(int) int) iter.Seq[int] {
	return func(yield func(int) bool) {
		todo := make(chan int, DefaultInFlight)
		done := channelStage(todo, workers, f)
		room := make(chan struct{}, DefaultInFlight) // a token per item in the window
		quit := make(chan struct{})
		fed := make(chan struct{})
		go func() {
			defer close(fed)
			defer close(todo)
			for v := range in {
				select {
				case room <- struct{}{}:
				case <-quit:
					return
				}
				todo <- v
			}
		}()
		defer func() {
			close(quit)
			<-fed
			for range done { // until the stage's goroutines have exited
			}
		}()
		for r := range done {
			<-room
			if !yield(r) {
				return
			}
		}
	}
}

// pipelinePools returns a Pool of GOMAXPROCS workers for each of the
// pipeline's stages, closed when b ends.
func pipelinePools(b *testing.B) [len(pipelineStages)]*Pool[int, int] {
	workers := runtime.GOMAXPROCS(0)
	var pools [len(pipelineStages)]*Pool[int, int]
	for k, f := range pipelineStages {
		pools[k] = New(workers, func(_ context.Context, x int) (int, error) {
			return f(x), nil
		}, WithQueueSize(pipelineBuffer))
		b.Cleanup(func() { _ = pools[k].Close() })
	}
	return pools
}

func benchPipelineMap(b *testing.B, opts ...MapOption) {
	b.ReportAllocs()
	pools := pipelinePools(b)
	ctx := context.Background()
	var first error
	stop := func(err error) bool { first = err; return false }
	n := b.N
	b.ResetTimer()
	seq := pipelineSource(n)
	for _, p := range pools[:len(pools)-1] {
		seq = Values(Map(ctx, p, seq, opts...), stop)
	}
	got := 0
	for v, err := range Map(ctx, pools[len(pools)-1], seq, opts...) {
		if err != nil {
			b.Fatal(err)
		}
		got += v
	}
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	checkPipelineSum(b, got, n)
}

func benchPipelineThen(b *testing.B, opts ...MapOption) {
	b.ReportAllocs()
	pools := pipelinePools(b)
	s := Then(Then[int, int, int](pools[0], pools[1]), pools[2])
	n := b.N
	b.ResetTimer()
	got := 0
	for v, err := range Map(context.Background(), s, pipelineSource(n), opts...) {
		if err != nil {
			b.Fatal(err)
		}
		got += v
	}
	checkPipelineSum(b, got, n)
}

// BenchmarkThen is Submit and Await through two chained pools, beside the
// same two pools awaited one after the other.
func BenchmarkThen(b *testing.B) {
	inc := New(runtime.GOMAXPROCS(0), func(_ context.Context, x int) (int, error) { return x + 1, nil })
	defer inc.Close()
	dbl := New(runtime.GOMAXPROCS(0), func(_ context.Context, x int) (int, error) { return 2 * x, nil })
	defer dbl.Close()
	ctx := context.Background()
	b.Run("awaited", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			x, _ := inc.Submit(ctx, 1).Await(ctx)
			_, _ = dbl.Submit(ctx, x).Await(ctx)
		}
	})
	b.Run("Then", func(b *testing.B) {
		s := Then(inc, dbl)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = s.Submit(ctx, 1).Await(ctx)
		}
	})
}

// BenchmarkMapInFlight is BenchmarkPipeline3's jobq pipelines, unordered
// and Ordered, over a range of in-flight windows: the measurement behind
// DefaultInFlight.
func BenchmarkMapInFlight(b *testing.B) {
	for _, n := range []int{4, 16, 64, 256, 1024} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchPipelineMap(b, InFlight(n)) })
		b.Run(fmt.Sprint(n, "-ordered"), func(b *testing.B) { benchPipelineMap(b, InFlight(n), Ordered()) })
	}
}

// BenchmarkMapSmall is fork–join over 4 items: a Map over them beside 4
// Submit and Await, the setup cost of a Map stream against the plain
// futures it replaces. ns/op and allocs/op are per 4 items.
func BenchmarkMapSmall(b *testing.B) {
	p := New(runtime.GOMAXPROCS(0), double)
	defer p.Close()
	ctx := context.Background()
	items := []int{1, 2, 3, 4}
	b.Run("Submit+Await", func(b *testing.B) {
		b.ReportAllocs()
		var rs [4]*Result[int]
		for b.Loop() {
			for i, x := range items {
				rs[i] = p.Submit(ctx, x)
			}
			for _, r := range rs {
				if _, err := r.Await(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	for _, mode := range []struct {
		name string
		opts []MapOption
	}{{"Map", nil}, {"Map-ordered", []MapOption{Ordered()}}} {
		b.Run(mode.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, err := range Map(ctx, p, slices.Values(items), mode.opts...) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
