package sink

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
)

type progressRecorder struct {
	mu      sync.Mutex
	reports []configstore.DestinationProgress
	gone    map[pairKey]bool
}

func (r *progressRecorder) SetDestinationProgress(_ context.Context, p configstore.DestinationProgress) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone[pairKey{p.PipelineID, p.DestinationID}] {
		return fmt.Errorf("progress: %w", configstore.ErrNotFound)
	}
	r.reports = append(r.reports, p)
	return nil
}

func (r *progressRecorder) take() []configstore.DestinationProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reports
	r.reports = nil
	return out
}

// TestProgress checks what the sink reports per pipeline destination: the
// newest change applied (never an older one), throughput over the last
// minute decaying to 0 when idle, one report per flush however many
// batches, and nothing for an idle pair once reported.
func TestProgress(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	p := newProgress(nil)
	p.now = func() time.Time { return now }
	rec := &progressRecorder{gone: map[pairKey]bool{}}
	flush := func() []configstore.DestinationProgress {
		p.flush(context.Background(), rec, quietLog())
		return rec.take()
	}
	batch := func(lsns ...uint64) []contracts.Change {
		var out []contracts.Change
		for _, l := range lsns {
			c := change(contracts.OpCreate, 1, "t", l, int(l), "x")
			c.Source.CommitTime = time.Unix(int64(l), 0).UTC()
			out = append(out, c)
		}
		return out
	}

	if got := flush(); len(got) != 0 {
		t.Fatalf("reports before any batch: %+v", got)
	}
	// Many tiny batches in one second: one report, with the newest change.
	p.BatchApplied(1, 2, batch(100, 300, 200), time.Millisecond)
	for i := 0; i < 57; i++ {
		p.BatchApplied(1, 2, batch(150), time.Millisecond)
	}
	got := flush()
	if len(got) != 1 {
		t.Fatalf("reports = %+v", got)
	}
	r := got[0]
	if r.PipelineID != 1 || r.DestinationID != 2 || r.AppliedCommitLSN != contracts.FormatLSN(300) ||
		!r.AppliedCommitTime.Equal(time.Unix(300, 0)) || r.Throughput != 1 || !r.At.Equal(now) {
		t.Fatalf("report = %+v, want LSN %s, 60 changes/60s", r, contracts.FormatLSN(300))
	}
	if got := flush(); len(got) != 0 {
		t.Fatalf("a second flush in the same second reported again: %+v", got)
	}
	// Half a minute later the same 60 changes still count; a minute
	// later they no longer do: one report of 0, then silence.
	now = now.Add(30 * time.Second)
	if got := flush(); len(got) != 0 {
		t.Fatalf("idle pair with unchanged throughput reported: %+v", got)
	}
	now = now.Add(31 * time.Second)
	got = flush()
	if len(got) != 1 || got[0].Throughput != 0 || got[0].AppliedCommitLSN != contracts.FormatLSN(300) {
		t.Fatalf("decayed report = %+v", got)
	}
	if got := flush(); len(got) != 0 {
		t.Fatalf("idle pair reported after decaying: %+v", got)
	}
	// An older batch (a redelivery) is counted but keeps the position.
	p.BatchApplied(1, 2, batch(50), time.Millisecond)
	got = flush()
	if len(got) != 1 || got[0].AppliedCommitLSN != contracts.FormatLSN(300) || got[0].Throughput != 1.0/60 {
		t.Fatalf("report after an older batch = %+v", got)
	}
	// A pair the store no longer has is forgotten.
	rec.gone[pairKey{1, 2}] = true
	p.BatchApplied(1, 2, batch(400), time.Millisecond)
	if got := flush(); len(got) != 0 {
		t.Fatalf("reports of a removed pair: %+v", got)
	}
	p.mu.Lock()
	n := len(p.pairs)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("removed pair still tracked")
	}
}

// TestProgressConcurrent has runners of several pairs record while the
// manager flushes (run it with -race).
func TestProgressConcurrent(t *testing.T) {
	p := newProgress(nil)
	rec := &progressRecorder{gone: map[pairKey]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.run(ctx, rec, time.Millisecond, quietLog())
	}()
	var wg sync.WaitGroup
	for d := int64(1); d <= 4; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(1); i <= 500; i++ {
				p.BatchApplied(1, d, []contracts.Change{change(contracts.OpCreate, 1, "t", i, int(i), "x")}, 0)
			}
		}()
	}
	wg.Wait()
	cancel()
	<-done
	newest := map[int64]string{}
	for _, r := range rec.take() {
		newest[r.DestinationID] = r.AppliedCommitLSN
	}
	for d := int64(1); d <= 4; d++ {
		if newest[d] != contracts.FormatLSN(500) {
			t.Errorf("destination %d: last report %q, want %s (the final flush must record it)", d, newest[d], contracts.FormatLSN(500))
		}
	}
}
