package main

import (
	"bytes"
	"crypto/sha256"
	"strings"
)

// digest is what the CPU stage makes of an object.
type digest struct {
	size  int64
	lines int64
	sum   [sha256.Size]byte
}

// summarize hashes data and counts its lines; a last line without a
// newline counts.
func summarize(data []byte) digest {
	lines := int64(bytes.Count(data, []byte{'\n'}))
	if n := len(data); n > 0 && data[n-1] != '\n' {
		lines++
	}
	return digest{size: int64(len(data)), lines: lines, sum: sha256.Sum256(data)}
}

// xorInto folds the digest src into dst.
func xorInto(dst *[sha256.Size]byte, src [sha256.Size]byte) {
	for i := range dst {
		dst[i] ^= src[i]
	}
}

// topDir returns the first element of a slash-separated key, or "." for a
// key without one.
func topDir(key string) string {
	if dir, _, ok := strings.Cut(key, "/"); ok {
		return dir
	}
	return "."
}
