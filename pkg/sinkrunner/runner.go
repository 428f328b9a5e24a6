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
	// BatchSize is the most messages applied at once (1000).
	BatchSize int
	// BatchWait is how long a batch waits for more changes after its
	// first one when the destination is free (20ms): the longest a change
	// waits for others to join its batch then. A full batch goes at once;
	// while the destination applies one batch the next keeps filling, so
	// under load batches grow without waiting.
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
	return Config{
		BatchSize:      1000,
		BatchWait:      20 * time.Millisecond,
		ApplyTimeout:   5 * time.Minute,
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
	// inc and comp are set when the driver reports incomplete rows and
	// the config has a CompletionStore.
	inc  IncompleteReporter
	comp *completer

	replays  chan replayRequest
	collects chan collectRequest
	stopped  chan struct{} // closed when Run returns

	// confirming is closed when the last ack's confirmation returned;
	// only the applier touches it.
	confirming chan struct{}

	// dec is the fetcher's. Its changes refer to the message data, which
	// stays alive, unmodified, while their batch is in flight.
	dec *cdc.Decoder

	mu    sync.Mutex
	stats Stats

	// held are the batches whose messages the keeper marks in progress.
	heldMu sync.Mutex
	held   map[*batch]struct{}

	// repMu serializes health reports (the fetcher reports fetch errors,
	// the applier everything else) and guards the last report, kept for
	// throttling, and applyFailing.
	repMu          sync.Mutex
	lastHealth     configstore.Health
	lastReportText string
	lastReportAt   time.Time
	// applyFailing is set while the applier's last attempt (an Apply or a
	// dead-letter write) failed: a fetch that succeeds meanwhile must not
	// report the destination healthy.
	applyFailing bool
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
	r := &Runner{
		cfg:      cfg,
		cons:     cons,
		drv:      drv,
		rep:      rep,
		dlq:      dlq,
		log:      log.With("pipeline", cfg.PipelineID, "destination", cfg.DestinationID),
		replays:  make(chan replayRequest),
		collects: make(chan collectRequest),
		stopped:  make(chan struct{}),
		held:     map[*batch]struct{}{},
		dec:      cdc.NewDecoder(),
	}
	if inc, ok := drv.(IncompleteReporter); ok && cfg.Completions != nil {
		r.inc, r.comp = inc, newCompleter()
	}
	return r
}

// Stats returns a snapshot of the runner's counters.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Run fetches, applies and acks until ctx ends, then returns nil.
//
// Two goroutines share the work, so that neither the destination nor the
// consumer waits for the other: a fetcher (fetchLoop) pulls messages, acks
// those addressed to other destinations, decodes the others as they arrive
// and gathers them into the next batch, while Run's own goroutine applies
// the current batch and acks it after its commit. The fetcher keeps adding
// to the next batch until the applier takes it: a batch goes when it is
// full, or once the applier is free and BatchWait has passed since its
// first change. Changes that trickle in are applied within BatchWait, a
// backlog goes in full batches, and in between a batch holds what arrived
// while the previous one applied.
//
// Batches are applied one at a time, in the order their messages were
// delivered: a batch that fails is retried and the next one waits (still
// filling, up to BatchSize) until it commits, so no change of a key commits
// before an earlier change of it that was fetched first. Every message held
// (gathered, waiting, applying or retrying) is kept in progress. A batch
// being applied or retried when ctx ends, and the one being gathered, are
// nak'ed, never acked: JetStream redelivers them, and the driver's version
// guards make applying them again harmless. Between batches it serves
// Replay and Collect requests and collects tombstones every CollectEvery.
func (r *Runner) Run(ctx context.Context) error {
	defer close(r.stopped)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { r.keepHeldInProgress(ctx) })
	// Unbuffered: a batch the applier has not taken stays with the
	// fetcher, which keeps filling it.
	ready := make(chan *batch)
	wg.Go(func() { r.fetchLoop(ctx, ready) })
	if r.comp != nil {
		wg.Go(func() { r.completeLoop(ctx) })
	}
	defer r.awaitConfirm()
	collectTick, stopTick := r.collectTicker()
	defer stopTick()
	for {
		select {
		case <-ctx.Done():
			return nil
		case req := <-r.replays:
			req.reply <- r.serveReplay(ctx, req)
		case req := <-r.collects:
			req.reply <- r.serveCollect(ctx, req)
		case <-collectTick:
			r.runCollect(ctx)
		case b := <-ready:
			r.process(ctx, b)
			r.release(b)
		}
	}
}

// pullExpiry is how long one pull request waits on the server for messages.
// Batches do not depend on it (the fetcher hands a batch over in the middle
// of a request); it bounds how long a stopping runner waits for its last
// request to end, and how often an idle runner asks again.
const pullExpiry = 500 * time.Millisecond

