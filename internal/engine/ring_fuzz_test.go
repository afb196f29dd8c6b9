package engine

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// sliceBuffer is the model FuzzRing checks Ring against: a plain slice with
// the same bound (0 for none).
type sliceBuffer struct {
	items []int
	bound int
}

func (s *sliceBuffer) Push(v int) bool {
	if s.bound > 0 && len(s.items) >= s.bound {
		return false
	}
	s.items = append(s.items, v)
	return true
}

func (s *sliceBuffer) Pop() (int, bool) {
	if len(s.items) == 0 {
		return 0, false
	}
	v := s.items[0]
	s.items = s.items[1:]
	return v, true
}

func (s *sliceBuffer) Len() int { return len(s.items) }

func (s *sliceBuffer) Cap() int {
	if s.bound == 0 {
		return math.MaxInt
	}
	return s.bound
}

// ringFor picks the ring under test from the input's first byte: mostly
// small bounds (1..64), which fill and wrap around quickly; from 0xc0, bounds
// of 65 up to 2049, which make the ring grow and shrink; at 0xff the zero
// Ring, which is unbounded.
func ringFor(b byte) (r *Ring[int], bound int) {
	switch {
	case b == 0xff:
		return new(Ring[int]), 0
	case b >= 0xc0:
		bound = 65 + 32*int(b-0xc0)
	default:
		bound = 1 + int(b)%64
	}
	return NewRing[int](bound), bound
}

// The operations of a FuzzRing input, one per byte: the low three bits pick
// the operation, bit 3 calls the ring through the Buffer interface rather
// than directly, and bit 4 picks a variant. Push, the bursts and churn take
// the next byte as their argument.
const (
	opPush      = iota // push arg+1 (never 0, so a zeroed slot is told apart)
	opPop              // pop one
	opLenCap           // Len; with bit 4, Cap
	opChurn            // 4*arg times: push one, pop one (a steady depth, to let the ring shrink)
	opFullEmpty        // Len() == Cap(), Len() == 0
	opPushBurst        // push arg items
	opPopBurst         // pop arg times
	opFillDrain        // pop until empty; with bit 4, push until refused (2048 at most)

	opViaBuffer = 8                       // call the ring through the Buffer interface
	opVariant   = 16                      // picks Cap over Len, fill over drain
	opLen       = opLenCap                // Len
	opCap       = opLenCap | opVariant    // Cap
	opDrain     = opFillDrain             // pop until empty
	opFill      = opFillDrain | opVariant // push until refused
)

// call is one call's answer: the model's and the ring's must be equal.
type call struct {
	Method string
	Arg    int  `cmp:",omitempty"` // what Push was given
	V      int  // what Pop returned, or Len, or Cap
	OK     bool // what Push or Pop reported
}

// bufferOps is a Buffer's methods as values, so an operation calls the
// Ring's methods either directly or through the Buffer interface.
type bufferOps struct {
	push     func(int) bool
	pop      func() (int, bool)
	len, cap func() int
}

func opsOf(b Buffer[int]) bufferOps { return bufferOps{b.Push, b.Pop, b.Len, b.Cap} }

// lockstep runs each call on the model and on the ring and fails at the
// first answer that differs.
type lockstep struct {
	t     *testing.T
	model *sliceBuffer
	ring  bufferOps // the ring's methods for the current operation
	where string    // the current operation, for failure messages
}

func (l *lockstep) check(want, got call) {
	if want != got {
		l.t.Helper()
		l.t.Fatalf("%s, with %d items in the model: the ring answered %s differently (-model +ring):\n%s",
			l.where, l.model.Len(), want.Method, cmp.Diff(want, got))
	}
}

func (l *lockstep) push(v int) bool {
	ok := l.model.Push(v)
	l.check(call{"Push", v, 0, ok}, call{"Push", v, 0, l.ring.push(v)})
	return ok
}

func (l *lockstep) pop() bool {
	mv, mok := l.model.Pop()
	rv, rok := l.ring.pop()
	l.check(call{Method: "Pop", V: mv, OK: mok}, call{Method: "Pop", V: rv, OK: rok})
	return mok
}

func (l *lockstep) len() int {
	n := l.model.Len()
	l.check(call{Method: "Len", V: n}, call{Method: "Len", V: l.ring.len()})
	return n
}

func (l *lockstep) cap() int {
	n := l.model.Cap()
	l.check(call{Method: "Cap", V: n}, call{Method: "Cap", V: l.ring.cap()})
	return n
}

// maxItemsCompared bounds the depth at which the whole contents are
// compared, and every slot checked, after each operation; deeper, the pops
// and the final drain compare them.
const maxItemsCompared = 256

// maxUnboundedItems caps how deep bursts and fills take the zero Ring, so
// that no input runs for long: deeper, it only repeats what it has done.
const maxUnboundedItems = 1 << 16

