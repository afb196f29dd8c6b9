package jobq

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// This file holds the reliability checks of issue 7: TestStress throws
// every kind of submission, handler and control call at a pool at once and
// shuts it down in the middle; FuzzPool does the same one operation at a
// time, in fake time. Both check the same invariants:
//
//   - every accepted job ends exactly once: its Result completes, with the
//     same outcome on every Await, after at most MaxAttempts attempts, with
//     its own output (not another job's);
//   - once idle, Submitted == Succeeded + Failed + Canceled and
//     Submitted + Rejected == the submission calls made;
//   - Shutdown keeps its doc comment's promise: nil means every job has ended
//     and every worker exited (so no handler starts later); ctx.Err() means
//     the jobs it gave up on ended with ErrClosed, and no handler starts
//     later with a live ctx (see checkGiveUp);
//   - no goroutine running jobq code is left (checkNoLeak).

// errStress is the error of handlers that fail.
var errStress = errors.New("stress: handler failed")

// stressKind says what a stress handler does.
type stressKind uint8

const (
	kindSucceed  stressKind = iota // returns the job's output
	kindFail                       // returns errStress
	kindPanic                      // panics
	kindBlock                      // ignores its ctx, waiting for release or its wait to pass, then succeeds
	kindHonour                     // waits for its ctx to end (returning ctx.Err()) or its wait to pass
	kindIgnore                     // sleeps its wait, ignoring its ctx, then succeeds
	kindForkJoin                   // submits a child to its own pool with its ctx, awaits it, succeeds as it does
	numKinds
)

// stressJob is the input of a stress handler.
type stressJob struct {
	id   int
	kind stressKind
	wait time.Duration // for kindBlock, kindHonour, kindIgnore
}

// stressOut is the output a stress job succeeds with: tied to its id, so a
// Result that got another job's output is caught.
func stressOut(id int) int { return 2*id + 1 }

// stressMaxJobs bounds the ids a TestStress round hands out.
const stressMaxJobs = 1 << 17

// outcomeCounts tallies final outcomes the way Metrics does. Expired holds
// the plain context.DeadlineExceeded outcomes, which Metrics counts either
// way: Failed at a timeout, Canceled when the submission ctx expired before
// the job ran.
type outcomeCounts struct{ Succeeded, Failed, Canceled, Expired uint64 }

// add counts err as Metrics documents: nil succeeded; cancelled when it is
// (or wraps) context.Canceled or ErrClosed and is no panic, nor a job that
// used up its retries; failed otherwise, but for a plain deadline.
func (c *outcomeCounts) add(err error) {
	var pe *PanicError
	var ex *ExhaustedError
	switch {
	case err == nil:
		c.Succeeded++
	case errors.As(err, &pe) || errors.As(err, &ex):
		c.Failed++
	case errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed):
		c.Canceled++
	case errors.Is(err, context.DeadlineExceeded):
		c.Expired++
	default:
		c.Failed++
	}
}

// exceeds reports whether c, which saw only some of the jobs, counts more
// outcomes of some kind than Metrics m: then m missed some.
func (c outcomeCounts) exceeds(m Metrics) bool {
	return m.Succeeded < c.Succeeded || m.Failed < c.Failed || m.Canceled < c.Canceled ||
		m.Failed+m.Canceled < c.Failed+c.Canceled+c.Expired
}

// tracked is a Result a stress or fuzz run awaits at its end.
type tracked struct {
	r           *Result[int]
	id          int
	maxAttempts int
	accepted    bool // known accepted (TrySubmit said so); false: unknown (Submit)
	// doneAtClose says whether the Result had completed when Shutdown
	// returned; set only for Results tracked before that.
	doneAtClose, seenAtClose bool
}

// lateStarts records, by job id, the handlers that started after a
// Shutdown returned: all of them, those with a live ctx, and those with a
// live ctx whose job's Result had completed already.
type lateStarts struct {
	mu               sync.Mutex
	any, live, rerun map[int]bool
}

func (l *lateStarts) record(id int, live, resultDone bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.any == nil {
		l.any, l.live, l.rerun = map[int]bool{}, map[int]bool{}, map[int]bool{}
	}
	l.any[id] = true
	if live {
		l.live[id] = true
		if resultDone {
			l.rerun[id] = true
		}
	}
}

func (l *lateStarts) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.any)
}

// checkGiveUp checks what Shutdown promises when it returns ctx.Err().
// pending maps the jobs whose Results had not completed when it returned to
// how they ended. Each must end with ErrClosed, or with an outcome its
// attempt reached on its own as Shutdown gave up: its handler had returned
// (ranBefore), or its per-attempt timeout, its submission ctx or a Cancel
// call ended it at that moment (context.DeadlineExceeded, context.Canceled).
// A handler may still start after Shutdown returned when its worker was
// calling it as Shutdown gave up, but with its ctx cancelled already: none
// may start with a live ctx. It returns the violations.
func checkGiveUp(pending map[int]error, late *lateStarts, ranBefore func(id int) bool) (problems []string) {
	late.mu.Lock()
	defer late.mu.Unlock()
	for id, err := range pending {
		switch {
		case errors.Is(err, ErrClosed), ranBefore(id):
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			// Its timeout, ctx or a Cancel won the race with the give-up.
		default:
			problems = append(problems, fmt.Sprintf("job %d: pending when Shutdown gave up, ended with %v, want ErrClosed", id, err))
		}
	}
	for id := range late.live {
		if late.rerun[id] {
			problems = append(problems, fmt.Sprintf("job %d: handler started after Shutdown returned, with a live ctx, "+
				"though the job's Result had completed", id))
			continue
		}
		problems = append(problems, fmt.Sprintf("job %d: handler started after Shutdown returned, with a live ctx", id))
	}
	return problems
}

