package sinkrunner

import (
	"context"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/settings"
)

// Config tunes a Runner. Zero fields take the defaults in DefaultConfig:
// those an operator can set (batch size and wait, apply timeout) are
// pkg/settings' defaults, the one place they are written down.
type Config struct {
	// PipelineID and DestinationID identify what the runner serves, in
	// reported states and logs; SourceID is the source of its consumer's
	// stream, recorded with dead letters.
	PipelineID    int64
	DestinationID int64
	SourceID      int64
	// BatchSize is the most changes applied at once
	// (ROSETTA_SINK_BATCH_SIZE; settings.Default().SinkBatchSize). It
	// counts changes, not messages: a version 2 message holds up to
	// contracts.ChunkChanges. A batch takes whole messages, so it may pass
	// BatchSize by less than one message's changes.
	BatchSize int
	// BatchWait is how long a batch waits for more changes after its
	// first one when the destination is free (ROSETTA_SINK_BATCH_WAIT;
	// settings.Default().SinkBatchWait): the longest a change waits for
	// others to join its batch then. A full batch goes at once; while the
	// destination applies one batch the next keeps filling, so under load
	// batches grow without waiting.
	BatchWait time.Duration
	// ApplyTimeout bounds one Apply call (ROSETTA_SINK_APPLY_TIMEOUT;
	// settings.Default().SinkApplyTimeout), and one tombstone collection.
	ApplyTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between retries of a failed
	// batch, fetch or dead-letter write: MinBackoff doubling up to
	// MaxBackoff (500ms, 30s).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// KeepAliveEvery is how often the messages of a batch being applied or
	// retried are marked in progress, so JetStream does not redeliver them
	// meanwhile (10s; a third of natsx.ConsumerAckWait).
	KeepAliveEvery time.Duration
	// ReportEvery throttles HEALTHY reports (2s).
	ReportEvery time.Duration
	// Unpin, when set, releases a consumer's pin (jetstream.Stream's
	// UnpinConsumer in group natsx.SinkGroup) when the runner stops while
	// it holds it, so that another sink instance takes the partition at its
	// next pull instead of after natsx.ConsumerPinnedTTL. nil: another
	// instance waits out the TTL.
	Unpin func(ctx context.Context, stream, consumer string) error
	// Share, when set with Unpin, is the most partitions of this pipeline
	// destination this instance should hold (balance.go): above it, the
	// runner gives partitions up to the other instances. nil or 0: no
	// limit.
	Share func() int
	// Observer records committed batches and failed attempts; nil records
	// nothing.
	Observer Observer
	// Tables are the pipeline's source tables ("schema.table"), Bounds
	// what may still reach them from outside the consumer: with both,
	// and a driver that is a TombstoneCollector, the runner collects
	// tombstones every CollectEvery (5m) and on Collect (collect.go).
	Tables       []string
	Bounds       GuardBounds
	CollectEvery time.Duration
	// GuardObserver records collections; nil takes Observer when it is
	// one, else records nothing.
	GuardObserver GuardObserver
	// Completions, with a driver that is an IncompleteReporter, turns
	// the rows Apply leaves with unknown columns into completion backfill
	// jobs, gathered for CompleteEvery (3s) before each round (complete.go).
	Completions   CompletionStore
	CompleteEvery time.Duration
}

// Observer receives a runner's measurements; *metrics.Metrics implements
// it. Calls come from Run's goroutine and must not block.
type Observer interface {
	// BatchApplied reports an Apply of changes that committed after took.
	BatchApplied(pipelineID, destinationID int64, changes []contracts.Change, took time.Duration)
	// ApplyFailed reports a failed Apply attempt, classified by ErrorClass.
	ApplyFailed(pipelineID, destinationID int64, class string)
}

// DefaultConfig holds the defaults of Config.
func DefaultConfig() Config {
	s := settings.Default()
	return Config{
		BatchSize:      s.SinkBatchSize,
		BatchWait:      s.SinkBatchWait,
		ApplyTimeout:   s.SinkApplyTimeout,
		MinBackoff:     500 * time.Millisecond,
		MaxBackoff:     30 * time.Second,
		KeepAliveEvery: 10 * time.Second,
		ReportEvery:    2 * time.Second,
		CollectEvery:   5 * time.Minute,
		CompleteEvery:  3 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.BatchSize <= 0 {
		c.BatchSize = d.BatchSize
	}
	if c.BatchWait <= 0 {
		c.BatchWait = d.BatchWait
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = d.ApplyTimeout
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = d.MinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = d.MaxBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.KeepAliveEvery <= 0 {
		c.KeepAliveEvery = d.KeepAliveEvery
	}
	if c.ReportEvery <= 0 {
		c.ReportEvery = d.ReportEvery
	}
	if c.CollectEvery <= 0 {
		c.CollectEvery = d.CollectEvery
	}
	if c.CompleteEvery <= 0 {
		c.CompleteEvery = d.CompleteEvery
	}
	if g, ok := c.Observer.(GuardObserver); ok && c.GuardObserver == nil {
		c.GuardObserver = g
	}
	return c
}