// batch is the messages of one Apply, from the fetcher gathering them to
// the applier settling them.
type batch struct {
	// msgs are in delivery order. The fetcher appends under Runner.heldMu
	// (the keeper reads them) until it hands the batch over.
	msgs []jetstream.Msg
	// changes[i] is msgs[i] decoded; errs[i] is why it is not a valid
	// change (then changes[i] is zero); bad counts those.
	changes []contracts.Change
	errs    []error
	bad     int
	// collapsed, when set, is the collapse of the valid changes, computed
	// by the fetcher while a full batch waited for the applier.
	collapsed *collapsed
}

type collapsed struct {
	batches []cdc.TableBatch
	err     error
}

// fetchLoop gathers batches and hands each to the applier through ready,
// until ctx ends; then it waits for its last pull request to end (messages
// delivered to a request nobody reads would only come back after the ack
// wait) and naks what it holds.
//
// A pull request asks for at most the room left in the batch being
// gathered, so a full batch never leaves delivered messages unread: every
// message delivered is held, and kept in progress, at once.
//
// Its wait is the request's own expiry (FetchMaxWait), not a context
// deadline: the server ends the request with a timeout status and the
// client reads until then. With a context deadline the client stops
// listening while the server may still be sending; a message delivered in
// that gap is lost to the runner and only redelivered after the ack wait
// (measured: e2e updates stalled for a minute under load).
func (r *Runner) fetchLoop(ctx context.Context, ready chan<- *batch) {
	var (
		pending *batch                 // being gathered; nil when empty
		pull    jetstream.MessageBatch // the open pull request
		pulled  <-chan jetstream.Msg   // its messages; nil when none is open
		got     int                    // messages the open request delivered
		retry   <-chan time.Time       // set while a failed fetch waits to be retried
		waited  bool                   // BatchWait passed since pending's first message
		wait    = time.NewTimer(time.Hour)
		backoff = r.cfg.MinBackoff
		done    = ctx.Done() // nil once ctx ended
	)
	wait.Stop()
	defer wait.Stop()
	for {
		if pulled == nil && retry == nil && done != nil && pending.len() < r.cfg.BatchSize {
			b, err := r.cons.Fetch(r.cfg.BatchSize-pending.len(), jetstream.FetchMaxWait(pullExpiry))
			if err != nil {
				retry = r.fetchFailed(ctx, err, &backoff)
			} else {
				pull, pulled, got = b, b.Messages(), 0
			}
		}
		if done == nil && pulled == nil {
			// Stopping, and nothing more can arrive.
			if pending != nil {
				r.nakUnsettled(&inFlight{msgs: pending.msgs, settled: make([]bool, len(pending.msgs))})
				r.release(pending)
			}
			return
		}
		var send chan<- *batch
		if done != nil && pending.len() > 0 && (waited || pending.len() >= r.cfg.BatchSize) {
			send = ready
		}
		var waitC <-chan time.Time
		if pending != nil && !waited {
			waitC = wait.C
		}
		select {
		case m, ok := <-pulled:
			if !ok {
				err := pull.Error()
				pull, pulled = nil, nil
				switch {
				case err != nil && got == 0:
					if done != nil {
						retry = r.fetchFailed(ctx, err, &backoff)
					}
					continue
				case err != nil:
					r.log.Warn("fetch ended early; applying what arrived", "error", err, "messages", got)
				}
				backoff = r.cfg.MinBackoff
				// The consumer answers (again): say so even before the
				// next change arrives.
				r.fetchAnswered(ctx)
				continue
			}
			got++
			if !r.addressed(m) {
				continue
			}
			if pending == nil {
				pending = &batch{}
				r.hold(pending)
				waited = false
				wait.Reset(r.cfg.BatchWait)
			}
			r.add(pending, m)
			if pending.len() >= r.cfg.BatchSize {
				// Full: nothing joins it any more, so collapse it now,
				// while the applier is still busy with the previous one.
				pending.collapse()
			}
		case send <- pending:
			pending = nil
			wait.Stop()
		case <-waitC:
			waited = true
		case <-retry:
			retry = nil
		case <-done:
			done = nil
		}
	}
}

func (b *batch) len() int {
	if b == nil {
		return 0
	}
	return len(b.msgs)
}

// add appends m, decoded, to b.
func (r *Runner) add(b *batch, m jetstream.Msg) {
	c, err := r.dec.Decode(m.Data())
	if err != nil {
		seq, _ := position(m)
		r.log.Error("undecodable change message", "subject", m.Subject(), "stream_seq", seq, "error", err)
		b.bad++
	}
	b.changes = append(b.changes, c)
	b.errs = append(b.errs, err)
	r.heldMu.Lock()
	b.msgs = append(b.msgs, m)
	r.heldMu.Unlock()
}

