package capture

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// countingMetrics counts streamed transactions per source.
type countingMetrics struct {
	mu       sync.Mutex
	streamed map[int64]int
}

func (m *countingMetrics) ChangePublished(int64, string, string) {}
func (m *countingMetrics) SlotConfirmed(int64, uint64, uint64)   {}
func (m *countingMetrics) Error(string, string)                  {}
func (m *countingMetrics) TransactionStreamed(id int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.streamed[id]++
}

func (m *countingMetrics) count(id int64) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.streamed[id]
}

// TestStreamedTransactions runs two captures of one database side by side:
// one with protocol 2 streaming, on a server whose logical_decoding_work_mem
// (64kB, the minimum) makes it stream every transaction of more than a few
// hundred rows, and one with streaming off, whose stream is the reference:
// both streams must hold the same changes, in the same order, with the same
// commit LSNs, sequence numbers and so message ids (the source id aside).
// The workload covers what a streamed transaction can do: commit, interleave
// with another, roll a subtransaction back (also one that changed a
// table's schema or first described the table), roll back whole, change
// its table's schema, and lose its capture session halfway.
func TestStreamedTransactions(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	pg.Exec(t, "postgres", "ALTER SYSTEM SET logical_decoding_work_mem = '64kB'")
	pg.Exec(t, "postgres", "SELECT pg_reload_conf()")

	e := newEnv(t, pg, js, 3001, `
CREATE TABLE big (id int PRIMARY KEY, v text);
CREATE TABLE two (id int PRIMARY KEY, who text);
CREATE TABLE sp (id int PRIMARY KEY);
CREATE TABLE rb (id int PRIMARY KEY);
CREATE TABLE alt (id int PRIMARY KEY, a text);
CREATE TABLE rs (id int PRIMARY KEY, v text);
CREATE TABLE fresh (id int PRIMARY KEY, v text);
CREATE TABLE fresh2 (id int PRIMARY KEY, v text);`)
	tables := []string{"public.fresh", "public.fresh2", "public.big", "public.two", "public.sp", "public.rb", "public.alt", "public.rs"}
	e.store.setPipeline(configstore.Pipeline{ID: 1, SourceID: e.src.ID, DestinationIDs: []int64{1},
		Tables: tables, Status: configstore.StatusStart})
	// The reference: the same database, its own slot and source id, v1.
	ref := &env{t: t, pg: pg, js: js, db: e.db, src: e.src, log: e.log}
	ref.src.ID, ref.src.Slot, ref.src.Name, ref.src.Publication = 3002, "cap_"+testkit.RandomSuffix(), "ref", "ref pub"
	ref.store = &memStore{sources: []configstore.Source{ref.src}}
	ref.store.setPipeline(configstore.Pipeline{ID: 2, SourceID: ref.src.ID, DestinationIDs: []int64{1},
		Tables: tables, Status: configstore.StatusStart})

	metrics := &countingMetrics{streamed: map[int64]int{}}
	spoolParent := t.TempDir()
	cfg := testConfig()
	cfg.Metrics, cfg.SpoolDir = metrics, spoolParent
	stop := e.start(cfg)
	refCfg := testConfig()
	refCfg.Streaming, refCfg.Metrics = false, metrics
	ref.start(refCfg)
	e.waitActive(true)
	ref.waitActive(true)

	ctx := context.Background()
	conn := func() *pgx.Conn { return pg.Connect(t, e.db) }
	must := func(c *pgx.Conn, sql string, args ...any) {
		t.Helper()
		if _, err := c.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	want := 0

	// (1) One large committed transaction.
	e.exec(`INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, 20000) g`)
	want += 20000

	// (2) Two large transactions interleaved, the later one committing
	// first, and a small one committing while both run.
	a, b := conn(), conn()
	must(a, "BEGIN")
	must(b, "BEGIN")
	must(a, "INSERT INTO two SELECT g, 'a' FROM generate_series(1, 1500) g")
	must(b, "INSERT INTO two SELECT g, 'b' FROM generate_series(10001, 11500) g")
	e.exec("INSERT INTO two VALUES (-1, 'small')")
	must(a, "INSERT INTO two SELECT g, 'a' FROM generate_series(1501, 3000) g")
	must(b, "INSERT INTO two SELECT g, 'b' FROM generate_series(11501, 13000) g")
	must(b, "COMMIT")
	must(a, "COMMIT")
	want += 6001

	// (3) A subtransaction of many rows rolled back inside a streamed
	// transaction, a nested one released.
	e.exec(`BEGIN;
INSERT INTO sp SELECT generate_series(1, 1000);
SAVEPOINT s1;
INSERT INTO sp SELECT generate_series(1001, 3000);
SAVEPOINT s1a;
INSERT INTO sp SELECT generate_series(3001, 3500);
ROLLBACK TO SAVEPOINT s1;
INSERT INTO sp SELECT generate_series(3501, 4500);
SAVEPOINT s2;
INSERT INTO sp SELECT generate_series(4501, 5000);
RELEASE SAVEPOINT s2;
COMMIT;`)
	want += 2500

	// (4) A large transaction rolled back; a small one after it marks the
	// place.
	e.exec(`BEGIN; INSERT INTO rb SELECT generate_series(1, 5000); ROLLBACK;`)
	e.exec(`INSERT INTO rb VALUES (-1)`)
	want++

	// (5) A schema change inside a streamed transaction.
	e.exec(`BEGIN;
INSERT INTO alt SELECT g, 'before' FROM generate_series(1, 1500) g;
ALTER TABLE alt ADD COLUMN b int DEFAULT 7;
INSERT INTO alt SELECT g, 'after', g FROM generate_series(1501, 3000) g;
COMMIT;`)
	want += 3000

	// (3b) The first change of a table in the session inside a
	// subtransaction rolled back after it streamed: its Relation message
	// was cut out with it, yet later rows of the table decode. And a
	// schema change inside a rolled-back subtransaction: rows after the
	// rollback have the old columns.
	e.exec(`BEGIN;
INSERT INTO sp SELECT generate_series(20001, 21000);
SAVEPOINT f;
INSERT INTO fresh SELECT g, 'gone' FROM generate_series(1, 2000) g;
ROLLBACK TO SAVEPOINT f;
INSERT INTO fresh SELECT g, 'kept' FROM generate_series(5001, 5010) g;
COMMIT;`)
	e.exec(`BEGIN;
INSERT INTO sp SELECT generate_series(30001, 31000);
SAVEPOINT f;
INSERT INTO fresh2 SELECT g, 'gone' FROM generate_series(1, 1500) g;
ALTER TABLE fresh2 ADD COLUMN extra int;
INSERT INTO fresh2 SELECT g, 'gone', g FROM generate_series(1501, 3000) g;
ROLLBACK TO SAVEPOINT f;
INSERT INTO fresh2 SELECT g, 'kept' FROM generate_series(7001, 7010) g;
COMMIT;`)
	want += 2 * 1010

	// (6) The capture session lost halfway through a streamed transaction:
	// the walsender is terminated once capture spooled part of it; the
	// rest is written while capture reconnects.
	// Capture may still be publishing the earlier ones (slowly under
	// -race); the transaction's first block comes after them.
	waitCount(t, e, want)
	c6 := conn()
	must(c6, "BEGIN")
	var xid int64
	if err := c6.QueryRow(ctx, "SELECT txid_current()").Scan(&xid); err != nil {
		t.Fatal(err)
	}
	must(c6, "INSERT INTO rs SELECT g, 'first' FROM generate_series(1, 2000) g")
	eventually(t, 60*time.Second, "part of the transaction spooled", func() (bool, string) {
		files, _ := filepath.Glob(filepath.Join(spoolParent, "rosetta-spool-*", fmt.Sprintf("xid-%d-*.spool", xid)))
		return len(files) > 0, fmt.Sprintf("%v", files)
	})
	_, pid := e.slot()
	must(conn(), "SELECT pg_terminate_backend($1)", pid)
	must(c6, "INSERT INTO rs SELECT g, 'second' FROM generate_series(2001, 3000) g")
	must(c6, "COMMIT")
	want += 3000

	got := readStream(t, e, want)
	refMsgs := readStream(t, ref, want)

	// Every change once, in the reference's order and messages, with the
	// same version: a streamed transaction is cut into the messages an
	// unstreamed one is.
	seen := map[string]bool{}
	chunks := map[string]int{}
	for i := range got {
		g, r := got[i], refMsgs[i]
		if g.index == 0 {
			if seen[g.msgID] {
				t.Fatalf("message id %s twice in the stream", g.msgID)
			}
			seen[g.msgID] = true
			chunks[g.change.Source.CommitLSN+" "+g.change.Source.Table]++
		}
		chunk := chunks[g.change.Source.CommitLSN+" "+g.change.Source.Table] - 1
		if g.msgID != contracts.MessageID(e.src.ID, g.change.Source.CommitLSN, "public", g.change.Source.Table, 0, chunk) {
			t.Fatalf("change %d: id %s, change at %s seq %d", i, g.msgID, g.change.Source.CommitLSN, g.change.Source.Seq)
		}
		if g.index != r.index || g.n != r.n {
			t.Fatalf("change %d: change %d of %d of its message, unstreamed %d of %d", i, g.index, g.n, r.index, r.n)
		}
		if strings.TrimPrefix(g.msgID, fmt.Sprint(e.src.ID)) != strings.TrimPrefix(r.msgID, fmt.Sprint(ref.src.ID)) {
			t.Fatalf("message %d: id %s, unstreamed %s", i, g.msgID, r.msgID)
		}
		gc, rc := g.change, r.change
		gc.Source.SourceID, rc.Source.SourceID = 0, 0
		gj, _ := json.Marshal(gc)
		rj, _ := json.Marshal(rc)
		if string(gj) != string(rj) {
			t.Fatalf("message %d differs from the unstreamed capture:\nstreamed   %s\nunstreamed %s", i, gj, rj)
		}
	}

	// The contents, table by table, against what was committed.
	keys := map[string][]int{}
	byTable := map[string][]contracts.Change{}
	for _, m := range got {
		var k struct{ ID int }
		raw, _ := json.Marshal(m.change.Key)
		if err := json.Unmarshal(raw, &k); err != nil {
			t.Fatal(err)
		}
		keys[m.change.Source.Table] = append(keys[m.change.Source.Table], k.ID)
		byTable[m.change.Source.Table] = append(byTable[m.change.Source.Table], m.change)
	}
	span := func(from, to int) []int {
		var out []int
		for i := from; i <= to; i++ {
			out = append(out, i)
		}
		return out
	}
	cat := func(parts ...[]int) []int {
		var out []int
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, tt := range []struct {
		table string
		want  []int
	}{
		{"big", span(1, 20000)},
		// The small one committed first, then b, then a.
		{"two", cat([]int{-1}, span(10001, 13000), span(1, 3000))},
		{"sp", cat(span(1, 1000), span(3501, 5000), span(20001, 21000), span(30001, 31000))},
		{"fresh", span(5001, 5010)},
		{"fresh2", span(7001, 7010)},
		{"rb", []int{-1}},
		{"alt", span(1, 3000)},
		{"rs", span(1, 3000)},
	} {
		if g := keys[tt.table]; fmt.Sprint(g) != fmt.Sprint(tt.want) {
			t.Errorf("%s: %d keys %.200s, want %d %.200s", tt.table, len(g), fmt.Sprint(g), len(tt.want), fmt.Sprint(tt.want))
		}
	}
	// One transaction, numbered from 1, one commit LSN.
	for i, c := range byTable["big"] {
		if c.Source.Seq != int64(i+1) || c.Source.CommitLSN != byTable["big"][0].Source.CommitLSN {
			t.Fatalf("big change %d: seq %d commit %s", i, c.Source.Seq, c.Source.CommitLSN)
		}
	}
	for _, c := range byTable["fresh2"] {
		if _, has := c.After["extra"]; has || string(c.After["v"]) != `"kept"` {
			t.Fatalf("fresh2 row after the rollback: %s", rowJSON(c.After))
		}
	}
	for _, c := range byTable["alt"] {
		var id int
		json.Unmarshal(c.Key["id"], &id)
		b, has := c.After["b"]
		if id <= 1500 && has || id > 1500 && (!has || string(b) != fmt.Sprint(id)) {
			t.Fatalf("alt row %d: after %s", id, rowJSON(c.After))
		}
	}

	// Streaming happened: the server says so, and capture counted the
	// committed ones (1, 2 twice, 3, 5, 6; perhaps 6 twice if the session
	// was lost after its commit), the reference streamed nothing.
	var streamTxns, refTxns int64
	q := conn()
	if err := q.QueryRow(ctx, "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = $1", e.src.Slot).Scan(&streamTxns); err != nil {
		t.Fatal(err)
	}
	if err := q.QueryRow(ctx, "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = $1", ref.src.Slot).Scan(&refTxns); err != nil {
		t.Fatal(err)
	}
	if streamTxns < 6 || refTxns != 0 {
		t.Errorf("pg_stat_replication_slots.stream_txns: streaming slot %d, want at least 6; reference slot %d, want 0", streamTxns, refTxns)
	}
	if c := metrics.count(e.src.ID); c < 6 {
		t.Errorf("capture counted %d streamed transactions, want at least 6", c)
	}
	if c := metrics.count(ref.src.ID); c != 0 {
		t.Errorf("reference capture counted %d streamed transactions", c)
	}

	// Spools live with their session.
	stop()
	entries, _ := os.ReadDir(spoolParent)
	if len(entries) != 0 {
		t.Errorf("spool directory left after capture stopped: %v", entries)
	}
}

// waitCount waits until the env's stream holds at least n changes. It
// reads each message once, as it arrives.
func waitCount(t *testing.T, e *env, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	st, err := e.js.Stream(ctx, contracts.StreamName(e.src.ID))
	if err != nil {
		t.Fatal(err)
	}
	var next uint64 = 1
	changes := 0
	eventually(t, 5*time.Minute, fmt.Sprintf("%d changes in stream of source %d", n, e.src.ID), func() (bool, string) {
		info, err := st.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		for ; next <= info.State.LastSeq; next++ {
			m, err := st.GetMsg(ctx, next)
			if err != nil {
				return false, err.Error()
			}
			msg, err := contracts.DecodeMessage(m.Data)
			if err != nil {
				t.Fatalf("message %d: %v", next, err)
			}
			changes += len(msg.Changes)
		}
		return changes >= n, fmt.Sprintf("%d changes in %d messages, state %+v", changes, info.State.Msgs, e.store.state())
	})
}

// readStream waits until the env's stream holds n changes, checks it holds
// no more, and reads them all in order through an ordered consumer. The
// changes of the first few messages are validated against the change
// event schema.
func readStream(t *testing.T, e *env, n int) []storedMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitCount(t, e, n)
	st, err := e.js.Stream(ctx, contracts.StreamName(e.src.ID))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // anything extra would arrive now
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sch := changeSchema(t)
	var out []storedMsg
	read := 0
	for {
		batch, err := cons.Fetch(200, jetstream.FetchMaxWait(time.Second), jetstream.FetchPriorityGroup(natsx.SinkGroup))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			check := sch
			if read++; read > 5 {
				check = nil
			}
			out = append(out, decodeStored(t, check, m.Subject(), m.Headers().Get(jetstream.MsgIDHeader), meta.Sequence.Stream, m.Data())...)
		}
		if batch.Error() != nil {
			t.Fatal(batch.Error())
		}
		// An empty fetch ends the read only once all n are in (it then
		// shows there are no extras): on a loaded host the first fetches
		// of a new consumer can come back empty.
		if got == 0 && (len(out) >= n || ctx.Err() != nil) {
			break
		}
	}
	if len(out) != n {
		t.Fatalf("stream of source %d holds %d changes, want %d", e.src.ID, len(out), n)
	}
	return out
}
