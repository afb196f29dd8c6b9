package engine

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// The attempt protocol. Every attempt of every job runs through attempt,
// whoever runs it: a worker, a handler that awaits a fork–join child, the
// caller of a Submit that runs its child in place, or a backoff timer
// running the retry of an awaited job. A job ends in one of three
// places: ended (with a record), endValue (held by value), or cancelJob
// (Cancel, its ctx's end, Shutdown's give-up); each counts it, reports it
// to the observer, completes it, and counts its end complete (countEnd).

// attempt runs t's next attempt on runner w; t is claimed (a record's
// state is Running).
func (p *Pool[In, Out]) attempt(w *worker[In, Out], t *task[In, Out]) {
	if t.j != nil {
		p.attemptJob(w, t.j, int(t.k)+1)
	} else {
		p.attemptValue(w, t)
	}
}

// call runs the handler, turning a panic into the Panicked error. A
// runtime.Goexit unwinds through it: its callers' deferred calls end the
// attempt.
func (p *Pool[In, Out]) call(ctx context.Context, in In) (out Out, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Kinds.Panicked(v, false, debug.Stack())
		}
	}()
	return p.h(ctx, in)
}

func stack() []byte { return debug.Stack() }

// goexitErr is the error of an attempt whose handler called Goexit.
func goexitErr() error { return Kinds.Panicked(nil, true, stack()) }

// actx returns the ctx of attempt k of j.
func (j *Job[In, Out]) actx(k int) *attemptCtx[In, Out] {
	if k <= 1 {
		return &j.act
	}
	return j.sd().cur
}

// attemptJob runs attempt k of j, claimed, on w.
func (p *Pool[In, Out]) attemptJob(w *worker[In, Out], j *Job[In, Out], k int) {
	var zero Out
	if err := j.ctx().Err(); err != nil {
		// Its ctx ended as it was claimed, before the watch ended it:
		// cancelled, whatever the ctx's error.
		if j.endUnrun(k) {
			p.endJob(w, j, zero, err, Canceled)
		}
		return
	}
	ac := j.actx(k)
	pol := j.policy()
	var dl time.Time
	if pol.hasDeadline() {
		now := time.Now()
		if pol.Timeout > 0 {
			dl = now.Add(pol.Timeout)
		}
		if pol.MaxElapsed > 0 {
			sd := j.sideOf()
			if sd.start.IsZero() {
				sd.start = now
			}
			if e := sd.start.Add(pol.MaxElapsed); dl.IsZero() || e.Before(dl) {
				dl = e
			}
		}
		if !now.Before(dl) {
			// MaxElapsed passed while the retry waited for a worker:
			// the attempt ends at its deadline without running.
			if j.fail(k) {
				p.failJob(w, j, k, context.DeadlineExceeded)
			}
			return
		}
		ac.setDeadline(dl)
	}
	if j.Word.Load() != mkState(k, Running) {
		return // Cancel or Shutdown's give-up ended it since the claim
	}
	if !dl.IsZero() {
		w.arm(j, k, ac, dl)
	}
	var t0 int64
	if p.onEnd != nil {
		t0 = p.now()
	}
	exited := true
	defer func() {
		if exited {
			p.afterJob(w, j, k, ac, dl, t0, zero, goexitErr())
		}
	}()
	out, err := p.call(ac, j.in)
	exited = false
	p.afterJob(w, j, k, ac, dl, t0, out, err)
}

// afterJob ends attempt k of j, whose handler returned (out, err), unless
// a timeout, Cancel or Shutdown's give-up ended it first.
func (p *Pool[In, Out]) afterJob(w *worker[In, Out], j *Job[In, Out], k int, ac *attemptCtx[In, Out], dl time.Time, t0 int64, out Out, err error) {
	if !dl.IsZero() {
		w.disarm()
		if err == nil && time.Until(dl) <= 0 { // a monotonic read only
			err = context.DeadlineExceeded // past its deadline, whatever it returned
		}
	}
	if t0 != 0 {
		j.sd().ran.Add(p.now() - t0)
	}
	if ac.own() == ownTimeout {
		err = context.DeadlineExceeded // the timer cancelled it, and has not ended it yet
	}
	var won bool
	if err == nil {
		won = j.succeed(k)
	} else {
		won = j.fail(k)
	}
	ac.end()
	switch {
	case !won:
	case err == nil:
		p.endJob(w, j, out, nil, Succeeded)
	default:
		p.failJob(w, j, k, err)
	}
}

