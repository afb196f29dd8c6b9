package jobq

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// mustPanic runs f and fails the test unless f panics with a string that
// contains want.
func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one containing %q", want)
		}
		msg, ok := r.(string)
		if !ok {
			t.Fatalf("panic value %#v is a %T, want a string containing %q", r, r, want)
		}
		if !strings.Contains(msg, want) {
			t.Fatalf("panic %q does not contain %q", msg, want)
		}
	}()
	f()
}

// seq returns a rnd that yields rs in turn, then repeats the last one.
func seq(rs ...float64) func() float64 {
	return func() float64 {
		r := rs[0]
		if len(rs) > 1 {
			rs = rs[1:]
		}
		return r
	}
}

func TestConstantWaitsTheSameBeforeEveryRetry(t *testing.T) {
	for _, d := range []time.Duration{0, time.Nanosecond, 250 * time.Millisecond} {
		b := Constant(d)
		var got []time.Duration
		for n := 1; n <= 5; n++ {
			got = append(got, b(n, time.Duration(n)*time.Hour, float64(n)/10))
		}
		want := []time.Duration{d, d, d, d, d}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Constant(%v) delays (-want +got):\n%s", d, diff)
		}
	}
}

func TestExponentialDoublesUpToMax(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name      string
		base, max time.Duration
		ns        []int
		want      []time.Duration
	}{
		{"doubles then caps", 100 * ms, time.Second,
			[]int{1, 2, 3, 4, 5, 6, 7},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second, time.Second}},
		{"base equals max", time.Second, time.Second,
			[]int{1, 2, 3, 100},
			[]time.Duration{time.Second, time.Second, time.Second, time.Second}},
		{"n below 1 counts as 1", 100 * ms, time.Second,
			[]int{0, -5},
			[]time.Duration{100 * ms, 100 * ms}},
		{"huge n", 100 * ms, 30 * time.Second,
			[]int{30, 62, 63, 64, 200, math.MaxInt},
			[]time.Duration{30 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}},
		{"no overflow at the top of int64", 1, math.MaxInt64,
			[]int{1, 2, 62, 63, 64, 200},
			[]time.Duration{1, 2, 1 << 61, 1 << 62, math.MaxInt64, math.MaxInt64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Exponential(tt.base, tt.max)
			var got []time.Duration
			for _, n := range tt.ns {
				got = append(got, b(n, 0, 0.5))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Exponential(%v, %v) at n=%v (-want +got):\n%s", tt.base, tt.max, tt.ns, diff)
			}
		})
	}
}

func TestDecorrelatedDelays(t *testing.T) {
	ms := time.Millisecond
	base, max := 100*ms, 10*time.Second
	b := Decorrelated(base, max)
	tests := []struct {
		name string
		prev time.Duration
		r    float64
		want time.Duration
	}{
		{"r=0 first retry gives base", 0, 0, base},
		{"r=0 ignores prev", 5 * time.Second, 0, base},
		{"r=0.5 first retry", 0, 0.5, 200 * ms},                // 100 + 0.5*(300-100)
		{"r=0.5 grows from prev", time.Second, 0.5, 1550 * ms}, // 100 + 0.5*(3000-100)
		{"negative prev counts as base", -time.Second, 0.5, 200 * ms},
		{"capped at max", 8 * time.Second, 0.5, max}, // 100 + 0.5*(24000-100) > 10000
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := b(1, tt.prev, tt.r); got != tt.want {
				t.Errorf("Decorrelated(%v, %v)(prev %v, r %v) = %v, want %v", base, max, tt.prev, tt.r, got, tt.want)
			}
		})
	}

	// r close to 1 reaches just under 3*prev.
	for _, prev := range []time.Duration{0, 200 * ms, time.Second} {
		p := prev
		if p == 0 {
			p = base
		}
		got := b(2, prev, 0.999)
		want := base + time.Duration(0.999*float64(3*p-base))
		if got < base || got >= 3*p || (got-want).Abs() > time.Microsecond {
			t.Errorf("Decorrelated(prev %v, r 0.999) = %v, want about %v, in [%v, %v)", prev, got, want, base, 3*p)
		}
	}
}

