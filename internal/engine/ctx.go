package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// The contexts handlers receive. Each keeps context's contract: its values
// never change, it is safe from any goroutine, it may be kept after the
// handler returns.
//
//   - attemptCtx: the ctx of one attempt of a job with a record. Done once
//     the attempt is over (its handler returned, or the pool ended it), and
//     earlier on the submission ctx's end, its deadline, Cancel, or
//     Shutdown's give-up. The first attempt's lives in the job record.
//   - sharedCtx: the ctx of jobs held by value: the pool's own (bare Go
//     jobs), done at Shutdown's give-up, or a Map's, done when the Map
//     returns. Shared by many jobs, so it allocates nothing per job.
//
// Both answer Value(handlerKey{}) with themselves, so that a submission
// made with a handler's ctx, or one derived from it, knows its pool
// (fork–join) and Attempt knows the attempt.

// handlerKey is the context key under which a handler's ctx gives itself.
type handlerKey struct{}

// handlerCtx is what a handler's ctx tells about itself.
type handlerCtx interface {
	owner() any
	attemptNo() int
}

// Owner returns the pool (as any) whose handler ctx ctx is or derives
// from, nil if none.
func Owner(ctx context.Context) any {
	if h, ok := ctx.Value(handlerKey{}).(handlerCtx); ok {
		return h.owner()
	}
	return nil
}

// Attempt returns the number of the attempt whose handler ctx ctx is or
// derives from, from 1; else the number WithAttempt put in ctx; else 0.
func Attempt(ctx context.Context) int {
	if h, ok := ctx.Value(handlerKey{}).(handlerCtx); ok {
		return h.attemptNo()
	}
	if n, ok := ctx.Value(attemptKey{}).(int); ok {
		return n
	}
	return 0
}

// attemptKey is the context key under which WithAttempt puts an attempt.
type attemptKey struct{}

// WithAttempt returns a copy of ctx in which Attempt reports n.
func WithAttempt(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, attemptKey{}, n)
}

// sharedCtx is the handler ctx of jobs held by value.
type sharedCtx struct {
	context.Context
	pool     any
	ended    atomic.Bool // the pool's: Shutdown gave up; read per bare job, where Err is a dynamic call
	ofStream bool        // a stream's: done once its Context is, at Close, Shutdown's give-up or the Map's ctx's end
}

// over reports whether the ctx is done, so that a queued job need not run.
func (c *sharedCtx) over() bool {
	return c.ended.Load() || c.ofStream && c.Context.Err() != nil
}

func (c *sharedCtx) owner() any     { return c.pool }
func (c *sharedCtx) attemptNo() int { return 1 }

func (c *sharedCtx) Value(key any) any {
	if _, ok := key.(handlerKey); ok {
		return c
	}
	return c.Context.Value(key)
}

// Error codes in attemptCtx.state: a ctx's Err is one of two errors, so two
// bits say which, and two more say which of the pool's own cancellations
// (the ones that decide the attempt's outcome) came first.
const (
	errNone     = 0
	errCanceled = 1
	errDeadline = 2

	ownNone     = 0
	ownTimeout  = 1 // the attempt's deadline passed
	ownClosed   = 2 // Shutdown gave up on the job
	ownCanceled = 3 // Cancel, or the attempt is over

	ownShift = 2
	errMask  = 3

	flagShift = 4 // the job's flags, in its first attempt's ctx: see Job
)

func codeOf(err error) uint32 {
	if err == context.DeadlineExceeded {
		return errDeadline
	}
	return errCanceled
}

func errOf(code uint32) error {
	switch code {
	case errCanceled:
		return context.Canceled
	case errDeadline:
		return context.DeadlineExceeded
	}
	return nil
}

// attemptCtx is the handler ctx of one attempt of a job with a record.
//
// Invariants: state's err code turns non-zero once and never changes
// after; so does its own code. ext, made on the first Done, AfterFunc or
// deadline (or with the job), is never replaced; its fields are guarded by
// ext.mu, but for deadline, written before the attempt starts.
type attemptCtx[In, Out any] struct {
	parent  context.Context // the submission's ctx
	pool    *Pool[In, Out]
	ext     atomic.Pointer[ext[In, Out]]
	attempt int32         // the attempt's number, or endsWithJob
	state   atomic.Uint32 // err code | own code<<ownShift | the job's flags (first attempt only)
}

