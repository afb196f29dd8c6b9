package jobq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// callLog records the calls of a Retry fn on synctest's fake clock: when
// each started, counted from the log's start, and its ctx's deadline, if
// any, counted likewise (-1 for none).
type callLog struct {
	mu        sync.Mutex
	start     time.Time
	at        []time.Duration
	deadlines []time.Duration
}

func newCallLog() *callLog { return &callLog{start: time.Now()} }

func (l *callLog) record(ctx context.Context) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.at = append(l.at, time.Since(l.start))
	dl := time.Duration(-1)
	if d, ok := ctx.Deadline(); ok {
		dl = d.Sub(l.start)
	}
	l.deadlines = append(l.deadlines, dl)
	return len(l.at)
}

func (l *callLog) calls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.at)
}

// failing returns a Retry fn that records its calls in l and fails call n
// with "attempt n failed", succeeding (with n) from call okFrom on (never
// if okFrom is 0).
func failing(l *callLog, okFrom int) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		n := l.record(ctx)
		if okFrom > 0 && n >= okFrom {
			return n, nil
		}
		return 0, fmt.Errorf("attempt %d failed", n)
	}
}

// errTexts returns the messages of an *ExhaustedError's Errs; nil if err
// is not one.
func errTexts(err error) []string {
	var ee *ExhaustedError
	if !errors.As(err, &ee) {
		return nil
	}
	var s []string
	for _, e := range ee.Errs {
		s = append(s, e.Error())
	}
	return s
}

func TestRetryMakesMaxAttempts(t *testing.T) {
	tests := []struct {
		name      string
		pol       Policy
		okFrom    int
		wantCalls int
		wantV     int
		wantErr   string
		wantErrs  []string // of the *ExhaustedError
	}{
		{name: "zero is one attempt", pol: Policy{}, wantCalls: 1, wantErr: "attempt 1 failed"},
		{name: "one attempt", pol: Policy{MaxAttempts: 1}, wantCalls: 1, wantErr: "attempt 1 failed"},
		{
			name: "exhausted", pol: Policy{MaxAttempts: 3, Backoff: Constant(time.Second)}, wantCalls: 3,
			wantErr:  "jobq: gave up after 3 attempts: attempt 3 failed",
			wantErrs: []string{"attempt 1 failed", "attempt 2 failed", "attempt 3 failed"},
		},
		{name: "succeeds on the second", pol: Policy{MaxAttempts: 3}, okFrom: 2, wantCalls: 2, wantV: 2},
		{name: "succeeds at once", pol: Policy{MaxAttempts: 3}, okFrom: 1, wantCalls: 1, wantV: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newCallLog()
				v, err := Retry(context.Background(), tt.pol, failing(l, tt.okFrom))
				if n := l.calls(); n != tt.wantCalls {
					t.Errorf("fn called %d times, want %d", n, tt.wantCalls)
				}
				if tt.wantErr == "" {
					if v != tt.wantV || err != nil {
						t.Errorf("Retry = %d, %v; want %d, nil", v, err, tt.wantV)
					}
					return
				}
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Retry error %v, want %q", err, tt.wantErr)
				}
				if diff := cmp.Diff(tt.wantErrs, errTexts(err)); diff != "" {
					t.Errorf("ExhaustedError.Errs (-want +got):\n%s", diff)
				}
				var ee *ExhaustedError
				if errors.As(err, &ee) && ee.Attempts != tt.wantCalls {
					t.Errorf("ExhaustedError.Attempts = %d, want %d", ee.Attempts, tt.wantCalls)
				}
			})
		})
	}
}

