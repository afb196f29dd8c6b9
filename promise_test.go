package jobq_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/seed-bb9ff1e7/jobq"
)

func TestPromiseSettleWinsOnce(t *testing.T) {
	cancelled := 0
	r, settle := jobq.NewPromise[int](func() { cancelled++ })
	select {
	case <-r.Done():
		t.Fatal("Done closed before settle")
	default:
	}
	if !settle(7, nil) {
		t.Fatal("first settle reported false")
	}
	if settle(8, errors.New("late")) {
		t.Fatal("second settle reported true")
	}
	r.Cancel() // after completion: no effect, no onCancel
	v, err := r.Await(context.Background())
	if v != 7 || err != nil {
		t.Fatalf("Await = %d, %v; want 7, nil", v, err)
	}
	if cancelled != 0 {
		t.Fatalf("onCancel ran %d times after a winning settle", cancelled)
	}
	<-r.Done()
}

func TestPromiseSettleAfterCancelLoses(t *testing.T) {
	cancelled := 0
	r, settle := jobq.NewPromise[string](func() { cancelled++ })
	r.Cancel()
	r.Cancel()
	if cancelled != 1 {
		t.Fatalf("onCancel ran %d times, want 1", cancelled)
	}
	if settle("x", nil) {
		t.Fatal("settle after Cancel reported true")
	}
	if _, err := r.Await(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Await error = %v, want context.Canceled", err)
	}
}

func TestPromiseNilOnCancelAndConcurrentSettle(t *testing.T) {
	r, settle := jobq.NewPromise[int](nil)
	var wg sync.WaitGroup
	wins := make(chan int, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if settle(i, nil) {
				wins <- i
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); r.Cancel() }()
	wg.Wait()
	close(wins)
	n := 0
	for range wins {
		n++
	}
	_, err := r.Await(context.Background())
	switch {
	case n == 0 && !errors.Is(err, context.Canceled):
		t.Fatalf("no settle won, yet Await error = %v", err)
	case n > 1:
		t.Fatalf("%d settles won, want at most 1", n)
	case n == 1 && err != nil:
		t.Fatalf("a settle won, yet Await error = %v", err)
	}
}

// upper is a Stage backed by an HTTP service: each Submit is one request,
// and its Result a promise settled by the goroutine that makes it.
type upper struct{ url string }

func (u upper) Submit(ctx context.Context, in string, _ ...jobq.Policy) *jobq.Result[string] {
	ctx, cancel := context.WithCancel(ctx)
	r, settle := jobq.NewPromise[string](cancel)
	go func() {
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.url, strings.NewReader(in))
		if err != nil {
			settle("", err)
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			settle("", err)
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		settle(string(b), err)
	}()
	return r
}

// A Stage outside jobq, here an HTTP service, returns promises, so Map
// streams through it as through a Pool.
func ExampleNewPromise() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprint(w, strings.ToUpper(string(b)))
	}))
	defer srv.Close()

	words := []string{"fork", "join", "map"}
	ctx := context.Background()
	for out, err := range jobq.Map(ctx, upper{srv.URL}, func(yield func(string) bool) {
		for _, w := range words {
			if !yield(w) {
				return
			}
		}
	}, jobq.Ordered()) {
		fmt.Println(out, err)
	}
	// Output:
	// FORK <nil>
	// JOIN <nil>
	// MAP <nil>
}

var _ jobq.Stage[string, string] = upper{}

func TestPromiseStageInMapAndThen(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprint(w, strings.ToUpper(string(b)))
	}))
	defer srv.Close()
	p := jobq.New(2, func(_ context.Context, s string) (string, error) { return s + "!", nil })
	defer p.Close()
	s := jobq.Then[string, string, string](upper{srv.URL}, p)
	got, err := s.Submit(context.Background(), "go").Await(context.Background())
	if got != "GO!" || err != nil {
		t.Fatalf("Then over a promise stage = %q, %v; want GO!, nil", got, err)
	}
}
