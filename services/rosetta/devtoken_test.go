package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevToken checks that `rosetta dev` generates its token once, readable
// by the user only, reuses it on the next start, and refuses a weak one.
func TestDevToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	tok, path, created, err := devToken(dir)
	if err != nil || !created || !strings.HasPrefix(tok, "rst_") || len(tok) < 40 {
		t.Fatalf("first: %q %v %v", tok, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v (%v), want 0600", fi.Mode(), err)
	}
	again, _, created, err := devToken(dir)
	if err != nil || created || again != tok {
		t.Fatalf("second: %q created=%v %v, want the same token", again, created, err)
	}
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := devToken(dir); err == nil || !strings.Contains(err.Error(), "delete the file") {
		t.Fatalf("weak stored token: %v", err)
	}
}
