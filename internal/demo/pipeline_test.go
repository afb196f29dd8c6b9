package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testConfig is a configuration for small, fast runs: the defaults of the
// command line with short timeouts and backoffs.
func testConfig(t *testing.T, args ...string) config {
	t.Helper()
	cfg, err := parseFlags(append([]string{"-workers", "4", "-timeout", "200ms", "-latency", "0"}, args...), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.backoff = time.Millisecond
	return cfg
}

// listItems lists a store's objects as pipeline items.
func listItems(t *testing.T, st *store, c *client) []*item {
	t.Helper()
	infos, err := listObjects(context.Background(), c.http, st.URL)
	if err != nil {
		t.Fatal(err)
	}
	items := make([]*item, len(infos))
	for i, o := range infos {
		items[i] = &item{key: o.key}
	}
	return items
}

// smallTree is the fixed tree of the pipeline tests.
var smallTree = map[string]string{
	"a.txt":          "one\ntwo\n",
	"b.txt":          "no newline at end",
	"empty":          "",
	"sub/c.go":       "package c\n\nfunc C() {}\n",
	"sub/d.go":       "package c\n",
	"sub/deep/e.txt": "1\n2\n3\n4\n5\n",
}

// script returns a store's decide function that gives the n-th request for
// key the n-th fault listed for it, and serves the rest.
func script(faults map[string][]fault) func(string, int) fault {
	return func(key string, n int) fault {
		if fs := faults[key]; n <= len(fs) {
			return fs[n-1]
		}
		return serve
	}
}

func TestPipelineAbsorbsFaultsAndAggregates(t *testing.T) {
	d, err := newDirObjects(writeTree(t, smallTree))
	if err != nil {
		t.Fatal(err)
	}
	st, c := newTestStore(t, d, script(map[string][]fault{
		"a.txt":          {unavailable, unavailable},
		"sub/c.go":       {stall},
		"sub/deep/e.txt": {unavailable, stall},
	}))
	items := listItems(t, st, c)
	ended := map[int]int{} // afterItem's n → calls
	// Without its timeouts the pipeline would wait for the stalls for ever.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	run := runPipeline(ctx, testConfig(t), c, items, nil, func(n int) { ended[n]++ })

	// Every item ends once, and all of them succeed.
	if want := map[int]int{1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1}; !cmp.Equal(ended, want) {
		t.Errorf("afterItem calls by n: %v, want one for each of 1..6", ended)
	}
	a := run.agg
	if a.done != 6 || a.failed != 0 || run.interrupted {
		t.Fatalf("%d done, %d failed, interrupted %v; want 6, 0, false (errors %v)", a.done, a.failed, run.interrupted, a.errs)
	}
	// The aggregate: totals, digests and directories of the tree.
	var wantDigest [sha256.Size]byte
	wantSums := map[string][sha256.Size]byte{}
	var wantBytes int64
	for k, v := range smallTree {
		sum := sha256.Sum256([]byte(v))
		wantSums[k] = sum
		xorInto(&wantDigest, sum)
		wantBytes += int64(len(v))
	}
	if a.lines != 12 || a.bytes != wantBytes || a.digest != wantDigest {
		t.Errorf("aggregate: %d lines, %d bytes, digest %x; want 12, %d, %x", a.lines, a.bytes, a.digest, wantBytes, wantDigest)
	}
	if diff := cmp.Diff(wantSums, a.sums); diff != "" {
		t.Errorf("digests by key (-want +got):\n%s", diff)
	}
	wantDirs := map[string]dirTotal{".": {".", 3, 25, 3}, "sub": {"sub", 3, 43, 9}}
	gotDirs := map[string]dirTotal{}
	for k, v := range a.dirs {
		gotDirs[k] = *v
	}
	if diff := cmp.Diff(wantDirs, gotDirs, cmp.AllowUnexported(dirTotal{})); diff != "" {
		t.Errorf("directories (-want +got):\n%s", diff)
	}

	// Retries absorbed the 503s, and timeouts the stalls, all of them.
	by, n := run.fetch.absorbed()
	if want := map[string]int{causeUnavailable: 3, causeTimeout: 2}; n != 5 || !cmp.Equal(by, want) {
		t.Errorf("absorbed %d retries %v, want 5 %v", n, by, want)
	}
	if sc := st.counts(); sc.unavailable != 3 || sc.stalled != 2 || sc.served != 6 {
		t.Errorf("store counts %+v, want 3 unavailable, 2 stalled, 6 served", sc)
	}
	f := run.pools[0].m
	if f.Submitted != 6 || f.Succeeded != 6 || f.Retried != 5 || run.pools[1].m.Succeeded != 6 {
		t.Errorf("pool metrics %+v, want fetch 6 submitted and succeeded with 5 retries, digest 6 succeeded", run.pools)
	}
	// Each stage saw each item end; a stalled attempt ran its timeout out.
	if len(run.fetch.running) != 6 || len(run.digest.running) != 6 || len(a.latencies) != 6 {
		t.Errorf("%d fetch ends, %d digest ends, %d latencies; want 6 each", len(run.fetch.running), len(run.digest.running), len(a.latencies))
	}
	if p := percentile(run.fetch.running, 100); p < 200*time.Millisecond {
		t.Errorf("longest fetch ran %v, want at least one 200ms timeout", p)
	}
}

func TestPipelineCountsFailuresByCause(t *testing.T) {
	objs := mapObjects{keys: []string{"ok", "gone", "down", "hung"}, data: map[string]string{"ok": "x\n", "down": "y", "hung": "z"}}
	st, c := newTestStore(t, objs, func(key string, _ int) fault {
		switch key {
		case "down":
			return unavailable
		case "hung":
			return stall
		}
		return serve
	})
	cfg := testConfig(t, "-attempts", "3")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	run := runPipeline(ctx, cfg, c, listItems(t, st, c), nil, nil)

	a := run.agg
	if a.done != 1 || a.failed != 3 {
		t.Errorf("%d done, %d failed; want 1, 3", a.done, a.failed)
	}
	want := map[string]int{
		"404 Not Found": 1,
		causeUnavailable + " (gave up after 3 attempts)": 1,
		causeTimeout + " (gave up after 3 attempts)":     1,
	}
	if diff := cmp.Diff(want, run.fetch.failures); diff != "" {
		t.Errorf("failures by cause (-want +got):\n%s", diff)
	}
	// Retries of jobs that failed in the end were not absorbed.
	if by, n := run.fetch.absorbed(); n != 0 {
		t.Errorf("absorbed %d retries %v, want none", n, by)
	}
	if m := run.pools[0].m; m.Failed != 3 || m.Retried != 4 {
		t.Errorf("fetch metrics %+v, want 3 failed, 4 retried", m)
	}
	if got := exitCode(&summary{run: run}, 0); got != exitFailed {
		t.Errorf("exit status with 3 failures and -max-failures 0: %d, want %d", got, exitFailed)
	}
}

func TestRunMirrorsAndCompares(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-generate", "300", "-latency", "2ms", "-sample", "20", "-workers", "32"}, &stdout, &stderr)
	out := stdout.String()
	if code != exitOK {
		t.Fatalf("run exited %d, stderr:\n%s\nstdout:\n%s", code, stderr.String(), out)
	}
	for _, want := range []string{
		`(?m)^pipeline +[0-9.]+s 300/300 [0-9,]+/s busy 0 queued 0 retries \d+ timeouts \d+$`, // the last progress line, off a terminal
		`(?m)^baseline +[0-9.]+s 20/20 sampled objects`,
		`objects +300 mirrored, 0 failed\n`,
		`-> [0-9.]+m?s for all 300 objects \(extrapolated from the sample\)`,
		`speedup +[0-9.]+x over the sequential baseline \(extrapolated\)`,
		`checksums +the baseline's 20 objects match the pipeline's`,
		`(?m)^ +fetch +32 +300 +300 +0 `,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output does not match %q:\n%s", want, out)
		}
	}
}

