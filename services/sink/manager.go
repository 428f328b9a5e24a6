package sink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/destquery"
	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// Manager runs one sinkrunner.Runner per started pipeline destination and
// converges on the config store: on start, on every config event and every
// ReconcileInterval. Only Run's goroutine touches its state, except the
// registry of running runners (rmu), which the recovery goroutine reads.
type Manager struct {
	cfg   Config
	store ConfigStore
	js    jetstream.JetStream
	log   *slog.Logger
	wake  chan struct{}

	// Dead-letter queue and recoveries; nil without Redis.
	dlq        *dlq.Queue
	recoveries RecoveryStore
	worker     string        // names this instance in recovery claims
	recoverNow chan struct{} // wakes the recovery loop

	watching bool
	sinks    map[pairKey]*pairState
	// retrySoon asks Run to reconcile again after ConsumerRetry: a
	// consumer capture is about to create was missing.
	retrySoon bool

	// progress observes every runner's committed batches; nil when the
	// store cannot record progress (see ProgressStore).
	progress  *progress
	progStore ProgressStore

	// peers counts the sink instances per destination, for each runner's
	// share of the partitions (peers.go); set by Run, nil without NATS.
	peers *peers

	rmu     sync.Mutex
	runners map[pairKey]runnerRef
	// queues are the dead-letter queues of the pipeline destinations
	// this manager runs, started or paused (retention.go).
	queues map[queueKey]bool

	// queries learns the DuckDB files this manager's drivers hold; nil
	// when nobody reads through them (see ServeQueries).
	queries *destquery.Registry
}

// fileHolder is a driver that holds a file other processes cannot open
// meanwhile, and can lend it to a read-only query (the duckdb driver).
type fileHolder interface {
	destquery.Holder
	Path() string
}

// ServeQueries makes every runner whose driver holds a file (DuckDB) add
// it to reg while it runs, so that queries on the file are served by this
// process (pkg/destquery). Call it before Run.
func (m *Manager) ServeQueries(reg *destquery.Registry) { m.queries = reg }

// runnerRef is a running runner and the source its consumer reads.
type runnerRef struct {
	runner   *sinkrunner.Runner
	sourceID int64
}

// pairKey names one pipeline destination.
type pairKey struct {
	PipelineID    int64
	DestinationID int64
}

// pairState is what the manager knows of one pipeline destination.
type pairState struct {
	sourceID int64
	// fingerprint of the config the runner was started with: destination
	// type and config (with secrets, hashed), source, tables and the
	// source's partitions. A change
	// restarts the runner.
	fingerprint string
	run         *running
	// missingSince is when the pair's consumer was first found missing;
	// zero while it exists.
	missingSince time.Time
	// What the manager itself last reported (PAUSED, or ERROR when no
	// runner could start); empty while a runner reports.
	health  configstore.Health
	lastErr string
}

type running struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// NewManager returns a manager without a dead-letter queue: a change a
// destination rejects for good is retried, with the error in the
// destination's health, until the cause is fixed. Run starts it.
// cfg.Drivers nil means BuiltinDrivers().
func NewManager(cfg Config, store ConfigStore, js jetstream.JetStream, log *slog.Logger) *Manager {
	return NewManagerWithDLQ(cfg, store, js, nil, nil, log)
}

// NewManagerWithDLQ returns a manager whose runners dead-letter the changes
// a destination rejects for good into q and that replays the recoveries it
// claims from recoveries. q nil is NewManager; recoveries nil dead-letters
// without ever replaying.
func NewManagerWithDLQ(cfg Config, store ConfigStore, js jetstream.JetStream, q *dlq.Queue, recoveries RecoveryStore, log *slog.Logger) *Manager {
	d := DefaultConfig()
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = d.ReconcileInterval
	}
	if cfg.ConsumerRetry <= 0 {
		cfg.ConsumerRetry = d.ConsumerRetry
	}
	if cfg.ConsumerGrace <= 0 {
		cfg.ConsumerGrace = d.ConsumerGrace
	}
	if cfg.Drivers == nil {
		cfg.Drivers = BuiltinDrivers()
	}
	if cfg.DLQ.PollInterval <= 0 {
		cfg.DLQ.PollInterval = d.DLQ.PollInterval
	}
	if cfg.DLQ.Lease <= 0 {
		cfg.DLQ.Lease = d.DLQ.Lease
	}
	if cfg.DLQ.TrimInterval <= 0 {
		cfg.DLQ.TrimInterval = d.DLQ.TrimInterval
	}
	if q == nil {
		recoveries = nil
	}
	var prog *progress
	ps, _ := store.(ProgressStore)
	if ps != nil {
		prog = newProgress(cfg.Runner.Observer)
		cfg.Runner.Observer = prog
	}
	return &Manager{
		cfg:        cfg,
		store:      store,
		js:         js,
		log:        log,
		wake:       make(chan struct{}, 1),
		dlq:        q,
		recoveries: recoveries,
		worker:     workerName(),
		recoverNow: make(chan struct{}, 1),
		sinks:      map[pairKey]*pairState{},
		runners:    map[pairKey]runnerRef{},
		progress:   prog,
		progStore:  ps,
	}
}

