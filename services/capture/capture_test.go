package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/pgrepl"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// memStore is an in-memory ConfigStore: the config is faked, PostgreSQL
// and NATS are real.
type memStore struct {
	mu        sync.Mutex
	sources   []configstore.Source
	pipelines []configstore.Pipeline
	states    []configstore.SourceState
}

func (s *memStore) ListAllSources(context.Context) ([]configstore.Source, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sources), nil
}

func (s *memStore) ListAllPipelines(context.Context) ([]configstore.Pipeline, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]configstore.Pipeline, len(s.pipelines))
	for i, p := range s.pipelines {
		p.Tables = slices.Clone(p.Tables)
		p.DestinationIDs = slices.Clone(p.DestinationIDs)
		out[i] = p
	}
	return out, nil
}

func (s *memStore) SetSourceState(_ context.Context, st configstore.SourceState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states = append(s.states, st)
	return nil
}

func (s *memStore) state() configstore.SourceState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.states) == 0 {
		return configstore.SourceState{}
	}
	return s.states[len(s.states)-1]
}

func (s *memStore) allStates() []configstore.SourceState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.states)
}

func (s *memStore) setPipeline(p configstore.Pipeline) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.pipelines {
		if s.pipelines[i].ID == p.ID {
			s.pipelines[i] = p
			return
		}
	}
	s.pipelines = append(s.pipelines, p)
}

func (s *memStore) deletePipeline(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pipelines = slices.DeleteFunc(s.pipelines, func(p configstore.Pipeline) bool { return p.ID == id })
}

// syncBuffer collects a test's logs; they are printed if the test fails
// (workers log from their own goroutines, where t.Log is not allowed late).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type env struct {
	t     *testing.T
	pg    *testkit.Postgres
	js    jetstream.JetStream
	db    string
	store *memStore
	src   configstore.Source
	log   *slog.Logger
}

func newEnv(t *testing.T, pg *testkit.Postgres, js jetstream.JetStream, sourceID int64, schema string) *env {
	db := pg.CreateDatabase(t, "cap")
	pg.Exec(t, db, schema)
	src := configstore.Source{ID: sourceID, Name: "src-" + db, Host: pg.Host(), Port: pg.Port, Database: db,
		User: "postgres", Password: "not-checked-by-trust-auth", SSLMode: "disable",
		Slot: "cap_" + testkit.RandomSuffix(), Publication: "cap pub"}
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("capture logs:\n%s", logs.String())
		}
	})
	return &env{t: t, pg: pg, js: js, db: db, store: &memStore{sources: []configstore.Source{src}}, src: src,
		log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.ReconcileInterval = time.Hour // only start and config events reconcile
	cfg.StatusInterval = 200 * time.Millisecond
	cfg.StandbyInterval = time.Second
	cfg.ConfirmInterval = 50 * time.Millisecond
	cfg.BackoffMin = 100 * time.Millisecond
	cfg.BackoffMax = 400 * time.Millisecond
	cfg.DrainTimeout = 5 * time.Second
	return cfg
}

// start runs a manager until the returned stop is called (or the test ends).
func (e *env) start(cfg Config) (stop func()) {
	e.t.Helper()
	return e.startWith(cfg, e.js)
}