func FuzzRing(f *testing.F) {
	for _, seed := range ringSeeds {
		f.Add(seed.data)
	}
	f.Fuzz(runRingOps)
}

// runRingOps runs the operations data encodes on a Ring and on the slice
// model, in lockstep, and fails at the first difference.
func runRingOps(t *testing.T, data []byte) {
	if len(data) == 0 {
		return
	}
	if len(data) > 4096 {
		data = data[:4096] // long inputs add time, not coverage
	}
	r, bound := ringFor(data[0])
	direct := bufferOps{r.Push, r.Pop, r.Len, r.Cap}
	var buf Buffer[int] = r
	viaBuffer := opsOf(buf)
	l := &lockstep{t: t, model: &sliceBuffer{bound: bound}}
	next := 1000 // the values bursts push: never 0, each one new

	ops := data[1:]
	for i := 0; i < len(ops); i++ {
		code := ops[i]
		var arg int
		switch code & 7 {
		case opPush, opPushBurst, opPopBurst, opChurn:
			if i+1 < len(ops) {
				i++
				arg = int(ops[i])
			}
		}
		l.ring = direct
		if code&opViaBuffer != 0 {
			l.ring = viaBuffer
		}
		l.where = fmt.Sprintf("operation at byte %d (%#02x, argument %d), ring bound %d", i+1, code, arg, bound)
		switch code & 7 {
		case opPush:
			l.push(arg + 1)
		case opPop:
			l.pop()
		case opLenCap:
			if code&opVariant != 0 {
				l.cap()
			} else {
				l.len()
			}
		case opChurn:
			for range 4 * arg {
				l.push(next)
				next++
				l.pop()
			}
		case opFullEmpty:
			full, empty := l.len() == l.cap(), l.len() == 0
			if full && l.push(next) {
				t.Fatalf("%s: a full ring accepted a Push", l.where)
			}
			if empty && l.pop() {
				t.Fatalf("%s: an empty ring popped an item", l.where)
			}
		case opPushBurst:
			for range arg {
				if bound == 0 && l.model.Len() >= maxUnboundedItems {
					break
				}
				l.push(next)
				next++
			}
		case opPopBurst:
			for range arg {
				l.pop()
			}
		case opFillDrain:
			if code&opVariant != 0 {
				for range 2048 {
					if bound == 0 && l.model.Len() >= maxUnboundedItems || !l.push(next) {
						break
					}
					next++
				}
			} else {
				for l.pop() {
				}
			}
		}
		if l.len() <= maxItemsCompared {
			if got := ringItems(r); !slices.Equal(l.model.items, got) {
				t.Fatalf("%s: the ring holds other items than the model (-model +ring):\n%s",
					l.where, cmp.Diff(l.model.items, got, cmpopts.EquateEmpty()))
			}
			if err := checkRing(r); err != nil {
				t.Fatalf("%s: %v", l.where, err)
			}
		}
	}
	l.ring, l.where = direct, "final drain"
	for l.pop() {
	}
	if err := checkRing(r); err != nil {
		t.Fatalf("after the final drain: %v", err)
	}
}

// ringSeeds are FuzzRing's seed inputs; testdata/fuzz/FuzzRing holds the
// same ones as files.
var ringSeeds = []struct {
	name string
	data []byte
}{
	{"empty-ring-cap-1", []byte{0x00, opPop, opLen, opCap, opFullEmpty}},
	{"cap-1-full", []byte{0x00, opPush, 7, opPush, 8, opFullEmpty, opPop, opPop, opFullEmpty}},
	{"cap-3-wraparound", []byte{0x02,
		opPush, 1, opPush, 2, opPush, 3, opPush, 4, opPop, opPush, 5, opPop, opPush, 6,
		opPop, opPop, opPop, opPop, opLen, opCap, opFullEmpty}},
	{"cap-17-grow-past-min-slots", []byte{0x10,
		opPushBurst, 16, opPush, 9, opFullEmpty, opPopBurst, 12, opPushBurst, 10, opDrain, opLen}},
	{"bound-1025-grow-shrink", []byte{0xc0 + 30,
		opFill, opFullEmpty, opPopBurst, 255, opPopBurst, 255, opPopBurst, 255,
		opPushBurst, 200, opDrain, opPushBurst, 100, opPopBurst, 99, opLen}},
	{"bound-65-shrink-back", []byte{0xc0,
		opFill, opPopBurst, 60, opChurn, 64, opLen, opPushBurst, 40, opChurn | opViaBuffer, 255, opDrain, opCap}},
	{"unbounded-via-buffer", []byte{0xff,
		opPushBurst | opViaBuffer, 255, opPushBurst | opViaBuffer, 255, opFill | opViaBuffer,
		opCap | opViaBuffer, opFullEmpty | opViaBuffer, opPopBurst | opViaBuffer, 255,
		opPush | opViaBuffer, 42, opDrain | opViaBuffer, opPop | opViaBuffer, opLen | opViaBuffer}},
}