// valid returns the indexes and changes of b's valid changes.
func (b *batch) valid() ([]int, []contracts.Change) {
	if b.bad == 0 {
		idx := make([]int, len(b.msgs))
		for i := range idx {
			idx[i] = i
		}
		return idx, b.changes
	}
	idx := make([]int, 0, len(b.msgs)-b.bad)
	changes := make([]contracts.Change, 0, len(b.msgs)-b.bad)
	for i, err := range b.errs {
		if err == nil {
			idx = append(idx, i)
			changes = append(changes, b.changes[i])
		}
	}
	return idx, changes
}

// collapse collapses b's valid changes ahead of their first Apply.
func (b *batch) collapse() {
	_, changes := b.valid()
	if len(changes) == 0 {
		return
	}
	bs, err := cdc.Collapse(changes)
	b.collapsed = &collapsed{batches: bs, err: err}
}

// fetchFailed reports a failed fetch and returns when to try again.
func (r *Runner) fetchFailed(ctx context.Context, err error, backoff *time.Duration) <-chan time.Time {
	wait := *backoff
	*backoff = min(2*wait, r.cfg.MaxBackoff)
	if ctx.Err() == nil {
		r.log.Warn("fetch changes failed", "error", err, "retry_in", wait)
		r.reportError(ctx, fmt.Errorf("fetch changes: %w", err), false)
	}
	return time.After(jitter.Spread(wait))
}

// hold registers b with the keeper, release unregisters it once every one
// of its messages is settled or nak'ed.
func (r *Runner) hold(b *batch) {
	r.heldMu.Lock()
	r.held[b] = struct{}{}
	r.heldMu.Unlock()
}

func (r *Runner) release(b *batch) {
	r.heldMu.Lock()
	delete(r.held, b)
	r.heldMu.Unlock()
}

// keepHeldInProgress marks every held message in progress every
// KeepAliveEvery until ctx ends, so that the ack wait does not expire while
// its batch is gathered, waits for the applier, or is applied, retried,
// bisected or dead-lettered. Marking a settled message is refused by the
// client without a round trip.
func (r *Runner) keepHeldInProgress(ctx context.Context) {
	tick := time.NewTicker(r.cfg.KeepAliveEvery)
	defer tick.Stop()
	var msgs []jetstream.Msg
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		msgs = msgs[:0]
		r.heldMu.Lock()
		for b := range r.held {
			msgs = append(msgs, b.msgs...)
		}
		r.heldMu.Unlock()
		for _, m := range msgs {
			if err := m.InProgress(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
				r.log.Debug("mark message in progress", "subject", m.Subject(), "error", err)
			}
		}
		clear(msgs)
	}
}

// inFlight is one batch being settled: its messages and which of them are
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

// process settles one batch: it dead-letters or terminates the messages
// that are not a valid change, then applies and acks the others.
func (r *Runner) process(ctx context.Context, b *batch) {
	f := &inFlight{msgs: b.msgs, settled: make([]bool, len(b.msgs))}
	if ctx.Err() != nil {
		r.nakUnsettled(f)
		return
	}
	if b.bad > 0 {
		var bad []int
		var badErrs []error
		for i, err := range b.errs {
			if err != nil {
				bad = append(bad, i)
				badErrs = append(badErrs, err)
			}
		}
		if !r.settleUndecodable(ctx, f, bad, badErrs) {
			r.nakUnsettled(f)
			return
		}
	}
	idx, changes := b.valid()
	if len(idx) == 0 {
		return
	}
	kept := &inFlight{msgs: f.pick(idx), settled: make([]bool, len(idx))}
	r.applyUntilDone(ctx, kept, changes, b.collapsed)
}

