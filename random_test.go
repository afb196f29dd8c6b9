package jobq

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/seed-bb9ff1e7/jobq/internal/engine"
)

var errRnd = errors.New("random: handler failed")

const (
	rkOK         = iota
	rkFail       // returns errRnd
	rkPanic      // panics
	rkBlock      // blocks until ctx ends (or an hour), returns ctx.Err()
	rkIgnore     // sleeps dur ignoring ctx, succeeds
	rkFailFirst  // fails its first attempt
	rkHonor      // sleeps dur or until ctx ends
	rkPermanent  // Permanent(errRnd)
	rkRetryAfter // RetryAfter(dur) twice, then succeeds
	rkForkJoin   // submits a child to its own pool with its ctx and awaits it
	rkMapFJ      // Maps a few children over its own pool with its ctx
	rkThenFJ     // in B: submits Then(C, B) with its ctx and awaits the chain
	rkKinds
)

const (
	piA = iota
	piB
	piQ
	piC // first of the chains B's handlers submit (Then(C, B)): never waits on B
	nPools
)

type rItem struct {
	id    int
	kind  [nPools]uint8
	dur   time.Duration
	depth int
}

// rUnit is one job (per pool): what its handler did and what we know of it.
type rUnit struct {
	starts     int
	returns    int
	lastNil    bool
	everNil    bool
	firstStart time.Time

	maxAtt     int            // resolved MaxAttempts, 0 if unknown/refused
	res        *Result[rItem] // a Result we hold for exactly this job
	refused    bool           // known refused at submission
	fire       bool           // fire-and-forget (Go, EnQueueTask, Map over pool)
	timeoutish bool           // its policy has a Timeout or MaxElapsed
	knownOK    bool           // observed success (a chain's or a Map yield)
	timeout    time.Duration  // single-attempt Timeout, checked against doneAt
	doneAt     time.Time
	doneSet    bool
	item       rItem
	// allRun: every attempt calls the handler (its ctx never ends, no
	// MaxElapsed), unless Cancel or a give-up comes: Attempts == starts.
	allRun    bool
	cancelled bool // Cancel was called on its Result
}

type rChain struct {
	id        int
	res       *Result[rItem]
	first     int  // piA, or piC for a chain from a handler of B
	allRun    bool // its ctx never ends and its policy has no MaxElapsed
	cancelled bool
}

type rRun struct {
	seed    uint64
	A, B, C *Pool[rItem, rItem]
	Q       *Queue

	mu       sync.Mutex
	nextID   int
	units    [nPools]map[int]*rUnit
	chains   []rChain
	calls    [nPools]int
	noCount  [nPools]bool // Submitted+Rejected cannot be counted
	gaveUp   [nPools]bool
	problems []string
	cancels  []context.CancelFunc
	onRetry  [nPools]atomic.Uint64 // OnRetry calls, per pool

	rsMu    sync.Mutex
	closing bool
}

func (r *rRun) failf(format string, args ...any) {
	r.mu.Lock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *rRun) pool(pi int) *Pool[rItem, rItem] {
	switch pi {
	case piA:
		return r.A
	case piB:
		return r.B
	case piC:
		return r.C
	}
	panic("pool: not a typed pool")
}

func (r *rRun) def(pi int) Policy {
	if pi == piQ {
		return r.Q.p.def
	}
	return r.pool(pi).def
}

func (r *rRun) metrics(pi int) Metrics {
	if pi == piQ {
		return r.Q.Metrics()
	}
	return r.pool(pi).Metrics()
}

func dumpPool[In, Out any](p *Pool[In, Out]) string { return p.e.Dump() }

func (r *rRun) dump(pi int) string {
	if pi == piQ {
		return dumpPool(r.Q.p)
	}
	return dumpPool(r.pool(pi))
}

func (r *rRun) shutdownPool(pi int, ctx context.Context) error {
	if pi == piQ {
		return r.Q.Shutdown(ctx)
	}
	return r.pool(pi).Shutdown(ctx)
}

func (r *rRun) workers(pi int) int {
	if pi == piQ {
		return r.Q.p.Workers()
	}
	return r.pool(pi).Workers()
}

func (r *rRun) newItem(rng *rand.Rand, depth int) rItem {
	r.mu.Lock()
	id := r.nextID
	r.nextID++
	r.mu.Unlock()
	it := rItem{id: id, dur: time.Duration(rng.IntN(25)) * time.Millisecond, depth: depth}
	for i := range it.kind {
		it.kind[i] = uint8(rng.IntN(rkKinds))
	}
	return it
}

// unitLocked returns the unit of id in pool pi, making it. r.mu is held.
func (r *rRun) unitLocked(pi, id int) *rUnit {
	u := r.units[pi][id]
	if u == nil {
		u = &rUnit{}
		r.units[pi][id] = u
	}
	return u
}

