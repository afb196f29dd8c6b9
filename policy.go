package jobq

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/seed-bb9ff1e7/jobq/internal/engine"
)

// Policy says how one submission is retried and timed. It is a plain value:
// build it as a literal, copy it, share it between goroutines.
//
// A zero field inherits the pool's default policy (set with WithPolicy), whose
// zero fields in turn inherit the library defaults:
//
//	MaxAttempts 1 (no retry)
//	Backoff     Exponential(100*time.Millisecond, 30*time.Second)
//	Jitter      none
//	Timeout     none
//	MaxElapsed  none
//	RetryIf     nil: every error is retried except Permanent ones, a
//	            *PanicError, and the cancellation of the submission's own
//	            ctx (an error that errors.Is ctx.Err() once ctx is done)
//	OnRetry     none
//
// Whatever the fields say, an error wrapped by Permanent is never retried, and
// no retry is scheduled once the submission's ctx is done. The delay before a
// retry is the RetryAfter delay when the error carries one, otherwise
// Backoff's delay passed through Jitter; negative delays count as 0.
//
// A negative MaxAttempts, Timeout or MaxElapsed makes the policy invalid: the
// submission is refused with an error wrapping ErrInvalidPolicy. Because zero
// means "inherit", a submission cannot switch off a pool default Jitter,
// Timeout or MaxElapsed; use a pool without that default instead.
type Policy struct {
	// MaxAttempts is the total number of tries, the first included;
	// 1 means no retry. A job makes at most 1<<29 - 1 attempts, however
	// large MaxAttempts is.
	MaxAttempts int
	// Backoff gives the delay before each retry.
	Backoff Backoff
	// Jitter randomises each delay Backoff gives; it is not applied to a
	// RetryAfter delay.
	Jitter Jitter
	// Timeout bounds each attempt separately; an attempt that runs past it
	// fails with context.DeadlineExceeded, which is retried like any other
	// error (RetryIf permitting).
	Timeout time.Duration
	// MaxElapsed bounds the whole job, all attempts and the waits between
	// them together, counted from the first attempt's start: no retry is
	// scheduled whose wait would end past it, an attempt running when it
	// passes ends as at a Timeout (its ctx carries that deadline), and a
	// retry still waiting for a worker then ends so without running.
	MaxElapsed time.Duration
	// RetryIf, when set, decides alone whether an error is retried,
	// *PanicError and context errors included; Permanent errors and a done
	// submission ctx still stop retries.
	RetryIf func(error) bool
	// OnRetry, when set, observes each retry before its wait: attempt is the
	// attempt that failed (1-based), err its error, delay the wait before
	// the next attempt. It returns before that wait starts. It must be
	// safe to call from many goroutines and return quickly: Cancel waits for it, so
	// it must not cancel the job it reports on.
	OnRetry func(attempt int, err error, delay time.Duration)
}

// Backoff gives the delay before retry n; n is 1 before the second attempt.
// prev is the delay used before the previous retry (0 when n == 1), and r is a
// uniform random number in [0, 1) for backoffs that randomise themselves
// (Decorrelated); deterministic backoffs ignore it. A Backoff must be safe
// to call from many goroutines; a negative result counts as 0.
type Backoff func(n int, prev time.Duration, r float64) time.Duration

// Jitter randomises a delay d using r, a uniform random number in [0, 1).
// A Jitter must be safe to call from many goroutines; a negative result
// counts as 0.
type Jitter func(d time.Duration, r float64) time.Duration

// ErrInvalidPolicy is wrapped by the error that refuses a submission whose
// Policy has a negative MaxAttempts, Timeout or MaxElapsed.
var ErrInvalidPolicy = errors.New("jobq: invalid policy")

// defaultPolicy holds the library defaults that a pool's default policy
// inherits from.
var defaultPolicy = Policy{MaxAttempts: 1, Backoff: Exponential(100*time.Millisecond, 30*time.Second)}

