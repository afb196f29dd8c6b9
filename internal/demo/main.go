// Command demo shows what jobq is for: jobs that wait on a remote service
// that is slow at times, fails now and then, and sometimes never answers.
//
// It mirrors a tree (Go's own source tree, by default) from a simulated
// object store: a real HTTP server on 127.0.0.1 whose answers come after a
// log-normal latency, a few of them 503s and a few never (stalls). A
// pipeline of two jobq pools, chained with Then and streamed with Map,
// fetches every object (many requests at once, with retries, exponential
// backoff with jitter and a per-attempt timeout, the one way out of a
// stall), then hashes it and counts its lines on the CPU, and the consumer
// aggregates per top-level directory. A baseline measured in the same run,
// on the same store and faults, does the same work one object after the
// other over a random sample, extrapolated to the whole tree. The summary
// gives the wall time, throughput, the speedup over the baseline, latency
// percentiles (queue wait and run time apart), the retries absorbed, the
// failures by cause, and each pool's metrics.
//
// Usage:
//
//	go run ./internal/demo [flags]
//
// Exit status: 0 on success; 1 when more objects failed for good than
// -max-failures allows, or the store cannot be set up; 2 on a usage error;
// 130 when interrupted (after a partial summary).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// A second interrupt kills the process as usual.
	context.AfterFunc(ctx, stop)
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// config holds the command line.
type config struct {
	dir           string // the tree to serve; "" means GOROOT/src
	generate      int    // serve this many generated objects instead of a tree
	workers       int    // fetch workers
	digestWorkers int
	inFlight      int // Map's window
	attempts      int
	timeout       time.Duration // per fetch attempt
	backoff       time.Duration // the first retry's backoff, before jitter
	maxElapsed    time.Duration // all of one fetch's attempts and waits
	latency       latency
	failRate      float64 // 503s
	stallRate     float64
	sample        int // objects in the baseline's sample
	seed          uint64
	ordered       bool
	maxFailures   int // objects that may fail for good with exit status 0; < 0: any

	afterItem func(n int) // for tests: called after the n-th item ends
}

// defaultGenerate is how many objects are generated when there is no Go
// source tree to mirror.
const defaultGenerate = 10000

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// run is the whole command: it returns the exit status, writing the progress
// and the summary to stdout and diagnostics to stderr. When ctx ends it stops
// and prints a partial summary.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	start := time.Now()
	cfg, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != nil:
		return exitUsage
	}
	sum, err := mirror(ctx, cfg, start, newProgress(stdout))
	if err != nil && ctx.Err() != nil {
		fmt.Fprintln(stderr, "demo: interrupted while setting up")
		return exitInterrupted
	}
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return exitFailed
	}
	printSummary(stdout, sum)
	return exitCode(sum, cfg.maxFailures)
}

// exitCode is the exit status of a run that got as far as its summary.
func exitCode(s *summary, maxFailures int) int {
	switch {
	case s.interrupted:
		return exitInterrupted
	case maxFailures >= 0 && s.run.agg.failed > maxFailures:
		return exitFailed
	}
	return exitOK
}

// mirror sets up the store, runs the pipeline and then the baseline, and
// returns what the summary needs. It fails only if the store cannot be set
// up.
func mirror(ctx context.Context, cfg config, start time.Time, prog *progress) (*summary, error) {
	s := &summary{}
	if cfg.dir == "" && cfg.generate == 0 {
		dir, err := goSourceDir()
		if err != nil {
			// No source tree to mirror: a generated one of about its size.
			cfg.generate = defaultGenerate
			s.note = fmt.Sprintf("no Go source tree (%v): %d generated objects instead", err, cfg.generate)
		}
		cfg.dir = dir
	}
	var objs objects
	switch {
	case cfg.generate > 0:
		objs = newGenObjects(cfg.generate, cfg.seed)
		s.source = "a generated tree"
	default:
		d, err := newDirObjects(cfg.dir)
		if err != nil {
			return nil, err
		}
		objs = d
		s.source = cfg.dir
	}
	s.cfg = cfg
	st, err := startStore(objs, cfg.latency, cfg.seed, cfg.failRate, cfg.stallRate, nil)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	s.storeURL = st.URL
	c := newClient(st.URL, cfg.workers)
	defer c.Close()
	infos, err := listObjects(ctx, c.http, st.URL)
	if err != nil {
		return nil, fmt.Errorf("listing the store: %w", err)
	}
	items := make([]*item, len(infos))
	for i, o := range infos {
		items[i] = &item{key: o.key}
		s.objects++
		s.totalBytes += o.size
	}
	s.setup = time.Since(start)

	var stop func()
	s.run = runPipeline(ctx, cfg, c, items, func(l live) {
		stop = prog.start(func() string { return pipelineLine(l, len(items)) })
	}, cfg.afterItem)
	stop()
	s.storePipeline = st.counts()
	s.interrupted = s.run.interrupted

	if !s.interrupted && cfg.sample > 0 {
		sample := pickSample(items, cfg.sample, cfg.seed)
		var done atomic.Int64
		bstart := time.Now()
		stop := prog.start(func() string { return baselineLine(time.Since(bstart), int(done.Load()), len(sample)) })
		s.base = runBaseline(ctx, cfg, c, sample, len(items), func(n int) { done.Store(int64(n)) })
		stop()
		s.interrupted = ctx.Err() != nil
	}
	s.wall = time.Since(start)
	return s, nil
}