// stressRun is the shared state of one TestStress round.
type stressRun struct {
	p       *Pool[stressJob, int]
	release chan struct{} // closed to let kindBlock handlers go

	nextID  atomic.Int64
	starts  []atomic.Int32 // handler starts per id
	maxAtt  []atomic.Int32 // MaxAttempts per id, 0 for refused submissions
	calls   atomic.Int64   // submission calls: Submit, TrySubmit, Go, fork–join children
	refused atomic.Int64   // refusals seen by TrySubmit and Go
	goOK    atomic.Int64   // Go calls accepted

	totalStarts atomic.Int64
	inHandler   atomic.Int64
	closed      atomic.Bool   // Shutdown has returned
	late        lateStarts    // handlers started after Shutdown returned
	ranBefore   []atomic.Bool // per id: a handler returned before Shutdown did
	wrongOut    atomic.Int64  // fork–join children that returned another job's output

	mu      sync.Mutex
	results []tracked
	byID    map[int]*Result[int]
}

// newID returns a fresh job id, or false when the round has used them all.
func (s *stressRun) newID() (int, bool) {
	id := int(s.nextID.Add(1)) - 1
	return id, id < stressMaxJobs
}

func (s *stressRun) track(tr tracked) {
	s.mu.Lock()
	s.results = append(s.results, tr)
	s.byID[tr.id] = tr.r
	s.mu.Unlock()
}

// resultDone reports whether job id has a Result, completed.
func (s *stressRun) resultDone(id int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byID[id]
	return ok && isDone(r)
}

// handle is the stress handler.
func (s *stressRun) handle(ctx context.Context, in stressJob) (int, error) {
	s.starts[in.id].Add(1)
	s.totalStarts.Add(1)
	if s.closed.Load() {
		done := s.resultDone(in.id) // before ctx.Err(): Cancel completes the Result, then cancels the ctx
		s.late.record(in.id, ctx.Err() == nil, done)
	}
	s.inHandler.Add(1)
	defer func() {
		s.inHandler.Add(-1)
		if !s.closed.Load() {
			s.ranBefore[in.id].Store(true)
		}
	}()
	switch in.kind {
	case kindFail:
		return 0, errStress
	case kindPanic:
		panic(fmt.Sprintf("stress job %d panics", in.id))
	case kindBlock:
		// Workload, not synchronisation: the handler outlives its
		// timeout, and Shutdown's deadline, for a while.
		tm := time.NewTimer(in.wait)
		select {
		case <-s.release:
		case <-tm.C:
		}
		tm.Stop()
	case kindHonour:
		tm := time.NewTimer(in.wait)
		defer tm.Stop()
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tm.C:
		}
	case kindIgnore:
		time.Sleep(in.wait)
	case kindForkJoin:
		id, ok := s.newID()
		if !ok {
			break
		}
		rng := rand.New(rand.NewPCG(uint64(in.id), uint64(id)))
		child := stressJob{id: id, kind: []stressKind{kindSucceed, kindFail, kindPanic, kindIgnore}[rng.IntN(4)],
			wait: time.Duration(rng.IntN(200)) * time.Microsecond}
		pol, maxAtt := stressPolicy(rng)
		s.maxAtt[id].Store(int32(maxAtt))
		s.calls.Add(1)
		r := s.p.Submit(ctx, child, pol...)
		s.track(tracked{r: r, id: id, maxAttempts: maxAtt})
		v, err := r.Await(ctx)
		if err != nil {
			return 0, fmt.Errorf("child %d: %w", id, err)
		}
		if v != stressOut(id) {
			s.wrongOut.Add(1)
		}
	}
	return stressOut(in.id), nil
}

// stressPolicy returns a random policy (none a quarter of the time: the
// pool default) and the MaxAttempts it resolves to.
func stressPolicy(rng *rand.Rand) ([]Policy, int) {
	if rng.IntN(4) == 0 {
		return nil, 1
	}
	p := Policy{
		MaxAttempts: 1 + rng.IntN(3),
		Backoff:     Constant(time.Duration(1+rng.IntN(1000)) * time.Microsecond),
	}
	if rng.IntN(2) == 0 {
		p.Timeout = time.Duration(200+rng.IntN(3000)) * time.Microsecond
	}
	if rng.IntN(8) == 0 {
		p.MaxElapsed = time.Duration(1+rng.IntN(5)) * time.Millisecond
	}
	if rng.IntN(8) == 0 {
		p.Jitter = FullJitter
	}
	if rng.IntN(8) == 0 {
		p.RetryIf = func(error) bool { return true } // panics and timeouts too
	}
	return []Policy{p}, p.MaxAttempts
}

// stressJobFor returns a random job with the given id; with longBlocks,
// some kindBlock jobs block for up to 100ms (or until release).
func stressJobFor(rng *rand.Rand, id int, longBlocks bool) stressJob {
	j := stressJob{id: id, kind: stressKind(rng.IntN(int(numKinds)))}
	switch j.kind {
	case kindBlock:
		j.wait = time.Duration(1+rng.IntN(10)) * time.Millisecond
		if longBlocks && rng.IntN(4) == 0 {
			// Long enough to outlive a short Shutdown deadline, short
			// enough not to stall the pool for the whole round.
			j.wait = time.Duration(20+rng.IntN(80)) * time.Millisecond
		}
	case kindHonour:
		j.wait = time.Duration(1+rng.IntN(3000)) * time.Microsecond
	case kindIgnore:
		j.wait = time.Duration(rng.IntN(300)) * time.Microsecond
	}
	return j
}

// submitter makes submission calls until Shutdown refuses one or stop
// closes.
func (s *stressRun) submitter(seed uint64, stop <-chan struct{}, longBlocks bool) {
	rng := rand.New(rand.NewPCG(seed, 7))
	var cancels []context.CancelFunc // of ctxs that end on their own
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	for {
		select {
		case <-stop:
			return
		default:
		}
		id, ok := s.newID()
		if !ok {
			return
		}
		in := stressJobFor(rng, id, longBlocks)
		pol, maxAtt := stressPolicy(rng)
		s.maxAtt[id].Store(int32(maxAtt))

		// The submission ctx: mostly none; sometimes one that ends on
		// its own soon, or is cancelled right after the call.
		ctx, cancelNow := context.Background(), context.CancelFunc(func() {})
		switch rng.IntN(8) {
		case 0:
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(100+rng.IntN(3000))*time.Microsecond)
			cancels = append(cancels, cancel)
		case 1:
			ctx, cancelNow = context.WithCancel(ctx)
		}

		s.calls.Add(1)
		var err error
		switch rng.IntN(3) {
		case 0:
			r := s.p.Submit(ctx, in, pol...)
			s.track(tracked{r: r, id: id, maxAttempts: maxAtt})
			if isDone(r) {
				_, err = r.Await(context.Background())
			}
		case 1:
			var r *Result[int]
			r, err = s.p.TrySubmit(ctx, in, pol...)
			if err != nil {
				s.refused.Add(1)
				s.maxAtt[id].Store(0)
			} else {
				s.track(tracked{r: r, id: id, maxAttempts: maxAtt, accepted: true})
			}
		case 2:
			err = s.p.TryGo(ctx, in, pol...)
			if err != nil {
				s.refused.Add(1)
				s.maxAtt[id].Store(0)
			} else {
				s.goOK.Add(1)
			}
		}
		cancelNow()
		if errors.Is(err, ErrClosed) {
			return // intake has stopped
		}
	}
}