// endUnrun ends j, claimed for attempt k, before that attempt runs: it
// counts the attempts made before.
func (j *Job[In, Out]) endUnrun(k int) bool { return j.move(k, Running, k-1, Done) }

// failJob decides what follows attempt k of j, which failed with err; j
// is Finishing.
func (p *Pool[In, Out]) failJob(w *worker[In, Out], j *Job[In, Out], k int, err error) {
	pol := j.policy()
	var prev, elapsed time.Duration
	var errs []error
	if sd := j.sd(); sd != nil {
		prev, errs = sd.prev, sd.errs
		if pol.MaxElapsed > 0 {
			elapsed = time.Since(sd.start)
		}
	}
	d := decide(pol, j.ctx(), k, err, prev, elapsed, errs)
	if d.retry {
		p.backoff(w, j, k, err, d.delay)
		return
	}
	if j.giveUp(k) {
		p.endJob(w, j, *new(Out), d.final, outcomeOf(d.final))
	}
}

func outcomeOf(err error) Outcome {
	if IsCancellation(err) {
		return Canceled
	}
	return Failed
}

// backoff holds j, finishing attempt k which failed with err, for delay
// before it is queued again. A timer waits, not a worker.
func (p *Pool[In, Out]) backoff(w *worker[In, Out], j *Job[In, Out], k int, err error, delay time.Duration) {
	sd := j.sideOf()
	sd.errs = append(sd.errs, err)
	sd.prev = delay
	p.retried.Add(1)
	p.mu.Lock()
	if p.phase == abandoned || p.phase == drained {
		p.mu.Unlock()
		if j.giveUp(k) {
			p.endJob(w, j, *new(Out), ErrClosed, Canceled)
		}
		return
	}
	j.retry(k)
	p.waitIn++
	if p.backoffs == nil {
		p.backoffs = make(map[*Job[In, Out]]struct{})
	}
	p.backoffs[j] = struct{}{}
	sd.timer = time.AfterFunc(delay, func() { p.backoffEnded(j, k) })
	if j.ctx().Done() != nil {
		j.watch() // a job whose ctx ends in backoff ends then
	}
	p.mu.Unlock()
}

// backoffEnded queues j, in backoff after k attempts, for its next
// attempt, ahead of new submissions and whatever the queue's bound. The
// retry of a job that a goroutine awaits runs here, in its stead.
func (p *Pool[In, Out]) backoffEnded(j *Job[In, Out], k int) {
	p.mu.Lock()
	if _, ok := p.backoffs[j]; !ok {
		p.mu.Unlock()
		return // Cancel, its ctx or the give-up ended it
	}
	delete(p.backoffs, j)
	sd := j.sd()
	ac := new(attemptCtx[In, Out])
	ac.init(j.ctx(), p, k+1)
	sd.cur = ac
	if !j.requeue(k) {
		p.mu.Unlock()
		return
	}
	t := task[In, Out]{j: j, k: int32(k)}
	switch {
	case j.flagged(flagAwaited) && p.claim(j, k, nil):
		w := p.inPlace(j)
		p.mu.Unlock()
		p.runInPlace(w, j, k+1)
		return
	case len(p.idle) > 0 && p.claim(j, k, nil):
		p.wakeIdle(&t)
	default:
		p.retries.Push(t)
	}
	p.mu.Unlock()
}

// watch ends j as soon as its ctx ends while it waits, queued or in
// backoff. p.mu is held.
func (j *Job[In, Out]) watch() {
	sd := j.sideOf()
	if sd.stopWatch != nil || sd.watchedBy != nil {
		return
	}
	if hc, ok := j.ctx().(*attemptCtx[In, Out]); ok {
		// Submitted with a handler's ctx, as fork–join children are.
		if hc.adopt(j) {
			sd.watchedBy = hc
		} else {
			go j.ctxEnded()
		}
		return
	}
	sd.stopWatch = context.AfterFunc(j.ctx(), j.ctxEnded)
}

