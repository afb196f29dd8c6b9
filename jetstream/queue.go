// Package jetstream offers jobq's typed model over NATS JetStream: a Queue
// whose jobs are durable messages in a work-queue stream, submitted from any
// process and served by worker processes on any number of machines.
//
//	q, err := jetstream.Open[string, int](ctx, nc, jetstream.Config{Name: "lengths"})
//	w, err := q.Serve(8, func(ctx context.Context, s string) (int, error) { return len(s), nil })
//	defer w.Shutdown(ctx)
//	n, err := q.Submit(ctx, "hello").Await(ctx)
//
// A Queue is a jobq.Stage: its Results mix with a jobq.Pool's in Map, Then
// and AwaitAll.
//
// Guarantees: every accepted job (its Submit's Result did not fail with a
// submission error) runs at least once, and is acknowledged only after its
// handler succeeded and its result was stored, or after it failed for good
// and went to the dead-letter stream. A worker that dies mid-job loses
// nothing: the job is delivered again once its lease (Config.Lease) ends, so
// a handler's effects happen exactly once only when it is idempotent on
// JobID. Jobs have no order. Durability is the server's: a file store
// survives any process crash; add SyncAlways (embedded.Options) or replicas
// against power loss.
//
// Cancel on a Result completes it at once with context.Canceled and
// cancels the job: its message is deleted when this Queue submitted it, its
// scheduled retry too, and the workers are told; a running handler sees its
// ctx cancelled, and a worker that holds the job or receives it later (for
// 10 minutes) never starts it.
//
// Run a server in-process with package embedded, or connect to any NATS
// server or cluster with JetStream enabled.
package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/seed-bb9ff1e7/jobq"
)

// ErrPublishTimeout is wrapped by the error of a submission whose
// acknowledgement did not come within Config.PublishTimeout: the server may
// or may not have stored the job. Submit with a key (Enqueue) to make a
// resubmission safe.
var ErrPublishTimeout = errors.New("jetstream: no acknowledgement from the server; the job may or may not have been accepted")

// ErrInvalidKey is wrapped by the error of a submission whose key is not
// 1 to 200 characters of letters, digits, '-', '_' and '='.
var ErrInvalidKey = errors.New("jetstream: invalid submission key")