// parseFlags parses and checks the command line. Errors are reported on
// stderr with the usage text; flag.ErrHelp means -h was asked for.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./internal/demo [flags]\n\n"+
			"Mirrors a tree from a simulated object store (HTTP on 127.0.0.1, with\n"+
			"latency, 503s and stalls) through a pipeline of jobq pools, and compares\n"+
			"it with a sequential baseline measured in the same run.\n\nflags:\n")
		fs.PrintDefaults()
	}
	cfg := config{
		backoff:    20 * time.Millisecond,
		maxElapsed: 10 * time.Second,
		latency:    latency{Sigma: 0.8, Max: time.Second},
	}
	fs.StringVar(&cfg.dir, "dir", "", "tree the store serves (default: $(go env GOROOT)/src)")
	fs.IntVar(&cfg.generate, "generate", 0, "serve `n` generated objects instead of a tree")
	fs.IntVar(&cfg.workers, "workers", 128, "fetch workers: requests in flight at once")
	fs.IntVar(&cfg.digestWorkers, "digest-workers", runtime.GOMAXPROCS(0), "digest (CPU) workers")
	fs.IntVar(&cfg.attempts, "attempts", 6, "attempts per fetch, the first included")
	fs.DurationVar(&cfg.timeout, "timeout", 250*time.Millisecond, "timeout of each fetch attempt")
	fs.DurationVar(&cfg.latency.Median, "latency", 10*time.Millisecond, "median latency of the store (log-normal, sigma 0.8, at most 1s)")
	fs.Float64Var(&cfg.failRate, "fail-rate", 0.03, "share of requests the store answers 503")
	fs.Float64Var(&cfg.stallRate, "stall-rate", 0.01, "share of requests the store never answers")
	fs.IntVar(&cfg.sample, "sample", 200, "objects in the sequential baseline's sample (0: no baseline)")
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed of the store's faults and latencies, and of the sample")
	fs.BoolVar(&cfg.ordered, "ordered", false, "yield results in listing order (jobq.Ordered; slower: a stalled object holds back those behind it)")
	fs.IntVar(&cfg.maxFailures, "max-failures", 0, "objects that may fail for good with exit status 0 (-1: any)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	cfg.inFlight = 2 * cfg.workers
	var bad string
	switch {
	case fs.NArg() > 0:
		bad = fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	case cfg.dir != "" && cfg.generate > 0:
		bad = "-dir and -generate exclude each other"
	case cfg.generate < 0:
		bad = fmt.Sprintf("-generate must be >= 0, got %d", cfg.generate)
	case cfg.workers < 1:
		bad = fmt.Sprintf("-workers must be >= 1, got %d", cfg.workers)
	case cfg.digestWorkers < 1:
		bad = fmt.Sprintf("-digest-workers must be >= 1, got %d", cfg.digestWorkers)
	case cfg.attempts < 1:
		bad = fmt.Sprintf("-attempts must be >= 1, got %d", cfg.attempts)
	case cfg.timeout <= 0:
		bad = fmt.Sprintf("-timeout must be > 0, got %v", cfg.timeout)
	case cfg.latency.Median < 0:
		bad = fmt.Sprintf("-latency must be >= 0, got %v", cfg.latency.Median)
	case !isRate(cfg.failRate) || !isRate(cfg.stallRate) || cfg.failRate+cfg.stallRate > 1:
		bad = fmt.Sprintf("-fail-rate and -stall-rate must be in [0, 1] with a sum <= 1, got %v and %v", cfg.failRate, cfg.stallRate)
	case cfg.sample < 0:
		bad = fmt.Sprintf("-sample must be >= 0, got %d", cfg.sample)
	}
	if bad != "" {
		fmt.Fprintf(stderr, "demo: %s\n", bad)
		fs.Usage()
		return cfg, errors.New(bad)
	}
	return cfg, nil
}

func isRate(r float64) bool { return !math.IsNaN(r) && r >= 0 && r <= 1 }

// goSourceDir returns the src directory of the Go installation: GOROOT as
// the go command reports it, else as the environment or this binary says.
func goSourceDir() (string, error) {
	root := ""
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		root = strings.TrimSpace(string(out))
	}
	if root == "" {
		root = os.Getenv("GOROOT")
	}
	if root == "" {
		//lint:ignore SA1019 the last resort when neither the go command nor $GOROOT is there.
		root = runtime.GOROOT()
	}
	if root == "" {
		return "", errors.New("cannot find GOROOT (no go command, $GOROOT unset)")
	}
	dir := filepath.Join(root, "src")
	if _, err := os.Stat(dir); err != nil {
		return "", err
	}
	return dir, nil
}
