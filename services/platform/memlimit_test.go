package platform

import (
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"testing"
)

// TestApplyMemoryLimit checks which runtime settings Rosetta sets: the
// soft memory limit unless GOMEMLIMIT is set, and its GC percent only
// together with its own limit and unless GOGC is set. It changes the
// process's runtime settings, so it restores them and does not run in
// parallel.
func TestApplyMemoryLimit(t *testing.T) {
	prevLimit := debug.SetMemoryLimit(-1)
	prevGC := debug.SetGCPercent(100)
	t.Cleanup(func() {
		debug.SetMemoryLimit(prevLimit)
		debug.SetGCPercent(prevGC)
	})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name      string
		env       map[string]string
		wantLimit int64
		wantGC    int
	}{
		{name: "neither set", wantLimit: defaultMemoryLimit, wantGC: defaultGCPercent},
		{name: "GOGC set", env: map[string]string{"GOGC": "150"}, wantLimit: defaultMemoryLimit, wantGC: 100},
		{name: "GOMEMLIMIT set", env: map[string]string{"GOMEMLIMIT": "1GiB"}, wantLimit: math.MaxInt64, wantGC: 100},
		{name: "GOMEMLIMIT off", env: map[string]string{"GOMEMLIMIT": "off", "GOGC": "off"}, wantLimit: math.MaxInt64, wantGC: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
				t.Setenv(k, "") // restored after the test
				os.Unsetenv(k)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			// The runtime reads the variables at start; these are the
			// values this process started with, as the test resets them.
			debug.SetMemoryLimit(math.MaxInt64)
			debug.SetGCPercent(100)
			applyMemoryLimit(log)
			if got := debug.SetMemoryLimit(-1); got != tc.wantLimit {
				t.Errorf("memory limit %d, want %d", got, tc.wantLimit)
			}
			if got := debug.SetGCPercent(100); got != tc.wantGC {
				t.Errorf("GC percent %d, want %d", got, tc.wantGC)
			}
		})
	}
}