// startWith is start with the manager's JetStream given.
func (e *env) startWith(cfg Config, js jetstream.JetStream) (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := NewManager(cfg, e.store, js, e.log)
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("manager Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				e.t.Errorf("manager did not stop within 30s")
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *env) exec(sql string, args ...any) { e.t.Helper(); e.pg.Exec(e.t, e.db, sql, args...) }

func (e *env) event(kind contracts.ConfigKind, id int64, action contracts.ConfigAction) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := natsx.PublishConfigEvent(ctx, e.js, contracts.ConfigEvent{Kind: kind, ID: id, Action: action}); err != nil {
		e.t.Fatal(err)
	}
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last: %s)", what, timeout, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slot reads the source's replication slot and the pid using it.
func (e *env) slot() (pgrepl.Slot, int32) {
	e.t.Helper()
	ctx := context.Background()
	conn := e.pg.Connect(e.t, e.db)
	defer conn.Close(ctx)
	s, found, err := pgrepl.ReadSlot(ctx, conn, e.src.Slot)
	if err != nil {
		e.t.Fatal(err)
	}
	if !found {
		return pgrepl.Slot{}, 0
	}
	// Only a walsender counts as using the slot: while
	// pg_create_logical_replication_slot runs, the creating backend holds it.
	var pid *int32
	if err := conn.QueryRow(ctx, `SELECT r.active_pid FROM pg_replication_slots r
		JOIN pg_stat_activity a ON a.pid = r.active_pid AND a.backend_type = 'walsender'
		WHERE r.slot_name = $1`, e.src.Slot).Scan(&pid); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		e.t.Fatal(err)
	}
	s.Active = pid != nil
	if pid == nil {
		return s, 0
	}
	return s, *pid
}

func (e *env) waitActive(active bool) int32 {
	e.t.Helper()
	var pid int32
	eventually(e.t, 30*time.Second, fmt.Sprintf("slot active=%v", active), func() (bool, string) {
		s, p := e.slot()
		pid = p
		return s.Active == active && (s.Name != "" || !active), fmt.Sprintf("%+v state %+v", s, e.store.state())
	})
	return pid
}

// waitConfirmedPast waits until the slot confirmed a position after lsn.
func (e *env) waitConfirmedPast(lsn string) {
	e.t.Helper()
	want, err := pglogrepl.ParseLSN(lsn)
	if err != nil {
		e.t.Fatal(err)
	}
	eventually(e.t, 20*time.Second, "slot confirmed past "+lsn, func() (bool, string) {
		s, _ := e.slot()
		return s.ConfirmedFlushLSN > want, s.ConfirmedFlushLSN.String()
	})
}

// changeSchema compiles the change event's JSON Schema; every captured
// message the tests read is validated against it.
func changeSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(contracts.ChangeEventSchema))
	if err != nil {
		t.Fatalf("parse schema: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("change-event.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("change-event.schema.json")
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	return sch
}

// storedMsg is one change of a message in the stream, with its message's
// subject, Nats-Msg-Id, stream sequence and size; the tests read the
// stream change by change.
type storedMsg struct {
	subject string
	msgID   string
	seq     uint64 // the message's stream sequence
	index   int    // the change's index in its message
	n       int    // the message's changes
	change  contracts.Change
}

// decodeStored decodes a stored message: it must be a version 2 message,
// and each of its changes, written as a version 1 change, must match the
// change event schema (when sch is not nil).
func decodeStored(t *testing.T, sch *jsonschema.Schema, subject, msgID string, seq uint64, data []byte) []storedMsg {
	t.Helper()
	if !bytes.HasPrefix(data, []byte(`{"v":2,`)) {
		t.Fatalf("message %d is not a version 2 message: %.300s", seq, data)
	}
	m, err := contracts.DecodeMessage(data)
	if err != nil {
		t.Fatalf("message %d: %v\n%.300s", seq, err, data)
	}
	out := make([]storedMsg, 0, len(m.Changes))
	for i, c := range m.All() {
		if sch != nil {
			v1 := c
			v1.V = contracts.EnvelopeVersion
			body, err := v1.AppendJSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(inst); err != nil {
				t.Errorf("message %d change %d does not match the change event schema: %v\n%.500s", seq, i, err, body)
			}
		}
		out = append(out, storedMsg{subject: subject, msgID: msgID, seq: seq, index: i, n: len(m.Changes), change: c})
	}
	return out
}

// streamMsgs reads every change stored in the source's stream, in order.
func (e *env) streamMsgs() []storedMsg {
	e.t.Helper()
	sch := changeSchema(e.t)
	var out []storedMsg
	for _, m := range e.rawMsgs() {
		out = append(out, decodeStored(e.t, sch, m.subject, m.id, m.seq, m.body)...)
	}
	return out
}

// messages counts the distinct messages that changes came in.
func messages(changes []storedMsg) int {
	n := 0
	for _, c := range changes {
		if c.index == 0 {
			n++
		}
	}
	return n
}

func (e *env) waitMsgs(n int) []storedMsg {
	e.t.Helper()
	var msgs []storedMsg
	eventually(e.t, 30*time.Second, fmt.Sprintf("%d changes in the stream", n), func() (bool, string) {
		msgs = e.streamMsgs()
		return len(msgs) >= n, fmt.Sprintf("%d changes, state %+v", len(msgs), e.store.state())
	})
	if len(msgs) != n {
		e.t.Fatalf("stream holds %d changes, want %d", len(msgs), n)
	}
	return msgs
}

// fetch takes messages of up to n changes from a pipeline consumer without acking
// them: under interest retention an ack could remove them from the stream,
// which the tests read too.
func (e *env) fetch(pipelineID, destID int64, n int) []storedMsg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cons, err := e.js.Consumer(ctx, contracts.StreamName(e.src.ID), contracts.ConsumerName(pipelineID, destID))
	if err != nil {
		e.t.Fatalf("consumer of pipeline %d destination %d: %v", pipelineID, destID, err)
	}
	var out []storedMsg
	for len(out) < n && ctx.Err() == nil {
		batch, err := cons.Fetch(n-len(out), jetstream.FetchMaxWait(time.Second), jetstream.FetchPriorityGroup(natsx.SinkGroup))
		if err != nil {
			e.t.Fatal(err)
		}
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				e.t.Fatal(err)
			}
			out = append(out, decodeStored(e.t, nil, m.Subject(), m.Headers().Get(jetstream.MsgIDHeader), meta.Sequence.Stream, m.Data())...)
		}
	}
	return out
}