// Config names a queue and sets how its streams behave. Every process that
// opens the queue should use the same Config: Open creates or updates the
// streams to match it. Zero fields take the defaults shown.
type Config struct {
	// Name names the queue's streams (JOBQ_<Name>, JOBQ_<Name>_RESULTS,
	// JOBQ_<Name>_DEAD) and subjects (jobq.<Name>.…). Letters, digits, '-'
	// and '_'. Required.
	Name string
	// Codec encodes inputs and outputs; JSON.
	Codec Codec
	// Lease is how long a worker holds a delivered job before the server
	// delivers it again; 30s. Workers extend it with heartbeats while a
	// handler runs, so it bounds the time to notice a dead worker, not a
	// job's duration.
	Lease time.Duration
	// MaxDeliver is how many times one attempt of a job is delivered
	// before it counts as exhausted by lost leases (crashes) and goes to
	// the dead-letter stream; 5.
	MaxDeliver int
	// ResultTTL is how long results stay fetchable by job ID (Result,
	// and the Results of duplicate submissions); 1h. Each result is a
	// message on a subject of its own, kept that long: size it to the
	// rate (at 20,000 jobs/s an hour holds 72 million).
	ResultTTL time.Duration
	// DedupWindow is how long a submission key (or, for a submission
	// without one, its job ID) is remembered; 2m. Keep it longer than
	// PublishTimeout: a submission is published again while its
	// acknowledgement is late, and the server must drop the copies. The
	// server remembers each job submitted within the window, about 100
	// bytes each: at 20,000 jobs/s a 2m window holds about 2.4 million.
	DedupWindow time.Duration
	// MaxPending bounds this Queue's submissions awaiting the server's
	// acknowledgement: Submit waits for room, TrySubmit and Go fail with
	// jobq.ErrQueueFull; 4096.
	MaxPending int
	// PublishTimeout bounds the wait for a submission's acknowledgement,
	// and a worker's for its result's and dead letter's; 10s.
	PublishTimeout time.Duration
	// MaxAckPending bounds the jobs held by all workers together, those
	// waiting out a short retry delay included; 20000.
	MaxAckPending int
	// Replicas is the streams' replica count on a cluster; 1.
	Replicas int
	// MemoryStorage keeps the streams in memory: faster, and lost when the
	// server stops. Default: file storage.
	MemoryStorage bool
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
var keyRE = regexp.MustCompile(`^[A-Za-z0-9_=-]{1,200}$`)

func (c *Config) defaults() {
	if c.Codec == nil {
		c.Codec = JSON{}
	}
	if c.Lease == 0 {
		c.Lease = 30 * time.Second
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	if c.ResultTTL == 0 {
		c.ResultTTL = time.Hour
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = 2 * time.Minute
	}
	if c.MaxPending == 0 {
		c.MaxPending = 4096
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 20000
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
}

// subjects of one queue.
type subjects struct {
	jobs, sched, res, dead, cancel string // sched, res, dead and cancel are prefixes
}

// Queue is a typed, durable job queue on JetStream. Submit, TrySubmit, Go
// and Enqueue work in any process; Serve makes this process a worker. A
// Queue is safe for concurrent use. Close it when done: it holds a
// subscription and two goroutines.
type Queue[In, Out any] struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	jobs    jetstream.Stream
	results jetstream.Stream
	dead    jetstream.Stream
	subj    subjects
	client  string // this Queue's token in result subjects
	inbox   string // prefix of the submissions' reply subjects

	slots chan struct{} // one per submission awaiting its acknowledgement

	mu      sync.Mutex
	closed  bool
	pubN    uint64
	byPub   map[uint64]*call[Out]   // awaiting the server's acknowledgement
	byID    map[string]*call[Out]   // awaiting the result
	follows map[*call[Out]]struct{} // awaiting a result by subscription (Result, duplicates)
	subs    []*nats.Subscription
	stop    chan struct{}
	bg      sync.WaitGroup

	submitted, rejected, succeeded, failed, canceled atomic.Uint64
}

// call is one submitted job as its submitter sees it.
type call[Out any] struct {
	id     string
	want   bool      // a Result awaits it (not Go)
	keyed  bool      // its ID is the submitter's key
	sentAt time.Time // when first published, for PublishTimeout
	// Guarded by Queue.mu while the acknowledgement is awaited:
	msg    *nats.Msg // kept to publish again; nil once acknowledged
	lastAt time.Time // when last published
	resent bool
	// Guarded by Queue.mu:
	seq      uint64 // the job message's stream sequence, once acknowledged
	settles  []func(Out, error) bool
	done     bool
	canceled bool
	sub      *nats.Subscription // a follow's subscription (Result, duplicate)
	stopCtx  func() bool
}

// Open connects a Queue to nc, creating or updating its streams as cfg
// says. It returns the server's error when JetStream is unavailable or a
// stream cannot be made to match cfg. It panics if nc is nil or cfg.Name is
// not a valid name, or a numeric field is negative.
//
// Cost: a few round trips to the server.
func Open[In, Out any](ctx context.Context, nc *nats.Conn, cfg Config) (*Queue[In, Out], error) {
	if nc == nil {
		panic("jetstream: Open: nc must not be nil")
	}
	if !nameRE.MatchString(cfg.Name) {
		panic(fmt.Sprintf("jetstream: Open: cfg.Name must be letters, digits, '-' and '_', got %q", cfg.Name))
	}
	for name, v := range map[string]int64{
		"Lease": int64(cfg.Lease), "MaxDeliver": int64(cfg.MaxDeliver), "ResultTTL": int64(cfg.ResultTTL),
		"DedupWindow": int64(cfg.DedupWindow), "MaxPending": int64(cfg.MaxPending),
		"PublishTimeout": int64(cfg.PublishTimeout), "MaxAckPending": int64(cfg.MaxAckPending), "Replicas": int64(cfg.Replicas),
	} {
		if v < 0 {
			panic(fmt.Sprintf("jetstream: Open: cfg.%s must be >= 0, got %d", name, v))
		}
	}
	cfg.defaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	p := "jobq." + cfg.Name
	q := &Queue[In, Out]{
		cfg: cfg, nc: nc, js: js,
		subj: subjects{
			jobs: p + ".jobs", sched: p + ".sched.", res: p + ".res.",
			dead: p + ".dead.", cancel: p + ".cancel.",
		},
		client:  nuid.Next(),
		slots:   make(chan struct{}, cfg.MaxPending),
		byPub:   make(map[uint64]*call[Out]),
		byID:    make(map[string]*call[Out]),
		follows: make(map[*call[Out]]struct{}),
		stop:    make(chan struct{}),
	}
	q.inbox = nc.NewRespInbox()
	storage := jetstream.FileStorage
	if cfg.MemoryStorage {
		storage = jetstream.MemoryStorage
	}
	streamName := "JOBQ_" + cfg.Name
	if q.jobs, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              streamName,
		Subjects:          []string{q.subj.jobs, q.subj.sched + "*"},
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           storage,
		Replicas:          cfg.Replicas,
		Duplicates:        cfg.DedupWindow,
		AllowMsgSchedules: true,
		AllowRollup:       true,
	}); err != nil {
		return nil, fmt.Errorf("jetstream: jobs stream: %w", err)
	}
	if q.results, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              streamName + "_RESULTS",
		Subjects:          []string{q.subj.res + "*.*"},
		Storage:           storage,
		Replicas:          cfg.Replicas,
		MaxAge:            cfg.ResultTTL,
		MaxMsgsPerSubject: 1,
		AllowDirect:       true,
	}); err != nil {
		return nil, fmt.Errorf("jetstream: results stream: %w", err)
	}
	if q.dead, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     streamName + "_DEAD",
		Subjects: []string{q.subj.dead + "*"},
		Storage:  storage,
		Replicas: cfg.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("jetstream: dead-letter stream: %w", err)
	}
	rs, err := nc.Subscribe(q.subj.res+q.client+".*", q.onResult)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	as, err := nc.Subscribe(q.inbox+".*", q.onPubAck)
	if err != nil {
		rs.Unsubscribe()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	for _, s := range []*nats.Subscription{rs, as} {
		s.SetPendingLimits(-1, -1) // bounded by MaxPending and the awaited jobs
	}
	q.subs = []*nats.Subscription{rs, as}
	if err := nc.Flush(); err != nil {
		q.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	q.bg.Add(1)
	go q.watch()
	return q, nil
}

// Submit publishes in as a job and returns its Result, which completes when
// a worker has stored the job's outcome: the handler's output, or its error
// rebuilt as jobq's types (see RemoteError). It waits for room while
// MaxPending submissions await the server's acknowledgement, until ctx
// ends; the Result then fails with ctx.Err() and no job exists. It fails
// with jobq.ErrClosed after Close, with an error wrapping ErrCodec when in
// cannot be encoded, with ErrUnsupportedPolicy or jobq.ErrInvalidPolicy for
// a policy that cannot travel or is invalid, and with the server's refusal
// or ErrPublishTimeout when the job was not confirmed.
//
// pol, at most one, travels with the job and overrides the worker's policy
// field by field (zero fields inherit); its Backoff and Jitter are evaluated
// here, for the first 32 retries, and their delays travel. When ctx ends
// before the Result completes, the job is cancelled as by Cancel; ctx's
// values do not travel.
//
// Cost: one publish and its acknowledgement, and the result message back.
// Measured on 2 cores with an embedded server (BenchmarkLoneJob,
// BenchmarkSubmitAwait), a lone job takes about 0.1 ms from Submit to its
// Result (p50; p99 about 1 ms), and 20,000-28,000 jobs/s go end to end
// with 256 in flight.
func (q *Queue[In, Out]) Submit(ctx context.Context, in In, pol ...jobq.Policy) *jobq.Result[Out] {
	_, r, _ := q.submit(ctx, "", in, pol, true, true)
	return r
}

// TrySubmit is Submit without waiting for room: when MaxPending submissions
// await acknowledgement it returns jobq.ErrQueueFull at once. The Result
// returned with an error has completed with it; a Result returned without
// one may still fail later, as Submit's.
//
// Cost: Submit's.
func (q *Queue[In, Out]) TrySubmit(ctx context.Context, in In, pol ...jobq.Policy) (*jobq.Result[Out], error) {
	_, r, err := q.submit(ctx, "", in, pol, false, true)
	return r, err
}

// Enqueue is Submit with a submission key and the job's ID returned. A
// non-empty key becomes the job's ID (see JobID): a second submission of
// the same key within Config.DedupWindow, from any process, runs nothing
// new and returns a Result that completes with the first submission's
// outcome. An empty key gets a fresh ID. The error is the Result's when it
// failed at once.
//
// Cost: Submit's; a duplicate adds a subscription and one request to look
// up the stored result.
func (q *Queue[In, Out]) Enqueue(ctx context.Context, key string, in In, pol ...jobq.Policy) (id string, r *jobq.Result[Out], err error) {
	return q.submit(ctx, key, in, pol, true, true)
}

// Go publishes in as a job that no Result awaits: its outcome is not stored
// (a failure still goes to the dead-letter stream). It never waits: it
// returns jobq.ErrQueueFull while MaxPending submissions await
// acknowledgement, jobq.ErrClosed after Close, or the encoding's or the
// policy's error. A refusal by the server comes later and counts in
// Metrics.Rejected.
//
// Cost: one publish and its acknowledgement; 23,000-44,000 jobs/s on 2
// noisy cores with an embedded server (BenchmarkGo).
func (q *Queue[In, Out]) Go(ctx context.Context, in In, pol ...jobq.Policy) error {
	_, _, err := q.submit(ctx, "", in, pol, false, false)
	return err
}

func (q *Queue[In, Out]) submit(ctx context.Context, key string, in In, pol []jobq.Policy, wait, want bool) (string, *jobq.Result[Out], error) {
	fail := func(err error) (string, *jobq.Result[Out], error) {
		q.rejected.Add(1)
		var r *jobq.Result[Out]
		if want {
			var settle func(Out, error) bool
			r, settle = jobq.NewPromise[Out](nil)
			var zero Out
			settle(zero, err)
		}
		return "", r, err
	}
	if ctx == nil {
		return fail(errors.New("jetstream: nil context"))
	}
	if key != "" && !keyRE.MatchString(key) {
		return fail(fmt.Errorf("%w: %q", ErrInvalidKey, key))
	}
	msg := nats.NewMsg(q.subj.jobs)
	if err := policyHeader(msg.Header, pol); err != nil {
		return fail(err)
	}
	data, err := q.cfg.Codec.Marshal(in)
	if err != nil {
		return fail(fmt.Errorf("%w: encode input: %v", ErrCodec, err))
	}
	msg.Data = data
	id := key
	if id == "" {
		id = nuid.Next()
	}
	// Every job is published with its ID as the message ID, so that a
	// submission can be published again when its acknowledgement is
	// late (a server restarting): the server stores it once.
	msg.Header.Set(nats.MsgIdHdr, id)
	msg.Header.Set(hdrID, id)
	if want {
		msg.Header.Set(hdrClient, q.client)
	}

	c := &call[Out]{id: id, want: want, keyed: key != ""}
	var r *jobq.Result[Out]
	if want {
		var settle func(Out, error) bool
		r, settle = jobq.NewPromise[Out](func() { q.cancel(c) })
		c.settles = []func(Out, error) bool{settle}
	}

	q.mu.Lock()
	if key != "" && want {
		// The same key pending here: the same job.
		if first := q.byID[id]; first != nil && !first.done {
			first.settles = append(first.settles, c.settles[0])
			q.mu.Unlock()
			return id, r, nil
		}
	}
	q.mu.Unlock()

	// Room among the submissions awaiting acknowledgement.
	select {
	case q.slots <- struct{}{}:
	default:
		if !wait {
			return fail(jobq.ErrQueueFull)
		}
		select {
		case q.slots <- struct{}{}:
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-q.stop:
			return fail(jobq.ErrClosed)
		}
	}

	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		<-q.slots
		return fail(jobq.ErrClosed)
	}
	q.pubN++
	n := q.pubN
	msg.Reply = q.inbox + "." + strconv.FormatUint(n, 10)
	c.sentAt = time.Now()
	c.lastAt = c.sentAt
	c.msg = msg
	q.byPub[n] = c
	if want {
		q.byID[id] = c
	}
	// Published under the lock, so that its acknowledgement and result,
	// handled under it, find it registered.
	err = q.nc.PublishMsg(msg)
	if err != nil {
		delete(q.byPub, n)
		if q.byID[id] == c {
			delete(q.byID, id)
		}
	}
	q.mu.Unlock()
	if err != nil {
		<-q.slots
		q.rejected.Add(1)
		q.finish(c, fmt.Errorf("jetstream: publish: %w", err))
		return id, r, err
	}
	if want && ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { q.cancel(c) })
		q.mu.Lock()
		if c.done {
			q.mu.Unlock()
			stop()
		} else {
			c.stopCtx = stop
			q.mu.Unlock()
		}
	}
	return id, r, nil
}