func TestRunInterruptedPrintsPartialSummary(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := testConfig(t, "-generate", "200", "-latency", "5ms", "-sample", "10")
	cfg.afterItem = func(n int) {
		if n == 20 {
			cancel()
		}
	}
	var out bytes.Buffer
	s, err := mirror(ctx, cfg, time.Now(), newProgress(&out))
	if err != nil {
		t.Fatal(err)
	}
	if !s.interrupted || s.base != nil || exitCode(s, -1) != exitInterrupted {
		t.Errorf("interrupted %v, baseline %v, exit %d; want true, none, %d", s.interrupted, s.base, exitCode(s, -1), exitInterrupted)
	}
	printSummary(&out, s)
	m := regexp.MustCompile(`objects +(\d+) mirrored, 0 failed, (\d+) not done`).FindStringSubmatch(out.String())
	if !strings.Contains(out.String(), "interrupted: a partial summary") || m == nil {
		t.Fatalf("no partial summary:\n%s", out.String())
	}
	done, _ := strconv.Atoi(m[1])
	left, _ := strconv.Atoi(m[2])
	if done < 20 || done >= 200 || done+left != 200 {
		t.Errorf("partial summary says %d mirrored, %d not done; want at least 20, and 200 in all", done, left)
	}
	if !strings.Contains(out.String(), "baseline    none (interrupted)") {
		t.Errorf("partial summary does not say the baseline was skipped:\n%s", out.String())
	}
}
