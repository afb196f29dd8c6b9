package engine

import (
	"context"
	"sync/atomic"
	"time"
)

// fullJob is the record of a job whose policy has a deadline or is its
// own, whose ctx can end (it is watched while it waits), or whose pool has
// an observer: one allocation for the job, its first attempt's ext with the
// side record, and its own policy.
type fullJob[In, Out any] struct {
	Job[In, Out]
	x   ext[In, Out]
	own Policy
}

// newJob makes the record of a job of p, not yet queued, with policy pol
// (nil: the pool's).
func (p *Pool[In, Out]) newJob(ctx context.Context, in In, pol *Policy) *Job[In, Out] {
	def := &p.cfg.Policy
	if pol == nil {
		pol = def
	}
	var j *Job[In, Out]
	canEnd := pol.hasDeadline() || ctx.Done() != nil
	if pol == def && p.onEnd == nil && !canEnd {
		j = new(Job[In, Out])
	} else {
		c := new(fullJob[In, Out])
		j = &c.Job
		j.act.ext.Store(&c.x)
		if pol != def {
			c.own = *pol
			c.x.pol = &c.own
		}
	}
	j.in = in
	j.act.init(ctx, p, 1)
	if !canEnd {
		j.act.attempt = endsWithJob
	}
	j.Init(j)
	return j
}

// Nested reports whether j was submitted from a handler of its own pool.
func (j *Job[In, Out]) Nested() bool { return j.flagged(flagNested) }

// Submit queues a job of in under pol (nil: the pool's policy) and
// returns its record, completed with the error when it is refused. With
// wait it waits for room, in arrival order, until ctx ends. Submitted from
// a handler of p (ctx is, or derives from, its handler ctx) it never
// waits: with the queue full, the job runs at once in the caller if
// inPlace, and is refused with ErrQueueFull otherwise.
func (p *Pool[In, Out]) Submit(ctx context.Context, in In, wait, inPlace bool) (*Job[In, Out], error) {
	return p.submit(p.newJob(ctx, in, nil), wait, inPlace)
}

// SubmitWith is Submit under a policy of the job's own.
func (p *Pool[In, Out]) SubmitWith(ctx context.Context, in In, pol Policy, wait, inPlace bool) (*Job[In, Out], error) {
	return p.submit(p.newJob(ctx, in, &pol), wait, inPlace)
}

func (p *Pool[In, Out]) submit(j *Job[In, Out], wait, inPlace bool) (*Job[In, Out], error) {
	ctx := j.ctx()
	nested := Owner(ctx) == any(p)
	if nested {
		j.flag(flagNested)
		wait = false
	}
	t := task[In, Out]{j: j}
	err := p.enqueue(ctx, &t, wait)
	if err == ErrQueueFull && nested && inPlace {
		err = p.runNow(j)
	}
	if err != nil {
		p.rejected.Add(1)
		j.move(0, Queued, 0, Done)
		var zero Out
		j.Complete(zero, err)
	}
	return j, err
}

// runNow accepts j and runs it in the calling goroutine, off the workers:
// a fork–join child with the queue full.
func (p *Pool[In, Out]) runNow(j *Job[In, Out]) error {
	p.mu.Lock()
	if p.phase != open {
		p.mu.Unlock()
		return ErrClosed
	}
	t := task[In, Out]{j: j}
	p.accept(&t)
	p.claim(j, 0, nil)
	w := p.inPlace(j)
	p.mu.Unlock()
	p.runInPlace(w, j, 1)
	return nil
}

// Go queues a job of in without a Future for its caller. A job submitted
// with context.Background() (or TODO) and the pool's policy, without a
// deadline, is held by value and allocates nothing; any other has a record.
func (p *Pool[In, Out]) Go(ctx context.Context, in In, wait bool) error {
	if (ctx == context.Background() || ctx == context.TODO()) && !p.cfg.Policy.hasDeadline() {
		t := task[In, Out]{in: in, rt: &p.def}
		err := p.enqueue(ctx, &t, wait)
		if err != nil {
			p.rejected.Add(1)
		}
		return err
	}
	_, err := p.Submit(ctx, in, wait, true)
	return err
}

// GoWith is Go under a policy of the job's own: it has a record.
func (p *Pool[In, Out]) GoWith(ctx context.Context, in In, pol Policy, wait bool) error {
	_, err := p.SubmitWith(ctx, in, pol, wait, true)
	return err
}

// Stream is a Map's way into a pool: its items share one handler ctx,
// done once the stream closes or Shutdown gives up, and their outcomes go
// to its sink. Items are held by value unless the policy has a deadline,
// which only a record can enforce.
type Stream[In, Out any] struct {
	p      *Pool[In, Out]
	sc     sharedCtx
	cancel context.CancelFunc
	rt     route[Out]
	sl     *streamLane[In, Out] // the pool's lane; nil: the items use the queue
	closed atomic.Bool          // Close has run: Submit takes nothing more
}

