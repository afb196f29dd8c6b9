package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// tree is the work: the files found under a directory.
type tree struct {
	files   []string // regular files, in lexical order
	skipped []error  // subdirectories that could not be read
	wall    time.Duration
}

// walk lists the regular files under root. Subdirectories it cannot read
// are skipped and reported in the tree; it fails only if root itself cannot
// be read or is not a directory.
func walk(root string) (tree, error) {
	start := time.Now()
	var t tree
	info, err := os.Stat(root)
	if err == nil && !info.IsDir() {
		err = errors.New("not a directory")
	}
	if err == nil {
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil && path == root:
				return err
			case err != nil:
				t.skipped = append(t.skipped, err)
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
			case d.Type().IsRegular():
				t.files = append(t.files, path)
			}
			return nil
		})
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the message below names the path
		}
		return tree{}, fmt.Errorf("cannot walk %s: %w", root, err)
	}
	t.wall = time.Since(start)
	return t, nil
}

// relPath returns path relative to root, for display.
func relPath(root, path string) string {
	if rel, err := filepath.Rel(root, path); err == nil {
		return rel
	}
	return path
}

// fileData is a file as the read stage hands it on.
type fileData struct {
	path string
	data []byte
}

// fileSum is what the hash stage makes of a file.
type fileSum struct {
	path  string
	size  int64
	lines int64
	sum   [sha256.Size]byte
}

// summarize hashes data and counts its lines; a last line without a
// newline counts.
func summarize(path string, data []byte) fileSum {
	lines := int64(bytes.Count(data, []byte{'\n'}))
	if n := len(data); n > 0 && data[n-1] != '\n' {
		lines++
	}
	return fileSum{path: path, size: int64(len(data)), lines: lines, sum: sha256.Sum256(data)}
}

// xorInto folds the digest src into dst.
func xorInto(dst *[sha256.Size]byte, src [sha256.Size]byte) {
	for i := range dst {
		dst[i] ^= src[i]
	}
}

// seqResult is the outcome of the sequential pass.
type seqResult struct {
	wall   time.Duration
	files  int
	bytes  int64
	lines  int64
	digest [sha256.Size]byte
}

// warmCache reads every file and discards it, so that the timed passes
// compare work, not disk reads.
func warmCache(files []string) {
	for _, path := range files {
		_, _ = os.ReadFile(path)
	}
}

// runSequential does the pipeline's work, without faults, in one goroutine.
func runSequential(files []string) seqResult {
	var r seqResult
	start := time.Now()
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		s := summarize(path, data)
		r.files++
		r.bytes += s.size
		r.lines += s.lines
		xorInto(&r.digest, s.sum)
	}
	r.wall = time.Since(start)
	return r
}