// unwatch ends the watch on j's ctx, if any. p.mu is held.
func (j *Job[In, Out]) unwatch() {
	sd := j.sd()
	if sd == nil {
		return
	}
	if sd.stopWatch != nil {
		sd.stopWatch()
		sd.stopWatch = nil
	}
	if hc := sd.watchedBy; hc != nil {
		hc.disown(j)
		sd.watchedBy = nil
	}
}

// ctxEnded ends j, waiting, whose ctx has ended: cancelled, whatever the
// ctx's error.
func (j *Job[In, Out]) ctxEnded() {
	j.pool().cancelJob(j, j.ctx().Err(), Queued, Backoff)
}

// Cancel ends j: see jobq.Result.Cancel. If someone else has just ended
// j, it waits the moment until they have completed it, so that the Result
// is complete when Cancel returns.
func (j *Job[In, Out]) Cancel() {
	if !j.pool().cancelJob(j, context.Canceled, Queued, Backoff, Running) {
		j.Outcome()
	}
}

// cancelJob ends j with err, counted Canceled, if it is in one of phases:
// for Cancel, its ctx's end, and Shutdown's give-up. A running attempt has
// its ctx cancelled. It reports whether it ended j.
func (p *Pool[In, Out]) cancelJob(j *Job[In, Out], err error, phases ...Phase) bool {
	ph, k, ok := j.endIn(phases)
	if !ok {
		return false
	}
	if ph == Running {
		own := uint32(ownCanceled)
		if err == ErrClosed {
			own = ownClosed
		}
		j.actx(k).cancel(context.Canceled, own)
	} else {
		p.mu.Lock()
		p.waitOut++
		if sd := j.sd(); sd != nil && ph == Backoff {
			delete(p.backoffs, j)
			sd.timer.Stop()
		}
		j.unwatch()
		p.mu.Unlock()
	}
	p.endJob(nil, j, *new(Out), err, Canceled)
	return true
}

// Help runs j in the calling goroutine if it is a fork–join child (see
// flagNested) still queued: its awaiting handler's worker does the work
// rather than wait for another. Its retries then run where their backoff
// ends.
func (j *Job[In, Out]) Help() {
	if !j.flagged(flagNested) {
		return
	}
	p := j.pool()
	p.mu.Lock()
	j.flag(flagAwaited)
	s := j.Word.Load()
	k := int(s >> phaseBits)
	if Phase(s&phaseMask) != Queued || !p.claim(j, k, nil) {
		p.mu.Unlock()
		return
	}
	w := p.inPlace(j)
	p.mu.Unlock()
	p.runInPlace(w, j, k+1)
}

// inPlace registers a runner off the workers for j, just claimed: a spare
// one if the pool has one. p.mu is held.
func (p *Pool[In, Out]) inPlace(j *Job[In, Out]) *worker[In, Out] {
	w := p.spare
	if w != nil {
		p.spare, w.next = w.next, nil
		p.spares--
		w.cur, w.busy = j, true
	} else {
		w = &worker[In, Out]{p: p, cur: j, busy: true}
	}
	if p.inline == nil {
		p.inline = make(map[*worker[In, Out]]struct{})
	}
	p.inline[w] = struct{}{}
	return w
}

// runInPlace runs attempt k of j on w, a runner off the workers, in the
// calling goroutine.
func (p *Pool[In, Out]) runInPlace(w *worker[In, Out], j *Job[In, Out], k int) {
	defer func() {
		w.stopTimer()
		p.mu.Lock()
		delete(p.inline, w)
		p.addAll(&w.outcomes, 0)
		p.addEnded(w.unended)
		if p.spares < maxSpares {
			w.reset()
			w.next, p.spare = p.spare, w
			p.spares++
		}
		p.mu.Unlock()
	}()
	p.attemptJob(w, j, k)
}

