package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy is a job's resolved policy: every field set, or zero for none.
// The jobq package documents each field (jobq.Policy); this is the one
// implementation of what they mean, for pools and for Retry alike.
type Policy struct {
	MaxAttempts         int
	Backoff             func(n int, prev time.Duration, r float64) time.Duration
	Jitter              func(d time.Duration, r float64) time.Duration
	Timeout, MaxElapsed time.Duration
	RetryIf             func(error) bool
	OnRetry             func(attempt int, err error, delay time.Duration)
}

// hasDeadline reports whether an attempt under pol has a deadline, so that
// its job needs a record.
func (pol *Policy) hasDeadline() bool { return pol.Timeout > 0 || pol.MaxElapsed > 0 }

// Kinds tells the engine the jobq package's error types. It is set once,
// by jobq's init, before any pool exists.
var Kinds struct {
	// Panicked makes the error of a handler or policy function that
	// panicked with v, or of a handler that called runtime.Goexit.
	Panicked func(v any, goexit bool, stack []byte) error
	// IsPanic reports whether err is, or wraps, such an error.
	IsPanic func(err error) bool
	// Exhausted makes the error of a job whose retries ran out.
	Exhausted func(attempts int, errs []error) error
	// IsExhausted reports whether err is, or wraps, such an error.
	IsExhausted func(err error) bool
}

// Permanent wraps err so that it is never retried.
func Permanent(err error) error { return &permanentError{err: err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// RetryAfter wraps err so that its retry, if any, waits exactly d.
func RetryAfter(d time.Duration, err error) error { return &retryAfterError{d: max(d, 0), err: err} }

type retryAfterError struct {
	d   time.Duration
	err error
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// Next decides, after attempt k (from 1) of a job submitted with ctx
// failed with err, whether another attempt follows and after what delay.
// prev is the delay before the previous attempt (0 if none), elapsed the
// time since the first attempt started; rnd supplies uniform numbers in
// [0, 1) (rand.Float64 when nil). Next does not call OnRetry.
func (pol *Policy) Next(ctx context.Context, k int, err error, prev, elapsed time.Duration, rnd func() float64) (time.Duration, bool) {
	if err == nil || k >= min(pol.MaxAttempts, MaxAttempts) || !pol.retryable(ctx, err) {
		return 0, false
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	var delay time.Duration
	var ra *retryAfterError
	if errors.As(err, &ra) {
		delay = ra.d
	} else {
		delay = pol.Backoff(k, prev, rnd())
		if pol.Jitter != nil {
			delay = pol.Jitter(delay, rnd())
		}
	}
	delay = max(delay, 0)
	// Written as a subtraction so that a huge delay cannot overflow.
	if pol.MaxElapsed > 0 && (elapsed > pol.MaxElapsed || delay > pol.MaxElapsed-elapsed) {
		return 0, false
	}
	return delay, true
}

// retryable reports whether err, the error of an attempt of a job
// submitted with ctx, may be retried at all, leaving attempts and time
// aside.
func (pol *Policy) retryable(ctx context.Context, err error) bool {
	// A done submission ctx ends the job; this also covers the default
	// rule that the caller's own cancellation is not retried. Its deadline
	// may have passed before its timer has cancelled it.
	if ctx != nil {
		if ctx.Err() != nil {
			return false
		}
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return false
		}
	}
	var perm *permanentError
	if errors.As(err, &perm) {
		return false
	}
	if pol.RetryIf != nil {
		return pol.RetryIf(err)
	}
	return !Kinds.IsPanic(err)
}

// Final is the error a job ends with when attempt k failed with err and
// no other follows; errs are the earlier attempts' errors. A job whose
// policy allowed retries fails with the exhausted error, unless err itself
// could not be retried.
func (pol *Policy) Final(ctx context.Context, k int, err error, errs []error) error {
	if pol.MaxAttempts > 1 && pol.retryable(ctx, err) {
		return Kinds.Exhausted(k, append(errs, err))
	}
	return err
}

// IsCancellation reports whether a job that ended with err was cancelled
// rather than failed.
func IsCancellation(err error) bool {
	if Kinds.IsPanic(err) || Kinds.IsExhausted(err) {
		return false
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed)
}

// decision is what follows a failed attempt: a retry after delay, or the
// job's end with final.
type decision struct {
	retry bool
	delay time.Duration
	final error
}

// decide applies pol after attempt k failed with err; a policy function
// that panics ends the job with its panic. OnRetry runs here, before the
// wait, for a retry.
func decide(pol *Policy, ctx context.Context, k int, err error, prev, elapsed time.Duration, errs []error) (d decision) {
	defer func() {
		if v := recover(); v != nil {
			d = decision{final: Kinds.Panicked(v, false, stack())}
		}
	}()
	if delay, ok := pol.Next(ctx, k, err, prev, elapsed, nil); ok {
		if pol.OnRetry != nil {
			pol.OnRetry(k, err, delay)
		}
		return decision{retry: true, delay: delay}
	}
	return decision{final: pol.Final(ctx, k, err, errs)}
}