// pubAck is the server's answer to a publish into a stream.
type pubAck struct {
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
	Error     *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

// onPubAck handles a submission's acknowledgement.
func (q *Queue[In, Out]) onPubAck(m *nats.Msg) {
	n, err := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64)
	if err != nil {
		return
	}
	q.mu.Lock()
	c := q.byPub[n]
	delete(q.byPub, n)
	var resent bool
	if c != nil {
		c.msg = nil
		resent = c.resent
	}
	q.mu.Unlock()
	if c == nil {
		return // timed out already, or acknowledged by an earlier copy
	}
	<-q.slots
	var ack pubAck
	if err := json.Unmarshal(m.Data, &ack); err != nil || ack.Error != nil {
		q.rejected.Add(1)
		msg := "bad acknowledgement"
		if err == nil {
			msg = ack.Error.Description
		}
		q.mu.Lock()
		if q.byID[c.id] == c {
			delete(q.byID, c.id)
		}
		q.mu.Unlock()
		q.finish(c, fmt.Errorf("jetstream: job refused by the server: %s", msg))
		return
	}
	if ack.Duplicate && resent && !c.keyed {
		// This Queue's own copy stored before: no duplicate at all.
		ack.Duplicate = false
	}
	if !ack.Duplicate {
		q.submitted.Add(1)
	}
	q.mu.Lock()
	c.seq = ack.Seq
	canceled, done := c.canceled, c.done
	if ack.Duplicate && !done && q.byID[c.id] == c {
		delete(q.byID, c.id) // its result goes to the first submitter
	}
	q.mu.Unlock()
	switch {
	case canceled:
		q.deleteJob(c.id, ack.Seq)
	case ack.Duplicate && c.want && !done:
		q.follow(c)
	}
}