func TestRetryWaitsOutBackoffAndJitter(t *testing.T) {
	type backoffCall struct {
		N    int
		Prev time.Duration
	}
	synctest.Test(t, func(t *testing.T) {
		var bcalls []backoffCall
		var rs []float64
		pol := Policy{
			MaxAttempts: 4,
			Backoff: func(n int, prev time.Duration, r float64) time.Duration {
				bcalls = append(bcalls, backoffCall{n, prev})
				rs = append(rs, r)
				return time.Duration(n) * 2 * time.Second
			},
			Jitter: func(d time.Duration, r float64) time.Duration {
				rs = append(rs, r)
				return d / 2
			},
		}
		l := newCallLog()
		Retry(context.Background(), pol, failing(l, 0))
		// Backoff gives 2s, 4s, 6s; Jitter halves them.
		if diff := cmp.Diff([]time.Duration{0, time.Second, 3 * time.Second, 6 * time.Second}, l.at); diff != "" {
			t.Errorf("attempts started at (-want +got):\n%s", diff)
		}
		// prev is the delay used, after Jitter.
		want := []backoffCall{{1, 0}, {2, time.Second}, {3, 2 * time.Second}}
		if diff := cmp.Diff(want, bcalls); diff != "" {
			t.Errorf("Backoff calls (-want +got):\n%s", diff)
		}
		for _, r := range rs {
			if r < 0 || r >= 1 {
				t.Errorf("random number %v passed to Backoff or Jitter, want one in [0, 1)", r)
			}
		}
		if len(rs) != 6 {
			t.Errorf("Backoff and Jitter called %d times in all, want 6", len(rs))
		}
	})
}

func TestRetryDefaultBackoffIsExponentialFrom100ms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newCallLog()
		Retry(context.Background(), Policy{MaxAttempts: 4}, failing(l, 0))
		want := []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond, 700 * time.Millisecond}
		if diff := cmp.Diff(want, l.at); diff != "" {
			t.Errorf("attempts started at (-want +got):\n%s", diff)
		}
	})
}

func TestRetryWithFullJitterWaitsLessThanTheBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newCallLog()
		Retry(context.Background(), Policy{MaxAttempts: 20, Backoff: Constant(time.Second), Jitter: FullJitter}, failing(l, 0))
		distinct := map[time.Duration]bool{}
		for i := 1; i < len(l.at); i++ {
			d := l.at[i] - l.at[i-1]
			if d < 0 || d >= time.Second {
				t.Errorf("wait before attempt %d: %v, want one in [0, 1s)", i+1, d)
			}
			distinct[d] = true
		}
		if len(distinct) < 2 {
			t.Errorf("19 waits under FullJitter took %d distinct values, want them random", len(distinct))
		}
	})
}

func TestRetryTimeoutBoundsEachAttempt(t *testing.T) {
	t.Run("fn that honours its ctx", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newCallLog()
			_, err := Retry(context.Background(), Policy{MaxAttempts: 2, Timeout: time.Second, Backoff: Constant(time.Minute)},
				func(ctx context.Context) (int, error) {
					l.record(ctx)
					<-ctx.Done()
					return 0, ctx.Err()
				})
			if diff := cmp.Diff([]string{"context deadline exceeded", "context deadline exceeded"}, errTexts(err)); diff != "" {
				t.Errorf("Retry error %v; its attempts' errors (-want +got):\n%s", err, diff)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Retry error %v does not match context.DeadlineExceeded", err)
			}
			// Each attempt's ctx carries its own deadline, a Timeout after its start.
			want := []time.Duration{time.Second, time.Minute + 2*time.Second}
			if diff := cmp.Diff(want, l.deadlines); diff != "" {
				t.Errorf("attempt ctx deadlines (-want +got):\n%s", diff)
			}
		})
	})
	t.Run("fn that ignores its ctx", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			v, err := Retry(context.Background(), Policy{Timeout: time.Second}, func(ctx context.Context) (int, error) {
				time.Sleep(3 * time.Second) // ignores ctx
				return 7, nil
			})
			if v != 0 || err != context.DeadlineExceeded {
				t.Errorf("Retry = %d, %v; want 0, context.DeadlineExceeded whatever fn returned", v, err)
			}
			if d := time.Since(start); d != 3*time.Second {
				t.Errorf("Retry returned after %v, want 3s (when fn returned)", d)
			}
		})
	})
	t.Run("fn within its timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			v, err := Retry(context.Background(), Policy{Timeout: time.Second}, func(ctx context.Context) (int, error) {
				time.Sleep(999 * time.Millisecond)
				return 7, ctx.Err()
			})
			if v != 7 || err != nil {
				t.Errorf("Retry = %d, %v; want 7, nil", v, err)
			}
		})
	})
}

