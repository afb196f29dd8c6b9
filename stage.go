package jobq

import (
	"context"
	"fmt"
	"iter"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-bb9ff1e7/jobq/internal/engine"
)

// Stage is one step of a pipeline: it takes an In and promises an Out.
// *Pool implements it; Then chains two stages into one, and Map streams a
// sequence through one.
//
// An implementation's Submit must return a non-nil Result, and Cancel on
// that Result must complete it at once, as a Pool's Results do.
type Stage[In, Out any] interface {
	Submit(ctx context.Context, in In, pol ...Policy) *Result[Out]
}

var _ Stage[int, int] = (*Pool[int, int])(nil)

// Then returns the stage that runs first, then next on first's output.
//
// Its Submit submits in to first at once and returns one Result for the
// chain. When first's job succeeds, its output is submitted to next with
// the same ctx and policies, and the Result completes with next's outcome.
// The policies apply to each stage on its own: a retry repeats only the
// stage that failed. An error from either stage completes the Result with
// that error, unwrapped, and an item that failed in first never reaches
// next. Cancel cancels the job of whichever stage holds the item and
// completes the Result with context.Canceled. Once the Result has
// completed, Attempts reports the attempts of both stages together.
//
// No goroutine waits between the stages: next's Submit runs in the
// goroutine that completes first's job, usually a worker of first. While
// next's queue is full that worker waits for room, so a slow next holds
// first back as a channel pipeline would; for the same reason no Pool may
// appear twice in a chain (first and next, or deeper in nested chains),
// which could wait on itself.
//
// Submitted from a handler of next's pool with the handler's ctx, the chain
// is fork–join: first's output goes to next from a goroutine of its own,
// not from first's worker, and, when the handler awaits the chain, next's
// job runs in the handler's stead if no worker of next has taken it, as
// Await runs a child of the handler's own pool: in the handler itself if
// next's job exists when the handler starts to await, else in a goroutine
// of its own once first's job has completed.
//
// A chained submission costs first's and next's Submit plus two
// allocations: the chain's Result and its completion hook; a fork–join
// chain adds a goroutine, and one more when the handler awaits it before
// first's job completes.
//
// Map over a chain whose stages are all Pools, or chains of them, does not
// call the chain's Submit: it hands each item to the first pool as it does
// to a lone Pool, and first's worker hands the output on to next's queue,
// waiting for room as above, with no Result. The items of one such Map
// share one handler ctx per pool, done once the Map returns, as a Map's
// items over a Pool do. From a handler of one of the chain's pools (with
// the handler's ctx), Map goes through the chain's Submit instead, with
// its fork–join handling.
//
// Then panics if first or next is nil.
func Then[A, B, C any](first Stage[A, B], next Stage[B, C]) Stage[A, C] {
	if first == nil {
		panic("jobq: Then: first must not be nil")
	}
	if next == nil {
		panic("jobq: Then: next must not be nil")
	}
	return &then[A, B, C]{first: first, next: next}
}

type then[A, B, C any] struct {
	first Stage[A, B]
	next  Stage[B, C]
}

func (t *then[A, B, C]) Submit(ctx context.Context, in A, pol ...Policy) *Result[C] {
	j := &thenJob[A, B, C]{next: t.next, ctx: ctx, pol: slices.Clone(pol)}
	j.Init(j)
	r1 := t.first.Submit(ctx, in, pol...)
	if r1 == nil {
		panic("jobq: Then: first stage's Submit returned a nil Result")
	}
	j.r1 = r1
	j.hook = j.advance
	whenDone(r1, j.hook)
	return resultOf(&j.Future)
}

// thenJob is one item going through a Then stage: the chain's Result, and
// the Results of the stages' jobs.
type thenJob[A, B, C any] struct {
	engine.Future[C]
	next      Stage[B, C]
	ctx       context.Context
	pol       []Policy
	r1        *Result[B]
	r2        atomic.Pointer[Result[C]] // set once first's job has succeeded
	cancelled atomic.Bool
	helped    atomic.Bool  // Help has run: someone awaits the chain
	attempts  atomic.Int64 // both stages' attempts, once settled
	hook      func()       // advance, made once: the completion hook of both stages
}

// advance runs when the job of the live stage has completed.
func (j *thenJob[A, B, C]) advance() {
	if j.r2.Load() == nil {
		j.firstDone()
	} else {
		j.secondDone()
	}
}

// firstDone runs when first's job has completed: it hands the output to next.
func (j *thenJob[A, B, C]) firstDone() {
	b, err := j.r1.Await(context.Background()) // completed: returns at once
	if err != nil {
		var zero C
		j.settle(zero, err)
		return
	}
	if j.cancelled.Load() {
		return // Cancel has completed the chain's Result
	}
	if isOwnHandler(j.ctx, j.next) {
		// A fork–join child of next: with next's queue full, Submit
		// runs it inline, and here that is first's worker, where
		// next's handler waiting on a job of first would wait on
		// itself. Submit it from a goroutine of its own.
		go j.submitNext(b)
		return
	}
	j.submitNext(b)
}

