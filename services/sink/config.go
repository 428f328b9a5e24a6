// Package sink is the sink service: for every pipeline destination it keeps
// a durable JetStream consumer and, while the pipeline is started, a
// sinkrunner.Runner applying the consumer's changes through the driver of
// the destination's type. It converges on the config store's state, which
// it re-reads on start, on every config event and on a timer.
//
// With a Redis dead-letter queue (pkg/dlq), runners dead-letter the changes
// a destination rejects for good, and the manager replays recoveries the
// API records in the config database (dlq_recoveries) through the runner of
// the pipeline destination (see recover.go and docs/dlq.md).
package sink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/desttype"
)

// ConfigStore is what the sink reads and reports; *configstore.Store
// implements it.
type ConfigStore interface {
	ListAllPipelines(ctx context.Context) ([]configstore.Pipeline, error)
	// DestinationWithSecrets returns a destination with its secrets
	// decrypted; an error wrapping configstore.ErrNotFound means it is gone.
	DestinationWithSecrets(ctx context.Context, id int64) (configstore.Destination, error)
	SetDestinationState(ctx context.Context, st configstore.DestinationState) error
}

// DriverFactory builds the driver of one destination from its JSON config;
// its contract is desttype.Factory's.
type DriverFactory = desttype.Factory

// Drivers maps a destination type ("postgres") to its factory.
type Drivers map[string]DriverFactory

// Config tunes the sink service.
type Config struct {
	// Runner is the template of every runner's config (batch size and
	// wait, backoff); its PipelineID and DestinationID are set per runner.
	Runner sinkrunner.Config
	// ReconcileInterval is how often the config store is re-read without
	// a config event (settings.Default().ReconcileInterval).
	ReconcileInterval time.Duration
	// ConsumerRetry is how often a started pipeline destination whose
	// consumer capture has not created yet is looked at again (1s);
	// ConsumerGrace how long it may be missing before its health says so
	// (30s).
	ConsumerRetry time.Duration
	ConsumerGrace time.Duration
	// Destinations are the destinations whose sinks this manager runs;
	// empty runs every destination's. The others are left to the sink
	// instances that run them: their health is not reported and their
	// consumers are not touched here.
	Destinations []int64
	// Drivers are the destination types this build supports; nil means
	// BuiltinDrivers().
	Drivers Drivers
	// DLQ tunes dead-letter queues and their recovery; used only when the
	// manager has a queue (ROSETTA_REDIS_URL is set).
	DLQ DLQConfig
}

// DLQConfig tunes dead-letter queues and the replay of recoveries.
type DLQConfig struct {
	// Queue configures the Redis streams (key prefix "dlq").
	Queue dlq.Config
	// PollInterval is how often the sink looks for recovery requests in
	// the config database (2s).
	PollInterval time.Duration
	// Lease is how long a sink's claim on a recovery holds without being
	// renewed (1m); it is renewed every third of it. A sink that dies
	// mid-replay leaves the recovery to another sink after this.
	Lease time.Duration
	// Retention bounds every queue (settings' ROSETTA_DLQ_MAX_ENTRIES and
	// ROSETTA_DLQ_MAX_AGE); the zero value keeps every entry.
	Retention dlq.Retention
	// TrimInterval is how often the retention is applied (1m).
	TrimInterval time.Duration
	// TrimObserver, when set, counts what the retention removed.
	TrimObserver TrimObserver
}

// DefaultConfig holds the defaults. The runner's and the reconcile
// interval are pkg/settings' defaults (sinkrunner.DefaultConfig), so a
// sink built without settings behaves as `rosetta sink` does.
func DefaultConfig() Config {
	return Config{
		Runner:            sinkrunner.DefaultConfig(),
		ReconcileInterval: settings.Default().ReconcileInterval,
		ConsumerRetry:     time.Second,
		ConsumerGrace:     30 * time.Second,
		DLQ: DLQConfig{Queue: dlq.DefaultConfig(), PollInterval: 2 * time.Second, Lease: time.Minute,
			TrimInterval: time.Minute},
	}
}

// runs reports whether this manager runs the sinks of destination id.
func (c Config) runs(id int64) bool {
	return len(c.Destinations) == 0 || slices.Contains(c.Destinations, id)
}

// Validate checks the config.
func (c Config) Validate() error {
	var errs []error
	if c.ReconcileInterval <= 0 {
		errs = append(errs, errors.New("sink: reconcile interval must be positive"))
	}
	if c.Runner.BatchSize < 0 || c.Runner.BatchSize > 100000 {
		errs = append(errs, errors.New("sink: batch size must be between 1 and 100000"))
	}
	for _, id := range c.Destinations {
		if id <= 0 {
			errs = append(errs, fmt.Errorf("sink: destination id %d is not positive", id))
		}
	}
	if c.DLQ.PollInterval < 0 || c.DLQ.Lease < 0 || c.DLQ.TrimInterval < 0 {
		errs = append(errs, errors.New("sink: dlq poll interval, lease and trim interval must not be negative"))
	}
	if err := c.DLQ.Retention.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.DLQ.Queue.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