func TestRetryMaxElapsedBoundsTheWhole(t *testing.T) {
	t.Run("no retry whose wait ends past it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newCallLog()
			_, err := Retry(context.Background(), Policy{MaxAttempts: 100, Backoff: Constant(time.Second), MaxElapsed: 2500 * time.Millisecond},
				failing(l, 0))
			if diff := cmp.Diff([]time.Duration{0, time.Second, 2 * time.Second}, l.at); diff != "" {
				t.Errorf("attempts started at (-want +got):\n%s", diff)
			}
			d := 2500 * time.Millisecond
			if diff := cmp.Diff([]time.Duration{d, d, d}, l.deadlines); diff != "" {
				t.Errorf("attempt ctx deadlines (-want +got), want MaxElapsed from the first start:\n%s", diff)
			}
			var ee *ExhaustedError
			if !errors.As(err, &ee) || ee.Attempts != 3 {
				t.Errorf("Retry error %v, want an ExhaustedError of 3 attempts", err)
			}
		})
	})
	t.Run("an attempt running past it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			_, err := Retry(context.Background(), Policy{MaxAttempts: 5, MaxElapsed: time.Second, Timeout: time.Hour},
				func(ctx context.Context) (int, error) {
					time.Sleep(2 * time.Second) // ignores ctx
					return 1, nil
				})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Retry error %v, want context.DeadlineExceeded", err)
			}
			if d := time.Since(start); d != 2*time.Second {
				t.Errorf("Retry returned after %v, want 2s: no retry past MaxElapsed", d)
			}
		})
	})
}

func TestRetryIfDecidesWhatIsRetried(t *testing.T) {
	errFatal := errors.New("fatal")
	synctest.Test(t, func(t *testing.T) {
		var seen []string
		calls := 0
		_, err := Retry(context.Background(), Policy{
			MaxAttempts: 10,
			RetryIf: func(err error) bool {
				seen = append(seen, err.Error())
				return !errors.Is(err, errFatal)
			},
		}, func(context.Context) (int, error) {
			calls++
			if calls == 3 {
				return 0, errFatal
			}
			return 0, fmt.Errorf("transient %d", calls)
		})
		if err != errFatal {
			t.Errorf("Retry error %v, want the unretried error itself, %v", err, errFatal)
		}
		// RetryIf is a predicate: the engine may ask it more than once
		// about one error (it asks twice about the last), so only the
		// errors it saw, in order, count.
		seen = slices.Compact(seen)
		if diff := cmp.Diff([]string{"transient 1", "transient 2", "fatal"}, seen); diff != "" {
			t.Errorf("RetryIf saw (-want +got):\n%s", diff)
		}
	})

	t.Run("panics are retried only if RetryIf says so", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			calls := 0
			fn := func(context.Context) (int, error) {
				calls++
				if calls < 3 {
					panic("flaky")
				}
				return calls, nil
			}
			var pe *PanicError
			if _, err := Retry(context.Background(), Policy{MaxAttempts: 5}, fn); !errors.As(err, &pe) || calls != 1 {
				t.Errorf("by default: Retry error %v after %d calls, want a *PanicError after 1", err, calls)
			}
			calls = 0
			v, err := Retry(context.Background(), Policy{MaxAttempts: 5, RetryIf: func(error) bool { return true }}, fn)
			if v != 3 || err != nil {
				t.Errorf("with RetryIf true: Retry = %d, %v; want 3, nil", v, err)
			}
		})
	})
}

func TestRetryCallsOnRetryBeforeEachWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var got []retryCall
		var at []time.Duration
		l := newCallLog()
		_, err := Retry(context.Background(), Policy{
			MaxAttempts: 3,
			Backoff:     func(n int, _ time.Duration, _ float64) time.Duration { return time.Duration(n) * time.Second },
			OnRetry: func(attempt int, err error, delay time.Duration) {
				got = append(got, retryCall{attempt, err.Error(), delay})
				at = append(at, time.Since(start))
			},
		}, failing(l, 0))
		want := []retryCall{{1, "attempt 1 failed", time.Second}, {2, "attempt 2 failed", 2 * time.Second}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("OnRetry calls (-want +got), none for the last attempt:\n%s", diff)
		}
		if diff := cmp.Diff([]time.Duration{0, time.Second}, at); diff != "" {
			t.Errorf("OnRetry called at (-want +got), want before each wait:\n%s", diff)
		}
		if err == nil {
			t.Error("Retry succeeded, want it exhausted")
		}
	})
}

func TestRetryAfterSetsTheWaitExactly(t *testing.T) {
	errBusy := errors.New("busy")
	synctest.Test(t, func(t *testing.T) {
		var delays []time.Duration
		l := newCallLog()
		v, err := Retry(context.Background(), Policy{
			MaxAttempts: 3,
			Backoff:     Constant(time.Minute),
			Jitter:      func(time.Duration, float64) time.Duration { return time.Hour },
			OnRetry:     func(_ int, _ error, d time.Duration) { delays = append(delays, d) },
		}, func(ctx context.Context) (int, error) {
			if l.record(ctx) == 1 {
				return 0, RetryAfter(5*time.Second, errBusy)
			}
			return 2, nil
		})
		if v != 2 || err != nil {
			t.Errorf("Retry = %d, %v; want 2, nil", v, err)
		}
		if diff := cmp.Diff([]time.Duration{0, 5 * time.Second}, l.at); diff != "" {
			t.Errorf("attempts started at (-want +got), want the RetryAfter delay, unjittered:\n%s", diff)
		}
		if diff := cmp.Diff([]time.Duration{5 * time.Second}, delays); diff != "" {
			t.Errorf("OnRetry delays (-want +got):\n%s", diff)
		}
	})
	t.Run("does not force a retry", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			calls := 0
			_, err := Retry(context.Background(), Policy{}, func(context.Context) (int, error) {
				calls++
				return 0, RetryAfter(time.Second, errBusy)
			})
			if calls != 1 || !errors.Is(err, errBusy) {
				t.Errorf("Retry error %v after %d calls, want errBusy after 1", err, calls)
			}
		})
	})
}

func TestRetryStopsAtAPermanentError(t *testing.T) {
	errBad := errors.New("bad request")
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		_, err := Retry(context.Background(), Policy{MaxAttempts: 5}, func(context.Context) (int, error) {
			calls++
			return 0, Permanent(errBad)
		})
		var ee *ExhaustedError
		if calls != 1 || !errors.Is(err, errBad) || errors.As(err, &ee) || err.Error() != errBad.Error() {
			t.Errorf("Retry error %v (%T) after %d calls, want errBad's own after 1", err, err, calls)
		}
	})
}

func TestRetryReturnsAtOnceWhenCtxEndsDuringABackoff(t *testing.T) {
	for _, cause := range []string{"cancel", "deadline"} {
		t.Run(cause, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				want := context.Canceled
				if cause == "deadline" {
					ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
					want = context.DeadlineExceeded
				}
				defer cancel()
				l := newCallLog()
				type result struct {
					err error
					at  time.Duration
				}
				done := make(chan result, 1)
				go func() {
					_, err := Retry(ctx, Policy{MaxAttempts: 5, Backoff: Constant(time.Hour)}, failing(l, 0))
					done <- result{err, time.Since(l.start)}
				}()
				synctest.Wait() // the first attempt failed; Retry waits out an hour
				wantAt := 10 * time.Second
				if cause == "cancel" {
					time.Sleep(time.Second)
					cancel()
					wantAt = time.Second
				}
				r := <-done
				if r.err != want {
					t.Errorf("Retry = %v, want %v", r.err, want)
				}
				if r.at != wantAt {
					t.Errorf("Retry returned at %v, want %v: at once when ctx ended", r.at, wantAt)
				}
				if n := l.calls(); n != 1 {
					t.Errorf("fn called %d times, want 1", n)
				}
			})
		})
	}
	t.Run("ctx done before the first attempt", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		called := false
		_, err := Retry(ctx, Policy{MaxAttempts: 3}, func(context.Context) (int, error) { called = true; return 0, nil })
		if err != context.Canceled || called {
			t.Errorf("Retry with a done ctx = %v, fn called %v; want context.Canceled, not called", err, called)
		}
	})
	t.Run("fn cancelling its own ctx is not retried", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := 0
			_, err := Retry(ctx, Policy{MaxAttempts: 3}, func(ctx context.Context) (int, error) {
				calls++
				cancel()
				return 0, ctx.Err()
			})
			if calls != 1 || !errors.Is(err, context.Canceled) {
				t.Errorf("Retry = %v after %d calls, want context.Canceled after 1", err, calls)
			}
		})
	})
}