// submitNext submits first's output b to next and watches next's job.
func (j *thenJob[A, B, C]) submitNext(b B) {
	r2 := j.next.Submit(j.ctx, b, j.pol...)
	if r2 == nil {
		panic("jobq: Then: next stage's Submit returned a nil Result")
	}
	j.r2.Store(r2)
	// Cancel may have run between firstDone's check and the store; if so
	// it could not see r2, so cancel it here. Both sides use sequentially
	// consistent atomics, so at least one of them sees the other.
	if j.cancelled.Load() {
		r2.Cancel()
	}
	whenDone(r2, j.hook)
	// A handler of next's pool may await the chain, having helped before
	// r2 existed: run r2 here if it is a fork–join child left queued.
	// Only a job submitted from a handler of next's pool (nested) can be
	// such a child: other chains start no goroutine here.
	if j.helped.Load() && r2.nested() && !r2.isDone() {
		// In a goroutine of its own, in the awaiting handler's stead:
		// on this one, first's worker, next's handler could wait on a
		// job of first queued behind itself.
		go r2.help()
	}
}

// secondDone runs when next's job has completed: the chain is over.
func (j *thenJob[A, B, C]) secondDone() {
	c, err := j.r2.Load().Await(context.Background())
	j.settle(c, err)
}

// settle completes the chain's Result with (v, err) unless it has completed.
func (j *thenJob[A, B, C]) settle(v C, err error) {
	attempts := j.r1.Attempts()
	if r2 := j.r2.Load(); r2 != nil {
		attempts += r2.Attempts()
	}
	if !j.IsDone() {
		j.attempts.CompareAndSwap(0, int64(attempts)) // before Complete, for Await's caller
	}
	j.Complete(v, err)
}

// Attempts reports the attempts of both stages, once the chain has
// completed, and of first's so far before.
func (j *thenJob[A, B, C]) Attempts() int {
	if n := j.attempts.Load(); n > 0 {
		return int(n)
	}
	return j.r1.Attempts()
}

// Cancel implements Result.Cancel for the chain.
func (j *thenJob[A, B, C]) Cancel() {
	j.cancelled.Store(true)
	var zero C
	j.settle(zero, context.Canceled)
	j.r1.Cancel()
	if r2 := j.r2.Load(); r2 != nil {
		r2.Cancel()
	}
}

// help lets an awaiting handler run the live stage's job itself, as Await
// does for a job of the handler's own pool.
func (j *thenJob[A, B, C]) Help() {
	j.helped.Store(true) // submitNext helps with r2 if it is not there yet
	if j.r2.Load() == nil {
		j.r1.help() // may run first's job, and so submit to next
	}
	if r2 := j.r2.Load(); r2 != nil {
		r2.help()
	}
}

// whenDone runs f once r has completed. A Result takes one hook; a second
// watcher of the same Result (a Stage that hands out one Result for several
// submissions) costs a goroutine that waits for it.
func whenDone[T any](r *Result[T], f func()) {
	if !r.onDone(f) {
		go func() {
			<-r.Done()
			f()
		}()
	}
}

// ItemError is the error Map yields for an item whose job failed: Index is
// the item's position in Map's input, counting from 0, and Err the job's
// error. errors.Is and errors.As see through it to Err.
type ItemError struct {
	Index int
	Err   error
}

// Error names the item and its error.
func (e *ItemError) Error() string { return fmt.Sprintf("jobq: item %d: %v", e.Index, e.Err) }

// Unwrap returns the job's error.
func (e *ItemError) Unwrap() error { return e.Err }

// DefaultInFlight is how many items Map keeps in flight without InFlight:
// enough to keep a pool's workers busy while the consuming goroutine is away
// yielding or serving other stages. On 2 cores a 3-stage pipeline runs
// about 3 times as fast with 64 as with 4, and no faster with 256; with
// 1024 it runs 12% faster, 27% Ordered (BenchmarkMapInFlight, 8 runs), but
// an Ordered stream that deep can hold 1024 finished results behind one
// slow item. Each item in flight holds one slot, made as items come, so a
// large window costs nothing until it fills.
const DefaultInFlight = 64

// maxWindow caps InFlight, so that slot ids fit an int32.
const maxWindow = 1 << 30

// A MapOption configures Map.
type MapOption func(*mapConfig)

type mapConfig struct {
	ordered bool
	window  int
	pol     *Policy // ItemPolicy's, if given
}

// Ordered makes Map yield results in input order. A result that completes
// early waits, in its in-flight slot, for the results before it, so memory
// stays bounded by the in-flight window, but one slow item holds the stream
// back: while it runs, at most InFlight items are in flight behind it.
func Ordered() MapOption { return func(c *mapConfig) { c.ordered = true } }

// InFlight bounds the items that Map has pulled from its input and not yet
// yielded to n (DefaultInFlight without it). It panics if n < 1.
func InFlight(n int) MapOption {
	if n < 1 {
		panic(fmt.Sprintf("jobq: InFlight: n must be >= 1, got %d", n))
	}
	return func(c *mapConfig) { c.window = min(n, maxWindow) }
}

// ItemPolicy gives each item of the Map the policy p, as Submit's pol does
// for one job: p's zero fields come from the pool's default policy (at
// each pool of a Then chain of Pools, from that pool's). Over any other
// Stage, p is passed to the stage's Submit. It panics if p is invalid (a
// negative MaxAttempts, Timeout or MaxElapsed).
func ItemPolicy(p Policy) MapOption {
	if err := p.validate(); err != nil {
		panic(fmt.Sprintf("jobq: ItemPolicy: p is invalid: %v", err))
	}
	return func(c *mapConfig) { c.pol = &p }
}

