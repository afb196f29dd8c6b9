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

func TestOpenPanicsOnProgrammerErrors(t *testing.T) {
	s := testServer(t)
	nc := connect(t, s)
	cases := map[string]func(){
		"nc":        func() { jetstream.Open[int, int](context.Background(), nil, testConfig()) },
		"cfg.Name":  func() { jetstream.Open[int, int](context.Background(), nc, jetstream.Config{Name: "a.b"}) },
		"cfg.Lease": func() { jetstream.Open[int, int](context.Background(), nc, jetstream.Config{Name: "x", Lease: -1}) },
		"workers": func() {
			open[int, int](t, nc, testConfig()).Serve(0, func(context.Context, int) (int, error) { return 0, nil })
		},
		"handler h": func() { open[int, int](t, nc, testConfig()).Serve(1, nil) },
	}
	for name, f := range cases {
		func() {
			defer func() {
				r := recover()
				if msg, _ := r.(string); !strings.Contains(msg, name) {
					t.Errorf("%s: panic %v, want one naming it", name, r)
				}
			}()
			f()
		}()
	}
}
