package engine

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// The job lifecycle: every state a job with a record can be in, and every
// move between them. This file is its one source of truth.
//
//	            claim                  fail
//	 ┌──────► Queued ─────► Running ─────────► Finishing
//	 │          │              │                 │   │
//	 │ requeue  │ end          │ succeed / end   │   │ decide: retry
//	 │          ▼              ▼                 │   ▼
//	 │         Done ◄──────────────────────── ◄──┘ Backoff
//	 └──────────────────────────────────────────────┘  │ end
//	                                                    ▼ Done
//
// A job's state word holds its phase and the number of attempts started,
// so that a move names the attempt it ends and a late actor of an earlier
// attempt (a timer, a stale queue entry) cannot win. Only the methods
// below change it, each a compare-and-swap checked against the table.
// Whoever wins the move to Done counts the job, reports it to the end
// observer, completes its Future, and then counts its end with the pool: see
// Pool.ended.
//
// A job held by value (a fire-and-forget or Map item without a record)
// has no state word: it is queued while in a queue and running while the
// worker that took it holds it, and only that worker ends it; should it
// need a retry it gets a record, in Finishing.

// Phase is a job's lifecycle phase.
type Phase uint32

const (
	Queued    Phase = iota // in a queue, waiting for its next attempt
	Running                // an attempt runs
	Finishing              // an attempt failed; the policy decides what follows
	Backoff                // waiting on a timer before its next attempt
	Done                   // ended: succeeded, failed or cancelled
	numPhases
)

var phaseNames = [numPhases]string{"Queued", "Running", "Finishing", "Backoff", "Done"}

func (ph Phase) String() string {
	if ph < numPhases {
		return phaseNames[ph]
	}
	return fmt.Sprintf("Phase(%d)", uint32(ph))
}

// Transitions lists every allowed move, by the name of the method that
// makes it.
var Transitions = map[string][2]Phase{
	"claim":       {Queued, Running},    // a worker, or a helper, starts the next attempt
	"succeed":     {Running, Done},      // the attempt returned nil
	"fail":        {Running, Finishing}, // the attempt returned an error or reached its deadline
	"retry":       {Finishing, Backoff}, // the policy allows another attempt
	"give up":     {Finishing, Done},    // the policy allows no other attempt
	"requeue":     {Backoff, Queued},    // the backoff ended
	"end queued":  {Queued, Done},       // cancelled, ctx ended, or abandoned before it ran
	"end backoff": {Backoff, Done},      // cancelled, ctx ended, or abandoned in backoff
	"end running": {Running, Done},      // cancelled or abandoned while running
}

// allowed[from][to] reports whether Transitions has the move.
var allowed = func() (a [numPhases][numPhases]bool) {
	for _, m := range Transitions {
		a[m[0]][m[1]] = true
	}
	return a
}()

// Allowed reports whether a job may move from one phase to another.
func Allowed(from, to Phase) bool { return from < numPhases && to < numPhases && allowed[from][to] }

const (
	phaseBits = 3
	phaseMask = 1<<phaseBits - 1
)

// MaxAttempts is the most attempts a job makes, whatever its policy says:
// what the state word has room for.
const MaxAttempts = 1<<(32-phaseBits) - 1

func mkState(attempts int, ph Phase) uint32 { return uint32(attempts)<<phaseBits | uint32(ph) }

// Job is the record of a submitted job: its Future, and all it needs to
// run and be retried. It is the one allocation of a Submit, 128 bytes for
// small In and Out (TestJobRecordLayout): the state word lives in the
// Future's Word, the flags in the first attempt's ctx state, and what only
// some jobs need in the side record, in that ctx's ext.
type Job[In, Out any] struct {
	Future[Out]                     // Word: attempts<<phaseBits | phase; see the table above
	act         attemptCtx[In, Out] // the first attempt's ctx; its parent is the submission's, its pool the job's
	in          In
}

