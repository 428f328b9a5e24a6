package configstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

func TestDLQRecoveries(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	s, _ := openStore(t, pg)
	ctx := context.Background()
	src, err := s.CreateSource(ctx, SourceInput{Name: "src", Host: "h", Port: 5432, Database: "d", User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	var dests []int64
	for _, name := range []string{"d1", "d2", "d3"} {
		d, err := s.CreateDestination(ctx, DestinationInput{Name: name, Type: "duckdb", Config: map[string]any{"path": name}})
		if err != nil {
			t.Fatal(err)
		}
		dests = append(dests, d.ID)
	}
	p, err := s.CreatePipeline(ctx, PipelineInput{Name: "p", SourceID: src.ID, DestinationIDs: dests[:2], Tables: []string{"public.t"}})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := s.CreatePipeline(ctx, PipelineInput{Name: "p2", SourceID: src.ID, DestinationIDs: dests[:1], Tables: []string{"public.t"}})
	if err != nil {
		t.Fatal(err)
	}
	serving := []PipelineDestination{{p.ID, dests[0]}, {p.ID, dests[1]}, {p2.ID, dests[0]}}

	r, err := s.CreateDLQRecovery(ctx, DLQRecoveryInput{PipelineID: p.ID, DestinationID: dests[0], Table: "public.t", MaxCount: 10})
	if err != nil || r.ID == 0 || r.Status != RecoveryPending || r.Table != "public.t" || r.MaxCount != 10 || !r.StartedAt.IsZero() {
		t.Fatalf("created = %+v, %v", r, err)
	}
	var ce *ConflictError
	if _, err := s.CreateDLQRecovery(ctx, DLQRecoveryInput{PipelineID: p.ID, DestinationID: dests[0]}); !errors.As(err, &ce) {
		t.Fatalf("second unfinished recovery: %v, want a conflict", err)
	}
	if _, err := s.CreateDLQRecovery(ctx, DLQRecoveryInput{PipelineID: p.ID, DestinationID: dests[2]}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("destination not in the pipeline: %v, want ErrNotFound", err)
	}
	other, err := s.CreateDLQRecovery(ctx, DLQRecoveryInput{PipelineID: p2.ID, DestinationID: dests[0]})
	if err != nil || other.Table != "" || other.MaxCount != 0 {
		t.Fatalf("recovery on p2 = %+v, %v", other, err)
	}

	// Paused pipelines are not claimed.
	if _, ok, err := s.ClaimDLQRecovery(ctx, "w1", time.Minute, serving); ok || err != nil {
		t.Fatalf("claim with paused pipelines: ok %v, %v", ok, err)
	}
	for _, id := range []int64{p.ID, p2.ID} {
		if _, err := s.SetPipelineStatus(ctx, id, StatusStart); err != nil {
			t.Fatal(err)
		}
	}
	// Only pipeline destinations the worker serves.
	if _, ok, _ := s.ClaimDLQRecovery(ctx, "w1", time.Minute, serving[1:2]); ok {
		t.Fatal("claimed a recovery of a pipeline destination the worker does not serve")
	}
	// Two workers race: one destination, one claim.
	var wg sync.WaitGroup
	claimed := make([]DLQRecovery, 2)
	oks := make([]bool, 2)
	for i, w := range []string{"w1", "w2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			claimed[i], oks[i], err = s.ClaimDLQRecovery(ctx, w, time.Minute, serving)
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if oks[0] == oks[1] {
		t.Fatalf("claims = %v: want exactly one (both recoveries are on destination %d)", oks, dests[0])
	}
	got := claimed[0]
	worker := "w1"
	if oks[1] {
		got, worker = claimed[1], "w2"
	}
	if got.ID != r.ID || got.Status != RecoveryRunning || got.Worker != worker || got.Runs != 1 ||
		got.StartedAt.IsZero() || time.Until(got.LeaseUntil) < 50*time.Second {
		t.Fatalf("claimed = %+v", got)
	}
	if err := s.RenewDLQRecovery(ctx, r.ID, worker, time.Minute, 3, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.RenewDLQRecovery(ctx, r.ID, "intruder", time.Minute, 0, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("renew by another worker: %v", err)
	}
	// Released: claimable again with its progress.
	if err := s.ReleaseDLQRecovery(ctx, r.ID, worker, 3, 1, "sink stopping"); err != nil {
		t.Fatal(err)
	}
	again, ok, err := s.ClaimDLQRecovery(ctx, "w3", time.Millisecond, serving)
	if err != nil || !ok || again.ID != r.ID || again.Runs != 2 || again.Replayed != 3 || again.Failed != 1 {
		t.Fatalf("claim after release = %+v %v %v", again, ok, err)
	}
	// Its lease (1ms) expires: another worker takes it over. Polled: a
	// claim finds nothing until the config DB's clock passes the lease.
	var taken DLQRecovery
	for deadline := time.Now().Add(10 * time.Second); ; {
		taken, ok, err = s.ClaimDLQRecovery(ctx, "w4", time.Minute, serving)
		if err != nil || ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond) // paces the polling
	}
	if err != nil || !ok || taken.ID != r.ID || taken.Worker != "w4" || taken.Runs != 3 {
		t.Fatalf("claim of an expired lease = %+v %v %v", taken, ok, err)
	}
	if err := s.FinishDLQRecovery(ctx, r.ID, "w3", RecoveryCompleted, 9, 9, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("finish by the worker that lost the lease: %v", err)
	}
	if err := s.FinishDLQRecovery(ctx, r.ID, "w4", RecoveryCompleted, 5, 1, ""); err != nil {
		t.Fatal(err)
	}
	done, err := s.GetDLQRecovery(ctx, r.ID)
	if err != nil || done.Status != RecoveryCompleted || done.Replayed != 5 || done.FinishedAt.IsZero() || !done.LeaseUntil.IsZero() {
		t.Fatalf("finished = %+v, %v", done, err)
	}
	// The destination is free: the other pipeline's recovery is claimed.
	next, ok, err := s.ClaimDLQRecovery(ctx, "w1", time.Minute, serving)
	if err != nil || !ok || next.ID != other.ID {
		t.Fatalf("next claim = %+v %v %v", next, ok, err)
	}
	if err := s.FinishDLQRecovery(ctx, other.ID, "w1", RecoveryFailed, 0, 0, "destination down"); err != nil {
		t.Fatal(err)
	}
	// A finished recovery does not block a new one.
	if _, err := s.CreateDLQRecovery(ctx, DLQRecoveryInput{PipelineID: p.ID, DestinationID: dests[0]}); err != nil {
		t.Fatal(err)
	}
	// Removing the destination from the pipeline removes its recoveries.
	if _, err := s.UpdatePipeline(ctx, p.ID, PipelineInput{Name: "p", SourceID: src.ID, DestinationIDs: dests[1:2], Tables: []string{"public.t"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDLQRecovery(ctx, r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("recovery of a removed pipeline destination: %v", err)
	}
	if _, err := s.GetDLQRecovery(ctx, 987654); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown recovery: %v", err)
	}
}
