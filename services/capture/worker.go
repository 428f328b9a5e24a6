package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/jitter"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/pgrepl"
	"github.com/rosettacdc/rosetta/pkg/settings"
)

// worker captures one source. Its run method owns everything it starts;
// it returns when its context ends, after a final status update.
type worker struct {
	cfg   Config
	store ConfigStore
	js    jetstream.JetStream
	log   *slog.Logger
	id    int64

	mu      sync.Mutex
	spec    sourceSpec
	changed chan struct{} // one pending "spec changed" signal

	// confirmed is the position confirmed to PostgreSQL (or about to be):
	// every change before it is acknowledged by JetStream. Owned by run's
	// goroutine; it survives reconnects.
	confirmed pglogrepl.LSN
	// failing is set while the source's reported state is ERROR from a
	// failed session; the next session reports RUNNING only once it made
	// progress (see stream.recovered). Owned by run's goroutine.
	failing bool
	// standby is set while another capture instance holds the source's
	// slot (standby.go). Owned by run's goroutine.
	standby bool
	// held is set by a session once its START_REPLICATION succeeded: the
	// session's error, if any, came while this worker held the slot.
	// Owned by run's goroutine.
	held bool
	// relations are the columns of every relation the last session's
	// decoder knew: the next session's decoder compares its first
	// descriptions with them, so a column added while capture reconnected
	// is still found (pgrepl.Decoder.Known). Owned by run's goroutine.
	relations map[uint32][]contracts.Column
}

func newWorker(cfg Config, store ConfigStore, js jetstream.JetStream, log *slog.Logger, spec sourceSpec) *worker {
	return &worker{
		cfg:     cfg,
		store:   store,
		js:      js,
		log:     log.With("source", spec.Source.ID, "source_name", spec.Source.Name),
		id:      spec.Source.ID,
		spec:    spec,
		changed: make(chan struct{}, 1),
	}
}

// update hands the worker a new spec with the same connection; the running
// session applies its tables without restarting.
func (w *worker) update(spec sourceSpec) {
	w.mu.Lock()
	w.spec = spec
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *worker) currentSpec() sourceSpec {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.spec
}

// run captures until ctx ends, reconnecting after errors with a backoff
// that doubles from BackoffMin to BackoffMax and starts over once a session
// made progress, or, for an error before the session held the slot, once
// another instance holds it (watchSlot).
func (w *worker) run(ctx context.Context) {
	backoff := w.cfg.BackoffMin
	for {
		before := w.confirmed
		err := w.session(ctx)
		if ctx.Err() != nil {
			if !w.standby { // the active instance owns the source's state
				w.report(StateStopped, "")
			}
			w.log.Info("capture stopped", "confirmed_lsn", w.confirmed, "standby", w.standby)
			return
		}
		if err == nil {
			err = errors.New("replication session ended")
		}
		if slotHeldElsewhere(err) {
			// Another instance captures this source: not an error, and
			// not this worker's state to report (the active one reports
			// RUNNING). Try again soon, to take over when it lets go.
			if !w.standby {
				w.log.Info("standby: another capture instance holds the source's replication slot; taking over when it lets go",
					"slot", w.currentSpec().Source.Slot, "retry_every", w.cfg.TakeoverInterval)
				w.standby = true
			}
			backoff = w.cfg.BackoffMin
			t := time.NewTimer(w.cfg.TakeoverInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				w.log.Info("capture stopped", "standby", true)
				return
			case <-t.C:
			}
			continue
		}
		if w.confirmed > before {
			backoff = w.cfg.BackoffMin
		}
		if errors.Is(err, pgrepl.ErrSlotInvalidated) {
			// Terminal: the source removed WAL the slot still needed, so
			// changes are missing. Recreating the slot would skip them
			// without anyone noticing; only the documented recovery
			// (pause, drop the slot, start, re-snapshot) may, and pausing
			// ends this worker.
			msg := redact(err.Error(), w.currentSpec().Source.Password)
			w.log.Error("capture cannot continue: replication slot invalidated", "error", msg)
			w.cfg.Metrics.Error("capture", "slot_invalidated")
			w.report(StateError, msg)
			<-ctx.Done()
			w.report(StateStopped, "")
			return
		}
		err = explainStreamFull(err, w.id, w.cfg.StreamLimits)
		msg := redact(err.Error(), w.currentSpec().Source.Password)
		w.log.Error("capture failed, reconnecting", "error", msg, "retry_in", backoff)
		w.cfg.Metrics.Error("capture", "session")
		w.report(StateError, msg)
		w.failing = true
		wait := jitter.Spread(backoff)
		backoff = min(backoff*2, w.cfg.BackoffMax)
		if w.held {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		} else if w.watchSlot(ctx, wait) {
			// Another instance took the slot: standby from now on
			// (watchSlot says why the backoff ends here).
			backoff = w.cfg.BackoffMin
		}
		if ctx.Err() != nil {
			w.report(StateStopped, "")
			return
		}
	}
}

