package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/seed-bb9ff1e7/jobq"
)

// faultError is the transient error the read stage injects.
type faultError struct{}

func (faultError) Error() string { return "injected transient fault" }

// readPolicy retries the read stage's transient faults quickly, and bounds
// each attempt.
func readPolicy() jobq.Policy {
	return jobq.Policy{
		MaxAttempts: 4,
		Backoff:     jobq.Exponential(time.Millisecond, 50*time.Millisecond),
		Jitter:      jobq.FullJitter,
		Timeout:     2 * time.Second,
	}
}

// hashPolicy bounds each hash attempt; hashing has nothing to retry.
func hashPolicy() jobq.Policy {
	return jobq.Policy{Timeout: 2 * time.Second}
}

// readStage returns the read stage's handler. Each attempt fails with a
// faultError with probability failRate, before touching the file; a real
// read error is Permanent, since retrying would not cure it. os.ReadFile
// takes no ctx, but the pool ends an attempt at its timeout regardless.
func readStage(failRate float64) jobq.Handler[string, fileData] {
	return func(_ context.Context, path string) (fileData, error) {
		if failRate > 0 && rand.Float64() < failRate {
			return fileData{}, faultError{}
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fileData{}, jobq.Permanent(err)
		}
		return fileData{path: path, data: data}, nil
	}
}

// hashAndCount is the hash stage's handler.
func hashAndCount(_ context.Context, f fileData) (fileSum, error) {
	return summarize(f.path, f.data), nil
}

// totals aggregates the pipeline's results.
type totals struct {
	root      string
	files     int // files hashed
	failed    int // files that could not be hashed
	bytes     int64
	lines     int64
	digest    [sha256.Size]byte // XOR of the files' digests: order-independent
	wall      time.Duration
	latencies []time.Duration // per file, submission to result
	dirs      map[string]*dirTotal
	errs      []error // the first few failures
	pools     []poolMetrics

	// done and doneBytes mirror files and bytes for the progress line.
	done, doneBytes atomic.Int64
}

// dirTotal aggregates the files of one directory (not its subdirectories).
type dirTotal struct {
	name         string
	files        int
	bytes, lines int64
}

// poolMetrics names a pool's final metrics.
type poolMetrics struct {
	name string
	m    jobq.Metrics
}

// maxErrs is how many failures the summary lists.
const maxErrs = 5

func newTotals(root string, n int) *totals {
	return &totals{root: root, latencies: make([]time.Duration, 0, n), dirs: make(map[string]*dirTotal)}
}

// add counts one file that made it through the pipeline.
func (t *totals) add(s fileSum, latency time.Duration) {
	t.files++
	t.bytes += s.size
	t.lines += s.lines
	xorInto(&t.digest, s.sum)
	t.latencies = append(t.latencies, latency)
	dir := relPath(t.root, filepath.Dir(s.path))
	d := t.dirs[dir]
	if d == nil {
		d = &dirTotal{name: dir}
		t.dirs[dir] = d
	}
	d.files++
	d.bytes += s.size
	d.lines += s.lines
	t.done.Add(1)
	t.doneBytes.Add(s.size)
}

// fail counts one file that did not.
func (t *totals) fail(err error) {
	t.failed++
	if len(t.errs) < maxErrs {
		t.errs = append(t.errs, err)
	}
}

// clock records when each path enters the pipeline, so that the consumer
// can measure its latency from submission to result. It needs no lock: Map
// starts no goroutine, so the whole pipeline, from pulling the paths to
// consuming the results, runs in the goroutine that ranges over it.
type clock map[string]time.Time

// stamp passes seq through, noting when each path is pulled: Map submits an
// item as soon as it pulls it.
func (c clock) stamp(seq iter.Seq[string]) iter.Seq[string] {
	return func(yield func(string) bool) {
		for p := range seq {
			c[p] = time.Now()
			if !yield(p) {
				return
			}
		}
	}
}

// since returns the time since path was stamped.
func (c clock) since(path string) time.Duration {
	t := c[path]
	delete(c, path)
	return time.Since(t)
}

// itemError reports whether err is a failed item of a Map stream (the other
// error a Map stream yields says that its ctx ended).
func itemError(err error) (*jobq.ItemError, bool) {
	var ie *jobq.ItemError
	return ie, errors.As(err, &ie)
}

// namePath returns err, prefixed with path unless it names it already.
func namePath(err error, path string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

// runPipeline reads, hashes and counts files through two jobq pools chained
// with Map, aggregating in the calling goroutine while prog reports. It
// fails only when ctx ends first.
func runPipeline(ctx context.Context, cfg config, files []string, prog *progress) (*totals, error) {
	read := jobq.New(cfg.workers, readStage(cfg.failRate), jobq.WithPolicy(readPolicy()))
	defer read.Close()
	hash := jobq.New(cfg.workers, hashAndCount, jobq.WithPolicy(hashPolicy()))
	defer hash.Close()
	var opts []jobq.MapOption
	if cfg.ordered {
		opts = append(opts, jobq.Ordered())
	}

	tot := newTotals(cfg.dir, len(files))
	clk := make(clock, len(files))
	start := time.Now()
	stop := prog.start(len(files), func() snapshot {
		r, h := read.Metrics(), hash.Metrics()
		return snapshot{
			elapsed: time.Since(start),
			files:   tot.done.Load(),
			bytes:   tot.doneBytes.Load(),
			busy:    r.Running + h.Running,
			queued:  r.Queued + h.Queued,
			retries: r.Retried + h.Retried,
		}
	})
	// A file that cannot be read is counted and the rest go on; any other
	// error means ctx has ended, and stops the pipeline.
	onReadErr := func(err error) bool {
		ie, ok := itemError(err)
		if ok {
			tot.fail(namePath(ie.Err, relPath(cfg.dir, files[ie.Index])))
		}
		return ok
	}
	read1 := jobq.Map(ctx, read, clk.stamp(slices.Values(files)), opts...)
	for sum, err := range jobq.Map(ctx, hash, jobq.Values(read1, onReadErr), opts...) {
		switch _, failed := itemError(err); {
		case err == nil:
			tot.add(sum, clk.since(sum.path))
		case failed:
			tot.fail(err)
		}
		// Otherwise ctx has ended: the stream's last pair, checked below.
	}
	tot.wall = time.Since(start)
	stop()

	// Closing waits for the pools to settle, so the metrics are final.
	read.Close()
	hash.Close()
	tot.pools = []poolMetrics{{"read", read.Metrics()}, {"hash", hash.Metrics()}}
	if err := ctx.Err(); err != nil {
		return tot, fmt.Errorf("interrupted after %d of %d files: %w", tot.files, len(files), err)
	}
	return tot, nil
}