func TestDecorrelatedSequenceStaysInBounds(t *testing.T) {
	base, max := 10*time.Millisecond, 2*time.Second
	b := Decorrelated(base, max)
	rng := rand.New(rand.NewPCG(1, 2))
	var prev time.Duration
	for n := 1; n <= 1000; n++ {
		d := b(n, prev, rng.Float64())
		hi := 3 * prev
		if prev == 0 {
			hi = 3 * base
		}
		if d < base || d > min(hi, max) {
			t.Fatalf("retry %d after %v: delay %v outside [%v, min(%v, %v)]", n, prev, d, base, hi, max)
		}
		prev = d
	}
}

func TestDecorrelatedDoesNotOverflow(t *testing.T) {
	b := Decorrelated(time.Second, math.MaxInt64)
	for _, r := range []float64{0, 0.5, 0.999999} {
		if got := b(1, math.MaxInt64, r); got < time.Second {
			t.Errorf("Decorrelated(1s, MaxInt64)(prev MaxInt64, r %v) = %v, want >= 1s", r, got)
		}
	}
}

func TestJitterValues(t *testing.T) {
	d := time.Second
	ms := time.Millisecond
	tests := []struct {
		name string
		j    Jitter
		d    time.Duration
		r    float64
		want time.Duration
	}{
		{"FullJitter r=0", FullJitter, d, 0, 0},
		{"FullJitter r=0.5", FullJitter, d, 0.5, 500 * ms},
		{"FullJitter zero d", FullJitter, 0, 0.5, 0},
		{"EqualJitter r=0", EqualJitter, d, 0, 500 * ms},
		{"EqualJitter r=0.5", EqualJitter, d, 0.5, 750 * ms},
		{"Proportional(0.2) r=0", Proportional(0.2), d, 0, 800 * ms},
		{"Proportional(0.2) r=0.5", Proportional(0.2), d, 0.5, d},
		{"Proportional(0.2) r=0.75", Proportional(0.2), d, 0.75, 1100 * ms},
		{"Proportional(0) leaves d", Proportional(0), d, 0.9, d},
		{"Proportional(1) r=0", Proportional(1), d, 0, 0},
		{"Proportional(1) saturates", Proportional(1), math.MaxInt64, 0.999, math.MaxInt64},
		{"Proportional(1) saturates below", Proportional(1), math.MinInt64, 0.999, math.MinInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.j(tt.d, tt.r); got != tt.want {
				t.Errorf("jitter(%v, %v) = %v, want %v", tt.d, tt.r, got, tt.want)
			}
		})
	}
}

func TestJitterDistributions(t *testing.T) {
	const draws = 10000
	d := time.Second
	tests := []struct {
		name     string
		j        Jitter
		lo, hi   time.Duration // every draw in [lo, hi]
		wantMean time.Duration
		tol      float64 // relative tolerance on the mean
	}{
		{"FullJitter", FullJitter, 0, d, d / 2, 0.03},
		{"EqualJitter", EqualJitter, d / 2, d, 3 * d / 4, 0.02},
		{"Proportional(0.25)", Proportional(0.25), 3 * d / 4, 5 * d / 4, d, 0.01},
		{"Proportional(1)", Proportional(1), 0, 2 * d, d, 0.03},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 11))
			var sum float64
			for range draws {
				got := tt.j(d, rng.Float64())
				if got < tt.lo || got > tt.hi {
					t.Fatalf("draw %v outside [%v, %v]", got, tt.lo, tt.hi)
				}
				sum += float64(got)
			}
			mean := sum / draws
			if rel := math.Abs(mean-float64(tt.wantMean)) / float64(tt.wantMean); rel > tt.tol {
				t.Errorf("mean of %d draws = %v, want %v within %.0f%%", draws, time.Duration(mean), tt.wantMean, tt.tol*100)
			}
		})
	}
}