// register records a unit before its submission, with the policy it gets.
func (r *rRun) register(pi, id int, pols []Policy, fire bool) *rUnit {
	def := r.def(pi)
	var pol Policy
	if len(pols) == 0 {
		pol = def
	} else {
		pol = pols[0].merge(def)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.unitLocked(pi, id)
	if pol.validate() == nil {
		u.maxAtt = pol.MaxAttempts
	}
	u.fire = fire
	u.timeoutish = pol.Timeout > 0 || pol.MaxElapsed > 0
	u.allRun = pol.MaxElapsed == 0
	if pol.MaxAttempts == 1 && pol.Timeout > 0 {
		u.timeout = pol.Timeout
	}
	r.calls[pi]++
	return u
}

// mayEnd notes that u's submission ctx may end: some attempt may then end
// without calling the handler.
func (r *rRun) mayEnd(u *rUnit, ctx context.Context) {
	if ctx.Done() != nil {
		r.mu.Lock()
		u.allRun = false
		r.mu.Unlock()
	}
}

func (r *rRun) trackResult(pi, id int, res *Result[rItem], refused bool) {
	if res == nil {
		r.failf("pool %d job %d: nil Result", pi, id)
		return
	}
	r.mu.Lock()
	u := r.unitLocked(pi, id)
	u.res, u.refused = res, refused
	r.mu.Unlock()
	if isDone(res) {
		// Submit may have run the job inline before returning: its
		// completion time is unknown here.
		return
	}
	go func() {
		<-res.Done()
		now := time.Now()
		r.mu.Lock()
		u.doneAt, u.doneSet = now, true
		r.mu.Unlock()
	}()
}

func (r *rRun) handler(pi int) Handler[rItem, rItem] {
	return func(ctx context.Context, in rItem) (rItem, error) {
		r.mu.Lock()
		u := r.unitLocked(pi, in.id)
		u.item = in
		u.starts++
		att := u.starts
		if att == 1 {
			u.firstStart = time.Now()
		}
		r.mu.Unlock()
		out, err := r.behave(ctx, pi, in, att)
		r.mu.Lock()
		u.returns++
		u.lastNil = err == nil
		u.everNil = u.everNil || err == nil
		r.mu.Unlock()
		if err == errPanicNow {
			panic(fmt.Sprintf("random job %d panics", in.id))
		}
		return out, err
	}
}

var errPanicNow = errors.New("panic now")

func (r *rRun) behave(ctx context.Context, pi int, in rItem, att int) (rItem, error) {
	var zero rItem
	k := int(in.kind[pi])
	if pi == piQ && (k == rkForkJoin || k == rkMapFJ) || k == rkThenFJ && pi != piB {
		k = rkOK
	}
	switch k {
	case rkFail:
		return zero, errRnd
	case rkPanic:
		return zero, errPanicNow
	case rkBlock, rkHonor: // wait for ctx: an hour, or in.dur
		d := in.dur
		if k == rkBlock {
			d = time.Hour
		}
		select {
		case <-ctx.Done():
			return zero, ctx.Err()
		case <-time.After(d):
		}
	case rkIgnore:
		time.Sleep(in.dur)
	case rkFailFirst:
		if att == 1 {
			return zero, errRnd
		}
	case rkPermanent:
		return zero, Permanent(errRnd)
	case rkRetryAfter:
		if att < 3 {
			return zero, RetryAfter(in.dur, errRnd)
		}
	case rkForkJoin, rkMapFJ:
		if in.depth >= 2 {
			break
		}
		crng := rand.New(rand.NewPCG(r.seed, uint64(in.id)<<8|uint64(att)))
		p := r.pool(pi)
		if k == rkForkJoin {
			child := r.newItem(crng, in.depth+1)
			r.register(pi, child.id, nil, false)
			var res *Result[rItem]
			refused := false
			if crng.IntN(2) == 0 {
				res = p.Submit(ctx, child)
			} else {
				var err error
				res, err = p.TrySubmit(ctx, child)
				refused = err != nil
			}
			r.mu.Lock()
			r.units[pi][child.id].allRun = false // the handler's ctx ends
			r.mu.Unlock()
			r.trackResult(pi, child.id, res, refused)
			if err := r.awaitChild(crng, ctx, res, "child", pi, child.id); err != nil {
				return zero, err
			}
			break
		}
		r.mu.Lock()
		r.noCount[pi] = true
		r.mu.Unlock()
		r.runMap(crng, ctx, pi, false, in.depth+1)
	case rkThenFJ:
		if in.depth >= 2 {
			break
		}
		// Fork–join through Then: next is this handler's own pool B.
		crng := rand.New(rand.NewPCG(r.seed, uint64(in.id)<<8|uint64(att)|1<<7))
		child := r.newItem(crng, in.depth+1)
		pols := rndPolicy(crng, nil) // OnRetry: each stage's pool default
		r.register(piC, child.id, pols, false)
		r.register(piB, child.id, pols, false)
		r.mu.Lock()
		r.calls[piB]-- // B's submission is not ours to count
		r.noCount[piB] = true
		r.mu.Unlock()
		res := Then[rItem, rItem, rItem](r.C, r.B).Submit(ctx, child, pols...)
		r.mu.Lock()
		r.chains = append(r.chains, rChain{id: child.id, res: res, first: piC})
		r.mu.Unlock()
		if err := r.awaitChild(crng, ctx, res, "chain child", pi, child.id); err != nil {
			return zero, err
		}
	}
	return in, nil
}

// awaitChild awaits a fork–join child with id, submitted by a handler of
// pool pi whose ctx is ctx: with ctx or, by rng's choice, without a
// deadline. It returns the child's error, wrapped with what it is.
func (r *rRun) awaitChild(rng *rand.Rand, ctx context.Context, res *Result[rItem], what string, pi, id int) error {
	if rng.IntN(2) == 0 {
		ctx = context.Background()
	}
	v, err := res.Await(ctx)
	if err != nil {
		return fmt.Errorf("%s %d: %w", what, id, err)
	}
	if v.id != id {
		r.failf("pool %d %s %d: Await returned item %d", pi, what, id, v.id)
	}
	return nil
}

func (r *rRun) subCtx(rng *rand.Rand) context.Context {
	bg := context.Background()
	switch rng.IntN(5) {
	case 1:
		ctx, cancel := context.WithCancel(bg)
		time.AfterFunc(time.Duration(rng.IntN(20))*time.Millisecond, cancel)
		r.mu.Lock()
		r.cancels = append(r.cancels, cancel)
		r.mu.Unlock()
		return ctx
	case 2:
		ctx, cancel := context.WithTimeout(bg, time.Duration(rng.IntN(20))*time.Millisecond)
		r.mu.Lock()
		r.cancels = append(r.cancels, cancel)
		r.mu.Unlock()
		return ctx
	}
	return bg
}

func rndBackoff(rng *rand.Rand) Backoff {
	switch rng.IntN(4) {
	case 0:
		return nil
	case 1:
		return Constant(time.Duration(rng.IntN(5)) * time.Millisecond)
	case 2:
		return Exponential(time.Millisecond, 8*time.Millisecond)
	}
	return Decorrelated(time.Millisecond, 10*time.Millisecond)
}

// rndPolicy returns no policy or a random one, whose OnRetry is onRetry (nil:
// the pool default's).
func rndPolicy(rng *rand.Rand, onRetry func(int, error, time.Duration)) []Policy {
	if rng.IntN(3) == 0 {
		return nil
	}
	p := Policy{MaxAttempts: rng.IntN(5), Backoff: rndBackoff(rng), OnRetry: onRetry}
	switch rng.IntN(4) {
	case 0:
		p.Jitter = FullJitter
	case 1:
		p.Jitter = Proportional(0.5)
	}
	if rng.IntN(2) == 0 {
		p.Timeout = time.Duration(1+rng.IntN(15)) * time.Millisecond
	}
	if rng.IntN(3) == 0 {
		p.MaxElapsed = time.Duration(1+rng.IntN(40)) * time.Millisecond
	}
	if rng.IntN(4) == 0 {
		p.RetryIf = func(error) bool { return true }
	}
	if rng.IntN(40) == 0 {
		p.MaxAttempts = -1 // refused
	}
	return []Policy{p}
}

// onRetryOf returns the OnRetry that counts the retries of pool pi.
func (r *rRun) onRetryOf(pi int) func(int, error, time.Duration) {
	return func(attempt int, err error, delay time.Duration) {
		r.onRetry[pi].Add(1)
		if attempt < 1 || err == nil || delay < 0 {
			r.failf("pool %d: OnRetry(%d, %v, %v)", pi, attempt, err, delay)
		}
	}
}

// yieldOrder checks the item indexes a stream yields: each at most once,
// and rising when the stream is Ordered.
type yieldOrder struct {
	r       *rRun
	what    string
	ordered bool
	seen    map[int]bool
	last    int
}

func newYieldOrder(r *rRun, what string, ordered bool) *yieldOrder {
	return &yieldOrder{r: r, what: what, ordered: ordered, seen: map[int]bool{}, last: -1}
}

// see records that the stream yielded item idx.
func (y *yieldOrder) see(idx int) {
	if y.seen[idx] {
		y.r.failf("%s yielded item %d twice", y.what, idx)
	}
	y.seen[idx] = true
	if y.ordered && idx <= y.last {
		y.r.failf("Ordered %s yielded item %d after %d", y.what, idx, y.last)
	}
	y.last = idx
}

// streamCheck checks a consumer's view of a Map stream that it may break
// out of: each item yielded once (and in order, if ordered), nothing after
// the ctx's error.
type streamCheck struct {
	*yieldOrder
	breakAt    int // the consumer breaks after its yield number breakAt (from 0)
	count      int // yields so far
	ctxYielded bool
	broke      bool
}

func newStreamCheck(r *rRun, what string, ordered bool, breakAt int) *streamCheck {
	return &streamCheck{yieldOrder: newYieldOrder(r, what, ordered), breakAt: breakAt}
}

// yielded checks that nothing comes after the ctx's error.
func (c *streamCheck) yielded(id int, err error) {
	if c.ctxYielded {
		c.r.failf("%s yielded (%v, %v) after ctx.Err()", c.what, id, err)
	}
}

// ctxEnded checks err, neither nil nor an *ItemError: it must be the
// stream's ctx's error.
func (c *streamCheck) ctxEnded(ctx context.Context, err error) {
	if ctx.Err() == nil || err != ctx.Err() {
		c.r.failf("%s yielded %v; ctx.Err() = %v", c.what, err, ctx.Err())
	}
	c.ctxYielded = true
}

// next records the yield of item idx (-1 for none) and reports whether the
// consumer breaks out now.
func (c *streamCheck) next(idx int) bool {
	if idx >= 0 {
		c.see(idx)
	}
	c.count++
	if c.count-1 == c.breakAt {
		c.broke = true
	}
	return c.broke
}

// randomResult picks a Result we hold; with cancel, it marks it cancelled.
func (r *rRun) randomResult(rng *rand.Rand, cancel bool) *Result[rItem] {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []*Result[rItem]
	var marks []*bool
	for _, pi := range []int{piA, piB, piC} {
		// In id order, not the map's random order: the seed picks.
		for _, id := range slices.Sorted(maps.Keys(r.units[pi])) {
			if u := r.units[pi][id]; u.res != nil {
				all = append(all, u.res)
				marks = append(marks, &u.cancelled)
			}
		}
	}
	for i := range r.chains {
		all = append(all, r.chains[i].res)
		marks = append(marks, &r.chains[i].cancelled)
	}
	if len(all) == 0 {
		return nil
	}
	i := rng.IntN(len(all))
	if cancel {
		*marks[i] = true
	}
	return all[i]
}

// runMap runs one Map stream over pool pi (or Then(A, B) with then) and
// checks what it yields. At depth 0 its input may come through Batch (with
// or without maxWait) and Flatten, from a source that may pause.
func (r *rRun) runMap(rng *rand.Rand, ctx context.Context, pi int, then bool, depth int) {
	n := 1 + rng.IntN(7)
	if depth > 0 {
		n = 1 + rng.IntN(3)
	}
	breakAt := -1
	if rng.IntN(3) == 0 {
		breakAt = rng.IntN(n)
	}
	var opts []MapOption
	ordered := rng.IntN(2) == 0
	if ordered {
		opts = append(opts, Ordered())
	}
	if rng.IntN(2) == 0 {
		opts = append(opts, InFlight(1+rng.IntN(4)))
	}
	p := r.pool(pi)
	var stage Stage[rItem, rItem] = p
	if then {
		stage = Then[rItem, rItem, rItem](r.A, r.B)
	}
	// Over a Pool, or a Then chain of Pools, Map hands items over by
	// value, as fire-and-forget jobs, unless ctx is a handler's of one.
	var overPool bool
	if then {
		overPool = !isOwnHandler(ctx, r.A) && !isOwnHandler(ctx, r.B)
	} else {
		overPool = !isOwnHandler(ctx, p)
	}
	batch, maxWait, pause := 0, time.Duration(0), false
	if depth == 0 && rng.IntN(3) == 0 {
		batch = 1 + rng.IntN(4)
		if rng.IntN(2) == 0 {
			maxWait = time.Duration(1+rng.IntN(5)) * time.Millisecond
		}
		pause = rng.IntN(2) == 0
	}
	var idsMu sync.Mutex // with maxWait, Batch pulls the source in a goroutine of its own
	var ids []int
	idAt := func(i int) int {
		idsMu.Lock()
		defer idsMu.Unlock()
		return ids[i]
	}
	src := func(yield func(rItem) bool) {
		for range n {
			if pause && rng.IntN(2) == 0 {
				time.Sleep(time.Duration(rng.IntN(8)) * time.Millisecond)
			}
			it := r.newItem(rng, depth)
			idsMu.Lock()
			ids = append(ids, it.id)
			idsMu.Unlock()
			if then {
				r.register(piA, it.id, nil, overPool)
				r.register(piB, it.id, nil, overPool)
				r.mu.Lock()
				r.calls[piB]-- // B's submission is not ours to count
				r.mu.Unlock()
			} else {
				r.register(pi, it.id, nil, overPool)
			}
			if !yield(it) {
				return
			}
		}
	}
	in := iter.Seq[rItem](src)
	if batch > 0 {
		batches := Batch(in, batch, maxWait)
		checked := func(yield func([]rItem) bool) {
			next := 0
			for b := range batches {
				if len(b) < 1 || len(b) > batch {
					r.failf("Batch(size %d, maxWait %v) yielded %d items", batch, maxWait, len(b))
				}
				for _, v := range b {
					if id := idAt(next); v.id != id {
						r.failf("Batch yielded item %d at %d, want %d", v.id, next, id)
					}
					next++
				}
				if !yield(b) {
					return
				}
			}
		}
		in = Flatten(checked)
	}
	c := newStreamCheck(r, "Map", ordered, breakAt)
	for v, err := range Map(ctx, stage, in, opts...) {
		c.yielded(v.id, err)
		idx := -1
		var ie *ItemError
		switch {
		case err == nil:
			idsMu.Lock()
			for i, id := range ids {
				if id == v.id {
					idx = i
				}
			}
			idsMu.Unlock()
			if idx < 0 {
				r.failf("Map yielded item %d, not one of %v", v.id, ids)
			} else {
				r.mu.Lock()
				if then {
					r.units[piA][v.id].knownOK = true
					r.units[piB][v.id].knownOK = true
				} else {
					r.units[pi][v.id].knownOK = true
				}
				r.mu.Unlock()
			}
		case errors.As(err, &ie):
			idx = ie.Index
			idsMu.Lock()
			if idx < 0 || idx >= len(ids) {
				r.failf("Map yielded ItemError index %d of %d items", idx, len(ids))
			}
			idsMu.Unlock()
		default:
			c.ctxEnded(ctx, err)
		}
		if c.next(idx) {
			break
		}
	}
	if !c.broke && !c.ctxYielded && len(c.seen) != n {
		r.failf("Map over %d items yielded %d (then %v, batch %d maxWait %v, items %v)", n, len(c.seen), then, batch, maxWait, ids)
	}
}

func (r *rRun) actor(rng *rand.Rand, nOps int) {
	for range nOps {
		time.Sleep(time.Duration(rng.IntN(4)) * time.Millisecond)
		pi := rng.IntN(2) // A or B
		p := r.pool(pi)
		switch op := rng.IntN(126); {
		case op < 22: // Submit
			it := r.newItem(rng, 0)
			pols := rndPolicy(rng, r.onRetryOf(pi))
			u := r.register(pi, it.id, pols, false)
			ctx := r.subCtx(rng)
			r.mayEnd(u, ctx)
			res := p.Submit(ctx, it, pols...)
			r.trackResult(pi, it.id, res, false)
			if rng.IntN(4) == 0 {
				time.Sleep(time.Duration(rng.IntN(10)) * time.Millisecond)
				r.mu.Lock()
				u.cancelled = true
				r.mu.Unlock()
				res.Cancel()
				if !isDone(res) {
					r.failf("pool %d job %d: Result not done after Cancel returned", pi, it.id)
				}
			}
		case op < 32: // TrySubmit
			it := r.newItem(rng, 0)
			pols := rndPolicy(rng, r.onRetryOf(pi))
			u := r.register(pi, it.id, pols, false)
			ctx := r.subCtx(rng)
			r.mayEnd(u, ctx)
			res, err := p.TrySubmit(ctx, it, pols...)
			if err != nil && (res == nil || !isDone(res)) {
				r.failf("TrySubmit refused with %v but its Result is not done", err)
			}
			r.trackResult(pi, it.id, res, err != nil)
		case op < 42: // TryGo
			it := r.newItem(rng, 0)
			pols := rndPolicy(rng, r.onRetryOf(pi))
			u := r.register(pi, it.id, pols, true)
			if err := p.TryGo(r.subCtx(rng), it, pols...); err != nil {
				r.mu.Lock()
				u.refused = true
				r.mu.Unlock()
			}
		case op < 50: // EnQueueTask
			it := r.newItem(rng, 0)
			pols := rndPolicy(rng, r.onRetryOf(piQ))
			u := r.register(piQ, it.id, pols, true)
			h := r.handler(piQ)
			err := r.Q.EnQueueTask(func(ctx context.Context) error {
				_, err := h(ctx, it)
				return err
			}, pols...)
			if err != nil {
				r.mu.Lock()
				u.refused = true
				r.mu.Unlock()
			}
		case op < 60: // Cancel
			if res := r.randomResult(rng, true); res != nil {
				res.Cancel()
				if !isDone(res) {
					r.failf("Result not done after Cancel returned")
				}
			}
		case op < 66: // bounded Await
			if res := r.randomResult(rng, false); res != nil {
				actx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(10))*time.Millisecond)
				v1, err1 := res.Await(actx)
				cancel()
				if err1 == nil && isDone(res) {
					if v2, err2 := res.Await(context.Background()); v2 != v1 || err2 != nil {
						r.failf("Await: (%v, nil) then (%v, %v)", v1, v2, err2)
					}
				}
			}
		case op < 74: // Then chain
			it := r.newItem(rng, 0)
			pols := rndPolicy(rng, nil) // OnRetry: each stage's pool default
			ua := r.register(piA, it.id, pols, false)
			ub := r.register(piB, it.id, pols, false)
			r.mu.Lock()
			r.calls[piB]--
			r.noCount[piB] = true
			r.mu.Unlock()
			ctx := r.subCtx(rng)
			r.mayEnd(ua, ctx)
			r.mayEnd(ub, ctx)
			res := Then[rItem, rItem, rItem](r.A, r.B).Submit(ctx, it, pols...)
			r.mu.Lock()
			r.chains = append(r.chains, rChain{id: it.id, res: res, first: piA, allRun: ua.allRun && ub.allRun})
			ci := len(r.chains) - 1
			r.mu.Unlock()
			if rng.IntN(4) == 0 {
				time.Sleep(time.Duration(rng.IntN(10)) * time.Millisecond)
				r.mu.Lock()
				r.chains[ci].cancelled = true
				r.mu.Unlock()
				res.Cancel()
				if !isDone(res) {
					r.failf("chain %d: Result not done after Cancel returned", it.id)
				}
			}
		case op < 82: // Map
			then := rng.IntN(3) == 0
			r.mu.Lock()
			r.noCount[pi] = true
			r.noCount[piA] = r.noCount[piA] || then
			r.noCount[piB] = r.noCount[piB] || then
			r.mu.Unlock()
			if then {
				pi = piA
			}
			r.runMap(rng, r.subCtx(rng), pi, then, 0)
		case op < 94: // Resize
			qi := rng.IntN(nPools)
			n := rng.IntN(5)
			r.rsMu.Lock()
			if !r.closing || n > 0 {
				if qi == piQ {
					r.Q.UpdateWorkerCount(n)
				} else {
					r.pool(qi).Resize(n)
				}
			}
			r.rsMu.Unlock()
		case op < 100: // Metrics sanity
			m := p.Metrics()
			if m.Running < 0 || m.Queued < 0 || m.Succeeded+m.Failed+m.Canceled > m.Submitted {
				r.failf("pool %d live Metrics: %+v", pi, m)
			}
		case op < 108: // Map | Values | Map
			r.mu.Lock()
			r.noCount[piA], r.noCount[piB] = true, true
			r.mu.Unlock()
			r.runValues(rng, r.subCtx(rng))
		case op < 117: // Map over a pool shut down mid-stream
			r.runMapShutdown(rng)
		default: // a paused pool shut down with cancelled queued jobs
			r.runPaused(rng)
		}
	}
}