// Map streams in through s: it submits each item to s with ctx and yields
// each job's (output, nil), or (zero Out, *ItemError) for a job that failed;
// the stream goes on after a failed item. Results come as they complete,
// or in input order with Ordered.
//
// Map pulls in from a goroutine of its own, the feeder, which submits each
// item as it comes, so a result is yielded as soon as it completes, also
// while in is blocked producing its next item. The feeder pulls only as
// results are consumed: at most InFlight items (DefaultInFlight by
// default) have been pulled and not yet yielded, an item counting as
// yielded once the consumer's loop body for it has returned; with the
// window full the feeder waits, and so does in, which gives a slow consumer
// backpressure all the way up a pipeline.
//
// When the consumer stops (breaks out of the loop, or a yield returns
// false), Map tells the feeder to stop pulling in, cancels the jobs in
// flight (queued ones never run, running ones see their ctx cancelled), and
// returns once the feeder has exited: at once if the feeder waits for room,
// else once in yields its next item or returns. When ctx ends, Map likewise
// stops the feeder and cancels the jobs in flight, yields the items that
// had completed successfully and were not yet yielded (in input order with
// Ordered), then (zero Out, ctx.Err()) as its last pair. Items that failed,
// or had not completed, when Map saw ctx end are not reported on their own:
// the last pair stands for them. A panic in in, or in s's Submit, is raised
// again in the consuming goroutine once the feeder has exited; a
// runtime.Goexit in either is passed on likewise. Either way Map returns
// with no goroutine of its own left. in must therefore not wait on the
// consuming goroutine (for example on a channel it closes after the loop):
// in runs in the feeder, and Map returns only once in yields or returns.
// Every iteration of the returned sequence streams in anew.
//
// From a handler of s's own pool (with the handler's ctx), or of a pool
// behind s, the feeder submits each item as Submit would from the handler,
// so an item that finds the queue full runs at once in the feeder, and the
// consuming goroutine, while it waits, runs items still queued itself, as
// Await does, so that fork–join through Map cannot deadlock however busy
// the pool is.
//
// Over a Then chain whose stages are all Pools, or chains of them, Map
// does at every pool what it does over one: a worker of one hands the
// item's output straight to the next pool's queue, waiting for room as
// Then does, and an error at any stage is the item's outcome.
//
// Cost: over a *Pool, or a Then chain of Pools, Map hands items to the
// pools without a Result and allocates nothing per item (two at each pool
// whose policy has a Timeout or MaxElapsed, a job record and its
// completion hook, so that an item ends at its deadline as a Submit does,
// even if its handler ignores ctx); over any other Stage, each item costs
// that stage's Submit. Each iteration starts the feeder and allocates
// about 13 small objects, and 5 more for each further pool of a chain,
// plus slots for the items in flight as they come: a Map over a few items
// costs the same whatever its window. The README gives the measured cost
// of a 3-stage pipeline beside hand-written goroutine-and-channel stages
// (BenchmarkPipeline3). Stopping early over a Pool, or a chain of them,
// drops the outcomes of the handlers still running, which see their ctx
// cancelled; an output that one of them returns is not handed on.
// It panics if ctx, s or in is nil.
func Map[In, Out any](ctx context.Context, s Stage[In, Out], in iter.Seq[In], opts ...MapOption) iter.Seq2[Out, error] {
	if ctx == nil {
		panic("jobq: Map: ctx must not be nil")
	}
	if s == nil {
		panic("jobq: Map: s must not be nil")
	}
	if in == nil {
		panic("jobq: Map: in must not be nil")
	}
	c := mapConfig{window: DefaultInFlight}
	for _, o := range opts {
		o(&c)
	}
	return func(yield func(Out, error) bool) {
		m := newMapper(ctx, s, c, yield)
		defer m.stop()
		if m.ctxEnded() {
			m.ran = true
			return
		}
		m.start(in)
		m.run()
		m.ran = true
	}
}

