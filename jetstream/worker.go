package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/seed-bb9ff1e7/jobq"
)

// shortDelay is the longest retry delay a worker waits out itself, holding
// the job's message; longer delays ack the message and republish the job
// as a message the server schedules, so a long backoff holds no slot of
// MaxAckPending (the server fires schedules at a granularity of 250 ms).
const shortDelay = time.Second

// consumerName is the durable consumer all workers of a queue share.
const consumerName = "workers"

// Worker serves a Queue's jobs in this process: a number of goroutines
// running a handler. Every process that calls Serve on the same queue
// shares the work; each job goes to one worker at a time.
type Worker[In, Out any] struct {
	q    *Queue[In, Out]
	h    jobq.Handler[In, Out]
	def  jobq.Policy
	n    int
	cons jetstream.Consumer
	csub *nats.Subscription

	// The fetcher pulls at most prefetch messages ahead: one credit per
	// message that is fetched and not yet taken by a worker goroutine.
	buf      chan jetstream.Msg
	credits  chan struct{}
	fetchFor time.Duration // a pull request's expiry
	fetched  chan struct{} // closed when the fetcher has stopped
	stopCh   chan struct{} // closed when Shutdown starts
	drained  chan struct{} // closed when every held job has been handed on
	base     context.Context
	giveUp   context.CancelFunc
	loops    sync.WaitGroup // the worker goroutines
	timers   sync.WaitGroup // short retry delays' timers
	once     sync.Once

	mu       sync.Mutex
	held     map[*hold]struct{}   // messages held: running, or waiting out a short retry delay
	byID     map[string]*hold     // the running ones, for Cancel
	canceled map[string]time.Time // jobs cancelled lately, so they never start here
	back     []jetstream.Msg      // fetched after Shutdown started: handed back once no pull request is open

	taken, succeeded, failed, canceledN, retried, handedBack atomic.Uint64
	running                                                  atomic.Int64
}

// hold is one message a worker holds.
type hold struct {
	m         jetstream.Msg
	id        string
	beat      time.Time          // the last heartbeat, or the delivery
	cancel    context.CancelFunc // the running handler's, nil while none runs
	timer     *time.Timer        // a short retry delay's
	retry     func()             // what the timer runs; Shutdown runs it early
	canceled  bool               // Cancel reached it
	abandoned bool               // Shutdown gave up on it and handed it back
}

// Serve starts workers goroutines in this process that run h on the queue's
// jobs, and returns once they are consuming. pol, at most one, is the
// workers' policy: a job's travelling policy overrides it field by field,
// and its zero fields take jobq's defaults (one attempt; see jobq.Policy).
// RetryIf and OnRetry are honoured here only.
//
// A handler's ctx carries the job's ID (JobID) and run number (Attempt),
// the attempt's deadline (Timeout, MaxElapsed), and cancellation by Cancel
// or by Shutdown giving up. While a handler runs, the worker extends the
// job's lease with heartbeats, however long it takes: a handler that never
// returns holds its job until the process dies; bound it with a Timeout.
//
// It returns the server's error when the consumer cannot be created. It
// panics if workers < 1, h is nil, or pol is invalid.
//
// Cost: per job, a delivery, a result publish awaited, and an ack; a
// heartbeat per Lease/4 of handler time.
func (q *Queue[In, Out]) Serve(workers int, h jobq.Handler[In, Out], pol ...jobq.Policy) (*Worker[In, Out], error) {
	if workers < 1 {
		panic("jetstream: Serve: workers must be >= 1")
	}
	if h == nil {
		panic("jetstream: Serve: handler h must not be nil")
	}
	if len(pol) > 1 {
		panic("jetstream: Serve: pol: at most one policy")
	}
	var def jobq.Policy
	if len(pol) == 1 {
		def = pol[0]
		if def.MaxAttempts < 0 || def.Timeout < 0 || def.MaxElapsed < 0 {
			panic("jetstream: Serve: pol: MaxAttempts, Timeout and MaxElapsed must be >= 0")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), q.cfg.PublishTimeout)
	defer cancel()
	cons, err := q.js.CreateOrUpdateConsumer(ctx, q.jobs.CachedInfo().Config.Name, jetstream.ConsumerConfig{
		Durable:       consumerName,
		FilterSubject: q.subj.jobs,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.cfg.Lease,
		MaxDeliver:    -1, // the worker counts deliveries itself (MaxDeliver) and dead-letters
		MaxAckPending: q.cfg.MaxAckPending,
	})
	if err != nil {
		return nil, fmt.Errorf("jetstream: consumer: %w", err)
	}
	// A small prefetch: what a worker fetched and did not start waits
	// for it with its lease running.
	prefetch := max(2*workers, 16)
	w := &Worker[In, Out]{
		q: q, h: h, def: def, n: workers, cons: cons,
		buf:      make(chan jetstream.Msg, prefetch),
		credits:  make(chan struct{}, prefetch),
		fetchFor: min(max(q.cfg.Lease/2, 50*time.Millisecond), 250*time.Millisecond),
		fetched:  make(chan struct{}),
		stopCh:   make(chan struct{}),
		drained:  make(chan struct{}),
		held:     make(map[*hold]struct{}),
		byID:     make(map[string]*hold),
		canceled: make(map[string]time.Time),
	}
	w.base, w.giveUp = context.WithCancel(context.Background())
	if w.csub, err = q.nc.Subscribe(q.subj.cancel+"*", w.onCancel); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	for range prefetch {
		w.credits <- struct{}{}
	}
	go w.fetch()
	w.loops.Add(workers)
	for range workers {
		go w.loop()
	}
	go w.heartbeat()
	return w, nil
}

