package engine

import (
	"context"
	"testing"
	"unsafe"
)

// TestPoolLayout pins the cache-line layout that Pool's and worker's
// comments describe: a Pool takes 512 bytes and starts on a line (larger
// objects carry an allocation header that shifts them off it), the lock
// and the queue share line 0, what submitters write on every job has a
// line of its own, and a worker takes whole lines.
func TestPoolLayout(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is pinned for 64-bit platforms")
	}
	const line = 64
	var p Pool[int, int]
	if size := unsafe.Sizeof(p); size != 8*line {
		t.Errorf("Pool[int, int] takes %d bytes, want %d", size, 8*line)
	}
	if off, end := unsafe.Offsetof(p.mu), unsafe.Offsetof(p.ring)+unsafe.Sizeof(p.ring); off != 0 || end > line {
		t.Errorf("mu at %d and ring ending at %d: want both in line 0", off, end)
	}
	if off := unsafe.Offsetof(p.accepted); off != 4*line {
		t.Errorf("accepted at offset %d, want %d, on a line of its own", off, 4*line)
	}
	var w worker[int, int]
	if size := unsafe.Sizeof(w); size%line != 0 {
		t.Errorf("worker[int, int] takes %d bytes, not whole lines", size)
	}
	for range 8 {
		q := New(1, func(context.Context, int) (int, error) { return 0, nil }, Config{QueueSize: 4})
		if a := uintptr(unsafe.Pointer(q)) % line; a != 0 {
			t.Errorf("Pool allocated at %d mod %d", a, line)
		}
		q.Shutdown(context.Background())
	}
}
