package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A store is a simulated object store: a real HTTP server on 127.0.0.1
// serving a set of objects, each GET answered after a latency drawn from a
// log-normal distribution. A few requests fail with 503 Service Unavailable
// and a few stall: they get no answer at all until the client gives up, so
// only a per-attempt timeout escapes them.
//
//	GET /list       one line per object: its size, a tab, its key
//	GET /o/{key}    the object's bytes; 404 if there is none
//
// The listing is answered at once and never fails: the faults are the
// objects' own.
type store struct {
	URL  string
	objs objects
	lat  latency
	// decide returns the fate of the n-th request (from 1) for key.
	decide func(key string, n int) fault

	srv  *http.Server
	quit chan struct{} // closed by Close: releases the stalled requests

	mu     sync.Mutex
	rng    *rand.Rand     // guarded by mu
	perKey map[string]int // requests per key; guarded by mu

	stats storeStats
}

// storeStats counts what a store did with the object requests it got.
type storeStats struct {
	requests    atomic.Int64 // object requests received
	served      atomic.Int64 // answered 200
	unavailable atomic.Int64 // answered 503
	stalled     atomic.Int64 // never answered
	missing     atomic.Int64 // answered 404
}

// storeCounts is a snapshot of storeStats.
type storeCounts struct {
	requests, served, unavailable, stalled, missing int64
}

// counts returns the store's counts so far.
func (s *store) counts() storeCounts {
	return storeCounts{
		requests:    s.stats.requests.Load(),
		served:      s.stats.served.Load(),
		unavailable: s.stats.unavailable.Load(),
		stalled:     s.stats.stalled.Load(),
		missing:     s.stats.missing.Load(),
	}
}

// fault is what a store does with one request.
type fault int

const (
	serve       fault = iota // answer after the drawn latency
	unavailable              // answer 503 after the drawn latency
	stall                    // never answer
)

// latency is a log-normal distribution of response times: Median scaled by
// e^(Sigma·Z) for a standard normal Z, capped at Max. Sigma 0.8 puts the
// 99th percentile at about 6.4 times the median, a long tail like a real
// store's.
type latency struct {
	Median time.Duration
	Sigma  float64
	Max    time.Duration
}

// draw returns a latency for the standard normal z.
func (l latency) draw(z float64) time.Duration {
	d := time.Duration(float64(l.Median) * math.Exp(l.Sigma*z))
	return min(max(d, 0), l.Max)
}

// quantile returns the latency at quantile q of the distribution.
func (l latency) quantile(q float64) time.Duration {
	return l.draw(math.Sqrt2 * math.Erfinv(2*q-1))
}

// String describes the distribution.
func (l latency) String() string {
	return fmt.Sprintf("log-normal, median %v, p99 %v, max %v",
		l.Median, l.quantile(0.99).Round(time.Millisecond), l.Max)
}

// randomFaults returns a store's decide function that draws each request's
// fate at random: a 503 with probability failRate, else a stall with
// probability stallRate.
func randomFaults(rng func() float64, failRate, stallRate float64) func(string, int) fault {
	return func(string, int) fault {
		switch r := rng(); {
		case r < failRate:
			return unavailable
		case r < failRate+stallRate:
			return stall
		}
		return serve
	}
}

// objects is what a store serves.
type objects interface {
	list() ([]objectInfo, error)
	get(key string) ([]byte, error) // an error matching fs.ErrNotExist for no such object
}

// objectInfo is a listed object.
type objectInfo struct {
	key  string
	size int64
}

// startStore serves objs on a new port of 127.0.0.1. decide may be nil: the
// faults are then drawn from rng with failRate and stallRate.
func startStore(objs objects, lat latency, seed uint64, failRate, stallRate float64, decide func(string, int) fault) (*store, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &store{
		URL:    "http://" + ln.Addr().String(),
		objs:   objs,
		lat:    lat,
		decide: decide,
		quit:   make(chan struct{}),
		rng:    rand.New(rand.NewPCG(seed, seed^0x5eed)),
		perKey: make(map[string]int),
	}
	if s.decide == nil {
		s.decide = randomFaults(s.float64, failRate, stallRate)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }() // ErrServerClosed, after Close
	return s, nil
}

// Close stops the server, releasing the requests it holds.
func (s *store) Close() error {
	close(s.quit)
	return s.srv.Close()
}

func (s *store) float64() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64()
}

