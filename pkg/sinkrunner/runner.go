package sinkrunner

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/configstore"
)

// StateReporter receives the health of the pipeline destination a runner
// serves. *configstore.Store implements it.
type StateReporter interface {
	SetDestinationState(ctx context.Context, st configstore.DestinationState) error
}

// Config tunes a Runner. Zero fields take the defaults in DefaultConfig.
type Config struct {
	// PipelineID and DestinationID identify what the runner serves, in
	// reported states and logs.
	PipelineID    int64
	DestinationID int64
	// BatchSize is the most messages fetched and applied at once (1000).
	BatchSize int
	// BatchWait is how long a fetch waits to fill a batch (200ms).
	BatchWait time.Duration
	// ApplyTimeout bounds one Apply call (5m).
	ApplyTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between retries of a failed
	// batch or fetch: MinBackoff doubling up to MaxBackoff (500ms, 30s).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// KeepAliveEvery is how often the messages of a batch being applied or
	// retried are marked in progress, so JetStream does not redeliver them
	// meanwhile (20s; a third of natsx.ConsumerAckWait).
	KeepAliveEvery time.Duration
	// ReportEvery throttles HEALTHY reports (2s).
	ReportEvery time.Duration
}

// DefaultConfig holds the defaults of Config.
func DefaultConfig() Config {
	return Config{
		BatchSize:      1000,
		BatchWait:      200 * time.Millisecond,
		ApplyTimeout:   5 * time.Minute,
		MinBackoff:     500 * time.Millisecond,
		MaxBackoff:     30 * time.Second,
		KeepAliveEvery: 20 * time.Second,
		ReportEvery:    2 * time.Second,
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
	return c
}

// Stats counts what a runner did since it started.
type Stats struct {
	// Applied is the number of messages acked after a committed Apply.
	Applied uint64
	// Batches is the number of successful Apply calls.
	Batches uint64
	// Terminated is the number of messages that did not decode as a change
	// and were terminated (JetStream will not redeliver them).
	Terminated uint64
	// Failures is the number of failed Apply attempts.
	Failures      uint64
	LastAppliedAt time.Time
	LastError     string
}

// Runner moves changes from one durable consumer to one driver. It is
// single-use: call Run once.
type Runner struct {
	cfg  Config
	cons jetstream.Consumer
	drv  Driver
	rep  StateReporter
	log  *slog.Logger

	mu    sync.Mutex
	stats Stats

	// Last report, for throttling; only touched by Run's goroutine.
	lastHealth     configstore.Health
	lastReportText string
	lastReportAt   time.Time
}

// New returns a runner applying what cons delivers through drv and
// reporting health to rep. Run does not close drv: its owner does.
func New(cfg Config, cons jetstream.Consumer, drv Driver, rep StateReporter, log *slog.Logger) *Runner {
	cfg = cfg.withDefaults()
	return &Runner{
		cfg:  cfg,
		cons: cons,
		drv:  drv,
		rep:  rep,
		log:  log.With("pipeline", cfg.PipelineID, "destination", cfg.DestinationID),
	}
}

// Stats returns a snapshot of the runner's counters.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Run fetches, applies and acks until ctx ends, then returns nil. A batch
// being applied or retried when ctx ends is left unacked: JetStream
// redelivers it after the ack wait, and the driver's version guards make
// applying it again harmless.
func (r *Runner) Run(ctx context.Context) error {
	backoff := r.cfg.MinBackoff
	for ctx.Err() == nil {
		msgs, err := r.fetch(ctx)
		if err != nil && len(msgs) == 0 {
			if ctx.Err() != nil {
				break
			}
			r.log.Warn("fetch changes failed", "error", err, "retry_in", backoff)
			r.reportError(ctx, fmt.Errorf("fetch changes: %w", err))
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, r.cfg.MaxBackoff)
			continue
		}
		backoff = r.cfg.MinBackoff
		if err != nil {
			r.log.Warn("fetch ended early; applying what arrived", "error", err, "messages", len(msgs))
		}
		if r.lastHealth != configstore.HealthHealthy {
			// The consumer answers (again): say so even before the next
			// change arrives.
			r.reportHealthy(ctx, true)
		}
		if len(msgs) == 0 {
			continue
		}
		kept, changes := r.decode(msgs)
		if len(kept) == 0 {
			continue
		}
		r.applyUntilDone(ctx, kept, changes)
	}
	return nil
}