func rowJSON(r contracts.Row) string {
	if r == nil {
		return "null"
	}
	b, _ := json.Marshal(r)
	return string(b)
}

func TestCapture(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	t.Run("Envelope", func(t *testing.T) { t.Parallel(); testEnvelope(t, pg, js) })
	t.Run("PublishFailureRestartDedup", func(t *testing.T) { t.Parallel(); testPublishFailure(t, pg, js) })
	t.Run("PauseResumeTableChange", func(t *testing.T) { t.Parallel(); testPauseResume(t, pg, js) })
	t.Run("FxModule", func(t *testing.T) { t.Parallel(); testFxModule(t, pg, js) })
	t.Run("StandbyTakeover", func(t *testing.T) { t.Parallel(); testStandbyTakeover(t, pg, js) })
	t.Run("StandbyAfterErrorBackoff", func(t *testing.T) { t.Parallel(); testStandbyAfterErrorBackoff(t, pg, js) })
	t.Run("Partitions", func(t *testing.T) { t.Parallel(); testPartitions(t, pg, js) })
}

func testEnvelope(t *testing.T, pg *testkit.Postgres, js jetstream.JetStream) {
	e := newEnv(t, pg, js, 1001, `
CREATE TABLE items (id int PRIMARY KEY, name text, note text);
ALTER TABLE items ALTER COLUMN note SET STORAGE EXTERNAL;
CREATE TABLE "Odd Table" (k text PRIMARY KEY, v int);
CREATE TABLE ignored (id int PRIMARY KEY);`)
	e.store.setPipeline(configstore.Pipeline{ID: 1, SourceID: e.src.ID, DestinationIDs: []int64{1},
		Tables: []string{"public.items", "public.Odd Table"}, Status: configstore.StatusStart})
	e.start(testConfig())
	e.waitActive(true)

	big := strings.Repeat("0123456789", 1000)
	e.exec(`BEGIN;
INSERT INTO items VALUES (1, 'a', NULL);
INSERT INTO "Odd Table" VALUES ('k1', 1);
INSERT INTO ignored VALUES (1);
UPDATE items SET name = 'b' WHERE id = 1;
COMMIT;`)
	e.exec("INSERT INTO items VALUES (2, 'big', $1)", big)
	e.exec("UPDATE items SET name = 'c' WHERE id = 2")
	e.exec("UPDATE items SET id = 3 WHERE id = 1")
	e.exec("DELETE FROM items WHERE id = 3")
	e.exec("TRUNCATE items")

	// The first transaction is two messages, one per table, in the order
	// of each table's first change; every other one a message of its one
	// change.
	msgs := e.waitMsgs(8)
	if n := messages(msgs); n != 7 || msgs[0].n != 2 || msgs[2].n != 1 {
		t.Errorf("8 changes in %d messages (first two %d and %d changes), want 7 (2 and 1)", n, msgs[0].n, msgs[2].n)
	}
	bigJSON, _ := json.Marshal(big)
	want := []struct {
		op                 contracts.Op
		table              string
		seq                int64
		key, before, after string
		unchanged          []string
	}{
		{contracts.OpCreate, "items", 1, `{"id":1}`, `null`, `{"id":1,"name":"a","note":null}`, nil},
		{contracts.OpUpdate, "items", 3, `{"id":1}`, `null`, `{"id":1,"name":"b","note":null}`, nil},
		{contracts.OpCreate, "Odd Table", 2, `{"k":"k1"}`, `null`, `{"k":"k1","v":1}`, nil},
		{contracts.OpCreate, "items", 1, `{"id":2}`, `null`, `{"id":2,"name":"big","note":` + string(bigJSON) + `}`, nil},
		{contracts.OpUpdate, "items", 1, `{"id":2}`, `null`, `{"id":2,"name":"c"}`, []string{"note"}},
		{contracts.OpUpdate, "items", 1, `{"id":3}`, `{"id":1}`, `{"id":3,"name":"b","note":null}`, nil},
		{contracts.OpDelete, "items", 1, `{"id":3}`, `{"id":3}`, `null`, nil},
		{contracts.OpTruncate, "items", 1, `null`, `null`, `null`, nil},
	}
	prev := map[string]contracts.Version{}
	for i, w := range want {
		m, c := msgs[i], msgs[i].change
		where := fmt.Sprintf("message %d (%s %s)", i, w.op, w.table)
		if c.Op != w.op || c.Source.Table != w.table || c.Source.Seq != w.seq || c.Source.Schema != "public" ||
			c.Source.SourceID != e.src.ID || c.Source.Database != e.db || c.V != contracts.MessageVersion {
			t.Errorf("%s: got v%d %s %s.%s seq %d source %d db %s", where, c.V, c.Op, c.Source.Schema, c.Source.Table,
				c.Source.Seq, c.Source.SourceID, c.Source.Database)
			continue
		}
		if m.subject != contracts.ChangeSubject(e.src.ID, "public", w.table, 0) {
			t.Errorf("%s: subject %s", where, m.subject)
		}
		if m.msgID != contracts.MessageID(e.src.ID, c.Source.CommitLSN, "public", w.table, 0, 0) {
			t.Errorf("%s: Nats-Msg-Id %q", where, m.msgID)
		}
		if g := rowJSON(c.Key); g != w.key {
			t.Errorf("%s: key %s, want %s", where, g, w.key)
		}
		if g := rowJSON(c.Before); g != w.before {
			t.Errorf("%s: before %s, want %s", where, g, w.before)
		}
		if g := rowJSON(c.After); g != w.after {
			t.Errorf("%s: after %.200s, want %.200s", where, g, w.after)
		}
		if !slices.Equal(c.Unchanged, w.unchanged) {
			t.Errorf("%s: unchanged %v, want %v", where, c.Unchanged, w.unchanged)
		}
		v, err := c.Version()
		if err != nil {
			t.Fatal(err)
		}
		if p := prev[w.table]; !p.Less(v) {
			t.Errorf("%s: version %+v not after %+v", where, v, p)
		}
		prev[w.table] = v
		if len(c.Columns) == 0 || c.Columns[0].Type == "" {
			t.Errorf("%s: columns %+v", where, c.Columns)
		}
	}
	if msgs[0].change.Source.CommitLSN != msgs[2].change.Source.CommitLSN || msgs[1].change.Source.CommitLSN != msgs[2].change.Source.CommitLSN {
		t.Errorf("one transaction has two commit LSNs")
	}
	if msgs[2].subject != fmt.Sprintf("rosetta.cdc.%d.public.Odd%%20Table.0", e.src.ID) {
		t.Errorf("subject of \"Odd Table\" = %s", msgs[2].subject)
	}

	// The pipeline's consumer was created before the tables were
	// published, so it has every change.
	if got := e.fetch(1, 1, 8); len(got) != 8 || got[7].change.Op != contracts.OpTruncate {
		t.Errorf("consumer got %d changes", len(got))
	}

	// The slot is confirmed past the last transaction once JetStream has it,
	// and the state reports it.
	last := msgs[7].change.Source.CommitLSN
	e.waitConfirmedPast(last)
	lastLSN, _ := contracts.ParseLSN(last)
	eventually(t, 10*time.Second, "RUNNING state with the confirmed LSN", func() (bool, string) {
		st := e.store.state()
		got, err := contracts.ParseLSN(st.ConfirmedLSN)
		return st.State == StateRunning && err == nil && got > lastLSN && st.SourceID == e.src.ID, fmt.Sprintf("%+v", st)
	})

	// Writes to tables outside the publication publish nothing, yet the
	// slot follows them (keepalives while idle), so they do not hold WAL.
	conn := e.pg.Connect(t, e.db)
	var after string
	if err := conn.QueryRow(context.Background(),
		"WITH i AS (INSERT INTO ignored SELECT generate_series(2, 100) RETURNING 1) SELECT count(*)::text FROM i").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(context.Background(), "SELECT pg_current_wal_insert_lsn()::text").Scan(&after); err != nil {
		t.Fatal(err)
	}
	afterLSN, _ := pglogrepl.ParseLSN(after)
	eventually(t, 40*time.Second, "slot confirmed past writes to an unpublished table", func() (bool, string) {
		s, _ := e.slot()
		return s.ConfirmedFlushLSN >= afterLSN, fmt.Sprintf("%s < %s", s.ConfirmedFlushLSN, afterLSN)
	})
	if n := len(e.streamMsgs()); n != 8 {
		t.Errorf("stream has %d messages after writes to an unpublished table, want 8", n)
	}
}

