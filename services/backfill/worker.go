// Package backfill runs snapshot and backfill jobs (docs/backfill.md): it
// claims PENDING jobs from the config database with a lease, reads each
// job's table in primary key order in batches through exported snapshots
// (pkg/snapshot), publishes the rows as op "r" changes, many to a
// version 2 message, and checkpoints the last key after JetStream
// acknowledged each batch.
package backfill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/pgcatalog"
	"github.com/rosettacdc/rosetta/pkg/pgrepl"
	"github.com/rosettacdc/rosetta/pkg/snapshot"
)

// Store is what the worker needs from the config database
// (*configstore.Store implements it).
type Store interface {
	ClaimBackfillJob(ctx context.Context, owner string, lease time.Duration) (configstore.BackfillJob, bool, error)
	CheckpointBackfillJob(ctx context.Context, id int64, owner string, lease time.Duration, cp configstore.Checkpoint) error
	FinishBackfillJob(ctx context.Context, id int64, owner string, status configstore.JobStatus, errText string) error
	DeferBackfillJob(ctx context.Context, id int64, owner string, wait time.Duration, note string) error
	GetPipeline(ctx context.Context, id int64) (configstore.Pipeline, error)
	SourceWithSecrets(ctx context.Context, id int64) (configstore.Source, error)
}

var _ Store = (*configstore.Store)(nil)

// Config configures the worker.
type Config struct {
	// Parallelism is how many jobs run at once (default 2).
	Parallelism int
	// Lease is how long a claim holds without a checkpoint; a job whose
	// worker died is taken over after it (default 2m). It must exceed
	// StatementTimeout plus the time to publish a batch.
	Lease time.Duration
	// PollInterval is how often an idle runner looks for a job (default 2s).
	PollInterval time.Duration
	// StatementTimeout bounds reading one batch (default 60s).
	StatementTimeout time.Duration
	// CountTimeout bounds counting the rows of a filtered job, or of a
	// table never analyzed, for rows_total (default 5s; on timeout the
	// total stays unknown).
	CountTimeout time.Duration
	// PublishWindow bounds unacknowledged messages, each of up to
	// contracts.ChunkChanges rows (default 8192). It paces the server's
	// acknowledgements; memory is bounded by the batch, which is encoded
	// whole before it is published, and a batch of the default 10000 rows
	// is a few messages per partition.
	PublishWindow int
	// AckTimeout is how long a publish may stay unacknowledged after it
	// was sent (default 30s).
	AckTimeout time.Duration
	// NotReadyWait is how long a job waits before it is tried again when
	// capture has not added its table to the publication yet (default 5s).
	NotReadyWait time.Duration
	// MaxAttempts is how many claims a job gets before an error fails it
	// (default 3); errors before that retry after RetryWait (default 10s).
	MaxAttempts int
	RetryWait   time.Duration
	// Owner names this worker in leases; default host:pid:random.
	Owner string
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return Config{
		Parallelism:      2,
		Lease:            2 * time.Minute,
		PollInterval:     2 * time.Second,
		StatementTimeout: 60 * time.Second,
		CountTimeout:     5 * time.Second,
		PublishWindow:    8192,
		AckTimeout:       30 * time.Second,
		NotReadyWait:     5 * time.Second,
		MaxAttempts:      3,
		RetryWait:        10 * time.Second,
		Owner:            fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b)),
	}
}

// Validate checks the config.
func (c Config) Validate() error {
	switch {
	case c.Parallelism < 1:
		return errors.New("backfill config: parallelism must be at least 1")
	case c.Lease <= c.StatementTimeout:
		return fmt.Errorf("backfill config: lease %s must exceed the statement timeout %s", c.Lease, c.StatementTimeout)
	case c.PollInterval <= 0 || c.StatementTimeout <= 0 || c.AckTimeout <= 0 || c.NotReadyWait <= 0 || c.RetryWait <= 0:
		return errors.New("backfill config: intervals and timeouts must be positive")
	case c.PublishWindow < 1 || c.MaxAttempts < 1:
		return errors.New("backfill config: publish window and max attempts must be at least 1")
	case c.Owner == "":
		return errors.New("backfill config: owner is empty")
	}
	return nil
}

// Worker runs jobs until its context ends.
type Worker struct {
	cfg   Config
	store Store
	nc    *nats.Conn
	log   *slog.Logger
}

// New returns a worker publishing on nc.
func New(cfg Config, store Store, nc *nats.Conn, log *slog.Logger) *Worker {
	return &Worker{cfg: cfg, store: store, nc: nc, log: log}
}