// fetch pulls messages into buf as credits allow, until Shutdown. Each
// pull request expires after fetchFor, and the server's word that it has
// ended closes its batch: once fetch returns, nothing more is on its way to
// this worker, so what it hands back cannot come back to it.
func (w *Worker[In, Out]) fetch() {
	defer close(w.fetched)
	for {
		select {
		case <-w.stopCh:
			return
		default:
		}
		select {
		case <-w.credits:
		case <-w.stopCh:
			return
		}
		n := 1
	more:
		for n < cap(w.credits) {
			select {
			case <-w.credits:
				n++
			default:
				break more
			}
		}
		batch, err := w.cons.Fetch(n, jetstream.FetchMaxWait(w.fetchFor))
		got := 0
		if err == nil {
			for m := range batch.Messages() {
				got++
				select {
				case <-w.stopCh:
					w.keep(m)
				default:
					w.buf <- m // never blocks: a credit was taken for it
				}
			}
			err = batch.Error()
		}
		for range n - got {
			w.credits <- struct{}{}
		}
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			// Disconnected, or the server is restarting: wait a
			// little before asking again.
			select {
			case <-time.After(w.fetchFor):
			case <-w.stopCh:
				return
			}
		}
	}
}

// keep sets aside a message fetched after Shutdown started.
func (w *Worker[In, Out]) keep(m jetstream.Msg) {
	w.mu.Lock()
	w.back = append(w.back, m)
	w.mu.Unlock()
}

func (w *Worker[In, Out]) loop() {
	defer w.loops.Done()
	for {
		select {
		case m := <-w.buf:
			w.credits <- struct{}{}
			select {
			case <-w.stopCh:
				w.keep(m)
			default:
				w.process(m)
			}
		case <-w.stopCh:
			return
		}
	}
}

// onCancel records a cancelled job and cancels its handler if it runs here.
func (w *Worker[In, Out]) onCancel(m *nats.Msg) {
	id := m.Subject[len(w.q.subj.cancel):]
	w.mu.Lock()
	w.canceled[id] = time.Now()
	h := w.byID[id]
	var dropped bool
	if h != nil {
		h.canceled = true
		if h.cancel != nil {
			h.cancel()
		}
		// Waiting out a short retry delay: the retry never happens.
		if h.retry != nil && h.timer.Stop() {
			h.retry = nil
			dropped = true
		}
	}
	w.mu.Unlock()
	if dropped {
		h.m.Ack()
		w.canceledN.Add(1)
		w.release(h)
		w.timers.Done() // the stopped timer's
	}
}