// onResult handles a result addressed to this Queue.
func (q *Queue[In, Out]) onResult(m *nats.Msg) {
	id := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	q.mu.Lock()
	c := q.byID[id]
	if c != nil {
		delete(q.byID, id)
	}
	q.mu.Unlock()
	if c != nil {
		v, err := q.decodeResult(m.Header, m.Data)
		q.finishWith(c, v, err)
	}
}

// decodeResult rebuilds a stored outcome.
func (q *Queue[In, Out]) decodeResult(h nats.Header, data []byte) (v Out, err error) {
	if h.Get(hdrStatus) == "ok" {
		if err := q.cfg.Codec.Unmarshal(data, &v); err != nil {
			return v, fmt.Errorf("%w: decode output: %v", ErrCodec, err)
		}
		return v, nil
	}
	var w wireErr
	if err := json.Unmarshal(data, &w); err != nil {
		return v, fmt.Errorf("%w: decode error: %v", ErrCodec, err)
	}
	return v, w.err()
}

func (q *Queue[In, Out]) finish(c *call[Out], err error) {
	var zero Out
	q.finishWith(c, zero, err)
}

// finishWith completes c's Results and counts the outcome, once.
func (q *Queue[In, Out]) finishWith(c *call[Out], v Out, err error) {
	q.mu.Lock()
	if c.done {
		q.mu.Unlock()
		return
	}
	c.done = true
	delete(q.follows, c)
	settles, sub, stop := c.settles, c.sub, c.stopCtx
	c.settles, c.sub, c.stopCtx = nil, nil, nil
	q.mu.Unlock()
	if stop != nil {
		stop()
	}
	if sub != nil {
		sub.Unsubscribe()
	}
	if !c.want {
		return
	}
	switch {
	case err == nil:
		q.succeeded.Add(1)
	case canceledErr(err):
		q.canceled.Add(1)
	default:
		q.failed.Add(1)
	}
	for _, s := range settles {
		s(v, err)
	}
}

