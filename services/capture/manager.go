package capture

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// Manager runs one worker per source that has a started pipeline, and
// keeps that set in line with the config store.
type Manager struct {
	cfg   Config
	store ConfigStore
	js    jetstream.JetStream
	log   *slog.Logger

	workers map[int64]*runningWorker // owned by Run's goroutine
}

type runningWorker struct {
	w      *worker
	cancel context.CancelFunc
	done   chan struct{}
}

// NewManager returns a manager; Run starts it. Fields of cfg left zero get
// their DefaultConfig values.
func NewManager(cfg Config, store ConfigStore, js jetstream.JetStream, log *slog.Logger) *Manager {
	return &Manager{cfg: withDefaults(cfg), store: store, js: js, log: log, workers: make(map[int64]*runningWorker)}
}

func withDefaults(c Config) Config {
	d := DefaultConfig()
	dur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	dur(&c.ReconcileInterval, d.ReconcileInterval)
	dur(&c.StatusInterval, d.StatusInterval)
	dur(&c.StandbyInterval, d.StandbyInterval)
	dur(&c.ConfirmInterval, d.ConfirmInterval)
	dur(&c.TakeoverInterval, d.TakeoverInterval)
	dur(&c.AckTimeout, d.AckTimeout)
	dur(&c.DrainTimeout, d.DrainTimeout)
	dur(&c.BackoffMin, d.BackoffMin)
	dur(&c.BackoffMax, d.BackoffMax)
	dur(&c.ConnectTimeout, d.ConnectTimeout)
	if c.PublishWindow <= 0 {
		c.PublishWindow = d.PublishWindow
	}
	c.BackoffMax = max(c.BackoffMax, c.BackoffMin)
	if c.Metrics == nil {
		c.Metrics = nopMetrics{}
	}
	return c
}

// Run reconciles at start, on every config event and every
// ReconcileInterval, until ctx ends; it then stops every worker (each
// drains and confirms what JetStream acknowledged) and returns nil.
func (m *Manager) Run(ctx context.Context) error {
	if err := m.cfg.Validate(); err != nil {
		return err
	}
	defer m.stopAll()

	// Config events are hints: a lost one is caught by the timer, so a
	// failure to watch is logged and retried, not fatal.
	trigger := make(chan struct{}, 1)
	watching := false
	watch := func() {
		// Capture provisions JetStream, the config stream included.
		err := natsx.EnsureConfigStream(ctx, m.js)
		if err == nil {
			err = natsx.WatchConfig(ctx, m.js, func(contracts.ConfigEvent) {
				select {
				case trigger <- struct{}{}:
				default:
				}
			})
		}
		if err != nil {
			m.log.Warn("watch config events; relying on the reconcile timer", "error", err)
			return
		}
		watching = true
	}
	ticker := time.NewTicker(m.cfg.ReconcileInterval)
	defer ticker.Stop()
	for {
		if !watching {
			watch()
		}
		if err := m.reconcile(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("reconcile capture workers", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-trigger:
		}
	}
}

func (m *Manager) reconcile(ctx context.Context) error {
	sources, err := m.store.ListAllSources(ctx)
	if err != nil {
		return fmt.Errorf("list sources: %w", err)
	}
	pipelines, err := m.store.ListAllPipelines(ctx)
	if err != nil {
		return fmt.Errorf("list pipelines: %w", err)
	}
	desired, problems := desiredSources(sources, pipelines)
	for _, p := range problems {
		m.log.Warn("ignoring table", "error", p)
	}

	// Stop the workers of sources without a started pipeline, and of
	// sources whose connection changed (they start again below). Stops run
	// concurrently: each drains its acks for up to DrainTimeout.
	var stopping []*runningWorker
	for id, rw := range m.workers {
		d, ok := desired[id]
		if ok && sameConnection(rw.w.currentSpec().Source, d.Source) {
			continue
		}
		if ok {
			m.log.Info("source connection changed, restarting capture", "source", id)
		} else {
			m.log.Info("no started pipeline, stopping capture", "source", id)
		}
		rw.cancel()
		stopping = append(stopping, rw)
		delete(m.workers, id)
	}
	for _, rw := range stopping {
		<-rw.done
	}

	for id, spec := range desired {
		if rw, ok := m.workers[id]; ok {
			rw.w.update(spec)
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		m.start(ctx, spec)
	}
	return nil
}

func (m *Manager) start(ctx context.Context, spec sourceSpec) {
	w := newWorker(m.cfg, m.store, m.js, m.log, spec)
	wctx, cancel := context.WithCancel(ctx)
	rw := &runningWorker{w: w, cancel: cancel, done: make(chan struct{})}
	m.workers[spec.Source.ID] = rw
	m.log.Info("starting capture", "source", spec.Source.ID, "source_name", spec.Source.Name)
	go func() {
		defer close(rw.done)
		w.run(wctx)
	}()
}

func (m *Manager) stopAll() {
	for _, rw := range m.workers {
		rw.cancel()
	}
	for id, rw := range m.workers {
		<-rw.done
		delete(m.workers, id)
	}
}
