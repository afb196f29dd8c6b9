package engine

import (
	"strconv"
	"testing"
)

// BenchmarkRing measures a push and a pop of a queue entry at steady
// depths: no allocation, and no grow/shrink thrash.
func BenchmarkRing(b *testing.B) {
	for _, depth := range []int{0, 100, 10000} {
		b.Run("depth="+strconv.Itoa(depth), func(b *testing.B) {
			r := NewRing[task[int, int]](depth + 1)
			for i := range depth {
				r.Push(task[int, int]{in: i})
			}
			b.ReportAllocs()
			for b.Loop() {
				r.Push(task[int, int]{in: 1})
				r.Pop()
			}
		})
	}
}