// side is what a job needs beyond the common case: a policy of its own, a
// retry, an observer. It is made with the job when the job's policy or
// pool asks for it, else when first needed, in its first attempt's ctx's
// ext. Only the holder of the job's state touches it, but for timer, cur,
// stopWatch and watchedBy, which are guarded by the pool's lock, ran, and
// prevKid and nextKid.
type side[In, Out any] struct {
	pol       *Policy              // the job's own policy; nil: the pool's
	start     time.Time            // the first attempt's start; zero until MaxElapsed needs it
	prev      time.Duration        // the last backoff delay
	errs      []error              // earlier attempts' errors
	timer     *time.Timer          // the backoff timer
	stopWatch func() bool          // the watch on ctx while queued or in backoff
	watchedBy *attemptCtx[In, Out] // or the handler ctx that adopted it instead
	prevKid   *Job[In, Out]        // its neighbours among watchedBy's kids, guarded by watchedBy's lock
	nextKid   *Job[In, Out]
	cur       *attemptCtx[In, Out] // the running attempt's ctx, from the second attempt on
	at        int64                // submission time, in ns since the pool's epoch, when an observer is set
	ran       atomic.Int64         // ns its attempts ran, when an observer is set; a late attempt adds while an ender reads
}

// sd returns j's side record, nil if it has none yet.
func (j *Job[In, Out]) sd() *side[In, Out] {
	if x := j.act.ext.Load(); x != nil {
		return &x.side
	}
	return nil
}

// sideOf returns j's side record, making it if need be.
func (j *Job[In, Out]) sideOf() *side[In, Out] { return &j.act.extOf().side }

// policy returns j's policy.
func (j *Job[In, Out]) policy() *Policy {
	if sd := j.sd(); sd != nil && sd.pol != nil {
		return sd.pol
	}
	return &j.act.pool.cfg.Policy
}

// Job flags, kept in the first attempt's ctx state.
const (
	flagNested  = 1 << (flagShift + iota) // submitted from a handler of its own pool: whoever awaits it while queued runs it
	flagAwaited                           // a goroutine awaits it (Help ran): its retries run where their backoff ends
)

func (j *Job[In, Out]) flagged(f uint32) bool { return j.act.state.Load()&f != 0 }
func (j *Job[In, Out]) flag(f uint32)         { j.act.state.Or(f) }

// Phase returns j's phase.
func (j *Job[In, Out]) Phase() Phase { return Phase(j.Word.Load() & phaseMask) }

// Attempts reports the attempts of j started so far.
func (j *Job[In, Out]) Attempts() int { return int(j.Word.Load() >> phaseBits) }

// move makes j's move from phase from, at attempt k, to phase to, at
// attempt k2; it reports whether j was there to move.
func (j *Job[In, Out]) move(k int, from Phase, k2 int, to Phase) bool {
	if !allowed[from][to] {
		panic(fmt.Sprintf("jobq: internal error: job moved from %v to %v", from, to))
	}
	return j.Word.CompareAndSwap(mkState(k, from), mkState(k2, to))
}

// claim starts attempt k+1 of j, queued after k attempts.
func (j *Job[In, Out]) claim(k int) bool { return j.move(k, Queued, k+1, Running) }

// succeed ends j, whose attempt k returned nil.
func (j *Job[In, Out]) succeed(k int) bool { return j.move(k, Running, k, Done) }

// fail marks attempt k of j failed; the winner decides what follows.
func (j *Job[In, Out]) fail(k int) bool { return j.move(k, Running, k, Finishing) }

// retry puts j, finishing attempt k, in backoff.
func (j *Job[In, Out]) retry(k int) bool { return j.move(k, Finishing, k, Backoff) }

// giveUp ends j, finishing attempt k with no retry to follow.
func (j *Job[In, Out]) giveUp(k int) bool { return j.move(k, Finishing, k, Done) }

// requeue queues j, in backoff after k attempts, for its next.
func (j *Job[In, Out]) requeue(k int) bool { return j.move(k, Backoff, k, Queued) }

// pool returns j's pool.
func (j *Job[In, Out]) pool() *Pool[In, Out] { return j.act.pool }

// ctx returns j's submission ctx.
func (j *Job[In, Out]) ctx() context.Context { return j.act.parent }