// TestStress runs six rounds of mixed load against a pool (8 submitters
// using Submit, TrySubmit and Go with random policies and submission ctxs;
// handlers that succeed, fail, panic, block past their timeout, honour or
// ignore their ctx, and fork–join into their own pool; a resize storm;
// random Cancel calls), shuts the pool down in the middle of it, and checks
// the invariants listed at the top of this file. About 1.6s under -race on
// 2 cores.
func TestStress(t *testing.T) {
	checkNoLeak(t)
	// Each round runs about 250ms of load, then shuts down: graceful
	// rounds give Shutdown a second (handlers that block do so for 10ms at
	// most, so it should return nil), deadline rounds give it 5ms at most
	// while some handlers block for up to 100ms (it should mostly return
	// context.DeadlineExceeded). Both outcomes are checked as they come.
	const load = 250 * time.Millisecond
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	var nilRounds, deadlineRounds int
	for round := range 6 {
		graceful := round%2 == 0
		name := fmt.Sprintf("round %d deadline", round)
		if graceful {
			name = fmt.Sprintf("round %d graceful", round)
		}
		t.Run(name, func(t *testing.T) {
			err := stressRound(t, seed+uint64(round), load, graceful)
			if err == nil {
				nilRounds++
			} else {
				deadlineRounds++
			}
		})
	}
	t.Logf("Shutdown returned nil in %d rounds, ctx.Err() in %d", nilRounds, deadlineRounds)
	if nilRounds == 0 || deadlineRounds == 0 {
		// Not a failure of the pool: the rounds are meant to cover both.
		t.Logf("only one Shutdown outcome was exercised this run")
	}
}

// stressRound runs one TestStress round and returns what Shutdown returned.
func stressRound(t *testing.T, seed uint64, load time.Duration, graceful bool) error {
	rng := rand.New(rand.NewPCG(seed, 1))
	s := &stressRun{
		release:   make(chan struct{}),
		starts:    make([]atomic.Int32, stressMaxJobs),
		maxAtt:    make([]atomic.Int32, stressMaxJobs),
		ranBefore: make([]atomic.Bool, stressMaxJobs),
		byID:      map[int]*Result[int]{},
	}
	s.p = New(1+rng.IntN(8), s.handle,
		WithQueueSize(1+rng.IntN(32)),
		WithPolicy(Policy{Backoff: Constant(50 * time.Microsecond)}))
	releaseOnce := sync.OnceFunc(func() { close(s.release) })
	stop := make(chan struct{})
	stopOnce := sync.OnceFunc(func() { close(stop) })
	t.Cleanup(func() {
		// On an early failure: stop the load, let every handler go and
		// stop the pool, so that the leak check reports leaks, not this
		// test's blocks.
		stopOnce()
		releaseOnce()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.p.Shutdown(ctx)
	})

	var submitters sync.WaitGroup
	for i := range 8 {
		submitters.Go(func() { s.submitter(seed*64+uint64(i), stop, !graceful) })
	}
	// A resize storm.
	var others sync.WaitGroup
	others.Go(func() {
		rng := rand.New(rand.NewPCG(seed, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			s.p.Resize(1 + rng.IntN(8))
			time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond) // pacing, not synchronisation
		}
	})
	// Random Cancel calls, mostly on recent (likely still pending) Results.
	others.Go(func() {
		rng := rand.New(rand.NewPCG(seed, 3))
		for {
			select {
			case <-stop:
				return
			default:
			}
			s.mu.Lock()
			var r *Result[int]
			if n := len(s.results); n > 0 {
				r = s.results[n-1-rng.IntN(min(n, 64))].r
			}
			s.mu.Unlock()
			if r != nil {
				r.Cancel()
			}
			time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond) // pacing
		}
	})

	time.Sleep(load) // the load runs meanwhile: workload timing, not synchronisation
	deadline := time.Second
	if !graceful {
		deadline = time.Duration(rng.IntN(5000)) * time.Microsecond
	}
	sctx, cancel := context.WithTimeout(context.Background(), deadline)
	shutdownErr := s.p.Shutdown(sctx)
	s.closed.Store(true)
	cancel()
	startsAtClose := s.totalStarts.Load()
	inHandlerAtClose := s.inHandler.Load()
	mAtClose := s.p.Metrics()
	s.mu.Lock()
	for i := range s.results {
		s.results[i].seenAtClose = true
		s.results[i].doneAtClose = isDone(s.results[i].r)
	}
	s.mu.Unlock()
	t.Logf("Shutdown(%v deadline) = %v; Metrics then: %+v", deadline, shutdownErr, mAtClose)

	switch {
	case shutdownErr == nil:
		// Everything accepted has ended and every worker has exited.
		if inHandlerAtClose != 0 {
			t.Errorf("Shutdown returned nil with %d handlers still running", inHandlerAtClose)
		}
		// Not Running or Workers: the resize storm goes on, and Resize on a
		// closed pool starts workers that exit at once.
		if mAtClose.Queued != 0 {
			t.Errorf("Shutdown returned nil with Queued = %d, want 0", mAtClose.Queued)
		}
		if got := mAtClose.Succeeded + mAtClose.Failed + mAtClose.Canceled; got != mAtClose.Submitted {
			t.Errorf("Shutdown returned nil with Succeeded+Failed+Canceled = %d, Submitted = %d", got, mAtClose.Submitted)
		}
	case errors.Is(shutdownErr, context.DeadlineExceeded):
	default:
		t.Errorf("Shutdown = %v, want nil or context.DeadlineExceeded", shutdownErr)
	}

	// Stop the load, then let the blocked handlers go and wait for the pool.
	stopOnce()
	submitters.Wait()
	others.Wait()
	releaseOnce()
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if err := s.p.Shutdown(cctx); err != nil {
		t.Fatalf("Shutdown once every handler was released: %v, want nil", err)
	}

	checkStressRun(t, s, shutdownErr, startsAtClose)
	return shutdownErr
}

