// Command demo runs jobq on real work: it walks a source tree (Go's own,
// by default), reads every file, hashes it with SHA-256 and counts its lines
// in a pipeline of two jobq pools, and aggregates the results per directory.
// The read stage fails at random (-fail-rate) with transient errors that a
// retry policy absorbs. It ends with a summary: throughput, the speedup over
// the same work done sequentially, job latency, and each pool's metrics.
//
// Usage:
//
//	go run ./internal/demo [-dir DIR] [-workers N] [-fail-rate R] [-ordered]
//
// Exit status: 0 on success (files that cannot be read are reported, not
// fatal), 1 when the directory cannot be walked or the run is interrupted,
// 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config holds the command line.
type config struct {
	dir      string  // the tree to walk; "" means GOROOT/src
	workers  int     // workers per pool
	failRate float64 // probability that a read attempt fails transiently
	ordered  bool    // yield results in walk order
}

// run is the whole command: it returns the exit status, writing the progress
// and the summary to stdout and diagnostics to stderr.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		return 2
	}
	if cfg.dir == "" {
		if cfg.dir, err = goSourceDir(); err != nil {
			fmt.Fprintf(stderr, "demo: %v; pass -dir\n", err)
			return 1
		}
	}
	t, err := walk(cfg.dir)
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}

	// Read every file once, untimed, so that both timed passes find them
	// in the page cache: otherwise the first pass pays for the disk.
	warmCache(t.files)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	tot, err := runPipeline(ctx, cfg, t.files, newProgress(stdout))
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	seq := runSequential(t.files)
	printSummary(stdout, cfg, t, tot, seq)
	return 0
}

// parseFlags parses and checks the command line. Errors are reported on
// stderr with the usage text; flag.ErrHelp means -h was asked for.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./internal/demo [flags]\n\n"+
			"Hashes and counts the lines of every file under a directory with a\n"+
			"pipeline of jobq pools, then compares it with a sequential run.\n\nflags:\n")
		fs.PrintDefaults()
	}
	var cfg config
	fs.StringVar(&cfg.dir, "dir", "", "directory to walk (default: $(go env GOROOT)/src)")
	fs.IntVar(&cfg.workers, "workers", 2*runtime.GOMAXPROCS(0), "workers per pool stage (>= 1)")
	fs.Float64Var(&cfg.failRate, "fail-rate", 0.03, "probability that a read attempt fails transiently (0 <= r < 1)")
	fs.BoolVar(&cfg.ordered, "ordered", false, "yield results in walk order (jobq.Ordered)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	var bad string
	switch {
	case fs.NArg() > 0:
		bad = fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	case cfg.workers < 1:
		bad = fmt.Sprintf("-workers must be >= 1, got %d", cfg.workers)
	case math.IsNaN(cfg.failRate) || cfg.failRate < 0 || cfg.failRate >= 1:
		bad = fmt.Sprintf("-fail-rate must be in [0, 1), got %v", cfg.failRate)
	}
	if bad != "" {
		fmt.Fprintf(stderr, "demo: %s\n", bad)
		fs.Usage()
		return cfg, errors.New(bad)
	}
	return cfg, nil
}

// goSourceDir returns the src directory of the Go installation: GOROOT as
// the go command reports it, else as the environment or this binary says.
func goSourceDir() (string, error) {
	root := ""
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		root = strings.TrimSpace(string(out))
	}
	if root == "" {
		root = os.Getenv("GOROOT")
	}
	if root == "" {
		//lint:ignore SA1019 the last resort when neither the go command nor $GOROOT is there.
		root = runtime.GOROOT()
	}
	if root == "" {
		return "", errors.New("cannot find GOROOT (no go command, $GOROOT unset)")
	}
	return filepath.Join(root, "src"), nil
}
