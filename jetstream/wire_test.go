package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/seed-bb9ff1e7/jobq"
)

// roundTrip sends err through the wire form, as a result does.
func roundTrip(t *testing.T, err error) error {
	t.Helper()
	b, e := json.Marshal(toWire(err, true))
	if e != nil {
		t.Fatal(e)
	}
	var w wireErr
	if e := json.Unmarshal(b, &w); e != nil {
		t.Fatal(e)
	}
	return w.err()
}

func TestErrorsSurviveTheTripAsJobqTypes(t *testing.T) {
	plain := errors.New("plain")
	cases := []struct {
		name  string
		err   error
		check func(error) bool
	}{
		{"message", plain, func(e error) bool { return e.Error() == "plain" }},
		{"deadline", fmt.Errorf("attempt: %w", context.DeadlineExceeded), func(e error) bool {
			return errors.Is(e, context.DeadlineExceeded) && e.Error() == "attempt: context deadline exceeded"
		}},
		{"canceled", context.Canceled, func(e error) bool { return errors.Is(e, context.Canceled) }},
		{"closed", jobq.ErrClosed, func(e error) bool { return errors.Is(e, jobq.ErrClosed) }},
		{"codec", fmt.Errorf("%w: decode input: x", ErrCodec), func(e error) bool { return errors.Is(e, ErrCodec) }},
		{"permanent", fmt.Errorf("wrapped: %w", jobq.Permanent(plain)), func(e error) bool {
			return isPermanent(e) && e.Error() == "wrapped: plain"
		}},
		{"panic", &jobq.PanicError{Value: 42, Stack: []byte("goroutine 1")}, func(e error) bool {
			var pe *jobq.PanicError
			return errors.As(e, &pe) && pe.Value == "42" && string(pe.Stack) == "goroutine 1"
		}},
		{"exhausted", &jobq.ExhaustedError{Attempts: 2, Errs: []error{ErrLeaseExpired, context.DeadlineExceeded}}, func(e error) bool {
			var ee *jobq.ExhaustedError
			return errors.As(e, &ee) && ee.Attempts == 2 && len(ee.Errs) == 2 &&
				errors.Is(e, ErrLeaseExpired) && errors.Is(e, context.DeadlineExceeded)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := roundTrip(t, c.err); !c.check(got) {
				t.Errorf("%v (%T) came back as %v (%T)", c.err, c.err, got, got)
			}
		})
	}
}

func TestRetryAfterAndPermanentAreFoundInTheChain(t *testing.T) {
	base := errors.New("x")
	if d, ok := retryAfter(fmt.Errorf("outer: %w", jobq.RetryAfter(3*time.Second, base))); !ok || d != 3*time.Second {
		t.Errorf("retryAfter: %v, %v", d, ok)
	}
	if _, ok := retryAfter(base); ok {
		t.Error("retryAfter found in a plain error")
	}
	if !isPermanent(errors.Join(base, jobq.Permanent(base))) || isPermanent(base) {
		t.Error("isPermanent")
	}
}

func TestPolicyTravelsInHeaders(t *testing.T) {
	h := nats.Header{}
	pol := jobq.Policy{MaxAttempts: 4, Backoff: jobq.Exponential(10*time.Millisecond, time.Second), Timeout: time.Second, MaxElapsed: time.Minute}
	if err := policyHeader(h, []jobq.Policy{pol}); err != nil {
		t.Fatal(err)
	}
	h.Set(hdrID, "job")
	j, err := parseJobHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}
	if j.maxAttempts != 4 || j.timeout != time.Second || j.maxElapsed != time.Minute || fmt.Sprint(j.delays) != fmt.Sprint(want) {
		t.Errorf("parsed %+v, want delays %v", j, want)
	}
	if err := policyHeader(nats.Header{}, []jobq.Policy{{}, {}}); !errors.Is(err, jobq.ErrInvalidPolicy) {
		t.Errorf("two policies: %v", err)
	}
	bad := nats.Header{}
	bad.Set(hdrID, "job")
	bad.Set(hdrRuns, "-3")
	if _, err := parseJobHeader(bad); err == nil {
		t.Error("negative runs accepted")
	}
}