// reset clears the counts and job of w, a runner off the workers whose
// counts have been folded into the pool's, for reuse.
func (w *worker[In, Out]) reset() {
	w.cur, w.busy, w.unended = nil, false, 0
	for _, c := range []*atomic.Uint64{&w.succeeded, &w.failed, &w.canceled} {
		if c.Load() != 0 {
			c.Store(0)
		}
	}
}

// attemptValue runs t, a job held by value, on w.
func (p *Pool[In, Out]) attemptValue(w *worker[In, Out], t *task[In, Out]) {
	var zero Out
	sc := t.rt.sc
	if quit := p.quitting.Load(); quit || sc.over() {
		// Its ctx ended while it waited: its Map's, or the pool's at
		// Shutdown's give-up. Or Shutdown gave up as a worker took it
		// from the lane, before the give-up cancelled its ctx: it ends
		// as the queued ones do.
		err := ErrClosed
		if !quit {
			err = sc.Err()
		}
		p.endValue(w, t, zero, err, Canceled, 0, 0)
		return
	}
	var t0 int64
	if p.onEnd != nil || t.rt.pol.MaxAttempts > 1 {
		t0 = p.now()
	}
	exited := true
	defer func() {
		if exited {
			p.afterValue(w, t, t0, zero, goexitErr())
		}
	}()
	out, err := p.call(sc, t.in)
	exited = false
	p.afterValue(w, t, t0, out, err)
}

// afterValue ends t, whose handler returned (out, err): it succeeded,
// failed for good, or gets a record for its retry.
func (p *Pool[In, Out]) afterValue(w *worker[In, Out], t *task[In, Out], t0 int64, out Out, err error) {
	var ran int64
	if t0 != 0 {
		ran = p.now() - t0
	}
	if err == nil {
		p.endValue(w, t, out, nil, Succeeded, ran, 1)
		return
	}
	if p.quitting.Load() {
		// Shutdown gave up on it while it ran: no retry, and the error
		// a Result gets.
		p.endValue(w, t, out, ErrClosed, Canceled, ran, 1)
		return
	}
	pol := t.rt.pol
	d := decide(pol, t.rt.sc, 1, err, 0, 0, nil)
	if !d.retry {
		p.endValue(w, t, *new(Out), d.final, outcomeOf(d.final), ran, 1)
		return
	}
	// Only now does the job need a record of its own.
	j := p.newJob(t.rt.sc, t.in, pol)
	sd := j.sideOf()
	sd.at = t.at
	sd.ran.Store(ran)
	j.Word.Store(mkState(1, Finishing))
	sd.start = p.cfg.epoch.Add(time.Duration(t0))
	if sink := t.rt.sink; sink != nil {
		slot := t.slot
		j.OnDone(func() { sink.Done(slot, j.val, j.err) })
	}
	p.backoff(w, j, 1, err, d.delay)
}

// endJob counts j, which w (or, nil, someone off the workers) has just
// moved to Done with (out, err), reports it to the observer, completes it
// and counts its end complete.
func (p *Pool[In, Out]) endJob(w *worker[In, Out], j *Job[In, Out], out Out, err error, oc Outcome) {
	p.count(w, oc)
	if f := p.onEnd; f != nil {
		sd := j.sd()
		p.observe(f, oc, err, j.Attempts(), sd.at, sd.ran.Load())
	}
	j.Complete(out, err)
	p.countEnd(w)
}

// endValue counts t, a job held by value that w ran or dropped, reports
// it, hands its outcome to its sink, and counts its end complete.
func (p *Pool[In, Out]) endValue(w *worker[In, Out], t *task[In, Out], out Out, err error, oc Outcome, ran int64, attempts int) {
	sink := t.rt.sink
	if oc == Succeeded && w != nil {
		// Counted under p.mu with the end, no atomic operation: Metrics
		// shows it once w visits the lock, after at most laneBurst items
		// in a row, and before the pool can be idle.
		w.pendingFired++
	} else {
		p.count(w, oc)
	}
	if f := p.onEnd; f != nil {
		p.observe(f, oc, err, attempts, t.at, ran)
	}
	if sink != nil {
		sink.Done(t.slot, out, err)
	}
	p.countEnd(w)
}