// Constant returns a Backoff that waits d before every retry.
// It panics if d is negative.
func Constant(d time.Duration) Backoff {
	if d < 0 {
		panic(fmt.Sprintf("jobq: Constant: d must be >= 0, got %v", d))
	}
	return func(int, time.Duration, float64) time.Duration { return d }
}

// Exponential returns a Backoff that waits base*2^(n-1) before retry n,
// capped at max: base, 2*base, 4*base, … max, max. It never overflows, however
// large n grows. It panics if base <= 0 or max < base.
func Exponential(base, max time.Duration) Backoff {
	checkRange("Exponential", base, max)
	return func(n int, _ time.Duration, _ float64) time.Duration {
		d := base
		// Doubling stops before d passes max/2, so it takes at most 63
		// steps and d*2 cannot overflow.
		for i := 1; i < n; i++ {
			if d > max/2 {
				return max
			}
			d *= 2
		}
		return min(d, max)
	}
}

// checkRange panics, naming the constructor, unless 0 < base <= max.
func checkRange(name string, base, max time.Duration) {
	if base <= 0 {
		panic(fmt.Sprintf("jobq: %s: base must be > 0, got %v", name, base))
	}
	if max < base {
		panic(fmt.Sprintf("jobq: %s: max must be >= base, got max %v < base %v", name, max, base))
	}
}

// Decorrelated returns the "decorrelated jitter" Backoff: retry n waits
// min(max, base + r*(3*p - base)), where p is the previous delay, or base
// for the first retry or when the previous delay was shorter (a RetryAfter
// or a Jitter made it so). Each delay is thus random in [base, 3*p), grows
// about threefold on average, and never exceeds max.
// Use it without a Jitter: it randomises itself. It panics if base <= 0 or
// max < base.
func Decorrelated(base, max time.Duration) Backoff {
	checkRange("Decorrelated", base, max)
	return func(_ int, prev time.Duration, r float64) time.Duration {
		// prev may be below base (a RetryAfter or Jitter delay): the
		// range [base, 3*p) needs p >= base.
		p := base
		if prev > base {
			p = prev
		}
		// In float64 so that 3*p cannot overflow.
		d := float64(base) + r*(3*float64(p)-float64(base))
		if d >= float64(max) {
			return max
		}
		return durationOf(d)
	}
}

// FullJitter is a Jitter that randomises d uniformly over [0, d): r*d.
func FullJitter(d time.Duration, r float64) time.Duration {
	return durationOf(r * float64(d))
}

// EqualJitter is a Jitter that keeps half of d and randomises the other
// half: d/2 + r*d/2, in [d/2, d).
func EqualJitter(d time.Duration, r float64) time.Duration {
	half := d / 2
	return half + durationOf(r*float64(d-half))
}

// Proportional returns a Jitter that moves d by up to f*d either way:
// d*(1 + f*(2r-1)), in [d-f*d, d+f*d). Proportional(0.1) spreads delays over
// ±10%. It panics if f is NaN, negative or greater than 1.
func Proportional(f float64) Jitter {
	if math.IsNaN(f) || f < 0 || f > 1 {
		panic(fmt.Sprintf("jobq: Proportional: f must be in [0, 1], got %v", f))
	}
	return func(d time.Duration, r float64) time.Duration {
		return durationOf(float64(d) * (1 + f*(2*r-1)))
	}
}

// Permanent wraps err so that it is never retried, whatever the Policy's
// RetryIf says. The result's message is err's, and errors.Is and errors.As
// see through it to err, also when it is itself wrapped with %w.
// Permanent(nil) returns nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return engine.Permanent(err)
}

// RetryAfter wraps err so that, if the job is retried, the next delay is
// exactly d: it replaces Backoff's delay and skips Jitter. It does not force a
// retry: MaxAttempts, RetryIf, MaxElapsed and a done ctx still apply, and
// Permanent anywhere in the chain wins. A negative d counts as 0; when the
// chain holds several, the outermost counts. The result's message is err's,
// and errors.Is and errors.As see through it to err. RetryAfter(d, nil)
// returns nil.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return engine.RetryAfter(d, err)
}

