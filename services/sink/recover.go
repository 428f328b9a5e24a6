package sink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// RecoveryStore is where the API records dead-letter queue recoveries and
// sinks claim them; *configstore.Store implements it.
//
// Services talk through the config database here, never directly: the API
// writes a PENDING row, any sink instance running that pipeline destination
// claims it with a lease, replays, and records the outcome. A sink that
// dies mid-replay stops renewing its lease; another claims the recovery
// when it expires and reclaims the entries the dead one left pending.
type RecoveryStore interface {
	ClaimDLQRecovery(ctx context.Context, worker string, lease time.Duration, serving []configstore.PipelineDestination) (configstore.DLQRecovery, bool, error)
	RenewDLQRecovery(ctx context.Context, id int64, worker string, lease time.Duration, replayed, failed int64) error
	FinishDLQRecovery(ctx context.Context, id int64, worker string, status configstore.RecoveryStatus, replayed, failed int64, lastError string) error
	ReleaseDLQRecovery(ctx context.Context, id int64, worker string, replayed, failed int64, note string) error
}

var _ RecoveryStore = (*configstore.Store)(nil)

// workerName names this sink instance in recovery claims and as the Redis
// consumer of its replays: host, process and a random part, so that a
// restarted process never takes itself for the one that died.
func workerName() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// wakeRecoveries makes the recovery loop look for work now.
func (m *Manager) wakeRecoveries() {
	select {
	case m.recoverNow <- struct{}{}:
	default:
	}
}

// runnerFor returns the running runner of a pipeline destination.
func (m *Manager) runnerFor(key pairKey) (runnerRef, bool) {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	ref, ok := m.runners[key]
	return ref, ok
}

// serving lists the pipeline destinations this instance runs a runner for:
// the only ones whose recoveries it can replay.
func (m *Manager) serving() []configstore.PipelineDestination {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	out := make([]configstore.PipelineDestination, 0, len(m.runners))
	for k := range m.runners {
		out = append(out, configstore.PipelineDestination{PipelineID: k.PipelineID, DestinationID: k.DestinationID})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PipelineID != out[j].PipelineID {
			return out[i].PipelineID < out[j].PipelineID
		}
		return out[i].DestinationID < out[j].DestinationID
	})
	return out
}

// runRecoveries claims and replays recoveries until ctx ends: every
// PollInterval, and when woken (a runner started, a pipeline changed).
func (m *Manager) runRecoveries(ctx context.Context) {
	tick := time.NewTicker(m.cfg.DLQ.PollInterval)
	defer tick.Stop()
	for {
		for ctx.Err() == nil && m.recoverOnce(ctx) {
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-m.recoverNow:
		}
	}
}

// recoverOnce claims one recovery and runs it. It returns true when there
// may be more work right away.
func (m *Manager) recoverOnce(ctx context.Context) bool {
	serving := m.serving()
	if len(serving) == 0 {
		return false
	}
	rec, ok, err := m.recoveries.ClaimDLQRecovery(ctx, m.worker, m.cfg.DLQ.Lease, serving)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("claim dlq recovery", "error", err)
		}
		return false
	}
	if !ok {
		return false
	}
	return m.replayRecovery(ctx, rec)
}