// Run runs cfg.Parallelism runners and returns when ctx ends and every
// runner stopped. A job interrupted by ctx's end is handed back PENDING
// (resuming from its last checkpoint); one interrupted by a crash is taken
// over when its lease expires.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < w.cfg.Parallelism; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.runner(ctx)
		}()
	}
	wg.Wait()
	return nil
}

func (w *Worker) runner(ctx context.Context) {
	for ctx.Err() == nil {
		job, ok, err := w.store.ClaimBackfillJob(ctx, w.cfg.Owner, w.cfg.Lease)
		if err != nil && ctx.Err() == nil {
			w.log.Warn("claim backfill job", "error", err)
		}
		if err != nil || !ok {
			t := time.NewTimer(w.cfg.PollInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		w.runJob(ctx, job)
	}
}

// errNotReady is a job whose table capture does not capture yet.
type errNotReady struct{ msg string }

func (e *errNotReady) Error() string { return e.msg }

// errPermanent fails a job at once.
type errPermanent struct{ err error }

func (e *errPermanent) Error() string { return e.err.Error() }
func (e *errPermanent) Unwrap() error { return e.err }

func (w *Worker) runJob(ctx context.Context, job configstore.BackfillJob) {
	log := w.log.With("job", job.ID, "pipeline", job.PipelineID, "table", job.Table, "kind", job.Kind)
	log.Info("backfill job claimed", "attempt", job.Attempts, "rows_copied", job.RowsCopied)
	password, err := w.execute(ctx, log, job)
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var nr *errNotReady
	var perm *errPermanent
	switch {
	case err == nil:
		if err := w.store.FinishBackfillJob(bg, job.ID, w.cfg.Owner, configstore.JobCompleted, ""); err != nil {
			log.Warn("finish backfill job", "error", err)
			return
		}
		log.Info("backfill job completed")
	case errors.Is(err, configstore.ErrJobLost):
		log.Info("backfill job stopped: cancelled or taken over")
	case ctx.Err() != nil:
		// Shutting down: hand the job back; it resumes from last_key.
		if err := w.store.DeferBackfillJob(bg, job.ID, w.cfg.Owner, 0, ""); err != nil {
			log.Warn("release backfill job", "error", err)
		}
		log.Info("backfill job released on shutdown")
	case errors.As(err, &nr):
		if err := w.store.DeferBackfillJob(bg, job.ID, w.cfg.Owner, w.cfg.NotReadyWait, nr.msg); err != nil {
			log.Warn("defer backfill job", "error", err)
		}
		log.Debug("backfill job waits for capture", "reason", nr.msg)
	default:
		msg := redact(err.Error(), password)
		if !errors.As(err, &perm) && job.Attempts < w.cfg.MaxAttempts {
			log.Warn("backfill job failed, retrying", "error", msg, "retry_in", w.cfg.RetryWait)
			if err := w.store.DeferBackfillJob(bg, job.ID, w.cfg.Owner, w.cfg.RetryWait, "retrying: "+msg); err != nil {
				log.Warn("defer backfill job", "error", err)
			}
			return
		}
		log.Error("backfill job failed", "error", msg)
		if err := w.store.FinishBackfillJob(bg, job.ID, w.cfg.Owner, configstore.JobFailed, msg); err != nil {
			log.Warn("fail backfill job", "error", err)
		}
	}
}

// execute runs the job from its checkpoint to the end. It returns the
// source's password so the caller can keep it out of the stored error.
func (w *Worker) execute(ctx context.Context, log *slog.Logger, job configstore.BackfillJob) (string, error) {
	p, err := w.store.GetPipeline(ctx, job.PipelineID)
	if err != nil {
		return "", fmt.Errorf("read pipeline %d: %w", job.PipelineID, err)
	}
	if !slices.Contains(p.Tables, job.Table) {
		return "", &errPermanent{fmt.Errorf("table %s is no longer in pipeline %d", job.Table, p.ID)}
	}
	if p.Status != configstore.StatusStart {
		return "", &errNotReady{fmt.Sprintf("waiting for pipeline %d to be started", p.ID)}
	}
	targets, err := jobTargets(job, p)
	if err != nil {
		return "", &errPermanent{err}
	}
	src, err := w.store.SourceWithSecrets(ctx, p.SourceID)
	if err != nil {
		return "", fmt.Errorf("read source %d: %w", p.SourceID, err)
	}
	table, err := pgcatalog.ParseTable(job.Table)
	if err != nil {
		return src.Password, &errPermanent{err}
	}
	filters := make([]snapshot.Filter, len(job.Filters))
	for i, f := range job.Filters {
		filters[i] = snapshot.Filter{Column: f.Column, Op: f.Op, Value: f.Value}
	}
	var lastKey []string
	if job.LastKey != nil {
		if err := json.Unmarshal(job.LastKey, &lastKey); err != nil {
			return src.Password, &errPermanent{fmt.Errorf("stored last_key %s: %w", job.LastKey, err)}
		}
	}
	ep := pgcatalog.Endpoint{Host: src.Host, Port: src.Port, Database: src.Database, User: src.User, Password: src.Password, Security: src.Security()}
	sess, err := snapshot.Open(ctx, ep, src.ID, table.Schema, table.Name, fmt.Sprint(job.ID))
	if err != nil {
		if errors.Is(err, snapshot.ErrNoPrimaryKey) || errors.Is(err, snapshot.ErrNoTable) {
			err = &errPermanent{err}
		}
		return src.Password, err
	}
	defer sess.Close(ctx)
	if err := snapshot.ValidateFilters(sess.Table(), filters); err != nil {
		return src.Password, &errPermanent{err}
	}
	// Consistency needs capture to follow the table before the snapshot's
	// consistent point: its slot must exist and the table be in its
	// publication, so every change committed after the point is captured.
	if err := ready(ctx, sess, src, table); err != nil {
		return src.Password, err
	}
	if err := w.consumersReady(ctx, p, targets, table, src.Partitions); err != nil {
		return src.Password, err
	}
	if job.RowsTotal == nil {
		if n, ok := w.total(ctx, sess, filters); ok {
			job.RowsTotal = &n
			if err := w.store.CheckpointBackfillJob(ctx, job.ID, w.cfg.Owner, w.cfg.Lease, configstore.Checkpoint{RowsCopied: job.RowsCopied, RowsTotal: &n}); err != nil {
				return src.Password, err
			}
		}
	}
	pub, err := natsx.NewPublisher[struct{}](w.nc, natsx.PublisherConfig{Window: w.cfg.PublishWindow, AckTimeout: w.cfg.AckTimeout}, nil)
	if err != nil {
		return src.Password, err
	}
	defer pub.Close()
	enc := snapshot.NewEncoder(job.ID, targets, w.nc.MaxPayload())
	enc.SetPartitions(src.Partitions)
	batches, stop := readAhead(ctx, sess, enc, filters, lastKey, job.BatchSize, w.cfg.StatementTimeout)
	// Runs before sess.Close (deferred earlier): the reader is done with
	// the session when stop returns.
	defer stop()
	copied := job.RowsCopied
	prog := newProgressLog(log, copied, job.RowsTotal, time.Now)
	waitStart := time.Now()
	for r := range batches {
		if r.err != nil {
			return src.Password, r.err
		}
		b := r.batch
		if b.Rows == 0 {
			return src.Password, nil
		}
		// Where a batch's time goes (debug log): waiting for the reader
		// (then reading is the bottleneck), publishing until every ack,
		// and the checkpoint.
		pubStart := time.Now()
		readWait := pubStart.Sub(waitStart)
		if err := publish(ctx, pub, b.Msgs); err != nil {
			return src.Password, err
		}
		cpStart := time.Now()
		// Checkpoint only now: JetStream acknowledged every row up to
		// b.LastKey, and every earlier batch was checkpointed before
		// this one was published. A crash before this re-reads the
		// batch; its messages, cut the same way, are deduplicated by
		// their Nats-Msg-Id (and the version guard). The checkpoint also notices a cancel
		// (ErrJobLost); the batch read ahead meanwhile is then dropped
		// unpublished.
		copied += int64(b.Rows)
		if err := w.store.CheckpointBackfillJob(ctx, job.ID, w.cfg.Owner, w.cfg.Lease,
			configstore.Checkpoint{LastKey: snapshot.KeyJSON(b.LastKey), RowsCopied: copied}); err != nil {
			return src.Password, err
		}
		log.Debug("backfill batch published", "rows", b.Rows, "messages", len(b.Msgs), "rows_copied", copied, "commit_lsn", b.ConsistentPoint,
			"read_wait", readWait, "publish", cpStart.Sub(pubStart), "checkpoint", time.Since(cpStart))
		waitStart = time.Now()
		prog.copied(copied)
	}
	return src.Password, ctx.Err()
}

// publish publishes every message of a batch and returns once JetStream
// acknowledged all of them (the caller checkpoints only then).
func publish(ctx context.Context, pub *natsx.Publisher[struct{}], msgs []*nats.Msg) error {
	for _, m := range msgs {
		if err := pub.Publish(ctx, m, struct{}{}); err != nil {
			return err
		}
	}
	return pub.Wait(ctx)
}

// readResult is one batch read ahead, or the error that ended reading.
type readResult struct {
	batch snapshot.Batch
	err   error
}

// readAhead reads and encodes the job's batches in a goroutine, one batch
// ahead of the caller: batch N+1 is read (a temporary slot, the query, the
// encoding) while batch N is published and acknowledged. The channel is
// closed after the last batch (one shorter than limit) or an error (sent
// as the last result). stop ends the goroutine and waits for it; the
// caller must call it before closing sess.
func readAhead(ctx context.Context, sess *snapshot.Session, enc *snapshot.Encoder, filters []snapshot.Filter,
	lastKey []string, limit int, timeout time.Duration) (<-chan readResult, func()) {
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan readResult)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for {
			b, err := sess.ReadBatch(ctx, enc, filters, lastKey, limit, timeout)
			select {
			case out <- readResult{batch: b, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil || b.Rows < limit {
				return
			}
			lastKey = b.LastKey
		}
	}()
	return out, func() {
		cancel()
		<-done
	}
}

// total estimates the rows the job will read: the planner's estimate for a
// whole analyzed table, otherwise a count bounded by CountTimeout.
func (w *Worker) total(ctx context.Context, sess *snapshot.Session, filters []snapshot.Filter) (int64, bool) {
	if len(filters) == 0 {
		if n, err := sess.EstimateRows(ctx); err == nil && n >= 0 {
			return n, true
		}
	}
	n, err := sess.CountRows(ctx, filters, w.cfg.CountTimeout)
	if err != nil {
		return 0, false
	}
	return n, true
}

func ready(ctx context.Context, sess *snapshot.Session, src configstore.Source, table pgcatalog.Table) error {
	_, found, err := pgrepl.ReadSlot(ctx, sess.Conn(), src.Slot)
	if err != nil {
		return err
	}
	if !found {
		return &errNotReady{fmt.Sprintf("waiting for capture to create slot %s", src.Slot)}
	}
	tables, err := pgrepl.PublicationTables(ctx, sess.Conn(), src.Publication)
	if err != nil {
		return err
	}
	for _, t := range tables {
		if t.Schema == table.Schema && t.Name == table.Name {
			return nil
		}
	}
	return &errNotReady{fmt.Sprintf("waiting for capture to add %s to publication %s", table, src.Publication)}
}

// jobTargets is the destinations a job's rows are addressed to: none
// (every consumer of the table applies them) for a job without
// destination_ids, otherwise those of its destination_ids still in the
// pipeline. A job all of whose destinations left the pipeline fails: its
// rows would reach no one it was asked for.
func jobTargets(job configstore.BackfillJob, p configstore.Pipeline) ([]int64, error) {
	if len(job.DestinationIDs) == 0 {
		return nil, nil
	}
	var targets []int64
	for _, d := range job.DestinationIDs {
		if slices.Contains(p.DestinationIDs, d) && !slices.Contains(targets, d) {
			targets = append(targets, d)
		}
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("none of the job's destinations %v is a destination of pipeline %d any more", job.DestinationIDs, p.ID)
	}
	return targets, nil
}

// consumersReady checks that the consumer of every destination the job
// serves (targets, or all of the pipeline's when targets is empty) exists
// and follows the table: the stream keeps a change only for the consumers
// interested in it, so rows published before would not reach that
// destination. (The table may already be in the publication for another
// pipeline of the source.)
func (w *Worker) consumersReady(ctx context.Context, p configstore.Pipeline, targets []int64, table pgcatalog.Table, partitions int) error {
	js, err := jetstream.New(w.nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	dests := p.DestinationIDs
	if len(targets) > 0 {
		dests = targets
	}
	tables := []natsx.Table{{Schema: table.Schema, Name: table.Name}}
	for _, d := range dests {
		// One consumer per partition of the source, each following the
		// table's subject on its partition.
		for part := range max(partitions, 1) {
			want := natsx.PipelineConsumerConfig(p.SourceID, p.ID, d, tables, part, partitions)
			name := want.Durable
			c, err := js.Consumer(ctx, contracts.StreamName(p.SourceID), name)
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
				return &errNotReady{fmt.Sprintf("waiting for capture to create consumer %s", name)}
			}
			if err != nil {
				return fmt.Errorf("read consumer %s: %w", name, err)
			}
			cfg := c.CachedInfo().Config
			if !slices.Contains(cfg.FilterSubjects, want.FilterSubjects[0]) && cfg.FilterSubject != want.FilterSubjects[0] {
				return &errNotReady{fmt.Sprintf("waiting for capture to add %s to consumer %s", table, name)}
			}
		}
	}
	return nil
}

// redact keeps a password out of an error bound for the config store.
func redact(msg, password string) string {
	if len(password) >= 3 {
		msg = strings.ReplaceAll(msg, password, "[redacted]")
	}
	return msg
}