// TestSourceRestart has a cluster of its own, which it stops and starts.
func TestSourceRestart(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	e := newEnv(t, pg, js, 2001, `CREATE TABLE r (id int PRIMARY KEY)`)
	e.store.setPipeline(configstore.Pipeline{ID: 1, SourceID: e.src.ID, DestinationIDs: []int64{1},
		Tables: []string{"public.r"}, Status: configstore.StatusStart})
	e.start(testConfig())
	e.waitActive(true)
	e.exec("INSERT INTO r VALUES (1)")
	e.waitMsgs(1)

	if err := pg.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "ERROR state while the source is down", func() (bool, string) {
		st := e.store.state()
		return st.State == StateError && st.LastError != "", fmt.Sprintf("%+v", st)
	})
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitActive(true)
	e.exec("INSERT INTO r VALUES (2)")
	msgs := e.waitMsgs(2)
	if k := rowJSON(msgs[1].change.Key); k != `{"id":2}` {
		t.Fatalf("second change key = %s", k)
	}
	eventually(t, 10*time.Second, "RUNNING again", func() (bool, string) {
		st := e.store.state()
		return st.State == StateRunning, fmt.Sprintf("%+v", st)
	})
}

func testPublishFailure(t *testing.T, pg *testkit.Postgres, js jetstream.JetStream) {
	e := newEnv(t, pg, js, 1002, `CREATE TABLE t (id int PRIMARY KEY, pad text)`)
	e.store.setPipeline(configstore.Pipeline{ID: 1, SourceID: e.src.ID, DestinationIDs: []int64{1},
		Tables: []string{"public.t"}, Status: configstore.StatusStart})
	small := testConfig()
	small.StreamLimits.MaxBytes = 2048 // the big row of the second transaction does not fit
	stopA := e.start(small)
	e.waitActive(true)

	e.exec("INSERT INTO t VALUES (1, 'one')")
	first := e.waitMsgs(1)[0].change.Source.CommitLSN
	e.waitConfirmedPast(first)

	e.exec("BEGIN; INSERT INTO t VALUES (2, 'two'); INSERT INTO t VALUES (3, 'three'); INSERT INTO t VALUES (4, repeat('z', 1600)); COMMIT;")
	eventually(t, 20*time.Second, "ERROR state after the stream refused a change", func() (bool, string) {
		st := e.store.state()
		return st.State == StateError && st.LastError != "", fmt.Sprintf("%+v", st)
	})
	if st := e.store.state(); strings.Contains(st.LastError, e.src.Password) {
		t.Fatalf("the error state holds the password: %s", st.LastError)
	}
	// Let the worker retry: the transaction, one message, is refused
	// again, the slot stays before it. Waiting for a
	// second error state (not a fixed time) proves a retry happened.
	errorStates := func() int {
		n := 0
		for _, st := range e.store.allStates() {
			if st.State == StateError {
				n++
			}
		}
		return n
	}
	eventually(t, 30*time.Second, "a second ERROR state (the worker retried)", func() (bool, string) {
		n := errorStates()
		return n >= 2, fmt.Sprintf("%d error states", n)
	})
	msgs := e.streamMsgs()
	if len(msgs) != 1 {
		t.Fatalf("stream holds %d changes after retries, want 1 (the first transaction's)", len(msgs))
	}
	// Checked against the transaction's commit LSN once it is stored.
	refused, _ := e.slot()

	stopA()
	e.waitActive(false)
	if st := e.store.state(); st.State != StateStopped {
		t.Errorf("state after stop = %+v", st)
	}
	e.exec("INSERT INTO t VALUES (5, 'while stopped')")

	// A new manager with room in the stream resumes from the slot: the
	// transaction is sent again, as one message.
	stopB := e.start(testConfig())
	msgs = e.waitMsgs(5)
	var ids []string
	seen := map[string]bool{}
	for _, m := range msgs {
		ids = append(ids, rowJSON(m.change.Key))
		if m.index > 0 {
			continue
		}
		if seen[m.msgID] {
			t.Errorf("message id %s stored twice", m.msgID)
		}
		seen[m.msgID] = true
	}
	if want := []string{`{"id":1}`, `{"id":2}`, `{"id":3}`, `{"id":4}`, `{"id":5}`}; !slices.Equal(ids, want) {
		t.Fatalf("keys in the stream = %v, want %v", ids, want)
	}
	if n := messages(msgs); n != 3 || msgs[1].n != 3 {
		t.Errorf("stream holds %d messages, the second of %d changes; want 3, the second of 3", n, msgs[1].n)
	}
	// Equal is fine: PostgreSQL re-sends a transaction whose commit record
	// starts at the confirmed position (it skips only those before it).
	if tx2, _ := pglogrepl.ParseLSN(msgs[1].change.Source.CommitLSN); refused.ConfirmedFlushLSN > tx2 {
		t.Fatalf("slot confirmed %s although the transaction committed at %s was not in JetStream", refused.ConfirmedFlushLSN, tx2)
	}
	e.waitConfirmedPast(msgs[4].change.Source.CommitLSN)
	stopB()
	// Nothing was lost for the consumer either.
	if got := e.fetch(1, 1, 5); len(got) != 5 {
		t.Errorf("consumer got %d changes, want 5", len(got))
	}
}