// fetch pulls up to BatchSize messages, waiting at most BatchWait.
//
// The wait is the pull request's own expiry (FetchMaxWait), not a context
// deadline: the server ends the request with a timeout status and the
// client reads until then. With a context deadline the client stops
// listening while the server may still be sending; a message delivered in
// that gap is lost to this fetch and only redelivered after the ack wait
// (measured: e2e updates stalled for a minute under load). ctx is not
// consulted during the (short) wait; a stopping runner returns after it.
func (r *Runner) fetch(ctx context.Context) ([]jetstream.Msg, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	batch, err := r.cons.Fetch(r.cfg.BatchSize, jetstream.FetchMaxWait(r.cfg.BatchWait))
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	return msgs, batch.Error()
}

// decode parses every message; one that is not a valid change is logged
// and terminated so it stops being redelivered (dead-lettering it is a
// later step), and left out of the batch.
func (r *Runner) decode(msgs []jetstream.Msg) ([]jetstream.Msg, []contracts.Change) {
	kept := msgs[:0:0]
	changes := make([]contracts.Change, 0, len(msgs))
	for _, m := range msgs {
		c, err := cdc.Decode(m.Data())
		if err == nil {
			kept = append(kept, m)
			changes = append(changes, c)
			continue
		}
		var seq uint64
		if meta, merr := m.Metadata(); merr == nil {
			seq = meta.Sequence.Stream
		}
		r.log.Error("undecodable change message; terminating it", "subject", m.Subject(), "stream_seq", seq, "error", err)
		if terr := m.Term(); terr != nil {
			r.log.Warn("terminate undecodable message", "subject", m.Subject(), "stream_seq", seq, "error", terr)
		}
		r.mu.Lock()
		r.stats.Terminated++
		r.mu.Unlock()
	}
	return kept, changes
}

// applyUntilDone applies one batch until it commits or ctx ends. The same
// messages are retried: nothing later is fetched while a batch fails, so
// per-key order is kept.
func (r *Runner) applyUntilDone(ctx context.Context, msgs []jetstream.Msg, changes []contracts.Change) {
	batches, collapseErr := cdc.Collapse(changes)
	if collapseErr != nil {
		// Decode checked every change on its own, so this is a batch
		// whose changes contradict each other (key columns differ).
		collapseErr = Permanent(fmt.Errorf("collapse batch: %w", collapseErr))
	}
	backoff := r.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		err := collapseErr
		if err == nil {
			err = r.applyOnce(ctx, msgs, batches)
		}
		if err == nil {
			r.ack(ctx, msgs)
			return
		}
		if ctx.Err() != nil {
			// Shutting down mid-batch: never ack. Nak so that the next
			// runner of this consumer (a restart after a config change)
			// gets the batch at once rather than after the ack wait;
			// if the Nak is lost it is redelivered after the ack wait.
			r.nak(msgs)
			return
		}
		r.mu.Lock()
		r.stats.Failures++
		r.stats.LastError = err.Error()
		r.mu.Unlock()
		r.log.Error("apply batch failed; retrying the same batch", "messages", len(msgs), "attempt", attempt,
			"permanent", IsPermanent(err), "retry_in", backoff, "error", err)
		r.reportError(ctx, err)
		if !r.waitInProgress(ctx, msgs, backoff, true) {
			r.nak(msgs)
			return
		}
		backoff = min(2*backoff, r.cfg.MaxBackoff)
	}
}

// applyOnce runs one Apply while keeping the batch's messages in progress.
func (r *Runner) applyOnce(ctx context.Context, msgs []jetstream.Msg, batches []cdc.TableBatch) error {
	actx, cancel := context.WithTimeout(ctx, r.cfg.ApplyTimeout)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.waitInProgress(actx, msgs, r.cfg.ApplyTimeout, false)
	}()
	err := r.drv.Apply(actx, batches)
	cancel()
	wg.Wait()
	return err
}

