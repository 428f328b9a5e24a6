package testkit

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// BuildBinary builds a Go main package (a path like "../services/rosetta"
// or a module path) into a temp dir for tests that run real processes, and
// returns the binary and a function removing it. Call it from TestMain.
func BuildBinary(pkg, name string, race bool) (path string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "rosetta-bin-")
	if err != nil {
		return "", nil, err
	}
	path = filepath.Join(dir, name)
	args := []string{"build", "-o", path}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build %s: %w", pkg, err)
	}
	return path, func() { os.RemoveAll(dir) }, nil
}

// LogBuffer collects a process's output for a failing test to show; it is
// safe for the concurrent writes of stdout and stderr.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tail is the last n bytes of the log.
func (b *LogBuffer) Tail(n int) string { return Tail(b.String(), n) }

// Tail is the last n bytes of s, marked when cut.
func Tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