// endsWithJob, as an attemptCtx's attempt, marks a first attempt whose
// only errors can be context.Canceled: its submission ctx cannot be
// cancelled and it has no deadline. Its end is read off its job's state
// word, which the end of the attempt moves anyway, instead of being
// written into the ctx's state as well.
const endsWithJob = -1

// job returns the job whose first attempt's ctx c is.
func (c *attemptCtx[In, Out]) job() *Job[In, Out] {
	var j Job[In, Out]
	return (*Job[In, Out])(unsafe.Add(unsafe.Pointer(c), -int(unsafe.Offsetof(j.act))))
}

// code returns the ctx's err code: errNone while it is not done.
func (c *attemptCtx[In, Out]) code() uint32 {
	code := c.state.Load() & errMask
	if code == errNone && c.attempt == endsWithJob {
		if s := c.job().Word.Load(); s != mkState(0, Queued) && s != mkState(1, Running) {
			code = errCanceled
		}
	}
	return code
}

// ext is what an attempt needs beyond the common case; the first
// attempt's also holds its job's side record, so that a job record has
// one pointer for both.
type ext[In, Out any] struct {
	ctxExt
	kids *Job[In, Out] // waiting jobs submitted with this ctx, to end when it is done (see adopt); guarded by mu
	side[In, Out]
}

// ctxExt is what an attemptCtx needs beyond the common case: a deadline,
// or a watch from elsewhere.
type ctxExt struct {
	deadline int64       // the attempt's own, in Unix ns; 0 when none
	watching atomic.Bool // the watch on parent is registered, or being
	closed   bool
	mu       sync.Mutex
	done     chan struct{}
	stop     func() bool // unregisters the watch on parent
	afters   []*func()
}

func (c *attemptCtx[In, Out]) init(parent context.Context, pool *Pool[In, Out], attempt int) {
	c.parent, c.pool, c.attempt = parent, pool, int32(attempt)
}

func (c *attemptCtx[In, Out]) owner() any     { return c.pool }
func (c *attemptCtx[In, Out]) attemptNo() int { return max(int(c.attempt), 1) }

// cancel records err (context.Canceled or DeadlineExceeded) as the ctx's
// error unless it has one, and own as the pool's cause unless it has one;
// then, the first time, closes Done and runs the AfterFunc callbacks.
func (c *attemptCtx[In, Out]) cancel(err error, own uint32) {
	code := codeOf(err)
	for {
		s := c.state.Load()
		n := s
		if n&errMask == errNone {
			n |= code
		}
		if own != ownNone && n>>ownShift&errMask == ownNone {
			n |= own << ownShift
		}
		if n == s || c.state.CompareAndSwap(s, n) {
			break
		}
	}
	c.wake()
}

// wake closes Done and runs the AfterFunc callbacks if the ctx is done and
// they are wanted; else extend, when it comes, does.
func (c *attemptCtx[In, Out]) wake() {
	if x := c.ext.Load(); x != nil && x.watching.Load() {
		c.closeExt(x)
	}
}

// closeExt closes x's channel and runs its callbacks, once the ctx is
// cancelled.
func (c *attemptCtx[In, Out]) closeExt(x *ext[In, Out]) {
	x.mu.Lock()
	if x.closed || c.code() == errNone {
		x.mu.Unlock()
		return
	}
	x.closed = true
	if x.done != nil {
		close(x.done)
	}
	stop, afters := x.stop, x.afters
	x.stop, x.afters = nil, nil
	var kids []*Job[In, Out]
	for k := x.kids; k != nil; {
		sd := k.sd()
		kids = append(kids, k)
		k, sd.prevKid, sd.nextKid = sd.nextKid, nil, nil
	}
	x.kids = nil
	x.mu.Unlock()
	if stop != nil {
		stop()
	}
	for _, f := range afters {
		go (*f)()
	}
	if len(kids) > 0 {
		go func() {
			for _, k := range kids {
				k.ctxEnded()
			}
		}()
	}
}

// adopt registers j, waiting, whose submission ctx c is, to be ended when
// c is done, as context.AfterFunc would but with no allocation, and
// reports whether it did: not if c is done already. j's pool's lock is
// held; j has a side record.
func (c *attemptCtx[In, Out]) adopt(j *Job[In, Out]) bool {
	x := c.extend()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return false
	}
	sd := j.sd()
	sd.prevKid, sd.nextKid = nil, x.kids
	if x.kids != nil {
		x.kids.sd().prevKid = j
	}
	x.kids = j
	return true
}