// heartbeat extends the lease of every message held for a while, and
// forgets old cancellations.
func (w *Worker[In, Out]) heartbeat() {
	every := max(w.q.cfg.Lease/4, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.drained:
			return
		case now := <-t.C:
			w.mu.Lock()
			for h := range w.held {
				if now.Sub(h.beat) >= every && !h.abandoned {
					h.beat = now
					h.m.InProgress()
				}
			}
			for id, at := range w.canceled {
				if now.Sub(at) > 10*time.Minute+4*w.q.cfg.Lease {
					delete(w.canceled, id)
				}
			}
			w.mu.Unlock()
		}
	}
}

// process runs one delivery of a job.
func (w *Worker[In, Out]) process(m jetstream.Msg) {
	w.taken.Add(1)
	md, err := m.Metadata()
	if err != nil {
		m.Term() // not a JetStream message
		return
	}
	j, herr := parseJobHeader(m.Headers())
	if j.id == "" || !keyRE.MatchString(j.id) {
		// Not published by a Queue: dead-lettered under its sequence.
		j.id = "seq-" + strconv.FormatUint(md.Sequence.Stream, 10)
		j.client = ""
	}
	h := &hold{m: m, id: j.id, beat: time.Now()}
	w.mu.Lock()
	if _, ok := w.canceled[j.id]; ok && herr == nil {
		w.mu.Unlock()
		m.Ack()
		w.canceledN.Add(1)
		return
	}
	w.held[h] = struct{}{}
	w.byID[j.id] = h
	w.mu.Unlock()
	release := true
	defer func() {
		if release {
			w.release(h)
		}
	}()
	if herr != nil {
		w.fail(h, j, m, 1, jobq.Permanent(herr))
		return
	}

	dc := int(md.NumDelivered)
	k := j.runs + dc // this run's number
	errs := j.errs
	for range dc - 1 {
		errs = append(errs, toWire(ErrLeaseExpired, false))
	}
	j.errs = errs
	if dc > w.q.cfg.MaxDeliver {
		w.fail(h, j, m, k-1, &jobq.ExhaustedError{Attempts: k - 1, Errs: rebuild(errs)})
		return
	}
	pol := w.policy(j)
	now := time.Now()
	if j.start.IsZero() {
		j.start = now
	}
	var dl time.Time
	if pol.Timeout > 0 {
		dl = now.Add(pol.Timeout)
	}
	if pol.MaxElapsed > 0 {
		if e := j.start.Add(pol.MaxElapsed); dl.IsZero() || e.Before(dl) {
			dl = e
		}
		if !now.Before(dl) {
			// MaxElapsed passed while the retry waited for a worker:
			// it ends at its deadline without running.
			w.fail(h, j, m, k, safeFinalErr(pol, j, k, context.DeadlineExceeded))
			return
		}
	}
	var in In
	if err := guard(func() error { return w.q.cfg.Codec.Unmarshal(m.Data(), &in) }); err != nil {
		w.fail(h, j, m, k, jobq.Permanent(fmt.Errorf("%w: decode input: %v", ErrCodec, err)))
		return
	}
	// cancel is Cancel's and Shutdown's; the deadline, if any, sits below.
	ctx, cancel := context.WithCancel(jobq.ContextWithAttempt(context.WithValue(w.base, runKey{}, &runInfo{id: j.id, attempt: k}), k))
	defer cancel()
	if !dl.IsZero() {
		var stop context.CancelFunc
		ctx, stop = context.WithDeadline(ctx, dl)
		defer stop()
	}
	w.mu.Lock()
	h.cancel = cancel
	pre := h.canceled
	w.mu.Unlock()
	if pre {
		cancel()
	}
	w.running.Add(1)
	out, err := w.call(ctx, in)
	w.running.Add(-1)

	w.mu.Lock()
	h.cancel = nil
	canceled, abandoned := h.canceled, h.abandoned
	w.mu.Unlock()
	switch {
	case abandoned:
		return // handed back by Shutdown
	case canceled:
		m.Ack()
		w.canceledN.Add(1)
		return
	case err == nil:
		if j.client != "" {
			res := nats.NewMsg(w.q.subj.res + j.client + "." + j.id)
			res.Header.Set(hdrStatus, "ok")
			res.Header.Set(hdrAttempts, strconv.Itoa(k))
			var b []byte
			merr := guard(func() (err error) { b, err = w.q.cfg.Codec.Marshal(out); return err })
			if merr != nil {
				w.fail(h, j, m, k, jobq.Permanent(fmt.Errorf("%w: encode output: %v", ErrCodec, merr)))
				return
			}
			res.Data = b
			if !w.publish(res) {
				m.NakWithDelay(time.Second) // the result is not stored: run again
				return
			}
		}
		m.Ack()
		w.succeeded.Add(1)
		return
	}
	if retried, final := w.retryOrEnd(h, j, m, pol, k, err); retried {
		release = false // the retry releases h
	} else {
		w.fail(h, j, m, k, final)
	}
}

