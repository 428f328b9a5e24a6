// Package capture is Rosetta's capture service: one logical replication
// connection per source, publishing every row change to the source's
// JetStream stream and confirming WAL to PostgreSQL only once JetStream has
// acknowledged it.
//
// A Manager reconciles the set of running Workers with the config store
// (at start, on every config event and on a timer). A source has a worker
// while at least one of its pipelines has status START; the worker of a
// source without one stops, and its slot keeps its position, so a later
// start resumes with nothing lost.
package capture

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/settings"
)

// ConfigStore is what capture needs from the config store. Implementations
// must be safe for concurrent use: every worker reports its own state.
type ConfigStore interface {
	// ListAllSources returns every source with its password decrypted.
	ListAllSources(ctx context.Context) ([]configstore.Source, error)
	ListAllPipelines(ctx context.Context) ([]configstore.Pipeline, error)
	SetSourceState(ctx context.Context, st configstore.SourceState) error
	// CreateBackfillJob records a PENDING backfill job; capture creates
	// one when a table got values logical replication never sends
	// (Config.BackfillOnRewrite).
	CreateBackfillJob(ctx context.Context, in configstore.BackfillInput) (configstore.BackfillJob, error)
}

// Source states capture reports.
const (
	StateRunning = "RUNNING"
	StateStopped = "STOPPED"
	StateError   = "ERROR"
)

// Config configures the capture service.
type Config struct {
	// StreamLimits bound each source's stream (see natsx.StreamLimits).
	StreamLimits natsx.StreamLimits
	// ReconcileInterval is how often the manager re-reads the config store
	// without a config event (ROSETTA_RECONCILE_INTERVAL; the default is
	// settings.Default().ReconcileInterval, 30s).
	ReconcileInterval time.Duration
	// StatusInterval is how often a running worker reports its state and
	// confirmed LSN to the config store. Default 10s.
	StatusInterval time.Duration
	// StandbyInterval is the longest time between two status updates sent
	// to PostgreSQL; it must stay below the source's wal_sender_timeout
	// (60s by default). Default 10s.
	StandbyInterval time.Duration
	// ReceiveTimeout is how long the replication connection may go without
	// any message from the source before the worker drops it as dead (a
	// half-open connection: the source or a middlebox vanished without a
	// FIN or RST, so reads would wait forever) and reconnects. Every
	// periodic status update asks the source for a keepalive, so a live
	// connection carries a message at least every StandbyInterval. It also
	// bounds every query on the worker's other connection. Default 30s.
	ReceiveTimeout time.Duration
	// ConfirmInterval is the shortest time between two status updates sent
	// because the confirmed LSN advanced. Default 1s.
	ConfirmInterval time.Duration
	// TakeoverInterval is how often a standby capture, one whose source's
	// slot another capture instance holds, tries to take the slot over.
	// PostgreSQL admits one walsender per slot, so the standby gets it
	// within this interval of the active instance letting it go (dying,
	// losing PostgreSQL, or giving it up because it cannot publish).
	// Default 1s.
	TakeoverInterval time.Duration
	// PublishWindow is the number of messages published and not yet
	// acknowledged by JetStream a worker allows before it waits. A message
	// holds the changes of one table and partition of one transaction, up
	// to contracts.ChunkChanges of them (a single-row transaction is one
	// message of one change). Default 4096.
	PublishWindow int
	// AckTimeout is how long a published message may stay unacknowledged
	// before the worker gives up on the session and restarts from the
	// confirmed position. Default 30s.
	AckTimeout time.Duration
	// DrainTimeout is how long a stopping worker waits for outstanding acks
	// before its final status update. Default 10s.
	DrainTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait before reconnecting after an
	// error; it doubles from min to max. Defaults 1s and 30s.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// ConnectTimeout bounds connecting to a source. Default 10s.
	ConnectTimeout time.Duration
	// ConfirmDelay is how long a transaction must have been acknowledged
	// by JetStream before its WAL is confirmed to PostgreSQL. Set it to the
	// NATS server's fsync interval (plus a margin) when JetStream does not
	// fsync before acknowledging and has no replicas on other machines; 0
	// confirms as soon as the acknowledgement arrives. Default 0.
	ConfirmDelay time.Duration
	// Streaming asks sources that have it (PostgreSQL 14 and later) to
	// stream transactions larger than their logical_decoding_work_mem while
	// they run (pgoutput protocol version 2), instead of decoding them only
	// after the commit. Capture spools a streamed transaction to a file in
	// SpoolDir and publishes it at its commit, exactly like an unstreamed
	// one (same changes, order and message ids); a rolled-back one publishes
	// nothing. Default true.
	Streaming bool
	// SpoolDir is where each replication session makes its directory of
	// streamed transactions' spool files (rosetta-spool-<source id>-*,
	// mode 0700, removed when the session ends). It needs room for the
	// largest transactions in flight at once, about their pgoutput size.
	// Empty is os.TempDir().
	SpoolDir string
	// BackfillOnRewrite makes capture create a backfill job of a table,
	// for each pipeline that holds it, when a relation message of this
	// session describes it with a new column whose existing rows got
	// values logical replication never sends: a column added with a
	// volatile default (gen_random_uuid(), clock_timestamp(), serial) or
	// as an identity column rewrites the table. Off, capture only logs a
	// warning. Default true.
	BackfillOnRewrite bool
	// Metrics records published changes, confirmed positions and errors;
	// nil records nothing.
	Metrics Metrics
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		StreamLimits:      natsx.DefaultStreamLimits(),
		ReconcileInterval: settings.Default().ReconcileInterval,
		StatusInterval:    10 * time.Second,
		StandbyInterval:   10 * time.Second,
		ConfirmInterval:   time.Second,
		TakeoverInterval:  time.Second,
		ReceiveTimeout:    30 * time.Second,
		PublishWindow:     4096,
		AckTimeout:        30 * time.Second,
		DrainTimeout:      10 * time.Second,
		BackoffMin:        time.Second,
		BackoffMax:        30 * time.Second,
		ConnectTimeout:    10 * time.Second,
		Streaming:         true,
		BackfillOnRewrite: true,
	}
}

// Validate reports every field out of range.
func (c Config) Validate() error {
	var errs []error
	pos := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("capture config: %s must be positive", name))
		}
	}
	pos("ReconcileInterval", c.ReconcileInterval)
	pos("StatusInterval", c.StatusInterval)
	pos("StandbyInterval", c.StandbyInterval)
	pos("ConfirmInterval", c.ConfirmInterval)
	pos("AckTimeout", c.AckTimeout)
	pos("DrainTimeout", c.DrainTimeout)
	pos("BackoffMin", c.BackoffMin)
	pos("ConnectTimeout", c.ConnectTimeout)
	if c.ReceiveTimeout <= c.StandbyInterval {
		errs = append(errs, fmt.Errorf("capture config: ReceiveTimeout %s must exceed StandbyInterval %s (a live source answers each status update)",
			c.ReceiveTimeout, c.StandbyInterval))
	}
	if c.BackoffMax < c.BackoffMin {
		errs = append(errs, fmt.Errorf("capture config: BackoffMax %s is below BackoffMin %s", c.BackoffMax, c.BackoffMin))
	}
	if c.PublishWindow <= 0 {
		errs = append(errs, fmt.Errorf("capture config: PublishWindow must be positive"))
	}
	return errors.Join(errs...)
}