// disown undoes adopt(j), unless c's end has taken j already.
func (c *attemptCtx[In, Out]) disown(j *Job[In, Out]) {
	x := c.ext.Load()
	x.mu.Lock()
	defer x.mu.Unlock()
	sd := j.sd()
	switch {
	case sd.prevKid != nil:
		sd.prevKid.sd().nextKid = sd.nextKid
	case x.kids == j:
		x.kids = sd.nextKid
	default:
		return // taken by closeExt
	}
	if sd.nextKid != nil {
		sd.nextKid.sd().prevKid = sd.prevKid
	}
	sd.prevKid, sd.nextKid = nil, nil
}

// end marks the attempt over, once its job's state has moved on from it:
// the ctx is done from now on.
func (c *attemptCtx[In, Out]) end() {
	if c.attempt == endsWithJob {
		c.wake() // done by the move
		return
	}
	c.cancel(context.Canceled, ownNone)
}

// own returns the pool's cause of the attempt's cancellation.
func (c *attemptCtx[In, Out]) own() uint32 { return c.state.Load() >> ownShift & errMask }

// extOf returns the ctx's ext, making it on first use.
func (c *attemptCtx[In, Out]) extOf() *ext[In, Out] {
	if x := c.ext.Load(); x != nil {
		return x
	}
	x := &ext[In, Out]{}
	if !c.ext.CompareAndSwap(nil, x) {
		return c.ext.Load()
	}
	return x
}

// setDeadline gives the attempt its own deadline, before it starts.
func (c *attemptCtx[In, Out]) setDeadline(dl time.Time) { c.extOf().deadline = dl.UnixNano() }

// extend returns the ctx's ext, with the watch on parent that Done and
// AfterFunc need registered on first use.
func (c *attemptCtx[In, Out]) extend() *ext[In, Out] {
	x := c.extOf()
	if x.watching.Load() || !x.watching.CompareAndSwap(false, true) {
		return x
	}
	if c.parent.Done() != nil {
		parent := c.parent
		stop := context.AfterFunc(parent, func() { c.cancel(parent.Err(), ownNone) })
		x.mu.Lock()
		if x.closed {
			x.mu.Unlock()
			stop()
		} else {
			x.stop = stop
			x.mu.Unlock()
		}
	}
	c.closeExt(x) // cancelled before x existed
	return x
}

func (c *attemptCtx[In, Out]) Deadline() (time.Time, bool) {
	d, ok := c.parent.Deadline()
	if x := c.ext.Load(); x != nil && x.deadline != 0 && (!ok || x.deadline < d.UnixNano()) {
		d, ok = time.Unix(0, x.deadline), true
	}
	return d, ok
}

func (c *attemptCtx[In, Out]) Done() <-chan struct{} {
	x := c.extend()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done == nil {
		x.done = make(chan struct{})
		if x.closed {
			close(x.done)
		}
	}
	return x.done
}

// Err reports the ctx's first cancellation. It latches the parent's, so
// that Err stays the same once non-nil and Done, if made, is closed before
// Err reports it.
func (c *attemptCtx[In, Out]) Err() error {
	if code := c.code(); code != errNone {
		return errOf(code)
	}
	if perr := c.parent.Err(); perr != nil {
		c.cancel(perr, ownNone)
		return errOf(c.code())
	}
	return nil
}

func (c *attemptCtx[In, Out]) Value(key any) any {
	if _, ok := key.(handlerKey); ok {
		return c
	}
	return c.parent.Value(key)
}

// AfterFunc runs f in a goroutine of its own once the ctx is done, as
// context.AfterFunc does; the context package uses it, so contexts derived
// from a handler's ctx cost no goroutine.
func (c *attemptCtx[In, Out]) AfterFunc(f func()) (stop func() bool) {
	x := c.extend()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		go f()
		return func() bool { return false }
	}
	fp := &f
	x.afters = append(x.afters, fp)
	return func() bool {
		x.mu.Lock()
		defer x.mu.Unlock()
		for i, g := range x.afters {
			if g == fp {
				x.afters = append(x.afters[:i], x.afters[i+1:]...)
				return true
			}
		}
		return false
	}
}