// mapper is one iteration of a Map stream. Two goroutines share it: the
// feeder, which runs in and submits each item it yields (push), and the
// consumer, which takes the completion notices and yields the outcomes
// (run). Each piece of state has one writer:
//
//   - set by newMapper and read-only after: ctx, s, yield, ordered,
//     window, pols, stream, help;
//   - the feeder's while it runs, the consumer's once it has seen fdone:
//     next, grown, the chunk slices, submitted, fseen, finished,
//     panicked, pv;
//   - the consumer's: head, seen, emitted, noticed, batch, pending, over,
//     fedAll, ran, halted, and every slot's ready flag;
//   - a slot's freed field: a cell of the ring of freed ids (see
//     released), written by the consumer, read by the feeder;
//   - a slot's other fields: written by the feeder before it submits the
//     item, by the completion (out, err) before its notice, read and
//     reset by the consumer after the notice and before it releases the
//     slot, when the feeder may take it again.
//
// They meet through atomics only, each with one direction: notices (hooks
// to the consumer), subs (the feeder to the consumer, fork–join only),
// fdone (the feeder to the consumer), released and quit (the consumer to
// the feeder). Each side sleeps in a parking of its own, woken
// by the other side (csleep, fsleep).
type mapper[In, Out any] struct {
	ctx     context.Context
	ctxDone <-chan struct{}
	s       Stage[In, Out]
	yield   func(Out, error) bool
	ordered bool
	window  int
	pols    []Policy // ItemPolicy's, for a Stage's Submit
	help    bool     // ctx is a handler's and items have Results: help them

	// quit: the consumer is done, and the feeder must pull no more. Read
	// by the feeder for every item and written once: it sits with the
	// fields that are read only, off released's line, which the consumer
	// writes for every item.
	quit atomic.Bool

	// A Pool stage, or a Then chain of them, takes items without a
	// Result each, through stream, whose Close cancels them all.
	stream itemStream[In]

	// chunks hold the slots, made as items come: chunk k has ids
	// slotBase*(2^k-1) up to slotBase*(2^(k+1)-1). They never move, as
	// hooks write into them.
	chunks [32][]mapSlot[Out]
	_      [8]byte                // first starts on a cache line, after the 8-byte malloc header (TestMapperLayout)
	first  [slotBase]mapSlot[Out] // chunk 0, made with the mapper
	_      [64]byte               // workers write first: keep it off the feeder's fields

	// The feeder's.
	in        iter.Seq[In]
	next      int   // input index of the next item, and items pulled
	cell      int32 // next % window, kept without dividing
	grown     int32 // slots made
	submitted int   // items given a completion hook (Results only)
	fseen     int64 // released, as last read
	finished  bool  // in returned
	panicked  bool  // in or s's Submit panicked, with pv
	pv        any

	_ [64]byte // the feeder's fields above, the consumer's below: no false sharing

	// The consumer's.
	batch0  [slotBase]int32
	batch   []int32 // notices taken from the stack, oldest first
	head    int     // ordered: the slot of the oldest item not yielded
	seen    int32   // ordered: ids below it have been made
	emitted int     // items yielded (or dropped once the stream is over)
	rcell   int32   // unordered: released % window, kept without dividing
	noticed int     // notices taken
	pending []*Result[Out]
	over    bool // the consumer stopped or ctx ended
	fedAll  bool // the consumer has seen fdone
	ran     bool // the iteration ended without a panic of the consumer's
	halted  bool

	_ [64]byte // the atomics below are written by all; keep them off the fields above

	// Completed slots form a lock-free stack: notices holds the top's
	// id+1 (0 when empty), and each slot's link the id+1 below it. A slot
	// is on it at most once, as its Result completes once per item.
	notices atomic.Int32
	csleep  parking     // the consumer's
	fdone   atomic.Bool // the feeder is over: in returned, or panicked

	_ [64]byte

	// Fork–join: the Results the feeder made, for the consumer to help.
	subsMu sync.Mutex
	subs   []*Result[Out]
	subsN  atomic.Bool // subs is not empty

	_ [64]byte

	// released counts the items yielded: the feeder has room while
	// next-released < window. Unordered, the ids of the slots they
	// freed form a ring in the slots' freed fields, written by the
	// consumer before it counts the release and read by the feeder
	// after: the r-th release's id is in slot r%window.
	released atomic.Int64
	fsleep   parking // the feeder's; its channel is made when the feeder starts
}

// mapSlot holds one item in flight.
type mapSlot[Out any] struct {
	r      *Result[Out] // its Result, unless it went to a Pool (or a chain of them) by value
	out    Out          // or its outcome, written before its notice
	err    error
	index  int    // the item's input index
	ready  bool   // its notice has come, and it was not yet yielded
	link   int32  // below it on the notice stack
	freed  int32  // unordered: a cell of the ring of freed ids
	notify func() // pushes the slot on the notice stack; made once per slot
}

func newMapper[In, Out any](ctx context.Context, s Stage[In, Out], c mapConfig, yield func(Out, error) bool) *mapper[In, Out] {
	m := &mapper[In, Out]{
		ctx:     ctx,
		ctxDone: ctx.Done(),
		s:       s,
		yield:   yield,
		ordered: c.ordered,
		window:  c.window,
		csleep:  parking{ch: make(chan struct{}, 1)},
	}
	m.chunks[0] = m.first[:min(slotBase, c.window)]
	m.batch = m.batch0[:0]
	owner := engine.Owner(ctx)
	if st := streamerOf(s); st != nil && st.canStream(owner) {
		// Not from a handler of a pool of s, where waiting for room
		// could deadlock: that case keeps Submit's fork–join handling.
		m.stream = st.openStream(ctx, m, c.pol)
	} else {
		if c.pol != nil {
			m.pols = []Policy{*c.pol}
		}
		// Fork–join: an item may wait in the queue of the pool whose
		// worker runs this Map; Await would run it here, so Map does.
		m.help = owner != nil
	}
	return m
}

// streamer is a Stage that takes a Map's items by value, without a Result
// each: a Pool, or a Then chain of them.
type streamer[In, Out any] interface {
	// self returns the streamer itself: a type that embeds a Pool has
	// its methods, but not its identity, and its Submit must run.
	self() any
	// canStream reports whether the stage takes the items of a Map whose
	// ctx is a handler ctx of owner (nil: none) by value: not when
	// owner is one of its pools, where a feeder waiting for room could
	// wait on itself.
	canStream(owner any) bool
	// openStream opens a stream of items submitted with ctx under pol
	// (nil: each pool's default) whose outcomes go to sink.
	openStream(ctx context.Context, sink engine.Sink[Out], pol *Policy) itemStream[In]
}

// itemStream is a stream of a Map's items into a stage.
type itemStream[In any] interface {
	// Submit hands in, the item of slot, to the stage, waiting for
	// room; its outcome goes to the stream's sink, unless Submit fails.
	Submit(in In, slot int32) error
	// Close cancels the items in flight; their outcomes still go to
	// the sink.
	Close()
}

