package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"
)

// snapshot is what the progress line shows at one moment.
type snapshot struct {
	elapsed      time.Duration
	files, bytes int64  // done so far
	busy, queued int64  // summed over the pools
	retries      uint64 // summed over the pools
}

// progress reports a running pipeline: on a terminal a line redrawn in place
// every 200 ms, elsewhere a plain line every second.
type progress struct {
	w   io.Writer
	tty bool
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, tty: isTerminal(w)}
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

// start reports sample until the returned stop is called; stop waits for the
// reporter to exit and clears the progress line.
func (p *progress) start(total int, sample func() snapshot) (stop func()) {
	every := time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		var prev snapshot
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s := sample()
				p.draw(total, prev, s)
				prev = s
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		if p.tty {
			fmt.Fprint(p.w, "\r\033[K")
		}
	}
}

// draw writes one progress line; the rates are over the interval since prev.
func (p *progress) draw(total int, prev, s snapshot) {
	dt := (s.elapsed - prev.elapsed).Seconds()
	line := fmt.Sprintf("%5.1fs  %d/%d files  %6.0f files/s  %6.1f MB/s  busy %d  queued %d  retries %d",
		s.elapsed.Seconds(), s.files, total,
		float64(s.files-prev.files)/dt, float64(s.bytes-prev.bytes)/1e6/dt,
		s.busy, s.queued, s.retries)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\033[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// printSummary writes the summary table of a run.
func printSummary(w io.Writer, cfg config, tr tree, t *totals, seq seqResult) {
	order := "unordered"
	if cfg.ordered {
		order = "ordered"
	}
	fmt.Fprintf(w, "\njobq demo: %s\n2 pools (read, hash) x %d workers, fail-rate %g, %s\n\n",
		cfg.dir, cfg.workers, cfg.failRate, order)

	printTotals(w, tr, t, seq)
	fmt.Fprintln(w)
	printPools(w, cfg.workers, t.pools)
	fmt.Fprintln(w)
	printTopDirs(w, t.dirs, 5)
	printErrors(w, "failed files", t.errs, t.failed)
	printErrors(w, "skipped directories", tr.skipped, len(tr.skipped))
}

// printTotals writes what the pipeline did, and how it compares with the
// sequential pass.
func printTotals(w io.Writer, tr tree, t *totals, seq seqResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	secs := max(t.wall.Seconds(), 1e-9)
	p50, p99 := percentile(t.latencies, 50), percentile(t.latencies, 99)
	fmt.Fprintf(tw, "files\t%s walked: %s hashed, %s failed",
		commas(int64(len(tr.files))), commas(int64(t.files)), commas(int64(t.failed)))
	if n := len(tr.skipped); n > 0 {
		fmt.Fprintf(tw, " (%d unreadable directories skipped)", n)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "bytes\t%s (%.1f MB)\n", commas(t.bytes), float64(t.bytes)/1e6)
	fmt.Fprintf(tw, "lines\t%s\n", commas(t.lines))
	fmt.Fprintf(tw, "wall time\t%v (and %v to walk the tree)\n", t.wall.Round(time.Millisecond), tr.wall.Round(time.Millisecond))
	fmt.Fprintf(tw, "throughput\t%.0f files/s, %.1f MB/s\n", float64(t.files)/secs, float64(t.bytes)/1e6/secs)
	fmt.Fprintf(tw, "sequential\t%v for the same work in one goroutine, without faults: %s\n",
		seq.wall.Round(time.Millisecond), speedup(seq, t))
	fmt.Fprintf(tw, "latency\tp50 %v, p99 %v (submission to result)\n", p50.Round(time.Microsecond), p99.Round(time.Microsecond))
	fmt.Fprintf(tw, "checksums\t%s\n", verdict(t, seq))
	tw.Flush()
}

// speedup says how much faster the pipeline was than the sequential pass.
func speedup(seq seqResult, t *totals) string {
	if t.files == 0 || seq.wall <= 0 {
		return "no speedup to report"
	}
	return fmt.Sprintf("speedup %.2fx", seq.wall.Seconds()/t.wall.Seconds())
}

// verdict compares the pipeline's aggregate with the sequential pass's.
func verdict(t *totals, seq seqResult) string {
	switch {
	case t.files == seq.files && t.bytes == seq.bytes && t.lines == seq.lines && t.digest == seq.digest:
		return "match the sequential pass"
	case t.failed > 0:
		return fmt.Sprintf("differ from the sequential pass (failed in the pipeline: %d)", t.failed)
	default:
		return "MISMATCH with the sequential pass"
	}
}

// printPools writes each pool's final metrics.
func printPools(w io.Writer, workers int, pools []poolMetrics) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pool\tworkers\tsubmitted\tsucceeded\tfailed\tretried\tcanceled\trejected\t")
	for _, p := range pools {
		m := p.m
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n",
			p.name, workers, m.Submitted, m.Succeeded, m.Failed, m.Retried, m.Canceled, m.Rejected)
	}
	tw.Flush()
}

// printTopDirs writes the n directories holding the most bytes.
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
	fmt.Fprintf(w, "top %d directories by bytes\n", len(top))
	fmt.Fprintf(w, "  %-*s  %6s  %12s  %9s\n", width, "directory", "files", "bytes", "lines")
	for _, d := range top {
		fmt.Fprintf(w, "  %-*s  %6d  %12s  %9s\n", width, d.name, d.files, commas(d.bytes), commas(d.lines))
	}
}

// printErrors lists errs, the first of n errors, under title.
func printErrors(w io.Writer, title string, errs []error, n int) {
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s (%d):\n", title, n)
	for _, err := range errs {
		fmt.Fprintf(w, "  %v\n", err)
	}
	if n > len(errs) {
		fmt.Fprintf(w, "  ... and %d more\n", n-len(errs))
	}
}

// percentile returns the p-th percentile of ds by nearest rank; ds is
// sorted in place.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	rank := (p*len(ds) + 99) / 100 // ceil(p/100 * n)
	return ds[max(rank, 1)-1]
}

// commas formats n, which is not negative, with thousands separators.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
