package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seed-bb9ff1e7/jobq"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		ds := make([]time.Duration, len(ns))
		for i, n := range ns {
			ds[i] = time.Duration(n) * time.Millisecond
		}
		return ds
	}
	ds := ms(9, 1, 5, 3, 7, 2, 10, 4, 8, 6) // 1..10, shuffled
	for _, tc := range []struct {
		p    int
		want time.Duration
	}{{50, 5 * time.Millisecond}, {90, 9 * time.Millisecond}, {99, 10 * time.Millisecond}, {100, 10 * time.Millisecond}, {1, time.Millisecond}} {
		if got := percentile(ds, tc.p); got != tc.want {
			t.Errorf("percentile(1..10ms, %d) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if !slices.Equal(ds, ms(9, 1, 5, 3, 7, 2, 10, 4, 8, 6)) {
		t.Errorf("percentile reordered its input: %v", ds)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile of none = %v, want 0", got)
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{commas(0), "0"},
		{commas(999), "999"},
		{commas(1000), "1,000"},
		{commas(1234567), "1,234,567"},
		{ms(1500 * time.Microsecond), "1.50ms"},
		{ms(42 * time.Microsecond), "42µs"},
		{ms(0), "0µs"},
		{ms(12345 * time.Microsecond), "12.3ms"},
		{ms(250 * time.Millisecond), "250ms"},
		{round(1234567 * time.Microsecond).String(), "1.235s"},
		{round(83456 * time.Millisecond).String(), "1m23.5s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestCauses(t *testing.T) {
	for _, tc := range []struct {
		err           error
		cause, failed string
	}{
		{context.DeadlineExceeded, causeTimeout, causeTimeout},
		{&statusError{503}, causeUnavailable, causeUnavailable},
		{jobq.Permanent(&statusError{404}), "404 Not Found", "404 Not Found"},
		{&connError{errors.New("reset")}, causeConnection, causeConnection},
		{context.Canceled, causeCanceled, causeCanceled},
		{errors.New("?"), causeOther, causeOther},
		{&jobq.ExhaustedError{Attempts: 3, Errs: []error{context.DeadlineExceeded, &statusError{503}, context.DeadlineExceeded}},
			causeTimeout, "timeout (gave up after 3 attempts)"},
		{&jobq.ExhaustedError{Attempts: 2, Errs: []error{context.DeadlineExceeded, &statusError{503}}},
			"", "503 (gave up after 2 attempts)"},
	} {
		if got := causeOf(tc.err); tc.cause != "" && got != tc.cause {
			t.Errorf("causeOf(%v) = %q, want %q", tc.err, got, tc.cause)
		}
		if got := failureOf(tc.err); got != tc.failed {
			t.Errorf("failureOf(%v) = %q, want %q", tc.err, got, tc.failed)
		}
	}
}

// TestObserverFeedsTheStageStats: a stage's observer turns each jobq.End
// into the stage's figures: a success's queued and running times, a
// failure by cause with the retries it did not absorb.
func TestObserverFeedsTheStageStats(t *testing.T) {
	st := newStageStats("fetch")
	gate := make(chan struct{})
	p := jobq.New(1, func(_ context.Context, n int) (int, error) {
		<-gate
		if n == 1 {
			return 0, jobq.Permanent(errors.New("not found"))
		}
		return n, nil
	}, st.observer())
	ctx := context.Background()
	r0, r1 := p.Submit(ctx, 0), p.Submit(ctx, 1)
	close(gate)
	r0.Await(ctx)
	r1.Await(ctx)
	p.Close()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.queued) != 1 || len(st.running) != 1 {
		t.Fatalf("stats of one success: %d queued, %d running times; want 1 and 1", len(st.queued), len(st.running))
	}
	if n := len(st.failures); n != 1 {
		t.Errorf("failures by cause: %v, want one cause", st.failures)
	}
}

// fixedSummary is a run's summary with round numbers: 10 of 12 objects
// mirrored in 1s, 2 failed; a baseline of 4 objects in 2s (500ms each, 6s
// for all 12 extrapolated).
func fixedSummary() *summary {
	cfg, _ := parseFlags(nil, &bytes.Buffer{})
	cfg.digestWorkers = 2
	agg := newAggregate(12)
	for i := range 10 {
		agg.add(fmt.Sprintf("d%d/k%d", i%2, i), summarize([]byte("x\n")), time.Duration(i+1)*time.Millisecond)
	}
	agg.fail("gone", &statusError{404})
	agg.fail("down", &statusError{503})
	fetch, dig := newStageStats("fetch"), newStageStats("digest")
	for range 3 {
		fetch.onRetry(1, &statusError{503}, 0)
	}
	for range 2 {
		fetch.onRetry(1, context.DeadlineExceeded, 0)
	}
	fetch.observe(end{Outcome: failed, Err: &statusError{404}, Attempts: 1})
	fetch.observe(end{Outcome: failed, Err: &jobq.ExhaustedError{Attempts: 2, Errs: []error{&statusError{503}, &statusError{503}}}, Attempts: 2})
	for range 10 {
		fetch.observe(end{Outcome: succeeded, Attempts: 1, Queued: time.Millisecond, Running: 2 * time.Millisecond})
		dig.observe(end{Outcome: succeeded, Attempts: 1, Running: time.Millisecond})
	}
	base := &baseline{sample: 4, total: 12, attempted: 4, done: 4, wall: 2 * time.Second,
		sums: map[string][sha256.Size]byte{"d0/k0": summarize([]byte("x\n")).sum}}
	return &summary{
		cfg: cfg, source: "/src", storeURL: "http://127.0.0.1:1", objects: 12, totalBytes: 24,
		wall: 3500 * time.Millisecond, setup: 500 * time.Millisecond,
		run: &pipelineRun{wall: time.Second, agg: agg, fetch: fetch, digest: dig,
			pools: []poolMetrics{{"fetch", 128, jobq.Metrics{Submitted: 12, Succeeded: 10, Failed: 2, Retried: 5}}}},
		storePipeline: storeCounts{requests: 17, served: 10, unavailable: 4, stalled: 2, missing: 1},
		base:          base,
	}
}

func TestSummaryFormat(t *testing.T) {
	var b bytes.Buffer
	printSummary(&b, fixedSummary())
	out := b.String()
	for _, want := range []string{
		"jobq demo: mirror /src (12 objects, 0.0 MB) from a simulated object store\n",
		"store     http://127.0.0.1:1: latency log-normal, median 10ms, p99 64ms, max 1s; 3% 503s, 1% stalls\n",
		"fetch 128 workers (6 attempts, backoff 20ms..1s full jitter, 250ms per attempt) -> digest 2 workers",
		"objects     10 mirrored, 2 failed\n",
		"bytes       20 (0.0 MB), 10 lines\n",
		"wall time   3.5s for the whole run: pipeline 1s, baseline 2s, setup 500ms (walk, store, listing)\n",
		"throughput  12 objects/s, 0.0 MB/s\n",
		"baseline    sequential (1 worker, same store, faults and policy): 4 of 4 sampled objects in 2s, 500ms each, 0 retries\n",
		"            -> 6s for all 12 objects (extrapolated from the sample)\n",
		"speedup     6.0x over the sequential baseline (extrapolated)\n",
		// Of 5 retries, the failed job's one 503 was not absorbed.
		"absorbed    4 retries: 2 after a 503, 2 after a timeout (a stall)\n",
		"failed      1 404 Not Found, 1 503 (gave up after 2 attempts)\n",
		"store       17 requests: 10 served, 4 503s, 2 stalled, 1 not found\n",
		"checksums   the baseline's 4 objects match the pipeline's",
		"top 2 of 2 directories by bytes\n",
		"failed objects (2):\n  gone: 404 Not Found\n  down: 503 Service Unavailable\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{
		`submission to result +5.00ms +9.00ms +10.0ms +10.0ms`,
		`fetch: queued +1.00ms +1.00ms +1.00ms +1.00ms`,
		`fetch: running +2.00ms`,
		`digest: running +1.00ms`,
		`fetch +128 +12 +10 +2 +5 +0 +0`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("summary does not match %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "interrupted") {
		t.Errorf("summary of a whole run says interrupted:\n%s", out)
	}
}

func TestSummaryFlagsMismatchAndUnfinishedRuns(t *testing.T) {
	s := fixedSummary()
	s.base.sums["d0/k0"] = [sha256.Size]byte{1}
	s.run.agg.failed-- // one object not done: no speedup to claim
	s.interrupted = true
	var b bytes.Buffer
	printSummary(&b, s)
	for _, want := range []string{
		"interrupted: a partial summary",
		"objects     10 mirrored, 1 failed, 1 not done\n",
		"speedup     none to report (the pipeline did not finish)\n",
		"checksums   MISMATCH: 1 of the baseline's 4 objects differ from the pipeline's",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		failed, maxFailures int
		interrupted         bool
		want                int
	}{
		{0, 0, false, exitOK},
		{1, 0, false, exitFailed},
		{1, 1, false, exitOK},
		{5, 4, false, exitFailed},
		{5, -1, false, exitOK},
		{0, 0, true, exitInterrupted},
		{3, -1, true, exitInterrupted},
	} {
		s := &summary{run: &pipelineRun{agg: &aggregate{failed: tc.failed}}, interrupted: tc.interrupted}
		if got := exitCode(s, tc.maxFailures); got != tc.want {
			t.Errorf("exitCode(%d failed, -max-failures %d, interrupted %v) = %d, want %d",
				tc.failed, tc.maxFailures, tc.interrupted, got, tc.want)
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	root := writeTree(t, map[string]string{"f": "x\n"})
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		message string // in stderr
	}{
		{"missing dir", []string{"-dir", root + "/nope"}, exitFailed, "no such file"},
		{"file as dir", []string{"-dir", root + "/f"}, exitFailed, "not a directory"},
		{"unknown flag", []string{"-bogus"}, exitUsage, "flag provided but not defined"},
		{"bad int", []string{"-workers", "many"}, exitUsage, "invalid value"},
		{"no workers", []string{"-workers", "0"}, exitUsage, "-workers must be >= 1"},
		{"no attempts", []string{"-attempts", "0"}, exitUsage, "-attempts must be >= 1"},
		{"no timeout", []string{"-timeout", "0s"}, exitUsage, "-timeout must be > 0"},
		{"rates", []string{"-fail-rate", "0.7", "-stall-rate", "0.5"}, exitUsage, "with a sum <= 1"},
		{"NaN rate", []string{"-fail-rate", "NaN"}, exitUsage, "-fail-rate and -stall-rate must be in [0, 1]"},
		{"both sources", []string{"-dir", root, "-generate", "3"}, exitUsage, "exclude each other"},
		{"extra argument", []string{"extra"}, exitUsage, `unexpected argument "extra"`},
		{"help", []string{"-h"}, exitOK, "usage:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.message) {
				t.Errorf("run(%q) = %d, stderr:\n%s\nwant %d and stderr containing %q",
					tc.args, code, stderr.String(), tc.code, tc.message)
			}
		})
	}
}

func TestProgressOffATerminalWritesALinePerPhase(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b)
	if p.tty {
		t.Fatal("a bytes.Buffer is a terminal")
	}
	n := 0
	stop := p.start(func() string { n++; return fmt.Sprintf("line %d", n) })
	stop() // before the first tick: the phase still leaves its line
	if b.String() != "line 1\n" {
		t.Errorf("progress wrote %q, want one line", b.String())
	}
}
