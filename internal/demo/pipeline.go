package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/seed-bb9ff1e7/jobq"
)

// item is one object on its way through the pipeline.
type item struct {
	key       string
	submitted time.Time // when Map pulled it
}

// fetched is an object as the fetch stage hands it on.
type fetched struct {
	it   *item
	data []byte
}

// digested is what the digest stage makes of it.
type digested struct {
	it *item
	digest
}

// client gets objects from a store.
type client struct {
	http *http.Client
	base string
}

// newClient returns a client of the store at base that keeps up to conns
// connections open, one per worker that may use it at once.
func newClient(base string, conns int) *client {
	t := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &client{http: &http.Client{Transport: t}, base: base}
}

// Close closes the client's idle connections.
func (c *client) Close() { c.http.CloseIdleConnections() }

// get fetches one object. A 503, another 5xx and a broken connection are
// worth retrying; any other answer is Permanent. When ctx ends first, it
// returns ctx's error.
func (c *client) get(ctx context.Context, key string) ([]byte, error) {
	u := c.base + (&url.URL{Path: "/o/" + key}).EscapedPath()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, jobq.Permanent(err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &connError{err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body) // so that the connection is reused
		err := &statusError{code: resp.StatusCode}
		if resp.StatusCode >= 500 {
			return nil, err
		}
		return nil, jobq.Permanent(err)
	}
	var buf bytes.Buffer
	buf.Grow(int(max(resp.ContentLength, 0)) + bytes.MinRead)
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &connError{err}
	}
	return buf.Bytes(), nil
}

// fetchPolicy is the fetch stage's policy: a few attempts, exponential
// backoff with full jitter, and a per-attempt timeout, the one thing that
// gets a request out of a stall.
func fetchPolicy(cfg config, onRetry func(int, error, time.Duration)) jobq.Policy {
	return jobq.Policy{
		MaxAttempts: cfg.attempts,
		Backoff:     jobq.Exponential(cfg.backoff, 50*cfg.backoff),
		Jitter:      jobq.FullJitter,
		Timeout:     cfg.timeout,
		MaxElapsed:  cfg.maxElapsed,
		OnRetry:     onRetry,
	}
}

// aggregate is what the pipeline's consumer makes of the digests.
type aggregate struct {
	done, failed int
	bytes, lines int64
	digest       [sha256.Size]byte // XOR of the objects' digests: order-independent
	dirs         map[string]*dirTotal
	sums         map[string][sha256.Size]byte // by key
	latencies    []time.Duration              // submission to result, of those done
	errs         []string                     // the first few failures

	// Live counts, for the progress line.
	ended, failedN atomic.Int64
}

// dirTotal aggregates the objects under one top-level directory.
type dirTotal struct {
	name         string
	objects      int
	bytes, lines int64
}

// maxErrs is how many failures the summary lists.
const maxErrs = 5

func newAggregate(n int) *aggregate {
	return &aggregate{
		dirs:      make(map[string]*dirTotal),
		sums:      make(map[string][sha256.Size]byte, n),
		latencies: make([]time.Duration, 0, n),
	}
}

// add counts one object that made it through.
func (a *aggregate) add(key string, d digest, latency time.Duration) {
	a.done++
	a.bytes += d.size
	a.lines += d.lines
	xorInto(&a.digest, d.sum)
	a.sums[key] = d.sum
	a.latencies = append(a.latencies, latency)
	name := topDir(key)
	t := a.dirs[name]
	if t == nil {
		t = &dirTotal{name: name}
		a.dirs[name] = t
	}
	t.objects++
	t.bytes += d.size
	t.lines += d.lines
	a.ended.Add(1)
}

// fail counts one object that did not.
func (a *aggregate) fail(key string, err error) {
	a.failed++
	a.ended.Add(1)
	a.failedN.Add(1)
	if len(a.errs) < maxErrs {
		a.errs = append(a.errs, key+": "+err.Error())
	}
}

// pipelineRun is the outcome of a run of the pipeline.
type pipelineRun struct {
	wall        time.Duration
	agg         *aggregate
	fetch       *stageStats
	digest      *stageStats
	pools       []poolMetrics
	interrupted bool
}

// poolMetrics names a pool's final metrics.
type poolMetrics struct {
	name    string
	workers int
	m       jobq.Metrics
}

// live is what the progress line reads while the pipeline runs; it is safe
// to read from any goroutine.
type live struct {
	start     time.Time
	agg       *aggregate
	fetch     *stageStats
	fetchPool *jobq.Pool[*item, *fetched]
}