// retryOrEnd schedules a retry, or returns the job's final error. A panic
// in the worker's RetryIf, OnRetry, Backoff or Jitter ends the job with a
// *jobq.PanicError instead of the worker's process.
func (w *Worker[In, Out]) retryOrEnd(h *hold, j jobHeader, m jetstream.Msg, pol jobq.Policy, k int, err error) (retried bool, final error) {
	defer func() {
		if v := recover(); v != nil {
			retried, final = false, &jobq.PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	if w.retry(h, j, m, pol, k, err) {
		return true, nil
	}
	return false, finalErr(pol, j, k, err)
}

// guard runs a codec call, turning a panic into an error: a codec's panic
// must not end the worker's process.
func guard(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("codec panicked: %v", v)
		}
	}()
	return f()
}

// call runs the handler, turning a panic into a *jobq.PanicError.
func (w *Worker[In, Out]) call(ctx context.Context, in In) (out Out, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &jobq.PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return w.h(ctx, in)
}

func rebuild(ws []wireErr) []error {
	errs := make([]error, len(ws))
	for i, e := range ws {
		errs[i] = e.err()
	}
	return errs
}

// policy merges a job's travelling policy over the worker's and jobq's
// defaults.
func (w *Worker[In, Out]) policy(j jobHeader) jobq.Policy {
	p := w.def
	if j.maxAttempts > 0 {
		p.MaxAttempts = j.maxAttempts
	}
	if j.timeout > 0 {
		p.Timeout = j.timeout
	}
	if j.maxElapsed > 0 {
		p.MaxElapsed = j.maxElapsed
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 1
	}
	if p.Backoff == nil {
		p.Backoff = jobq.Exponential(100*time.Millisecond, 30*time.Second)
	}
	return p
}

// retryable applies jobq's rules: never a Permanent error or a codec
// error; RetryIf alone decides otherwise when set; else anything but a panic.
func retryable(pol *jobq.Policy, err error) bool {
	if isPermanent(err) || errors.Is(err, ErrCodec) {
		return false
	}
	if pol.RetryIf != nil {
		return pol.RetryIf(err)
	}
	var pe *jobq.PanicError
	return !errors.As(err, &pe)
}

