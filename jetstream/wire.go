package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/seed-bb9ff1e7/jobq"
)

// Headers a job message carries. The policy travels with the job; the
// attempt record (runs, failures, errors, first start) is rewritten on
// each retry's new message.
const (
	hdrID          = "Jobq-Id"
	hdrClient      = "Jobq-Client"       // the submitter to send the result to; absent for Go
	hdrMaxAttempts = "Jobq-Max-Attempts" // Policy.MaxAttempts
	hdrBackoff     = "Jobq-Backoff"      // the retry delays, computed at submission
	hdrTimeout     = "Jobq-Timeout"      // Policy.Timeout
	hdrMaxElapsed  = "Jobq-Max-Elapsed"  // Policy.MaxElapsed
	hdrRuns        = "Jobq-Runs"         // runs before this message's deliveries
	hdrFails       = "Jobq-Fails"        // failed attempts before this message
	hdrErrors      = "Jobq-Errors"       // their errors, a JSON list of wireErr
	hdrStart       = "Jobq-Start"        // the first run's start, Unix nanoseconds
	hdrPrev        = "Jobq-Prev"         // the last retry delay
	hdrStatus      = "Jobq-Status"       // on a result: ok or err
	hdrAttempts    = "Jobq-Attempts"     // on a result or dead letter: runs made
)

// ErrUnsupportedPolicy is wrapped by the error of a submission whose Policy
// sets RetryIf or OnRetry: functions cannot travel with a job. Set them on
// the worker's Policy (see Queue.Serve) instead.
var ErrUnsupportedPolicy = errors.New("jetstream: RetryIf and OnRetry cannot travel with a job; set them in the worker's policy")

// ErrLeaseExpired stands, in an ExhaustedError's Errs, for a run that never
// reported: the worker holding the job crashed, stalled or lost its
// connection for longer than the lease, and the job was delivered again.
var ErrLeaseExpired = errors.New("jetstream: lease expired before the run reported (worker crashed or stalled)")

// maxTravelDelays bounds the retry delays computed at submission; later
// retries reuse the last one.
const maxTravelDelays = 32

// policyHeader validates pol, at most one, and writes its travelling fields
// into h.
func policyHeader(h nats.Header, pol []jobq.Policy) error {
	switch len(pol) {
	case 0:
		return nil
	case 1:
	default:
		return fmt.Errorf("%w: %d policies given, want at most 1", jobq.ErrInvalidPolicy, len(pol))
	}
	p := pol[0]
	switch {
	case p.RetryIf != nil || p.OnRetry != nil:
		return ErrUnsupportedPolicy
	case p.MaxAttempts < 0:
		return fmt.Errorf("%w: MaxAttempts must be >= 0, got %d", jobq.ErrInvalidPolicy, p.MaxAttempts)
	case p.Timeout < 0:
		return fmt.Errorf("%w: Timeout must be >= 0, got %v", jobq.ErrInvalidPolicy, p.Timeout)
	case p.MaxElapsed < 0:
		return fmt.Errorf("%w: MaxElapsed must be >= 0, got %v", jobq.ErrInvalidPolicy, p.MaxElapsed)
	}
	if p.MaxAttempts > 0 {
		h.Set(hdrMaxAttempts, strconv.Itoa(p.MaxAttempts))
	}
	if p.Timeout > 0 {
		h.Set(hdrTimeout, strconv.FormatInt(int64(p.Timeout), 10))
	}
	if p.MaxElapsed > 0 {
		h.Set(hdrMaxElapsed, strconv.FormatInt(int64(p.MaxElapsed), 10))
	}
	if p.Backoff != nil || p.Jitter != nil {
		// The functions stay here; their delays travel.
		b := p.Backoff
		if b == nil {
			b = jobq.Exponential(100*time.Millisecond, 30*time.Second)
		}
		n := maxTravelDelays
		if p.MaxAttempts > 0 {
			n = min(p.MaxAttempts-1, maxTravelDelays)
		}
		var sb strings.Builder
		var prev time.Duration
		for i := 1; i <= n; i++ {
			d := b(i, prev, rand.Float64())
			if p.Jitter != nil {
				d = p.Jitter(d, rand.Float64())
			}
			d = max(d, 0)
			prev = d
			if i > 1 {
				sb.WriteByte(',')
			}
			sb.WriteString(strconv.FormatInt(int64(d), 10))
		}
		if n > 0 {
			h.Set(hdrBackoff, sb.String())
		}
	}
	return nil
}

// jobHeader is a job message's headers, parsed.
type jobHeader struct {
	id, client  string
	maxAttempts int
	delays      []time.Duration
	timeout     time.Duration
	maxElapsed  time.Duration
	runs, fails int
	errs        []wireErr
	start       time.Time
	prev        time.Duration
}