// replayRecovery replays one claimed recovery through the runner of its
// pipeline destination and records the outcome. The runner applies the
// entries between its own batches, so a replay never runs concurrently with
// the runner's Apply on the same driver; entries are removed from the queue
// only after the destination committed them (dlq.Queue.Replay).
func (m *Manager) replayRecovery(ctx context.Context, rec configstore.DLQRecovery) (more bool) {
	log := m.log.With("recovery", rec.ID, "pipeline", rec.PipelineID, "destination", rec.DestinationID, "table", rec.Table)
	var (
		mu  sync.Mutex
		run dlq.ReplayResult // of this run; rec holds earlier runs'
	)
	totals := func() (int64, int64) {
		mu.Lock()
		defer mu.Unlock()
		return rec.Replayed + run.Replayed, rec.Failed + run.Failed
	}
	// Bookkeeping outlives ctx: a stopping sink still says it stopped.
	record := func(fn func(context.Context) error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := fn(rctx); err != nil {
			log.Warn("record dlq recovery outcome", "error", err)
		}
	}
	ref, ok := m.runnerFor(pairKey{PipelineID: rec.PipelineID, DestinationID: rec.DestinationID})
	if !ok {
		// The runner stopped between listing and claiming.
		record(func(c context.Context) error {
			return m.recoveries.ReleaseDLQRecovery(c, rec.ID, m.worker, rec.Replayed, rec.Failed, "waiting for the pipeline destination's sink to run")
		})
		return false
	}
	remaining := int64(0) // every entry
	if rec.MaxCount > 0 {
		remaining = rec.MaxCount - rec.Replayed - rec.Failed
		if remaining <= 0 {
			record(func(c context.Context) error {
				return m.recoveries.FinishDLQRecovery(c, rec.ID, m.worker, configstore.RecoveryCompleted, rec.Replayed, rec.Failed, "")
			})
			return true
		}
	}
	log.Info("replaying dead-letter queue", "run", rec.Runs, "max_count", rec.MaxCount)

	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lost error // set when the lease is lost; read after renewals stop
	renewed := make(chan struct{})
	// Renews the lease while the replay runs; owned by this function.
	go func() {
		defer close(renewed)
		t := time.NewTicker(m.cfg.DLQ.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-t.C:
			}
			replayed, failed := totals()
			err := m.recoveries.RenewDLQRecovery(jctx, rec.ID, m.worker, m.cfg.DLQ.Lease, replayed, failed)
			if errors.Is(err, configstore.ErrNotFound) {
				lost = err
				cancel()
				return
			}
			if err != nil && jctx.Err() == nil {
				log.Warn("renew dlq recovery lease", "error", err)
			}
		}
	}()
	res, err := m.dlq.Replay(jctx, dlq.ReplayOptions{
		SourceID:      ref.sourceID,
		DestinationID: rec.DestinationID,
		Table:         rec.Table,
		MaxCount:      remaining,
		// Unique per run: the next run reclaims what this one leaves.
		Consumer: m.worker + "-r" + strconv.FormatInt(rec.ID, 10) + "-" + strconv.Itoa(rec.Runs),
		Classify: sinkrunner.ErrorClass,
		Progress: func(r dlq.ReplayResult) {
			mu.Lock()
			run = r
			mu.Unlock()
		},
	}, ref.runner.Replay)
	cancel()
	<-renewed
	mu.Lock()
	run = res
	mu.Unlock()
	replayed, failed := totals()
	switch {
	case lost != nil:
		log.Warn("lost the claim on a dlq recovery; another sink continues it", "error", lost)
		return false
	case err == nil:
		log.Info("dead-letter queue replayed", "replayed", res.Replayed, "failed_again", res.Failed)
		record(func(c context.Context) error {
			return m.recoveries.FinishDLQRecovery(c, rec.ID, m.worker, configstore.RecoveryCompleted, replayed, failed, "")
		})
		return true
	case ctx.Err() != nil || errors.Is(err, sinkrunner.ErrStopped):
		// This sink, or the runner of the pipeline destination, is
		// stopping: another run continues; the entries left pending are
		// reclaimed by it.
		log.Info("dlq recovery interrupted; it stays pending", "error", err)
		record(func(c context.Context) error {
			return m.recoveries.ReleaseDLQRecovery(c, rec.ID, m.worker, replayed, failed, "interrupted ("+err.Error()+"); it continues when the sink runs again")
		})
		return false
	default:
		log.Warn("dlq recovery failed", "error", err)
		msg := err.Error() + "; the entries not replayed stay in the dead-letter queue and the next recovery retries them"
		record(func(c context.Context) error {
			return m.recoveries.FinishDLQRecovery(c, rec.ID, m.worker, configstore.RecoveryFailed, replayed, failed, msg)
		})
		return false
	}
}