// canceledErr says whether err counts as a cancellation, as jobq.Metrics
// counts one.
func canceledErr(err error) bool {
	var pe *jobq.PanicError
	var ee *jobq.ExhaustedError
	if errors.As(err, &pe) || errors.As(err, &ee) {
		return false
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, jobq.ErrClosed)
}

// Result returns a Result for the job with ID id, submitted from any
// process: it completes with the job's stored outcome, at once when there is
// one, else when a worker stores it. Results are kept for
// Config.ResultTTL; a job with no stored outcome (never submitted, expired,
// or submitted with Go) leaves the Result waiting until Close, which fails
// it with jobq.ErrClosed. Cancel on the Result cancels the job.
//
// Cost: a subscription and one request to the server.
func (q *Queue[In, Out]) Result(id string) *jobq.Result[Out] {
	c := &call[Out]{id: id, want: true}
	r, settle := jobq.NewPromise[Out](func() { q.cancel(c) })
	c.settles = []func(Out, error) bool{settle}
	if !keyRE.MatchString(id) {
		q.finish(c, fmt.Errorf("%w: %q", ErrInvalidKey, id))
		return r
	}
	q.follow(c)
	return r
}

// follow completes c from the results stream: whatever is stored, or the
// result published next, by whichever submitter.
func (q *Queue[In, Out]) follow(c *call[Out]) {
	subj := q.subj.res + "*." + c.id
	sub, err := q.nc.Subscribe(subj, func(m *nats.Msg) {
		v, err := q.decodeResult(m.Header, m.Data)
		q.finishWith(c, v, err)
	})
	if err != nil {
		q.finish(c, fmt.Errorf("jetstream: %w", err))
		return
	}
	q.mu.Lock()
	if c.done || q.closed {
		closed := q.closed && !c.done
		q.mu.Unlock()
		sub.Unsubscribe()
		if closed {
			q.finish(c, jobq.ErrClosed)
		}
		return
	}
	c.sub = sub
	q.follows[c] = struct{}{}
	q.bg.Add(1) // under mu: Close waits for it once closed is set
	q.mu.Unlock()
	go func() {
		defer q.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), q.cfg.PublishTimeout)
		defer cancel()
		if err := q.nc.FlushWithContext(ctx); err != nil {
			return // the subscription still sees what comes
		}
		// The subscription sees every result published from now on.
		// One published just before it may have passed it by and not
		// be stored yet (the stream stores after routing): look again
		// a little later.
		for _, wait := range []time.Duration{0, 20 * time.Millisecond, 200 * time.Millisecond} {
			select {
			case <-time.After(wait):
			case <-q.stop:
				return
			}
			q.mu.Lock()
			done := c.done
			q.mu.Unlock()
			if done {
				return
			}
			m, err := q.results.GetLastMsgForSubject(ctx, subj)
			if err != nil {
				continue // nothing stored yet
			}
			v, err := q.decodeResult(m.Header, m.Data)
			q.finishWith(c, v, err)
			return
		}
	}()
}