// next counts a request for key and draws its fate and latency.
func (s *store) next(key string) (fault, time.Duration) {
	s.mu.Lock()
	s.perKey[key]++
	n := s.perKey[key]
	z := s.rng.NormFloat64()
	s.mu.Unlock()
	return s.decide(key, n), s.lat.draw(z)
}

func (s *store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/list" {
		s.serveList(w)
		return
	}
	key, ok := strings.CutPrefix(r.URL.Path, "/o/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.stats.requests.Add(1)
	f, d := s.next(key)
	if f == stall {
		s.stats.stalled.Add(1)
		// No answer: the client's timeout, or the store's close, ends it.
		select {
		case <-r.Context().Done():
		case <-s.quit:
		}
		return
	}
	// The simulated latency: the response is held back until it passes.
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return
	case <-s.quit:
		return
	}
	if f == unavailable {
		s.stats.unavailable.Add(1)
		http.Error(w, "slow down", http.StatusServiceUnavailable)
		return
	}
	data, err := s.objs.get(key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.stats.missing.Add(1)
		http.NotFound(w, r)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	if _, err := w.Write(data); err == nil {
		s.stats.served.Add(1)
	}
}

func (s *store) serveList(w http.ResponseWriter) {
	infos, err := s.objs.list()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var b strings.Builder
	for _, o := range infos {
		fmt.Fprintf(&b, "%d\t%s\n", o.size, o.key)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

// dirObjects serves the regular files under a directory, keyed by their
// slash-separated paths relative to it.
type dirObjects struct {
	root  string
	infos []objectInfo
}

// newDirObjects lists the regular files under root. Subdirectories that
// cannot be read are skipped; it fails only if root itself cannot be read or
// is not a directory.
func newDirObjects(root string) (*dirObjects, error) {
	info, err := os.Stat(root)
	if err == nil && !info.IsDir() {
		err = errors.New("not a directory")
	}
	d := &dirObjects{root: root}
	if err == nil {
		err = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
			switch {
			case err != nil && path == root:
				return err
			case err != nil:
				if e != nil && e.IsDir() {
					return fs.SkipDir
				}
			case e.Type().IsRegular():
				fi, err := e.Info()
				if err != nil {
					return nil
				}
				rel, _ := filepath.Rel(root, path)
				d.infos = append(d.infos, objectInfo{key: filepath.ToSlash(rel), size: fi.Size()})
			}
			return nil
		})
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the message below names the path
		}
		return nil, fmt.Errorf("cannot walk %s: %w", root, err)
	}
	return d, nil
}

func (d *dirObjects) list() ([]objectInfo, error) { return d.infos, nil }

func (d *dirObjects) get(key string) ([]byte, error) {
	if !fs.ValidPath(key) {
		return nil, fs.ErrNotExist
	}
	return os.ReadFile(filepath.Join(d.root, filepath.FromSlash(key)))
}

// genObjects is a generated set of text objects, for when there is no tree
// to serve: object i is "gen/dNN/objectIIIII.txt", its lines drawn from a
// generator seeded by i, so that every get returns the same bytes.
type genObjects struct {
	infos []objectInfo
	data  map[string][]byte
}

// newGenObjects generates n objects, about 10 KB each, with the sizes spread
// as a log-normal distribution.
func newGenObjects(n int, seed uint64) *genObjects {
	g := &genObjects{data: make(map[string][]byte, n)}
	for i := range n {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		size := int(latency{Median: 8 << 10, Sigma: 1, Max: 1 << 20}.draw(rng.NormFloat64()))
		var b []byte
		for len(b) < size {
			b = fmt.Appendf(b, "%d %x\n", len(b), rng.Uint64()>>uint(rng.IntN(60)))
		}
		key := fmt.Sprintf("gen/d%02d/object%05d.txt", i%32, i)
		g.infos = append(g.infos, objectInfo{key: key, size: int64(len(b))})
		g.data[key] = b
	}
	return g
}

func (g *genObjects) list() ([]objectInfo, error) { return g.infos, nil }

func (g *genObjects) get(key string) ([]byte, error) {
	if b, ok := g.data[key]; ok {
		return b, nil
	}
	return nil, fs.ErrNotExist
}

// listObjects fetches a store's listing.
func listObjects(ctx context.Context, c *http.Client, base string) ([]objectInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/list", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{code: resp.StatusCode}
	}
	var infos []objectInfo
	for line := range strings.Lines(string(body)) {
		size, key, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
		n, err := strconv.ParseInt(size, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("bad listing line %q", line)
		}
		infos = append(infos, objectInfo{key: key, size: n})
	}
	return infos, nil
}