// checkStressRun checks the invariants once the pool s ran has closed.
func checkStressRun(t *testing.T, s *stressRun, shutdownErr error, startsAtClose int64) {
	t.Helper()
	var problems []string
	report := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	defer func() {
		if len(problems) > 0 {
			t.Errorf("%d or more invariant violations:\n%s", len(problems), strings.Join(problems, "\n"))
		}
	}()

	if shutdownErr == nil {
		if n := s.totalStarts.Load(); n != startsAtClose {
			report("%d handlers started after Shutdown returned nil", n-startsAtClose)
		}
	}
	if n := s.wrongOut.Load(); n > 0 {
		report("%d fork–join children returned another job's output", n)
	}

	// Every Result completes, once, with a stable outcome.
	var byTry outcomeCounts
	pending := map[int]error{} // Results pending when Shutdown returned, and how they ended
	bound := time.NewTimer(10 * time.Second)
	defer bound.Stop()
	s.mu.Lock()
	results := s.results
	s.mu.Unlock()
	for _, tr := range results {
		select {
		case <-tr.r.Done():
		case <-bound.C:
			t.Fatalf("job %d: Result has not completed 10s after the pool closed", tr.id)
		}
		v1, err1 := tr.r.Await(context.Background())
		v2, err2 := tr.r.Await(context.Background())
		if v1 != v2 || err1 != err2 {
			report("job %d: Await gave (%d, %v), then (%d, %v)", tr.id, v1, err1, v2, err2)
		}
		if err1 == nil && v1 != stressOut(tr.id) {
			report("job %d: succeeded with %d, want %d", tr.id, v1, stressOut(tr.id))
		}
		if n := tr.r.Attempts(); n > tr.maxAttempts {
			report("job %d: Attempts() = %d, MaxAttempts %d", tr.id, n, tr.maxAttempts)
		}
		if tr.seenAtClose && !tr.doneAtClose {
			pending[tr.id] = err1
		}
		if tr.accepted {
			byTry.add(err1)
		}
	}

	// What Shutdown promised when it returned.
	if shutdownErr == nil {
		for id := range pending {
			report("job %d: Result pending when Shutdown returned nil", id)
		}
	} else {
		for _, f := range checkGiveUp(pending, &s.late, func(id int) bool { return s.ranBefore[id].Load() }) {
			report("%s", f)
		}
	}

	// No job ran more often than its policy allows; refused ones never.
	for id := range min(int(s.nextID.Load()), stressMaxJobs) {
		if n, most := s.starts[id].Load(), s.maxAtt[id].Load(); n > most {
			report("job %d: handler started %d times, MaxAttempts %d (0: refused)", id, n, most)
		}
	}

	// The counters add up. The workers the resize storm started after
	// Shutdown exit on their own: give them a moment.
	m := s.p.Metrics()
	for wait := time.Now().Add(10 * time.Second); m.Workers > 0 && time.Now().Before(wait); m = s.p.Metrics() {
		time.Sleep(time.Millisecond) // not synchronisation: the late workers are given time to exit
	}
	if ended := m.Succeeded + m.Failed + m.Canceled; ended != m.Submitted {
		report("idle pool: Succeeded %d + Failed %d + Canceled %d = %d, Submitted %d",
			m.Succeeded, m.Failed, m.Canceled, ended, m.Submitted)
	}
	if calls := uint64(s.calls.Load()); m.Submitted+m.Rejected != calls {
		report("Submitted %d + Rejected %d = %d, but %d submission calls were made",
			m.Submitted, m.Rejected, m.Submitted+m.Rejected, calls)
	}
	if refused := uint64(s.refused.Load()); m.Rejected < refused {
		report("Rejected = %d, but TrySubmit and Go saw %d refusals", m.Rejected, refused)
	}
	if known := uint64(s.goOK.Load()) + byTry.Succeeded + byTry.Failed + byTry.Canceled + byTry.Expired; m.Submitted < known {
		report("Submitted = %d, but TrySubmit and Go saw %d accepted", m.Submitted, known)
	}
	if byTry.exceeds(m) {
		report("Metrics count fewer outcomes than TrySubmit's Results alone: (-results +metrics)\n%s",
			cmp.Diff(byTry, outcomeCounts{Succeeded: m.Succeeded, Failed: m.Failed, Canceled: m.Canceled, Expired: byTry.Expired}))
	}
	if m.Running != 0 || m.Queued != 0 || m.Workers != 0 {
		report("closed pool: Running %d, Queued %d, Workers %d; want 0, 0, 0", m.Running, m.Queued, m.Workers)
	}
	if n := s.inHandler.Load(); n != 0 {
		report("closed pool: %d handlers still running", n)
	}
	t.Logf("%d calls, %d handler starts (%d after Shutdown returned), %d Results awaited (%d pending when Shutdown returned); Metrics %+v",
		s.calls.Load(), s.totalStarts.Load(), s.late.count(), len(results), len(pending), m)
}

// nestedRetryPool is a two-worker pool for the nested-retry checks: input 0
// blocks until gate closes, 1 submits child 2 to its own pool with a retry
// policy whose backoff is an hour and awaits it, 2 fails, 3 succeeds. It
// records the time of each start of the child.
type nestedRetryPool struct {
	*Pool[int, int]
	gate     chan struct{}
	started  chan struct{} // a blocker or parent has started
	mu       sync.Mutex
	children []time.Time
}