// Run reconciles until ctx ends, then stops every runner (a runner stopping
// mid-batch does not ack it; it is redelivered) and returns nil.
func (m *Manager) Run(ctx context.Context) error {
	defer m.stopAll()
	if m.js != nil {
		m.peers = startPeers(ctx, m.js.Conn(), m.worker, m.log)
		defer m.peers.wait()
	}
	if m.recoveries != nil {
		done := make(chan struct{})
		// Owned by Run: it ends with ctx and Run waits for it before
		// stopping the runners it replays through.
		go func() {
			defer close(done)
			m.runRecoveries(ctx)
		}()
		defer func() { <-done }()
	}
	if m.dlq != nil && m.cfg.DLQ.Retention.Enabled() {
		done := make(chan struct{})
		// Owned by Run, like the recovery loop: it ends with ctx.
		go func() {
			defer close(done)
			m.runRetention(ctx)
		}()
		defer func() { <-done }()
	}
	if m.progress != nil {
		done := make(chan struct{})
		// Owned by Run, like the recovery loop: it ends with ctx (after a
		// last flush) and Run waits for it.
		go func() {
			defer close(done)
			m.progress.run(ctx, m.progStore, time.Second, m.log)
		}()
		defer func() { <-done }()
	}
	m.watch(ctx)
	m.reconcile(ctx)
	tick := time.NewTicker(m.cfg.ReconcileInterval)
	defer tick.Stop()
	soon := time.NewTimer(m.cfg.ConsumerRetry)
	defer soon.Stop()
	for {
		var retry <-chan time.Time
		if m.retrySoon {
			soon.Reset(m.cfg.ConsumerRetry)
			retry = soon.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
		case <-retry:
		case <-tick.C:
			if !m.watching {
				m.watch(ctx)
			}
		}
		m.retrySoon = false
		m.reconcile(ctx)
	}
}

// watch subscribes to config events; each one wakes a reconcile. A failure
// is retried on the next tick; the timer reconciles meanwhile.
func (m *Manager) watch(ctx context.Context) {
	err := natsx.WatchConfig(ctx, m.js, func(ev contracts.ConfigEvent) {
		switch ev.Kind {
		case contracts.KindPipeline, contracts.KindDestination, contracts.KindSource:
			select {
			case m.wake <- struct{}{}:
			default: // a reconcile is already pending
			}
			// A started pipeline may have recoveries waiting for it.
			m.wakeRecoveries()
		}
	})
	if err != nil {
		m.log.Warn("watch config events; relying on the reconcile timer", "error", err)
		return
	}
	m.watching = true
}

// reconcile makes the running runners match the store.
func (m *Manager) reconcile(ctx context.Context) {
	pipelines, err := m.store.ListAllPipelines(ctx)
	if err != nil {
		// Keep everything as it is: the store being unreachable says
		// nothing about what should run.
		if ctx.Err() == nil {
			m.log.Warn("list pipelines; keeping current sinks", "error", err)
		}
		return
	}
	dests := map[int64]destLookup{}
	desired := map[pairKey]bool{}
	queues := map[queueKey]bool{}
	for _, p := range pipelines {
		tables, terr := parseTables(p.Tables)
		for _, destID := range p.DestinationIDs {
			if !m.cfg.runs(destID) {
				continue // another sink instance runs it
			}
			key := pairKey{PipelineID: p.ID, DestinationID: destID}
			desired[key] = true
			queues[queueKey{SourceID: p.SourceID, DestinationID: destID}] = true
			m.reconcilePair(ctx, key, p, tables, terr, dests)
		}
	}
	m.setQueues(queues)
	for key, st := range m.sinks {
		if desired[key] {
			continue
		}
		// The pipeline, or this destination of it, is gone: stop. Its
		// consumer is capture's to delete (services/capture consumers.go).
		m.stop(key, st)
		m.log.Info("pipeline destination removed", "pipeline", key.PipelineID, "destination", key.DestinationID)
		delete(m.sinks, key)
		if m.progress != nil {
			m.progress.forget(key)
		}
	}
}

type destLookup struct {
	dest configstore.Destination
	err  error
}