func parseJobHeader(h nats.Header) (j jobHeader, err error) {
	num := func(key string) int64 {
		s := h.Get(key)
		if s == "" || err != nil {
			return 0
		}
		v, e := strconv.ParseInt(s, 10, 64)
		if e != nil || v < 0 {
			err = fmt.Errorf("jetstream: bad header %s: %q", key, s)
		}
		return v
	}
	j.id = h.Get(hdrID)
	j.client = h.Get(hdrClient)
	j.maxAttempts = int(num(hdrMaxAttempts))
	j.timeout = time.Duration(num(hdrTimeout))
	j.maxElapsed = time.Duration(num(hdrMaxElapsed))
	j.runs = int(num(hdrRuns))
	j.fails = int(num(hdrFails))
	j.prev = time.Duration(num(hdrPrev))
	if s := num(hdrStart); s > 0 {
		j.start = time.Unix(0, s)
	}
	if s := h.Get(hdrBackoff); s != "" && err == nil {
		for _, f := range strings.Split(s, ",") {
			v, e := strconv.ParseInt(f, 10, 64)
			if e != nil {
				return j, fmt.Errorf("jetstream: bad header %s: %q", hdrBackoff, s)
			}
			j.delays = append(j.delays, time.Duration(v))
		}
	}
	if s := h.Get(hdrErrors); s != "" && err == nil {
		if e := json.Unmarshal([]byte(s), &j.errs); e != nil {
			return j, fmt.Errorf("jetstream: bad header %s: %v", hdrErrors, e)
		}
	}
	if j.id == "" && err == nil {
		err = fmt.Errorf("jetstream: message without a %s header", hdrID)
	}
	return j, err
}

// wireErr is an error as it travels between processes.
type wireErr struct {
	Msg       string    `json:"m"`
	Kind      string    `json:"k,omitempty"` // "", "panic" or "exhausted"
	Permanent bool      `json:"p,omitempty"`
	Is        []string  `json:"is,omitempty"` // the sentinels it matched, by name
	Stack     string    `json:"s,omitempty"`
	Attempts  int       `json:"a,omitempty"`
	Errs      []wireErr `json:"e,omitempty"`
}

// sentinels are the errors that survive the trip by identity.
var sentinels = []struct {
	name string
	err  error
}{
	{"deadline", context.DeadlineExceeded},
	{"canceled", context.Canceled},
	{"closed", jobq.ErrClosed},
	{"codec", ErrCodec},
	{"lease", ErrLeaseExpired},
}

const maxErrMsg, maxStack = 2048, 8192

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// toWire describes err; stack says whether a panic's stack goes along.
func toWire(err error, stack bool) wireErr {
	var pe *jobq.PanicError
	var ee *jobq.ExhaustedError
	switch {
	case errors.As(err, &ee):
		w := wireErr{Msg: truncate(err.Error(), maxErrMsg), Kind: "exhausted", Attempts: ee.Attempts}
		for _, e := range ee.Errs {
			w.Errs = append(w.Errs, toWire(e, false))
		}
		return w
	case errors.As(err, &pe):
		w := wireErr{Msg: truncate(fmt.Sprint(pe.Value), maxErrMsg), Kind: "panic"}
		if stack {
			w.Stack = truncate(string(pe.Stack), maxStack)
		}
		return w
	}
	w := wireErr{Msg: truncate(err.Error(), maxErrMsg), Permanent: isPermanent(err)}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			w.Is = append(w.Is, s.name)
		}
	}
	return w
}

// err rebuilds the error as jobq's types.
func (w wireErr) err() error {
	switch w.Kind {
	case "exhausted":
		ee := &jobq.ExhaustedError{Attempts: w.Attempts}
		for _, e := range w.Errs {
			ee.Errs = append(ee.Errs, e.err())
		}
		return ee
	case "panic":
		return &jobq.PanicError{Value: w.Msg, Stack: []byte(w.Stack)}
	}
	re := &RemoteError{Msg: w.Msg}
	for _, name := range w.Is {
		for _, s := range sentinels {
			if s.name == name {
				re.is = append(re.is, s.err)
			}
		}
	}
	if w.Permanent {
		return jobq.Permanent(re)
	}
	return re
}

// RemoteError is a handler's error rebuilt in another process: its message,
// and the identity of the sentinels it matched where it was made
// (context.DeadlineExceeded, context.Canceled, jobq.ErrClosed, ErrCodec,
// ErrLeaseExpired), so errors.Is still matches them. Other identities, and
// the error's type, do not survive the trip; a Permanent error comes back
// wrapped by jobq.Permanent, a panic as *jobq.PanicError with the value's
// text and stack, an exhausted job as *jobq.ExhaustedError.
type RemoteError struct {
	Msg string
	is  []error
}

// Error returns the original error's message.
func (e *RemoteError) Error() string { return e.Msg }

// Unwrap returns the sentinels the original error matched.
func (e *RemoteError) Unwrap() []error { return e.is }

// permType and retryAfterType are the dynamic types behind jobq.Permanent
// and jobq.RetryAfter, which jobq does not export: the worker finds them in
// an error's chain by type.
var (
	permType       = reflect.TypeOf(jobq.Permanent(errors.New("")))
	retryAfterType = reflect.TypeOf(jobq.RetryAfter(0, errors.New("")))
)

// findType returns the first error in err's tree whose type is t.
func findType(err error, t reflect.Type) error {
	for err != nil {
		if reflect.TypeOf(err) == t {
			return err
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if f := findType(e, t); f != nil {
					return f
				}
			}
			return nil
		default:
			return nil
		}
	}
	return nil
}

func isPermanent(err error) bool { return findType(err, permType) != nil }

// retryAfter returns the delay of the outermost jobq.RetryAfter in err's
// chain, read from its only duration field.
func retryAfter(err error) (time.Duration, bool) {
	e := findType(err, retryAfterType)
	if e == nil {
		return 0, false
	}
	v := reflect.ValueOf(e).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Type() == reflect.TypeOf(time.Duration(0)) {
			return time.Duration(f.Int()), true
		}
	}
	return 0, false
}

func encodeErrs(errs []wireErr) string {
	b, _ := json.Marshal(errs)
	return string(b)
}
