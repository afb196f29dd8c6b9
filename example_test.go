package jobq_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/seed-bb9ff1e7/jobq"
)

func ExampleNew() {
	p := jobq.New(4, func(ctx context.Context, s string) (int, error) {
		return len(s), nil
	})
	defer p.Close()

	ctx := context.Background()
	n, err := p.Submit(ctx, "hello, world").Await(ctx)
	fmt.Println(n, err)
	// Output: 12 <nil>
}

func ExamplePool_TrySubmit() {
	started, release := make(chan struct{}), make(chan struct{})
	p := jobq.New(1, func(ctx context.Context, n int) (int, error) {
		if n == 1 {
			close(started)
			<-release
		}
		return n * n, nil
	}, jobq.WithQueueSize(1))
	defer p.Close()

	ctx := context.Background()
	busy := p.Submit(ctx, 1) // occupies the only worker
	<-started
	queued, _ := p.TrySubmit(ctx, 2) // takes the only queue slot
	if _, err := p.TrySubmit(ctx, 3); errors.Is(err, jobq.ErrQueueFull) {
		fmt.Println("queue full, try later")
	}
	close(release)
	squares, err := jobq.AwaitAll(ctx, busy, queued)
	fmt.Println(squares, err)
	// Output:
	// queue full, try later
	// [1 4] <nil>
}

func ExamplePool_Go() {
	var total atomic.Int64
	p := jobq.New(4, func(ctx context.Context, n int64) (struct{}, error) {
		total.Add(n)
		return struct{}{}, nil
	})
	for n := int64(1); n <= 100; n++ {
		if err := p.Go(context.Background(), n); err != nil {
			fmt.Println(err) // ErrQueueFull: the queue holds DefaultQueueSize jobs
		}
	}
	p.Close() // returns once every accepted job has run
	fmt.Println(total.Load(), p.Metrics().Succeeded)
	// Output: 5050 100
}

func ExampleResult_Cancel() {
	started := make(chan struct{})
	var ran atomic.Int32
	p := jobq.New(1, func(ctx context.Context, n int) (int, error) {
		ran.Add(1)
		if n == 0 {
			close(started)
			<-ctx.Done() // a long job that honours its ctx
			return 0, ctx.Err()
		}
		return n, nil
	})
	ctx := context.Background()
	running := p.Submit(ctx, 0)
	<-started
	queued := p.Submit(ctx, 1)

	queued.Cancel() // it never runs
	running.Cancel()
	_, err := queued.Await(ctx)
	fmt.Println("queued:", err)
	_, err = running.Await(ctx)
	fmt.Println("running:", err)

	p.Close()
	fmt.Println("handler calls:", ran.Load(), "cancelled:", p.Metrics().Canceled)
	// Output:
	// queued: context canceled
	// running: context canceled
	// handler calls: 1 cancelled: 2
}

func ExampleAwaitAll() {
	p := jobq.New(3, func(_ context.Context, s string) (string, error) {
		if s == "" {
			return "", errors.New("empty string")
		}
		return strings.ToUpper(s), nil
	})
	defer p.Close()

	ctx := context.Background()
	var rs []*jobq.Result[string]
	for _, s := range []string{"a", "b", "c"} {
		rs = append(rs, p.Submit(ctx, s))
	}
	out, err := jobq.AwaitAll(ctx, rs...)
	fmt.Println(out, err)

	_, err = jobq.AwaitAll(ctx, p.Submit(ctx, "x"), p.Submit(ctx, ""))
	fmt.Println(err)
	// Output:
	// [A B C] <nil>
	// jobq: job 1: empty string
}

func ExamplePolicy() {
	var calls atomic.Int32
	p := jobq.New(2, func(ctx context.Context, url string) (string, error) {
		if calls.Add(1) < 3 {
			return "", errors.New("503 service unavailable")
		}
		return "200 OK", nil
	})
	defer p.Close()

	fetch := jobq.Policy{
		MaxAttempts: 5,
		Backoff:     jobq.Exponential(10*time.Millisecond, time.Second),
		Jitter:      jobq.EqualJitter,
		OnRetry: func(attempt int, err error, _ time.Duration) {
			fmt.Printf("attempt %d failed: %v\n", attempt, err)
		},
	}
	ctx := context.Background()
	r := p.Submit(ctx, "https://example.com/", fetch)
	status, err := r.Await(ctx)
	fmt.Println(status, err, "after", r.Attempts(), "attempts")
	// Output:
	// attempt 1 failed: 503 service unavailable
	// attempt 2 failed: 503 service unavailable
	// 200 OK <nil> after 3 attempts
}