// merge returns p with every zero field taken from def.
func (p Policy) merge(def Policy) Policy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = def.MaxAttempts
	}
	if p.Backoff == nil {
		p.Backoff = def.Backoff
	}
	if p.Jitter == nil {
		p.Jitter = def.Jitter
	}
	if p.Timeout == 0 {
		p.Timeout = def.Timeout
	}
	if p.MaxElapsed == 0 {
		p.MaxElapsed = def.MaxElapsed
	}
	if p.RetryIf == nil {
		p.RetryIf = def.RetryIf
	}
	if p.OnRetry == nil {
		p.OnRetry = def.OnRetry
	}
	return p
}

// validate reports the first negative MaxAttempts, Timeout or MaxElapsed as an
// error wrapping ErrInvalidPolicy that names the field.
func (p Policy) validate() error {
	switch {
	case p.MaxAttempts < 0:
		return fmt.Errorf("%w: MaxAttempts must be >= 0, got %d", ErrInvalidPolicy, p.MaxAttempts)
	case p.Timeout < 0:
		return fmt.Errorf("%w: Timeout must be >= 0, got %v", ErrInvalidPolicy, p.Timeout)
	case p.MaxElapsed < 0:
		return fmt.Errorf("%w: MaxElapsed must be >= 0, got %v", ErrInvalidPolicy, p.MaxElapsed)
	}
	return nil
}

// resolved is p, merged, as the engine applies it.
func (p *Policy) resolved() engine.Policy {
	b := p.Backoff
	if b == nil {
		b = defaultPolicy.Backoff
	}
	return engine.Policy{
		MaxAttempts: p.MaxAttempts,
		Backoff:     b,
		Jitter:      p.Jitter,
		Timeout:     p.Timeout,
		MaxElapsed:  p.MaxElapsed,
		RetryIf:     p.RetryIf,
		OnRetry:     p.OnRetry,
	}
}

// retry decides, after attempt number attempt (1-based) failed with err,
// whether to try again and after what delay, as a pool would; see
// engine.Policy.Next.
func (p *Policy) retry(ctx context.Context, attempt int, err error, prev, elapsed time.Duration, rnd func() float64) (time.Duration, bool) {
	ep := p.resolved()
	return ep.Next(ctx, attempt, err, prev, elapsed, rnd)
}

// durationOf converts x nanoseconds to a Duration, saturating instead of
// overflowing.
func durationOf(x float64) time.Duration {
	switch {
	case x >= math.MaxInt64:
		return math.MaxInt64
	case x <= math.MinInt64:
		return math.MinInt64
	}
	return time.Duration(x)
}

// Retry calls fn under pol in the calling goroutine, with the semantics a
// pool gives a job's attempts (the same code decides): pol's zero fields
// take the library defaults (one attempt: set MaxAttempts to retry); each
// attempt's ctx carries its Timeout and MaxElapsed deadline, and an attempt
// past it fails with context.DeadlineExceeded whatever fn returns; the
// waits between attempts follow Backoff, Jitter and RetryAfter on a timer
// and end early, with ctx's error, when ctx ends; RetryIf and Permanent
// decide what is retried, OnRetry observes each retry; a panic in fn or in
// a policy function ends Retry with a *PanicError. When the attempts or
// MaxElapsed run out, the error is an *ExhaustedError holding every
// attempt's error. An invalid policy returns an error wrapping
// ErrInvalidPolicy without calling fn.
//
// Cost: nothing for a call that succeeds at once without a Timeout or
// MaxElapsed; a context per attempt with one; a timer once it retries. It
// panics if ctx or fn is nil.
func Retry[T any](ctx context.Context, pol Policy, fn func(ctx context.Context) (T, error)) (T, error) {
	if ctx == nil {
		panic("jobq: Retry: ctx must not be nil")
	}
	if fn == nil {
		panic("jobq: Retry: fn must not be nil")
	}
	if err := pol.validate(); err != nil {
		var zero T
		return zero, err
	}
	m := pol.merge(defaultPolicy)
	return engine.Retry(ctx, m.resolved(), fn)
}