func TestRetryTurnsPanicsIntoPanicErrors(t *testing.T) {
	fail := func(context.Context) (int, error) { return 0, errors.New("fails") }
	tests := []struct {
		name string
		pol  Policy
		fn   func(context.Context) (int, error)
	}{
		{"fn", Policy{MaxAttempts: 3}, func(context.Context) (int, error) { panic("boom") }},
		{"Backoff", Policy{MaxAttempts: 3, Backoff: func(int, time.Duration, float64) time.Duration { panic("boom") }}, fail},
		{"Jitter", Policy{MaxAttempts: 3, Jitter: func(time.Duration, float64) time.Duration { panic("boom") }}, fail},
		{"RetryIf", Policy{MaxAttempts: 3, RetryIf: func(error) bool { panic("boom") }}, fail},
		{"OnRetry", Policy{MaxAttempts: 3, OnRetry: func(int, error, time.Duration) { panic("boom") }}, fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, err := Retry(context.Background(), tt.pol, tt.fn)
				var pe *PanicError
				if !errors.As(err, &pe) {
					t.Fatalf("Retry error %v (%T), want a *PanicError", err, err)
				}
				if pe.Value != "boom" || len(pe.Stack) == 0 {
					t.Errorf("PanicError value %v with %d bytes of stack, want boom and a stack", pe.Value, len(pe.Stack))
				}
				if !strings.Contains(string(pe.Stack), "TestRetryTurnsPanicsIntoPanicErrors") {
					t.Errorf("the stack does not name the panicking function:\n%s", pe.Stack)
				}
			})
		})
	}
}

func TestRetryRefusesAnInvalidPolicyWithoutCallingFn(t *testing.T) {
	for _, pol := range []Policy{{MaxAttempts: -1}, {Timeout: -time.Second}, {MaxElapsed: -1}} {
		called := false
		_, err := Retry(context.Background(), pol, func(context.Context) (int, error) { called = true; return 0, nil })
		if !errors.Is(err, ErrInvalidPolicy) || called {
			t.Errorf("Retry(%+v) = %v, fn called %v; want ErrInvalidPolicy, not called", pol, err, called)
		}
	}
}

func TestRetryPanicsOnNilCtxOrFn(t *testing.T) {
	var nilCtx context.Context
	mustPanic(t, "ctx", func() {
		Retry(nilCtx, Policy{}, func(context.Context) (int, error) { return 0, nil })
	})
	mustPanic(t, "fn", func() { Retry[int](context.Background(), Policy{}, nil) })
}

// describe is what TestRetryAndAPoolGiveTheSameErrors compares: the error's
// type, message and, for an *ExhaustedError, its attempts' messages.
func describe(err error) string {
	if err == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%T %q %q", err, err.Error(), errTexts(err))
}

