package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-bb9ff1e7/jobq"
)

// This file gathers what the stages' end observers report
// (jobq.WithObserver): each pool is built with its stageStats' observer,
// which sees every job's end, with its attempts and the time it spent
// queued and running.

// outcome says how a job ended.
type outcome int

const (
	succeeded outcome = iota
	failed
	canceled
)

// end is one job's end, as one stage saw it.
type end struct {
	Outcome  outcome
	Err      error // nil when it succeeded
	Attempts int
	// Queued is the time from submission to the end that no attempt ran:
	// waiting for a worker, and waiting out backoffs.
	Queued time.Duration
	// Running is the time its attempts ran, together.
	Running time.Duration
}

// outcomeOf is o as the demo names it.
func outcomeOf(o jobq.Outcome) outcome {
	switch o {
	case jobq.Succeeded:
		return succeeded
	case jobq.Failed:
		return failed
	}
	return canceled
}

// observer returns the end observer that feeds s.
func (s *stageStats) observer() jobq.Option {
	return jobq.WithObserver(func(e jobq.End) {
		s.observe(end{Outcome: outcomeOf(e.Outcome), Err: e.Err, Attempts: e.Attempts, Queued: e.Queued, Running: e.Running})
	})
}

// stageStats gathers the ends and retries of one stage's jobs. It is safe
// for concurrent use: retries are reported from the pool's goroutines.
type stageStats struct {
	name string

	// Live counts, for the progress line.
	retried  atomic.Int64
	timeouts atomic.Int64 // retries after a timed-out attempt

	mu       sync.Mutex
	queued   []time.Duration // of the jobs that succeeded
	running  []time.Duration // of the jobs that succeeded
	retries  map[string]int  // every retry, by the cause of the attempt that failed
	lost     map[string]int  // retries of jobs that failed in the end, by cause
	failures map[string]int  // jobs that failed, by the cause of their final error
}

func newStageStats(name string) *stageStats {
	return &stageStats{name: name, retries: map[string]int{}, lost: map[string]int{}, failures: map[string]int{}}
}

// onRetry is the stage's Policy.OnRetry: it counts each retry by cause.
func (s *stageStats) onRetry(_ int, err error, _ time.Duration) {
	c := causeOf(err)
	s.retried.Add(1)
	if c == causeTimeout {
		s.timeouts.Add(1)
	}
	s.mu.Lock()
	s.retries[c]++
	s.mu.Unlock()
}

// observe counts one job's end.
func (s *stageStats) observe(e end) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.Outcome {
	case succeeded:
		s.queued = append(s.queued, e.Queued)
		s.running = append(s.running, e.Running)
	case failed:
		s.failures[failureOf(e.Err)]++
		// Its retries were not absorbed: the errors of its attempts
		// but the last, when the error lists them.
		var ex *jobq.ExhaustedError
		if errors.As(e.Err, &ex) && len(ex.Errs) > 0 {
			for _, err := range ex.Errs[:len(ex.Errs)-1] {
				s.lost[causeOf(err)]++
			}
		} else if e.Attempts > 1 {
			s.lost[causeOther] += e.Attempts - 1
		}
	}
}

// absorbed returns the retries of the jobs that succeeded in the end, by
// cause, and their total.
func (s *stageStats) absorbed() (map[string]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	by := make(map[string]int)
	n := 0
	for c, k := range s.retries {
		if k -= s.lost[c]; k > 0 {
			by[c] = k
			n += k
		}
	}
	return by, n
}

// Causes of a failed attempt.
const (
	causeTimeout     = "timeout"
	causeUnavailable = "503"
	causeConnection  = "connection"
	causeCanceled    = "canceled"
	causeOther       = "other"
)

// statusError is an HTTP answer other than 200 OK.
type statusError struct{ code int }

func (e *statusError) Error() string {
	return fmt.Sprintf("%d %s", e.code, http.StatusText(e.code))
}

// connError is a request that got no HTTP answer.
type connError struct{ err error }

func (e *connError) Error() string { return "connection: " + e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// causeOf names the cause of one attempt's error.
func causeOf(err error) string {
	var se *statusError
	var ce *connError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return causeTimeout
	case errors.Is(err, context.Canceled):
		return causeCanceled
	case errors.As(err, &se) && se.code == http.StatusServiceUnavailable:
		return causeUnavailable
	case errors.As(err, &se):
		return se.Error()
	case errors.As(err, &ce):
		return causeConnection
	}
	return causeOther
}

// failureOf names the cause of a job's final error: its last attempt's,
// and how many attempts it made when it gave up.
func failureOf(err error) string {
	var ex *jobq.ExhaustedError
	if errors.As(err, &ex) && len(ex.Errs) > 0 {
		return fmt.Sprintf("%s (gave up after %d attempts)", causeOf(ex.Errs[len(ex.Errs)-1]), ex.Attempts)
	}
	return causeOf(err)
}