// streamerOf returns s as a streamer, or nil if it is none.
func streamerOf[In, Out any](s Stage[In, Out]) streamer[In, Out] {
	if st, ok := s.(streamer[In, Out]); ok && st.self() == any(s) {
		return st
	}
	return nil
}

func (p *Pool[In, Out]) self() any { return p }

func (p *Pool[In, Out]) canStream(owner any) bool { return owner != any(p.e) }

func (p *Pool[In, Out]) openStream(ctx context.Context, sink engine.Sink[Out], pol *Policy) itemStream[In] {
	var ep *engine.Policy
	if pol != nil {
		mp := pol.merge(p.def)
		rp := mp.resolved()
		ep = &rp
	}
	return p.e.NewStream(ctx, sink, ep)
}

// A chain of streamers is a streamer (self, canStream, openStream): first's
// outcomes go to next's stream from the goroutine that ends them, as
// Then's Results do.

func (t *then[A, B, C]) self() any { return t }

func (t *then[A, B, C]) canStream(owner any) bool {
	f, n := streamerOf(t.first), streamerOf(t.next)
	return f != nil && n != nil && f.canStream(owner) && n.canStream(owner)
}

func (t *then[A, B, C]) openStream(ctx context.Context, sink engine.Sink[C], pol *Policy) itemStream[A] {
	next := streamerOf(t.next).openStream(ctx, sink, pol)
	first := streamerOf(t.first).openStream(ctx, forward[B, C]{next, sink}, pol)
	return chainStream[A, B]{first, next}
}

// forward is the sink of a chain's first stage: it hands each output on
// to the next stage's stream, and an error to the chain's sink.
type forward[B, C any] struct {
	next itemStream[B]
	sink engine.Sink[C]
}

func (f forward[B, C]) Done(slot int32, out B, err error) {
	if err == nil {
		err = f.next.Submit(out, slot)
	}
	if err != nil {
		var zero C
		f.sink.Done(slot, zero, err)
	}
}

// chainStream is the stream of a Then chain: into first, out of next.
type chainStream[A, B any] struct {
	first itemStream[A]
	next  itemStream[B]
}

func (c chainStream[A, B]) Submit(in A, slot int32) error { return c.first.Submit(in, slot) }

func (c chainStream[A, B]) Close() {
	c.first.Close()
	c.next.Close()
}

// slotBase is the size of the first chunk of slots.
const slotBase = 4

// slot returns the slot of id, which must have been made.
func (m *mapper[In, Out]) slot(id int32) *mapSlot[Out] {
	k := bits.Len32(uint32(id)/slotBase+1) - 1
	return &m.chunks[k][id-slotBase*(1<<k-1)]
}

// start starts the feeder on in.
func (m *mapper[In, Out]) start(in iter.Seq[In]) {
	m.in = in
	m.fsleep.ch = make(chan struct{}, 1)
	go m.feed()
}

// feed is the feeder: it runs in until in returns, or stops as push says,
// then hands over to the consumer.
func (m *mapper[In, Out]) feed() {
	defer func() {
		if !m.finished {
			m.pv = recover()
			m.panicked = m.pv != nil // else in called runtime.Goexit
		}
		m.fdone.Store(true) // last: the consumer owns the feeder's state now
		m.csleep.wake()
	}()
	// Not a range loop: in may still panic once told to stop, and that
	// panic must be recovered here too.
	m.in(m.push)
	m.finished = true
}

// push, in the feeder, submits v, the next item of the input, and waits
// for room for the one after. It reports whether to go on.
func (m *mapper[In, Out]) push(v In) bool {
	if m.quit.Load() {
		return false
	}
	if m.ctxDone != nil {
		select {
		case <-m.ctxDone:
			return false // the consumer finds ctx ended once it has yielded what it can
		default:
		}
	}
	id := m.acquire()
	sl := m.slot(id)
	sl.index = m.next
	m.next++
	if m.cell++; m.cell == int32(m.window) {
		m.cell = 0
	}
	if m.stream != nil {
		if err := m.stream.Submit(v, id); err != nil {
			m.Done(id, sl.out, err)
		}
	} else {
		r := m.s.Submit(m.ctx, v, m.pols...)
		if r == nil {
			panic("jobq: Map: the stage's Submit returned a nil Result")
		}
		sl.r = r
		// Counted only now: if Submit panics, no notice will come, and
		// stop must not wait for one.
		m.submitted++
		if m.help {
			m.addSub(r)
		}
		whenDone(r, sl.notify)
	}
	return m.room()
}

// acquire, in the feeder, returns a free slot for the next item; the
// window has room for it. Slots are made one per item until the window
// has them all, then item i reuses one: ordered, slot i%window, which item
// i-window freed; unordered, the slot that the (i-window)-th release
// freed, whose id is in cell i%window, which room saw counted.
func (m *mapper[In, Out]) acquire() int32 {
	if m.grown < int32(m.window) {
		return m.grow()
	}
	p := m.cell
	if m.ordered {
		return p
	}
	return m.slot(p).freed
}

// grow, in the feeder, makes the next slot and returns its id.
func (m *mapper[In, Out]) grow() int32 {
	id := m.grown
	k := bits.Len32(uint32(id)/slotBase+1) - 1
	if m.chunks[k] == nil {
		start := slotBase * (1<<k - 1)
		m.chunks[k] = make([]mapSlot[Out], min(slotBase<<k, m.window-start))
	}
	if m.stream == nil {
		m.slot(id).notify = func() { m.notify(id) }
	}
	m.grown++
	return id
}