// checkPoolIdle checks the Metrics of pool pi once it has closed.
func (r *rRun) checkPoolIdle(pi int, when string) {
	m := r.metrics(pi)
	if m.Running != 0 || m.Queued != 0 || m.Workers != 0 {
		r.failf("pool %d %s: Running %d, Queued %d, Workers %d", pi, when, m.Running, m.Queued, m.Workers)
	}
	if s := m.Succeeded + m.Failed + m.Canceled; s != m.Submitted {
		r.failf("pool %d %s: Succeeded %d + Failed %d + Canceled %d = %d != Submitted %d",
			pi, when, m.Succeeded, m.Failed, m.Canceled, s, m.Submitted)
	}
}

// checkResultsDone checks that every Result of pool pi we hold is done.
func (r *rRun) checkResultsDone(pi int, when string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, u := range r.units[pi] {
		if u.res != nil && !isDone(u.res) {
			r.problems = append(r.problems, fmt.Sprintf("pool %d job %d: Result pending %s (starts %d returns %d)", pi, id, when, u.starts, u.returns))
		}
	}
}

func (r *rRun) shutdown(rng *rand.Rand, pi int) {
	var err error
	switch rng.IntN(3) {
	case 0:
		err = r.shutdownPool(pi, context.Background())
	case 1:
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(30))*time.Millisecond)
		err = r.shutdownPool(pi, ctx)
		cancel()
	default:
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err = r.shutdownPool(pi, ctx)
	}
	if err == nil {
		r.checkPoolIdle(pi, "after Shutdown returned nil")
		r.checkResultsDone(pi, "after Shutdown returned nil")
		return
	}
	r.mu.Lock()
	r.gaveUp[pi] = true
	r.mu.Unlock()
	synctest.Wait()
	r.checkResultsDone(pi, "after Shutdown gave up and the bubble settled")
}