func testPauseResume(t *testing.T, pg *testkit.Postgres, js jetstream.JetStream) {
	e := newEnv(t, pg, js, 1003, `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);`)
	p1 := configstore.Pipeline{ID: 1, SourceID: e.src.ID, DestinationIDs: []int64{1}, Tables: []string{"public.a"},
		Status: configstore.StatusStart}
	e.store.setPipeline(p1)
	e.start(testConfig())
	pid := e.waitActive(true)
	e.exec("INSERT INTO a VALUES (1)")
	e.waitMsgs(1)

	// A second pipeline with another table: applied to the running worker,
	// consumer first, then the publication; no reconnect.
	p2 := configstore.Pipeline{ID: 2, SourceID: e.src.ID, DestinationIDs: []int64{2}, Tables: []string{"public.b"},
		Status: configstore.StatusStart}
	e.store.setPipeline(p2)
	e.event(contracts.KindPipeline, 2, contracts.ActionCreated)
	conn := e.pg.Connect(t, e.db)
	eventually(t, 20*time.Second, "table b in the publication", func() (bool, string) {
		tables, err := pgrepl.PublicationTables(context.Background(), conn, e.src.Publication)
		return err == nil && len(tables) == 2, fmt.Sprintf("%v %v", tables, err)
	})
	if _, p := e.slot(); p != pid {
		t.Errorf("slot now used by pid %d, was %d: the worker reconnected for a table change", p, pid)
	}
	e.exec("INSERT INTO b VALUES (1)")
	e.waitMsgs(2)
	if got := e.fetch(2, 2, 1); len(got) != 1 || got[0].change.Source.Table != "b" {
		t.Fatalf("new pipeline's consumer got %+v", got)
	}

	// Pause both: the worker stops, the slot stays.
	p1.Status, p2.Status = configstore.StatusPause, configstore.StatusPause
	e.store.setPipeline(p1)
	e.store.setPipeline(p2)
	e.event(contracts.KindPipeline, 1, contracts.ActionPaused)
	e.waitActive(false)
	eventually(t, 10*time.Second, "STOPPED state", func() (bool, string) {
		st := e.store.state()
		return st.State == StateStopped, fmt.Sprintf("%+v", st)
	})
	if s, _ := e.slot(); s.Name == "" {
		t.Fatal("pausing dropped the slot")
	}
	e.exec("INSERT INTO a VALUES (2)")
	e.exec("INSERT INTO b VALUES (2)")
	time.Sleep(300 * time.Millisecond)
	if n := len(e.streamMsgs()); n != 2 {
		t.Fatalf("stream has %d messages while paused, want 2", n)
	}

	// Start only pipeline 1: both tables are captured again (pipeline 2's
	// consumer buffers while it is paused), nothing written meanwhile lost.
	p1.Status = configstore.StatusStart
	e.store.setPipeline(p1)
	e.event(contracts.KindPipeline, 1, contracts.ActionStarted)
	e.waitActive(true)
	msgs := e.waitMsgs(4)
	if got := []string{msgs[2].change.Source.Table, msgs[3].change.Source.Table}; !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("changes written while paused = %v", got)
	}
	if got := e.fetch(2, 2, 1); len(got) != 1 || rowJSON(got[0].change.Key) != `{"id":2}` {
		t.Errorf("paused pipeline's consumer buffered %+v", got)
	}

	// Pipeline 2 deleted: capture, the one provisioner, deletes its
	// consumer so the stream stops keeping changes for it; pipeline 1's
	// stays, and so does a tap's consumer of another name.
	ctx := context.Background()
	if _, err := e.js.CreateOrUpdateConsumer(ctx, contracts.StreamName(e.src.ID), jetstream.ConsumerConfig{Durable: "tap", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	e.store.deletePipeline(2)
	e.event(contracts.KindPipeline, 2, contracts.ActionDeleted)
	exists := func(name string) bool {
		_, err := e.js.Consumer(ctx, contracts.StreamName(e.src.ID), name)
		return err == nil
	}
	eventually(t, 20*time.Second, "pipeline 2's consumer deleted", func() (bool, string) {
		return !exists(contracts.ConsumerName(2, 2)), ""
	})
	if !exists(contracts.ConsumerName(1, 1)) || !exists("tap") {
		t.Errorf("capture deleted a consumer it should keep: pipeline 1's %v, tap's %v", exists(contracts.ConsumerName(1, 1)), exists("tap"))
	}
}

func testFxModule(t *testing.T, pg *testkit.Postgres, js jetstream.JetStream) {
	e := newEnv(t, pg, js, 1004, `CREATE TABLE f (id int PRIMARY KEY)`)
	e.store.setPipeline(configstore.Pipeline{ID: 1, SourceID: e.src.ID, DestinationIDs: []int64{1},
		Tables: []string{"public.f"}, Status: configstore.StatusStart})
	s := settings.Default()
	s.StreamMaxBytes = 1 << 20
	app := fxtest.New(t,
		fx.Supply(&s, e.log),
		fx.Provide(
			func() ConfigStore { return e.store },
			func() jetstream.JetStream { return js },
		),
		Module,
	)
	app.RequireStart()
	e.waitActive(true)
	e.exec("INSERT INTO f VALUES (1)")
	e.waitMsgs(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := js.Stream(ctx, contracts.StreamName(e.src.ID))
	if err != nil {
		t.Fatal(err)
	}
	if cfg := info.CachedInfo().Config; cfg.MaxBytes != 1<<20 {
		t.Errorf("stream max bytes = %d, want the setting's %d", cfg.MaxBytes, 1<<20)
	}
	app.RequireStop()
	e.waitActive(false)
	if st := e.store.state(); st.State != StateStopped {
		t.Errorf("state after stop = %+v", st)
	}
}

// newTakeoverEnv is a source with one table in a started pipeline, and a
// config whose standbys try the slot every 200 ms.
func newTakeoverEnv(t *testing.T, pg *testkit.Postgres, js jetstream.JetStream, sourceID int64, table string) (*env, Config) {
	e := newEnv(t, pg, js, sourceID, fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY);", table))
	e.store.setPipeline(configstore.Pipeline{ID: 1, SourceID: e.src.ID, DestinationIDs: []int64{1}, Tables: []string{"public." + table},
		Status: configstore.StatusStart})
	cfg := testConfig()
	cfg.TakeoverInterval = 200 * time.Millisecond
	return e, cfg
}

// testStandbyTakeover runs two capture instances on one source: the one
// holding the slot publishes, the other is a standby that reports no state
// (no ERROR) and takes the slot over when the active one stops, with no
// change lost.
func testStandbyTakeover(t *testing.T, pg *testkit.Postgres, js jetstream.JetStream) {
	e, cfg := newTakeoverEnv(t, pg, js, 1005, "a")
	stopActive := e.start(cfg)
	activePID := e.waitActive(true)
	e.exec("INSERT INTO a VALUES (1)")
	e.waitMsgs(1)

	e.start(cfg)                // the standby
	time.Sleep(2 * time.Second) // several takeover attempts
	if _, pid := e.slot(); pid != activePID {
		t.Fatalf("slot moved to pid %d while the active capture (pid %d) ran", pid, activePID)
	}
	for _, st := range e.store.allStates() {
		if st.State != StateRunning {
			t.Fatalf("while one capture is active and one standby, a state %+v was reported", st)
		}
	}
	e.exec("INSERT INTO a VALUES (2)")
	e.waitMsgs(2)

	stopActive()
	stopped := time.Now()
	eventually(t, 20*time.Second, "the standby takes the slot", func() (bool, string) {
		s, pid := e.slot()
		return s.Active && pid != activePID, fmt.Sprintf("pid %d", pid)
	})
	t.Logf("standby took the slot %s after the active capture stopped", time.Since(stopped).Round(10*time.Millisecond))
	e.exec("INSERT INTO a VALUES (3)")
	msgs := e.waitMsgs(3)
	var keys []string
	for _, m := range msgs {
		keys = append(keys, rowJSON(m.change.Key))
	}
	if !slices.Equal(keys, []string{`{"id":1}`, `{"id":2}`, `{"id":3}`}) {
		t.Fatalf("stream holds %v, want ids 1, 2, 3 once each", keys)
	}
	eventually(t, 10*time.Second, "RUNNING reported by the new active capture", func() (bool, string) {
		st := e.store.state()
		return st.State == StateRunning, fmt.Sprintf("%+v", st)
	})
}
