package sinkrunner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/jitter"
)

// StateReporter receives the health of the pipeline destination a runner
// serves. *configstore.Store implements it.
type StateReporter interface {
	SetDestinationState(ctx context.Context, st configstore.DestinationState) error
}

// DeadLetter is one change a destination rejected for good (or a message
// that is not a change at all), with where it came from.
type DeadLetter struct {
	SourceID      int64
	PipelineID    int64
	DestinationID int64
	// Table is the source table as schema.table.
	Table string
	// Change is the decoded change; nil when the message did not decode.
	Change *contracts.Change
	// Body is the message body as consumed.
	Body []byte
	// MsgID identifies the change across redeliveries: contracts.MsgID of
	// the change, or stream, sequence and time of an undecodable message.
	MsgID string
	// Stream, StreamSeq and Subject are the message's JetStream position.
	Stream    string
	StreamSeq uint64
	Subject   string
	// Class is ErrorClass of Err.
	Class    string
	Err      error
	FailedAt time.Time
}

// DeadLetterQueue stores dead letters; pkg/dlq implements it (through the
// sink service's adapter).
//
// Contract: Add returns nil only once the letter is durably stored; the
// runner acks the letter's message only after that, so a queue that is down
// leaves the message unacked and it is retried, never lost. Add is
// idempotent per MsgID: adding the same letter again (a retry after a lost
// reply, a redelivery after a lost ack) keeps one entry.
type DeadLetterQueue interface {
	Add(ctx context.Context, l DeadLetter) error
}

// ErrStopped is returned by Replay when the runner is not running: it has
// stopped, or stops before it serves the request.
var ErrStopped = errors.New("sink runner is not running")