func runRandomIter(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	r := &rRun{seed: seed}
	for i := range r.units {
		r.units[i] = map[int]*rUnit{}
	}
	mkOpts := func(pi int) []Option {
		opts := []Option{WithQueueSize(1 + rng.IntN(4))}
		// Every pool's default counts its retries; a Timeout (half the
		// time) makes Map's items over it retry or time out with
		// records of their own.
		pol := Policy{OnRetry: r.onRetryOf(pi)}
		if rng.IntN(2) == 0 {
			pol.MaxAttempts, pol.Backoff = 1+rng.IntN(3), rndBackoff(rng)
			if rng.IntN(2) == 0 {
				pol.Timeout = time.Duration(1+rng.IntN(15)) * time.Millisecond
			}
		}
		return append(opts, WithPolicy(pol))
	}
	r.A = New(1+rng.IntN(3), r.handler(piA), mkOpts(piA)...)
	r.B = New(1+rng.IntN(3), r.handler(piB), mkOpts(piB)...)
	r.Q = NewPool(1+rng.IntN(3), mkOpts(piQ)...)
	r.C = New(1+rng.IntN(3), r.handler(piC), mkOpts(piC)...)
	defer func() {
		r.mu.Lock()
		for _, c := range r.cancels {
			c()
		}
		r.mu.Unlock()
	}()

	var wg sync.WaitGroup
	for a := range 1 + rng.IntN(3) {
		arng := rand.New(rand.NewPCG(seed, uint64(a+1)))
		nOps := 5 + rng.IntN(60)
		wg.Go(func() { r.actor(arng, nOps) })
	}

	finished := make(chan struct{})
	go func() {
		// Watchdog: handlers block an hour at most, so a day means
		// the bubble is stuck; report the pools' state before synctest
		// reports the deadlock.
		select {
		case <-finished:
		case <-time.After(24 * time.Hour):
			for pi := range nPools {
				t.Errorf("stuck: pool %d: %s", pi, r.dump(pi))
			}
			t.Errorf("stuck: iteration seed JOBQ_RANDOM_SEED=%d JOBQ_RANDOM_ITERS=1", seed)
		}
	}()
	defer close(finished)

	time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
	r.rsMu.Lock()
	r.closing = true
	for pi := range nPools {
		if r.workers(pi) == 0 {
			if pi == piQ {
				r.Q.UpdateWorkerCount(1 + rng.IntN(2))
			} else {
				r.pool(pi).Resize(1 + rng.IntN(2))
			}
		}
	}
	r.rsMu.Unlock()
	for _, pi := range rng.Perm(nPools) {
		r.shutdown(rng, pi)
	}
	wg.Wait()
	for pi := range nPools {
		if err := r.shutdownPool(pi, context.Background()); err != nil {
			r.failf("pool %d: Close = %v", pi, err)
		}
	}
	synctest.Wait()
	r.finalChecks()
	r.addStats()
	for _, p := range r.problems {
		t.Error(p)
	}
	if len(r.problems) > 0 {
		t.Errorf("iteration seed: JOBQ_RANDOM_SEED=%d JOBQ_RANDOM_ITERS=1", seed)
	}
}

