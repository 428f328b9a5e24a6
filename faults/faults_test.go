package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// TestFaults runs every fault against its own deployment, at most three at
// once (each starts two or three PostgreSQL clusters and five processes).
func TestFaults(t *testing.T) {
	sem := make(chan struct{}, 3)
	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sem <- struct{}{}
			defer func() { <-sem }()
			start := time.Now()
			defer func() { t.Logf("%s took %s", name, time.Since(start).Round(time.Second)) }()
			f(t)
		})
	}
	// The longest first, so that it overlaps the others.
	run("NATSCluster", testNATSCluster)
	run("SIGSTOPSinkPastAckWait", testSIGSTOPSinkPastAckWait)
	run("SIGKILLCaptureMidTransaction", testSIGKILLCaptureMidTransaction)
	run("SIGKILLActiveCapture", testSIGKILLActiveCapture)
	run("NATSStallActiveCapture", testNATSStallActiveCapture)
	run("SIGTERMEachService", testSIGTERMEachService)
	run("SIGKILLSinkRepeatedly", testSIGKILLSinkRepeatedly)
	run("PartitionsSinkTakeover", testPartitionsSinkTakeover)
	run("SIGKILLSinkToastUnchanged", testSIGKILLSinkToastUnchanged)
	run("NATSKilledAndRestarted", testNATSKilledAndRestarted)
	run("SourceCrashImmediate", testSourceCrashImmediate)
	run("DestinationDown", testDestinationDown)
	run("IdleWatchedTablesBusyUnwatched", testIdleWatchedTablesBusyUnwatched)
	run("SlotInvalidated", testSlotInvalidated)
	run("StreamFull", testStreamFull)
	for i, name := range []string{"CaptureSource", "CaptureNATS", "SinkNATS", "SinkDestination"} {
		run("StallAndReset"+name, testLinkFault(name, uint64(11+i)))
	}
}

// setup starts a world with a running pipeline and a workload on it.
func setup(t *testing.T, opt worldOptions, audit bool, seed uint64) (*world, *workload) {
	t.Helper()
	w := newWorld(t, opt)
	w.createSource()
	if audit {
		w.startAudit()
	}
	w.createPipeline()
	return w, startWorkload(t, w.srcPG.DSN(w.sourceDB), seed)
}

func finish(t *testing.T, w *world, wl *workload, drainTimeout time.Duration) {
	t.Helper()
	n := wl.stop()
	t.Logf("workload committed %d transactions (%d failed attempts, last error %v)", n, wl.failed.Load(), wl.lastErr.Load())
	if n < 50 {
		t.Errorf("workload committed only %d transactions", n)
	}
	w.waitDrained(drainTimeout)
}

