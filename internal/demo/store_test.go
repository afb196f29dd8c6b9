package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/seed-bb9ff1e7/jobq"
)

// writeTree creates files (slash-separated path → content) under a new
// temp dir.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// mapObjects serves fixed objects; keys listed without content are missing.
type mapObjects struct {
	keys []string
	data map[string]string
}

func (m mapObjects) list() ([]objectInfo, error) {
	var infos []objectInfo
	for _, k := range m.keys {
		infos = append(infos, objectInfo{key: k, size: int64(len(m.data[k]))})
	}
	return infos, nil
}

func (m mapObjects) get(key string) ([]byte, error) {
	if d, ok := m.data[key]; ok {
		return []byte(d), nil
	}
	return nil, fs.ErrNotExist
}

// newTestStore starts a store of objs with no latency and the given faults,
// and a client of it; both are closed at the test's end.
func newTestStore(t *testing.T, objs objects, decide func(string, int) fault) (*store, *client) {
	t.Helper()
	st, err := startStore(objs, latency{}, 1, 0, 0, decide)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(st.URL, 8)
	t.Cleanup(func() {
		c.Close()
		st.Close()
	})
	return st, c
}

func TestLatencyDistribution(t *testing.T) {
	l := latency{Median: 10 * time.Millisecond, Sigma: 0.8, Max: 200 * time.Millisecond}
	rng := rand.New(rand.NewPCG(1, 2))
	ds := make([]time.Duration, 50000)
	for i := range ds {
		ds[i] = l.draw(rng.NormFloat64())
	}
	slices.Sort(ds)
	if ds[0] < 0 || ds[len(ds)-1] > l.Max {
		t.Errorf("draws range over [%v, %v], want within [0, %v]", ds[0], ds[len(ds)-1], l.Max)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
		tol  float64 // relative
	}{
		{0.5, 10 * time.Millisecond, 0.03},
		{0.9, time.Duration(10e6 * math.Exp(0.8*1.2816)), 0.05},
		{0.99, time.Duration(10e6 * math.Exp(0.8*2.3263)), 0.10},
	} {
		got := ds[int(tc.q*float64(len(ds)))]
		if math.Abs(float64(got-tc.want)) > tc.tol*float64(tc.want) {
			t.Errorf("quantile %v of the draws is %v, want %v ± %.0f%%", tc.q, got, tc.want, 100*tc.tol)
		}
		if q := l.quantile(tc.q); math.Abs(float64(q-tc.want)) > 0.001*float64(tc.want) {
			t.Errorf("latency.quantile(%v) = %v, want %v", tc.q, q, tc.want)
		}
	}
	// The cap holds only the far tail: about 0.01% of draws pass 200ms.
	atCap := 0
	for _, d := range ds {
		if d == l.Max {
			atCap++
		}
	}
	if atCap > 50 {
		t.Errorf("%d of %d draws at the cap, want about 5", atCap, len(ds))
	}
}

func TestRandomFaultRates(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	decide := randomFaults(rng.Float64, 0.03, 0.01)
	const n = 100000
	var counts [3]int
	for i := range n {
		counts[decide("k", i+1)]++
	}
	for f, want := range map[fault]float64{unavailable: 0.03, stall: 0.01} {
		got := float64(counts[f]) / n
		// Within 5 standard deviations of a binomial share.
		if tol := 5 * math.Sqrt(want*(1-want)/n); math.Abs(got-want) > tol {
			t.Errorf("fault %d drawn for %.4f of requests, want %.4f ± %.4f", f, got, want, tol)
		}
	}
}

