//go:build !unix

package embedded

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// lockDir creates dir/LOCK exclusively. Unlike flock, the file outlives a
// crashed process: delete it by hand once no server runs on dir.
func lockDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%w: %s exists (another server, or a crashed one: remove it)", ErrLocked, path)
		}
		return nil, fmt.Errorf("embedded: lock file: %w", err)
	}
	return func() { f.Close(); os.Remove(path) }, nil
}
