package main

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// progress reports a running phase: on a terminal one line redrawn in place
// every 200 ms, elsewhere a plain line every second and one when the phase
// ends, so that even a short phase leaves a line.
type progress struct {
	w     io.Writer
	tty   bool
	every time.Duration
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, tty: isTerminal(w), every: time.Second}
	if p.tty {
		p.every = 200 * time.Millisecond
	}
	return p
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// start reports line until the returned stop is called; stop waits for the
// reporter to exit, then clears the line on a terminal or writes it one last
// time elsewhere.
func (p *progress) start(line func() string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(p.every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.draw(line())
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		if p.tty {
			fmt.Fprint(p.w, "\r\033[K")
		} else {
			p.draw(line())
		}
	}
}

func (p *progress) draw(line string) {
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\033[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// pipelineLine is the progress line of a running pipeline, short enough
// for an 80-column terminal.
func pipelineLine(l live, total int) string {
	secs := max(time.Since(l.start).Seconds(), 1e-9)
	n := l.agg.ended.Load()
	f := l.fetchPool.Metrics()
	line := fmt.Sprintf("pipeline %5.1fs %s/%s %s/s busy %d queued %d retries %d timeouts %d",
		secs, commas(n), commas(int64(total)), commas(int64(float64(n)/secs)),
		f.Running, f.Queued, l.fetch.retried.Load(), l.fetch.timeouts.Load())
	if k := l.agg.failedN.Load(); k > 0 {
		line += fmt.Sprintf(" failed %d", k)
	}
	return line
}

// baselineLine is the progress line of the baseline.
func baselineLine(elapsed time.Duration, done, total int) string {
	return fmt.Sprintf("baseline %5.1fs %d/%d sampled objects, one at a time", elapsed.Seconds(), done, total)
}

// summary is everything the summary reports.
type summary struct {
	cfg           config
	source        string // what the store serves
	note          string // said before the rest, when set
	storeURL      string
	objects       int
	totalBytes    int64
	setup         time.Duration // walking the tree, starting the store, listing it
	wall          time.Duration // the whole run
	run           *pipelineRun
	storePipeline storeCounts // the store's counts at the pipeline's end
	base          *baseline   // nil without one
	interrupted   bool
}

// printSummary writes the summary of a run.
func printSummary(w io.Writer, s *summary) {
	cfg := s.cfg
	if s.interrupted {
		fmt.Fprintln(w, "\ninterrupted: a partial summary")
	}
	if s.note != "" {
		fmt.Fprintf(w, "\n%s\n", s.note)
	}
	fmt.Fprintf(w, "\njobq demo: mirror %s (%s objects, %.1f MB) from a simulated object store\n",
		s.source, commas(int64(s.objects)), float64(s.totalBytes)/1e6)
	fmt.Fprintf(w, "store     %s: latency %v; %g%% 503s, %g%% stalls\n",
		s.storeURL, cfg.latency, 100*cfg.failRate, 100*cfg.stallRate)
	order := ""
	if cfg.ordered {
		order = ", ordered"
	}
	fmt.Fprintf(w, "pipeline  Map(Then(fetch, digest)), %d in flight%s: fetch %d workers (%d attempts, backoff %v..%v full jitter, %v per attempt) -> digest %d workers -> aggregate\n\n",
		cfg.inFlight, order, cfg.workers, cfg.attempts, cfg.backoff, 50*cfg.backoff, cfg.timeout, cfg.digestWorkers)

	printTotals(w, s)
	fmt.Fprintln(w)
	printLatencies(w, s.run)
	fmt.Fprintln(w)
	printPools(w, s.run.pools)
	fmt.Fprintln(w)
	printTopDirs(w, s.run.agg.dirs, 5)
	if a := s.run.agg; a.failed > 0 {
		fmt.Fprintf(w, "\nfailed objects (%d):\n", a.failed)
		for _, e := range a.errs {
			fmt.Fprintf(w, "  %s\n", e)
		}
		if a.failed > len(a.errs) {
			fmt.Fprintf(w, "  ... and %d more\n", a.failed-len(a.errs))
		}
	}
}

// printTotals writes what the pipeline did and how it compares with the
// baseline.
func printTotals(w io.Writer, s *summary) {
	r, a := s.run, s.run.agg
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "objects\t%s mirrored, %s failed", commas(int64(a.done)), commas(int64(a.failed)))
	if left := s.objects - a.done - a.failed; left > 0 {
		fmt.Fprintf(tw, ", %s not done", commas(int64(left)))
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "bytes\t%s (%.1f MB), %s lines\n", commas(a.bytes), float64(a.bytes)/1e6, commas(a.lines))
	fmt.Fprintf(tw, "wall time\t%v for the whole run: pipeline %v", round(s.wall), round(r.wall))
	if s.base != nil {
		fmt.Fprintf(tw, ", baseline %v", round(s.base.wall))
	}
	fmt.Fprintf(tw, ", setup %v (walk, store, listing)\n", round(s.setup))
	secs := max(r.wall.Seconds(), 1e-9)
	fmt.Fprintf(tw, "throughput\t%s objects/s, %.1f MB/s\n", commas(int64(float64(a.done+a.failed)/secs)), float64(a.bytes)/1e6/secs)
	b := s.base
	switch {
	case b == nil || b.attempted == 0:
		fmt.Fprintf(tw, "baseline\tnone (%s)\n", map[bool]string{true: "interrupted", false: "-sample 0"}[s.interrupted])
	default:
		fmt.Fprintf(tw, "baseline\tsequential (1 worker, same store, faults and policy): %d of %d sampled objects in %v, %v each, %d retries\n",
			b.attempted, b.sample, round(b.wall), b.perObject().Round(10*time.Microsecond), b.retries)
		fmt.Fprintf(tw, "\t-> %v for all %s objects (extrapolated from the sample)\n", round(b.extrapolated()), commas(int64(b.total)))
		fmt.Fprintf(tw, "speedup\t%s\n", speedup(b, r))
	}
	by, n := r.fetch.absorbed()
	fmt.Fprintf(tw, "absorbed\t%s retries: %s\n", commas(int64(n)), causes(by, "none"))
	fmt.Fprintf(tw, "failed\t%s\n", causes(failures(r), "none"))
	sc := s.storePipeline
	fmt.Fprintf(tw, "store\t%s requests: %s served, %s 503s, %s stalled, %s not found\n",
		commas(sc.requests), commas(sc.served), commas(sc.unavailable), commas(sc.stalled), commas(sc.missing))
	fmt.Fprintf(tw, "checksums\t%s; digest %s\n", checkSample(a, b), hex.EncodeToString(a.digest[:8]))
	tw.Flush()
}

// speedup says how much faster the pipeline was than the baseline.
func speedup(b *baseline, r *pipelineRun) string {
	if r.wall <= 0 || r.agg.done+r.agg.failed < b.total {
		return "none to report (the pipeline did not finish)"
	}
	return fmt.Sprintf("%.1fx over the sequential baseline (extrapolated)", b.extrapolated().Seconds()/r.wall.Seconds())
}

// checkSample compares the baseline's digests with the pipeline's.
func checkSample(a *aggregate, b *baseline) string {
	if b == nil || b.done == 0 {
		return "no baseline to compare with"
	}
	bad := 0
	for k, sum := range b.sums {
		if got, ok := a.sums[k]; ok && got != sum {
			bad++
		}
	}
	if bad > 0 {
		return fmt.Sprintf("MISMATCH: %d of the baseline's %d objects differ from the pipeline's", bad, b.done)
	}
	return fmt.Sprintf("the baseline's %d objects match the pipeline's", b.done)
}

// failures counts the objects that failed for good, by cause; those that
// failed in digest (a panic) have the stage's name before their cause.
func failures(r *pipelineRun) map[string]int {
	by := make(map[string]int)
	for _, st := range []*stageStats{r.fetch, r.digest} {
		st.mu.Lock()
		for c, n := range st.failures {
			if st != r.fetch {
				c = st.name + ": " + c
			}
			by[c] += n
		}
		st.mu.Unlock()
	}
	return by
}

// causes formats counts by cause, the largest first.
func causes(by map[string]int, none string) string {
	if len(by) == 0 {
		return none
	}
	keys := slices.SortedFunc(maps.Keys(by), func(a, b string) int {
		return cmp.Or(cmp.Compare(by[b], by[a]), cmp.Compare(a, b))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %s", commas(int64(by[k])), describe(k))
	}
	return strings.Join(parts, ", ")
}

// describe says what a cause of causeOf means, in the summary's words.
func describe(cause string) string {
	switch cause {
	case causeUnavailable:
		return "after a 503"
	case causeTimeout:
		return "after a timeout (a stall)"
	case causeConnection:
		return "after a broken connection"
	}
	return cause
}

// printLatencies writes the percentiles of the items' latencies, and of
// each stage's queue wait and run time.
func printLatencies(w io.Writer, r *pipelineRun) {
	const format = "%-30s %8s %8s %8s %8s\n"
	fmt.Fprintf(w, format, "latency, objects mirrored", "p50", "p90", "p99", "max")
	row := func(name string, ds []time.Duration) {
		fmt.Fprintf(w, format, "  "+name,
			ms(percentile(ds, 50)), ms(percentile(ds, 90)), ms(percentile(ds, 99)), ms(percentile(ds, 100)))
	}
	row("submission to result", r.agg.latencies)
	for _, st := range []*stageStats{r.fetch, r.digest} {
		st.mu.Lock()
		row(st.name+": queued", st.queued)
		row(st.name+": running", st.running)
		st.mu.Unlock()
	}
	fmt.Fprintln(w, "  (queued: waiting for a worker and in backoff; running: the attempts together)")
}

// printPools writes each pool's final metrics.
func printPools(w io.Writer, pools []poolMetrics) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pool\tworkers\tsubmitted\tsucceeded\tfailed\tretried\tcanceled\trejected\t")
	for _, p := range pools {
		m := p.m
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", p.name, p.workers,
			commas(int64(m.Submitted)), commas(int64(m.Succeeded)), commas(int64(m.Failed)),
			commas(int64(m.Retried)), commas(int64(m.Canceled)), commas(int64(m.Rejected)))
	}
	tw.Flush()
}

