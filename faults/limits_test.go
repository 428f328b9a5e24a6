package faults

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
)

// (item 8) The slot is invalidated by max_slot_wal_keep_size while capture
// is down. Capture must report a terminal, explained error and neither
// recreate the slot nor advance anything; the documented recovery (pause,
// drop the slot, start, backfill every table, delete what the backfill did
// not rewrite) must then make the destination equal to the source again.
func testSlotInvalidated(t *testing.T) {
	w, wl := setup(t, worldOptions{}, false, 8)
	time.Sleep(3 * time.Second)

	// Only now: a slot kept this small could also be invalidated while
	// capture runs, by a checkpoint during a burst.
	w.srcPG.Exec(t, w.sourceDB, "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
	w.srcPG.Exec(t, w.sourceDB, "SELECT pg_reload_conf()")
	w.capture.kill()
	before, err := w.slot()
	if err != nil {
		t.Fatal(err)
	}
	// The workload keeps writing; more WAL, segment switches and a
	// checkpoint make PostgreSQL remove WAL the slot needs.
	deadline := time.Now().Add(60 * time.Second)
	for {
		w.srcPG.Exec(t, w.sourceDB, `INSERT INTO noise (v) SELECT repeat('x', 500) FROM generate_series(1, 2000)`)
		w.srcPG.Exec(t, w.sourceDB, "SELECT pg_switch_wal()")
		w.srcPG.Exec(t, w.sourceDB, "CHECKPOINT")
		s, err := w.slot()
		if err == nil && s.walStatus == "lost" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not invalidated within 60s (wal_status %q)", s.walStatus)
		}
	}
	lastSeq := w.streamLastSeq()
	t.Logf("slot %s invalidated at confirmed %s; capture restarts", before.name, fmtLSN(before.confirmed))
	w.capture.start()

	var state, msg string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		state, msg = w.sourceState()
		if state == "ERROR" && strings.Contains(msg, "invalidated") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /pipelines/%d: source %s %q within 60s, want ERROR saying the slot was invalidated", w.pipelineID, state, msg)
		}
	}
	t.Logf("source state: %s: %s", state, msg)
	for _, want := range []string{before.name, "max_slot_wal_keep_size", "pg_drop_replication_slot", "backfill"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the source's error does not say %q: %s", want, msg)
		}
	}
	// Terminal: capture neither retries into a new slot nor publishes
	// nor confirms anything.
	time.Sleep(8 * time.Second)
	after, err := w.slot()
	if err != nil {
		t.Fatal(err)
	}
	if after.name != before.name || after.walStatus != "lost" || after.confirmed != before.confirmed {
		t.Errorf("slot changed while invalidated: was %s at %s, now %s %q at %s", before.name, fmtLSN(before.confirmed),
			after.name, after.walStatus, fmtLSN(after.confirmed))
	}
	if n := w.slotCount(); n != 1 {
		t.Errorf("%d replication slots on the source, want the invalidated one only", n)
	}
	if seq := w.streamLastSeq(); seq != lastSeq {
		t.Errorf("stream grew from %d to %d messages while the slot was invalidated", lastSeq, seq)
	}
	if st, m := w.sourceState(); st != "ERROR" {
		t.Errorf("source state %s %q 8s later, want ERROR still", st, m)
	}

	// The recovery of docs/guarantees.md.
	w.mustCall("POST", fmt.Sprintf("/pipelines/%d/pause", w.pipelineID), nil, nil)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if s, err := w.slot(); err == nil && !s.active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot still active 30s after the pause")
		}
	}
	w.srcPG.Exec(t, w.sourceDB, "SELECT pg_drop_replication_slot($1)", before.name)
	w.srcPG.Exec(t, w.sourceDB, "ALTER SYSTEM RESET max_slot_wal_keep_size")
	w.srcPG.Exec(t, w.sourceDB, "SELECT pg_reload_conf()")
	// Every change committed from here on is captured by the new slot;
	// every row the destination still has from before is older.
	restart, err := w.currentLSN()
	if err != nil {
		t.Fatal(err)
	}
	w.mustCall("POST", fmt.Sprintf("/pipelines/%d/start", w.pipelineID), nil, nil)
	w.waitStreaming()
	backfill := newProc(t, "backfill", w.env, bins.rosetta, "backfill")
	backfill.start()
	var jobs []int64
	for _, table := range []string{"public.accounts", "public.lines"} {
		var job struct{ ID int64 }
		w.mustCall("POST", fmt.Sprintf("/pipelines/%d/backfill", w.pipelineID), map[string]any{"table": table}, &job)
		jobs = append(jobs, job.ID)
	}
	for _, id := range jobs {
		w.waitJob(id, 3*time.Minute)
	}
	if st, m := w.sourceState(); st != "RUNNING" {
		t.Errorf("source state %s %q after the recovery, want RUNNING", st, m)
	}
	n := wl.stop()
	t.Logf("workload committed %d transactions", n)
	w.drain(120 * time.Second)
	// Rows the backfill did not rewrite and no change touched since the
	// new slot began are keys deleted at the source during the gap.
	removed := w.deleteOlderThan(restart)
	t.Logf("removed %d destination rows older than the new slot (%s): deleted at the source while the slot was lost", removed, fmtLSN(restart))
	w.assertEqual()
}

