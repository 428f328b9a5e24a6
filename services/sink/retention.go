package sink

import (
	"context"
	"sort"
	"time"

	"github.com/rosettacdc/rosetta/pkg/dlq"
)

// TrimObserver counts the dead letters the retention removed;
// *metrics.Metrics implements it.
type TrimObserver interface {
	DLQTrimmed(sourceID, destinationID int64, table, reason string, n int64)
}

// queueKey names the dead-letter queues of one source for one destination
// (pipelines with the same source and destination share them).
type queueKey struct {
	SourceID      int64
	DestinationID int64
}

// setQueues records the queues of the pipeline destinations this manager
// runs, started or paused, for the retention loop.
func (m *Manager) setQueues(qs map[queueKey]bool) {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	m.queues = qs
}

func (m *Manager) queueList() []queueKey {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	out := make([]queueKey, 0, len(m.queues))
	for k := range m.queues {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].SourceID != out[j].SourceID {
			return out[i].SourceID < out[j].SourceID
		}
		return out[i].DestinationID < out[j].DestinationID
	})
	return out
}

// runRetention trims the queues of this manager's destinations every
// TrimInterval until ctx ends.
//
// The sink trims because it writes the queues and runs per destination:
// every destination's queues are trimmed by the instances that run it,
// also where no API runs. Several instances of one destination trimming at
// once is harmless: each batch is one atomic script, and each instance
// counts only the entries its own calls removed.
func (m *Manager) runRetention(ctx context.Context) {
	tick := time.NewTicker(m.cfg.DLQ.TrimInterval)
	defer tick.Stop()
	for {
		m.trimOnce(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// trimOnce applies the retention to every queue once, as of now.
func (m *Manager) trimOnce(ctx context.Context, now time.Time) {
	ret := m.cfg.DLQ.Retention
	for _, k := range m.queueList() {
		trimmed, err := m.dlq.Trim(ctx, k.SourceID, k.DestinationID, ret, now)
		for _, t := range trimmed {
			m.log.Info("dead letters trimmed by retention", "source", k.SourceID, "destination", k.DestinationID, "table", t.Table,
				"by_age", t.ByAge, "by_entries", t.ByEntries, "max_age", ret.MaxAge.String(), "max_entries", ret.MaxEntries)
			if o := m.cfg.DLQ.TrimObserver; o != nil {
				if t.ByAge > 0 {
					o.DLQTrimmed(k.SourceID, k.DestinationID, t.Table, dlq.TrimAge, t.ByAge)
				}
				if t.ByEntries > 0 {
					o.DLQTrimmed(k.SourceID, k.DestinationID, t.Table, dlq.TrimEntries, t.ByEntries)
				}
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("dlq retention: trim failed; next try in one interval", "source", k.SourceID, "destination", k.DestinationID, "error", err)
			}
			return
		}
	}
}
