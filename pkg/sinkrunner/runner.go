package sinkrunner

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Runner moves changes from the durable consumers of one pipeline
// destination, one per partition of its source, to one driver. It is
// single-use: call Run once. Its parts (doc.go): the fetcher (fetch.go),
// the keeper (hold.go), the applier (apply.go, deadletter.go), the acker
// (ack.go) and health (health.go); replay.go and collect.go serve requests
// between batches, complete.go turns incomplete rows into backfills.
type Runner struct {
	cfg Config
	// cons are the pipeline destination's consumers, one per partition
	// (one fetcher each).
	cons []jetstream.Consumer
	drv  Driver
	dlq  DeadLetterQueue
	log  *slog.Logger
	// inc and comp are set when the driver reports incomplete rows and
	// the config has a CompletionStore.
	inc  IncompleteReporter
	comp *completer

	replays  chan replayRequest
	collects chan collectRequest
	stopped  chan struct{} // closed when Run returns

	held   holder   // the batches kept in progress
	pins   pinCount // fetchers holding their partition's pin
	acks   acker    // only the applier uses it
	stats  counters // written by the applier, read by anyone
	health health

	// The applier's: a collection that found the consumer behind sets
	// collectDue; caughtUp says the last batch left nothing pending
	// (collectRetry).
	collectDue, caughtUp bool
	lastCollect          time.Time
	collectRetries       int // collections in a row that found it behind
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
	return NewPartitioned(cfg, []jetstream.Consumer{cons}, drv, rep, dlq, log)
}

// NewPartitioned is NewWithDeadLetters on the consumers of every partition
// of a pipeline destination (natsx.PipelineConsumers): one fetcher per
// consumer, one applier for all. A key's changes are all on one partition,
// fetched by one fetcher whose batches the applier takes in order, so they
// commit in order; batches of different partitions commit one at a time in
// any order. Each fetcher pulls in natsx.SinkGroup: with the consumers'
// pinned-client policy, a partition is fetched by one runner (one sink
// instance) at a time.
func NewPartitioned(cfg Config, cons []jetstream.Consumer, drv Driver, rep StateReporter, dlq DeadLetterQueue, log *slog.Logger) *Runner {
	cfg = cfg.withDefaults()
	r := &Runner{
		cfg:      cfg,
		cons:     cons,
		drv:      drv,
		dlq:      dlq,
		log:      log.With("pipeline", cfg.PipelineID, "destination", cfg.DestinationID),
		replays:  make(chan replayRequest),
		collects: make(chan collectRequest),
		stopped:  make(chan struct{}),
		held:     holder{held: map[*batch]struct{}{}},
	}
	r.acks.log = r.log
	if inc, ok := drv.(IncompleteReporter); ok && cfg.Completions != nil {
		r.inc, r.comp = inc, newCompleter()
	}
	r.health = health{rep: rep, pipelineID: cfg.PipelineID, destinationID: cfg.DestinationID,
		every: cfg.ReportEvery, log: r.log, status: r.healthNotes}
	return r
}

// Stats returns a snapshot of the runner's counters.
func (r *Runner) Stats() Stats { return r.stats.snapshot() }

// healthNotes is what a healthy report says, and the last commit's time.
func (r *Runner) healthNotes() ([]string, time.Time) {
	st := r.Stats()
	var notes []string
	if st.Terminated > 0 {
		notes = append(notes, fmt.Sprintf("%d undecodable changes were dropped and their messages acked or terminated (see the sink's log)", st.Terminated))
	}
	if st.DeadLettered > 0 {
		notes = append(notes, fmt.Sprintf("%d changes the destination rejected were sent to the dead-letter queue since the sink started (see the pipeline's DLQ)", st.DeadLettered))
	}
	if r.comp != nil {
		if n := r.comp.note(); n != "" {
			notes = append(notes, n)
		}
	}
	return notes, st.LastAppliedAt
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
	wg.Go(func() { r.held.keepInProgress(ctx, r.cfg.KeepAliveEvery, r.log) })
	// Unbuffered: a batch the applier has not taken stays with the
	// fetcher, which keeps filling it.
	ready := make(chan *batch)
	for _, cons := range r.cons {
		wg.Go(func() { r.fetchLoop(ctx, cons, ready) })
	}
	if r.comp != nil {
		wg.Go(func() { r.completeLoop(ctx) })
	}
	defer r.acks.awaitConfirm()
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
			r.caughtUp = b.caughtUp()
			r.held.release(b)
		case <-r.collectRetry():
			r.runCollect(ctx)
		}
	}
}

// backoff is the growing wait between the retries of one failing
// operation: MinBackoff doubling up to MaxBackoff.
type backoff struct{ cur, min, max time.Duration }

func (r *Runner) newBackoff() backoff {
	return backoff{cur: r.cfg.MinBackoff, min: r.cfg.MinBackoff, max: r.cfg.MaxBackoff}
}

// next returns the wait before the next try and doubles the one after.
func (b *backoff) next() time.Duration {
	w := b.cur
	b.cur = min(2*w, b.max)
	return w
}

// reset starts again from the least wait, after a success.
func (b *backoff) reset() { b.cur = b.min }

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

// Stats counts what a runner did since it started.
type Stats struct {
	// Applied is the number of changes of committed Applies (a message
	// of several changes counts each; it is acked once all are settled).
	Applied uint64
	// Batches is the number of successful Apply calls of fetched changes
	// (a bisected batch counts each committed part).
	Batches uint64
	// Terminated is the number of entries that are not a valid change (a
	// change failing cdc.Check, or a message that does not decode at all)
	// dropped without a dead-letter queue: a message holding no valid
	// change is terminated (JetStream will not redeliver it), one with
	// valid changes too is acked once they commit. With a queue they are
	// dead-lettered instead.
	Terminated uint64
	// DeadLettered is the number of changes (or undecodable messages)
	// stored in the dead-letter queue and settled.
	DeadLettered uint64
	// Failures is the number of failed Apply attempts.
	Failures      uint64
	LastAppliedAt time.Time
	LastError     string
}

// counters holds a runner's Stats. Its own mutex: Stats never waits for a
// health report being sent.
type counters struct {
	mu sync.Mutex
	s  Stats
}

func (c *counters) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}

// update changes the counters under the mutex.
func (c *counters) update(f func(*Stats)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.s)
}