// room, in the feeder, waits until the window has room for one more item,
// and reports whether to go on: false once the consumer has quit.
func (m *mapper[In, Out]) room() bool {
	for int64(m.next)-m.fseen >= int64(m.window) {
		// Only now read what the consumer has released, so its counter
		// stays in its cache while the window has room.
		if m.fseen = m.released.Load(); int64(m.next)-m.fseen < int64(m.window) {
			break
		}
		if m.quit.Load() {
			return false
		}
		m.fsleep.park()
		if m.fseen = m.released.Load(); int64(m.next)-m.fseen < int64(m.window) || m.quit.Load() {
			m.fsleep.unpark() // room came, or the consumer quit, meanwhile
			continue
		}
		<-m.fsleep.ch
	}
	return !m.quit.Load()
}

// addSub, in the feeder, hands r, a fork–join item's Result, to the
// consumer, which may have to run it.
func (m *mapper[In, Out]) addSub(r *Result[Out]) {
	m.subsMu.Lock()
	m.subs = append(m.subs, r)
	m.subsN.Store(true)
	m.subsMu.Unlock()
	m.csleep.wake()
}

// Done receives the outcome of the item in slot id from a Pool: the last
// of a chain, or the one where the item failed.
func (m *mapper[In, Out]) Done(id int32, out Out, err error) {
	sl := m.slot(id)
	sl.out, sl.err = out, err
	m.notify(id)
}

// notify is a completion hook: it pushes slot id on the notice stack and
// wakes the consumer if it sleeps.
func (m *mapper[In, Out]) notify(id int32) {
	sl := m.slot(id)
	for {
		top := m.notices.Load()
		sl.link = top
		if m.notices.CompareAndSwap(top, id+1) {
			break
		}
	}
	m.csleep.wake()
}

// parking is where one goroutine sleeps until another wakes it. The
// sleeper parks, checks once more for what it waits for, then either
// receives from ch or, having found it, unparks; a waker publishes first,
// then wakes. Whoever clears parked sends, or takes, the one token.
type parking struct {
	parked atomic.Bool
	ch     chan struct{} // buffered, for one token
}

func (k *parking) park() { k.parked.Store(true) }

// unpark takes back a park whose sleeper found what it waited for; a
// waker that cleared parked meanwhile has a token on its way, taken here.
func (k *parking) unpark() {
	if !k.parked.CompareAndSwap(true, false) {
		<-k.ch
	}
}

// wake wakes the sleeper if it is parked.
func (k *parking) wake() {
	if k.parked.Load() && k.parked.CompareAndSwap(true, false) {
		k.ch <- struct{}{}
	}
}

// run, in the consumer, yields the outcomes as their notices come, until
// the feeder is over and every item it pulled is yielded, or the stream
// stops.
func (m *mapper[In, Out]) run() {
	for spins := 0; ; {
		if m.take() {
			if !m.received() {
				return
			}
			spins = 0
			continue
		}
		if !m.fedAll && m.fdone.Load() {
			m.fedAll = true
		}
		if m.fedAll {
			if !m.finished {
				return // in or a Submit panicked: stop raises it again
			}
			if m.emitted == m.next {
				// in may have stopped because ctx ended, with or
				// without the feeder seeing it: say so.
				m.ctxEnded()
				return
			}
		}
		if m.ctxEnded() {
			return
		}
		if spins < 4 {
			// The workers and the feeder likely wait for this P: let
			// them run before parking, which costs more than a few
			// yields.
			spins++
			runtime.Gosched()
			continue
		}
		if m.help && m.helpPending() {
			continue
		}
		if !m.sleep(false) {
			m.ctxEnded()
			return
		}
	}
}

// take moves the notices on the stack to batch, oldest first, and reports
// whether there were any.
func (m *mapper[In, Out]) take() bool {
	top := m.notices.Swap(0)
	if top == 0 {
		return false
	}
	m.batch = m.batch[:0]
	for ; top != 0; top = m.slot(top - 1).link {
		m.batch = append(m.batch, top-1)
		m.slot(top - 1).ready = true
		m.seen = max(m.seen, top)
	}
	slices.Reverse(m.batch)
	m.noticed += len(m.batch)
	return true
}

// sleep waits until a notice comes or, unless final, until the feeder is
// over, hands over a fork–join item, or ctx ends; it reports whether it
// woke for something other than ctx. The caller found nothing to do.
func (m *mapper[In, Out]) sleep(final bool) bool {
	m.csleep.park()
	if m.notices.Load() != 0 || !final && (!m.fedAll && m.fdone.Load() || m.help && m.subsN.Load()) {
		m.csleep.unpark() // it came meanwhile
		return true
	}
	var ctxDone <-chan struct{}
	if !final {
		ctxDone = m.ctxDone
	}
	select {
	case <-m.csleep.ch:
		return true
	case <-ctxDone:
		m.csleep.unpark()
		return false
	}
}