// addressed reports whether m is for this runner's destination. A message
// addressed to other destinations only (a backfill with destination_ids
// sets contracts.DestinationsHeader) is acked without being applied: this
// destination has nothing to write for it.
func (r *Runner) addressed(m jetstream.Msg) bool {
	if contracts.AddressedTo(m.Headers().Get(contracts.DestinationsHeader), r.cfg.DestinationID) {
		return true
	}
	if err := m.Ack(); err != nil {
		// Not acked: redelivered, and skipped again.
		r.log.Debug("ack message addressed to other destinations", "subject", m.Subject(), "error", err)
	}
	return false
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
func (r *Runner) applyUntilDone(ctx context.Context, f *inFlight, changes []contracts.Change, pre *collapsed) {
	all := make([]int, len(changes))
	for i := range all {
		all[i] = i
	}
	backoff := r.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		var err error
		if pre != nil {
			// The fetcher collapsed the batch while it waited. A retry
			// collapses it again: a driver may keep what it was given.
			err = r.applyCollapsed(ctx, changes, pre.batches, pre.err)
			pre = nil
		} else {
			err = r.applySubset(ctx, changes, all)
		}
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
	return r.applyCollapsed(ctx, sub, batches, err)
}

// applyCollapsed applies batches, the collapse of changes (which failed
// with collapseErr), in one Apply bounded by ApplyTimeout.
func (r *Runner) applyCollapsed(ctx context.Context, sub []contracts.Change, batches []cdc.TableBatch, collapseErr error) error {
	if collapseErr != nil {
		// Decode checked every change on its own, so this is a batch
		// whose changes contradict each other (key columns differ).
		return Permanent(fmt.Errorf("collapse batch: %w", collapseErr))
	}
	actx, cancel := context.WithTimeout(ctx, r.cfg.ApplyTimeout)
	defer cancel()
	start := time.Now()
	err := r.drv.Apply(actx, batches)
	if err == nil && r.cfg.Observer != nil {
		// Apply returned nil: the destination transaction committed.
		r.cfg.Observer.BatchApplied(r.cfg.PipelineID, r.cfg.DestinationID, sub, time.Since(start))
	}
	if err == nil && r.inc != nil {
		r.comp.add(r.inc.Incomplete())
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
	r.reportError(ctx, err, true)
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
		r.reportError(ctx, err, true)
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
// last message means the plain acks before it landed too. The confirmation
// is awaited in the background, while the next batch applies (one at a
// time: the next ack waits for it first): it only tells whether to warn. A
// lost ack only causes a redelivery, which the driver's version guards (and
// the dead-letter queue's deduplication) make harmless. Only the applier
// calls it.
func (r *Runner) ack(ctx context.Context, f *inFlight, idx []int) {
	if len(idx) == 0 {
		return
	}
	r.awaitConfirm()
	for _, i := range idx[:len(idx)-1] {
		if err := f.msgs[i].Ack(); err != nil {
			r.log.Warn("ack message", "subject", f.msgs[i].Subject(), "error", err)
		}
		f.settled[i] = true
	}
	last, n := f.msgs[idx[len(idx)-1]], len(idx)
	f.settled[idx[len(idx)-1]] = true
	done := make(chan struct{})
	r.confirming = done
	go func() {
		defer close(done)
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := last.DoubleAck(actx); err != nil && ctx.Err() == nil {
			r.log.Warn("confirm acks; the messages may be redelivered", "messages", n, "error", err)
		}
	}()
}

// awaitConfirm waits for the last ack's confirmation.
func (r *Runner) awaitConfirm() {
	if r.confirming != nil {
		<-r.confirming
		r.confirming = nil
	}
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

// reportHealthy reports the destination healthy (throttled unless force)
// and clears applyFailing. Only the applier calls it.
func (r *Runner) reportHealthy(ctx context.Context, force bool) {
	r.repMu.Lock()
	defer r.repMu.Unlock()
	r.applyFailing = false
	r.reportHealthyLocked(ctx, force)
}

// fetchAnswered is called by the fetcher when a pull request ended without
// error: a destination reported in error (by a failed fetch) is healthy
// again, unless the applier's last attempt failed.
func (r *Runner) fetchAnswered(ctx context.Context) {
	r.repMu.Lock()
	defer r.repMu.Unlock()
	if r.lastHealth != configstore.HealthHealthy && !r.applyFailing {
		r.reportHealthyLocked(ctx, true)
	}
}

func (r *Runner) reportHealthyLocked(ctx context.Context, force bool) {
	st := r.Stats()
	var notes []string
	if st.Terminated > 0 {
		notes = append(notes, fmt.Sprintf("%d undecodable change messages were terminated (see the sink's log)", st.Terminated))
	}
	if st.DeadLettered > 0 {
		notes = append(notes, fmt.Sprintf("%d changes the destination rejected were sent to the dead-letter queue since the sink started (see the pipeline's DLQ)", st.DeadLettered))
	}
	if r.comp != nil {
		if n := r.comp.note(); n != "" {
			notes = append(notes, n)
		}
	}
	text := strings.Join(notes, "; ")
	if !force && r.lastHealth == configstore.HealthHealthy && r.lastReportText == text &&
		time.Since(r.lastReportAt) < r.cfg.ReportEvery {
		return
	}
	r.report(ctx, configstore.DestinationState{Health: configstore.HealthHealthy, LastError: text, LastAppliedAt: st.LastAppliedAt})
}

// reportError reports the destination in error (throttled); the applier's
// reports set applyFailing.
func (r *Runner) reportError(ctx context.Context, err error, byApplier bool) {
	r.repMu.Lock()
	defer r.repMu.Unlock()
	if byApplier {
		r.applyFailing = true
	}
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

// report sends st; callers hold repMu.
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