// (a) capture is SIGKILLed while a long transaction is open on the source,
// and again while it publishes that transaction's 35,000 changes (in
// messages of 1024); the stream must hold each change once (JetStream's
// dedup drops the re-published messages, cut the same way) and the
// destination must equal the source.
func testSIGKILLCaptureMidTransaction(t *testing.T) {
	w, wl := setup(t, worldOptions{}, true, 1)
	time.Sleep(2 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn := w.srcPG.Connect(t, w.sourceDB)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const big = `INSERT INTO accounts SELECT g, 'bulk ' || g, g, 1, true, NULL FROM generate_series(900000000, 900014999) g;
		INSERT INTO lines SELECT g, 1, 'bulk', 1 FROM generate_series(900000000, 900014999) g`
	for _, q := range strings.Split(big, ";") {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	w.capture.kill() // the long transaction is open, the workload's flow in flight
	time.Sleep(500 * time.Millisecond)
	w.capture.start()
	if _, err := tx.Exec(ctx, `UPDATE accounts SET version = 2 WHERE id BETWEEN 900000000 AND 900004999`); err != nil {
		t.Fatal(err)
	}
	before := w.streamLastSeq()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Kill capture again while it publishes the committed transaction:
	// once 8 of its messages (full ones, of contracts.ChunkChanges
	// changes; the workload's are small) are stored, about 8,000 changes.
	deadline := time.Now().Add(60 * time.Second)
	next, full := before+1, 0
	for full < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("capture did not publish the long transaction within 60s")
		}
		for last := w.streamLastSeq(); next <= last; next++ {
			if w.messageChanges(next) >= contracts.ChunkChanges {
				full++
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.capture.kill()
	t.Logf("capture killed %d messages (%d full ones) after the long transaction's commit", w.streamLastSeq()-before, full)
	time.Sleep(300 * time.Millisecond)
	w.capture.start()
	time.Sleep(4 * time.Second)
	finish(t, w, wl, 90*time.Second)

	ids := w.auditIDs()
	seqs := map[string][]int64{} // source:commit LSN -> seqs
	dups := 0
	for id, n := range ids {
		if n > 1 {
			if dups < 5 {
				t.Errorf("change %s is %d times in the stream", id, n)
			}
			dups++
		}
		i := strings.LastIndexByte(id, ':')
		seq, err := strconv.ParseInt(id[i+1:], 10, 64)
		if i < 0 || err != nil {
			t.Fatalf("unexpected Nats-Msg-Id %q", id)
		}
		seqs[id[:i]] = append(seqs[id[:i]], seq)
	}
	if dups > 0 {
		t.Errorf("%d changes are in the stream more than once", dups)
	}
	// Every transaction's changes are in the stream without a gap.
	for tx, s := range seqs {
		lo, hi := s[0], s[0]
		for _, v := range s {
			lo, hi = min(lo, v), max(hi, v)
		}
		if hi-lo+1 != int64(len(s)) {
			t.Errorf("transaction %s: %d changes in the stream, seqs %d..%d", tx, len(s), lo, hi)
		}
	}
	t.Logf("stream holds %d distinct changes of %d transactions, none twice", len(ids), len(seqs))
}

// (b) each service in turn gets SIGTERM under load: it must exit cleanly
// (status 0, within 30s), and after its restart the destination converges.
func testSIGTERMEachService(t *testing.T) {
	w, wl := setup(t, worldOptions{}, false, 2)
	for _, p := range []*proc{w.capture, w.sink, w.api} {
		time.Sleep(2 * time.Second)
		w.sigtermAndRestart(p)
	}
	time.Sleep(2 * time.Second)
	finish(t, w, wl, 90*time.Second)
}

// (c) the sink is SIGKILLed six times under load, sometimes between its
// destination commit and its ack: redelivered batches must be no-ops.
func testSIGKILLSinkRepeatedly(t *testing.T) {
	w, wl := setup(t, worldOptions{}, false, 3)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 6 {
		time.Sleep(time.Duration(700+rng.IntN(1300)) * time.Millisecond)
		w.sink.kill()
		time.Sleep(200 * time.Millisecond)
		w.sink.start()
	}
	time.Sleep(2 * time.Second)
	finish(t, w, wl, 90*time.Second)
	w.logConsumers()
}

// (c2) the sink is SIGKILLed five times at random moments while rows with
// 300 kB out-of-line bodies are inserted and mostly updated by statements
// that leave the body untouched: after a restart JetStream redelivers an
// update before the insert it follows, and the destination must still end
// with every body, value by value (issue 14: bodies were left NULL).
func testSIGKILLSinkToastUnchanged(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.createSource()
	w.createPipeline()
	wl := startWorkloadOf(t, w.srcPG.DSN(w.sourceDB), 9, true)
	rng := rand.New(rand.NewPCG(9, 14))
	for range 5 {
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		w.sink.kill()
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		w.sink.start()
	}
	time.Sleep(2 * time.Second)
	finish(t, w, wl, 120*time.Second)
	w.logConsumers()
}

// (d) one of two sink instances of the destination is frozen (SIGSTOP)
// while it holds a fetched batch, for longer than the consumer's ack wait
// (natsx.ConsumerAckWait, 30s): JetStream redelivers the batch to the other
// instance, which also applies everything newer. After SIGCONT the frozen
// instance commits its stale batch late: the version guard must keep the
// newer rows (no lost update) and nothing may be applied twice over a newer
// version.
func testSIGSTOPSinkPastAckWait(t *testing.T) {
	w, wl := setup(t, worldOptions{}, true, 4)
	time.Sleep(2 * time.Second)
	sink2 := newProc(t, "sink2", w.env, bins.rosetta, "sink")
	sink2.start()
	time.Sleep(2 * time.Second)
	// Freeze the first sink in the middle of applying a batch: it holds
	// delivered, unacked changes and an open destination transaction.
	// Tries are short; a freeze outside an apply is undone at once.
	held := false
	for try := 0; try < 60 && !held; try++ {
		w.sink.signal(syscall.SIGSTOP)
		time.Sleep(300 * time.Millisecond)
		ci := w.consumerInfo()
		open := w.openDestTransactions(250 * time.Millisecond)
		if ci != nil && ci.NumAckPending > 0 && open > 0 {
			held = true
			t.Logf("sink frozen (try %d) holding %d unacked changes and an open destination transaction; %d pending; sessions:\n%s",
				try+1, ci.NumAckPending, ci.NumPending, w.destSessions())
			break
		}
		w.sink.signal(syscall.SIGCONT)
		time.Sleep(time.Duration(30+try*7) * time.Millisecond)
	}
	if !held {
		t.Fatalf("could not freeze the sink in the middle of an apply in 60 tries")
	}
	frozen := time.Now()
	time.Sleep(10 * time.Second) // writes continue while the sink is frozen
	wl.paused.Store(true)
	time.Sleep(natsx.ConsumerAckWait + 10*time.Second - time.Since(frozen))
	if ci := w.consumerInfo(); ci != nil {
		t.Logf("after %s frozen: %d unacked, %d of them due for redelivery, %d pending",
			time.Since(frozen).Round(time.Second), ci.NumAckPending, ci.NumRedelivered, ci.NumPending)
	}
	t.Logf("destination sessions before SIGCONT:\n%s", w.destSessions())
	w.sink.signal(syscall.SIGCONT)
	wl.paused.Store(false)
	time.Sleep(5 * time.Second)
	finish(t, w, wl, 120*time.Second)
	w.logConsumers()
}

// (e) the external nats-server is SIGKILLed under load and restarted on the
// same port and store directory: capture and sink reconnect by themselves.
func testNATSKilledAndRestarted(t *testing.T) {
	w, wl := setup(t, worldOptions{}, false, 5)
	time.Sleep(3 * time.Second)
	w.nats.kill()
	time.Sleep(3 * time.Second)
	w.nats.restart()
	time.Sleep(6 * time.Second)
	finish(t, w, wl, 150*time.Second)
}

// (f) the source PostgreSQL stops with -m immediate (a crash) under load and
// comes back: capture reconnects and resumes from its confirmed position.
func testSourceCrashImmediate(t *testing.T) {
	w, wl := setup(t, worldOptions{}, false, 6)
	time.Sleep(3 * time.Second)
	if err := w.srcPG.Stop("immediate"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := w.srcPG.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second)
	if wl.failed.Load() == 0 {
		t.Errorf("the workload saw no error: was the source down at all?")
	}
	finish(t, w, wl, 120*time.Second)
}

// (g) the destination's PostgreSQL cluster is down for ~20s while writes
// continue: the stream buffers, the slot keeps advancing, the pipeline shows
// the destination in ERROR with a reason, and the sink catches up after.
func testDestinationDown(t *testing.T) {
	w, wl := setup(t, worldOptions{ownDestCluster: true}, false, 7)
	time.Sleep(3 * time.Second)
	if err := w.dstPG.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	time.Sleep(2 * time.Second)
	mark, err := w.currentLSN()
	if err != nil {
		t.Fatal(err)
	}
	var sawError, slotMoved, buffered bool
	var lastHealth string
	for time.Since(down) < 20*time.Second {
		if !sawError {
			h, reason := w.destinationHealth()
			lastHealth = h + " " + reason
			if h == "ERROR" && reason != "" {
				sawError = true
				t.Logf("destination health while down: %s: %s", h, reason)
			}
		}
		if s, err := w.slot(); err == nil && s.confirmed >= mark {
			slotMoved = true
		}
		if ci := w.consumerInfo(); ci != nil && ci.NumPending > 0 {
			buffered = true
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !buffered {
		t.Errorf("the consumer never had pending changes while the destination was down")
	}
	if !sawError {
		t.Errorf("GET /pipelines/%d never showed the destination in ERROR with a reason while it was down (last: %q)", w.pipelineID, lastHealth)
	}
	if !slotMoved {
		s, _ := w.slot()
		t.Errorf("slot confirmed_flush_lsn %s did not reach %s (WAL written 2s into the outage) while the destination was down",
			fmtLSN(s.confirmed), fmtLSN(mark))
	}
	if err := w.dstPG.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	finish(t, w, wl, 120*time.Second)
	if h, reason := w.destinationHealth(); h != "HEALTHY" {
		t.Errorf("destination health after catching up = %s %q, want HEALTHY", h, reason)
	}
}

// (h) the watched tables are idle while an unwatched table takes heavy
// writes: the slot's confirmed position must still advance, or the source
// would keep all that WAL.
func testIdleWatchedTablesBusyUnwatched(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.createSource()
	w.createPipeline()
	w.srcPG.Exec(t, w.sourceDB, `INSERT INTO accounts VALUES (1, 'a', 1, 1, true, NULL), (2, 'b', 2, 1, NULL, 'x');
		INSERT INTO lines VALUES (1, 1, 's', 1)`)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn := w.srcPG.Connect(t, w.sourceDB)
		for ctx.Err() == nil {
			conn.Exec(ctx, `INSERT INTO noise (v) SELECT repeat('x', 200) FROM generate_series(1, 500)`)
			conn.Exec(ctx, `DELETE FROM noise WHERE id % 3 = 0`)
		}
	}()
	time.Sleep(3 * time.Second)
	mark, err := w.currentLSN()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(25 * time.Second)
	for {
		s, err := w.slot()
		if err == nil && s.confirmed >= mark {
			t.Logf("slot confirmed %s, past %s, while only the unwatched table was written", fmtLSN(s.confirmed), fmtLSN(mark))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot confirmed_flush_lsn %s did not reach %s within 25s while only an unwatched table was written",
				fmtLSN(s.confirmed), fmtLSN(mark))
		}
		time.Sleep(250 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	w.waitDrained(60 * time.Second)
}

// streamLastSeq is the last sequence of the source's stream (0 on error).
func (w *world) streamLastSeq() uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := w.js.Stream(ctx, contracts.StreamName(w.sourceID))
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.LastSeq
}

// messageChanges is the number of changes of the stream's message seq (0
// if it cannot be read).
func (w *world) messageChanges(seq uint64) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := w.js.Stream(ctx, contracts.StreamName(w.sourceID))
	if err != nil {
		return 0
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return 0
	}
	msg, err := contracts.DecodeMessage(m.Data)
	if err != nil {
		return 0
	}
	return len(msg.Changes)
}

// destinationHealth is the pipeline's destination health and last error.
func (w *world) destinationHealth() (string, string) {
	var p struct {
		Destinations []struct {
			Health    string `json:"health"`
			LastError string `json:"last_error"`
		} `json:"destinations"`
	}
	if _, err := w.call("GET", fmt.Sprintf("/pipelines/%d", w.pipelineID), nil, &p); err != nil {
		return "?", err.Error()
	}
	if len(p.Destinations) != 1 {
		return "?", fmt.Sprintf("%d destinations", len(p.Destinations))
	}
	return p.Destinations[0].Health, p.Destinations[0].LastError
}

// openDestTransactions counts destination sessions whose transaction has
// been open for longer than d.
func (w *world) openDestTransactions(d time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.dstPG.DSN(w.destDB))
	if err != nil {
		return 0
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()
		AND xact_start < now() - $2::interval`, w.destDB, d.String()).Scan(&n); err != nil {
		return 0
	}
	return n
}

// destSessions describes the destination's other sessions.
func (w *world) destSessions() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.dstPG.DSN(w.destDB))
	if err != nil {
		return err.Error()
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT pid, state, coalesce(now() - xact_start, '0')::text, coalesce(wait_event, ''), left(query, 100)
		FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, w.destDB)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for rows.Next() {
		var pid int
		var state, age, wait, q string
		if err := rows.Scan(&pid, &state, &age, &wait, &q); err != nil {
			return err.Error()
		}
		fmt.Fprintf(&b, "  pid %d %s for %s wait %q: %s\n", pid, state, age, wait, q)
	}
	return b.String()
}

// consumerInfo is the pipeline consumer's info (nil on error).
func (w *world) consumerInfo() *jetstream.ConsumerInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := w.js.Consumer(ctx, contracts.StreamName(w.sourceID), contracts.ConsumerName(w.pipelineID, w.destID))
	if err != nil {
		return nil
	}
	ci, err := c.Info(ctx)
	if err != nil {
		return nil
	}
	return ci
}

// logConsumers logs the consumers' delivery counters.
func (w *world) logConsumers() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := w.js.Stream(ctx, contracts.StreamName(w.sourceID))
	if err != nil {
		return
	}
	l := s.ListConsumers(ctx)
	for ci := range l.Info() {
		if w.partitions > 1 {
			// A partition's consumer sees a part of the stream: its
			// deliveries are not comparable with stream sequences.
			w.t.Logf("consumer %s: %d deliveries, up to stream sequence %d", ci.Name, ci.Delivered.Consumer, ci.Delivered.Stream)
			continue
		}
		// Every message of the stream matches the consumer's filter, so
		// deliveries beyond the last stream sequence are redeliveries.
		w.t.Logf("consumer %s: %d deliveries of %d messages (%d redeliveries)", ci.Name,
			ci.Delivered.Consumer, ci.Delivered.Stream, ci.Delivered.Consumer-ci.Delivered.Stream)
	}
}
