package jetstream_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/seed-bb9ff1e7/jobq/jetstream"
	"github.com/seed-bb9ff1e7/jobq/jetstream/embedded"
)

// The tests start children by running this test binary again with
// childEnv set to the child's role: "worker" serves a queue, "server" runs
// an embedded server. Their settings travel in the other JOBQ_ variables.
const childEnv = "JOBQ_JETSTREAM_CHILD"

// child is a running child process and the lines it prints.
type child struct {
	cmd   *exec.Cmd
	lines chan string
}

// startChild starts a child in role with env, and kills it when the test
// ends if it still runs.
func startChild(t *testing.T, role string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=" + role}, env...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 4096)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return c
}

// expect returns the next line that starts with prefix, failing the test
// after 20 seconds.
func (c *child) expect(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("child exited before printing %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return strings.TrimPrefix(l, prefix)
			}
		case <-timeout:
			t.Fatalf("child did not print %q", prefix)
		}
	}
}

// stop asks the child to shut down gracefully and waits for it.
func (c *child) stop(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	if err := c.cmd.Wait(); err != nil {
		t.Errorf("child: %v", err)
	}
}

// kill kills the child at once, as a crash would.
func (c *child) kill() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

func runChild(role string) int {
	var err error
	switch role {
	case "worker":
		err = childWorker()
	case "server":
		err = childServer()
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// childServer runs an embedded server on JOBQ_DIR and JOBQ_PORT until
// SIGTERM (or SIGKILL).
func childServer() error {
	port, _ := strconv.Atoi(os.Getenv("JOBQ_PORT"))
	s, err := embedded.Start(embedded.Options{Dir: os.Getenv("JOBQ_DIR"), Port: port})
	if err != nil {
		return err
	}
	fmt.Println("url", s.URL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	s.Shutdown()
	return nil
}

// Job is the input of the cross-process tests' jobs.
type Job struct {
	N int `json:"n"`
}

// Done is their output: which process ran the job, and on which attempt.
type Done struct {
	N       int `json:"n"`
	PID     int `json:"pid"`
	Attempt int `json:"attempt"`
}

// effect records a job's effect in bucket, keyed by the job's ID, once:
// the handler is idempotent on the job ID, as at-least-once delivery asks.
func effect(ctx context.Context, kv natsjs.KeyValue, in Job) error {
	_, err := kv.Create(ctx, jetstream.JobID(ctx), []byte(strconv.Itoa(in.N)))
	if errors.Is(err, natsjs.ErrKeyExists) {
		return nil // an earlier run did it
	}
	return err
}

// childWorker serves queue JOBQ_NAME on JOBQ_URL with JOBQ_WORKERS
// goroutines, each job taking JOBQ_WORK and recording its effect in the
// key-value bucket JOBQ_NAME halfway through. It prints "ready", then
// "run <id> <attempt>" as each job starts, and shuts down on SIGTERM.
func childWorker() error {
	nc, err := nats.Connect(os.Getenv("JOBQ_URL"), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx := context.Background()
	lease, _ := time.ParseDuration(os.Getenv("JOBQ_LEASE"))
	work, _ := time.ParseDuration(os.Getenv("JOBQ_WORK"))
	workers, _ := strconv.Atoi(os.Getenv("JOBQ_WORKERS"))
	name := os.Getenv("JOBQ_NAME")
	q, err := jetstream.Open[Job, Done](ctx, nc, jetstream.Config{Name: name, Lease: lease})
	if err != nil {
		return err
	}
	defer q.Close()
	js, _ := natsjs.New(nc)
	kv, err := js.CreateOrUpdateKeyValue(ctx, natsjs.KeyValueConfig{Bucket: name})
	if err != nil {
		return err
	}
	out := make(chan string, 1024)
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		w := bufio.NewWriter(os.Stdout)
		for l := range out {
			w.WriteString(l + "\n")
			if len(out) == 0 {
				w.Flush()
			}
		}
		w.Flush()
	}()
	w, err := q.Serve(max(workers, 1), func(ctx context.Context, in Job) (Done, error) {
		out <- fmt.Sprintf("run %s %d", jetstream.JobID(ctx), jetstream.Attempt(ctx))
		pause := func() error {
			select {
			case <-time.After(work / 2):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := pause(); err != nil {
			return Done{}, err
		}
		if err := effect(ctx, kv, in); err != nil {
			return Done{}, err
		}
		if err := pause(); err != nil {
			return Done{}, err
		}
		return Done{N: in.N, PID: os.Getpid(), Attempt: jetstream.Attempt(ctx)}, nil
	})
	if err != nil {
		return err
	}
	out <- "ready"
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = w.Shutdown(sctx)
	close(out)
	<-printed
	return err
}