// helpPending lets the fork–join items in flight that are still queued
// run in the consumer, as Await would, oldest first. It reports whether
// one has completed.
func (m *mapper[In, Out]) helpPending() bool {
	if m.subsN.Load() {
		m.subsMu.Lock()
		m.pending = append(m.pending, m.subs...)
		clear(m.subs)
		m.subs = m.subs[:0]
		m.subsN.Store(false)
		m.subsMu.Unlock()
	}
	ran := false
	keep := m.pending[:0]
	for _, r := range m.pending {
		r.help()
		if r.isDone() {
			ran = true
		} else {
			keep = append(keep, r)
		}
	}
	clear(m.pending[len(keep):])
	m.pending = keep
	return ran
}

// received handles the notices in batch, yielding what it can.
func (m *mapper[In, Out]) received() bool {
	if !m.ordered {
		for _, id := range m.batch {
			if !m.emit(id) {
				return false
			}
		}
		return true
	}
	// Only slots below seen are sure to be made: the feeder makes them in
	// id order, and a notice for id comes after its slot was made.
	for m.head < int(m.seen) && m.slot(int32(m.head)).ready {
		h := m.head
		if m.head++; m.head == m.window {
			m.head = 0
		}
		if !m.emit(int32(h)) {
			return false
		}
	}
	return true
}

// emit yields the completed item of slot id and releases the slot to the
// feeder once its yield has returned.
func (m *mapper[In, Out]) emit(id int32) bool {
	sl := m.slot(id)
	v, err, index := sl.out, sl.err, sl.index
	if sl.r != nil {
		v, err = sl.r.Await(context.Background()) // completed: returns at once
	}
	var zero Out
	sl.r, sl.out, sl.err, sl.ready = nil, zero, nil, false
	m.emitted++
	if err != nil {
		if m.ctxEnded() {
			return false // the job failed because ctx ended: say that once
		}
		err = &ItemError{Index: index, Err: err}
	}
	if !m.yield(v, err) {
		m.over = true
		return false
	}
	if !m.ordered {
		// The cell exists: released < next, and slots are made one per
		// item until there are window of them.
		m.slot(m.rcell).freed = id
		if m.rcell++; m.rcell == int32(m.window) {
			m.rcell = 0
		}
	}
	m.released.Store(m.released.Load() + 1) // the consumer's own counter
	m.fsleep.wake()
	return true
}

// ctxEnded reports whether the stream is over because ctx has ended. The
// first time it finds ctx ended, it stops the feeder and cancels the items
// in flight, then yields what had succeeded and ctx.Err().
func (m *mapper[In, Out]) ctxEnded() bool {
	if m.over {
		return true
	}
	if m.ctxDone == nil {
		return false
	}
	select {
	case <-m.ctxDone:
	default:
		return false
	}
	m.over = true
	m.halt()
	// Yield what had succeeded and waits to be yielded: notices not yet
	// handled, and, when ordered, items held back for their turn.
	m.take()
	var ready []int32
	for id := range m.grown {
		if m.slot(id).ready {
			ready = append(ready, id)
		}
	}
	if m.ordered {
		slices.SortFunc(ready, func(a, b int32) int { return m.slot(a).index - m.slot(b).index })
	}
	for _, id := range ready {
		sl := m.slot(id)
		v, err := sl.out, sl.err
		if sl.r != nil {
			v, err = sl.r.Await(context.Background()) // completed: returns at once
		}
		sl.ready = false
		if err == nil && !m.yield(v, nil) {
			return true
		}
	}
	var zero Out
	m.yield(zero, m.ctx.Err())
	return true
}

// halt stops the feeder, cancels the items in flight, and waits for the
// feeder to exit; from then on the consumer owns all of the mapper.
func (m *mapper[In, Out]) halt() {
	if m.halted {
		return
	}
	m.halted = true
	if m.fsleep.ch != nil {
		m.quit.Store(true)
		m.fsleep.wake()
	}
	if m.stream != nil {
		// Queued items end as their ctx is found cancelled, running ones
		// see it cancelled; their outcomes land in slots nobody reads.
		// A feeder waiting for room in the pool stops waiting.
		m.stream.Close()
	}
	if m.fsleep.ch == nil {
		return // never started
	}
	for !m.fdone.Load() {
		m.csleep.park()
		if m.fdone.Load() {
			m.csleep.unpark()
			break
		}
		<-m.csleep.ch // fdone's store, or a notice: look again
	}
	m.fedAll = true
	if m.stream == nil {
		for id := range m.grown {
			if sl := m.slot(id); sl.r != nil && !sl.ready {
				sl.r.Cancel()
			}
		}
	}
}

// stop ends the iteration: it halts the feeder, waits for the notices of
// the Results it watches, so that no hook of this iteration is pending
// once Map returns, and raises again a panic of the feeder's.
func (m *mapper[In, Out]) stop() {
	m.over = true
	m.halt()
	if m.stream == nil {
		// Cancel completes a Result at once; a notice still missing is
		// on its way from a goroutine completing the Result right now.
		for m.noticed < m.submitted {
			if !m.take() {
				m.sleep(true)
			}
		}
	}
	if !m.ran || m.fsleep.ch == nil {
		return // the consumer panicked: its panic goes on
	}
	switch {
	case m.panicked:
		panic(m.pv)
	case !m.finished:
		runtime.Goexit() // in called Goexit: pass it on
	}
}