// Config tunes a Runner. Zero fields take the defaults in DefaultConfig.
type Config struct {
	// PipelineID and DestinationID identify what the runner serves, in
	// reported states and logs; SourceID is the source of its consumer's
	// stream, recorded with dead letters.
	PipelineID    int64
	DestinationID int64
	SourceID      int64
	// BatchSize is the most messages fetched and applied at once (1000).
	BatchSize int
	// BatchWait is how long a fetch waits to fill a batch (50ms): the
	// longest a change waits for others to join its batch, so it bounds
	// the latency batching adds.
	BatchWait time.Duration
	// ApplyTimeout bounds one Apply call (5m).
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
	// Observer records committed batches and failed attempts; nil records
	// nothing.
	Observer Observer
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
	return Config{
		BatchSize:      1000,
		BatchWait:      50 * time.Millisecond,
		ApplyTimeout:   5 * time.Minute,
		MinBackoff:     500 * time.Millisecond,
		MaxBackoff:     30 * time.Second,
		KeepAliveEvery: 10 * time.Second,
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
	// Batches is the number of successful Apply calls of fetched changes
	// (a bisected batch counts each committed part).
	Batches uint64
	// Terminated is the number of messages that did not decode as a change
	// and were terminated (JetStream will not redeliver them). Without a
	// dead-letter queue only; with one they are dead-lettered.
	Terminated uint64
	// DeadLettered is the number of messages acked after their change was
	// stored in the dead-letter queue.
	DeadLettered uint64
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
	dlq  DeadLetterQueue
	log  *slog.Logger

	replays chan replayRequest
	stopped chan struct{} // closed when Run returns

	mu    sync.Mutex
	stats Stats

	// Last report, for throttling; only touched by Run's goroutine.
	lastHealth     configstore.Health
	lastReportText string
	lastReportAt   time.Time
}

type replayRequest struct {
	ctx     context.Context
	changes []contracts.Change
	reply   chan replayReply // buffered: the runner never blocks on it
}

type replayReply struct {
	failed []error
	err    error
}

// New returns a runner applying what cons delivers through drv and
// reporting health to rep, without a dead-letter queue: a batch the
// destination rejects for good is retried, with the error in the
// destination's health, until the cause is fixed. Run does not close drv:
// its owner does.
func New(cfg Config, cons jetstream.Consumer, drv Driver, rep StateReporter, log *slog.Logger) *Runner {
	return NewWithDeadLetters(cfg, cons, drv, rep, nil, log)
}

// NewWithDeadLetters is New with a dead-letter queue: when Apply fails
// permanently, the runner bisects the batch to find the changes the
// destination rejects on their own, applies the others, stores the rejected
// ones in dlq and acks them only once stored. A nil dlq is New.
func NewWithDeadLetters(cfg Config, cons jetstream.Consumer, drv Driver, rep StateReporter, dlq DeadLetterQueue, log *slog.Logger) *Runner {
	cfg = cfg.withDefaults()
	return &Runner{
		cfg:     cfg,
		cons:    cons,
		drv:     drv,
		rep:     rep,
		dlq:     dlq,
		log:     log.With("pipeline", cfg.PipelineID, "destination", cfg.DestinationID),
		replays: make(chan replayRequest),
		stopped: make(chan struct{}),
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
// applying it again harmless. Between batches it serves Replay requests.
func (r *Runner) Run(ctx context.Context) error {
	defer close(r.stopped)
	backoff := r.cfg.MinBackoff
	for ctx.Err() == nil {
		r.serveReplays(ctx)
		msgs, err := r.fetch(ctx)
		if err != nil && len(msgs) == 0 {
			if ctx.Err() != nil {
				break
			}
			r.log.Warn("fetch changes failed", "error", err, "retry_in", backoff)
			r.reportError(ctx, fmt.Errorf("fetch changes: %w", err))
			if !sleep(ctx, jitter.Spread(backoff)) {
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
		r.process(ctx, msgs)
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

// inFlight is one fetched batch: its messages and which of them are
// settled (acked or terminated), so that only the rest is nak'ed.
type inFlight struct {
	msgs    []jetstream.Msg
	settled []bool
}

func (f *inFlight) pick(idx []int) []jetstream.Msg {
	out := make([]jetstream.Msg, len(idx))
	for i, j := range idx {
		out[i] = f.msgs[j]
	}
	return out
}

// process decodes, applies and acks one fetched batch, keeping every one of
// its messages in progress until it is settled or ctx ends.
func (r *Runner) process(ctx context.Context, msgs []jetstream.Msg) {
	if msgs = r.skipNotAddressed(msgs); len(msgs) == 0 {
		return
	}
	stop := r.keepInProgress(ctx, msgs)
	defer stop()
	f := &inFlight{msgs: msgs, settled: make([]bool, len(msgs))}
	idx, changes, bad, badErrs := r.decode(f)
	if len(bad) > 0 && !r.settleUndecodable(ctx, f, bad, badErrs) {
		r.nakUnsettled(f)
		return
	}
	if len(idx) == 0 {
		return
	}
	kept := &inFlight{msgs: f.pick(idx), settled: make([]bool, len(idx))}
	r.applyUntilDone(ctx, kept, changes)
}

// skipNotAddressed acks, without applying, the messages addressed to other
// destinations (a backfill with destination_ids sets
// contracts.DestinationsHeader), and returns the others in order. Acking
// them is safe: this destination has nothing to write for them.
func (r *Runner) skipNotAddressed(msgs []jetstream.Msg) []jetstream.Msg {
	kept := make([]jetstream.Msg, 0, len(msgs))
	for _, m := range msgs {
		if contracts.AddressedTo(m.Headers().Get(contracts.DestinationsHeader), r.cfg.DestinationID) {
			kept = append(kept, m)
			continue
		}
		if err := m.Ack(); err != nil {
			// Not acked: redelivered, and skipped again.
			r.log.Debug("ack message addressed to other destinations", "subject", m.Subject(), "error", err)
		}
	}
	return kept
}

// decode parses every message. It returns the indexes and changes of the
// good ones, and the indexes and errors of those that are not a valid change.
func (r *Runner) decode(f *inFlight) (idx []int, changes []contracts.Change, bad []int, badErrs []error) {
	changes = make([]contracts.Change, 0, len(f.msgs))
	for i, m := range f.msgs {
		c, err := cdc.Decode(m.Data())
		if err == nil {
			idx = append(idx, i)
			changes = append(changes, c)
			continue
		}
		seq, _ := position(m)
		r.log.Error("undecodable change message", "subject", m.Subject(), "stream_seq", seq, "error", err)
		bad = append(bad, i)
		badErrs = append(badErrs, err)
	}
	return idx, changes, bad, badErrs
}

// settleUndecodable dead-letters messages that are not a valid change, or,
// without a dead-letter queue, terminates them so that they stop being
// redelivered. It returns false when ctx ended before every one was stored.
func (r *Runner) settleUndecodable(ctx context.Context, f *inFlight, bad []int, errs []error) bool {
	if r.dlq == nil {
		for _, i := range bad {
			m := f.msgs[i]
			if err := m.Term(); err != nil {
				r.log.Warn("terminate undecodable message", "subject", m.Subject(), "error", err)
			}
			f.settled[i] = true
		}
		r.mu.Lock()
		r.stats.Terminated += uint64(len(bad))
		r.mu.Unlock()
		return true
	}
	letters := make([]DeadLetter, len(bad))
	for k, i := range bad {
		letters[k] = r.letter(f.msgs[i], nil, PermanentClass(ClassUndecodable, errs[k]))
	}
	return r.deadLetter(ctx, f, bad, letters)
}

// applyUntilDone applies one batch until it commits or ctx ends. The same
// messages are retried: nothing later is fetched while a batch fails, so
// per-key order is kept. With a dead-letter queue, a permanent failure is
// isolated instead (see isolate) and the batch completes.
func (r *Runner) applyUntilDone(ctx context.Context, f *inFlight, changes []contracts.Change) {
	all := make([]int, len(changes))
	for i := range all {
		all[i] = i
	}
	backoff := r.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		err := r.applySubset(ctx, changes, all)
		if err == nil {
			r.committed(ctx, f, all)
			return
		}
		if ctx.Err() != nil {
			// Shutting down mid-batch: never ack. Nak so that the next
			// runner of this consumer (a restart after a config change)
			// gets the batch at once rather than after the ack wait;
			// if the Nak is lost it is redelivered after the ack wait.
			r.nakUnsettled(f)
			return
		}
		r.applyFailed(ctx, err, len(changes), attempt, backoff)
		if IsPermanent(err) && r.dlq != nil {
			r.isolateAndDeadLetter(ctx, f, changes, all, err)
			return
		}
		if !sleep(ctx, jitter.Spread(backoff)) {
			r.nakUnsettled(f)
			return
		}
		backoff = min(2*backoff, r.cfg.MaxBackoff)
	}
}

// isolateAndDeadLetter handles a batch whose Apply failed permanently: it
// applies and acks every part of it that commits, and dead-letters exactly
// the changes that fail on their own, acking each only after the queue
// stored it.
func (r *Runner) isolateAndDeadLetter(ctx context.Context, f *inFlight, changes []contracts.Change, all []int, first error) {
	iso := &isolation{changes: changes, retry: true, committed: func(idx []int) { r.committed(ctx, f, idx) }, failed: map[int]error{}}
	err := r.isolate(ctx, iso, all, first)
	failed := iso.failed
	if err != nil {
		// Only ctx ending stops isolate when it retries transient
		// errors. What committed was acked; the rest is redelivered.
		r.nakUnsettled(f)
		return
	}
	idx := make([]int, 0, len(failed))
	for i := range changes {
		if _, ok := failed[i]; ok {
			idx = append(idx, i)
		}
	}
	letters := make([]DeadLetter, len(idx))
	for k, i := range idx {
		letters[k] = r.letter(f.msgs[i], &changes[i], failed[i])
	}
	if !r.deadLetter(ctx, f, idx, letters) {
		r.nakUnsettled(f)
	}
}

// isolation is the state of one isolate call tree.
type isolation struct {
	changes []contracts.Change
	// retry: transient errors are retried with backoff until ctx ends;
	// otherwise the first one ends the isolation.
	retry bool
	// committed, when set, is called with the indexes of every Apply that
	// committed.
	committed func([]int)
	// failed collects the permanent error of each change that fails on
	// its own.
	failed map[int]error
	// failures counts the Applies that failed permanently.
	failures int
}

// isolate applies changes[idx] in one Apply or, when that fails
// permanently, each half in its own Apply, recursively, down to single
// changes: so every change that can be applied is, in few transactions, and
// iso.failed collects the changes that fail on their own. known, when not
// nil, is the error applying changes[idx] already returned. Order does not
// matter: the driver's version guards make the state the same whichever
// part commits first.
//
// A change is judged only by an Apply that follows a failed one: drivers
// drop what they cached about the destination after a failed Apply, so a
// change that failed against a stale cache (a column widened to fix the
// cause) is applied again rather than dead-lettered.
func (r *Runner) isolate(ctx context.Context, iso *isolation, idx []int, known error) error {
	err := known
	if err == nil {
		err = r.applyRetrying(ctx, iso.changes, idx, iso.retry)
	}
	switch {
	case err == nil:
		if iso.committed != nil {
			iso.committed(idx)
		}
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case !IsPermanent(err):
		return err
	}
	iso.failures++
	if len(idx) == 1 {
		if iso.failures == 1 {
			return r.isolate(ctx, iso, idx, nil)
		}
		iso.failed[idx[0]] = err
		return nil
	}
	mid := len(idx) / 2
	if err := r.isolate(ctx, iso, idx[:mid], nil); err != nil {
		return err
	}
	return r.isolate(ctx, iso, idx[mid:], nil)
}

// applyRetrying applies changes[idx]; with retry, transient errors are
// retried with backoff until the Apply commits, fails permanently or ctx
// ends.
func (r *Runner) applyRetrying(ctx context.Context, changes []contracts.Change, idx []int, retry bool) error {
	backoff := r.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		err := r.applySubset(ctx, changes, idx)
		if err == nil || IsPermanent(err) && ctx.Err() == nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retry {
			return err
		}
		r.applyFailed(ctx, err, len(idx), attempt, backoff)
		if !sleep(ctx, jitter.Spread(backoff)) {
			return ctx.Err()
		}
		backoff = min(2*backoff, r.cfg.MaxBackoff)
	}
}

// applySubset collapses changes[idx] and applies them in one Apply, bounded
// by ApplyTimeout. A batch that does not collapse is a permanent error.
func (r *Runner) applySubset(ctx context.Context, changes []contracts.Change, idx []int) error {
	sub := changes
	if len(idx) != len(changes) {
		sub = make([]contracts.Change, len(idx))
		for i, j := range idx {
			sub[i] = changes[j]
		}
	}
	batches, err := cdc.Collapse(sub)
	if err != nil {
		// Decode checked every change on its own, so this is a batch
		// whose changes contradict each other (key columns differ).
		return Permanent(fmt.Errorf("collapse batch: %w", err))
	}
	actx, cancel := context.WithTimeout(ctx, r.cfg.ApplyTimeout)
	defer cancel()
	start := time.Now()
	err = r.drv.Apply(actx, batches)
	if err == nil && r.cfg.Observer != nil {
		// Apply returned nil: the destination transaction committed.
		r.cfg.Observer.BatchApplied(r.cfg.PipelineID, r.cfg.DestinationID, sub, time.Since(start))
	}
	return err
}

func (r *Runner) applyFailed(ctx context.Context, err error, n, attempt int, backoff time.Duration) {
	r.mu.Lock()
	r.stats.Failures++
	r.stats.LastError = err.Error()
	r.mu.Unlock()
	permanent := IsPermanent(err)
	if r.cfg.Observer != nil {
		r.cfg.Observer.ApplyFailed(r.cfg.PipelineID, r.cfg.DestinationID, ErrorClass(err))
	}
	msg := "apply batch failed; retrying the same batch"
	if permanent && r.dlq != nil {
		msg = "apply batch failed permanently; isolating the changes the destination rejects"
	}
	r.log.Error(msg, "messages", n, "attempt", attempt, "permanent", permanent, "class", ErrorClass(err),
		"retry_in", backoff, "error", err)
	r.reportError(ctx, err)
}

// committed acks the messages of an Apply that committed.
func (r *Runner) committed(ctx context.Context, f *inFlight, idx []int) {
	r.ack(ctx, f, idx)
	now := time.Now().UTC()
	r.mu.Lock()
	r.stats.Applied += uint64(len(idx))
	r.stats.Batches++
	r.stats.LastAppliedAt = now
	r.stats.LastError = ""
	r.mu.Unlock()
	r.reportHealthy(ctx, false)
}

// letter describes message m, whose change c (nil when it did not decode)
// failed with err.
func (r *Runner) letter(m jetstream.Msg, c *contracts.Change, err error) DeadLetter {
	seq, stamp := position(m)
	l := DeadLetter{
		SourceID:      r.cfg.SourceID,
		PipelineID:    r.cfg.PipelineID,
		DestinationID: r.cfg.DestinationID,
		Change:        c,
		Body:          m.Data(),
		StreamSeq:     seq,
		Subject:       m.Subject(),
		Class:         ErrorClass(err),
		Err:           err,
		FailedAt:      time.Now().UTC(),
	}
	if meta, merr := m.Metadata(); merr == nil {
		l.Stream = meta.Stream
	}
	if c != nil {
		if l.SourceID == 0 {
			l.SourceID = c.Source.SourceID
		}
		l.Table = c.Source.Schema + "." + c.Source.Table
		l.MsgID = contracts.MsgID(c.Source.SourceID, c.Source.CommitLSN, c.Source.Seq)
		return l
	}
	src, table := subjectTable(m.Subject())
	if l.SourceID == 0 {
		l.SourceID = src
	}
	l.Table = table
	l.MsgID = "undecodable:" + l.Stream + ":" + strconv.FormatUint(seq, 10) + ":" + strconv.FormatInt(stamp.UnixNano(), 10)
	return l
}

// deadLetter stores letters (of messages f.msgs[idx]) in the dead-letter
// queue, retrying with backoff while it is unavailable, and acks each
// message once its letter is stored. It returns false when ctx ended first:
// the messages not acked are then redelivered, fail again, and are added
// again, which the queue deduplicates by MsgID.
func (r *Runner) deadLetter(ctx context.Context, f *inFlight, idx []int, letters []DeadLetter) bool {
	stored := make([]int, 0, len(idx))
	for k, l := range letters {
		if !r.store(ctx, l) {
			r.ack(ctx, f, stored)
			return false
		}
		r.log.Warn("change dead-lettered", "table", l.Table, "subject", l.Subject, "stream_seq", l.StreamSeq,
			"class", l.Class, "error", l.Err)
		stored = append(stored, idx[k])
	}
	// Acked only now that every Add returned nil: the queue holds them.
	r.ack(ctx, f, stored)
	r.mu.Lock()
	r.stats.DeadLettered += uint64(len(stored))
	r.mu.Unlock()
	r.reportHealthy(ctx, true)
	return true
}

// store adds one letter, retrying until it is stored or ctx ends.
func (r *Runner) store(ctx context.Context, l DeadLetter) bool {
	backoff := r.cfg.MinBackoff
	for {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := r.dlq.Add(sctx, l)
		cancel()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		err = fmt.Errorf("store a rejected change of %s in the dead-letter queue (it stays unacked and is retried): %w", l.Table, err)
		r.log.Error("dead-letter queue unavailable", "subject", l.Subject, "stream_seq", l.StreamSeq, "retry_in", backoff, "error", err)
		r.reportError(ctx, err)
		if !sleep(ctx, jitter.Spread(backoff)) {
			return false
		}
		backoff = min(2*backoff, r.cfg.MaxBackoff)
	}
}

// Replay applies changes (dead letters being recovered) through the
// runner's driver between two batches of its consumer, so that a replay
// never runs concurrently with the runner's own Apply. Changes are applied
// as a batch that failed permanently would be: all in one Apply, then halves,
// down to single changes. It returns, per change, nil when an Apply holding
// it committed (a change superseded by a newer one of the same key in that
// Apply counts as applied: the version guards would have skipped it anyway)
// and the permanent error when it fails on its own. A transient error ends
// the call with that error and no per-change results; parts may have
// committed, and applying them again is harmless. It returns ErrStopped when
// the runner is not running.
func (r *Runner) Replay(ctx context.Context, changes []contracts.Change) ([]error, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	req := replayRequest{ctx: ctx, changes: changes, reply: make(chan replayReply, 1)}
	select {
	case r.replays <- req:
	case <-r.stopped:
		return nil, ErrStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case rep := <-req.reply:
		return rep.failed, rep.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// serveReplays serves the Replay requests waiting, without blocking.
func (r *Runner) serveReplays(ctx context.Context) {
	for {
		select {
		case req := <-r.replays:
			req.reply <- r.serveReplay(ctx, req)
		default:
			return
		}
	}
}

func (r *Runner) serveReplay(ctx context.Context, req replayRequest) replayReply {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(req.ctx, cancel)()
	all := make([]int, len(req.changes))
	for i := range all {
		all[i] = i
	}
	iso := &isolation{changes: req.changes, failed: map[int]error{}}
	if err := r.isolate(rctx, iso, all, nil); err != nil {
		if ctx.Err() != nil {
			err = ErrStopped
		}
		return replayReply{err: err}
	}
	out := make([]error, len(req.changes))
	for i, err := range iso.failed {
		out[i] = err
	}
	return replayReply{failed: out}
}

// keepInProgress marks msgs in progress every KeepAliveEvery until the
// returned stop is called, so that the ack wait does not expire while their
// batch is applied, retried, bisected or dead-lettered. Marking a settled
// message is refused by the client without a round trip.
func (r *Runner) keepInProgress(ctx context.Context, msgs []jetstream.Msg) (stop func()) {
	kctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(r.cfg.KeepAliveEvery)
		defer tick.Stop()
		for {
			select {
			case <-kctx.Done():
				return
			case <-tick.C:
				for _, m := range msgs {
					if err := m.InProgress(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
						r.log.Debug("mark message in progress", "subject", m.Subject(), "error", err)
					}
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// nakUnsettled hands the unsettled messages of a batch back to JetStream
// for redelivery. Best effort: an unacked message is redelivered anyway.
func (r *Runner) nakUnsettled(f *inFlight) {
	for i, m := range f.msgs {
		if f.settled[i] {
			continue
		}
		if err := m.Nak(); err != nil {
			r.log.Debug("nak unapplied message", "subject", m.Subject(), "error", err)
			return
		}
	}
}

// ack acknowledges f.msgs[idx]. Callers ack only what is durable: the
// messages of a committed Apply, or dead letters the queue has stored. Acks
// are processed in order on one connection, so a confirmed DoubleAck of the
// last message means the plain acks before it landed too. A lost ack only
// causes a redelivery, which the driver's version guards (and the dead-letter
// queue's deduplication) make harmless.
func (r *Runner) ack(ctx context.Context, f *inFlight, idx []int) {
	if len(idx) == 0 {
		return
	}
	for _, i := range idx[:len(idx)-1] {
		if err := f.msgs[i].Ack(); err != nil {
			r.log.Warn("ack message", "subject", f.msgs[i].Subject(), "error", err)
		}
		f.settled[i] = true
	}
	last := idx[len(idx)-1]
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := f.msgs[last].DoubleAck(actx); err != nil {
		r.log.Warn("confirm acks; the messages may be redelivered", "messages", len(idx), "error", err)
	}
	f.settled[last] = true
}

// position returns a message's stream sequence and time, zero when the
// message has no JetStream metadata.
func position(m jetstream.Msg) (uint64, time.Time) {
	meta, err := m.Metadata()
	if err != nil {
		return 0, time.Time{}
	}
	return meta.Sequence.Stream, meta.Timestamp
}

// subjectTable reads the source id and schema.table from a change subject
// (rosetta.cdc.<source>.<schema>.<table>.<partition>); "unknown" when the
// subject does not have that shape.
func subjectTable(subject string) (int64, string) {
	parts := strings.Split(subject, ".")
	if len(parts) != 6 || parts[0]+"."+parts[1] != contracts.CDCPrefix {
		return 0, "unknown"
	}
	src, _ := strconv.ParseInt(parts[2], 10, 64)
	schema, err1 := contracts.DecodeToken(parts[3])
	table, err2 := contracts.DecodeToken(parts[4])
	if err1 != nil || err2 != nil {
		return src, "unknown"
	}
	return src, schema + "." + table
}

func (r *Runner) reportHealthy(ctx context.Context, force bool) {
	st := r.Stats()
	var notes []string
	if st.Terminated > 0 {
		notes = append(notes, fmt.Sprintf("%d undecodable change messages were terminated (see the sink's log)", st.Terminated))
	}
	if st.DeadLettered > 0 {
		notes = append(notes, fmt.Sprintf("%d changes the destination rejected were sent to the dead-letter queue since the sink started (see the pipeline's DLQ)", st.DeadLettered))
	}
	text := strings.Join(notes, "; ")
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
