package sink

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/metrics"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// ProgressStore records how far each pipeline destination has applied its
// source's changes; *configstore.Store implements it. It is optional: a
// ConfigStore that does not implement it gets no progress reports.
type ProgressStore interface {
	SetDestinationProgress(ctx context.Context, p configstore.DestinationProgress) error
}

// throughputWindow is the span throughput is averaged over.
const throughputWindow = 60

// progress is the sinkrunner.Observer the manager gives its runners. It
// passes every call on to next (the process's metrics) and keeps, per
// pipeline destination, the newest change applied and how many changes
// were applied in each of the last 60 seconds. flush writes that to the
// store at most once per call (the manager calls it every second), so a
// sink applying many tiny batches does not write the config DB per batch.
//
// BatchApplied is called after the destination transaction committed and
// before the batch is acked: what it records is durable in the destination
// (an unacked batch is redelivered and applied again, harmlessly).
type progress struct {
	next sinkrunner.Observer // nil: none
	now  func() time.Time

	mu    sync.Mutex
	pairs map[pairKey]*pairProgress
}

type pairProgress struct {
	// newest is the version of the newest change applied, with its commit
	// LSN text and commit time; zero until one was.
	newest     contracts.Version
	lsn        string
	commitTime time.Time
	// counts[i] is the changes applied in the second secs[i] (unix time).
	counts [throughputWindow]int64
	secs   [throughputWindow]int64
	// dirty: a change was applied since the last report. reported is the
	// throughput last reported, so an idle pair keeps reporting until its
	// throughput has decayed to 0, then stops.
	dirty    bool
	reported float64
}

var (
	_ sinkrunner.Observer      = (*progress)(nil)
	_ sinkrunner.GuardObserver = (*progress)(nil)
	_ sinkrunner.GuardObserver = (*metrics.Metrics)(nil)
)

func newProgress(next sinkrunner.Observer) *progress {
	return &progress{next: next, now: time.Now, pairs: map[pairKey]*pairProgress{}}
}

// BatchApplied records one committed Apply.
func (p *progress) BatchApplied(pipelineID, destinationID int64, changes []contracts.Change, took time.Duration) {
	if p.next != nil {
		p.next.BatchApplied(pipelineID, destinationID, changes, took)
	}
	if len(changes) == 0 {
		return
	}
	// The newest change of the batch by version; a change whose commit LSN
	// does not parse cannot have been applied (the runner's decode checks
	// it), so it is skipped.
	best := -1
	var bestV contracts.Version
	for i := range changes {
		v, err := changes[i].Version()
		if err != nil {
			continue
		}
		if best < 0 || bestV.Less(v) {
			best, bestV = i, v
		}
	}
	sec := p.now().Unix()
	p.mu.Lock()
	defer p.mu.Unlock()
	key := pairKey{PipelineID: pipelineID, DestinationID: destinationID}
	pp := p.pairs[key]
	if pp == nil {
		pp = &pairProgress{}
		p.pairs[key] = pp
	}
	i := sec % throughputWindow
	if pp.secs[i] != sec {
		pp.secs[i], pp.counts[i] = sec, 0
	}
	pp.counts[i] += int64(len(changes))
	pp.dirty = true
	// A redelivered or replayed batch can be older than what was already
	// applied: the newest position never moves back.
	if best >= 0 && (pp.lsn == "" || pp.newest.Less(bestV)) {
		pp.newest = bestV
		pp.lsn = changes[best].Source.CommitLSN
		pp.commitTime = changes[best].Source.CommitTime
	}
}

// ApplyFailed passes the failure on.
func (p *progress) ApplyFailed(pipelineID, destinationID int64, class string) {
	if p.next != nil {
		p.next.ApplyFailed(pipelineID, destinationID, class)
	}
}

// TombstonesCollected passes a collection on to the metrics, when next
// records them.
func (p *progress) TombstonesCollected(pipelineID, destinationID int64, table string, remaining, collected int64, floorLSN uint64) {
	if g, ok := p.next.(sinkrunner.GuardObserver); ok {
		g.TombstonesCollected(pipelineID, destinationID, table, remaining, collected, floorLSN)
	}
}

// throughput is the changes per second of pp over the window ending at
// sec. Callers hold p.mu.
func (pp *pairProgress) throughput(sec int64) float64 {
	var n int64
	for i := range pp.counts {
		if pp.secs[i] > sec-throughputWindow && pp.secs[i] <= sec {
			n += pp.counts[i]
		}
	}
	return float64(n) / throughputWindow
}

// due returns the reports to write now: pairs that applied changes since
// the last report, or whose throughput still has to decay to what was
// last reported. They are marked reported; failed marks them again.
func (p *progress) due() []configstore.DestinationProgress {
	now := p.now().UTC()
	sec := now.Unix()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []configstore.DestinationProgress
	for key, pp := range p.pairs {
		tput := pp.throughput(sec)
		if !pp.dirty && tput == pp.reported {
			continue
		}
		out = append(out, configstore.DestinationProgress{PipelineID: key.PipelineID, DestinationID: key.DestinationID,
			AppliedCommitLSN: pp.lsn, AppliedCommitTime: pp.commitTime, Throughput: tput, At: now})
		pp.dirty, pp.reported = false, tput
	}
	return out
}

// failed marks a report as not written, so the next flush repeats it.
func (p *progress) failed(key pairKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pp := p.pairs[key]; pp != nil {
		pp.dirty = true
	}
}

// forget drops a pair that is no longer in its pipeline.
func (p *progress) forget(key pairKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pairs, key)
}

// flush writes the due reports. A pair the store says is gone is
// forgotten; any other failure is retried on the next flush.
func (p *progress) flush(ctx context.Context, store ProgressStore, log *slog.Logger) {
	for _, r := range p.due() {
		key := pairKey{PipelineID: r.PipelineID, DestinationID: r.DestinationID}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := store.SetDestinationProgress(wctx, r)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, configstore.ErrNotFound):
			p.forget(key)
		default:
			p.failed(key)
			if ctx.Err() == nil {
				log.Warn("report destination progress", "pipeline", r.PipelineID, "destination", r.DestinationID, "error", err)
			}
		}
	}
}

// run flushes every interval until ctx ends, then once more so that the
// last batches applied before a shutdown are recorded.
func (p *progress) run(ctx context.Context, store ProgressStore, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			p.flush(fctx, store, log)
			cancel()
			return
		case <-t.C:
			p.flush(ctx, store, log)
		}
	}
}