func TestRetryAndAPoolGiveTheSameErrors(t *testing.T) {
	errX := errors.New("x")
	// Each case makes a fresh fn: a failing function with state of its own.
	counter := func(f func(n int, ctx context.Context) (int, error)) func() func(context.Context) (int, error) {
		return func() func(context.Context) (int, error) {
			n := 0
			return func(ctx context.Context) (int, error) { n++; return f(n, ctx) }
		}
	}
	tests := []struct {
		name string
		pol  Policy
		fn   func() func(context.Context) (int, error)
	}{
		{"one attempt", Policy{}, counter(func(n int, _ context.Context) (int, error) { return 0, errX })},
		{"exhausted", Policy{MaxAttempts: 3, Backoff: Constant(time.Second)},
			counter(func(n int, _ context.Context) (int, error) { return 0, fmt.Errorf("attempt %d", n) })},
		{"succeeds on the third", Policy{MaxAttempts: 3},
			counter(func(n int, _ context.Context) (int, error) {
				if n < 3 {
					return 0, errX
				}
				return n, nil
			})},
		{"permanent", Policy{MaxAttempts: 3}, counter(func(int, context.Context) (int, error) { return 0, Permanent(errX) })},
		{"RetryIf false", Policy{MaxAttempts: 3, RetryIf: func(error) bool { return false }},
			counter(func(int, context.Context) (int, error) { return 0, errX })},
		{"panic", Policy{MaxAttempts: 3}, counter(func(int, context.Context) (int, error) { panic("boom") })},
		{"panic in Backoff", Policy{MaxAttempts: 3, Backoff: func(int, time.Duration, float64) time.Duration { panic("boom") }},
			counter(func(int, context.Context) (int, error) { return 0, errX })},
		{"timeout ignored by fn", Policy{MaxAttempts: 2, Timeout: time.Second},
			counter(func(int, context.Context) (int, error) { time.Sleep(2 * time.Second); return 1, nil })},
		{"MaxElapsed", Policy{MaxAttempts: 10, Backoff: Constant(time.Second), MaxElapsed: 2500 * time.Millisecond},
			counter(func(n int, _ context.Context) (int, error) { return 0, fmt.Errorf("attempt %d", n) })},
		{"ctx done before the first attempt", Policy{MaxAttempts: 3},
			counter(func(n int, _ context.Context) (int, error) { return n, nil })},
		{"ctx deadline during a backoff", Policy{MaxAttempts: 3, Backoff: Constant(time.Hour)},
			counter(func(n int, _ context.Context) (int, error) { return 0, errX })},
		{"RetryAfter", Policy{MaxAttempts: 2},
			counter(func(n int, _ context.Context) (int, error) {
				if n == 1 {
					return 0, RetryAfter(3*time.Second, errX)
				}
				return n, nil
			})},
	}
	// Where fn ignores its ctx, Retry waits for it, while the pool ends
	// the attempt at its deadline and frees the caller: only the errors
	// compare.
	untimed := map[string]bool{"timeout ignored by fn": true}
	// The submission ctx, Background unless named here.
	ctxs := map[string]func() (context.Context, context.CancelFunc){
		"ctx done before the first attempt": func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		},
		"ctx deadline during a backoff": func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 5*time.Second)
		},
	}
	ctxOf := func(name string) (context.Context, context.CancelFunc) {
		if f := ctxs[name]; f != nil {
			return f()
		}
		return context.Background(), func() {}
	}
	type outcome struct {
		V       int
		Err     string
		Elapsed time.Duration
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				ctx, cancel := ctxOf(tt.name)
				v, err := Retry(ctx, tt.pol, tt.fn())
				viaRetry := outcome{v, describe(err), time.Since(start)}
				cancel()

				fn := tt.fn()
				p := New(1, func(ctx context.Context, _ int) (int, error) { return fn(ctx) })
				start = time.Now()
				ctx, cancel = ctxOf(tt.name)
				v, err = p.Submit(ctx, 0, tt.pol).Await(context.Background())
				viaPool := outcome{v, describe(err), time.Since(start)}
				cancel()
				p.Close()
				if untimed[tt.name] {
					viaPool.Elapsed, viaRetry.Elapsed = 0, 0
				}
				if err != nil {
					viaPool.V = 0 // the value that goes with an error is not part of the contract
				}
				if diff := cmp.Diff(viaPool, viaRetry); diff != "" {
					t.Errorf("Retry differs from a pool's job under the same policy (-pool +Retry):\n%s", diff)
				}
			})
		})
	}
}