func TestConstructorsPanicOnProgrammerErrors(t *testing.T) {
	tests := []struct {
		name string
		f    func()
		want string
	}{
		{"Constant negative", func() { Constant(-time.Second) }, "jobq: Constant: d must be >= 0, got -1s"},
		{"Exponential zero base", func() { Exponential(0, time.Second) }, "jobq: Exponential: base must be > 0"},
		{"Exponential negative base", func() { Exponential(-time.Second, time.Second) }, "jobq: Exponential: base must be > 0, got -1s"},
		{"Exponential max below base", func() { Exponential(2*time.Second, time.Second) }, "jobq: Exponential: max must be >= base"},
		{"Exponential negative max", func() { Exponential(time.Second, -time.Second) }, "jobq: Exponential: max must be >= base"},
		{"Decorrelated zero base", func() { Decorrelated(0, time.Second) }, "jobq: Decorrelated: base must be > 0"},
		{"Decorrelated max below base", func() { Decorrelated(2*time.Second, time.Second) }, "jobq: Decorrelated: max must be >= base"},
		{"Proportional NaN", func() { Proportional(math.NaN()) }, "jobq: Proportional: f must be in [0, 1], got NaN"},
		{"Proportional negative", func() { Proportional(-0.1) }, "jobq: Proportional: f must be in [0, 1], got -0.1"},
		{"Proportional above 1", func() { Proportional(1.5) }, "jobq: Proportional: f must be in [0, 1], got 1.5"},
		{"Proportional +Inf", func() { Proportional(math.Inf(1)) }, "jobq: Proportional: f must be in [0, 1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { mustPanic(t, tt.want, tt.f) })
	}
}

type codeError struct{ code int }

func (e *codeError) Error() string { return fmt.Sprintf("code %d", e.code) }

func TestPermanentAndRetryAfterWrap(t *testing.T) {
	if err := Permanent(nil); err != nil {
		t.Errorf("Permanent(nil) = %v, want nil", err)
	}
	if err := RetryAfter(time.Second, nil); err != nil {
		t.Errorf("RetryAfter(1s, nil) = %v, want nil", err)
	}

	base := &codeError{code: 42}
	wrappers := []struct {
		name string
		wrap func(error) error
	}{
		{"Permanent", Permanent},
		{"RetryAfter", func(err error) error { return RetryAfter(time.Second, err) }},
	}
	for _, w := range wrappers {
		t.Run(w.name, func(t *testing.T) {
			inner := w.wrap(base)
			if got := inner.Error(); got != "code 42" {
				t.Errorf("Error() = %q, want %q", got, "code 42")
			}
			outer := fmt.Errorf("fetch: %w", fmt.Errorf("attempt: %w", inner))
			if !errors.Is(outer, base) {
				t.Errorf("errors.Is(%v, base) = false, want true", outer)
			}
			var ce *codeError
			if !errors.As(outer, &ce) || ce.code != 42 {
				t.Errorf("errors.As(%v, *codeError) = %v, want code 42", outer, ce)
			}
			if got := errors.Unwrap(inner); got != base {
				t.Errorf("errors.Unwrap = %v, want base", got)
			}
			if got, want := outer.Error(), "fetch: attempt: code 42"; got != want {
				t.Errorf("wrapped message = %q, want %q", got, want)
			}
		})
	}
}

// policyView makes a Policy comparable: funcs are shown by name or by what
// they return.
type policyView struct {
	MaxAttempts         int
	Backoff             string
	Jitter              string
	Timeout, MaxElapsed time.Duration
	RetryIf, OnRetry    string
}

func funcName(f any) string {
	v := reflect.ValueOf(f)
	if v.IsNil() {
		return "nil"
	}
	name := runtime.FuncForPC(v.Pointer()).Name()
	return name[strings.LastIndex(name, ".")+1:]
}

func view(p Policy) policyView {
	v := policyView{
		MaxAttempts: p.MaxAttempts,
		Backoff:     "nil",
		Jitter:      "nil",
		Timeout:     p.Timeout,
		MaxElapsed:  p.MaxElapsed,
		RetryIf:     funcName(p.RetryIf),
		OnRetry:     funcName(p.OnRetry),
	}
	if p.Backoff != nil {
		var ds []string
		for n := 1; n <= 4; n++ {
			ds = append(ds, p.Backoff(n, 0, 0).String())
		}
		v.Backoff = strings.Join(ds, " ")
	}
	if p.Jitter != nil {
		v.Jitter = p.Jitter(time.Second, 0.5).String()
	}
	return v
}

func retryAll(error) bool                { return true }
func retryNone(error) bool               { return false }
func observeA(int, error, time.Duration) {}
func observeB(int, error, time.Duration) {}
func TestDefaultPolicyIsTheLibraryDefault(t *testing.T) {
	want := policyView{MaxAttempts: 1, Backoff: "100ms 200ms 400ms 800ms", Jitter: "nil", RetryIf: "nil", OnRetry: "nil"}
	if diff := cmp.Diff(want, view(defaultPolicy)); diff != "" {
		t.Errorf("defaultPolicy (-want +got):\n%s", diff)
	}
	if got := defaultPolicy.Backoff(100, 0, 0); got != 30*time.Second {
		t.Errorf("defaultPolicy.Backoff(100) = %v, want 30s", got)
	}
}

func TestMergeTakesZeroFieldsFromDefault(t *testing.T) {
	def := Policy{
		MaxAttempts: 5,
		Backoff:     Constant(time.Second),
		Jitter:      FullJitter,
		Timeout:     3 * time.Second,
		MaxElapsed:  time.Minute,
		RetryIf:     retryAll,
		OnRetry:     observeA,
	}
	tests := []struct {
		name string
		p    Policy
		def  Policy
		want policyView
	}{
		{"zero policy takes everything", Policy{}, def,
			policyView{5, "1s 1s 1s 1s", "500ms", 3 * time.Second, time.Minute, "retryAll", "observeA"}},
		{"set fields win", Policy{
			MaxAttempts: 2,
			Backoff:     Constant(time.Millisecond),
			Jitter:      EqualJitter,
			Timeout:     time.Millisecond,
			MaxElapsed:  time.Hour,
			RetryIf:     retryNone,
			OnRetry:     observeB,
		}, def,
			policyView{2, "1ms 1ms 1ms 1ms", "750ms", time.Millisecond, time.Hour, "retryNone", "observeB"}},
		{"some fields set", Policy{MaxAttempts: 1, Timeout: time.Millisecond}, def,
			policyView{1, "1s 1s 1s 1s", "500ms", time.Millisecond, time.Minute, "retryAll", "observeA"}},
		{"chained onto the library default", Policy{MaxAttempts: 3}.merge(Policy{Timeout: time.Second}), defaultPolicy,
			policyView{3, "100ms 200ms 400ms 800ms", "nil", time.Second, 0, "nil", "nil"}},
		{"zero default leaves zero fields", Policy{MaxAttempts: 4}, Policy{},
			policyView{4, "nil", "nil", 0, 0, "nil", "nil"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, view(tt.p.merge(tt.def))); diff != "" {
				t.Errorf("merge (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateRejectsNegativeFields(t *testing.T) {
	tests := []struct {
		name  string
		p     Policy
		field string // "" when valid
	}{
		{"zero", Policy{}, ""},
		{"library default", defaultPolicy, ""},
		{"all set", Policy{MaxAttempts: 3, Timeout: time.Second, MaxElapsed: time.Minute}, ""},
		{"negative MaxAttempts", Policy{MaxAttempts: -1}, "MaxAttempts"},
		{"negative Timeout", Policy{Timeout: -time.Second}, "Timeout"},
		{"negative MaxElapsed", Policy{MaxElapsed: -time.Second}, "MaxElapsed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("validate() = %v, want an error wrapping ErrInvalidPolicy", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("validate() = %q, want it to name %s", err, tt.field)
			}
		})
	}
}

func TestRetryDecisions(t *testing.T) {
	ms := time.Millisecond
	errBoom := errors.New("boom")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	live := context.Background()
	panicErr := &PanicError{Value: "oops"}
	three := Policy{MaxAttempts: 3}.merge(defaultPolicy) // Exponential(100ms, 30s)

	tests := []struct {
		name      string
		p         Policy
		ctx       context.Context
		attempt   int
		err       error
		prev      time.Duration
		elapsed   time.Duration
		rnd       func() float64
		wantDelay time.Duration
		wantOK    bool
	}{
		// MaxAttempts
		{name: "library default does not retry", p: defaultPolicy, attempt: 1, err: errBoom},
		{name: "first retry", p: three, attempt: 1, err: errBoom, wantDelay: 100 * ms, wantOK: true},
		{name: "second retry", p: three, attempt: 2, err: errBoom, prev: 100 * ms, wantDelay: 200 * ms, wantOK: true},
		{name: "attempts used up", p: three, attempt: 3, err: errBoom},
		{name: "past the limit", p: three, attempt: 7, err: errBoom},
		{name: "below the cap on attempts", p: Policy{MaxAttempts: math.MaxInt, Backoff: Constant(ms)}, attempt: 1<<29 - 2, err: errBoom, wantDelay: ms, wantOK: true},
		// The attempt count lives in 30 bits of Result.state: past the
		// cap, attempt numbers would wrap and name the wrong attempt.
		{name: "the cap on attempts beats MaxAttempts", p: Policy{MaxAttempts: math.MaxInt, Backoff: Constant(ms)}, attempt: 1<<29 - 1, err: errBoom},
		{name: "unmerged zero MaxAttempts does not retry", p: Policy{}, attempt: 1, err: errBoom},
		{name: "unmerged nil Backoff uses the library default", p: Policy{MaxAttempts: 2}, attempt: 1, err: errBoom, wantDelay: 100 * ms, wantOK: true},
		{name: "nil error is not retried", p: three, attempt: 1, err: nil},

		// Permanent
		{name: "Permanent", p: three, attempt: 1, err: Permanent(errBoom)},
		{name: "wrapped Permanent", p: three, attempt: 1, err: fmt.Errorf("op: %w", Permanent(errBoom))},
		{name: "Permanent despite RetryIf", p: Policy{MaxAttempts: 3, RetryIf: retryAll}, attempt: 1, err: Permanent(errBoom)},
		{name: "Permanent beats RetryAfter", p: three, attempt: 1, err: RetryAfter(ms, Permanent(errBoom))},

		// *PanicError
		{name: "panic", p: three, attempt: 1, err: panicErr},
		{name: "wrapped panic", p: three, attempt: 1, err: fmt.Errorf("handler: %w", panicErr)},
		{name: "panic with a Permanent value", p: Policy{MaxAttempts: 3, RetryIf: retryAll}, attempt: 1, err: &PanicError{Value: Permanent(errBoom)}},
		{name: "panic retried when RetryIf says so", p: Policy{MaxAttempts: 3, Backoff: Constant(ms), RetryIf: retryAll}, attempt: 1, err: panicErr, wantDelay: ms, wantOK: true},

		// submission ctx
		{name: "own cancellation", p: three, ctx: canceled, attempt: 1, err: context.Canceled},
		{name: "own cancellation wrapped", p: three, ctx: canceled, attempt: 1, err: fmt.Errorf("get: %w", context.Canceled)},
		{name: "done ctx, other error", p: three, ctx: canceled, attempt: 1, err: errBoom},
		{name: "done ctx despite RetryIf", p: Policy{MaxAttempts: 3, RetryIf: retryAll}, ctx: canceled, attempt: 1, err: context.Canceled},
		{name: "someone else's cancellation is retried", p: three, ctx: live, attempt: 1, err: context.Canceled, wantDelay: 100 * ms, wantOK: true},
		{name: "attempt timeout is retried", p: three, ctx: live, attempt: 1, err: context.DeadlineExceeded, wantDelay: 100 * ms, wantOK: true},
		{name: "nil ctx counts as live", p: three, attempt: 1, err: errBoom, wantDelay: 100 * ms, wantOK: true},

		// RetryIf
		{name: "RetryIf false", p: Policy{MaxAttempts: 3, RetryIf: retryNone}, attempt: 1, err: errBoom},
		{name: "RetryIf selects by error", p: Policy{MaxAttempts: 3, Backoff: Constant(ms), RetryIf: func(err error) bool { return errors.Is(err, errBoom) }},
			attempt: 1, err: fmt.Errorf("x: %w", errBoom), wantDelay: ms, wantOK: true},
		{name: "RetryIf rejects others", p: Policy{MaxAttempts: 3, Backoff: Constant(ms), RetryIf: func(err error) bool { return errors.Is(err, errBoom) }},
			attempt: 1, err: errors.New("other")},

		// MaxElapsed
		{name: "delay ends exactly at MaxElapsed", p: Policy{MaxAttempts: 3, Backoff: Constant(100 * ms), MaxElapsed: time.Second},
			attempt: 1, err: errBoom, elapsed: 900 * ms, wantDelay: 100 * ms, wantOK: true},
		{name: "delay would end past MaxElapsed", p: Policy{MaxAttempts: 3, Backoff: Constant(100 * ms), MaxElapsed: time.Second},
			attempt: 1, err: errBoom, elapsed: 900*ms + 1},
		{name: "already past MaxElapsed", p: Policy{MaxAttempts: 3, Backoff: Constant(0), MaxElapsed: time.Second},
			attempt: 1, err: errBoom, elapsed: 2 * time.Second},
		{name: "jittered delay counts against MaxElapsed", p: Policy{MaxAttempts: 3, Backoff: Constant(time.Second), Jitter: FullJitter, MaxElapsed: time.Second},
			attempt: 1, err: errBoom, elapsed: 400 * ms, rnd: seq(0.5, 0.5), wantDelay: 500 * ms, wantOK: true},
		{name: "huge delay does not overflow the check", p: Policy{MaxAttempts: 3, Backoff: Constant(math.MaxInt64), MaxElapsed: time.Second},
			attempt: 1, err: errBoom, elapsed: 500 * ms},

		// delay
		{name: "RetryAfter sets the delay without jitter", p: Policy{MaxAttempts: 3, Backoff: Constant(ms), Jitter: FullJitter},
			attempt: 1, err: RetryAfter(5*time.Second, errBoom), wantDelay: 5 * time.Second, wantOK: true},
		{name: "wrapped RetryAfter", p: three, attempt: 2, err: fmt.Errorf("http: %w", RetryAfter(1234*ms, errBoom)), prev: 100 * ms, wantDelay: 1234 * ms, wantOK: true},
		{name: "outermost RetryAfter wins", p: three, attempt: 1, err: RetryAfter(time.Second, RetryAfter(time.Minute, errBoom)), wantDelay: time.Second, wantOK: true},
		{name: "negative RetryAfter is 0", p: three, attempt: 1, err: RetryAfter(-time.Second, errBoom), wantDelay: 0, wantOK: true},
		{name: "RetryAfter does not lift MaxAttempts", p: three, attempt: 3, err: RetryAfter(ms, errBoom)},
		{name: "RetryAfter past MaxElapsed", p: Policy{MaxAttempts: 3, MaxElapsed: time.Second},
			attempt: 1, err: RetryAfter(2*time.Second, errBoom)},
		{name: "Backoff sees attempt, prev and the first random number; Jitter the second",
			p:       Policy{MaxAttempts: 5, Backoff: Decorrelated(100*ms, 10*time.Second), Jitter: FullJitter},
			attempt: 2, err: errBoom, prev: time.Second, rnd: seq(0.25, 0.75),
			wantDelay: 618750 * time.Microsecond, wantOK: true}, // (100 + 0.25*2900)ms * 0.75
		{name: "negative delay is clamped to 0",
			p:       Policy{MaxAttempts: 2, Backoff: Constant(ms), Jitter: func(d time.Duration, _ float64) time.Duration { return -d }},
			attempt: 1, err: errBoom, wantDelay: 0, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd := tt.rnd
			if rnd == nil {
				rnd = seq(0.5)
			}
			delay, ok := tt.p.retry(tt.ctx, tt.attempt, tt.err, tt.prev, tt.elapsed, rnd)
			type decision struct {
				Delay time.Duration
				OK    bool
			}
			if diff := cmp.Diff(decision{tt.wantDelay, tt.wantOK}, decision{delay, ok}); diff != "" {
				t.Errorf("retry(attempt %d, %v) (-want +got):\n%s", tt.attempt, tt.err, diff)
			}
		})
	}
}

func TestRetryWithNilRandUsesTheGlobalSource(t *testing.T) {
	p := Policy{MaxAttempts: 2, Backoff: Constant(time.Second), Jitter: FullJitter}
	for range 100 {
		delay, ok := p.retry(context.Background(), 1, errors.New("boom"), 0, 0, nil)
		if !ok || delay < 0 || delay >= time.Second {
			t.Fatalf("retry with nil rnd = %v, %v; want a delay in [0, 1s), true", delay, ok)
		}
	}
}

func TestRetryDoesNotCallOnRetry(t *testing.T) {
	called := false
	p := Policy{MaxAttempts: 2, Backoff: Constant(time.Millisecond), OnRetry: func(int, error, time.Duration) { called = true }}
	if _, ok := p.retry(context.Background(), 1, errors.New("boom"), 0, 0, seq(0.5)); !ok {
		t.Fatal("retry refused, want a retry")
	}
	if called {
		t.Error("retry called OnRetry; the engine calls it, once, before the wait")
	}
}