func TestStoreServesAndLists(t *testing.T) {
	objs := mapObjects{keys: []string{"a", "dir/b c", "gone"}, data: map[string]string{"a": "A\n", "dir/b c": "BC"}}
	st, c := newTestStore(t, objs, nil)
	ctx := context.Background()

	infos, err := listObjects(ctx, c.http, st.URL)
	want := []objectInfo{{"a", 2}, {"dir/b c", 2}, {"gone", 0}}
	if err != nil || !slices.Equal(infos, want) {
		t.Errorf("listObjects = %v, %v; want %v", infos, err, want)
	}
	for key, want := range objs.data {
		if got, err := c.get(ctx, key); err != nil || string(got) != want {
			t.Errorf("get(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	_, err = c.get(ctx, "gone")
	var se *statusError
	if !errors.As(err, &se) || se.code != http.StatusNotFound || !isPermanent(err) {
		t.Errorf("get of a missing object: %v, want a permanent 404", err)
	}
	if got := st.counts(); got != (storeCounts{requests: 3, served: 2, missing: 1}) {
		t.Errorf("store counts %+v, want 3 requests, 2 served, 1 missing", got)
	}
}

func TestStoreDelaysItsAnswers(t *testing.T) {
	objs := mapObjects{keys: []string{"a"}, data: map[string]string{"a": "x"}}
	const median = 40 * time.Millisecond
	st, err := startStore(objs, latency{Median: median, Max: time.Second}, 1, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := newClient(st.URL, 1)
	defer c.Close()
	start := time.Now()
	if _, err := c.get(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	// Sigma 0: every answer comes after the median, no sooner.
	if d := time.Since(start); d < median {
		t.Errorf("answered after %v, want at least %v", d, median)
	}
}

func TestStore503IsRetryable(t *testing.T) {
	objs := mapObjects{keys: []string{"a"}, data: map[string]string{"a": "x"}}
	st, c := newTestStore(t, objs, func(_ string, n int) fault {
		if n == 1 {
			return unavailable
		}
		return serve
	})
	_, err := c.get(context.Background(), "a")
	if causeOf(err) != causeUnavailable || isPermanent(err) {
		t.Errorf("first get: %v, want a retryable 503", err)
	}
	if got, err := c.get(context.Background(), "a"); err != nil || string(got) != "x" {
		t.Errorf("second get = %q, %v; want \"x\"", got, err)
	}
	if got := st.counts(); got.unavailable != 1 || got.served != 1 {
		t.Errorf("store counts %+v, want 1 unavailable, 1 served", got)
	}
}

func TestStoreStallsUntilTheClientGivesUp(t *testing.T) {
	objs := mapObjects{keys: []string{"a"}, data: map[string]string{"a": "x"}}
	st, c := newTestStore(t, objs, func(string, int) fault { return stall })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	got, err := c.get(ctx, "a")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("get of a stalled object = %q, %v; want context.DeadlineExceeded", got, err)
	}
	if n := st.counts().stalled; n != 1 {
		t.Errorf("store counted %d stalls, want 1", n)
	}
	// Only a per-attempt timeout gets a job out: with one, the job ends
	// with the timeout's error after its attempts.
	p := jobq.New(1, func(ctx context.Context, key string) ([]byte, error) { return c.get(ctx, key) },
		jobq.WithPolicy(jobq.Policy{MaxAttempts: 2, Backoff: jobq.Constant(0), Timeout: 20 * time.Millisecond}))
	defer p.Close()
	r := p.Submit(context.Background(), "a")
	if _, err := r.Await(context.Background()); !errors.Is(err, context.DeadlineExceeded) || r.Attempts() != 2 {
		t.Errorf("job on a stalled object: %v after %d attempts, want context.DeadlineExceeded after 2", err, r.Attempts())
	}
}

func TestDirAndGeneratedObjects(t *testing.T) {
	root := writeTree(t, map[string]string{"a": "1\n", "s/b": "22\n"})
	d, err := newDirObjects(root)
	if err != nil {
		t.Fatal(err)
	}
	infos, _ := d.list()
	if want := []objectInfo{{"a", 2}, {"s/b", 3}}; !slices.Equal(infos, want) {
		t.Errorf("dir objects %v, want %v", infos, want)
	}
	for _, key := range []string{"../a", "/a", "nope"} {
		if _, err := d.get(key); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("get(%q): %v, want fs.ErrNotExist", key, err)
		}
	}
	if _, err := newDirObjects(filepath.Join(root, "a")); err == nil {
		t.Error("newDirObjects of a file: no error")
	}

	g1, g2 := newGenObjects(20, 7), newGenObjects(20, 7)
	if !maps.EqualFunc(g1.data, g2.data, bytes.Equal) {
		t.Error("generated objects differ between two calls with one seed")
	}
	for _, o := range g1.infos {
		if o.size == 0 || int64(len(g1.data[o.key])) != o.size {
			t.Errorf("generated object %q: listed size %d, %d bytes", o.key, o.size, len(g1.data[o.key]))
		}
	}
}

// isPermanent reports whether err is marked jobq.Permanent: a policy that
// retries every error makes one attempt only.
func isPermanent(err error) bool {
	n := 0
	p := jobq.New(1, func(context.Context, int) (int, error) { n++; return 0, err },
		jobq.WithPolicy(jobq.Policy{MaxAttempts: 2, Backoff: jobq.Constant(0)}))
	defer p.Close()
	_, _ = p.Submit(context.Background(), 0).Await(context.Background())
	return n == 1
}