// NewStream opens a stream of items submitted with ctx under pol (nil: the
// pool's policy) whose outcomes go to sink.
func (p *Pool[In, Out]) NewStream(ctx context.Context, sink Sink[Out], pol *Policy) *Stream[In, Out] {
	if pol == nil {
		pol = &p.cfg.Policy
	}
	s := &Stream[In, Out]{p: p, rt: route[Out]{pol: pol, sink: sink}}
	s.rt.sc = &s.sc
	ictx, cancel := context.WithCancel(ctx)
	s.sc = sharedCtx{Context: ictx, pool: p, ofStream: true}
	s.cancel = cancel
	p.mu.Lock()
	if p.quitting.Load() {
		cancel()
	} else {
		if p.streams == nil {
			p.streams = make(map[*Stream[In, Out]]struct{})
		}
		p.streams[s] = struct{}{} // for Shutdown's give-up: see abandon
		if !pol.hasDeadline() {
			s.sl = p.openLane()
		}
	}
	p.mu.Unlock()
	return s
}

// Submit queues item in for the slot of the sink, waiting for room. Once
// the stream is closed it takes nothing, and returns context.Canceled:
// the item never reaches the pool, nor its counts.
//
// An item held by value goes to the pool's lane, without the pool's lock,
// while the lane has room; otherwise to the queue, as other jobs do. A push
// that races Shutdown can take its place in the lane after the drain has
// ended: Submit then returns nil, and the item has already ended with
// ErrClosed in its sink (see late).
func (s *Stream[In, Out]) Submit(in In, slot int32) error {
	if s.closed.Load() {
		return context.Canceled
	}
	p := s.p
	t := task[In, Out]{in: in, rt: &s.rt, slot: slot}
	if sl := s.sl; sl != nil && !sl.stopped.Load() {
		if p.onEnd != nil {
			t.at = p.now()
		}
		atLaneHook("push")
		if sl.push(&t) {
			p.pushed(sl)
			return nil
		}
	}
	if s.rt.pol.hasDeadline() {
		j := p.newJob(&s.sc, in, s.rt.pol)
		sink := s.rt.sink
		j.OnDone(func() { sink.Done(slot, j.val, j.err) })
		t = task[In, Out]{j: j}
	}
	err := p.enqueue(&s.sc, &t, true)
	if err != nil {
		p.rejected.Add(1)
	}
	return err
}

// Close cancels the items in flight: queued ones end without running,
// running ones see their ctx cancelled. Their outcomes still go to the
// sink.
func (s *Stream[In, Out]) Close() {
	s.closed.Store(true)
	p := s.p
	p.mu.Lock()
	delete(p.streams, s)
	p.mu.Unlock()
	s.cancel()
}

// Retry runs fn under pol in the calling goroutine: the attempts, their
// deadlines, the backoffs between them and the errors are those of a
// pool's job. A panic in fn ends it with the Panicked error.
func Retry[T any](ctx context.Context, policy Policy, fn func(context.Context) (T, error)) (T, error) {
	pol := &policy
	var zero T
	var start time.Time
	if pol.MaxElapsed > 0 { // the only reader of start
		start = time.Now()
	}
	var prev time.Duration
	var errs []error
	var wait *time.Timer
	for k := 1; ; k++ {
		if err := ctx.Err(); err != nil {
			return zero, err // as a job whose ctx ends before an attempt
		}
		v, err := retryAttempt(ctx, pol, start, fn)
		if err == nil {
			return v, nil
		}
		var elapsed time.Duration
		if pol.MaxElapsed > 0 {
			elapsed = time.Since(start)
		}
		d := decide(pol, ctx, k, err, prev, elapsed, errs)
		if !d.retry {
			return zero, d.final
		}
		errs = append(errs, err)
		prev = d.delay
		if wait == nil {
			wait = time.NewTimer(d.delay)
			defer wait.Stop()
		} else {
			wait.Reset(d.delay)
		}
		select {
		case <-wait.C:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
}

// retryAttempt runs one attempt of Retry's fn, with its deadline.
func retryAttempt[T any](ctx context.Context, pol *Policy, start time.Time, fn func(context.Context) (T, error)) (v T, err error) {
	if pol.hasDeadline() {
		now := time.Now()
		var dl time.Time
		if pol.Timeout > 0 {
			dl = now.Add(pol.Timeout)
		}
		if pol.MaxElapsed > 0 {
			if e := start.Add(pol.MaxElapsed); dl.IsZero() || e.Before(dl) {
				dl = e
			}
		}
		parent := ctx
		actx, cancel := context.WithDeadline(ctx, dl)
		defer cancel()
		defer func() {
			if parent.Err() == nil && time.Until(dl) <= 0 {
				var zero T
				v, err = zero, context.DeadlineExceeded // past its deadline, whatever it returned
			}
		}()
		ctx = actx
	}
	defer func() {
		if x := recover(); x != nil {
			var zero T
			v, err = zero, Kinds.Panicked(x, false, stack())
		}
	}()
	return fn(ctx)
}
