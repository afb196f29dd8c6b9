package engine

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Buffer is the FIFO interface a Ring satisfies, as a pool uses it.
type Buffer[T any] interface {
	Push(v T) bool
	Pop() (v T, ok bool)
	Len() int
	Cap() int
}

var _ Buffer[int] = (*Ring[int])(nil)

// ringItems returns the items r holds, oldest first, read from its backing
// array without changing r.
func ringItems[T any](r *Ring[T]) []T {
	items := make([]T, r.n)
	for i := range items {
		items[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	return items
}

// checkRing reports the first broken invariant of r's representation: the
// backing array is a power of two of at least minRingSlots slots (or none),
// it does not grow past what the bound needs, and every slot that holds no
// item is the zero value, so the garbage collector can reclaim what popped
// items referenced.
func checkRing[T comparable](r *Ring[T]) error {
	size := len(r.buf)
	switch {
	case r.n < 0 || r.n > size:
		return fmt.Errorf("holds %d items in %d slots", r.n, size)
	case size != 0 && (size < minRingSlots || size&(size-1) != 0):
		return fmt.Errorf("has %d slots, want a power of two >= %d", size, minRingSlots)
	case size != 0 && (r.head < 0 || r.head >= size):
		return fmt.Errorf("head %d is outside its %d slots", r.head, size)
	case r.bound > 0 && size > max(minRingSlots, 2*r.bound):
		return fmt.Errorf("has %d slots for a bound of %d", size, r.bound)
	}
	var zero T
	for i, v := range r.buf {
		if (i-r.head+size)%size >= r.n && v != zero {
			return fmt.Errorf("slot %d holds %v but no item (head %d, %d items in %d slots)", i, v, r.head, r.n, size)
		}
	}
	return nil
}

// backing identifies r's backing array: it changes when r grows or shrinks.
func backing[T any](r *Ring[T]) *T {
	if len(r.buf) == 0 {
		return nil
	}
	return &r.buf[0]
}

func TestNewRingPanicsOnCapacityBelowOne(t *testing.T) {
	for _, capacity := range []int{0, -1, math.MinInt} {
		t.Run(fmt.Sprint(capacity), func(t *testing.T) {
			defer func() {
				if msg, _ := recover().(string); !strings.Contains(msg, "capacity") {
					t.Fatalf("panic %q, want one naming capacity", msg)
				}
			}()
			NewRing[int](capacity)
		})
	}
}

func TestRingHoldsExactlyItsCapacity(t *testing.T) {
	for _, capacity := range []int{1, 2, 3, 15, 16, 17, 31, 32, 33, 100, 1000} {
		t.Run(fmt.Sprint(capacity), func(t *testing.T) {
			r := NewRing[int](capacity)
			if got := r.Cap(); got != capacity {
				t.Fatalf("Cap() = %d, want %d", got, capacity)
			}
			var want []int
			for i := range capacity {
				if !r.Push(i + 1) {
					t.Fatalf("Push #%d refused, want room for %d items", i+1, capacity)
				}
				want = append(want, i+1)
			}
			if r.Push(-1) {
				t.Fatalf("Push #%d accepted, want it refused at capacity %d", capacity+1, capacity)
			}
			if diff := cmp.Diff(want, ringItems(r)); diff != "" {
				t.Fatalf("a refused Push changed the ring (-want +got):\n%s", diff)
			}
			if got := r.Len(); got != capacity {
				t.Fatalf("full: Len() = %d, want %d", got, capacity)
			}
			if v, ok := r.Pop(); !ok || v != 1 {
				t.Fatalf("Pop() = %d, %t, want 1, true", v, ok)
			}
			if !r.Push(capacity + 1) {
				t.Fatalf("Push after a Pop from a full ring refused")
			}
			if r.Push(-1) {
				t.Fatalf("Push accepted past capacity %d after a Pop and a Push", capacity)
			}
			if err := checkRing(r); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRingIsFIFOAcrossWraparound(t *testing.T) {
	// Each round pushes and pops a different number of items, so the head
	// walks around the backing array, crossing its end many times, at depths
	// that make the ring grow and shrink too.
	r := NewRing[int](200)
	next, oldest := 1, 1
	for round := range 300 {
		for range (round*7)%23 + 1 {
			if r.Len() == r.Cap() {
				break
			}
			if !r.Push(next) {
				t.Fatalf("round %d: Push refused with %d of %d items", round, r.Len(), r.Cap())
			}
			next++
		}
		for range (round*5)%19 + 1 {
			v, ok := r.Pop()
			if !ok {
				if oldest != next {
					t.Fatalf("round %d: Pop found the ring empty, want %d", round, oldest)
				}
				break
			}
			if v != oldest {
				t.Fatalf("round %d: Pop() = %d, want %d", round, v, oldest)
			}
			oldest++
		}
		if err := checkRing(r); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	for ; oldest < next; oldest++ {
		if v, ok := r.Pop(); !ok || v != oldest {
			t.Fatalf("draining: Pop() = %d, %t, want %d, true", v, ok, oldest)
		}
	}
	if v, ok := r.Pop(); ok || v != 0 {
		t.Fatalf("Pop() on an empty ring = %d, %t, want 0, false", v, ok)
	}
}

func TestRingZeroesPoppedSlots(t *testing.T) {
	// Pointers show whether a slot still references a popped item; checkRing
	// fails on any slot that holds no item and is not nil.
	r := NewRing[*int](100)
	push := func(n int) {
		t.Helper()
		for i := range n {
			if !r.Push(&i) {
				t.Fatalf("Push refused with %d items", r.Len())
			}
		}
	}
	pop := func(n int) {
		t.Helper()
		for range n {
			if v, ok := r.Pop(); !ok || v == nil {
				t.Fatalf("Pop() = %v, %t, want an item", v, ok)
			}
			if err := checkRing(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	push(10) // 16 slots
	pop(7)
	push(12) // wraps around the end of the 16 slots
	pop(10)
	push(60) // grows to 128 slots
	pop(65)  // shrinks back
	if v, ok := r.Pop(); ok || v != nil {
		t.Fatalf("Pop() on an empty ring = %v, %t, want nil, false", v, ok)
	}
	if err := checkRing(r); err != nil {
		t.Fatal(err)
	}
}

func TestRingShrinksAfterStayingLow(t *testing.T) {
	// A burst grows the ring to 131072 slots. Once the depth stays low, the
	// ring halves back to minRingSlots: each halving waits for as many pops
	// as the ring has slots, so 2*131072 pops are enough for all of them.
	r := NewRing[int](1 << 20)
	for i := range 100000 {
		r.Push(i)
	}
	for r.Len() > 1 {
		r.Pop()
	}
	for i := range 2 * 131072 {
		r.Push(i)
		r.Pop()
	}
	if got := len(r.buf); got != minRingSlots {
		t.Errorf("after a burst and 2*131072 pops at depth 1, the ring has %d slots, want %d", got, minRingSlots)
	}
	if err := checkRing(r); err != nil {
		t.Error(err)
	}
}

func TestDrainedRingReleasesItsSlots(t *testing.T) {
	r := NewRing[int](1 << 20)
	for i := range 100000 {
		r.Push(i)
	}
	for r.Len() > 0 {
		r.Pop()
	}
	if got := len(r.buf); got > maxIdleSlots {
		t.Errorf("a ring drained after a burst keeps %d slots, want at most %d", got, maxIdleSlots)
	}
}

func TestRingDoesNotThrashAtASteadyDepth(t *testing.T) {
	// At a steady depth d, a push followed by a pop moves between d and d+1
	// items, a pop followed by a push between d-1 and d. Neither may make the
	// ring reallocate once warmed up, however the ring reached d: filling up
	// from empty (it grew to get there) or draining down from a deeper level
	// (it shrank to get there).
	const bound = 1 << 20
	depths := []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 1000, 1023, 1024, 1025}
	type pattern struct {
		name  string
		cycle func(r *Ring[int], v int)
	}
	patterns := []pattern{
		{"push then pop", func(r *Ring[int], v int) { r.Push(v); r.Pop() }},
		{"pop then push", func(r *Ring[int], v int) { r.Pop(); r.Push(v) }},
	}
	for _, d := range depths {
		for _, from := range []string{"below", "above"} {
			for _, pat := range patterns {
				if d == 0 && pat.name == "pop then push" {
					continue // there is no depth -1
				}
				t.Run(fmt.Sprintf("depth=%d/from %s/%s", d, from, pat.name), func(t *testing.T) {
					r := NewRing[int](bound)
					next := 0
					push := func(n int) {
						for range n {
							r.Push(next)
							next++
						}
					}
					push(d)
					if from == "above" {
						push(4*d + 3*minRingSlots)
						for r.Len() > d {
							r.Pop()
						}
					}
					// The ring may resize while it settles: grow once for the
					// extra item, or shrink, each halving after as many pops as
					// it has slots (twice its size in cycles is enough). It
					// must not do both.
					sizes := []int{len(r.buf)}
					for range 2*len(r.buf) + 2 {
						pat.cycle(r, next)
						next++
						if len(r.buf) != sizes[len(sizes)-1] {
							sizes = append(sizes, len(r.buf))
						}
					}
					if !slices.IsSorted(sizes) && !slices.IsSortedFunc(sizes, func(a, b int) int { return b - a }) {
						t.Errorf("slot counts while settling at depth %d: %v, want them to grow or to shrink, not both", d, sizes)
					}
					base, slots := backing(r), len(r.buf)
					reallocs := 0
					cycles := max(1000, 4*len(r.buf))
					for range cycles {
						pat.cycle(r, next)
						next++
						if b := backing(r); b != base {
							reallocs++
							base = b
						}
					}
					if reallocs != 0 {
						t.Errorf("%d reallocations in %d cycles at depth %d once settled (%d slots then, %d now)",
							reallocs, cycles, d, slots, len(r.buf))
					}
					if got := r.Len(); got != d {
						t.Errorf("Len() = %d after the cycles, want %d", got, d)
					}
					if err := checkRing(r); err != nil {
						t.Error(err)
					}
				})
			}
		}
	}
}

func TestZeroRingIsUnbounded(t *testing.T) {
	var r Ring[string]
	if got := r.Cap(); got != math.MaxInt {
		t.Fatalf("zero Ring: Cap() = %d, want math.MaxInt", got)
	}
	if v, ok := r.Pop(); ok || v != "" {
		t.Fatalf("zero Ring: Pop() = %q, %t, want \"\", false", v, ok)
	}
	const n = 100000
	for i := range n {
		if !r.Push(fmt.Sprint(i)) {
			t.Fatalf("zero Ring refused Push #%d", i+1)
		}
	}
	if got := r.Len(); got != n {
		t.Fatalf("Len() = %d, want %d", got, n)
	}
	for i := range n {
		if v, ok := r.Pop(); !ok || v != fmt.Sprint(i) {
			t.Fatalf("Pop() = %q, %t, want %q, true", v, ok, fmt.Sprint(i))
		}
	}
	if err := checkRing(&r); err != nil {
		t.Fatal(err)
	}
}
