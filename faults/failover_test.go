package faults

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/services/capture"
)

// The active capture is SIGKILLed under load while a second capture
// instance stands by: the standby takes the slot over (PostgreSQL admits one
// walsender per slot) and the destination ends equal to the source. The
// takeover time (kill to the slot streaming to the other instance) is
// logged.
func testSIGKILLActiveCapture(t *testing.T) {
	w, wl := setup(t, worldOptions{}, false, 21)
	w.waitStreaming()
	before := w.slotPID()
	if before == 0 {
		t.Fatal("no walsender on the slot after waitStreaming")
	}
	standby := newProc(t, "capture-2", w.env, bins.rosetta, "capture")
	standby.start()
	time.Sleep(3 * time.Second) // the standby retries the slot meanwhile
	if pid := w.slotPID(); pid != before {
		t.Fatalf("slot moved from walsender %d to %d while the active capture ran", before, pid)
	}

	w.capture.kill()
	killed := time.Now()
	deadline := killed.Add(60 * time.Second)
	for {
		if pid := w.slotPID(); pid != 0 && pid != before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the standby did not take the slot over within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(killed)
	t.Logf("takeover after SIGKILL of the active capture: %s", took.Round(10*time.Millisecond))
	checkTakeover(t, took)
	w.capture.start() // now the standby
	time.Sleep(3 * time.Second)
	finish(t, w, wl, 90*time.Second)
}

// checkTakeover fails the test when a standby took longer than two
// takeover intervals and a generous margin (for the session's setup on a
// loaded machine) to take the slot of a SIGKILLed capture: a behaviour
// bound, not a speed target. A standby that sat out an error backoff
// instead took 21.95 s (issue 19).
func checkTakeover(t *testing.T, took time.Duration) {
	t.Helper()
	if limit := 2*capture.DefaultConfig().TakeoverInterval + 8*time.Second; took > limit {
		t.Errorf("the standby took the slot %s after SIGKILL of the active capture, want within %s", took.Round(10*time.Millisecond), limit)
	}
}

// slotPID is the pid of the walsender streaming the source's slot, 0 when
// none does.
func (w *world) slotPID() int32 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.srcPG.DSN(w.sourceDB))
	if err != nil {
		return 0
	}
	defer conn.Close(ctx)
	var pid *int32
	err = conn.QueryRow(ctx, `SELECT r.active_pid FROM pg_replication_slots r
		JOIN pg_stat_activity a ON a.pid = r.active_pid AND a.backend_type = 'walsender'
		WHERE r.database = $1 AND NOT r.temporary LIMIT 1`, w.sourceDB).Scan(&pid)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) || pid == nil {
		return 0
	}
	return *pid
}

// The active capture's link to NATS stalls under load (nothing forwarded,
// nothing closed) while a standby capture reaches NATS directly: the active
// one cannot publish, ends its session and lets the slot go; the standby
// takes it over. Then the link is restored and everything converges. The
// time from the stall to the takeover is logged.
func testNATSStallActiveCapture(t *testing.T) {
	w, wl := setup(t, worldOptions{proxies: true}, false, 22)
	w.waitStreaming()
	before := w.slotPID()
	standby := newProc(t, "capture-2", w.env, bins.rosetta, "capture") // NATS without the proxy
	standby.start()
	time.Sleep(3 * time.Second)
	if pid := w.slotPID(); pid != before {
		t.Fatalf("slot moved from walsender %d to %d while the active capture ran", before, pid)
	}
	w.pxCaptureNATS.Stall()
	stalled := time.Now()
	deadline := stalled.Add(120 * time.Second)
	for {
		if pid := w.slotPID(); pid != 0 && pid != before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the standby did not take the slot over within 120s of the active capture's NATS link stalling")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("takeover after the active capture's NATS link stalled: %s", time.Since(stalled).Round(100*time.Millisecond))
	w.pxCaptureNATS.Resume()
	time.Sleep(3 * time.Second)
	finish(t, w, wl, 90*time.Second)
}
