package jobq

import (
	"fmt"
	"math"
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
// than directly, and bit 4 tells fill from drain. Push and the bursts take
// the next byte as their argument.
const (
	opPush      = iota // push arg+1 (never 0, so a zeroed slot is told apart)
	opPop              // pop one
	opLen              // Len
	opCap              // Cap
	opFullEmpty        // Len() == Cap(), Len() == 0
	opPushBurst        // push arg items
	opPopBurst         // pop arg times
	opFillDrain        // bit 4 set: push until refused (2048 at most); clear: pop until empty

	opViaBuffer = 8                // call the ring through the Buffer interface
	opFill      = opFillDrain | 16 // push until refused
	opDrain     = opFillDrain      // pop until empty
)

// ringStep is what one operation returned, and the Len and items after it.
type ringStep struct {
	Op     string
	Pushed []bool   // each Push's answer
	Popped []popped // each Pop's answers
	Len    int
	Cap    int  `cmp:",omitempty"`
	Full   bool `cmp:",omitempty"`
	Empty  bool `cmp:",omitempty"`
	Items  []int
}

type popped struct {
	V  int
	OK bool
}

// bufferOps is a Buffer's methods as values, so one run of an operation
// calls either the Ring's methods directly or through the interface.
type bufferOps struct {
	push     func(int) bool
	pop      func() (int, bool)
	len, cap func() int
}

func opsOf(b Buffer[int]) bufferOps { return bufferOps{b.Push, b.Pop, b.Len, b.Cap} }

// maxItemsShown bounds the depth at which each step compares the whole
// contents and checks every slot; deeper, the pops and the final drain
// compare them.
const maxItemsShown = 256

func FuzzRing(f *testing.F) {
	for _, seed := range ringSeeds {
		f.Add(seed.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		if len(data) > 4096 {
			data = data[:4096] // long inputs add time, not coverage
		}
		r, bound := ringFor(data[0])
		model := &sliceBuffer{bound: bound}
		direct := bufferOps{r.Push, r.Pop, r.Len, r.Cap}
		var viaBuffer Buffer[int] = r
		iface := opsOf(viaBuffer)
		next := 1000 // the values bursts push

		ops := data[1:]
		for i := 0; i < len(ops); i++ {
			code := ops[i]
			var arg int
			switch code & 7 {
			case opPush, opPushBurst, opPopBurst:
				if i+1 < len(ops) {
					i++
					arg = int(ops[i])
				}
			}
			ringOps := direct
			if code&opViaBuffer != 0 {
				ringOps = iface
			}
			var want, got ringStep
			switch code & 7 {
			case opPush:
				want = pushStep(opsOf(model), []int{arg + 1})
				got = pushStep(ringOps, []int{arg + 1})
			case opPushBurst:
				vs := make([]int, arg)
				for k := range vs {
					vs[k] = next
					next++
				}
				want = pushStep(opsOf(model), vs)
				got = pushStep(ringOps, vs)
			case opPop:
				want = popStep(opsOf(model), 1)
				got = popStep(ringOps, 1)
			case opPopBurst:
				want = popStep(opsOf(model), arg)
				got = popStep(ringOps, arg)
			case opLen:
				want = ringStep{Op: "Len"}
				got = ringStep{Op: "Len"}
			case opCap:
				want = ringStep{Op: "Cap", Cap: model.Cap()}
				got = ringStep{Op: "Cap", Cap: ringOps.cap()}
			case opFullEmpty:
				want = fullEmptyStep(opsOf(model))
				got = fullEmptyStep(ringOps)
			case opFillDrain:
				if code&16 != 0 {
					vs := make([]int, 2048)
					for k := range vs {
						vs[k] = next
						next++
					}
					want = fillStep(opsOf(model), vs)
					got = fillStep(ringOps, vs)
				} else {
					want = drainStep(opsOf(model))
					got = drainStep(ringOps)
				}
			}
			want.Len, got.Len = model.Len(), ringOps.len()
			if model.Len() <= maxItemsShown {
				want.Items = append([]int(nil), model.items...)
				got.Items = ringItems(r)
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("operation %d (byte %#02x), ring bound %d: the ring differs from the slice model (-model +ring):\n%s",
					i, code, bound, diff)
			}
			if len(r.buf) <= 4*maxItemsShown {
				if err := checkRing(r); err != nil {
					t.Fatalf("operation %d (byte %#02x), ring bound %d: %v", i, code, bound, err)
				}
			}
		}
		// Whatever was not compared step by step is compared here.
		if diff := cmp.Diff(drainStep(opsOf(model)), drainStep(direct), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("final drain, ring bound %d: the ring differs from the slice model (-model +ring):\n%s", bound, diff)
		}
		if err := checkRing(r); err != nil {
			t.Fatalf("after the final drain: %v", err)
		}
	})
}

func pushStep(b bufferOps, vs []int) ringStep {
	s := ringStep{Op: fmt.Sprintf("Push %d items", len(vs))}
	for _, v := range vs {
		s.Pushed = append(s.Pushed, b.push(v))
	}
	return s
}

func popStep(b bufferOps, n int) ringStep {
	s := ringStep{Op: fmt.Sprintf("Pop %d times", n)}
	for range n {
		v, ok := b.pop()
		s.Popped = append(s.Popped, popped{v, ok})
	}
	return s
}

func fullEmptyStep(b bufferOps) ringStep {
	return ringStep{Op: "Full/Empty", Full: b.len() == b.cap(), Empty: b.len() == 0}
}

// fillStep pushes vs until a Push is refused.
func fillStep(b bufferOps, vs []int) ringStep {
	s := ringStep{Op: "Fill"}
	for _, v := range vs {
		ok := b.push(v)
		s.Pushed = append(s.Pushed, ok)
		if !ok {
			break
		}
	}
	return s
}

// drainStep pops until a Pop finds nothing.
func drainStep(b bufferOps) ringStep {
	s := ringStep{Op: "Drain"}
	for {
		v, ok := b.pop()
		s.Popped = append(s.Popped, popped{v, ok})
		if !ok {
			return s
		}
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
	{"unbounded-via-buffer", []byte{0xff,
		opPushBurst | opViaBuffer, 255, opPushBurst | opViaBuffer, 255, opFill | opViaBuffer,
		opCap | opViaBuffer, opFullEmpty | opViaBuffer, opPopBurst | opViaBuffer, 255,
		opPush | opViaBuffer, 42, opDrain | opViaBuffer, opPop | opViaBuffer, opLen | opViaBuffer}},
}