// retry schedules the next attempt of a job whose run k failed with err, and
// reports whether it did.
func (w *Worker[In, Out]) retry(h *hold, j jobHeader, m jetstream.Msg, pol jobq.Policy, k int, err error) bool {
	if j.fails+1 >= pol.MaxAttempts || !retryable(&pol, err) {
		return false
	}
	var delay time.Duration
	if d, ok := retryAfter(err); ok {
		delay = d
	} else if len(j.delays) > 0 {
		delay = j.delays[min(j.fails, len(j.delays)-1)]
	} else {
		delay = pol.Backoff(j.fails+1, j.prev, rand.Float64())
		if pol.Jitter != nil {
			delay = pol.Jitter(delay, rand.Float64())
		}
	}
	delay = max(delay, 0)
	if pol.MaxElapsed > 0 {
		elapsed := time.Since(j.start)
		if elapsed > pol.MaxElapsed || delay > pol.MaxElapsed-elapsed {
			return false
		}
	}
	if pol.OnRetry != nil {
		pol.OnRetry(k, err, delay)
	}
	w.retried.Add(1)

	next := nats.NewMsg(w.q.subj.jobs)
	copyJobHeaders(next.Header, m.Headers())
	next.Header.Set(hdrRuns, strconv.Itoa(k))
	next.Header.Set(hdrFails, strconv.Itoa(j.fails+1))
	next.Header.Set(hdrErrors, encodeErrs(append(j.errs, toWire(err, false))))
	next.Header.Set(hdrStart, strconv.FormatInt(j.start.UnixNano(), 10))
	next.Header.Set(hdrPrev, strconv.FormatInt(int64(delay), 10))
	// Named by the failure it follows: a crash between this publish and
	// the ack delivers this message again, and should that run fail too,
	// its retry has the same ID and the server drops it.
	next.Header.Set(nats.MsgIdHdr, j.id+"-f"+strconv.Itoa(j.fails+1))
	next.Data = m.Data()
	at := time.Now().Add(delay)

	send := func() {
		defer w.release(h)
		w.mu.Lock()
		abandoned := h.abandoned
		w.mu.Unlock()
		if abandoned {
			return
		}
		if time.Until(at) >= 250*time.Millisecond {
			next.Subject = w.q.subj.sched + j.id
			next.Header.Set("Nats-Schedule", "@at "+at.UTC().Format(time.RFC3339Nano))
			next.Header.Set("Nats-Schedule-Target", w.q.subj.jobs)
		}
		if w.publish(next) {
			m.Ack()
		} else {
			m.NakWithDelay(time.Second) // the retry is not stored: run the attempt again
		}
	}
	if delay < shortDelay {
		w.mu.Lock()
		h.retry = send
		w.timers.Add(1)
		h.timer = time.AfterFunc(delay, func() {
			defer w.timers.Done()
			w.mu.Lock()
			f := h.retry
			h.retry = nil
			w.mu.Unlock()
			if f != nil {
				f()
			}
		})
		w.mu.Unlock()
		return true
	}
	send()
	return true
}

// copyJobHeaders copies the job's own headers from src to dst, leaving out
// the server's (Nats-…): a message the scheduler fired carries headers that
// a client may not publish.
func copyJobHeaders(dst, src nats.Header) {
	for key, v := range src {
		if !strings.HasPrefix(key, "Nats-") {
			dst[key] = v
		}
	}
}