// report writes the worker's state to the config store; a failure is
// logged, not fatal (the next report repeats it).
func (w *worker) report(state, lastErr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := configstore.SourceState{SourceID: w.id, State: state, LastError: lastErr, UpdatedAt: time.Now().UTC()}
	if w.confirmed != 0 {
		st.ConfirmedLSN = contracts.FormatLSN(uint64(w.confirmed))
	}
	if err := w.store.SetSourceState(ctx, st); err != nil {
		w.log.Warn("report source state", "state", state, "error", err)
	}
}

// session connects, provisions and streams until an error or ctx's end.
func (w *worker) session(ctx context.Context) error {
	w.held = false
	spec := w.currentSpec()
	src := spec.Source
	if src.Slot == "" || src.Publication == "" {
		return fmt.Errorf("source %d has no slot or publication name", src.ID)
	}

	conn, err := connectQuery(ctx, src, w.cfg.ConnectTimeout)
	if err != nil {
		return fmt.Errorf("connect to source %s: %w", src.Name, err)
	}
	defer closeConn(conn)
	// Setting up must not hang on a connection that died half-open: it
	// gets ReceiveTimeout, like every later query.
	sctx, scancel := context.WithTimeout(ctx, w.cfg.ReceiveTimeout)
	defer scancel()
	if err := pgrepl.CheckWALLevel(sctx, conn); err != nil {
		return err
	}
	// A standby's attempt ends here while another instance holds the
	// slot, before any JetStream request: standing by needs PostgreSQL
	// only, so a NATS hiccup (a leader election, a request lost with a
	// node) can neither fail its attempts into the error backoff nor stall
	// one for ReceiveTimeout while the slot comes free (issue 19).
	if slot, found, err := pgrepl.ReadSlot(sctx, conn, src.Slot); err != nil {
		return err
	} else if found && slot.Active {
		return fmt.Errorf("replication slot %s: %w", src.Slot, errSlotActive)
	}
	if _, err := natsx.EnsureSourceStream(sctx, w.js, src.ID, w.cfg.StreamLimits); err != nil {
		return err
	}
	if err := w.applyTables(sctx, conn, spec); err != nil {
		return err
	}
	if err := pgrepl.EnsureSlot(sctx, conn, src.Slot); err != nil {
		return err
	}
	slot, found, err := pgrepl.ReadSlot(sctx, conn, src.Slot)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("replication slot %s disappeared", src.Slot)
	}
	// The slot never moves past what this worker confirmed; it may be
	// ahead of w.confirmed on the first session (or behind it after a
	// source crash lost an unflushed slot update: changes between the two
	// are in JetStream already, so resuming from w.confirmed is right).
	w.confirmed = max(w.confirmed, slot.ConfirmedFlushLSN)

	rcfg, err := replicationConfig(src, w.cfg.ConnectTimeout)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.ConnectTimeout)
	rconn, err := pgconn.ConnectConfig(cctx, rcfg)
	cancel()
	if err != nil {
		return fmt.Errorf("open replication connection to source %s: %w", src.Name, err)
	}
	defer closeConn(rconn)
	streaming, err := pgrepl.StartReplicationWith(sctx, rconn, src.Slot, src.Publication, w.confirmed,
		pgrepl.ReplicationOptions{Streaming: w.cfg.Streaming})
	if err != nil {
		return err
	}
	w.held = true
	if w.standby {
		w.log.Info("took over the source's replication slot: this instance now captures it", "slot", src.Slot, "start_lsn", w.confirmed)
		w.standby = false
	}
	// This worker holds the slot now: it is the source's one active
	// capture, the one that may delete consumers.
	w.removeStaleConsumers(sctx, spec)

	// A publisher of its own bounds this worker's unacknowledged publishes
	// and is cleaned up with the session (pending futures fail, so nothing
	// waits on them). It tracks its publishes in the ack tracker, which
	// knows each one's transaction.
	acks := newAckTracker(w.confirmed, w.cfg.ConfirmDelay)
	pub, err := natsx.NewPublisher(w.js.Conn(), natsx.PublisherConfig{Window: w.cfg.PublishWindow, AckTimeout: w.cfg.AckTimeout}, acks.pubs)
	if err != nil {
		return err
	}
	defer pub.Close()

	s := &stream{
		w:         w,
		conn:      conn,
		rconn:     rconn,
		pub:       pub,
		dec:       pgrepl.NewDecoder(src.ID, src.Database, pgrepl.NewCatalogResolver(conn)),
		acks:      acks,
		applied:   spec,
		batch:     newBatcher(spec.Source.Partitions),
		sentLSN:   w.confirmed,
		lastRecv:  time.Now(),
		streaming: streaming,
		spools:    newSpools(w.cfg.SpoolDir, src.ID),
	}
	// Spools hold only what this session received: after a reconnect,
	// PostgreSQL streams an uncommitted transaction again from its start.
	defer func() {
		if err := s.spools.close(); err != nil {
			w.log.Warn("remove spooled transactions", "error", err)
		}
	}()
	w.log.Info("capture streaming", "slot", src.Slot, "publication", src.Publication, "start_lsn", w.confirmed,
		"tables", len(spec.Tables), "streaming", streaming)
	s.dec.SetBaseline(w.relations)
	defer func() { w.relations = s.dec.Known() }()
	return s.run(ctx)
}

