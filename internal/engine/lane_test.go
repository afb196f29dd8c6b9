package engine

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLaneIsABoundedFIFO: values come out in the order they went in, a
// full lane refuses a push and an empty one a pop, both without a change,
// and the positions count the pushes and pops, over several laps.
func TestLaneIsABoundedFIFO(t *testing.T) {
	l := newLane[int](4)
	var v int
	if l.pop(&v) {
		t.Fatal("pop of an empty lane succeeded")
	}
	next, want := 0, 0
	for lap := range 5 {
		for l.held() < 4 {
			x := next
			if !l.push(&x) {
				t.Fatalf("lap %d: push %d refused with %d held", lap, x, l.held())
			}
			next++
		}
		x := -1
		if l.push(&x) {
			t.Fatalf("lap %d: push to a full lane succeeded", lap)
		}
		for range 2 + lap%3 { // leave some behind: the next lap wraps around them
			if !l.pop(&v) || v != want {
				t.Fatalf("lap %d: pop = %d, want %d", lap, v, want)
			}
			want++
		}
	}
	for l.pop(&v) {
		if v != want {
			t.Fatalf("drain: pop = %d, want %d", v, want)
		}
		want++
	}
	if want != next || l.pushed() != uint64(next) || l.popped() != uint64(next) || l.held() != 0 {
		t.Fatalf("popped up to %d of %d; pushed() %d popped() %d held() %d", want, next, l.pushed(), l.popped(), l.held())
	}
}

// TestLanePopZeroesItsCell: a popped value's cell keeps nothing alive.
func TestLanePopZeroesItsCell(t *testing.T) {
	l := newLane[*int](2)
	x := new(int)
	l.push(&x)
	var v *int
	l.pop(&v)
	for i := range l.cells {
		if l.cells[i].v != nil {
			t.Fatalf("cell %d still holds %p after its pop", i, l.cells[i].v)
		}
	}
}

func TestNewLaneRefusesASizeThatIsNoPowerOfTwo(t *testing.T) {
	for _, n := range []int{-1, 0, 1, 3, 6} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("newLane(%d) did not panic", n)
				}
			}()
			newLane[int](n)
		}()
	}
}