// waitInProgress waits d (or until ctx ends, returning false), marking msgs
// in progress every KeepAliveEvery, and at once when markNow is set, so that
// the ack wait does not expire while their batch is being applied or waits
// for a retry. Marking before every retry wait keeps a run of short retries
// covered too.
func (r *Runner) waitInProgress(ctx context.Context, msgs []jetstream.Msg, d time.Duration, markNow bool) bool {
	mark := func() {
		for _, m := range msgs {
			if err := m.InProgress(); err != nil {
				r.log.Debug("mark message in progress", "subject", m.Subject(), "error", err)
			}
		}
	}
	if markNow {
		mark()
	}
	done := time.NewTimer(d)
	defer done.Stop()
	tick := time.NewTicker(r.cfg.KeepAliveEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-done.C:
			return true
		case <-tick.C:
			mark()
		}
	}
}

// nak hands the messages of an unapplied batch back to JetStream for
// redelivery. Best effort: an unacked message is redelivered anyway.
func (r *Runner) nak(msgs []jetstream.Msg) {
	for _, m := range msgs {
		if err := m.Nak(); err != nil {
			r.log.Debug("nak unapplied message", "subject", m.Subject(), "error", err)
			return
		}
	}
}

// ack acknowledges a batch whose Apply committed. This is the only place
// messages are acked, and it runs only after Driver.Apply returned nil:
// the destination transaction holding these changes is durable. Acks are
// processed in order on one connection, so a confirmed DoubleAck of the last
// message means the plain acks before it landed too. A lost ack only causes
// a redelivery, which the driver's version guards make harmless.
func (r *Runner) ack(ctx context.Context, msgs []jetstream.Msg) {
	for _, m := range msgs[:len(msgs)-1] {
		if err := m.Ack(); err != nil {
			r.log.Warn("ack applied message", "subject", m.Subject(), "error", err)
		}
	}
	last := msgs[len(msgs)-1]
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := last.DoubleAck(actx); err != nil {
		r.log.Warn("confirm acks of applied batch; it may be redelivered", "messages", len(msgs), "error", err)
	}
	now := time.Now().UTC()
	r.mu.Lock()
	r.stats.Applied += uint64(len(msgs))
	r.stats.Batches++
	r.stats.LastAppliedAt = now
	r.stats.LastError = ""
	r.mu.Unlock()
	r.reportHealthy(ctx, false)
}

func (r *Runner) reportHealthy(ctx context.Context, force bool) {
	st := r.Stats()
	text := ""
	if st.Terminated > 0 {
		text = fmt.Sprintf("%d undecodable change messages were terminated (see the sink's log)", st.Terminated)
	}
	if !force && r.lastHealth == configstore.HealthHealthy && r.lastReportText == text &&
		time.Since(r.lastReportAt) < r.cfg.ReportEvery {
		return
	}
	r.report(ctx, configstore.DestinationState{Health: configstore.HealthHealthy, LastError: text, LastAppliedAt: st.LastAppliedAt})
}

func (r *Runner) reportError(ctx context.Context, err error) {
	text := err.Error()
	if len(text) > 2000 {
		text = text[:2000] + "…"
	}
	if r.lastHealth == configstore.HealthError && r.lastReportText == text &&
		time.Since(r.lastReportAt) < r.cfg.ReportEvery {
		return
	}
	r.report(ctx, configstore.DestinationState{Health: configstore.HealthError, LastError: text, LastAppliedAt: r.Stats().LastAppliedAt})
}

func (r *Runner) report(ctx context.Context, st configstore.DestinationState) {
	if ctx.Err() != nil {
		return
	}
	st.PipelineID = r.cfg.PipelineID
	st.DestinationID = r.cfg.DestinationID
	st.UpdatedAt = time.Now().UTC()
	r.lastHealth = st.Health
	r.lastReportText = st.LastError
	r.lastReportAt = st.UpdatedAt
	if r.rep == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.rep.SetDestinationState(rctx, st); err != nil {
		r.log.Warn("report destination state", "health", st.Health, "error", err)
	}
}

// sleep waits d or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
