package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/seed-bb9ff1e7/jobq/jetstream"
	"github.com/seed-bb9ff1e7/jobq/jetstream/embedded"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role))
	}
	goleak.VerifyTestMain(m)
}

// testServer starts an embedded server on a temporary folder, stopped when
// the test ends.
func testServer(t testing.TB) *embedded.Server {
	t.Helper()
	s, err := embedded.Start(embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// connect returns an in-process connection, closed when the test ends.
func connect(t testing.TB, s *embedded.Server) *nats.Conn {
	t.Helper()
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

var queueN atomic.Int64

// testConfig is a queue of a name of its own with a short lease.
func testConfig() jetstream.Config {
	return jetstream.Config{
		Name:  fmt.Sprintf("t%d", queueN.Add(1)),
		Lease: 500 * time.Millisecond,
	}
}

// open opens a queue, closed when the test ends.
func open[In, Out any](t testing.TB, nc *nats.Conn, cfg jetstream.Config) *jetstream.Queue[In, Out] {
	t.Helper()
	q, err := jetstream.Open[In, Out](context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// serve starts workers, shut down when the test ends.
func serve[In, Out any](t testing.TB, q *jetstream.Queue[In, Out], n int, h func(context.Context, In) (Out, error), pol ...any) *jetstream.Worker[In, Out] {
	t.Helper()
	w, err := q.Serve(n, h, policies(pol)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return w
}

// await awaits r for at most 10 seconds.
func await[T any](t testing.TB, r interface {
	Await(context.Context) (T, error)
}) (T, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := r.Await(ctx)
	if err == ctx.Err() && err != nil {
		t.Fatalf("Await: no outcome within 10s")
	}
	return v, err
}

// eventually polls cond until it holds, for at most 10 seconds: for
// conditions on another process's or the server's state, which no channel
// here can signal.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