// cancel cancels c's job: its Results complete with context.Canceled (the
// promise that called has already), the canceled outcome is stored, the
// workers are told, and the job message is deleted if it is known.
func (q *Queue[In, Out]) cancel(c *call[Out]) {
	q.mu.Lock()
	if c.canceled || c.done {
		// Done already: its ctx ended as it completed, and the
		// stored outcome stands.
		q.mu.Unlock()
		return
	}
	c.canceled = true
	if q.byID[c.id] == c {
		delete(q.byID, c.id)
	}
	seq, closed := c.seq, q.closed
	q.mu.Unlock()
	q.finish(c, context.Canceled)
	if closed {
		return
	}
	res := nats.NewMsg(q.subj.res + q.client + "." + c.id)
	res.Header.Set(hdrStatus, "err")
	b, _ := json.Marshal(toWire(context.Canceled, false))
	res.Data = b
	q.nc.PublishMsg(res) // stored by the results stream; no ack awaited
	q.nc.Publish(q.subj.cancel+c.id, nil)
	q.deleteJob(c.id, seq)
}

// deleteJob removes a cancelled job's message (when seq is known) and its
// scheduled retry, if any, so that no worker that has not fetched them
// ever will.
func (q *Queue[In, Out]) deleteJob(id string, seq uint64) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.bg.Add(1) // under mu: Close waits for it once closed is set
	q.mu.Unlock()
	go func() {
		defer q.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), q.cfg.PublishTimeout)
		defer cancel()
		if seq != 0 {
			q.jobs.DeleteMsg(ctx, seq) // fails harmlessly when a worker acked it
		}
		q.jobs.Purge(ctx, jetstream.WithPurgeSubject(q.subj.sched+id))
	}()
}

// resendAfter is how long a submission's acknowledgement is awaited before
// the job is published again.
const resendAfter = 500 * time.Millisecond