func ExamplePolicy_timeout() {
	p := jobq.New(2, func(ctx context.Context, d time.Duration) (string, error) {
		select {
		case <-time.After(d):
			return fmt.Sprint("slept ", d), nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	defer p.Close()

	ctx := context.Background()
	_, err := p.Submit(ctx, time.Hour, jobq.Policy{Timeout: 20 * time.Millisecond}).Await(ctx)
	fmt.Println(err, errors.Is(err, context.DeadlineExceeded))

	v, err := p.Submit(ctx, time.Millisecond, jobq.Policy{Timeout: 10 * time.Second}).Await(ctx)
	fmt.Println(v, err)
	// Output:
	// context deadline exceeded true
	// slept 1ms <nil>
}

func ExamplePermanent() {
	var calls atomic.Int32
	p := jobq.New(1, func(_ context.Context, id int) (string, error) {
		calls.Add(1)
		if id < 0 {
			// Retrying cannot help: say so.
			return "", jobq.Permanent(fmt.Errorf("invalid id %d", id))
		}
		return "user " + strconv.Itoa(id), nil
	})
	defer p.Close()

	ctx := context.Background()
	r := p.Submit(ctx, -1, jobq.Policy{MaxAttempts: 5, Backoff: jobq.Constant(time.Millisecond)})
	_, err := r.Await(ctx)
	fmt.Println(err, "- attempts:", r.Attempts())
	// Output: invalid id -1 - attempts: 1
}

func ExampleRetryAfter() {
	var calls atomic.Int32
	p := jobq.New(1, func(_ context.Context, path string) (string, error) {
		if calls.Add(1) == 1 {
			// The server asked us to come back in 20ms.
			return "", jobq.RetryAfter(20*time.Millisecond, errors.New("429 too many requests"))
		}
		return "200 OK", nil
	})
	defer p.Close()

	pol := jobq.Policy{
		MaxAttempts: 3,
		Backoff:     jobq.Constant(time.Hour), // replaced by the RetryAfter delay
		OnRetry: func(attempt int, err error, delay time.Duration) {
			fmt.Printf("attempt %d: %v; retrying in %v\n", attempt, err, delay)
		},
	}
	ctx := context.Background()
	v, err := p.Submit(ctx, "/api/items", pol).Await(ctx)
	fmt.Println(v, err)
	// Output:
	// attempt 1: 429 too many requests; retrying in 20ms
	// 200 OK <nil>
}

func ExampleWithPolicy() {
	p := jobq.New(2, func(context.Context, string) (string, error) {
		return "", errors.New("unavailable")
	}, jobq.WithPolicy(jobq.Policy{MaxAttempts: 3, Backoff: jobq.Constant(time.Millisecond)}))
	defer p.Close()

	ctx := context.Background()
	r := p.Submit(ctx, "a") // the pool's policy
	_, err := r.Await(ctx)
	fmt.Println(r.Attempts(), err)

	r = p.Submit(ctx, "b", jobq.Policy{MaxAttempts: 1}) // its own, for this job
	_, err = r.Await(ctx)
	fmt.Println(r.Attempts(), err)
	// Output:
	// 3 jobq: gave up after 3 attempts: unavailable
	// 1 unavailable
}

func ExamplePool_Metrics() {
	p := jobq.New(2, func(_ context.Context, n int) (int, error) {
		if n%2 == 1 {
			return 0, errors.New("odd")
		}
		return n, nil
	})
	ctx := context.Background()
	var rs []*jobq.Result[int]
	for n := range 10 {
		rs = append(rs, p.Submit(ctx, n))
	}
	for _, r := range rs {
		_, _ = r.Await(ctx)
	}
	p.Close()

	m := p.Metrics()
	fmt.Printf("submitted %d: succeeded %d, failed %d; running %d, queued %d\n",
		m.Submitted, m.Succeeded, m.Failed, m.Running, m.Queued)
	// Output: submitted 10: succeeded 5, failed 5; running 0, queued 0
}

func ExamplePool_Shutdown() {
	started := make(chan struct{})
	p := jobq.New(1, func(ctx context.Context, n int) (int, error) {
		if n == 0 {
			close(started)
			<-ctx.Done() // a job that would run for ever, but honours its ctx
			return 0, ctx.Err()
		}
		return n, nil
	})
	ctx := context.Background()
	stuck := p.Submit(ctx, 0)
	<-started
	queued := p.Submit(ctx, 1)

	sctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	fmt.Println("Shutdown:", p.Shutdown(sctx)) // gives up after 10ms
	_, err := stuck.Await(ctx)
	fmt.Println("running job:", err)
	_, err = queued.Await(ctx)
	fmt.Println("queued job:", err)
	fmt.Println("submitting after Shutdown:", p.Go(ctx, 2))
	// Output:
	// Shutdown: context deadline exceeded
	// running job: jobq: pool closed
	// queued job: jobq: pool closed
	// submitting after Shutdown: jobq: pool closed
}

// The two usage examples of the seed's README, with the one change the
// design allows: work.TaskMessage is now jobq.TaskMessage.

func usingTaskFunc() {
	var (
		num = 100
		res = make(chan string, num)
	)
	queue := jobq.NewPool(5)
	defer queue.Release()

	for i := 0; i < num; i++ {
		go func(i int) {
			_ = queue.EnQueueTask(func(ctx context.Context) error {
				res <- fmt.Sprintf("Handling job: %02d", i)
				return nil
			})
		}(i)
	}
	for i := 0; i < num; i++ {
		fmt.Println("Message:", <-res)
		time.Sleep(50 * time.Millisecond)
	}
}

type job struct {
	Name    string
	Age     int
	Message string
}

func (j *job) Bytes() []byte {
	bytes, err := json.Marshal(j)
	if err != nil {
		panic(err)
	}
	return bytes
}

func usingMessageType() {
	var (
		num = 100
		wc  = make(chan int64)
		res = make(chan string, num)
	)
	queue := jobq.NewPool(5, jobq.WithFn(func(ctx context.Context, msg jobq.TaskMessage) error {
		var val job
		if err := json.Unmarshal(msg.Payload(), &val); err != nil {
			return err
		}
		res <- val.Name + " " + strconv.Itoa(val.Age) + ", " + val.Message
		return nil
	}))
	for i := 0; i < num; i++ {
		go func(i int) {
			err := queue.EnQueue(&job{
				Name:    "Worker",
				Age:     i,
				Message: fmt.Sprintf("with job: %02d", i),
			})
			if err != nil {
				log.Println(err)
			}
			wc <- queue.BusyWorkers()
		}(i)
	}
	for i := 0; i < num; i++ {
		fmt.Println("Message:", <-res, "worker count:", <-wc)
		time.Sleep(50 * time.Millisecond)
	}
}

// Example_usingTaskFunc runs the seed README's first example unchanged. Its
// lines come in any order, hence the unordered output. It takes 5s: the seed
// sleeps 50ms per line.
func Example_usingTaskFunc() {
	usingTaskFunc()
	// Unordered output:
	// Message: Handling job: 00
	// Message: Handling job: 01
	// Message: Handling job: 02
	// Message: Handling job: 03
	// Message: Handling job: 04
	// Message: Handling job: 05
	// Message: Handling job: 06
	// Message: Handling job: 07
	// Message: Handling job: 08
	// Message: Handling job: 09
	// Message: Handling job: 10
	// Message: Handling job: 11
	// Message: Handling job: 12
	// Message: Handling job: 13
	// Message: Handling job: 14
	// Message: Handling job: 15
	// Message: Handling job: 16
	// Message: Handling job: 17
	// Message: Handling job: 18
	// Message: Handling job: 19
	// Message: Handling job: 20
	// Message: Handling job: 21
	// Message: Handling job: 22
	// Message: Handling job: 23
	// Message: Handling job: 24
	// Message: Handling job: 25
	// Message: Handling job: 26
	// Message: Handling job: 27
	// Message: Handling job: 28
	// Message: Handling job: 29
	// Message: Handling job: 30
	// Message: Handling job: 31
	// Message: Handling job: 32
	// Message: Handling job: 33
	// Message: Handling job: 34
	// Message: Handling job: 35
	// Message: Handling job: 36
	// Message: Handling job: 37
	// Message: Handling job: 38
	// Message: Handling job: 39
	// Message: Handling job: 40
	// Message: Handling job: 41
	// Message: Handling job: 42
	// Message: Handling job: 43
	// Message: Handling job: 44
	// Message: Handling job: 45
	// Message: Handling job: 46
	// Message: Handling job: 47
	// Message: Handling job: 48
	// Message: Handling job: 49
	// Message: Handling job: 50
	// Message: Handling job: 51
	// Message: Handling job: 52
	// Message: Handling job: 53
	// Message: Handling job: 54
	// Message: Handling job: 55
	// Message: Handling job: 56
	// Message: Handling job: 57
	// Message: Handling job: 58
	// Message: Handling job: 59
	// Message: Handling job: 60
	// Message: Handling job: 61
	// Message: Handling job: 62
	// Message: Handling job: 63
	// Message: Handling job: 64
	// Message: Handling job: 65
	// Message: Handling job: 66
	// Message: Handling job: 67
	// Message: Handling job: 68
	// Message: Handling job: 69
	// Message: Handling job: 70
	// Message: Handling job: 71
	// Message: Handling job: 72
	// Message: Handling job: 73
	// Message: Handling job: 74
	// Message: Handling job: 75
	// Message: Handling job: 76
	// Message: Handling job: 77
	// Message: Handling job: 78
	// Message: Handling job: 79
	// Message: Handling job: 80
	// Message: Handling job: 81
	// Message: Handling job: 82
	// Message: Handling job: 83
	// Message: Handling job: 84
	// Message: Handling job: 85
	// Message: Handling job: 86
	// Message: Handling job: 87
	// Message: Handling job: 88
	// Message: Handling job: 89
	// Message: Handling job: 90
	// Message: Handling job: 91
	// Message: Handling job: 92
	// Message: Handling job: 93
	// Message: Handling job: 94
	// Message: Handling job: 95
	// Message: Handling job: 96
	// Message: Handling job: 97
	// Message: Handling job: 98
	// Message: Handling job: 99
}

// Example_usingMessageType is the seed README's second example, unchanged
// but for jobq.TaskMessage. It is compiled, not run: each line ends with a
// busy-worker count that varies from run to run. TestSeedMessageExample runs
// it and checks its lines.
func Example_usingMessageType() {
	usingMessageType()
}

// seedChildEnv marks the process that TestSeedMessageExample starts to run
// the seed example.
const seedChildEnv = "JOBQ_SEED_MESSAGE_EXAMPLE_CHILD"

// TestSeedMessageExample runs usingMessageType in a child process (the seed
// code never releases its Queue, so its five workers would outlive it and
// trip the goroutine leak checks of later tests) and checks the 100 lines it
// prints. It takes 5s: the seed sleeps 50ms per line.
func TestSeedMessageExample(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 5s")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSeedMessageExampleChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), seedChildEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}

	line := regexp.MustCompile(`^Message: Worker (\d+), with job: (\d\d) worker count: (\d+)$`)
	seen := map[int]int{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "Message:") {
			continue // the child's test framework output
		}
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Errorf("line %q does not match %v", sc.Text(), line)
			continue
		}
		age, _ := strconv.Atoi(m[1])
		num, _ := strconv.Atoi(m[2])
		busy, _ := strconv.Atoi(m[3])
		if age != num {
			t.Errorf("line %q: worker %d carries job %d, want the same number", sc.Text(), age, num)
		}
		if busy < 0 || busy > 5 {
			t.Errorf("line %q: worker count %d, want 0..5", sc.Text(), busy)
		}
		seen[age]++
	}
	want := map[int]int{}
	for i := range 100 {
		want[i] = 1
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("jobs printed, by number (-want +got):\n%s", diff)
	}
}

// TestSeedMessageExampleChild is the child process of TestSeedMessageExample.
func TestSeedMessageExampleChild(t *testing.T) {
	if os.Getenv(seedChildEnv) != "1" {
		t.Skip("runs only as TestSeedMessageExample's child process")
	}
	usingMessageType()
}