// runPipeline mirrors items through two jobq pools chained with Then and
// streamed with Map: fetch (HTTP GET with retries, backoff and per-attempt
// timeouts, cfg.workers at once) and digest (SHA-256 and a line count,
// cfg.digestWorkers at once), aggregating in the calling goroutine. When ctx
// ends it stops, and returns what it had, marked interrupted. onStart, when
// set, is called with the live counts before the first item is submitted;
// afterItem after each item has ended.
func runPipeline(ctx context.Context, cfg config, c *client, items []*item, onStart func(live), afterItem func(n int)) *pipelineRun {
	run := &pipelineRun{agg: newAggregate(len(items)), fetch: newStageStats("fetch"), digest: newStageStats("digest")}
	fetch := jobq.New(cfg.workers, func(ctx context.Context, it *item) (*fetched, error) {
		data, err := c.get(ctx, it.key)
		return &fetched{it: it, data: data}, err
	}, jobq.WithPolicy(fetchPolicy(cfg, run.fetch.onRetry)), run.fetch.observer())
	defer fetch.Close()
	dig := jobq.New(cfg.digestWorkers, func(_ context.Context, f *fetched) (digested, error) {
		return digested{it: f.it, digest: summarize(f.data)}, nil
	}, run.digest.observer())
	defer dig.Close()
	start := time.Now()
	if onStart != nil {
		onStart(live{start, run.agg, run.fetch, fetch})
	}
	var opts []jobq.MapOption
	if cfg.ordered {
		opts = append(opts, jobq.Ordered())
	}
	opts = append(opts, jobq.InFlight(cfg.inFlight))

	// Map submits an item as soon as it pulls it.
	source := func(yield func(*item) bool) {
		for _, it := range items {
			it.submitted = time.Now()
			if !yield(it) {
				return
			}
		}
	}
	n := 0
	for d, err := range jobq.Map(ctx, jobq.Then(fetch, dig), source, opts...) {
		now := time.Now()
		var ie *jobq.ItemError
		switch {
		case err == nil:
			run.agg.add(d.it.key, d.digest, now.Sub(d.it.submitted))
		case errors.As(err, &ie):
			// The observers have counted its stages' ends.
			run.agg.fail(items[ie.Index].key, ie.Err)
		default:
			// ctx has ended: the stream's last pair.
			run.interrupted = true
			continue
		}
		n++
		if afterItem != nil {
			afterItem(n)
		}
	}
	run.wall = time.Since(start)

	// Closing waits for the pools to settle, so the metrics are final.
	fetch.Close()
	dig.Close()
	run.pools = []poolMetrics{{"fetch", cfg.workers, fetch.Metrics()}, {"digest", cfg.digestWorkers, dig.Metrics()}}
	return run
}

// baseline is the outcome of the sequential pass over a sample.
type baseline struct {
	sample, total int // objects sampled, of total
	attempted     int // sampled objects it got to before ctx ended
	done, failed  int
	retries       int
	wall          time.Duration
	sums          map[string][sha256.Size]byte // by key
}

// perObject is the sequential pass's mean time per object.
func (b *baseline) perObject() time.Duration {
	if b.attempted == 0 {
		return 0
	}
	return b.wall / time.Duration(b.attempted)
}

// extrapolated is the time the sequential pass would take over every object.
func (b *baseline) extrapolated() time.Duration {
	return b.perObject() * time.Duration(b.total)
}

// pickSample returns n of items, drawn at random with seed, in their order.
func pickSample(items []*item, n int, seed uint64) []*item {
	n = min(n, len(items))
	rng := rand.New(rand.NewPCG(seed, 0xba5e))
	idx := rng.Perm(len(items))[:n]
	out := make([]*item, 0, n)
	mark := make([]bool, len(items))
	for _, i := range idx {
		mark[i] = true
	}
	for i, it := range items {
		if mark[i] {
			out = append(out, it)
		}
	}
	return out
}

// runBaseline does the pipeline's work on sample one object after the
// other: through a pool of one worker with the fetch stage's policy, each
// object submitted once the one before it has been digested, against the
// same store and its faults. progress, when set, is called after each
// object.
func runBaseline(ctx context.Context, cfg config, c *client, sample []*item, total int, progress func(done int)) *baseline {
	b := &baseline{sample: len(sample), total: total, sums: make(map[string][sha256.Size]byte, len(sample))}
	retries := 0
	pol := fetchPolicy(cfg, func(int, error, time.Duration) { retries++ })
	start := time.Now()
	for _, it := range sample {
		data, err := jobq.Retry(ctx, pol, func(ctx context.Context) ([]byte, error) { return c.get(ctx, it.key) })
		if ctx.Err() != nil {
			break
		}
		b.attempted++
		if err != nil {
			b.failed++
		} else {
			b.done++
			b.sums[it.key] = summarize(data).sum
		}
		if progress != nil {
			progress(b.attempted)
		}
	}
	b.wall = time.Since(start)
	b.retries = retries
	return b
}
