package engine

import (
	"fmt"
	"strings"
	"testing"
)

// moves are the named transition methods, each with the move the table
// gives it; end moves are made by endIn, tried below.
var moves = []struct {
	name string
	do   func(j *Job[int, int], k int) bool
}{
	{"claim", func(j *Job[int, int], k int) bool { return j.claim(k) }},
	{"succeed", func(j *Job[int, int], k int) bool { return j.succeed(k) }},
	{"fail", func(j *Job[int, int], k int) bool { return j.fail(k) }},
	{"retry", func(j *Job[int, int], k int) bool { return j.retry(k) }},
	{"give up", func(j *Job[int, int], k int) bool { return j.giveUp(k) }},
	{"requeue", func(j *Job[int, int], k int) bool { return j.requeue(k) }},
}

// TestEveryTransitionOfTheLifecycle walks every pair of phases: each named
// method moves a job only from the phase the table gives it, to the phase
// it gives, and only at the attempt it names; every other move is
// refused, and a move the table lacks panics.
func TestEveryTransitionOfTheLifecycle(t *testing.T) {
	const k = 3
	for _, m := range moves {
		want, ok := Transitions[m.name]
		if !ok {
			t.Fatalf("method %q has no row in Transitions", m.name)
		}
		for from := Phase(0); from < numPhases; from++ {
			t.Run(fmt.Sprintf("%s from %v", m.name, from), func(t *testing.T) {
				var j Job[int, int]
				j.Word.Store(mkState(k, from))
				got := m.do(&j, k)
				if wantOK := from == want[0]; got != wantOK {
					t.Fatalf("%s from %v: moved %v, want %v", m.name, from, got, wantOK)
				}
				if !got {
					if s := j.Word.Load(); s != mkState(k, from) {
						t.Fatalf("a refused %s changed the state to %v", m.name, Phase(s&phaseMask))
					}
					return
				}
				wantK := k
				if m.name == "claim" {
					wantK = k + 1 // a claim starts the next attempt
				}
				if s := j.Word.Load(); s != mkState(wantK, want[1]) {
					t.Fatalf("%s: state %v at attempt %d, want %v at %d", m.name, Phase(s&phaseMask), s>>phaseBits, want[1], wantK)
				}
				// The same move, naming another attempt, is refused: a
				// late actor of an earlier attempt cannot win.
				j.Word.Store(mkState(k, from))
				if m.do(&j, k-1) {
					t.Fatalf("%s at attempt %d moved a job at attempt %d", m.name, k-1, k)
				}
			})
		}
	}
}

// TestEndMovesOnlyFromTheListedPhases: Cancel, a ctx's end and Shutdown's
// give-up end a job only from the phases they name, never from Done.
func TestEndMovesOnlyFromTheListedPhases(t *testing.T) {
	for _, from := range []Phase{Queued, Running, Backoff, Done} {
		for _, phases := range [][]Phase{{Queued, Backoff}, {Queued, Backoff, Running}} {
			var j Job[int, int]
			j.Word.Store(mkState(2, from))
			ph, k, ok := j.endIn(phases)
			want := from != Done && strings.Contains(fmt.Sprint(phases), from.String())
			if ok != want {
				t.Errorf("end from %v with %v: ended %v, want %v", from, phases, ok, want)
			}
			if ok && (ph != from || k != 2 || j.Phase() != Done) {
				t.Errorf("end from %v: left %v at %d, now %v", from, ph, k, j.Phase())
			}
			if !ok && j.Phase() != from {
				t.Errorf("a refused end from %v changed the phase to %v", from, j.Phase())
			}
		}
	}
}

// TestTheTableAllowsOnlyItsMoves checks Allowed against Transitions for
// every pair, and that a move outside the table panics.
func TestTheTableAllowsOnlyItsMoves(t *testing.T) {
	inTable := map[[2]Phase]bool{}
	for _, m := range Transitions {
		inTable[m] = true
	}
	for from := Phase(0); from < numPhases; from++ {
		for to := Phase(0); to < numPhases; to++ {
			if got := Allowed(from, to); got != inTable[[2]Phase{from, to}] {
				t.Errorf("Allowed(%v, %v) = %v", from, to, got)
			}
			if inTable[[2]Phase{from, to}] {
				continue
			}
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("move %v -> %v did not panic", from, to)
					}
				}()
				var j Job[int, int]
				j.move(0, from, 0, to)
			}()
		}
	}
	if Allowed(Done, Queued) || Allowed(numPhases, Done) {
		t.Error("Done is not final, or an unknown phase is allowed")
	}
}
