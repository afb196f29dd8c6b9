// Command jobq-failover shows a jobq JetStream queue surviving a worker's
// crash. It starts an embedded NATS server in a temporary folder, two
// worker processes (this program again) and a submitter; kills one worker
// with SIGKILL mid-run; and checks that every job ended exactly once, its
// effect recorded once by a handler idempotent on the job ID.
//
//	cd jetstream && go run ./cmd/jobq-failover
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/seed-bb9ff1e7/jobq"
	"github.com/seed-bb9ff1e7/jobq/jetstream"
	"github.com/seed-bb9ff1e7/jobq/jetstream/embedded"
)

const (
	queueName = "failover"
	lease     = time.Second
)

// Order is a job's input; Receipt its output.
type Order struct {
	N int `json:"n"`
}

type Receipt struct {
	N       int `json:"n"`
	Worker  int `json:"worker"` // the process that ran it
	Attempt int `json:"attempt"`
}

func main() {
	jobs := flag.Int("jobs", 1000, "jobs to submit")
	flag.Parse()
	if url := os.Getenv("JOBQ_FAILOVER_WORKER"); url != "" {
		if err := worker(url); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*jobs); err != nil {
		fmt.Fprintln(os.Stderr, "jobq-failover:", err)
		os.Exit(1)
	}
}

func run(jobs int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "jobq-failover-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(embedded.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	fmt.Printf("embedded server at %s, store in %s\n", srv.URL(), dir)

	nc, err := srv.Connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	q, effects, err := open(ctx, nc)
	if err != nil {
		return err
	}
	defer q.Close()

	a, err := startWorker(srv.URL())
	if err != nil {
		return err
	}
	b, err := startWorker(srv.URL())
	if err != nil {
		a.kill()
		return err
	}
	defer b.kill()
	fmt.Printf("workers: pid %d and pid %d\n", a.pid(), b.pid())

	start := time.Now()
	rs := make([]*jobq.Result[Receipt], jobs)
	for i := range rs {
		rs[i] = q.Submit(ctx, Order{N: i})
	}
	fmt.Printf("submitted %d jobs\n", jobs)

	// Kill worker A once it is well into its share, mid-job.
	for range jobs / 10 {
		if _, ok := <-a.runs; !ok {
			break
		}
	}
	a.kill()
	fmt.Printf("killed worker pid %d with SIGKILL mid-run\n", a.pid())

	byWorker := map[int]int{}
	again := 0
	for i, r := range rs {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		rc, err := r.Await(actx)
		cancel()
		if err != nil {
			return fmt.Errorf("job %d: %w", i, err)
		}
		if rc.N != i {
			return fmt.Errorf("job %d: receipt of job %d", i, rc.N)
		}
		byWorker[rc.Worker]++
		if rc.Attempt > 1 {
			again++
		}
	}
	elapsed := time.Since(start)
	b.stop()

	st, err := effects.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("results: %d of %d jobs succeeded in %v (pid %d: %d, pid %d: %d)\n",
		len(rs), jobs, elapsed.Round(time.Millisecond), a.pid(), byWorker[a.pid()], b.pid(), byWorker[b.pid()])
	fmt.Printf("%d jobs the killed worker held ran again on the survivor\n", again)
	if int(st.Values()) != jobs {
		return fmt.Errorf("%d effects recorded for %d jobs", st.Values(), jobs)
	}
	fmt.Printf("effects: %d recorded, one per job: every job ended exactly once\n", st.Values())
	return nil
}

// open opens the example's queue and its effects bucket on nc, as the
// submitter and every worker do; the caller closes the queue.
func open(ctx context.Context, nc *nats.Conn) (*jetstream.Queue[Order, Receipt], natsjs.KeyValue, error) {
	q, err := jetstream.Open[Order, Receipt](ctx, nc, jetstream.Config{Name: queueName, Lease: lease})
	if err != nil {
		return nil, nil, err
	}
	effects, err := bucket(ctx, nc)
	if err != nil {
		q.Close()
		return nil, nil, err
	}
	return q, effects, nil
}

func bucket(ctx context.Context, nc *nats.Conn) (natsjs.KeyValue, error) {
	js, err := natsjs.New(nc)
	if err != nil {
		return nil, err
	}
	return js.CreateOrUpdateKeyValue(ctx, natsjs.KeyValueConfig{Bucket: queueName + "-effects"})
}

// proc is a worker process and the job starts it reports.
type proc struct {
	cmd  *exec.Cmd
	runs chan string
}

func startWorker(url string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "JOBQ_FAILOVER_WORKER="+url)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, runs: make(chan string, 1<<16)}
	ready := make(chan struct{})
	go func() {
		defer close(p.runs)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			switch l := sc.Text(); {
			case l == "ready":
				close(ready)
			case strings.HasPrefix(l, "run "):
				select {
				case p.runs <- l:
				default:
				}
			}
		}
	}()
	select {
	case <-ready:
		return p, nil
	case <-time.After(30 * time.Second):
		p.kill()
		return nil, errors.New("worker did not start")
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
}

// worker serves the queue until SIGTERM. Its handler records the job's
// effect in a key-value bucket under the job's ID, with Create, so a second
// run of a job (after a crash) finds it done.
func worker(url string) error {
	ctx := context.Background()
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	q, effects, err := open(ctx, nc)
	if err != nil {
		return err
	}
	defer q.Close()
	out := bufio.NewWriter(os.Stdout)
	lines := make(chan string, 1024)
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for l := range lines {
			out.WriteString(l + "\n")
			if len(lines) == 0 {
				out.Flush()
			}
		}
		out.Flush()
	}()
	w, err := q.Serve(8, func(ctx context.Context, o Order) (Receipt, error) {
		lines <- "run " + jetstream.JobID(ctx)
		select { // the work
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return Receipt{}, ctx.Err()
		}
		_, err := effects.Create(ctx, jetstream.JobID(ctx), []byte(strconv.Itoa(o.N)))
		if err != nil && !errors.Is(err, natsjs.ErrKeyExists) {
			return Receipt{}, err
		}
		return Receipt{N: o.N, Worker: os.Getpid(), Attempt: jetstream.Attempt(ctx)}, nil
	})
	if err != nil {
		return err
	}
	lines <- "ready"
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = w.Shutdown(sctx)
	close(lines)
	<-flushed
	return err
}