// watch publishes again submissions whose acknowledgement is late, fails
// those whose acknowledgement is overdue, and after a
// reconnect looks up the stored results that may have been published while
// this Queue was disconnected.
func (q *Queue[In, Out]) watch() {
	defer q.bg.Done()
	status := q.nc.StatusChanged(nats.CONNECTED)
	defer q.nc.RemoveStatusListener(status)
	tick := time.NewTicker(min(max(q.cfg.PublishTimeout/4, 10*time.Millisecond), resendAfter/2))
	defer tick.Stop()
	var again time.Time // when to sweep again after a reconnect
	for {
		select {
		case <-q.stop:
			return
		case <-status:
			q.sweep()
			// Once more in a moment, for a result that was on its
			// way into the stream during the first.
			again = time.Now().Add(resendAfter)
		case now := <-tick.C:
			if !again.IsZero() && now.After(again) {
				again = time.Time{}
				q.sweep()
			}
			var late []*call[Out]
			q.mu.Lock()
			for n, c := range q.byPub {
				if c.msg != nil && now.Sub(c.lastAt) >= resendAfter && now.Sub(c.sentAt) <= q.cfg.PublishTimeout {
					// Lost on the way, or its acknowledgement was:
					// the server drops a copy it has stored.
					c.lastAt, c.resent = now, true
					q.nc.PublishMsg(c.msg)
					continue
				}
				if now.Sub(c.sentAt) > q.cfg.PublishTimeout {
					delete(q.byPub, n)
					if q.byID[c.id] == c {
						delete(q.byID, c.id)
					}
					late = append(late, c)
				}
			}
			q.mu.Unlock()
			for _, c := range late {
				<-q.slots
				q.rejected.Add(1)
				q.finish(c, ErrPublishTimeout)
			}
		}
	}
}

// sweep looks up the stored outcome of every job awaited here.
func (q *Queue[In, Out]) sweep() {
	q.mu.Lock()
	var ids []*call[Out]
	for _, c := range q.byID {
		ids = append(ids, c)
	}
	q.mu.Unlock()
	for _, c := range ids {
		select {
		case <-q.stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), q.cfg.PublishTimeout)
		m, err := q.results.GetLastMsgForSubject(ctx, q.subj.res+q.client+"."+c.id)
		cancel()
		if err != nil {
			continue
		}
		q.mu.Lock()
		mine := q.byID[c.id] == c
		if mine {
			delete(q.byID, c.id)
		}
		q.mu.Unlock()
		if mine {
			v, err := q.decodeResult(m.Header, m.Data)
			q.finishWith(c, v, err)
		}
	}
}

// Close stops this Queue's submissions and result tracking: every Result
// still waiting fails with jobq.ErrClosed (the jobs go on; fetch their
// outcome later with Result), and later submissions fail likewise. Workers
// started with Serve are not stopped: shut them down first. The connection
// is left open. Close is idempotent and returns nil.
//
// Cost: it waits for this Queue's requests in flight (a cancelled job's
// deletion, a result lookup), each bounded by PublishTimeout.
func (q *Queue[In, Out]) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	close(q.stop)
	var left []*call[Out]
	for _, c := range q.byID {
		left = append(left, c)
	}
	for _, c := range q.byPub {
		left = append(left, c)
	}
	for c := range q.follows {
		left = append(left, c)
	}
	q.byID, q.byPub = map[string]*call[Out]{}, map[uint64]*call[Out]{}
	subs := q.subs
	q.mu.Unlock()
	for _, s := range subs {
		s.Unsubscribe()
	}
	for _, c := range left {
		q.finish(c, jobq.ErrClosed)
	}
	q.bg.Wait()
	return nil
}

// Metrics reports this Queue's submissions, as jobq.Metrics: Submitted
// counts jobs the server accepted (duplicates not counted), Rejected the
// submissions refused here or by the server; Succeeded, Failed and Canceled
// count the outcomes of the Results this Queue completed, and Queued the
// Results still waiting. Running, Retried and Workers are zero: see
// Worker.Metrics for a worker's side.
//
// Cost: one lock.
func (q *Queue[In, Out]) Metrics() jobq.Metrics {
	q.mu.Lock()
	waiting := int64(len(q.byID) + len(q.follows))
	q.mu.Unlock()
	return jobq.Metrics{
		Submitted: q.submitted.Load(),
		Rejected:  q.rejected.Load(),
		Succeeded: q.succeeded.Load(),
		Failed:    q.failed.Load(),
		Canceled:  q.canceled.Load(),
		Queued:    waiting,
	}
}

var _ jobq.Stage[int, int] = (*Queue[int, int])(nil)
