package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/seed-bb9ff1e7/jobq"
)

// writeTree creates files (path → content) under a new temp dir.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRunSummarizesTree(t *testing.T) {
	root := writeTree(t, map[string]string{
		"a.txt":          "one\ntwo\n",
		"b.txt":          "no newline at end",
		"empty":          "",
		"sub/c.go":       "package c\n\nfunc C() {}\n",
		"sub/d.go":       "package c\n",
		"sub/deep/e.txt": "1\n2\n3\n4\n5\n",
	})
	const wantFiles, wantLines = 6, "12"
	counts := regexp.MustCompile(`files\s+(\d+) walked: (\d+) hashed, (\d+) failed`)

	for _, args := range [][]string{
		{"-fail-rate", "0"},
		{"-fail-rate", "0.3", "-workers", "3"},
		{"-fail-rate", "0.3", "-workers", "1", "-ordered"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append([]string{"-dir", root}, args...), &stdout, &stderr); code != 0 {
				t.Fatalf("run exited %d, stderr:\n%s", code, stderr.String())
			}
			out := stdout.String()
			m := counts.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no file counts in the summary:\n%s", out)
			}
			walked, _ := strconv.Atoi(m[1])
			hashed, _ := strconv.Atoi(m[2])
			failed, _ := strconv.Atoi(m[3])
			if walked != wantFiles || hashed+failed != wantFiles {
				t.Errorf("summary says %q, want %d walked, all hashed or failed:\n%s", m[0], wantFiles, out)
			}
			// A file fails only if an injected fault beats all 4 attempts
			// (0.3^4 < 1%); the totals are exact when none did.
			if failed == 0 {
				for _, want := range []string{`lines\s+` + wantLines + `\n`, `checksums\s+match the sequential pass`} {
					if !regexp.MustCompile(want).MatchString(out) {
						t.Errorf("summary does not match %q:\n%s", want, out)
					}
				}
			}
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	root := writeTree(t, map[string]string{"f": "x\n"})
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		message string // in stderr
	}{
		{"missing dir", []string{"-dir", filepath.Join(root, "nope")}, 1, "no such file"},
		{"file as dir", []string{"-dir", filepath.Join(root, "f")}, 1, "not a directory"},
		{"unknown flag", []string{"-bogus"}, 2, "flag provided but not defined"},
		{"bad int", []string{"-workers", "many"}, 2, "invalid value"},
		{"no workers", []string{"-workers", "0"}, 2, "-workers must be >= 1"},
		{"rate too high", []string{"-fail-rate", "1"}, 2, "-fail-rate must be in [0, 1)"},
		{"negative rate", []string{"-fail-rate", "-0.1"}, 2, "-fail-rate must be in [0, 1)"},
		{"NaN rate", []string{"-fail-rate", "NaN"}, 2, "-fail-rate must be in [0, 1)"},
		{"extra argument", []string{"-dir", root, "extra"}, 2, `unexpected argument "extra"`},
		{"help", []string{"-h"}, 0, "usage:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.message) {
				t.Errorf("run(%q) = %d, stderr:\n%s\nwant %d and stderr containing %q",
					tc.args, code, stderr.String(), tc.code, tc.message)
			}
		})
	}
}

func TestReadStageMissingFileIsPermanent(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone")
	read := jobq.New(1, readStage(0), jobq.WithPolicy(readPolicy()))
	defer read.Close()
	r := read.Submit(context.Background(), missing)
	_, err := r.Await(context.Background())
	if !errors.Is(err, fs.ErrNotExist) || r.Attempts() != 1 {
		t.Errorf("reading a missing file: err %v after %d attempts, want fs.ErrNotExist after 1", err, r.Attempts())
	}
}

func TestPipelineCountsFailedFiles(t *testing.T) {
	root := writeTree(t, map[string]string{"a": "1\n", "b/c": "2\n3\n"})
	files := []string{filepath.Join(root, "a"), filepath.Join(root, "gone"), filepath.Join(root, "b", "c")}
	cfg := config{dir: root, workers: 2}
	tot, err := runPipeline(context.Background(), cfg, files, newProgress(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if tot.files != 2 || tot.failed != 1 || tot.lines != 3 {
		t.Errorf("got %d hashed, %d failed, %d lines; want 2, 1, 3", tot.files, tot.failed, tot.lines)
	}
	if len(tot.errs) != 1 || !errors.Is(tot.errs[0], fs.ErrNotExist) {
		t.Errorf("errors %v, want one fs.ErrNotExist", tot.errs)
	}
}
