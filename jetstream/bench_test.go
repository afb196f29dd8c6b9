package jetstream_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-bb9ff1e7/jobq"
	"github.com/seed-bb9ff1e7/jobq/jetstream"
)

// benchQueue is a queue on an embedded server with a file store, a
// submitter and a worker on connections of their own.
func benchQueue(b *testing.B, workers int) (*jetstream.Queue[int, int], *jetstream.Worker[int, int]) {
	s := testServer(b)
	cfg := testConfig()
	cfg.Lease = 30 * time.Second
	q := open[int, int](b, connect(b, s), cfg)
	wq := open[int, int](b, connect(b, s), cfg)
	w := serve(b, wq, workers, func(ctx context.Context, in int) (int, error) { return in + 1, nil })
	// Warm up: streams, consumer, connections.
	if _, err := q.Submit(context.Background(), 0).Await(context.Background()); err != nil {
		b.Fatal(err)
	}
	return q, w
}

// BenchmarkSubmitAwait runs b.N trivial jobs end to end with 256 in flight,
// each Result awaited.
func BenchmarkSubmitAwait(b *testing.B) {
	q, _ := benchQueue(b, 64)
	const inFlight = 256
	ctx := context.Background()
	window := make([]*jobq.Result[int], 0, inFlight)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if len(window) == inFlight {
			if _, err := window[0].Await(ctx); err != nil {
				b.Fatal(err)
			}
			window = window[1:]
		}
		window = append(window, q.Submit(ctx, i))
	}
	for _, r := range window {
		if _, err := r.Await(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}

// BenchmarkLoneJob submits one job at a time and awaits it: the latency
// from Submit to the Result, reported as p50 and p99.
func BenchmarkLoneJob(b *testing.B) {
	q, _ := benchQueue(b, 4)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := q.Submit(ctx, i).Await(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkGo publishes b.N fire-and-forget jobs and waits until the
// worker has run them all.
func BenchmarkGo(b *testing.B) {
	s := testServer(b)
	cfg := testConfig()
	cfg.Lease = 30 * time.Second
	q := open[int, int](b, connect(b, s), cfg)
	wq := open[int, int](b, connect(b, s), cfg)
	var ran atomic.Int64
	all := make(chan struct{})
	target := int64(b.N)
	serve(b, wq, 64, func(ctx context.Context, in int) (int, error) {
		if ran.Add(1) == target {
			close(all)
		}
		return in, nil
	})
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		for {
			err := q.Go(ctx, i)
			if err == nil {
				break
			}
			if err != jobq.ErrQueueFull {
				b.Fatal(err)
			}
			time.Sleep(50 * time.Microsecond) // room comes with acknowledgements, which signal nothing here
		}
	}
	<-all
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}