// applyTables brings the consumers and the publication to spec. Consumers
// come first: each starts at new messages, so it must exist before its
// tables' changes can be published. Both steps are idempotent.
func (w *worker) applyTables(ctx context.Context, conn *pgx.Conn, spec sourceSpec) error {
	src := spec.Source
	for _, c := range spec.Consumers {
		if err := natsx.EnsurePipelineConsumers(ctx, w.js, src.ID, c.PipelineID, c.DestinationID, c.Tables, src.Partitions); err != nil {
			return err
		}
	}
	// An adopted publication is its owner's: checked, never altered.
	if src.AdoptPublication {
		return pgrepl.CheckAdoptedPublication(ctx, conn, src.Publication, spec.Tables)
	}
	return pgrepl.EnsurePublication(ctx, conn, src.Publication, spec.Tables)
}

// jsStoreFailed is JetStream's error code for a message it did not store;
// with the source streams' DiscardNew policy it is how "the stream is full"
// comes back (description "maximum bytes exceeded" or "maximum messages
// exceeded"). The server has no more specific code.
const jsStoreFailed = 10077

// explainStreamFull turns a publish refused because the source's stream
// reached its limit into an error that says what happens and what to do;
// other errors are returned unchanged.
func explainStreamFull(err error, sourceID int64, lim natsx.StreamLimits) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsStoreFailed || !strings.Contains(apiErr.Description, "maximum") {
		return err
	}
	maxBytes := lim.MaxBytes
	if maxBytes <= 0 {
		maxBytes = natsx.DefaultStreamLimits().MaxBytes
	}
	return fmt.Errorf("stream %s is full (%d bytes, %s): a destination is not consuming (see the pipeline's destination health); "+
		"capture stops confirming WAL to the source, which keeps it, and retries until the stream has room. Bring the destination back, "+
		"or raise %s; size max_slot_wal_keep_size for the WAL the source keeps meanwhile: %w",
		contracts.StreamName(sourceID), maxBytes, settings.EnvStreamBytes, settings.EnvStreamBytes, err)
}