// safeFinalErr is finalErr, with a panic in RetryIf ending the job with a
// *jobq.PanicError.
func safeFinalErr(pol jobq.Policy, j jobHeader, k int, err error) (final error) {
	defer func() {
		if v := recover(); v != nil {
			final = &jobq.PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return finalErr(pol, j, k, err)
}

// finalErr is the final error of a job whose run k failed with err and
// will not be retried: as jobq's, an *jobq.ExhaustedError when its policy
// allowed retries and err was retryable, else err.
func finalErr(pol jobq.Policy, j jobHeader, k int, err error) error {
	if pol.MaxAttempts > 1 && retryable(&pol, err) {
		return &jobq.ExhaustedError{Attempts: k, Errs: append(rebuild(j.errs), err)}
	}
	return err
}

// fail dead-letters a job that ended with err after k runs, stores err as
// its result, and acks it.
func (w *Worker[In, Out]) fail(h *hold, j jobHeader, m jetstream.Msg, k int, err error) {
	werr := toWire(err, true)
	b, _ := json.Marshal(werr)
	dead := nats.NewMsg(w.q.subj.dead + j.id)
	copyJobHeaders(dead.Header, m.Headers())
	dead.Header.Set(hdrID, j.id)
	dead.Header.Set(hdrAttempts, strconv.Itoa(k))
	dead.Header.Set(hdrErrors, string(b))
	dead.Data = m.Data()
	if !w.publish(dead) {
		m.NakWithDelay(time.Second)
		return
	}
	if j.client != "" {
		res := nats.NewMsg(w.q.subj.res + j.client + "." + j.id)
		res.Header.Set(hdrStatus, "err")
		res.Header.Set(hdrAttempts, strconv.Itoa(k))
		res.Data = b
		if !w.publish(res) {
			m.NakWithDelay(time.Second)
			return
		}
	}
	m.Ack()
	if canceledErr(err) {
		w.canceledN.Add(1)
	} else {
		w.failed.Add(1)
	}
}

// publish stores msg and reports whether the server confirmed it.
func (w *Worker[In, Out]) publish(msg *nats.Msg) bool {
	ctx, cancel := context.WithTimeout(context.Background(), w.q.cfg.PublishTimeout)
	defer cancel()
	_, err := w.q.js.PublishMsg(ctx, msg)
	return err == nil
}

func (w *Worker[In, Out]) release(h *hold) {
	w.mu.Lock()
	delete(w.held, h)
	if w.byID[h.id] == h {
		delete(w.byID, h.id)
	}
	w.mu.Unlock()
}

// Shutdown stops the worker: it fetches nothing more, hands every job
// fetched and not started back to the server at once (for another worker),
// lets running handlers finish and store their outcomes, sends the retries
// waiting out a short delay on to the server, and returns nil once all that
// is done. If ctx ends first, it gives up as a jobq.Pool does: running
// handlers' ctx is cancelled, their jobs are handed back to run again
// elsewhere (their outcome, when they return, is dropped), and it returns
// ctx.Err(). Shutdown may be called more than once; the queue stays open.
//
// A job handed back is delivered again, and that delivery counts: the next
// run's Attempt is one higher, and it counts toward Config.MaxDeliver.
//
// Cost: up to min(Lease/2, 250ms) waiting for the open pull request to end,
// then the running handlers' time.
func (w *Worker[In, Out]) Shutdown(ctx context.Context) error {
	w.once.Do(func() {
		close(w.stopCh)
		go func() {
			<-w.fetched
			// No pull request is open: hand back what was fetched
			// and not started, now and once the running handlers
			// have returned (a worker goroutine may take one of
			// them as Shutdown starts).
			w.handBack()
			w.loops.Wait()
			w.handBack()
			w.mu.Lock()
			var early []func()
			for h := range w.held {
				if h.retry != nil && h.timer.Stop() {
					early = append(early, h.retry)
					h.retry = nil
					w.timers.Done() // the stopped timer's
				}
			}
			w.mu.Unlock()
			for _, f := range early {
				f()
			}
			w.timers.Wait() // those that had fired
			w.csub.Unsubscribe()
			w.giveUp()
			close(w.drained)
		}()
	})
	select {
	case <-w.drained:
		return nil
	case <-ctx.Done():
	}
	w.mu.Lock()
	for h := range w.held {
		if h.cancel != nil && !h.abandoned {
			h.abandoned = true
			// After this worker's open pull request has expired,
			// so that it goes to another.
			h.m.NakWithDelay(w.fetchFor + 50*time.Millisecond)
			w.handedBack.Add(1)
			h.cancel()
		}
	}
	w.mu.Unlock()
	return ctx.Err()
}

// handBack returns to the server the messages fetched and not started.
func (w *Worker[In, Out]) handBack() {
	w.mu.Lock()
	back := w.back
	w.back = nil
	w.mu.Unlock()
	for {
		select {
		case m := <-w.buf:
			back = append(back, m)
			continue
		default:
		}
		break
	}
	for _, m := range back {
		m.Nak()
		w.handedBack.Add(1)
	}
}

// Close is Shutdown(context.Background()): it returns once every running
// handler has returned, and always returns nil.
func (w *Worker[In, Out]) Close() error {
	w.Shutdown(context.Background())
	return nil
}

// HandedBack reports how many fetched jobs this worker handed back to the
// server without an outcome (at Shutdown).
//
// Cost: one atomic load.
func (w *Worker[In, Out]) HandedBack() uint64 { return w.handedBack.Load() }

// Metrics reports this worker's side, as jobq.Metrics: Submitted counts the
// deliveries it took (redeliveries included); Succeeded, Failed and
// Canceled the jobs it ended; Retried the retries it scheduled; Running the
// handlers running now; Queued the messages it holds without running them
// (waiting out a short retry delay); Workers its goroutines until
// Shutdown. Rejected is zero.
//
// Cost: one lock.
func (w *Worker[In, Out]) Metrics() jobq.Metrics {
	w.mu.Lock()
	held := int64(len(w.held))
	w.mu.Unlock()
	running := w.running.Load()
	workers := w.n
	select {
	case <-w.stopCh:
		workers = 0
	default:
	}
	return jobq.Metrics{
		Submitted: w.taken.Load(),
		Succeeded: w.succeeded.Load(),
		Failed:    w.failed.Load(),
		Canceled:  w.canceledN.Load(),
		Retried:   w.retried.Load(),
		Running:   running,
		Queued:    max(held-running, 0),
		Workers:   workers,
	}
}
