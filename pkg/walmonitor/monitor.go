// Package walmonitor watches how much WAL each source keeps for Rosetta's
// replication slot. Every Interval it checks all sources concurrently, each
// check in its own goroutine with its own timeout, so an unreachable or hung
// source never delays the others; a source whose check failed is checked
// again after a backoff. Samples go to the config database (wal_metrics)
// and to Prometheus gauges; samples older than Retention are deleted.
package walmonitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/metrics"
)

// Sources lists the sources to watch, with their passwords decrypted;
// *configstore.Store implements it.
type Sources interface {
	ListAllSources(ctx context.Context) ([]configstore.Source, error)
}

// Recorder stores samples; *Store implements it.
type Recorder interface {
	Record(ctx context.Context, x Sample) error
	DeleteBefore(ctx context.Context, t time.Time) (int64, error)
}

// Observer receives every check; *metrics.Metrics implements it.
type Observer interface {
	WALChecked(s metrics.WALSample)
}

// Config configures a Monitor. Zero fields take DefaultConfig's values.
type Config struct {
	// Interval between two checks of a healthy source (60s).
	Interval time.Duration
	// Timeout bounds one source's check: connect, query, disconnect (10s).
	Timeout time.Duration
	// Retention is how long samples are kept (7 days).
	Retention time.Duration
	// BackoffMax bounds the wait before checking a failing source again;
	// it doubles from 2*Interval (10m).
	BackoffMax time.Duration
}

// DefaultConfig holds the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Interval: time.Minute, Timeout: 10 * time.Second, Retention: 7 * 24 * time.Hour, BackoffMax: 10 * time.Minute}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Interval <= 0 {
		c.Interval = d.Interval
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.Retention <= 0 {
		c.Retention = d.Retention
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = d.BackoffMax
	}
	c.BackoffMax = max(c.BackoffMax, c.Interval)
	return c
}

// CheckFunc checks one source; Check is the real one.
type CheckFunc func(ctx context.Context, src configstore.Source) (Sample, error)

// Monitor checks sources on a timer. Run it once.
type Monitor struct {
	cfg     Config
	sources Sources
	rec     Recorder
	obs     Observer // may be nil
	log     *slog.Logger
	check   CheckFunc

	mu    sync.Mutex
	state map[int64]*sourceState
	wg    sync.WaitGroup // running checks
}

type sourceState struct {
	running  bool
	failures int
	next     time.Time // not checked before this time
}

// New returns a monitor. obs may be nil.
func New(cfg Config, sources Sources, rec Recorder, obs Observer, log *slog.Logger) *Monitor {
	return &Monitor{
		cfg: cfg.withDefaults(), sources: sources, rec: rec, obs: obs,
		log: log.With("component", "wal_monitor"), check: Check, state: map[int64]*sourceState{},
	}
}

// SetCheck replaces the check function (tests).
func (m *Monitor) SetCheck(f CheckFunc) { m.check = f }

// Run checks at once and then every Interval until ctx ends; it returns
// nil after the running checks finished (each is bounded by Timeout and
// ctx).
func (m *Monitor) Run(ctx context.Context) error {
	defer m.wg.Wait()
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		m.Round(ctx)
		m.prune(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Round starts a check of every source that is due and not still being
// checked, and returns without waiting for them.
func (m *Monitor) Round(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	srcs, err := m.sources.ListAllSources(lctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("list sources for wal monitoring", "error", err)
		}
		return
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make(map[int64]bool, len(srcs))
	for _, src := range srcs {
		seen[src.ID] = true
		st := m.state[src.ID]
		if st == nil {
			st = &sourceState{}
			m.state[src.ID] = st
		}
		if st.running || now.Before(st.next) {
			continue
		}
		st.running = true
		m.wg.Add(1)
		go m.checkOne(ctx, src, st)
	}
	for id, st := range m.state {
		if !seen[id] && !st.running {
			delete(m.state, id)
		}
	}
}

// Wait waits for the checks Round started.
func (m *Monitor) Wait() { m.wg.Wait() }

func (m *Monitor) checkOne(ctx context.Context, src configstore.Source, st *sourceState) {
	defer m.wg.Done()
	cctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	x, err := m.check(cctx, src)
	cancel()
	if ctx.Err() != nil {
		m.mu.Lock()
		st.running = false
		m.mu.Unlock()
		return
	}
	x.SourceID = src.ID
	if x.At.IsZero() {
		x.At = time.Now().UTC()
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("source %d did not answer within %s: %w", src.ID, m.cfg.Timeout, err)
		}
		x.Error = err.Error()
	}
	if m.obs != nil {
		ms := metrics.WALSample{SourceID: src.ID, WALStatus: deref(x.WALStatus), SafeWALSize: x.SafeWALSize, Err: err}
		if x.RetainedBytes != nil {
			ms.RetainedBytes = *x.RetainedBytes
		}
		m.obs.WALChecked(ms)
	}
	rctx, rcancel := context.WithTimeout(ctx, m.cfg.Timeout)
	if rerr := m.rec.Record(rctx, x); rerr != nil && ctx.Err() == nil {
		m.log.Warn("record wal sample", "source", src.ID, "error", rerr)
	}
	rcancel()

	m.mu.Lock()
	defer m.mu.Unlock()
	st.running = false
	if err == nil {
		st.failures, st.next = 0, time.Time{}
		return
	}
	st.failures++
	wait := m.cfg.BackoffMax
	if st.failures < 16 {
		wait = min(m.cfg.Interval<<st.failures, m.cfg.BackoffMax)
	}
	st.next = time.Now().Add(wait)
	m.log.Warn("wal check failed", "source", src.ID, "error", x.Error, "next_check_in", wait)
}

func (m *Monitor) prune(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	n, err := m.rec.DeleteBefore(pctx, time.Now().Add(-m.cfg.Retention))
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("delete old wal samples", "error", err)
		}
		return
	}
	if n > 0 {
		m.log.Debug("deleted old wal samples", "rows", n)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
