package configstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestDestinationProgress checks progress reports: the applied commit LSN
// never moves back, throughput is overwritten, the states list pages over
// every pipeline destination, and LagSources picks the newer of capture's
// confirmed position and the last good WAL check.
func TestDestinationProgress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testkit.StartPostgres(t)
	s, _ := openStore(t, pg)
	src, err := s.CreateSource(ctx, SourceInput{Name: "src", Host: "h", Port: 5432, Database: "d", User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := s.CreateDestination(ctx, DestinationInput{Name: "d1", Type: "duckdb", Config: map[string]any{"path": "a"}})
	d2, _ := s.CreateDestination(ctx, DestinationInput{Name: "d2", Type: "duckdb", Config: map[string]any{"path": "b"}})
	p1, err := s.CreatePipeline(ctx, PipelineInput{Name: "p1", SourceID: src.ID, DestinationIDs: []int64{d1.ID, d2.ID}, Tables: []string{"public.a"}})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := s.CreatePipeline(ctx, PipelineInput{Name: "p2", SourceID: src.ID, DestinationIDs: []int64{d1.ID}, Tables: []string{"public.a"}})
	if err != nil {
		t.Fatal(err)
	}

	t1 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	at := t1.Add(time.Second)
	set := func(lsn string, commit time.Time, tput float64) {
		t.Helper()
		err := s.SetDestinationProgress(ctx, DestinationProgress{PipelineID: p1.ID, DestinationID: d1.ID,
			AppliedCommitLSN: lsn, AppliedCommitTime: commit, Throughput: tput, At: at})
		if err != nil {
			t.Fatalf("set progress %s: %v", lsn, err)
		}
	}
	get := func() DestinationProgress {
		t.Helper()
		sts, err := s.DestinationStates(ctx, p1.ID)
		if err != nil || len(sts) != 2 {
			t.Fatalf("states = %+v, %v", sts, err)
		}
		if sts[1].Progress.AppliedCommitLSN != "" || !sts[1].Progress.At.IsZero() {
			t.Fatalf("unreported destination has progress %+v", sts[1].Progress)
		}
		return sts[0].Progress
	}
	if got := get(); got.AppliedCommitLSN != "" || !got.AppliedCommitTime.IsZero() || got.Throughput != 0 {
		t.Fatalf("progress before any report = %+v", got)
	}
	set("0/16B3748", t1, 12.5)
	if got := get(); got.AppliedCommitLSN != "0/16B3748" || !got.AppliedCommitTime.Equal(t1) || got.Throughput != 12.5 || !got.At.Equal(at) {
		t.Fatalf("progress = %+v", got)
	}
	// An older LSN (a redelivery after a sink restart) keeps LSN and time.
	set("0/16B0000", t1.Add(-time.Hour), 3)
	if got := get(); got.AppliedCommitLSN != "0/16B3748" || !got.AppliedCommitTime.Equal(t1) || got.Throughput != 3 {
		t.Fatalf("progress after an older report = %+v", got)
	}
	// No LSN (throughput decaying while idle) keeps them too.
	set("", time.Time{}, 0)
	if got := get(); got.AppliedCommitLSN != "0/16B3748" || !got.AppliedCommitTime.Equal(t1) || got.Throughput != 0 {
		t.Fatalf("progress after an idle report = %+v", got)
	}
	// A newer one (compared as LSNs, not as text: 1/0 > 0/FFFFFFFF).
	set("0/FFFFFFFF", t1.Add(time.Minute), 1)
	set("1/0", t1.Add(2*time.Minute), 1)
	if got := get(); got.AppliedCommitLSN != "1/0" || !got.AppliedCommitTime.Equal(t1.Add(2*time.Minute)) {
		t.Fatalf("progress after newer reports = %+v", got)
	}
	if err := s.SetDestinationProgress(ctx, DestinationProgress{PipelineID: p1.ID, DestinationID: d1.ID, AppliedCommitLSN: "nope"}); err == nil {
		t.Fatal("a malformed LSN was accepted")
	}
	if err := s.SetDestinationProgress(ctx, DestinationProgress{PipelineID: p2.ID, DestinationID: d2.ID, AppliedCommitLSN: "0/1"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("progress of a pair not in the pipeline: %v", err)
	}
	// A state report keeps the progress.
	if err := s.SetDestinationState(ctx, DestinationState{PipelineID: p1.ID, DestinationID: d1.ID, Health: HealthError, LastError: "down"}); err != nil {
		t.Fatal(err)
	}
	if got := get(); got.AppliedCommitLSN != "1/0" {
		t.Fatalf("progress after a state report = %+v", got)
	}

	all, total, err := s.ListDestinationStates(ctx, Page{Limit: 2})
	if err != nil || total != 3 || len(all) != 2 || all[0].PipelineID != p1.ID || all[1].DestinationID != d2.ID {
		t.Fatalf("list page 1 = %+v, %d, %v", all, total, err)
	}
	if all[0].Progress.AppliedCommitLSN != "1/0" || all[0].Health != HealthError {
		t.Fatalf("listed state = %+v", all[0])
	}
	all, _, err = s.ListDestinationStates(ctx, Page{Limit: 2, Offset: 2})
	if err != nil || len(all) != 1 || all[0].PipelineID != p2.ID {
		t.Fatalf("list page 2 = %+v, %v", all, err)
	}

	// Source positions.
	lag, err := s.LagSources(ctx, []int64{src.ID, 987654})
	if err != nil || len(lag) != 0 {
		t.Fatalf("positions before any report = %+v, %v", lag, err)
	}
	if err := s.SetSourceState(ctx, SourceState{SourceID: src.ID, State: "RUNNING", ConfirmedLSN: "0/3000"}); err != nil {
		t.Fatal(err)
	}
	lag, err = s.LagSources(ctx, []int64{src.ID})
	if err != nil || lag[src.ID].LSN != 0x3000 || lag[src.ID].From != "confirmed" {
		t.Fatalf("positions = %+v, %v", lag, err)
	}
	// The newest good WAL check wins when it is ahead; failed checks and
	// older samples are ignored.
	if _, err := s.pool.Exec(ctx, `INSERT INTO wal_metrics (source_id, at, wal_lsn) VALUES ($1, now() - interval '1 minute', '0/9000'), ($1, now(), '0/5000')`, src.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO wal_metrics (source_id, at, error) VALUES ($1, now() + interval '1 second', 'unreachable')`, src.ID); err != nil {
		t.Fatal(err)
	}
	lag, err = s.LagSources(ctx, []int64{src.ID})
	if err != nil || lag[src.ID].LSN != 0x5000 || lag[src.ID].From != "wal_check" {
		t.Fatalf("positions with a WAL check = %+v, %v", lag, err)
	}
}