func (m *Manager) reconcilePair(ctx context.Context, key pairKey, p configstore.Pipeline, tables []natsx.Table, tablesErr error, dests map[int64]destLookup) {
	log := m.log.With("pipeline", key.PipelineID, "destination", key.DestinationID, "source", p.SourceID)
	st, ok := m.sinks[key]
	if !ok {
		st = &pairState{sourceID: p.SourceID}
		m.sinks[key] = st
	}
	if st.sourceID != p.SourceID {
		// The pipeline now reads another source: its consumer is on the
		// new source's stream (capture deletes the old one).
		m.stop(key, st)
		st.sourceID = p.SourceID
	}
	if tablesErr != nil {
		m.stop(key, st)
		m.setHealth(ctx, key, st, configstore.HealthError, tablesErr.Error())
		return
	}
	if p.Status != configstore.StatusStart {
		if st.run != nil {
			log.Info("pipeline paused; stopping its sink")
		}
		m.stop(key, st)
		m.setHealth(ctx, key, st, configstore.HealthPaused, "")
		return
	}
	// Capture creates and updates the consumers, one per partition of the
	// source (before the tables join the publication); the sink only
	// binds to them. A handle names its consumer, so a filter capture
	// changes later applies to it as is.
	cons, err := natsx.PipelineConsumers(ctx, m.js, p.SourceID, p.ID, key.DestinationID, p.SourcePartitions)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		m.consumerMissing(ctx, log, key, st, p.SourceID, err)
		return
	}
	if err != nil {
		m.provisionFailed(ctx, log, key, st, err)
		return
	}
	st.missingSince = time.Time{}
	dl, ok := dests[key.DestinationID]
	if !ok {
		dl.dest, dl.err = m.store.DestinationWithSecrets(ctx, key.DestinationID)
		dests[key.DestinationID] = dl
	}
	if dl.err != nil {
		if errors.Is(dl.err, configstore.ErrNotFound) {
			m.stop(key, st)
			m.setHealth(ctx, key, st, configstore.HealthError, fmt.Sprintf("destination %d does not exist", key.DestinationID))
			return
		}
		// The store is flaky: keep a running sink as it is.
		log.Warn("read destination", "error", dl.err)
		if st.run == nil {
			m.setHealth(ctx, key, st, configstore.HealthError, "read destination config: "+dl.err.Error())
		}
		return
	}
	dest := dl.dest
	factory, ok := m.cfg.Drivers[dest.Type]
	if !ok {
		m.stop(key, st)
		m.setHealth(ctx, key, st, configstore.HealthError,
			fmt.Sprintf("destination type %s is not supported by this build yet", dest.Type))
		return
	}
	raw, err := dest.ConfigWithSecrets()
	if err != nil {
		m.stop(key, st)
		m.setHealth(ctx, key, st, configstore.HealthError, "encode destination config: "+err.Error())
		return
	}
	fp := fingerprint(dest.Type, raw, p.SourceID, tables, p.SourcePartitions)
	if st.run != nil && st.fingerprint == fp {
		return
	}
	if st.run != nil {
		log.Info("destination or pipeline config changed; restarting its sink")
		m.stop(key, st)
	}
	rlog := log.With("destination_type", dest.Type)
	drv, err := factory(ctx, raw, rlog)
	if err != nil {
		m.setHealth(ctx, key, st, configstore.HealthError, err.Error())
		return
	}
	rcfg := withBatchPolicy(m.cfg.Runner, drv)
	rcfg.PipelineID, rcfg.DestinationID, rcfg.SourceID = key.PipelineID, key.DestinationID, p.SourceID
	rcfg.Unpin = natsx.Unpinner(m.js)
	rcfg.Share = m.peers.share(key.DestinationID, len(cons))
	if bs, ok := m.store.(BoundsStore); ok {
		// Tombstone collection (docs/delivery.md).
		rcfg.Tables, rcfg.Bounds = p.Tables, guardBounds{store: bs, q: m.dlq}
	}
	if bs, ok := m.store.(BackfillStore); ok {
		// Rows left with unknown columns are completed from the source
		// by the backfill worker (docs/delivery.md).
		rcfg.Completions = completions{store: bs}
	}
	var letters sinkrunner.DeadLetterQueue // a nil interface, not a nil *dlq.Queue inside one
	if m.dlq != nil {
		letters = deadLetters{q: m.dlq}
	}
	runner := sinkrunner.NewPartitioned(rcfg, cons, drv, stateReporter{store: m.store}, letters, rlog)
	rctx, cancel := context.WithCancel(ctx)
	run := &running{cancel: cancel, done: make(chan struct{})}
	unhold := func() {}
	if h, ok := drv.(fileHolder); ok && m.queries != nil {
		unhold = m.queries.Add(h.Path(), h)
	}
	leave := m.peers.join(key.DestinationID)
	// Owned by the manager: stop() cancels it and waits for done.
	go func() {
		defer close(run.done)
		defer leave()
		defer func() {
			if err := drv.Close(); err != nil {
				rlog.Warn("close destination driver", "error", err)
			}
		}()
		// Runs before Close: queries stop coming to a closing driver.
		defer unhold()
		if err := runner.Run(rctx); err != nil {
			rlog.Error("sink runner stopped", "error", err)
		}
	}()
	st.run = run
	st.fingerprint = fp
	st.health, st.lastErr = "", "" // the runner reports from now on
	m.rmu.Lock()
	m.runners[key] = runnerRef{runner: runner, sourceID: p.SourceID}
	m.rmu.Unlock()
	m.wakeRecoveries()
	log.Info("sink started", "destination_type", dest.Type, "tables", len(tables), "partitions", len(cons), "dead_letters", letters != nil)
}

