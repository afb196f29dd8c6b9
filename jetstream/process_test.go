package jetstream_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/seed-bb9ff1e7/jobq"
	"github.com/seed-bb9ff1e7/jobq/jetstream"
)

func workerEnv(url, name string, lease, work time.Duration, workers int) []string {
	return []string{
		"JOBQ_URL=" + url, "JOBQ_NAME=" + name, "JOBQ_LEASE=" + lease.String(),
		"JOBQ_WORK=" + work.String(), "JOBQ_WORKERS=" + strconv.Itoa(workers),
	}
}

// bucketCount reports how many effects the key-value bucket name holds.
func bucketCount(t *testing.T, nc *nats.Conn, name string) int {
	t.Helper()
	js, _ := natsjs.New(nc)
	kv, err := js.CreateOrUpdateKeyValue(context.Background(), natsjs.KeyValueConfig{Bucket: name})
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Values())
}

func TestSubmitAwaitAcrossProcesses(t *testing.T) {
	s := testServer(t)
	nc := connect(t, s)
	cfg := testConfig()
	q := open[Job, Done](t, nc, cfg)
	w := startChild(t, "worker", workerEnv(s.URL(), cfg.Name, cfg.Lease, 0, 4)...)
	w.expect(t, "ready")
	var rs []*jobq.Result[Done]
	for i := range 50 {
		rs = append(rs, q.Submit(context.Background(), Job{N: i}))
	}
	for i, r := range rs {
		d, err := await[Done](t, r)
		if err != nil || d.N != i || d.PID != w.cmd.Process.Pid {
			t.Fatalf("job %d: %+v, %v (child pid %d)", i, d, err, w.cmd.Process.Pid)
		}
	}
	w.stop(t)
	if n := bucketCount(t, nc, cfg.Name); n != 50 {
		t.Errorf("%d effects, want 50", n)
	}
}

func TestWorkerKilledMidJobItsJobsFinishElsewhereOnce(t *testing.T) {
	s := testServer(t)
	nc := connect(t, s)
	cfg := testConfig()
	cfg.Lease = 400 * time.Millisecond
	q := open[Job, Done](t, nc, cfg)
	const jobs = 200
	env := workerEnv(s.URL(), cfg.Name, cfg.Lease, 20*time.Millisecond, 4)
	a := startChild(t, "worker", env...)
	a.expect(t, "ready")
	var rs []*jobq.Result[Done]
	for i := range jobs {
		rs = append(rs, q.Submit(context.Background(), Job{N: i}))
	}
	for range 8 {
		a.expect(t, "run ") // a is mid-job
	}
	a.kill()
	b := startChild(t, "worker", env...)
	b.expect(t, "ready")
	again := 0
	for i, r := range rs {
		d, err := await[Done](t, r)
		if err != nil || d.N != i {
			t.Fatalf("job %d: %+v, %v", i, d, err)
		}
		if d.Attempt > 1 {
			again++
			if d.PID != b.cmd.Process.Pid {
				t.Errorf("job %d ran again in pid %d, not the survivor", i, d.PID)
			}
		}
	}
	if again == 0 {
		t.Errorf("no job was delivered again after the kill")
	}
	b.stop(t)
	if n := bucketCount(t, nc, cfg.Name); n != jobs {
		t.Errorf("%d effects recorded, want exactly %d", n, jobs)
	}
	t.Logf("%d jobs ran again after the kill", again)
}

func TestServerKilledMidLoadLosesNoAcceptedJob(t *testing.T) {
	dir := t.TempDir()
	srv := startChild(t, "server", "JOBQ_DIR="+dir, "JOBQ_PORT=0")
	url := srv.expect(t, "url ")
	port := url[strings.LastIndexByte(url, ':')+1:]
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cfg := testConfig()
	cfg.Lease = 500 * time.Millisecond
	cfg.PublishTimeout = 5 * time.Second
	q := open[Job, Done](t, nc, cfg)
	ran := make(chan int, 100000)
	serve(t, q, 8, func(ctx context.Context, in Job) (Done, error) {
		ran <- in.N
		return Done{N: in.N, PID: os.Getpid(), Attempt: jetstream.Attempt(ctx)}, nil
	})
	const jobs = 3000
	var rs []*jobq.Result[Done]
	for i := range jobs {
		rs = append(rs, q.Submit(context.Background(), Job{N: i}))
		if i == jobs/3 {
			srv.kill() // SIGKILL: no shutdown, store as the crash left it
			srv = startChild(t, "server", "JOBQ_DIR="+dir, "JOBQ_PORT="+port)
			srv.expect(t, "url ")
		}
	}
	ok, refused := 0, 0
	for i, r := range rs {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		d, err := r.Await(ctx)
		lost := ctx.Err() != nil
		cancel()
		switch {
		case err == nil && d.N == i:
			ok++
		case err == nil:
			t.Fatalf("job %d: got job %d's output", i, d.N)
		case lost:
			t.Fatalf("job %d: no outcome after the restart: lost (%v)", i, err)
		default:
			// Never acknowledged: a submission error, which is
			// not an accepted job.
			refused++
			t.Logf("job %d not accepted: %v", i, err)
		}
	}
	if ok < jobs*9/10 {
		t.Errorf("%d of %d jobs accepted and done", ok, jobs)
	}
	t.Logf("%d jobs done, %d not accepted, across a server SIGKILL", ok, refused)
	srv.stop(t)
}