// Values yields the values of in, a stream of (value, error) pairs such as
// Map's, so that stages compose:
//
//	out := Map(ctx, s3, Values(Map(ctx, s2, Values(Map(ctx, s1, src), onErr)), onErr))
//
// Each error of in goes to onErr instead, in the goroutine that ranges over
// Values, and as with yield, onErr's answer says whether to go on: true
// skips past the failed item, false stops pulling in (which, for a Map
// stream, cancels its jobs in flight) and ends the sequence, so downstream
// stages finish what they hold and end too. To keep the first error of a
// whole pipeline and stop there, share one func:
//
//	var err error
//	stop := func(e error) bool { err = e; return false }
//
// and check err once the last stream has ended; to count failed items and
// go on, return true. The error is as in yielded it: a Map's *ItemError
// names the index of the item in that Map's input. Values panics if in or
// onErr is nil.
func Values[T any](in iter.Seq2[T, error], onErr func(error) bool) iter.Seq[T] {
	if in == nil {
		panic("jobq: Values: in must not be nil")
	}
	if onErr == nil {
		panic("jobq: Values: onErr must not be nil")
	}
	return func(yield func(T) bool) {
		for v, err := range in {
			if err != nil {
				if !onErr(err) {
					return
				}
				continue
			}
			if !yield(v) {
				return
			}
		}
	}
}

// maxBatchPrealloc caps the capacity Batch reserves for a batch up front, so
// that a huge size (time flushes only) does not reserve huge slices.
const maxBatchPrealloc = 1024

// Batch groups the items of in into slices of size items, in order. A batch
// is yielded once it is full, or, if maxWait > 0, maxWait after its first
// item arrived, whichever comes first; at the end of in, the partial batch
// left is yielded. Batch never yields an empty slice, and each slice it
// yields is new: the consumer may keep it.
//
// With maxWait <= 0 there is no time flush and Batch pulls in from the
// consuming goroutine. With maxWait > 0 it pulls in from a goroutine of its
// own, one item ahead of the consumer, so that a batch can be flushed while
// in is blocked. When the consumer stops, that goroutine stops pulling in at
// in's next yield; the iteration returns only once it has exited (so only
// once in yields or ends). A panic in in is raised again in the consumer.
//
// Batch panics if size < 1 or in is nil.
func Batch[T any](in iter.Seq[T], size int, maxWait time.Duration) iter.Seq[[]T] {
	if size < 1 {
		panic(fmt.Sprintf("jobq: Batch: size must be >= 1, got %d", size))
	}
	if in == nil {
		panic("jobq: Batch: in must not be nil")
	}
	if maxWait <= 0 {
		return func(yield func([]T) bool) {
			var b []T
			for v := range in {
				if b == nil {
					b = make([]T, 0, min(size, maxBatchPrealloc))
				}
				if b = append(b, v); len(b) == size {
					if !yield(b) {
						return
					}
					b = nil
				}
			}
			if len(b) > 0 {
				yield(b)
			}
		}
	}
	return func(yield func([]T) bool) { batchTimed(in, size, maxWait, yield) }
}

// batchTimed is one iteration of Batch with a time flush.
func batchTimed[T any](in iter.Seq[T], size int, maxWait time.Duration, yield func([]T) bool) {
	items := make(chan T)         // the feeder's items; closed when it is done
	quit := make(chan struct{})   // closed when the consumer is done
	exited := make(chan struct{}) // closed when the feeder has exited
	var (
		finished bool // in returned
		panicked bool
		pv       any
	)
	go func() {
		defer close(exited)
		defer close(items)
		defer func() {
			if !finished {
				if pv = recover(); pv != nil {
					panicked = true
				}
			}
		}()
		// Not a range loop: in may still panic once told to stop, and
		// that panic must be recovered here too.
		in(func(v T) bool {
			select {
			case items <- v:
				return true
			case <-quit:
				return false
			}
		})
		finished = true
	}()
	var (
		b     []T
		timer *time.Timer
		due   <-chan time.Time // the timer of the batch being filled
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		close(quit)
		<-exited
		if panicked {
			panic(pv) // in panicked while it wound down
		}
	}()
	flush := func() bool {
		out := b
		b, due = nil, nil
		return yield(out)
	}
	for {
		select {
		case v, ok := <-items:
			if !ok {
				<-exited
				switch {
				case panicked:
					panicked = false // raised here, not again on the way out
					panic(pv)
				case !finished:
					runtime.Goexit() // in called Goexit: pass it on
				}
				if len(b) > 0 {
					flush()
				}
				return
			}
			if b == nil {
				b = make([]T, 0, min(size, maxBatchPrealloc))
				if timer == nil {
					timer = time.NewTimer(maxWait)
				} else {
					timer.Reset(maxWait)
				}
				due = timer.C
			}
			if b = append(b, v); len(b) == size {
				timer.Stop()
				if !flush() {
					return
				}
			}
		case <-due:
			// maxWait has passed since the batch's first item.
			if !flush() {
				return
			}
		}
	}
}

// Flatten yields the items of each slice of in, in order: the inverse of
// Batch, for a stage that takes a batch and returns a slice of results.
func Flatten[T any](in iter.Seq[[]T]) iter.Seq[T] {
	if in == nil {
		panic("jobq: Flatten: in must not be nil")
	}
	return func(yield func(T) bool) {
		for b := range in {
			for _, v := range b {
				if !yield(v) {
					return
				}
			}
		}
	}
}

// isOwnHandler reports whether ctx is, or derives from, the handler ctx of
// stage, when stage is a Pool.
func isOwnHandler(ctx context.Context, stage any) bool {
	p, ok := stage.(interface{ engineOf() any })
	return ok && engine.Owner(ctx) == p.engineOf()
}