// nestedBackoff is the child's backoff: shorter than awaitBounded's bound.
const nestedBackoff = 30 * time.Minute

func newNestedRetryPool() *nestedRetryPool {
	n := &nestedRetryPool{gate: make(chan struct{}), started: make(chan struct{}, 2)}
	n.Pool = New(2, func(ctx context.Context, in int) (int, error) {
		switch in {
		case 0:
			n.started <- struct{}{}
			<-n.gate
		case 1:
			n.started <- struct{}{}
			// The child queues behind the blocker, so Await runs its
			// first attempt here, inline.
			_, err := n.Submit(ctx, 2, Policy{MaxAttempts: 2, Backoff: Constant(nestedBackoff)}).Await(ctx)
			return 0, err
		case 2:
			n.mu.Lock()
			n.children = append(n.children, time.Now())
			n.mu.Unlock()
			return 0, errStress
		}
		return in, nil
	})
	return n
}

func (n *nestedRetryPool) childStarts() []time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.children)
}

// TestNestedRetryWaitsOutItsBackoff pins a bug TestStress found: a job
// submitted from a handler of its own pool is queued, and when its parent
// awaits it before a worker takes it, Await runs its first attempt inline
// (help). Its queue entry stays behind. If that attempt fails and is
// retried, finish sets the job back to queued (attempt 1) before retryLater
// puts it in backoff, so a worker popping the stale entry claims attempt 2 at
// once, skipping the backoff and racing with retryLater on j.rs (the race
// detector reports typed.go finish reading rs.prev/rs.errs against
// retryLater writing them), while the job also sits in backoff.
func TestNestedRetryWaitsOutItsBackoff(t *testing.T) {
	checkNoLeak(t)
	synctest.Test(t, func(t *testing.T) {
		n := newNestedRetryPool()
		ctx := context.Background()
		start := time.Now()
		blocker := n.Submit(ctx, 0)
		<-n.started
		parent := n.Submit(ctx, 1)
		synctest.Wait() // the child's first attempt ran inline and failed; its retry is in backoff
		close(n.gate)
		if _, err := awaitBounded(t, blocker); err != nil {
			t.Fatal(err)
		}
		_, err := awaitBounded(t, parent)
		var ex *ExhaustedError
		if !errors.As(err, &ex) || ex.Attempts != 2 {
			t.Errorf("parent: %v, want the child's ExhaustedError after 2 attempts", err)
		}
		n.Close()
		var at []time.Duration
		for _, s := range n.childStarts() {
			at = append(at, s.Sub(start))
		}
		if diff := cmp.Diff([]time.Duration{0, nestedBackoff}, at); diff != "" {
			t.Errorf("child attempts started at (-want +got):\n%s", diff)
		}
		checkCounts(t, n.Metrics(), counts{Submitted: 3, Succeeded: 1, Failed: 2, Retried: 1})
	})
}

// The operations of a FuzzPool input. After two header bytes (workers
// 1..3, queue size 1..4), each operation is two bytes: the first picks the
// operation (modulo fuzzNumOps), the second is its argument.
const (
	fopSubmit     = iota // Submit a job described by arg (see fuzzJob), with a 1s submission ctx
	fopTrySubmit         // TrySubmit one
	fopGo                // Go one
	fopCancel            // Cancel Result arg
	fopResize            // Resize(arg % 4): 0 pauses
	fopAwait             // Await Result arg, for 1s at most
	fopShutdown          // Shutdown with a deadline of (arg % 4) * 5ms: 0 has passed already
	fopRelease           // release gate arg % 4
	fopSleep             // let arg % 16 milliseconds of fake time pass
	fopMap               // Map over 1 + (arg>>3)&3 jobs described by arg, with a 1s ctx
	fopMapOrdered        // the same, Ordered
	fuzzNumOps

	fuzzMaxOps = 48
	fuzzGates  = 4
)

// What a FuzzPool handler does, in the low three bits of a job's arg; bits
// 3-4 pick its gate, bits 5-7 its policy (see fuzzPolicy).
const (
	fbSucceed   = iota // returns the job's output
	fbFail             // returns errStress
	fbPanic            // panics
	fbGate             // waits for its gate, ignoring its ctx, then succeeds
	fbGateOrCtx        // waits for its gate (then succeeds) or its ctx (returning ctx.Err())
	fbSleep            // sleeps 10ms, ignoring its ctx, then succeeds
	fbForkJoin         // submits a child to its own pool with its ctx, awaits it, succeeds as it does
	fbFailFirst        // fails its first attempt, succeeds on a retry
	fuzzBehaviours
)

// fuzzPolicy returns the policy that bits 5-7 of arg pick, and the
// MaxAttempts it resolves to (0 for the invalid one).
func fuzzPolicy(arg byte) ([]Policy, int) {
	switch arg >> 5 {
	case 1:
		return []Policy{{MaxAttempts: 2, Backoff: Constant(5 * time.Millisecond)}}, 2
	case 2:
		return []Policy{{Timeout: 3 * time.Millisecond}}, 1
	case 3:
		return []Policy{{MaxAttempts: 3, Timeout: 3 * time.Millisecond, Backoff: Constant(time.Millisecond)}}, 3
	case 4:
		return []Policy{{MaxAttempts: 2, Backoff: Constant(0), RetryIf: func(error) bool { return true }}}, 2
	case 5:
		return []Policy{{MaxAttempts: 3, MaxElapsed: 8 * time.Millisecond, Backoff: Constant(2 * time.Millisecond)}}, 3
	case 6:
		return []Policy{{MaxAttempts: 2, Timeout: time.Millisecond, Backoff: Exponential(time.Millisecond, 4*time.Millisecond), Jitter: FullJitter}}, 2
	case 7:
		return []Policy{{MaxAttempts: -1}}, 0 // refused: ErrInvalidPolicy
	}
	return nil, 1
}

// fuzzJob is the input of a FuzzPool handler.
type fuzzJob struct {
	id   int
	arg  byte
	gate int
}

