package engine

// minRingSlots is the smallest backing array a Ring allocates.
const minRingSlots = 16

// maxIdleSlots is the largest backing array a drained Ring keeps.
const maxIdleSlots = 1024

// Ring is a bounded FIFO ring buffer of values. It stores items by value in
// one backing slice, so pushing and popping allocate nothing once the slice
// has grown to the working depth. It starts small and doubles as needed up to
// its bound; it halves only after it has stayed at most a quarter full for as
// many pops as it has slots, so no steady depth makes it grow and shrink
// back and forth, and when drained it keeps at most maxIdleSlots. Popped slots are zeroed so
// the garbage collector can reclaim what they referenced.
//
// A Ring is not safe for concurrent use. The zero Ring is unbounded.
type Ring[T any] struct {
	buf   []T // len(buf) is a power of two, or zero
	head  int // index of the oldest item
	n     int // items held
	bound int // most items held at once; 0 means no bound
	low   int // consecutive pops that left the ring at most a quarter full
}

// NewRing returns a Ring that holds at most capacity items. It panics if
// capacity < 1.
func NewRing[T any](capacity int) *Ring[T] {
	if capacity < 1 {
		panic("jobq: NewRing: capacity must be >= 1")
	}
	return &Ring[T]{bound: capacity}
}

// Len reports the number of items held.
func (r *Ring[T]) Len() int { return r.n }

// Cap reports the bound; an unbounded Ring reports the largest int.
func (r *Ring[T]) Cap() int {
	if r.bound == 0 {
		return int(^uint(0) >> 1)
	}
	return r.bound
}

// Push appends v. It returns false, leaving the Ring unchanged, when the Ring
// holds Cap items.
func (r *Ring[T]) Push(v T) bool { return r.PushFrom(&v) }

// PushFrom is Push of *v: a large T is copied once, into its slot.
func (r *Ring[T]) PushFrom(v *T) bool {
	if r.bound != 0 && r.n >= r.bound {
		return false
	}
	if r.n == len(r.buf) {
		r.resize(max(minRingSlots, 2*len(r.buf)))
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = *v
	r.n++
	return true
}

// Peek returns the oldest item without removing it.
func (r *Ring[T]) Peek() (v T, ok bool) {
	if r.n == 0 {
		return v, false
	}
	return r.buf[r.head], true
}

// Pop removes and returns the oldest item.
func (r *Ring[T]) Pop() (v T, ok bool) {
	ok = r.PopInto(&v)
	return v, ok
}

// PopInto is Pop into *dst: a large T is copied once, out of its slot. It
// leaves *dst as it was when the Ring is empty.
func (r *Ring[T]) PopInto(dst *T) bool {
	if r.n == 0 {
		return false
	}
	var zero T
	*dst, r.buf[r.head] = r.buf[r.head], zero
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	if r.n <= len(r.buf)/4 {
		r.fallen()
	} else if r.low != 0 {
		r.low = 0
	}
	return true
}

// fallen runs after a Pop left the ring at most a quarter full; kept out of
// Pop, so that a pop from a fuller ring, the busy pool's case, costs one
// compare more than the move itself. It shrinks the ring once it has stayed
// a quarter full for a while: after halving it is at most half full, so it
// must double its depth before it grows again, and the copy is paid for by
// the pops that waited.
func (r *Ring[T]) fallen() {
	if r.n == 0 && len(r.buf) > maxIdleSlots {
		// Drained after a large burst: let go of the array. Refilling
		// grows it again in doubling steps, amortised O(1) per item;
		// smaller rings keep theirs, so bursts don't churn them.
		r.buf, r.head, r.low = nil, 0, 0
	} else if len(r.buf) > minRingSlots {
		if r.low++; r.low >= len(r.buf) {
			r.resize(len(r.buf) / 2)
		}
	}
}

// resize moves the items into a backing array of size slots, oldest first.
func (r *Ring[T]) resize(size int) {
	buf := make([]T, size)
	if r.n > 0 {
		end := r.head + r.n
		if end <= len(r.buf) {
			copy(buf, r.buf[r.head:end])
		} else {
			k := copy(buf, r.buf[r.head:])
			copy(buf[k:], r.buf[:end-len(r.buf)])
		}
	}
	r.buf, r.head, r.low = buf, 0, 0
}
