package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter is a job that failed for good: its attempts ran out, it failed
// with a Permanent error or a panic, its input could not be decoded, or its
// deliveries ran out (Config.MaxDeliver) because the workers holding it
// kept dying.
type DeadLetter[In any] struct {
	ID       string
	Attempts int       // runs made, lost ones included
	Err      error     // the job's final error, as its Result has it
	Input    In        // the decoded input; zero when InputErr is set
	InputErr error     // the error decoding the input, wrapping ErrCodec
	Time     time.Time // when it was dead-lettered
	Seq      uint64    // its sequence in the dead-letter stream
}

// DeadLetters returns the jobs in the queue's dead-letter stream, oldest
// first, at most limit of them (all when limit <= 0). The stream keeps them
// until they are deleted (DeleteDeadLetter) or the stream is purged.
//
// Cost: one request per dead letter, and one for the stream's state.
func (q *Queue[In, Out]) DeadLetters(ctx context.Context, limit int) ([]DeadLetter[In], error) {
	info, err := q.dead.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("jetstream: dead-letter stream: %w", err)
	}
	var out []DeadLetter[In]
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		if limit > 0 && len(out) == limit {
			break
		}
		m, err := q.dead.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("jetstream: dead letter %d: %w", seq, err)
		}
		d := DeadLetter[In]{ID: m.Header.Get(hdrID), Time: m.Time, Seq: seq}
		d.Attempts, _ = strconv.Atoi(m.Header.Get(hdrAttempts))
		var w wireErr
		if json.Unmarshal([]byte(m.Header.Get(hdrErrors)), &w) == nil {
			d.Err = w.err()
		}
		if err := q.cfg.Codec.Unmarshal(m.Data, &d.Input); err != nil {
			d.InputErr = fmt.Errorf("%w: decode input: %v", ErrCodec, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// DeleteDeadLetter removes the dead letter with sequence seq (see
// DeadLetter.Seq); it returns the server's error when there is none.
//
// Cost: one request.
func (q *Queue[In, Out]) DeleteDeadLetter(ctx context.Context, seq uint64) error {
	return q.dead.DeleteMsg(ctx, seq)
}
