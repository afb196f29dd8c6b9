package jetstream

import "context"

type runKey struct{}

// runInfo is what a handler's ctx tells about its job.
type runInfo struct {
	id      string
	attempt int
}

// JobID returns the ID of the job whose handler ctx is ctx, or "" for any
// other ctx. The ID is the same on every delivery and retry of the job, so
// a handler can make its effects idempotent on it; it is the submission key
// when one was given (see Queue.Enqueue).
//
// Cost: one ctx value lookup.
func JobID(ctx context.Context) string {
	if ri, ok := ctx.Value(runKey{}).(*runInfo); ok {
		return ri.id
	}
	return ""
}

// Attempt returns the number of this run of the job whose handler ctx is
// ctx, 1 on its first: it counts the retries of failed attempts and also the
// redeliveries after a lease was lost (a worker that crashed or stalled),
// so a handler that sees Attempt > 1 knows an earlier run may have had
// effects. It returns 0 for any other ctx. jobq.Attempt reports the same
// number in a handler of a Queue, so a Handler reads it alike whether a
// jobq.Pool or a Queue runs it.
//
// Cost: one ctx value lookup.
func Attempt(ctx context.Context) int {
	if ri, ok := ctx.Value(runKey{}).(*runInfo); ok {
		return ri.attempt
	}
	return 0
}
