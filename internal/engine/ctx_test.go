package engine

import (
	"context"
	"slices"
	"testing"
)

// TestAdoptedKidsStayLinked checks the list of jobs a handler ctx adopts
// (jobs submitted with it, waiting): after any order of disowns, walking
// it forward gives exactly the jobs still adopted, and every link back
// matches the link forward.
func TestAdoptedKidsStayLinked(t *testing.T) {
	for _, order := range [][]int{
		{3, 1, 7, 2, 0},
		{0, 1, 2, 3, 4, 5, 6, 7},
		{7, 6, 5, 4, 3, 2, 1, 0},
		{4, 3, 5, 2, 6},
		{7, 0, 6},
	} {
		var c attemptCtx[int, int]
		c.init(context.Background(), nil, 1)
		kids := make([]*Job[int, int], 8)
		for i := range kids {
			kids[i] = new(Job[int, int])
			kids[i].in = i
			kids[i].sideOf()
			if !c.adopt(kids[i]) {
				t.Fatalf("adopt(%d) refused by a ctx that is not done", i)
			}
		}
		left := []int{0, 1, 2, 3, 4, 5, 6, 7}
		for _, i := range order {
			c.disown(kids[i])
			left = slices.DeleteFunc(left, func(n int) bool { return n == i })
			var walk []int
			var prev *Job[int, int]
			for k := c.ext.Load().kids; k != nil; k = k.sd().nextKid {
				if k.sd().prevKid != prev {
					t.Fatalf("order %v, after disown(%d): job %d links back to the wrong job", order, i, k.in)
				}
				walk = append(walk, k.in)
				prev = k
			}
			slices.Sort(walk)
			if !slices.Equal(walk, left) {
				t.Fatalf("order %v, after disown(%d): the list holds %v, want %v", order, i, walk, left)
			}
			if sd := kids[i].sd(); sd.prevKid != nil || sd.nextKid != nil {
				t.Fatalf("order %v: disowned job %d keeps its links", order, i)
			}
		}
	}
}
