package jobq

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// modulePath prefixes the function names of jobq's own code, internal
// packages included, in a goroutine dump.
const modulePath = "github.com/seed-bb9ff1e7/jobq"

// leakWait bounds how long checkNoLeak waits for jobq's goroutines to exit.
// A pool's goroutines exit within microseconds of the last job; the margin
// is for -race on a loaded machine, and is spent only when a test leaks.
const leakWait = 10 * time.Second

// checkNoLeak fails t if, once t and the cleanups it registers later have
// finished, a goroutine running jobq code (a worker, a timer callback, a
// submitter blocked in a pool) is left that was not running before
// checkNoLeak was called. It waits up to leakWait for such goroutines to
// exit, then fails listing their stacks.
//
// Call it first in a test, before building pools, so the pools' own cleanups
// run before the check. It tells goroutines apart by the code they run, not by
// pool: a test that calls it must not run in parallel with tests that start
// pools. In a synctest test, call it with the outer t, before synctest.Test.
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := jobqGoroutines()
	t.Cleanup(func() {
		if left := newJobqGoroutines(before, leakWait); len(left) > 0 {
			t.Errorf("%d goroutine(s) running jobq code still alive %v after the test:\n\n%s",
				len(left), leakWait, strings.Join(left, "\n\n"))
		}
	})
}

// newJobqGoroutines waits up to wait for the goroutines running jobq code
// that are not in before to exit, and returns the stacks of those left.
func newJobqGoroutines(before map[uint64]string, wait time.Duration) []string {
	deadline := time.Now().Add(wait)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		var left []string
		for id, stack := range jobqGoroutines() {
			if _, ok := before[id]; !ok {
				left = append(left, strings.TrimSpace(stack))
			}
		}
		if len(left) == 0 || !time.Now().Before(deadline) {
			return left
		}
		// Not synchronisation: the goroutines are given time to exit.
		time.Sleep(pause)
	}
}

// jobqGoroutines returns the stacks of the goroutines that run jobq code,
// keyed by goroutine id. Code in _test.go files does not count, so test
// goroutines (the caller's included) count only while inside the library.
func jobqGoroutines() map[uint64]string {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	gs := make(map[uint64]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		id, err := goroutineID(g)
		if err != nil {
			continue
		}
		if runsJobqCode(g) {
			gs[id] = g
		}
	}
	return gs
}

// goroutineID parses the id from a stack's header, "goroutine 42 [chan receive]:".
func goroutineID(stack string) (uint64, error) {
	rest, ok := strings.CutPrefix(stack, "goroutine ")
	if !ok {
		return 0, fmt.Errorf("not a goroutine stack: %.40q", stack)
	}
	id, _, _ := strings.Cut(rest, " ")
	return strconv.ParseUint(id, 10, 64)
}

// runsJobqCode reports whether a stack has a frame, its creator's included,
// in a non-test file of jobq. A frame is a function line followed by a
// tab-indented "file:line" line.
func runsJobqCode(stack string) bool {
	lines := strings.Split(stack, "\n")
	for i := 1; i+1 < len(lines); i++ {
		fn := strings.TrimPrefix(lines[i], "created by ")
		file, ok := strings.CutPrefix(lines[i+1], "\t")
		if !ok || !strings.HasPrefix(fn, modulePath) {
			continue
		}
		if rest := fn[len(modulePath):]; !strings.HasPrefix(rest, ".") && !strings.HasPrefix(rest, "/") {
			continue // another module whose path merely starts the same
		}
		if !strings.Contains(file, "_test.go:") {
			return true
		}
	}
	return false
}

// TestCheckNoLeakSpotsAStuckWorker checks the checker: a worker blocked in a
// handler is reported, and nothing is once the pool has closed.
func TestCheckNoLeakSpotsAStuckWorker(t *testing.T) {
	before := jobqGoroutines()
	gate := make(chan struct{})
	started := make(chan struct{})
	p := New(1, func(_ context.Context, _ int) (int, error) {
		close(started)
		<-gate
		return 0, nil
	})
	r := p.Submit(context.Background(), 1)
	<-started
	if left := newJobqGoroutines(before, 0); len(left) != 1 {
		t.Errorf("with one worker blocked in a handler, found %d new jobq goroutines, want 1:\n\n%s",
			len(left), strings.Join(left, "\n\n"))
	}
	close(gate)
	if _, err := r.Await(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if left := newJobqGoroutines(before, leakWait); len(left) > 0 {
		t.Errorf("after Close, %d new jobq goroutines are left:\n\n%s", len(left), strings.Join(left, "\n\n"))
	}
}
