// Package benchcpu reports a benchmark's CPU time per iteration. On a
// shared machine wall time per op mostly measures the neighbours; the
// process's CPU time (user + system, all threads, so the collector's share
// too) much less so. It imports nothing of the module, so any package's
// benchmarks may use it (contracts included).
package benchcpu

import (
	"syscall"
	"testing"
	"time"
)

// PerOp starts measuring; the function it returns adds the metric
// cpu-ns/op. Use as defer benchcpu.PerOp(b)().
func PerOp(b *testing.B) func() {
	start := processCPU(b)
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
