package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/seed-bb9ff1e7/jobq"
	"github.com/seed-bb9ff1e7/jobq/jetstream"
	"github.com/seed-bb9ff1e7/jobq/jetstream/embedded"
)

// A queue on an embedded server: a worker in this process, a submission
// with a retry policy, and a stage mixing it with a local pool.
func Example() {
	dir, _ := os.MkdirTemp("", "jobq-example-")
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(embedded.Options{Dir: dir, Port: -1})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		panic(err)
	}
	defer nc.Close()

	ctx := context.Background()
	q, err := jetstream.Open[string, string](ctx, nc, jetstream.Config{Name: "shout"})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	w, err := q.Serve(4, func(ctx context.Context, s string) (string, error) {
		return strings.ToUpper(s) + "!", nil
	})
	if err != nil {
		panic(err)
	}
	defer w.Close()

	v, err := q.Submit(ctx, "hello", jobq.Policy{MaxAttempts: 3}).Await(ctx)
	fmt.Println(v, err)

	// A local pool, then the queue: one Stage.
	trim := jobq.New(2, func(ctx context.Context, s string) (string, error) { return strings.TrimSpace(s), nil })
	defer trim.Close()
	v, err = jobq.Then[string, string, string](trim, q).Submit(ctx, "  world ").Await(ctx)
	fmt.Println(v, err)
	// Output:
	// HELLO! <nil>
	// WORLD! <nil>
}
