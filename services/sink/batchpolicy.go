package sink

import (
	"time"

	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// batchPolicy is a driver whose destination sets its own batch size and
// flush interval (the snowflake driver: every batch resumes a warehouse).
type batchPolicy interface {
	BatchPolicy() (size int, wait time.Duration)
}

// withBatchPolicy is the runner config for drv: the sink's, with the
// destination's batch size and wait where it sets them (> 0).
func withBatchPolicy(cfg sinkrunner.Config, drv sinkrunner.Driver) sinkrunner.Config {
	bp, ok := drv.(batchPolicy)
	if !ok {
		return cfg
	}
	size, wait := bp.BatchPolicy()
	if size > 0 {
		cfg.BatchSize = size
	}
	if wait > 0 {
		cfg.BatchWait = wait
	}
	return cfg
}