// fuzzRun is the state of one FuzzPool input.
type fuzzRun struct {
	p        *Pool[fuzzJob, int]
	gates    [fuzzGates]chan struct{}
	released [fuzzGates]bool

	calls     atomic.Int64
	mapLo     int64 // Map items certainly submitted: their outcome was yielded
	mapHi     int64 // Map items pulled from the source: submitted, or dropped at a stop
	inHandler atomic.Int64
	starts    atomic.Int64
	closed    atomic.Bool // a Shutdown has returned
	late      lateStarts  // handlers started after a Shutdown returned

	mu        sync.Mutex
	nextID    int
	startsN   map[int]int  // handler starts per job id
	maxAtt    map[int]int  // MaxAttempts per job id; 0 when refused
	ranBefore map[int]bool // jobs a handler of which returned before a Shutdown did
	results   []tracked
	byID      map[int]*Result[int]
	givenUp   map[int]bool // the Results pending when a Shutdown gave up
	gaveUp    bool         // a Shutdown returned ctx.Err()
}

func (r *fuzzRun) newID(maxAttempts int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := r.nextID
	r.nextID++
	r.maxAtt[id] = maxAttempts
	return id
}

func (r *fuzzRun) track(tr tracked) {
	r.mu.Lock()
	r.results = append(r.results, tr)
	r.byID[tr.id] = tr.r
	r.mu.Unlock()
}

func (r *fuzzRun) tracked() []tracked {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.results)
}

func (r *fuzzRun) handle(ctx context.Context, in fuzzJob) (int, error) {
	r.mu.Lock()
	r.startsN[in.id]++
	attempt := r.startsN[in.id]
	r.mu.Unlock()
	r.starts.Add(1)
	if r.closed.Load() {
		r.mu.Lock()
		res, ok := r.byID[in.id]
		r.mu.Unlock()
		done := ok && isDone(res) // before ctx.Err(): Cancel completes the Result, then cancels the ctx
		r.late.record(in.id, ctx.Err() == nil, done)
	}
	r.inHandler.Add(1)
	defer func() {
		r.inHandler.Add(-1)
		if !r.closed.Load() {
			r.mu.Lock()
			r.ranBefore[in.id] = true
			r.mu.Unlock()
		}
	}()
	switch in.arg & 7 {
	case fbFail:
		return 0, errStress
	case fbPanic:
		panic(fmt.Sprintf("fuzz job %d panics", in.id))
	case fbGate:
		<-r.gates[in.gate]
	case fbGateOrCtx:
		select {
		case <-r.gates[in.gate]:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	case fbSleep:
		time.Sleep(10 * time.Millisecond)
	case fbForkJoin:
		// The child fails or succeeds with the parent's policy bits.
		arg := in.arg&^7 | byte(in.id%2)*fbFail
		pol, maxAtt := fuzzPolicy(arg)
		child := fuzzJob{id: r.newID(maxAtt), arg: arg}
		r.calls.Add(1)
		res := r.p.Submit(ctx, child, pol...)
		r.track(tracked{r: res, id: child.id, maxAttempts: maxAtt})
		v, err := res.Await(ctx)
		if err != nil {
			return 0, fmt.Errorf("child %d: %w", child.id, err)
		}
		if v != stressOut(child.id) {
			return 0, fmt.Errorf("child %d returned %d, want %d", child.id, v, stressOut(child.id))
		}
	case fbFailFirst:
		if attempt == 1 {
			return 0, errStress
		}
	}
	return stressOut(in.id), nil
}

// fuzzInput builds a FuzzPool input: workers, queue size, then (op, arg)
// pairs.
func fuzzInput(workers, queue byte, ops ...byte) []byte {
	return append([]byte{workers, queue}, ops...)
}

// FuzzPool turns its input into a sequence of operations on a small pool
// (see the fop constants: submissions of jobs whose handlers succeed, fail,
// panic, block on a gate, sleep or fork–join; Cancel, Resize, Await,
// Shutdown with a short or zero deadline, gate releases, fake-time sleeps),
// run in a synctest bubble, then opens every gate, closes the pool and
// checks the invariants listed at the top of this file.
func FuzzPool(f *testing.F) {
	// Graceful: mixed jobs, then Shutdown with room to finish.
	f.Add(fuzzInput(1, 1,
		fopSubmit, fbSucceed, fopTrySubmit, fbFail, fopGo, fbPanic, fopSubmit, fbFailFirst|1<<5,
		fopAwait, 0, fopShutdown, 3))
	// Gated jobs, a cancel, then Shutdown with a zero deadline.
	f.Add(fuzzInput(2, 3,
		fopSubmit, fbGate, fopSubmit, fbGateOrCtx|1<<3, fopTrySubmit, fbSucceed, fopGo, fbGate,
		fopCancel, 1, fopShutdown, 0, fopRelease, 0, fopRelease, 1))
	// Fork–join with the queue full, a resize storm, timeouts and retries.
	f.Add(fuzzInput(0, 0,
		fopSubmit, fbForkJoin, fopSubmit, fbForkJoin|3<<5, fopResize, 3, fopSubmit, fbSleep|2<<5,
		fopResize, 1, fopSleep, 12, fopAwait, 0, fopAwait, 1, fopResize, 0, fopSubmit, fbSucceed,
		fopSleep, 15, fopResize, 2))
	// A paused pool: jobs queue up, Submit gives up waiting for room, Shutdown gives up.
	f.Add(fuzzInput(0, 0,
		fopResize, 0, fopSubmit, fbSucceed, fopSubmit, fbFail, fopTrySubmit, fbSucceed, fopGo, fbSucceed,
		fopShutdown, 1, fopSubmit, fbSucceed))
	// Maps, ordered or not, with retries and timeouts, beside fork–join and a Shutdown.
	f.Add(fuzzInput(2, 1,
		fopMap, fbSucceed|3<<3, fopMapOrdered, fbFailFirst|1<<5|2<<3, fopSubmit, fbForkJoin, fopMapOrdered, fbSleep|3<<5|3<<3,
		fopMap, fbGate|1<<3, fopRelease, 1, fopMap, fbForkJoin|2<<3, fopShutdown, 2, fopMapOrdered, fbSucceed|1<<3))
	// Bad policies, cancels after completion, repeated Shutdown.
	f.Add(fuzzInput(2, 2,
		fopSubmit, fbSucceed|7<<5, fopGo, fbSucceed|7<<5, fopSubmit, fbSucceed, fopAwait, 1,
		fopCancel, 1, fopCancel, 1, fopShutdown, 2, fopShutdown, 0, fopGo, fbSucceed))

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		checkNoLeak(t)
		synctest.Test(t, func(t *testing.T) { runFuzzPool(t, data) })
	})
}