// slotCount is the number of (non-temporary) replication slots of the
// source database.
func (w *world) slotCount() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.srcPG.DSN(w.sourceDB))
	if err != nil {
		return -1
	}
	defer conn.Close(ctx)
	var n int
	if conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE database = $1 AND NOT temporary`, w.sourceDB).Scan(&n) != nil {
		return -1
	}
	return n
}

// waitJob waits until backfill job id is COMPLETED.
func (w *world) waitJob(id int64, timeout time.Duration) {
	w.t.Helper()
	var job struct {
		Status     string `json:"status"`
		RowsCopied int64  `json:"rows_copied"`
		Error      string `json:"error"`
	}
	for deadline := time.Now().Add(timeout); ; time.Sleep(500 * time.Millisecond) {
		if _, err := w.call("GET", fmt.Sprintf("/backfill/%d", id), nil, &job); err == nil {
			switch job.Status {
			case "COMPLETED":
				w.t.Logf("backfill job %d: %d rows", id, job.RowsCopied)
				return
			case "FAILED", "CANCELLED":
				w.t.Fatalf("backfill job %d %s: %s", id, job.Status, job.Error)
			}
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("backfill job %d %s after %s (%s)", id, job.Status, timeout, job.Error)
		}
	}
}

// deleteOlderThan deletes the destination rows of the watched tables whose
// version is older than lsn, and returns how many it deleted.
func (w *world) deleteOlderThan(lsn uint64) int64 {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.dstPG.DSN(w.destDB))
	if err != nil {
		w.t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	for table := range watched {
		// A watched table no change ever reached has no destination table
		// (assertEqual counts it as empty too).
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{table}.Sanitize()).Scan(&exists); err != nil {
			w.t.Fatalf("look up %s: %v", table, err)
		}
		if !exists {
			continue
		}
		tag, err := conn.Exec(ctx, "DELETE FROM "+pgx.Identifier{table}.Sanitize()+" WHERE _rosetta_lsn < $1", int64(lsn))
		if err != nil {
			w.t.Fatalf("delete stale rows of %s: %v", table, err)
		}
		n += tag.RowsAffected()
	}
	return n
}

// (item 7) The destination is down and writes continue until the source's
// stream (ROSETTA_STREAM_MAX_BYTES, here 1 MiB) is full: JetStream refuses
// further changes rather than discarding any, capture stops confirming
// (the slot stops advancing while the source's WAL grows) and the pipeline
// says why and what to do. With the destination back, everything drains.
func testStreamFull(t *testing.T) {
	const maxBytes = 1 << 20
	w, wl := setup(t, worldOptions{ownDestCluster: true, env: []string{fmt.Sprintf("ROSETTA_STREAM_MAX_BYTES=%d", maxBytes)}}, false, 9)
	time.Sleep(3 * time.Second)
	if err := w.dstPG.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	var state, msg string
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		state, msg = w.sourceState()
		if state == "ERROR" && strings.Contains(msg, "is full") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /pipelines/%d: source %s %q 90s into the outage, want ERROR saying the stream is full", w.pipelineID, state, msg)
		}
	}
	t.Logf("%s into the outage the source state is %s: %s", time.Since(down).Round(time.Second), state, msg)
	for _, want := range []string{"ROSETTA_STREAM_MAX_BYTES", "stops confirming", "destination"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the source's error does not say %q: %s", want, msg)
		}
	}
	if info := w.streamInfo(); info != nil {
		t.Logf("stream: %d messages, %d bytes (limit %d)", info.State.Msgs, info.State.Bytes, maxBytes)
	}
	// The slot must stand still below the first change JetStream refused
	// while the source writes on. (It may still creep up to that change's
	// transaction: a keepalive while nothing is in flight confirms the
	// WAL PostgreSQL decoded so far, and that transaction commits after
	// it, so it is still sent after a restart.)
	time.Sleep(3 * time.Second)
	s1, err := w.slot()
	if err != nil {
		t.Fatal(err)
	}
	wal1, _ := w.currentLSN()
	// Capture retries the refused change on a new session; the state
	// names the refused change whenever it is read between sessions.
	refusal := func() string {
		var msg string
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if _, msg = w.sourceState(); refusedCommit(msg) != 0 {
				break
			}
		}
		return msg
	}
	msg1 := refusal()
	// Each retry session is refused again at once: the source must stay
	// ERROR throughout, not flash RUNNING while a session starts.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if st, m := w.sourceState(); st != "ERROR" {
			t.Errorf("source state %s %q while the stream is full, want ERROR throughout", st, m)
			break
		}
	}
	s2, err := w.slot()
	if err != nil {
		t.Fatal(err)
	}
	wal2, _ := w.currentLSN()
	msg2 := refusal()
	refused1, refused2 := refusedCommit(msg1), refusedCommit(msg2)
	if refused1 == 0 || refused1 != refused2 {
		t.Errorf("capture was not stuck on one refused change: %q then %q", msg1, msg2)
	}
	if s2.confirmed >= refused2 {
		t.Errorf("slot confirmed %s, at or past the commit %s of a change the full stream refused", fmtLSN(s2.confirmed), fmtLSN(refused2))
	}
	if wal2 <= wal1 {
		t.Errorf("the source wrote no WAL during the check (%s, %s): the workload stopped?", fmtLSN(wal1), fmtLSN(wal2))
	}
	t.Logf("slot at %s then %s, below the refused change's commit %s, while the source's WAL went from %s to %s",
		fmtLSN(s1.confirmed), fmtLSN(s2.confirmed), fmtLSN(refused2), fmtLSN(wal1), fmtLSN(wal2))
	if h, reason := w.destinationHealth(); h != "ERROR" {
		t.Errorf("destination health %s %q while down", h, reason)
	}
	// The backlog is all in the source's WAL now; capture can move only a
	// stream's worth (1 MiB) per session before it is refused again, so
	// the workload pauses until the destination is back, to keep the
	// catch-up short.
	wl.paused.Store(true)
	if err := w.dstPG.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	wl.paused.Store(false)
	time.Sleep(3 * time.Second)
	finish(t, w, wl, 240*time.Second)
	if st, m := w.sourceState(); st != "RUNNING" {
		t.Errorf("source state after draining = %s %q, want RUNNING", st, m)
	}
}

// streamInfo is the source stream's info (nil on error).
func (w *world) streamInfo() *jetstream.StreamInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := w.js.Stream(ctx, contracts.StreamName(w.sourceID))
	if err != nil {
		return nil
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil
	}
	return info
}

var msgIDRE = regexp.MustCompile(`\d+:([0-9A-F]+/[0-9A-F]+):`)

// refusedCommit is the commit LSN in the Nats-Msg-Id of the publish an
// error names (source:commit:seq for a message of version 1,
// source:commit:table:partition:chunk for version 2), 0 if none.
func refusedCommit(msg string) uint64 {
	m := msgIDRE.FindAllStringSubmatch(msg, -1)
	if len(m) == 0 {
		return 0
	}
	l, err := parseLSN(m[len(m)-1][1])
	if err != nil {
		return 0
	}
	return l
}