// TestLaneConcurrentPushersAndPoppers: with several of each, every value
// pushed is popped exactly once, and each pusher's values come out in its
// order.
func TestLaneConcurrentPushersAndPoppers(t *testing.T) {
	const pushers, poppers, each = 4, 4, 20000
	l := newLane[[2]int](8)
	var got [pushers][]int
	var mu sync.Mutex
	var wg sync.WaitGroup
	var popped atomic.Int64
	for p := range pushers {
		wg.Go(func() {
			for i := range each {
				v := [2]int{p, i}
				for !l.push(&v) {
					runtime.Gosched()
				}
			}
		})
	}
	for range poppers {
		wg.Go(func() {
			var mine [pushers][]int
			var v [2]int
			for popped.Load() < pushers*each {
				if l.pop(&v) {
					popped.Add(1)
					mine[v[0]] = append(mine[v[0]], v[1])
				} else {
					runtime.Gosched()
				}
			}
			mu.Lock()
			for p := range mine {
				got[p] = append(got[p], mine[p]...)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for p := range got {
		seen := make([]bool, each)
		for _, i := range got[p] {
			if seen[i] {
				t.Fatalf("pusher %d's value %d popped twice", p, i)
			}
			seen[i] = true
		}
		if len(got[p]) != each {
			t.Fatalf("pusher %d: %d values popped, want %d", p, len(got[p]), each)
		}
	}
}

// TestLaneCells: the lane takes the largest power of two within the
// queue's bound, at most 256, and a queue of one has none.
func TestLaneCells(t *testing.T) {
	for _, c := range []struct{ size, want int }{{1, 0}, {2, 2}, {3, 2}, {64, 64}, {100, 64}, {256, 256}, {4096, 256}} {
		if got := laneCells(c.size); got != c.want {
			t.Errorf("laneCells(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}

// chanSink sends each outcome on a channel.
type chanSink chan error

func (s chanSink) Done(_ int32, _ int, err error) { s <- err }

// recvOrHang receives from ch, failing t if nothing comes for long: a
// lost wake-up.
func recvOrHang[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing for 10s", what)
		panic("unreachable")
	}
}

// TestLaneWakesAnIdleWorker: one item at a time, each pushed as the worker
// that ran the one before goes idle, is run; a push that the worker's last
// look at the lane misses must see it idle and wake it.
func TestLaneWakesAnIdleWorker(t *testing.T) {
	p := New(1, func(_ context.Context, x int) (int, error) { return x, nil }, Config{QueueSize: 64})
	defer p.Shutdown(context.Background())
	done := make(chanSink, 1)
	s := p.NewStream(context.Background(), done, nil)
	defer s.Close()
	if s.sl == nil {
		t.Fatal("the stream has no lane")
	}
	for i := range 100000 {
		if err := s.Submit(i, 0); err != nil {
			t.Fatal(err)
		}
		if err := recvOrHang(t, done, "item "+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if m := p.Metrics(); m.Submitted != 100000 {
		t.Fatalf("Submitted %d, want 100000", m.Submitted)
	}
}

// gatedStream returns a pool of one worker whose handler signals started,
// then waits for gate to close, and a stream into it, whose outcomes go to
// done, after submitting items 0 to n-1 (n <= 8) on it.
func gatedStream(t *testing.T, n int) (p *Pool[int, int], s *Stream[int, int], gate, started chan struct{}, done chanSink) {
	t.Helper()
	gate = make(chan struct{})
	started = make(chan struct{}, 8)
	p = New(1, func(_ context.Context, x int) (int, error) {
		started <- struct{}{}
		<-gate
		return x, nil
	}, Config{QueueSize: 64})
	done = make(chanSink, 8)
	s = p.NewStream(context.Background(), done, nil)
	for i := range n {
		if err := s.Submit(i, int32(i)); err != nil {
			t.Fatal(err)
		}
	}
	return p, s, gate, started, done
}

// TestLaneCountsItsItems: the lane's items count as submitted and queued
// until a worker takes them, and Shutdown runs them all.
func TestLaneCountsItsItems(t *testing.T) {
	p, s, gate, started, done := gatedStream(t, 5)
	<-started
	if m := p.Metrics(); m.Submitted != 5 || m.Queued != 4 || m.Running != 1 {
		t.Fatalf("Submitted %d Queued %d Running %d, want 5, 4, 1", m.Submitted, m.Queued, m.Running)
	}
	close(gate)
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if m := p.Metrics(); m.Succeeded != 5 || m.Queued != 0 || m.Running != 0 {
		t.Fatalf("after Shutdown: Succeeded %d Queued %d Running %d, want 5, 0, 0", m.Succeeded, m.Queued, m.Running)
	}
	s.Close()
}

// TestLaneItemsEndWithErrClosedAtGiveUp: when Shutdown gives up, the
// lane's items that never ran end with ErrClosed and leave Queued.
func TestLaneItemsEndWithErrClosedAtGiveUp(t *testing.T) {
	p, s, gate, started, done := gatedStream(t, 5)
	defer s.Close()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	for range 4 {
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("a queued item ended with %v, want ErrClosed", err)
		}
	}
	if m := p.Metrics(); m.Queued != 0 || m.Canceled != 4 {
		t.Fatalf("Queued %d Canceled %d, want 0 and 4", m.Queued, m.Canceled)
	}
	close(gate)
	<-done // the running item, which ignored its ctx, ends as it returns
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestLanePushesRacingShutdownLoseNothing: pushers run into a Shutdown;
// every item the lane took ends exactly once before Shutdown returns, and
// those it refused say ErrClosed. A push that claims its place as the
// drain counts must be run, or ended, never stranded.
func TestLanePushesRacingShutdownLoseNothing(t *testing.T) {
	for round := range 300 {
		p := New(2, func(_ context.Context, x int) (int, error) { return x, nil }, Config{QueueSize: 8})
		var ended atomic.Int64
		sink := countSink{&ended}
		s := p.NewStream(context.Background(), sink, nil)
		var accepted atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 3 {
			wg.Go(func() {
				<-start
				for i := 0; ; i++ {
					err := s.Submit(i, 0)
					if err != nil {
						if !errors.Is(err, ErrClosed) {
							t.Errorf("Submit = %v, want ErrClosed", err)
						}
						return
					}
					accepted.Add(1)
				}
			})
		}
		close(start)
		runtime.Gosched()
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		endedAtShutdown := ended.Load()
		wg.Wait()
		// A push that found intake stopped only after its claim may end
		// its item after Shutdown returned: with ErrClosed, at once.
		m := p.Metrics()
		if got := ended.Load(); got != accepted.Load() || m.Submitted != uint64(got) || m.Queued != 0 {
			t.Fatalf("round %d: %d accepted, %d ended (%d by Shutdown's return); Submitted %d Queued %d\n%s",
				round, accepted.Load(), got, endedAtShutdown, m.Submitted, m.Queued, p.Dump())
		}
		s.Close()
	}
}

type countSink struct{ n *atomic.Int64 }

func (s countSink) Done(int32, int, error) { s.n.Add(1) }

// TestLaneWorkersRetireWhenShrunk: workers running the lane's items off
// the lock leave when the pool is shrunk, while items keep coming.
func TestLaneWorkersRetireWhenShrunk(t *testing.T) {
	p := New(4, func(_ context.Context, x int) (int, error) { return x, nil }, Config{QueueSize: 256})
	var ended atomic.Int64
	s := p.NewStream(context.Background(), countSink{&ended}, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.Submit(i, 0); err != nil {
				t.Error(err)
				return
			}
		}
	})
	p.Resize(1)
	for {
		p.mu.Lock()
		live := p.live
		p.mu.Unlock()
		if live == 1 {
			break
		}
		runtime.Gosched()
	}
	close(stop)
	wg.Wait()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := p.Metrics(); uint64(ended.Load()) != m.Submitted || m.Queued != 0 {
		t.Fatalf("%d ended, Submitted %d Queued %d", ended.Load(), m.Submitted, m.Queued)
	}
	s.Close()
}

// TestLaneExcessWorkerTakesNoMoreItems: a busy worker that a shrink has
// made one too many leaves once its job ends, without running the lane's
// next items in its burst: after the pool goes from 2 workers to 1, no
// two items run at once, though the lane holds several.
func TestLaneExcessWorkerTakesNoMoreItems(t *testing.T) {
	gate := make(chan struct{})
	started := make(chan struct{}, 2)
	step := make(chan struct{})
	var running atomic.Int32
	p := New(2, func(_ context.Context, x int) (int, error) {
		if x < 2 {
			started <- struct{}{}
			<-gate
			return x, nil
		}
		running.Add(1)
		<-step
		running.Add(-1)
		return x, nil
	}, Config{QueueSize: 64})
	defer shutdownOrGiveUp(p)
	const items = 10
	done := make(chanSink, items)
	s := p.NewStream(context.Background(), done, nil)
	defer s.Close()
	for i := range items {
		if err := s.Submit(i, int32(i)); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	<-started // both workers hold an item: the other 8 wait in the lane
	p.Resize(1)
	close(gate)
	// Either one worker leaves, or both go on into the lane's items,
	// which wait on step: one of the two comes.
	for {
		p.mu.Lock()
		live := p.live
		p.mu.Unlock()
		if live == 1 || running.Load() == 2 {
			break
		}
		runtime.Gosched()
	}
	if n := running.Load(); n == 2 {
		close(step)
		t.Fatal("after the shrink to 1 worker, 2 of the lane's items run at once")
	}
	for range items - 2 {
		step <- struct{}{}
	}
	for i := range items {
		if err := recvOrHang(t, done, "item "+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// shutdownOrGiveUp shuts p down, giving up after a while: a test that
// failed may have left an item that never ends.
func shutdownOrGiveUp(p *Pool[int, int]) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.Shutdown(ctx)
}

// setLaneHook sets laneHook to h until t ends.
func setLaneHook(t *testing.T, h func(point string)) {
	laneHook.Store(&h)
	t.Cleanup(func() { laneHook.Store(nil) })
}

// TestLanePushThatAWorkerMissesWakesIt forces the idle ordering's race: a
// worker finds the lane empty and, before it says it is idle, an item is
// pushed, whose pusher sees no worker idle. The worker's last look at the
// lane must find the item.
func TestLanePushThatAWorkerMissesWakesIt(t *testing.T) {
	p := New(1, func(_ context.Context, x int) (int, error) { return x, nil }, Config{QueueSize: 64})
	defer shutdownOrGiveUp(p)
	done := make(chanSink, 2)
	s := p.NewStream(context.Background(), done, nil)
	defer s.Close()
	var once sync.Once
	setLaneHook(t, func(point string) {
		if point == "idle" {
			once.Do(func() {
				if err := s.Submit(2, 1); err != nil { // the worker holds p.mu: a push takes none
					t.Error(err)
				}
			})
		}
	})
	if err := s.Submit(1, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := recvOrHang(t, done, "item "+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLaneWorkerAddedByResizeSeesAPush forces the idle ordering's race on
// a worker that Resize adds to a paused pool: it finds nothing and, before
// it counts as idle, an item is pushed, whose pusher sees no worker idle.
// The new worker's last look at the lane must find the item, or it sleeps
// beside it and Shutdown never drains.
func TestLaneWorkerAddedByResizeSeesAPush(t *testing.T) {
	p := New(0, func(_ context.Context, x int) (int, error) { return x, nil }, Config{QueueSize: 64})
	defer shutdownOrGiveUp(p)
	done := make(chanSink, 1)
	s := p.NewStream(context.Background(), done, nil)
	defer s.Close()
	var fired atomic.Bool
	setLaneHook(t, func(point string) {
		if point == "idle" && fired.CompareAndSwap(false, true) {
			if err := s.Submit(1, 0); err != nil { // Resize holds p.mu: a push takes none
				t.Error(err)
			}
		}
	})
	p.Resize(1)
	if !fired.Load() {
		t.Fatal("the worker Resize added went idle without a last look at the lane")
	}
	if err := recvOrHang(t, done, "the item pushed as the new worker went idle"); err != nil {
		t.Fatal(err)
	}
}

// orderPool returns a pool of one worker whose handler appends its input
// to the order it returns and, for 0, signals started and waits for gate.
func orderPool(t *testing.T, queue int) (p *Pool[int, int], gate, started chan struct{}, order func() []int) {
	t.Helper()
	gate = make(chan struct{})
	started = make(chan struct{}, 1)
	var mu sync.Mutex
	var got []int
	p = New(1, func(_ context.Context, x int) (int, error) {
		mu.Lock()
		got = append(got, x)
		mu.Unlock()
		if x == 0 {
			started <- struct{}{}
			<-gate
		}
		return x, nil
	}, Config{QueueSize: queue})
	t.Cleanup(func() { shutdownOrGiveUp(p) })
	return p, gate, started, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// TestLaneRunIsBoundedWhileAJobIsQueued: a worker takes at most laneBurst
// of the lane's items in a row, counting the one it took under the lock,
// before it serves a job queued meanwhile.
func TestLaneRunIsBoundedWhileAJobIsQueued(t *testing.T) {
	p, gate, started, order := orderPool(t, 64)
	const items = 11
	done := make(chanSink, items+1)
	s := p.NewStream(context.Background(), done, nil)
	defer s.Close()
	if err := s.Submit(0, 0); err != nil { // the idle worker takes it from the lane
		t.Fatal(err)
	}
	<-started
	if err := p.Go(context.Background(), 100, true); err != nil { // queued: the worker is busy
		t.Fatal(err)
	}
	for i := 1; i < items; i++ {
		if err := s.Submit(i, int32(i)); err != nil {
			t.Fatal(err)
		}
	}
	close(gate)
	for i := range items {
		if err := recvOrHang(t, done, "item "+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := order()
	if run := slices.Index(got, 100); run < 0 || run > laneBurst {
		t.Fatalf("start order %v: %d lane items ran before the queued job, want at most %d", got, run, laneBurst)
	}
}

// TestLaneIsNotStarvedByAQueueThatNeverEmpties: jobs with records, each
// queueing the next before it ends, keep the queue from ever emptying; a
// lane item pushed before the second of them still starts within
// laneBurst of them.
func TestLaneIsNotStarvedByAQueueThatNeverEmpties(t *testing.T) {
	const chain = 1000
	var records, before atomic.Int64
	before.Store(-1)
	gate := make(chan struct{})
	var p *Pool[int, int]
	p = New(1, func(_ context.Context, x int) (int, error) {
		if x == 0 { // the lane item
			before.Store(records.Load())
			return x, nil
		}
		if x == 1 {
			<-gate
		}
		records.Add(1)
		if x < chain {
			// Refused once the test's Shutdown stops intake: the chain
			// ends there.
			_, _ = p.Submit(context.Background(), x+1, true, false)
		}
		return x, nil
	}, Config{QueueSize: 8})
	defer shutdownOrGiveUp(p)
	done := make(chanSink, 1)
	s := p.NewStream(context.Background(), done, nil)
	defer s.Close()
	if _, err := p.Submit(context.Background(), 1, true, false); err != nil {
		t.Fatal(err)
	}
	for p.Metrics().Running == 0 {
		runtime.Gosched()
	}
	if err := s.Submit(0, 0); err != nil { // while job 1 runs, before job 2 exists
		t.Fatal(err)
	}
	close(gate)
	if err := recvOrHang(t, done, "the lane item"); err != nil {
		t.Fatal(err)
	}
	// Job 1 was running as the item came; the rest were queued after it.
	if n := before.Load() - 1; n > laneBurst {
		t.Fatalf("the lane item started after %d jobs queued after it, want at most %d", n, laneBurst)
	}
}

// TestLaneTurnSkipsDeadRetryEntries: when a worker has taken laneBurst
// jobs in a row from the queue, the lane's head goes next, even when the
// retries hold an entry whose job ended while it waited there (a Cancel or
// an ended ctx leaves it in place): pop drops it, and takes no 9th job
// from the queue. A white-box test of pop, on a worker of the test's own:
// the pool has none, so nothing else pops.
func TestLaneTurnSkipsDeadRetryEntries(t *testing.T) {
	p := New(0, func(_ context.Context, x int) (int, error) { return x, nil }, Config{QueueSize: 64})
	s := p.NewStream(context.Background(), make(chanSink, 1), nil)
	defer s.Close()
	if err := s.Submit(7, 0); err != nil { // no worker: it stays in the lane
		t.Fatal(err)
	}
	if err := p.Go(context.Background(), 100, true); err != nil {
		t.Fatal(err)
	}
	dead := p.newJob(context.Background(), 1, nil)
	dead.Word.Store(mkState(1, Done))
	p.mu.Lock()
	p.retries.Push(task[int, int]{j: dead, k: 1})
	w := &worker[int, int]{p: p, wake: make(chan struct{}, 1)}
	w.queueRun = laneBurst
	var got task[int, int]
	ok := p.pop(w, &got)
	p.mu.Unlock()
	if !ok || got.rt == nil || got.in != 7 {
		t.Fatalf("after %d jobs in a row from the queue, pop took %d (ok %v, from the lane %v), want the lane's item 7", laneBurst, got.in, ok, got.rt != nil)
	}
}

// TestLanePushPastTheDrainEndsItsItem forces the stopped ordering's race:
// a push passes the intake check, then Shutdown runs to its end before the
// push claims its place. Nobody is left to run the item: the pusher must
// end it with ErrClosed, not strand it.
func TestLanePushPastTheDrainEndsItsItem(t *testing.T) {
	p := New(1, func(_ context.Context, x int) (int, error) { return x, nil }, Config{QueueSize: 64})
	done := make(chanSink, 1)
	s := p.NewStream(context.Background(), done, nil)
	defer s.Close()
	setLaneHook(t, func(point string) {
		if point == "push" {
			if err := p.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
		}
	})
	if err := s.Submit(1, 0); err != nil {
		t.Fatalf("Submit = %v: the push passed the intake check", err)
	}
	if err := recvOrHang(t, done, "the item"); !errors.Is(err, ErrClosed) {
		t.Fatalf("the item ended with %v, want ErrClosed", err)
	}
	if m := p.Metrics(); m.Submitted != 1 || m.Canceled != 1 || m.Queued != 0 {
		t.Fatalf("Submitted %d Canceled %d Queued %d, want 1, 1, 0", m.Submitted, m.Canceled, m.Queued)
	}
}

// TestLanePushAsShutdownDrainsIsRun: a push that claims its place while
// Shutdown waits for a running job is counted by the drain, so a worker
// runs it before Shutdown returns.
func TestLanePushAsShutdownDrainsIsRun(t *testing.T) {
	gate := make(chan struct{})
	started := make(chan struct{}, 1)
	p := New(1, func(_ context.Context, x int) (int, error) {
		if x == 0 {
			started <- struct{}{}
			<-gate
		}
		return x, nil
	}, Config{QueueSize: 64})
	done := make(chanSink, 2)
	s := p.NewStream(context.Background(), done, nil)
	defer s.Close()
	if err := s.Submit(0, 0); err != nil {
		t.Fatal(err)
	}
	<-started
	shut := make(chan error, 1)
	setLaneHook(t, func(point string) {
		if point == "push" {
			go func() { shut <- p.Shutdown(context.Background()) }()
			<-p.Closed() // intake stopped; the drain waits for item 0
		}
	})
	if err := s.Submit(1, 1); err != nil {
		t.Fatal(err)
	}
	close(gate)
	for range 2 {
		if err := recvOrHang(t, done, "an item"); err != nil {
			t.Fatalf("an item ended with %v, want nil: it was accepted before the drain", err)
		}
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}