// runFuzzPool runs one FuzzPool input in a synctest bubble.
func runFuzzPool(t *testing.T, data []byte) {
	r := &fuzzRun{startsN: map[int]int{}, maxAtt: map[int]int{},
		ranBefore: map[int]bool{}, givenUp: map[int]bool{},
		byID: map[int]*Result[int]{}}
	for i := range r.gates {
		r.gates[i] = make(chan struct{})
	}
	release := func(g int) {
		if !r.released[g] {
			r.released[g] = true
			close(r.gates[g])
		}
	}
	r.p = New(1+int(data[0])%3, r.handle, WithQueueSize(1+int(data[1])%4))
	ctx := context.Background()
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	var shutdownNil bool
	var startsAtNil int64

	ops := data[2:]
	for i := 0; i+1 < len(ops) && i < 2*fuzzMaxOps; i += 2 {
		op, arg := ops[i]%fuzzNumOps, ops[i+1]
		switch op {
		case fopSubmit, fopTrySubmit, fopGo:
			pol, maxAtt := fuzzPolicy(arg)
			in := fuzzJob{id: r.newID(maxAtt), arg: arg, gate: int(arg>>3) % fuzzGates}
			r.calls.Add(1)
			switch op {
			case fopSubmit:
				// Bounded, so that a full queue on a paused pool cannot
				// block the bubble for good.
				sctx, cancel := context.WithTimeout(ctx, time.Second)
				cancels = append(cancels, cancel)
				res := r.p.Submit(sctx, in, pol...)
				r.track(tracked{r: res, id: in.id, maxAttempts: maxAtt})
			case fopTrySubmit:
				res, err := r.p.TrySubmit(ctx, in, pol...)
				if err != nil {
					r.refuse(in.id)
				} else {
					r.track(tracked{r: res, id: in.id, maxAttempts: maxAtt, accepted: true})
				}
				if res == nil {
					t.Fatalf("TrySubmit returned a nil Result (err %v)", err)
				}
			case fopGo:
				if err := r.p.TryGo(ctx, in, pol...); err != nil {
					r.refuse(in.id)
				}
			}
			if maxAtt == 0 {
				r.refuse(in.id)
			}
		case fopCancel, fopAwait:
			rs := r.tracked()
			if len(rs) == 0 {
				continue
			}
			tr := rs[int(arg)%len(rs)]
			if op == fopCancel {
				tr.r.Cancel()
				continue
			}
			actx, cancel := context.WithTimeout(ctx, time.Second)
			v, err := tr.r.Await(actx)
			cancel()
			if err == nil && v != stressOut(tr.id) {
				t.Errorf("job %d: Await = %d, want %d", tr.id, v, stressOut(tr.id))
			}
		case fopResize:
			r.p.Resize(int(arg) % 4)
		case fopShutdown:
			synctest.Wait() // settle, so that what Shutdown finds is deterministic
			sctx, cancel := context.WithTimeout(ctx, time.Duration(arg%4)*5*time.Millisecond)
			err := r.p.Shutdown(sctx)
			cancel()
			r.closed.Store(true)
			checkFuzzShutdown(t, r, err)
			if err == nil && !shutdownNil {
				shutdownNil, startsAtNil = true, r.starts.Load()
			}
		case fopRelease:
			release(int(arg) % fuzzGates)
		case fopSleep:
			time.Sleep(time.Duration(arg%16) * time.Millisecond)
		case fopMap, fopMapOrdered:
			r.runMap(t, arg, op == fopMapOrdered)
		}
	}

	// Let everything finish: open every gate, give the pool workers if no
	// Shutdown has run (it may be paused with jobs queued, which a graceful
	// Shutdown would wait for forever), and close it.
	for g := range r.gates {
		release(g)
	}
	if !r.closed.Load() {
		r.p.Resize(2)
	}
	if err := r.p.Close(); err != nil {
		t.Fatalf("Close: %v, want nil", err)
	}
	r.closed.Store(true)
	// Workers that a Resize after a Shutdown started exit on their own.
	synctest.Wait()
	checkFuzzRun(t, r, shutdownNil, startsAtNil)
}

// runMap runs one fopMap: a Map over the pool of 1 + (arg>>3)&3 jobs that
// arg describes (the count shares its bits with the gate), under arg's
// policy as an ItemPolicy (none when arg's is refused), consumed to the
// end within a 1s ctx. Every
// success must carry its job's output, no job may be yielded twice, and
// Ordered must keep the input order; checkNoLeak, at the end of the input,
// finds any feeder left behind.
func (r *fuzzRun) runMap(t *testing.T, arg byte, ordered bool) {
	pol, maxAtt := fuzzPolicy(arg)
	var opts []MapOption
	if maxAtt == 0 {
		maxAtt = 1 // the pool's policy
	} else if pol != nil {
		opts = append(opts, ItemPolicy(pol[0]))
	}
	if ordered {
		opts = append(opts, Ordered())
	}
	ids := make([]int, 1+int(arg>>3)&3)
	index := map[int]int{} // a job's output -> its index in the input
	for k := range ids {
		ids[k] = r.newID(maxAtt)
		index[stressOut(ids[k])] = k
	}
	var pulled atomic.Int64
	src := func(yield func(fuzzJob) bool) {
		for _, id := range ids {
			pulled.Add(1)
			if !yield(fuzzJob{id: id, arg: arg, gate: int(arg>>3) % fuzzGates}) {
				return
			}
		}
	}
	mctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	seen := map[int]bool{}
	last := -1
	for v, err := range Map(mctx, Stage[fuzzJob, int](r.p), src, opts...) {
		k := -1
		var ie *ItemError
		switch {
		case err == nil:
			var ok bool
			if k, ok = index[v]; !ok {
				t.Errorf("Map yielded %d, the output of none of its jobs %v", v, ids)
				continue
			}
		case errors.As(err, &ie):
			k = ie.Index
			if k < 0 || k >= len(ids) {
				t.Errorf("Map yielded an error for item %d of %d: %v", k, len(ids), err)
				continue
			}
		default:
			continue // ctx's error, or the pool's refusal, after the items
		}
		r.mapLo++
		if seen[k] {
			t.Errorf("Map yielded item %d twice", k)
		}
		seen[k] = true
		if ordered && k < last {
			t.Errorf("Ordered Map yielded item %d after item %d", k, last)
		}
		last = max(last, k)
	}
	r.mapHi += pulled.Load()
}

