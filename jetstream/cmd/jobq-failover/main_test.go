package main

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain lets the test binary play a worker process, as the program
// does: run starts workers by running its own executable again.
func TestMain(m *testing.M) {
	if url := os.Getenv("JOBQ_FAILOVER_WORKER"); url != "" {
		if err := worker(url); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func TestFailoverEveryJobEndsExactlyOnce(t *testing.T) {
	if err := run(300); err != nil {
		t.Fatal(err)
	}
}
