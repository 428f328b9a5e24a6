package platform

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// defaultMemoryLimit is the Go runtime's soft memory limit when GOMEMLIMIT
// is not set. Rosetta's live heap stays small (tens of MB: batches are
// bounded, transactions are streamed), but with the default GOGC alone the
// heap grows to twice its live size between collections and a burst (a
// backlog drained at full speed) pushed rosetta dev past 400 MB of RSS in
// `make bench`. Near the limit the collector runs more often instead
// (bounded by the runtime to about half the CPU); GOMEMLIMIT overrides it,
// GOMEMLIMIT=off removes it.
const defaultMemoryLimit = 192 << 20

func applyMemoryLimit(log *slog.Logger) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return // the runtime read it at start
	}
	debug.SetMemoryLimit(defaultMemoryLimit)
	log.Debug("go memory limit", "bytes", defaultMemoryLimit)
}