// refuse records that job id was refused: its handler must never run.
func (r *fuzzRun) refuse(id int) {
	r.mu.Lock()
	r.maxAtt[id] = 0
	r.mu.Unlock()
}

// checkFuzzShutdown checks what Shutdown's doc comment promises once it has
// returned err.
func checkFuzzShutdown(t *testing.T, r *fuzzRun, err error) {
	t.Helper()
	switch {
	case err == nil:
		// Every accepted job has ended and every worker exited.
		m := r.p.Metrics()
		if n := r.inHandler.Load(); n != 0 {
			t.Errorf("Shutdown returned nil with %d handlers running", n)
		}
		if m.Running != 0 || m.Queued != 0 || m.Workers != 0 {
			t.Errorf("Shutdown returned nil with Running %d, Queued %d, Workers %d; want 0, 0, 0",
				m.Running, m.Queued, m.Workers)
		}
		if ended := m.Succeeded + m.Failed + m.Canceled; ended != m.Submitted {
			t.Errorf("Shutdown returned nil with Succeeded+Failed+Canceled = %d, Submitted = %d", ended, m.Submitted)
		}
	case errors.Is(err, context.DeadlineExceeded):
		// Queued jobs and jobs in backoff ended with ErrClosed, running
		// ones' Results completed with it: nothing is left pending.
		m := r.p.Metrics()
		if m.Queued != 0 {
			t.Errorf("Shutdown gave up with Queued = %d, want 0", m.Queued)
		}
	default:
		t.Errorf("Shutdown = %v, want nil or context.DeadlineExceeded", err)
		return
	}
	r.gaveUp = r.gaveUp || err != nil
	for _, tr := range r.tracked() {
		switch {
		case err != nil:
			// Checked once the pool has closed: see checkGiveUp.
			if !isDone(tr.r) {
				r.givenUp[tr.id] = true
			}
		case !isDone(tr.r):
			t.Errorf("job %d: Result pending after Shutdown returned nil", tr.id)
		}
	}
}

// checkFuzzRun checks the invariants once the pool of r has closed.
func checkFuzzRun(t *testing.T, r *fuzzRun, shutdownNil bool, startsAtNil int64) {
	t.Helper()
	if shutdownNil {
		if n := r.starts.Load(); n != startsAtNil {
			t.Errorf("%d handlers started after Shutdown returned nil", n-startsAtNil)
		}
	}
	var byTry outcomeCounts
	pending := map[int]error{}
	for _, tr := range r.tracked() {
		if r.givenUp[tr.id] && isDone(tr.r) {
			_, pending[tr.id] = tr.r.Await(context.Background())
		}
		if !isDone(tr.r) {
			t.Errorf("job %d: Result pending after Close returned", tr.id)
			continue
		}
		v1, err1 := tr.r.Await(context.Background())
		v2, err2 := tr.r.Await(context.Background())
		if v1 != v2 || err1 != err2 {
			t.Errorf("job %d: Await gave (%d, %v), then (%d, %v)", tr.id, v1, err1, v2, err2)
		}
		if err1 == nil && v1 != stressOut(tr.id) {
			t.Errorf("job %d: succeeded with %d, want %d", tr.id, v1, stressOut(tr.id))
		}
		if n := tr.r.Attempts(); n > max(tr.maxAttempts, 0) {
			t.Errorf("job %d: Attempts() = %d, MaxAttempts %d", tr.id, n, tr.maxAttempts)
		}
		if tr.accepted {
			byTry.add(err1)
		}
	}
	r.mu.Lock()
	for id, n := range r.startsN {
		if most := r.maxAtt[id]; n > most {
			t.Errorf("job %d: handler started %d times, MaxAttempts %d (0: refused)", id, n, most)
		}
	}
	r.mu.Unlock()

	m := r.p.Metrics()
	if ended := m.Succeeded + m.Failed + m.Canceled; ended != m.Submitted {
		t.Errorf("closed pool: Succeeded %d + Failed %d + Canceled %d = %d, Submitted %d",
			m.Succeeded, m.Failed, m.Canceled, ended, m.Submitted)
	}
	// A Map submits each item it pulls, but for one pulled as it stops.
	lo, hi := uint64(r.calls.Load()+r.mapLo), uint64(r.calls.Load()+r.mapHi)
	if n := m.Submitted + m.Rejected; n < lo || n > hi {
		t.Errorf("Submitted %d + Rejected %d = %d, but %d to %d submission calls were made",
			m.Submitted, m.Rejected, n, lo, hi)
	}
	if byTry.exceeds(m) {
		t.Errorf("Metrics count fewer outcomes than TrySubmit's Results alone (-results +metrics):\n%s",
			cmp.Diff(byTry, outcomeCounts{Succeeded: m.Succeeded, Failed: m.Failed, Canceled: m.Canceled, Expired: byTry.Expired}))
	}
	if m.Running != 0 || m.Queued != 0 || m.Workers != 0 {
		t.Errorf("closed pool: Running %d, Queued %d, Workers %d; want 0, 0, 0", m.Running, m.Queued, m.Workers)
	}
	if n := r.inHandler.Load(); n != 0 {
		t.Errorf("closed pool: %d handlers still running", n)
	}

	if r.gaveUp || r.late.count() > 0 {
		for _, p := range checkGiveUp(pending, &r.late, func(id int) bool { return r.ranBefore[id] }) {
			t.Error(p)
		}
	}
}
