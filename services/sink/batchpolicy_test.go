package sink

import (
	"context"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

type plainDriver struct{}

func (plainDriver) Apply(context.Context, []cdc.TableBatch) error { return nil }
func (plainDriver) Close() error                                  { return nil }

type policyDriver struct {
	plainDriver
	size int
	wait time.Duration
}

func (d policyDriver) BatchPolicy() (int, time.Duration) { return d.size, d.wait }

// TestWithBatchPolicy: a destination's own batch size and flush interval
// replace the sink's; unset ones (0) and drivers without a policy keep the
// sink's.
func TestWithBatchPolicy(t *testing.T) {
	t.Parallel()
	base := sinkrunner.DefaultConfig()
	for _, tc := range []struct {
		name string
		drv  sinkrunner.Driver
		size int
		wait time.Duration
	}{
		{"no policy", plainDriver{}, base.BatchSize, base.BatchWait},
		{"both", policyDriver{size: 20000, wait: time.Minute}, 20000, time.Minute},
		{"wait only", policyDriver{wait: 5 * time.Second}, base.BatchSize, 5 * time.Second},
	} {
		got := withBatchPolicy(base, tc.drv)
		if got.BatchSize != tc.size || got.BatchWait != tc.wait {
			t.Errorf("%s: size %d wait %s, want %d %s", tc.name, got.BatchSize, got.BatchWait, tc.size, tc.wait)
		}
	}
}
