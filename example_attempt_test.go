package jobq_test

import (
	"context"
	"fmt"

	"github.com/seed-bb9ff1e7/jobq"
)

// A backend that runs jobq Handlers itself (jobq/jetstream does) tells
// them their attempt with ContextWithAttempt, so a Handler reads it with
// Attempt whoever runs it.
func ExampleContextWithAttempt() {
	h := jobq.Handler[string, string](func(ctx context.Context, in string) (string, error) {
		return fmt.Sprintf("%s, attempt %d", in, jobq.Attempt(ctx)), nil
	})
	// The backend's third delivery of the job:
	out, _ := h(jobq.ContextWithAttempt(context.Background(), 3), "redelivered")
	fmt.Println(out)
	// Output: redelivered, attempt 3
}