// count counts an end, on w's counters if a worker ended it.
func (p *Pool[In, Out]) count(w *worker[In, Out], oc Outcome) {
	if w != nil {
		w.add(oc)
	} else {
		p.add(oc)
	}
}

// outcomes counts ends by outcome.
type outcomes struct{ succeeded, failed, canceled atomic.Uint64 }

// addAll adds x's counts, and fired more successes, to o's.
func (o *outcomes) addAll(x *outcomes, fired uint64) {
	o.succeeded.Add(x.succeeded.Load() + fired)
	o.failed.Add(x.failed.Load())
	o.canceled.Add(x.canceled.Load())
}

func (o *outcomes) add(oc Outcome) {
	switch oc {
	case Succeeded:
		o.succeeded.Add(1)
	case Failed:
		o.failed.Add(1)
	default:
		o.canceled.Add(1)
	}
}

// observe reports an end to f.
func (p *Pool[In, Out]) observe(f func(End), oc Outcome, err error, attempts int, at, ran int64) {
	total := p.now() - at
	f(End{Outcome: oc, Err: err, Attempts: attempts, Queued: time.Duration(max(total-ran, 0)), Running: time.Duration(ran)})
}

// countEnd counts an end complete: at w's next visit to p.mu, or now.
func (p *Pool[In, Out]) countEnd(w *worker[In, Out]) {
	if w != nil {
		w.unended++
		return
	}
	p.mu.Lock()
	p.addEnded(1)
	p.mu.Unlock()
}

// endIn ends j if it is in one of phases, waiting out a Finishing one,
// and reports the phase it left and its attempts.
func (j *Job[In, Out]) endIn(phases []Phase) (Phase, int, bool) {
	for spins := 0; ; spins++ {
		s := j.Word.Load()
		ph, k := Phase(s&phaseMask), int(s>>phaseBits)
		if ph == Finishing {
			yield(spins) // the policy decides, a moment
			continue
		}
		in := false
		for _, x := range phases {
			in = in || x == ph
		}
		if !in {
			return ph, k, false
		}
		if j.move(k, ph, k, Done) {
			return ph, k, true
		}
	}
}

// timer is a runner's per-attempt timeout timer, reused across attempts.
type timer[In, Out any] struct {
	tmu      sync.Mutex
	t        *time.Timer
	j        *Job[In, Out]
	k        int
	ac       *attemptCtx[In, Out]
	deadline time.Time
}

// arm starts the timer for attempt k of j, with ctx ac, ending at dl.
func (w *worker[In, Out]) arm(j *Job[In, Out], k int, ac *attemptCtx[In, Out], dl time.Time) {
	w.tmu.Lock()
	w.timer.j, w.timer.k, w.timer.ac, w.timer.deadline = j, k, ac, dl
	if w.timer.t == nil {
		w.timer.t = time.AfterFunc(time.Until(dl), w.fire)
	} else {
		w.timer.t.Reset(time.Until(dl))
	}
	w.tmu.Unlock()
}

func (w *worker[In, Out]) disarm() {
	w.tmu.Lock()
	w.timer.j, w.timer.ac = nil, nil
	w.timer.t.Stop()
	w.tmu.Unlock()
}

func (w *worker[In, Out]) stopTimer() {
	w.tmu.Lock()
	if w.timer.t != nil {
		w.timer.t.Stop()
	}
	w.tmu.Unlock()
}

// fire ends the armed attempt at its deadline: its ctx is cancelled, and
// the attempt fails with context.DeadlineExceeded.
func (w *worker[In, Out]) fire() {
	w.tmu.Lock()
	j, k, ac := w.timer.j, w.timer.k, w.timer.ac
	if j == nil || time.Until(w.timer.deadline) > 0 {
		w.tmu.Unlock() // disarmed, or a late firing of an earlier arming
		return
	}
	w.timer.j, w.timer.ac = nil, nil
	p := j.pool()
	w.tmu.Unlock()
	ac.cancel(context.DeadlineExceeded, ownTimeout)
	if j.fail(k) {
		p.failJob(nil, j, k, context.DeadlineExceeded)
	}
}
