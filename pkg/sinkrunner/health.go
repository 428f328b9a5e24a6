package sinkrunner

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Health is the health a runner reports for its pipeline destination. The
// values are the config store's (configstore.Health) so that a reporter
// stores them as they are.
type Health string

// Health values a runner reports.
const (
	HealthHealthy Health = "HEALTHY"
	HealthError   Health = "ERROR"
)

// State is one report of a runner on its pipeline destination.
type State struct {
	PipelineID    int64
	DestinationID int64
	Health        Health
	// LastError is the error, when Health is HealthError, or notes on a
	// healthy destination (dead-lettered or terminated messages, rows
	// being completed); empty when there is nothing to say.
	LastError     string
	LastAppliedAt time.Time
	UpdatedAt     time.Time
}

// StateReporter receives the states of the pipeline destination a runner
// serves; the sink service stores them in the config store.
type StateReporter interface {
	ReportState(ctx context.Context, st State) error
}

// maxErrorText bounds the error text of one report.
const maxErrorText = 2000

// health reports a runner's state, throttling repeats. The fetcher reports
// fetch errors and answers, the applier everything else, the completer a
// change of its note: mu serializes them, and is held while a report is
// sent, so reports arrive in the order they were decided.
type health struct {
	rep           StateReporter // nil reports nothing
	pipelineID    int64
	destinationID int64
	every         time.Duration // throttles repeats of the same report
	log           *slog.Logger
	// status returns the notes of a healthy report and the time of the
	// last committed Apply.
	status func() (notes []string, lastAppliedAt time.Time)

	mu       sync.Mutex
	last     Health
	lastText string
	lastAt   time.Time
	// applyFailing is set while the applier's last attempt (an Apply or a
	// dead-letter write) failed: a fetch that succeeds meanwhile must not
	// report the destination healthy.
	applyFailing bool
}

// applied reports the destination healthy after the applier's attempt
// succeeded (throttled unless force), clearing applyFailing.
func (h *health) applied(ctx context.Context, force bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applyFailing = false
	h.healthyLocked(ctx, force)
}

// fetchAnswered is called by the fetcher when a pull request ended without
// error: a destination reported in error (by a failed fetch) is healthy
// again, unless the applier's last attempt failed.
func (h *health) fetchAnswered(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last != HealthHealthy && !h.applyFailing {
		h.healthyLocked(ctx, true)
	}
}

// notesChanged re-reports a healthy destination whose notes changed
// outside an Apply (the completer's).
func (h *health) notesChanged(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.applyFailing && h.last == HealthHealthy {
		h.healthyLocked(ctx, true)
	}
}

func (h *health) healthyLocked(ctx context.Context, force bool) {
	notes, lastApplied := h.status()
	text := strings.Join(notes, "; ")
	if !force && h.last == HealthHealthy && h.lastText == text && time.Since(h.lastAt) < h.every {
		return
	}
	h.send(ctx, State{Health: HealthHealthy, LastError: text, LastAppliedAt: lastApplied})
}

// failed reports the destination in error (throttled); the applier's
// reports set applyFailing.
func (h *health) failed(ctx context.Context, err error, byApplier bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if byApplier {
		h.applyFailing = true
	}
	text := err.Error()
	if len(text) > maxErrorText {
		text = text[:maxErrorText] + "…"
	}
	if h.last == HealthError && h.lastText == text && time.Since(h.lastAt) < h.every {
		return
	}
	_, lastApplied := h.status()
	h.send(ctx, State{Health: HealthError, LastError: text, LastAppliedAt: lastApplied})
}

// send reports st; callers hold mu.
func (h *health) send(ctx context.Context, st State) {
	if ctx.Err() != nil {
		return
	}
	st.PipelineID = h.pipelineID
	st.DestinationID = h.destinationID
	st.UpdatedAt = time.Now().UTC()
	h.last = st.Health
	h.lastText = st.LastError
	h.lastAt = st.UpdatedAt
	if h.rep == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := h.rep.ReportState(rctx, st); err != nil {
		h.log.Warn("report destination state", "health", st.Health, "error", err)
	}
}