// printTopDirs writes the n top-level directories holding the most bytes.
func printTopDirs(w io.Writer, dirs map[string]*dirTotal, n int) {
	top := slices.SortedFunc(maps.Values(dirs), func(a, b *dirTotal) int {
		return cmp.Or(cmp.Compare(b.bytes, a.bytes), cmp.Compare(a.name, b.name))
	})
	top = top[:min(n, len(top))]
	if len(top) == 0 {
		return
	}
	width := len("directory")
	for _, d := range top {
		width = max(width, len(d.name))
	}
	fmt.Fprintf(w, "top %d of %d directories by bytes\n", len(top), len(dirs))
	fmt.Fprintf(w, "  %-*s  %7s  %12s  %10s\n", width, "directory", "objects", "bytes", "lines")
	for _, d := range top {
		fmt.Fprintf(w, "  %-*s  %7s  %12s  %10s\n", width, d.name, commas(int64(d.objects)), commas(d.bytes), commas(d.lines))
	}
}

// percentile returns the p-th percentile of ds by nearest rank, without
// changing ds; 0 for none.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100 // ceil(p/100 * n)
	return s[max(rank, 1)-1]
}

// ms formats d in milliseconds, to a precision that suits it, or in
// microseconds under a millisecond.
func ms(d time.Duration) string {
	m := float64(d) / float64(time.Millisecond)
	switch {
	case m < 1:
		return strconv.FormatInt(d.Microseconds(), 10) + "µs"
	case m < 10:
		return strconv.FormatFloat(m, 'f', 2, 64) + "ms"
	case m < 100:
		return strconv.FormatFloat(m, 'f', 1, 64) + "ms"
	}
	return strconv.FormatFloat(m, 'f', 0, 64) + "ms"
}

// round rounds d for display: to the millisecond under 10s, else to 0.1s.
func round(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// commas formats n, which is not negative, with thousands separators.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