func (r *rRun) finalChecks() {
	for pi := range nPools {
		r.checkPoolIdle(pi, "at the end")
		r.checkResultsDone(pi, "at the end")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var lower, upper, failedLow [nPools]uint64
	for _, c := range r.chains {
		if !isDone(c.res) {
			r.problems = append(r.problems, fmt.Sprintf("chain %d: Result pending at the end", c.id))
			continue
		}
		v, err := c.res.Await(context.Background())
		if err == nil {
			if v.id != c.id {
				r.problems = append(r.problems, fmt.Sprintf("chain %d: returned item %d", c.id, v.id))
			}
			r.units[c.first][c.id].knownOK = true
			r.units[piB][c.id].knownOK = true
		}
		u1, u2 := r.units[c.first][c.id], r.units[piB][c.id]
		if a := c.res.Attempts(); u1.maxAtt > 0 && u2.maxAtt > 0 && a > u1.maxAtt+u2.maxAtt {
			r.problems = append(r.problems, fmt.Sprintf("chain %d: Attempts %d > MaxAttempts %d + %d", c.id, a, u1.maxAtt, u2.maxAtt))
		}
		if c.allRun && !c.cancelled && !r.gaveUp[c.first] && !r.gaveUp[piB] {
			if a := c.res.Attempts(); a != u1.starts+u2.starts {
				r.problems = append(r.problems, fmt.Sprintf("chain %d: Attempts %d, handler starts %d + %d (err %v)", c.id, a, u1.starts, u2.starts, err))
			}
		}
	}
	for pi := range nPools {
		for id, u := range r.units[pi] {
			if u.maxAtt > 0 && u.starts > u.maxAtt {
				r.problems = append(r.problems, fmt.Sprintf("pool %d job %d: %d handler starts, MaxAttempts %d", pi, id, u.starts, u.maxAtt))
			}
			if u.refused && u.starts > 0 {
				r.problems = append(r.problems, fmt.Sprintf("pool %d job %d: refused but its handler ran %d times", pi, id, u.starts))
			}
			switch {
			case u.res != nil:
				if !isDone(u.res) {
					continue
				}
				v, err := u.res.Await(context.Background())
				v2, err2 := u.res.Await(context.Background())
				if v != v2 || err != err2 {
					r.problems = append(r.problems, fmt.Sprintf("pool %d job %d: Await differs", pi, id))
				}
				if u.maxAtt > 0 && u.res.Attempts() > u.maxAtt {
					r.problems = append(r.problems, fmt.Sprintf("pool %d job %d: Attempts %d > MaxAttempts %d", pi, id, u.res.Attempts(), u.maxAtt))
				}
				if u.allRun && !u.cancelled && !r.gaveUp[pi] && u.res.Attempts() != u.starts {
					r.problems = append(r.problems, fmt.Sprintf("pool %d job %d: Attempts %d, handler starts %d (err %v, kind %d, depth %d)",
						pi, id, u.res.Attempts(), u.starts, err, u.item.kind[pi], u.item.depth))
				}
				if err == nil {
					lower[pi]++
					upper[pi]++
					if v.id != id {
						r.problems = append(r.problems, fmt.Sprintf("pool %d job %d: returned item %d", pi, id, v.id))
					}
					if !u.everNil {
						r.problems = append(r.problems, fmt.Sprintf("pool %d job %d: succeeded but no handler call returned nil", pi, id))
					}
				} else if !u.refused && !engine.IsCancellation(err) && !errors.Is(err, context.DeadlineExceeded) &&
					!errors.Is(err, ErrInvalidPolicy) && err != ErrQueueFull && err != ErrClosed {
					failedLow[pi]++
				}
				if u.timeout > 0 && u.starts > 0 && u.doneSet && u.doneAt.After(u.firstStart.Add(u.timeout)) {
					r.problems = append(r.problems, fmt.Sprintf("pool %d job %d: Timeout %v, started at %v, completed %v later (err %v); starts %d returns %d kind %d depth %d",
						pi, id, u.timeout, u.firstStart, u.doneAt.Sub(u.firstStart), err, u.starts, u.returns, u.item.kind[pi], u.item.depth))
				}
			case u.knownOK:
				lower[pi]++
				upper[pi]++
			case u.fire && !u.timeoutish && !r.gaveUp[pi]:
				if u.lastNil {
					lower[pi]++
					upper[pi]++
				}
			default:
				if u.everNil {
					upper[pi]++
				}
			}
		}
		m := r.metrics(pi)
		if m.Succeeded < lower[pi] || m.Succeeded > upper[pi] {
			r.problems = append(r.problems, fmt.Sprintf("pool %d: Succeeded %d, observed between %d and %d (gave up %v); %+v",
				pi, m.Succeeded, lower[pi], upper[pi], r.gaveUp[pi], m))
		}
		if m.Failed < failedLow[pi] {
			r.problems = append(r.problems, fmt.Sprintf("pool %d: Failed %d, but %d Results failed", pi, m.Failed, failedLow[pi]))
		}
		if !r.noCount[pi] && m.Submitted+m.Rejected != uint64(r.calls[pi]) {
			r.problems = append(r.problems, fmt.Sprintf("pool %d: Submitted %d + Rejected %d != %d calls", pi, m.Submitted, m.Rejected, r.calls[pi]))
		}
		if n := r.onRetry[pi].Load(); n != m.Retried {
			r.problems = append(r.problems, fmt.Sprintf("pool %d: %d OnRetry calls, Metrics.Retried %d", pi, n, m.Retried))
		}
	}
}

// randomStats sums what the iterations did, for the log.
var randomStats struct {
	sync.Mutex
	units, starts, results, chains, gaveUp, succeeded, failed, canceled, retried, rejected uint64
}

func (r *rRun) addStats() {
	randomStats.Lock()
	defer randomStats.Unlock()
	for pi := range nPools {
		for _, u := range r.units[pi] {
			randomStats.units++
			randomStats.starts += uint64(u.starts)
			if u.res != nil {
				randomStats.results++
			}
		}
		if r.gaveUp[pi] {
			randomStats.gaveUp++
		}
		m := r.metrics(pi)
		randomStats.succeeded += m.Succeeded
		randomStats.failed += m.Failed
		randomStats.canceled += m.Canceled
		randomStats.retried += m.Retried
		randomStats.rejected += m.Rejected
	}
	randomStats.chains += uint64(len(r.chains))
}

// envUint returns the value of the environment variable name, or def when
// it is unset; it fails t on a value that is no unsigned integer.
func envUint(t *testing.T, name string, def uint64) uint64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// TestRandomWorkloadsKeepTheInvariants: seeded randomized invariant
// checking. Each iteration builds fresh pools (typed pools A, B and C,
// chained by Then, and a legacy Queue Q) in a synctest bubble and lets a
// few actors mix, at random moments: Submit / TrySubmit / Go / EnQueueTask
// with random policies (retries, backoff, jitter, Timeout, MaxElapsed,
// RetryIf), submission ctxs that are cancelled or time out, Result.Cancel,
// bounded Await, Then chains, Map over a pool or a chain (Ordered,
// InFlight, early break, ctx ending), Resize up and down; handlers succeed,
// fail, panic, block until ctx ends, ignore ctx for a while, return
// Permanent / RetryAfter errors, fork–join a child of their own pool or Map
// over their own pool. Meanwhile the pools are shut down (gracefully or
// with a deadline) in random order. Then the invariants are checked: every
// Result completes, Cancel completes at once, Metrics add up, Succeeded
// matches what was observed, handler starts <= MaxAttempts, single-attempt
// timeouts complete at their deadline, Map yields sanely.
//
// Also mixed in: Then chains submitted from handlers of next's pool B with
// the handler's ctx (fork–join through Then, first being a pool C that
// never waits on B); Map fed by Batch (with and without maxWait) through
// Flatten; two-stage Map pipelines joined by Values with an onErr that
// returns true; Map over a pool of its own that is shut down mid-stream;
// paused pools (Resize(0)) shut down with cancelled queued jobs. Every
// policy carries an OnRetry that counts, per pool, and the count must equal
// Metrics.Retried once idle; Result.Attempts is checked against
// MaxAttempts and, for jobs whose every attempt calls the handler (ctx that
// never ends, never cancelled, no MaxElapsed, no give-up), against the
// handler starts.
//
// A seed fixes the workload, not the goroutines' interleaving, so a failing
// seed reproduces often rather than always: rerun it with -count.
//
//	JOBQ_RANDOM_SEED=n   the first seed (default 1; set it to explore)
//	JOBQ_RANDOM_ITERS=n  iterations (default 150)
//	JOBQ_RANDOM_TRACE=1  print each iteration's seed to stderr
func TestRandomWorkloadsKeepTheInvariants(t *testing.T) {
	seed := envUint(t, "JOBQ_RANDOM_SEED", 1) // fixed, so that CI runs the same workloads
	iters := envUint(t, "JOBQ_RANDOM_ITERS", 150)
	t.Logf("JOBQ_RANDOM_SEED=%d JOBQ_RANDOM_ITERS=%d", seed, iters)
	for i := range iters {
		s := seed + i
		if os.Getenv("JOBQ_RANDOM_TRACE") != "" {
			fmt.Fprintln(os.Stderr, "iteration seed", s)
		}
		failed := false
		synctest.Test(t, func(t *testing.T) {
			runRandomIter(t, s)
			failed = t.Failed()
		})
		if failed || t.Failed() {
			t.Fatalf("iteration %d failed: rerun with JOBQ_RANDOM_SEED=%d JOBQ_RANDOM_ITERS=1", i, s)
		}
	}
	st := &randomStats
	st.Lock()
	t.Logf("units %d, handler starts %d, Results %d, chains %d, give-ups %d; Succeeded %d Failed %d Canceled %d Retried %d Rejected %d",
		st.units, st.starts, st.results, st.chains, st.gaveUp, st.succeeded, st.failed, st.canceled, st.retried, st.rejected)
	st.Unlock()
}

// runValues runs a two-stage stream, Map over A joined to Map over B by
// Values with an onErr that counts the failed items and goes on, and
// checks that every item of the first stage either went on or was counted.
func (r *rRun) runValues(rng *rand.Rand, ctx context.Context) {
	n := 1 + rng.IntN(7)
	breakAt := -1
	if rng.IntN(4) == 0 {
		breakAt = rng.IntN(n)
	}
	var opts1, opts2 []MapOption
	ordered := rng.IntN(2) == 0
	if rng.IntN(2) == 0 {
		opts1 = append(opts1, Ordered())
	}
	if ordered {
		opts2 = append(opts2, Ordered())
	}
	if rng.IntN(2) == 0 {
		opts1 = append(opts1, InFlight(1+rng.IntN(4)))
	}
	if rng.IntN(2) == 0 {
		opts2 = append(opts2, InFlight(1+rng.IntN(4)))
	}
	// src runs in the first Map's feeder, mid in the second's, and the
	// loop below in this goroutine: idsMu guards what they share.
	var idsMu sync.Mutex
	var ids1, ids2 []int
	src := func(yield func(rItem) bool) {
		for range n {
			it := r.newItem(rng, 0)
			idsMu.Lock()
			ids1 = append(ids1, it.id)
			idsMu.Unlock()
			r.register(piA, it.id, nil, true)
			if !yield(it) {
				return
			}
		}
	}
	errs1, ctxErrs1 := 0, 0
	onErr := func(err error) bool {
		var ie *ItemError
		switch {
		case errors.As(err, &ie):
			idsMu.Lock()
			if ie.Index < 0 || ie.Index >= len(ids1) {
				r.failf("Values: first stage's ItemError index %d of %d items", ie.Index, len(ids1))
			}
			idsMu.Unlock()
			errs1++
		case ctx.Err() != nil && err == ctx.Err():
			ctxErrs1++
		default:
			r.failf("Values: first stage yielded %v; ctx.Err() = %v", err, ctx.Err())
		}
		return true
	}
	mid := func(yield func(rItem) bool) {
		for v := range Values(Map(ctx, r.A, src, opts1...), onErr) {
			idsMu.Lock()
			known := slicesContains(ids1, v.id)
			if !known {
				r.failf("Values yielded item %d, not one of %v", v.id, ids1)
			}
			idsMu.Unlock()
			if !known {
				continue
			}
			r.mu.Lock()
			r.units[piA][v.id].knownOK = true
			r.mu.Unlock()
			idsMu.Lock()
			ids2 = append(ids2, v.id)
			idsMu.Unlock()
			r.register(piB, v.id, nil, true)
			if !yield(v) {
				return
			}
		}
	}
	c := newStreamCheck(r, "second stage", ordered, breakAt)
	for v, err := range Map(ctx, r.B, mid, opts2...) {
		c.yielded(v.id, err)
		idx := -1
		var ie *ItemError
		switch {
		case err == nil:
			idsMu.Lock()
			idx = slicesIndex(ids2, v.id)
			if idx < 0 {
				r.failf("second stage yielded item %d, not one of %v", v.id, ids2)
			}
			idsMu.Unlock()
			if idx >= 0 {
				r.mu.Lock()
				r.units[piB][v.id].knownOK = true
				r.mu.Unlock()
			}
		case errors.As(err, &ie):
			idx = ie.Index
			idsMu.Lock()
			if idx < 0 || idx >= len(ids2) {
				r.failf("second stage yielded ItemError index %d of %d items", idx, len(ids2))
			}
			idsMu.Unlock()
		default:
			c.ctxEnded(ctx, err)
		}
		if c.next(idx) {
			break
		}
	}
	if c.broke || c.ctxYielded || ctxErrs1 > 0 {
		return
	}
	if len(ids1) != n || errs1+len(ids2) != n {
		r.failf("Values: %d items in, %d pulled, %d failed in the first stage + %d went on", n, len(ids1), errs1, len(ids2))
	}
	if len(c.seen) != len(ids2) {
		r.failf("second stage over %d items yielded %d", len(ids2), len(c.seen))
	}
}

func slicesIndex(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func slicesContains(s []int, v int) bool { return slicesIndex(s, v) >= 0 }

// ownPool returns a pool of its own for one operation: its handler behaves
// as the Queue's (no fork–join) but never blocks for an hour (that would
// outlast the graceful Shutdown's deadline, an hour a job), counts its
// starts per item, and every retry goes through onRetry.
func (r *rRun) ownPool(rng *rand.Rand, starts map[int]int, mu *sync.Mutex, onRetry *atomic.Uint64, queue int) (*Pool[rItem, rItem], Policy) {
	pol := Policy{OnRetry: func(int, error, time.Duration) { onRetry.Add(1) }}
	if rng.IntN(2) == 0 {
		pol.MaxAttempts = 1 + rng.IntN(3)
		pol.Backoff = rndBackoff(rng)
	}
	if rng.IntN(2) == 0 {
		pol.Timeout = time.Duration(1+rng.IntN(15)) * time.Millisecond
	}
	h := func(ctx context.Context, in rItem) (rItem, error) {
		mu.Lock()
		starts[in.id]++
		att := starts[in.id]
		mu.Unlock()
		if in.kind[piQ] == rkBlock {
			in.kind[piQ] = rkHonor
		}
		out, err := r.behave(ctx, piQ, in, att)
		if err == errPanicNow {
			panic("own pool's job panics")
		}
		return out, err
	}
	p := New(1+rng.IntN(3), h, WithQueueSize(queue), WithPolicy(pol))
	return p, pol.merge(defaultPolicy)
}

// checkOwnPool checks the Metrics of an own pool once it has closed.
func (r *rRun) checkOwnPool(what string, p *Pool[rItem, rItem], pol Policy, starts map[int]int, mu *sync.Mutex, onRetry *atomic.Uint64) Metrics {
	mu.Lock()
	defer mu.Unlock()
	m := p.Metrics()
	if m.Running != 0 || m.Queued != 0 || m.Workers != 0 || m.Succeeded+m.Failed+m.Canceled != m.Submitted {
		r.failf("%s: Metrics once closed %+v", what, m)
	}
	if n := onRetry.Load(); n != m.Retried {
		r.failf("%s: %d OnRetry calls, Metrics.Retried %d", what, n, m.Retried)
	}
	for id, n := range starts {
		if n > pol.MaxAttempts {
			r.failf("%s: item %d: %d handler starts, MaxAttempts %d", what, id, n, pol.MaxAttempts)
		}
	}
	return m
}

// runMapShutdown runs Map over a pool of its own that is shut down (in
// whichever way) while the stream runs, and checks that every item is
// yielded once and that Metrics agree with what was yielded.
func (r *rRun) runMapShutdown(rng *rand.Rand) {
	var mu sync.Mutex
	starts := map[int]int{}
	var onRetry atomic.Uint64
	p, pol := r.ownPool(rng, starts, &mu, &onRetry, 1+rng.IntN(4))
	n := 2 + rng.IntN(10)
	var items []rItem
	for range n {
		items = append(items, r.newItem(rng, 0))
	}
	var opts []MapOption
	ordered := rng.IntN(2) == 0
	if ordered {
		opts = append(opts, Ordered())
	}
	if rng.IntN(2) == 0 {
		opts = append(opts, InFlight(1+rng.IntN(4)))
	}
	delay := time.Duration(rng.IntN(20)) * time.Millisecond
	mode := rng.IntN(3)
	wait := time.Duration(rng.IntN(20)) * time.Millisecond
	shut := make(chan error, 1)
	go func() {
		time.Sleep(delay)
		switch mode {
		case 0:
			shut <- p.Shutdown(context.Background())
		case 1:
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			shut <- p.Shutdown(ctx)
		default:
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			shut <- p.Shutdown(ctx)
		}
	}()
	pause := rng.IntN(2) == 0
	src := func(yield func(rItem) bool) {
		for i, it := range items {
			if pause && i%2 == 1 {
				time.Sleep(time.Millisecond)
			}
			if !yield(it) {
				return
			}
		}
	}
	yields := newYieldOrder(r, "Map over a closing pool", ordered)
	var ok, closed uint64
	for v, err := range Map(context.Background(), p, src, opts...) {
		var ie *ItemError
		idx := -1
		switch {
		case err == nil:
			for i, it := range items {
				if it.id == v.id {
					idx = i
				}
			}
			if idx < 0 {
				r.failf("Map over a closing pool yielded item %d, not one of its", v.id)
			}
			ok++
		case errors.As(err, &ie):
			idx = ie.Index
			if errors.Is(err, ErrClosed) {
				closed++
			}
		default:
			r.failf("Map over a closing pool yielded %v", err)
		}
		if idx < 0 || idx >= n {
			r.failf("Map over a closing pool yielded index %d of %d items", idx, n)
			continue
		}
		yields.see(idx)
	}
	if len(yields.seen) != n {
		r.failf("Map over a closing pool (mode %d) yielded %d of %d items", mode, len(yields.seen), n)
	}
	err := <-shut
	if mode == 0 && err != nil {
		r.failf("graceful Shutdown during Map = %v", err)
	}
	if err != nil {
		p.Close() // waits for the handlers that ignore ctx
	}
	m := r.checkOwnPool("Map over a closing pool", p, pol, starts, &mu, &onRetry)
	if m.Submitted+m.Rejected != uint64(n) {
		r.failf("Map over a closing pool: Submitted %d + Rejected %d != %d items", m.Submitted, m.Rejected, n)
	}
	if m.Succeeded != ok {
		r.failf("Map over a closing pool: Succeeded %d, %d items yielded ok; %+v", m.Succeeded, ok, m)
	}
	if closed < m.Rejected {
		r.failf("Map over a closing pool: %d items failed with ErrClosed, Rejected %d", closed, m.Rejected)
	}
}

// runPaused pauses a pool of its own (Resize(0)), queues jobs in it, cancels
// some (Cancel, or their ctx), and shuts it down: with every queued job
// cancelled by Cancel a graceful Shutdown must return without a worker;
// otherwise it gives up at its deadline (nothing runs) or the pool grows
// again meanwhile (the rest runs).
func (r *rRun) runPaused(rng *rand.Rand) {
	var mu sync.Mutex
	starts := map[int]int{}
	var onRetry atomic.Uint64
	q := 1 + rng.IntN(6)
	p, pol := r.ownPool(rng, starts, &mu, &onRetry, q)
	type sub struct {
		id        int
		res       *Result[rItem]
		cancelled bool  // by Result.Cancel
		bg        bool  // its ctx never ends
		early     bool  // submitted before the pause: it may run
		ctxEnded  *bool // its ctx was cancelled before Shutdown
	}
	var subs []sub
	allCancelled := true
	var uncancelled []*bool // the ctxEnded of each job not cancelled by Result.Cancel
	calls, nEarly := 0, rng.IntN(3)*rng.IntN(2)
	for range nEarly {
		// Jobs the workers may hold as the pool pauses.
		it := r.newItem(rng, 0)
		calls++
		res, err := p.TrySubmit(context.Background(), it)
		if err == ErrQueueFull {
			continue // the workers have not taken the first one yet
		}
		if err != nil {
			r.failf("pool before its pause: TrySubmit = %v with room in the queue", err)
			continue
		}
		s := sub{id: it.id, res: res, bg: true, early: true}
		if rng.IntN(2) == 0 {
			time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
			res.Cancel()
			s.cancelled = true
		} else {
			allCancelled = false
			uncancelled = append(uncancelled, new(bool)) // its ctx never ends
		}
		subs = append(subs, s)
	}
	p.Resize(0)
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	m := 1 + rng.IntN(q)
	if len(subs) > 0 {
		// The early jobs may still be queued, or back there to retry.
		m = 1 + rng.IntN(max(q-len(subs), 1))
	}
	for range m {
		it := r.newItem(rng, 0)
		ctx := context.Background()
		bg := rng.IntN(2) == 0
		ctxEnded := new(bool)
		if !bg {
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			cancels = append(cancels, func() { *ctxEnded = true; cancel() })
		}
		calls++
		if rng.IntN(4) == 0 {
			if err := p.TryGo(ctx, it); err == ErrQueueFull && nEarly > 0 {
				continue // an early job's entry may still hold a slot
			} else if err != nil {
				r.failf("paused pool: TryGo = %v with room in the queue", err)
			}
			allCancelled = false
			uncancelled = append(uncancelled, ctxEnded)
			continue
		}
		res, err := p.TrySubmit(ctx, it)
		if err == ErrQueueFull && nEarly > 0 {
			continue // an early job's entry may still hold a slot
		}
		if err != nil {
			r.failf("paused pool: TrySubmit = %v with room in the queue", err)
			continue
		}
		s := sub{id: it.id, res: res, bg: bg, ctxEnded: ctxEnded}
		if rng.IntN(3) > 0 {
			res.Cancel()
			s.cancelled = true
			if _, err := res.Await(context.Background()); !isDone(res) || err != context.Canceled {
				r.failf("paused pool: Cancel of a queued job: done %v, err %v", isDone(res), err)
			}
		} else {
			allCancelled = false
			uncancelled = append(uncancelled, ctxEnded)
		}
		subs = append(subs, s)
	}
	for _, c := range cancels {
		if rng.IntN(2) == 0 {
			c()
		}
	}
	time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
	mode := rng.IntN(3)
	if allCancelled && mode == 2 {
		mode = 0
	}
	var err error
	switch mode {
	case 0: // graceful, with a deadline past any handler's hour
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
		if allCancelled {
			err = p.Shutdown(ctx)
			if err != nil {
				r.failf("paused pool, every queued job cancelled: Shutdown = %v (%s)", err, dumpPool(p))
			}
		} else {
			d, n := time.Duration(rng.IntN(10))*time.Millisecond, 1+rng.IntN(2)
			resized := make(chan struct{})
			go func() {
				defer close(resized)
				time.Sleep(d)
				p.Resize(n)
			}()
			if err = p.Shutdown(ctx); err != nil {
				r.failf("paused pool grown again: Shutdown = %v (%s)", err, dumpPool(p))
			}
			<-resized // it may have drained first, with the early jobs ended
		}
		cancel()
		if err != nil {
			p.Close()
		}
	case 1, 2: // gives up, or not, at a deadline with no worker
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(10))*time.Millisecond)
		err = p.Shutdown(ctx)
		cancel()
		// A queued job whose ctx ends ends then: with every job cancelled
		// one way or the other, the pool may drain without a worker.
		allEnded := !slices.ContainsFunc(uncancelled, func(e *bool) bool { return !*e })
		if err == nil && !allCancelled && !allEnded && nEarly == 0 {
			r.failf("paused pool with jobs left: Shutdown = nil without a worker")
		}
		p.Close() // with every job cancelled it may drain before the deadline, or not

	}
	grown := mode == 0 && !allCancelled
	mt := r.checkOwnPool("paused pool", p, pol, starts, &mu, &onRetry)
	early := 0
	for _, s := range subs {
		if s.early {
			early++
		}
	}
	if mt.Submitted+mt.Rejected != uint64(calls) {
		r.failf("paused pool: Submitted %d + Rejected %d, %d jobs submitted", mt.Submitted, mt.Rejected, calls)
	}
	mu.Lock()
	defer mu.Unlock()
	nc, earlyStarts := 0, 0
	for _, s := range subs {
		if !isDone(s.res) {
			r.failf("paused pool: job %d pending once closed", s.id)
			continue
		}
		_, err := s.res.Await(context.Background())
		if s.early {
			earlyStarts += starts[s.id]
		}
		switch {
		case s.early && (s.cancelled || !grown):
			// Cancel may have come after it had ended.
			if s.cancelled && err == context.Canceled {
				nc++
			}
		case s.cancelled:
			nc++
			if err != context.Canceled || starts[s.id] != 0 {
				r.failf("paused pool: cancelled job %d: err %v, %d starts", s.id, err, starts[s.id])
			}
		case s.ctxEnded != nil && *s.ctxEnded:
			// A queued job whose ctx ends ends then, cancelled; or,
			// given up first, with ErrClosed.
			if err != context.Canceled && err != ErrClosed || starts[s.id] != 0 {
				r.failf("paused pool: job %d whose ctx ended: err %v, %d starts", s.id, err, starts[s.id])
			}
		case !grown:
			if err != ErrClosed || starts[s.id] != 0 {
				r.failf("paused pool given up: job %d: err %v, %d starts", s.id, err, starts[s.id])
			}
		case s.bg && pol.MaxElapsed == 0:
			if a := s.res.Attempts(); a != starts[s.id] {
				r.failf("paused pool: job %d: Attempts %d, %d handler starts (err %v)", s.id, a, starts[s.id], err)
			}
		}
		if a := s.res.Attempts(); a > pol.MaxAttempts {
			r.failf("paused pool: job %d: Attempts %d > MaxAttempts %d", s.id, a, pol.MaxAttempts)
		}
	}
	total := 0
	for _, n := range starts {
		total += n
	}
	if !grown && (total != earlyStarts || early == 0 && mt.Succeeded != 0) {
		r.failf("paused pool, never grown: handlers started %v (%d by early jobs), Succeeded %d", starts, earlyStarts, mt.Succeeded)
	}
	if mt.Canceled < uint64(nc) {
		r.failf("paused pool: Canceled %d, %d jobs cancelled", mt.Canceled, nc)
	}
}