// consumerMissing handles a started pipeline destination whose consumer
// capture has not created (yet): capture creates it within moments of the
// pipeline starting, so the manager looks again every ConsumerRetry and
// reports ERROR only once it has been missing for ConsumerGrace. A running
// sink keeps running (its consumer was deleted under it: it will say so).
func (m *Manager) consumerMissing(ctx context.Context, log *slog.Logger, key pairKey, st *pairState, sourceID int64, err error) {
	m.retrySoon = true
	now := time.Now()
	if st.missingSince.IsZero() {
		st.missingSince = now
		log.Info("waiting for capture to create the pipeline destination's consumer")
	}
	if st.run == nil && now.Sub(st.missingSince) >= m.cfg.ConsumerGrace {
		name := contracts.ConsumerName(key.PipelineID, key.DestinationID)
		var ce *natsx.ConsumerError
		if errors.As(err, &ce) {
			name = ce.Name
		}
		m.setHealth(ctx, key, st, configstore.HealthError, fmt.Sprintf(
			"consumer %s does not exist on stream %s: capture creates it when the pipeline starts; is rosetta capture running and capturing source %d?",
			name, contracts.StreamName(sourceID), sourceID))
	}
}

// provisionFailed handles a NATS error while looking up the consumer: a
// running sink keeps running (its consumer existed); one that is not
// running says why.
func (m *Manager) provisionFailed(ctx context.Context, log *slog.Logger, key pairKey, st *pairState, err error) {
	log.Warn("look up consumer", "error", err)
	if st.run == nil && ctx.Err() == nil {
		m.setHealth(ctx, key, st, configstore.HealthError, err.Error())
	}
}

// setHealth reports a state the manager decided, once per change.
func (m *Manager) setHealth(ctx context.Context, key pairKey, st *pairState, h configstore.Health, text string) {
	if st.health == h && st.lastErr == text {
		return
	}
	err := m.store.SetDestinationState(ctx, configstore.DestinationState{
		PipelineID: key.PipelineID, DestinationID: key.DestinationID,
		Health: h, LastError: text, UpdatedAt: time.Now().UTC(),
	})
	if err != nil {
		m.log.Warn("report destination state", "pipeline", key.PipelineID, "destination", key.DestinationID, "health", h, "error", err)
		return // retried on the next reconcile
	}
	st.health, st.lastErr = h, text
}

// stop stops a pair's runner, if any, and waits for it (its driver is
// closed when it returns).
func (m *Manager) stop(key pairKey, st *pairState) {
	if st.run == nil {
		return
	}
	m.rmu.Lock()
	delete(m.runners, key)
	m.rmu.Unlock()
	st.run.cancel()
	<-st.run.done
	st.run = nil
	st.fingerprint = ""
}

func (m *Manager) stopAll() {
	for key, st := range m.sinks {
		m.stop(key, st)
	}
}

// parseTables splits a pipeline's "schema.table" names at the first dot,
// the rule the API validates them with (schema names hold no dots).
func parseTables(names []string) ([]natsx.Table, error) {
	if len(names) == 0 {
		return nil, errors.New("the pipeline has no tables")
	}
	out := make([]natsx.Table, 0, len(names))
	for _, n := range names {
		schema, table, ok := strings.Cut(n, ".")
		if !ok || schema == "" || table == "" {
			return nil, fmt.Errorf("pipeline table %q is not schema.table", n)
		}
		out = append(out, natsx.Table{Schema: schema, Name: table})
	}
	return out, nil
}

// fingerprint identifies what a runner was started with. It hashes the
// config, which holds secrets, and is only kept in memory.
func fingerprint(destType string, config json.RawMessage, sourceID int64, tables []natsx.Table, partitions int) string {
	h := sha256.New()
	body, _ := json.Marshal(struct {
		Type       string
		Config     json.RawMessage
		SourceID   int64
		Tables     []natsx.Table
		Partitions int
	}{destType, config, sourceID, tables, max(partitions, 1)})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}
