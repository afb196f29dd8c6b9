package engine

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

// TestFutureWakesEverySleeper checks that goroutines asleep waiting on a
// Future, through Await without a deadline, Outcome, Done and OnDone, all
// return once it completes, each with its outcome, and that only the
// first Complete wins.
func TestFutureWakesEverySleeper(t *testing.T) {
	errBoom := errors.New("boom")
	synctest.Test(t, func(t *testing.T) {
		f := new(Future[int])
		f.Init(nil)
		const n = 4
		got := make(chan string, 3*n+1)
		check := func(how string, v int, err error) {
			if v != 7 || err != errBoom {
				got <- how + ": wrong outcome"
				return
			}
			got <- how
		}
		for range n {
			go func() { v, err := f.Await(context.Background()); check("Await", v, err) }()
			go func() { v, err := f.Outcome(); check("Outcome", v, err) }()
			go func() { <-f.Done(); v, err := f.Outcome(); check("Done", v, err) }()
		}
		if !f.OnDone(func() { got <- "OnDone" }) {
			t.Fatal("OnDone refused the first hook")
		}
		synctest.Wait() // every waiter is asleep
		if f.IsDone() {
			t.Fatal("IsDone before completion")
		}
		if !f.Complete(7, errBoom) {
			t.Fatal("the first Complete lost")
		}
		if f.Complete(8, nil) {
			t.Error("a second Complete won")
		}
		if !f.IsDone() {
			t.Fatal("not IsDone after completion")
		}
		counts := map[string]int{}
		for range 3*n + 1 {
			counts[<-got]++
		}
		want := map[string]int{"Await": n, "Outcome": n, "Done": n, "OnDone": 1}
		for k, v := range want {
			if counts[k] != v {
				t.Errorf("%s returned %d times, want %d (all: %v)", k, counts[k], v, counts)
			}
		}
		// A late waiter returns at once.
		if v, err := f.Outcome(); v != 7 || err != errBoom {
			t.Errorf("Outcome after completion = %d, %v", v, err)
		}
	})
}

// TestFutureRacingWaiterAndCompletion races a goroutine that waits on a
// Future against its completion, both released at once from a spin
// barrier, with a Done channel asked for first so that the completion
// takes the bit lock to close it: the waiter must return with the
// outcome, never sleep for ever, and the completion must not upset the
// Future's WaitGroup (a lazily armed one once went negative here).
func TestFutureRacingWaiterAndCompletion(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two Ps to race")
	}
	n := 5000
	if testing.Short() {
		n = 1000
	}
	var released, ready atomic.Int64 // the round let go, the round the waiter waits for
	got := make(chan int, 1)
	var f *Future[int]
	go func() {
		for i := 1; i <= n; i++ {
			ready.Store(int64(i))
			for released.Load() != int64(i) {
			}
			v, _ := f.Outcome()
			got <- v
		}
	}()
	for i := 1; i <= n; i++ {
		f = new(Future[int])
		f.Init(nil)
		ch := f.Done()
		for ready.Load() != int64(i) {
		}
		released.Store(int64(i))
		f.Complete(i, nil)
		<-ch
		if v := <-got; v != i {
			t.Fatalf("round %d: waiter got %d", i, v)
		}
	}
}
