package jetstream_test

import (
	"context"
	"strings"
	"testing"

	"github.com/seed-bb9ff1e7/jobq"
	"github.com/seed-bb9ff1e7/jobq/jetstream"
)

func policies(pol []any) []jobq.Policy {
	var out []jobq.Policy
	for _, p := range pol {
		out = append(out, p.(jobq.Policy))
	}
	return out
}

func TestSubmitAwait(t *testing.T) {
	s := testServer(t)
	q := open[string, int](t, connect(t, s), testConfig())
	serve(t, q, 4, func(ctx context.Context, s string) (int, error) {
		if jetstream.JobID(ctx) == "" || jetstream.Attempt(ctx) != 1 {
			t.Errorf("JobID %q Attempt %d", jetstream.JobID(ctx), jetstream.Attempt(ctx))
		}
		return len(s), nil
	})
	var rs []*jobq.Result[int]
	for i := range 100 {
		rs = append(rs, q.Submit(context.Background(), strings.Repeat("x", i)))
	}
	for i, r := range rs {
		n, err := await[int](t, r)
		if err != nil || n != i {
			t.Fatalf("job %d: %d, %v", i, n, err)
		}
	}
	// A result may overtake its submission's acknowledgement, which
	// Submitted counts.
	eventually(t, "every acknowledgement to count", func() bool { return q.Metrics().Submitted == 100 })
	if m := q.Metrics(); m.Succeeded != 100 || m.Queued != 0 || m.Rejected != 0 {
		t.Errorf("metrics %+v", m)
	}
}
