package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// dlqFixture is one pipeline (source app.items -> a PostgreSQL destination
// in schema "one") run by a Manager with a Redis dead-letter queue, over a
// real config database, PostgreSQL destination, NATS and Redis. The
// destination table is created by the test, stricter than the source:
//
//	source:      id integer, name text,       amount numeric,      qty integer
//	destination: id integer, name varchar(5), amount numeric(5,2) (as domains), qty integer CHECK (qty >= 0)
type dlqFixture struct {
	t      *testing.T
	pg     *testkit.Postgres
	js     jetstream.JetStream
	redis  *testkit.Redis
	rdb    *redis.Client
	store  *configstore.Store
	q      *dlq.Queue
	m      *Manager
	dest   *pgx.Conn
	src    configstore.Source
	dst    configstore.Destination
	p      configstore.Pipeline
	lsn    uint64
	latest map[int]string // the source's state: id -> row text, "" when deleted
}

// newDLQFixture starts its own NATS and Redis: ids in a new config
// database start at 1, so fixtures must not share a stream.
func newDLQFixture(t *testing.T, pg *testkit.Postgres, queue dlq.Config) *dlqFixture {
	t.Helper()
	ctx := context.Background()
	_, js := testkit.StartNATS(t).Connect(t)
	f := &dlqFixture{t: t, pg: pg, js: js, redis: testkit.StartRedis(t), lsn: 0x1000, latest: map[int]string{}}
	f.rdb = redis.NewClient(&redis.Options{Addr: f.redis.Addr()})
	t.Cleanup(func() { f.rdb.Close() })
	var err error
	if f.q, err = dlq.New(f.rdb, queue); err != nil {
		t.Fatal(err)
	}
	box, err := secrets.NewBox("sink-dlq-test-key-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	if f.store, err = configstore.Open(ctx, pg.DSN(pg.CreateDatabase(t, "cfg")), box); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.store.Close)
	if err := f.store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	destDB := pg.CreateDatabase(t, "dest")
	// The narrow columns are domains: a plain varchar(5) or numeric(5,2)
	// would be widened to the source's text and numeric by the driver's
	// schema evolution, and the poison rows would apply.
	pg.Exec(t, destDB, `CREATE SCHEMA one;
		CREATE DOMAIN one.short_name AS varchar(5);
		CREATE DOMAIN one.small_amount AS numeric(5,2);
		CREATE TABLE one.items (id integer PRIMARY KEY, name one.short_name, amount one.small_amount,
			qty integer CONSTRAINT items_qty_check CHECK (qty >= 0))`)
	f.dest = pg.Connect(t, destDB)
	if f.src, err = f.store.CreateSource(ctx, configstore.SourceInput{Name: "src", Host: "127.0.0.1", Port: 1, Database: "s", User: "u"}); err != nil {
		t.Fatal(err)
	}
	if f.dst, err = f.store.CreateDestination(ctx, configstore.DestinationInput{Name: "warehouse", Type: "postgres", Config: map[string]any{
		"host": pg.Host(), "port": pg.Port, "database": destDB, "user": "postgres", "password": "unused", "schema": "one", "sslmode": "disable"}}); err != nil {
		t.Fatal(err)
	}
	if f.p, err = f.store.CreatePipeline(ctx, configstore.PipelineInput{Name: "p", SourceID: f.src.ID,
		DestinationIDs: []int64{f.dst.ID}, Tables: []string{"app.items"}}); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ReconcileInterval = 200 * time.Millisecond
	cfg.Runner.BatchWait = 50 * time.Millisecond
	cfg.Runner.MinBackoff = 50 * time.Millisecond
	cfg.Runner.MaxBackoff = 200 * time.Millisecond
	cfg.Runner.ReportEvery = 10 * time.Millisecond
	cfg.DLQ.PollInterval = 100 * time.Millisecond
	cfg.DLQ.Lease = 3 * time.Second
	f.m = NewManagerWithDLQ(cfg, f.store, js, f.q, f.store, quietLog())
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.m.Run(mctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// Paused, the consumer exists (capture creates it; this test stands
	// in): changes published now are kept for it and arrive in one batch
	// once the pipeline starts.
	provision(t, js, f.src.ID, f.p.ID, f.dst.ID)
	return f
}

func (f *dlqFixture) start() {
	f.t.Helper()
	if _, err := f.store.SetPipelineStatus(context.Background(), f.p.ID, configstore.StatusStart); err != nil {
		f.t.Fatal(err)
	}
	if err := natsx.PublishConfigEvent(context.Background(), f.js, contracts.ConfigEvent{Kind: contracts.KindPipeline, ID: f.p.ID, Action: contracts.ActionStarted}); err != nil {
		f.t.Fatal(err)
	}
	waitFor(f.t, "the runner", func() bool {
		_, ok := f.m.runnerFor(pairKey{f.p.ID, f.dst.ID})
		return ok
	})
}

// change publishes an insert or update of app.items with a new version and
// records the source's resulting row.
func (f *dlqFixture) change(op contracts.Op, id int, name, amount string, qty int) {
	f.t.Helper()
	f.lsn += 0x10
	c := contracts.Change{
		V: contracts.EnvelopeVersion, Op: op,
		Source: contracts.Source{SourceID: f.src.ID, Schema: "app", Table: "items", CommitLSN: contracts.FormatLSN(f.lsn), Seq: 1},
		Columns: []contracts.Column{
			{Name: "id", Type: "integer", BaseType: "integer", Key: true}, {Name: "name", Type: "text", BaseType: "text"},
			{Name: "amount", Type: "numeric", BaseType: "numeric"}, {Name: "qty", Type: "integer", BaseType: "integer"}},
		Key: contracts.Row{"id": json.RawMessage(fmt.Sprint(id))},
		After: contracts.Row{"id": json.RawMessage(fmt.Sprint(id)), "name": json.RawMessage(fmt.Sprintf("%q", name)),
			"amount": json.RawMessage(fmt.Sprintf("%q", amount)), "qty": json.RawMessage(fmt.Sprint(qty))},
	}
	body, _ := json.Marshal(c)
	if _, err := f.js.Publish(context.Background(), contracts.ChangeSubject(f.src.ID, "app", "items", 0), body); err != nil {
		f.t.Fatal(err)
	}
	f.latest[id] = fmt.Sprintf("%d|%s|%s|%d", id, name, amount, qty)
}

// rows is the destination table, one "id|name|amount|qty" per row.
func (f *dlqFixture) rows() string {
	// Twice: the first read after the test altered the table fails on the
	// connection's cached statement, which pgx then drops.
	out, err := f.readRows()
	if err != nil {
		out, err = f.readRows()
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return out
}

func (f *dlqFixture) readRows() (string, error) {
	rs, err := f.dest.Query(context.Background(), `SELECT id, name, amount::text, qty FROM one.items ORDER BY id`)
	if err != nil {
		return "", err
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var id, qty int
		var name, amount string
		if err := rs.Scan(&id, &name, &amount, &qty); err != nil {
			return "", err
		}
		out = append(out, fmt.Sprintf("%d|%s|%s|%d", id, name, amount, qty))
	}
	return strings.Join(out, ","), rs.Err()
}

// want is the destination the source's state calls for, minus the ids in
// missing.
func (f *dlqFixture) want(missing ...int) string {
	var out []string
	for id := 1; id <= 100; id++ {
		row, ok := f.latest[id]
		skip := false
		for _, m := range missing {
			skip = skip || m == id
		}
		if ok && !skip {
			out = append(out, row)
		}
	}
	return strings.Join(out, ",")
}

func (f *dlqFixture) entries() []dlq.Entry {
	f.t.Helper()
	page, err := f.q.List(context.Background(), dlq.ListOptions{SourceID: f.src.ID, DestinationID: f.dst.ID, Limit: 500})
	if err != nil {
		f.t.Fatal(err)
	}
	return page.Entries
}

func (f *dlqFixture) consumer() *jetstream.ConsumerInfo {
	f.t.Helper()
	c, err := f.js.Consumer(context.Background(), contracts.StreamName(f.src.ID), contracts.ConsumerName(f.p.ID, f.dst.ID))
	if err != nil {
		f.t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return info
}

// recover records a recovery and waits until a sink finished it.
func (f *dlqFixture) recover(in configstore.DLQRecoveryInput) configstore.DLQRecovery {
	f.t.Helper()
	in.PipelineID, in.DestinationID = f.p.ID, f.dst.ID
	r, err := f.store.CreateDLQRecovery(context.Background(), in)
	if err != nil {
		f.t.Fatal(err)
	}
	waitFor(f.t, "the recovery to finish", func() bool {
		r, err = f.store.GetDLQRecovery(context.Background(), r.ID)
		return err == nil && (r.Status == configstore.RecoveryCompleted || r.Status == configstore.RecoveryFailed)
	})
	return r
}

func (f *dlqFixture) fixDestination() {
	f.t.Helper()
	if _, err := f.dest.Exec(context.Background(), `ALTER TABLE one.items ALTER COLUMN name TYPE text,
		ALTER COLUMN amount TYPE numeric, DROP CONSTRAINT items_qty_check`); err != nil {
		f.t.Fatal(err)
	}
}

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	prefix := func() dlq.Config {
		c := dlq.DefaultConfig()
		c.Prefix = "dlq" + testkit.RandomSuffix()
		return c
	}

	t.Run("poison rows are dead-lettered, good rows of the batch arrive, recovery converges", func(t *testing.T) {
		t.Parallel()
		f := newDLQFixture(t, pg, prefix())
		for id := 1; id <= 10; id++ {
			switch id {
			case 3:
				f.change(contracts.OpCreate, id, "too long for five", "1.50", 1) // varchar(5)
			case 6:
				f.change(contracts.OpCreate, id, "six", "123456.50", 1) // numeric(5,2)
			case 8:
				f.change(contracts.OpCreate, id, "eight", "2.00", -1) // CHECK (qty >= 0)
			default:
				f.change(contracts.OpCreate, id, fmt.Sprintf("n%d", id), "1.50", id)
			}
		}
		f.start()
		waitFor(t, "the good rows", func() bool { return f.rows() == f.want(3, 6, 8) })
		waitFor(t, "every message acked", func() bool { info := f.consumer(); return info.AckFloor.Stream == 10 && info.NumAckPending == 0 })
		entries := f.entries()
		classes := map[string]string{}
		for _, e := range entries {
			var c contracts.Change
			if err := json.Unmarshal(e.Change, &c); err != nil {
				t.Fatal(err)
			}
			classes[string(c.Key["id"])] = e.ErrorClass
			if e.Table != "app.items" || e.Attempts != 1 || e.PipelineID != f.p.ID || e.Stream != contracts.StreamName(f.src.ID) ||
				e.StreamSeq == 0 || e.Subject != contracts.ChangeSubject(f.src.ID, "app", "items", 0) || e.Error == "" {
				t.Errorf("entry = %+v", e)
			}
		}
		if fmt.Sprint(classes) != "map[3:value_too_long 6:out_of_range 8:constraint_violation]" {
			t.Fatalf("dead-lettered = %v", classes)
		}
		// The retention loop trims the queues of the pipeline destinations
		// the manager runs.
		if qs := f.m.queueList(); len(qs) != 1 || qs[0] != (queueKey{SourceID: f.src.ID, DestinationID: f.dst.ID}) {
			t.Fatalf("queues to trim = %v", qs)
		}
		if key := f.q.Key(f.src.ID, "app.items", f.dst.ID); !strings.HasSuffix(key, fmt.Sprintf(":%d:app.items:%d", f.src.ID, f.dst.ID)) {
			t.Fatalf("stream key %q", key)
		}
		waitFor(t, "healthy with dead letters noted", func() bool {
			states, _ := f.store.DestinationStates(context.Background(), f.p.ID)
			return len(states) == 1 && states[0].Health == configstore.HealthHealthy && strings.Contains(states[0].LastError, "dead-letter")
		})

		// Newer versions of 3 and 8 arrive and apply: the dead-lettered
		// ones are now older than the destination's rows.
		f.change(contracts.OpUpdate, 3, "three", "3.00", 3)
		f.change(contracts.OpUpdate, 8, "eight", "8.00", 8)
		waitFor(t, "the newer rows", func() bool { return f.rows() == f.want(6) })

		// Recovery before the cause is fixed: the old 8 is superseded by
		// the newer row (the version guard skips it, so the CHECK never
		// sees it) and leaves the queue; 3 and 6 still do not fit their
		// columns and stay, attempts raised.
		r := f.recover(configstore.DLQRecoveryInput{})
		if r.Status != configstore.RecoveryCompleted || r.Replayed != 1 || r.Failed != 2 {
			t.Fatalf("recovery before the fix = %+v", r)
		}
		left := f.entries()
		if len(left) != 2 {
			t.Fatalf("entries after a failed replay: %+v", left)
		}
		for _, e := range left {
			if e.Attempts != 2 || !e.LastFailedAt.After(e.FirstFailedAt) {
				t.Errorf("entry %s after a failed replay: attempts %d, want 2", e.MsgID, e.Attempts)
			}
		}
		if got := f.rows(); got != f.want(6) {
			t.Fatalf("a replay changed the destination: %s", got)
		}

		f.fixDestination()
		r = f.recover(configstore.DLQRecoveryInput{Table: "app.items"})
		if r.Status != configstore.RecoveryCompleted || r.Replayed != 2 || r.Failed != 0 || r.LastError != "" {
			t.Fatalf("recovery after the fix = %+v", r)
		}
		// The old 3 did not overwrite the newer row.
		if got, want := f.rows(), f.want(); got != want {
			t.Fatalf("destination after recovery:\n%s\nsource:\n%s", got, want)
		}
		if left := f.entries(); len(left) != 0 {
			t.Fatalf("entries left: %+v", left)
		}
		if pend := f.rdb.XPending(context.Background(), f.q.Key(f.src.ID, "app.items", f.dst.ID), dlq.DefaultConfig().Group).Val(); pend.Count != 0 {
			t.Fatalf("pending left: %+v", pend)
		}
	})

	t.Run("redis down while a record fails: it stays unacked, then exactly one entry", func(t *testing.T) {
		t.Parallel()
		f := newDLQFixture(t, pg, prefix())
		f.redis.Kill()
		f.change(contracts.OpCreate, 1, "one", "1.00", 1)
		f.change(contracts.OpCreate, 2, "way too long", "1.00", 1)
		f.change(contracts.OpCreate, 3, "three", "1.00", 1)
		f.start()
		waitFor(t, "the good rows", func() bool { return f.rows() == f.want(2) })
		waitFor(t, "the queue's failure in the destination's health", func() bool {
			states, _ := f.store.DestinationStates(context.Background(), f.p.ID)
			return len(states) == 1 && states[0].Health == configstore.HealthError &&
				strings.Contains(states[0].LastError, "dead-letter queue (it stays unacked and is retried)")
		})
		time.Sleep(300 * time.Millisecond) // several failed writes
		if info := f.consumer(); info.NumAckPending != 1 || info.AckFloor.Stream != 1 {
			t.Fatalf("while redis is down: ack floor %d, pending %d; want the rejected change pending",
				info.AckFloor.Stream, info.NumAckPending)
		}
		f.redis.Restart(t)
		waitFor(t, "acked once stored", func() bool { info := f.consumer(); return info.AckFloor.Stream == 3 && info.NumAckPending == 0 })
		time.Sleep(300 * time.Millisecond)
		entries := f.entries()
		if len(entries) != 1 || !strings.Contains(string(entries[0].Change), "way too long") {
			t.Fatalf("entries = %+v, want exactly the rejected change", entries)
		}
		f.fixDestination()
		if r := f.recover(configstore.DLQRecoveryInput{}); r.Replayed != 1 {
			t.Fatalf("recovery = %+v", r)
		}
		if got, want := f.rows(), f.want(); got != want {
			t.Fatalf("destination %s, source %s", got, want)
		}
	})

	t.Run("a replay worker stopped mid-way leaves its entries to the next", func(t *testing.T) {
		t.Parallel()
		cfg := prefix()
		cfg.ApplyBatch = 1
		f := newDLQFixture(t, pg, cfg)
		for id := 1; id <= 5; id++ {
			f.change(contracts.OpCreate, id, fmt.Sprintf("long name %d", id), "1.00", id)
		}
		f.start()
		waitFor(t, "5 entries", func() bool { return len(f.entries()) == 5 })
		f.fixDestination()
		ref, _ := f.m.runnerFor(pairKey{f.p.ID, f.dst.ID})
		ctx, cancel := context.WithCancel(context.Background())
		var applied atomic.Int64
		_, err := f.q.Replay(ctx, dlq.ReplayOptions{SourceID: f.src.ID, DestinationID: f.dst.ID, Consumer: "doomed"},
			func(ctx context.Context, cs []contracts.Change) ([]error, error) {
				failed, err := ref.runner.Replay(ctx, cs)
				if applied.Add(int64(len(cs))) == 2 {
					cancel() // the worker dies between entries
				}
				return failed, err
			})
		if err == nil {
			t.Fatal("the stopped replay returned no error")
		}
		key := f.q.Key(f.src.ID, "app.items", f.dst.ID)
		if pend := f.rdb.XPending(context.Background(), key, cfg.Group).Val(); pend.Count != 3 || pend.Consumers["doomed"] != 3 {
			t.Fatalf("pending after the stop = %+v, want 3 left by the stopped worker", pend)
		}
		r := f.recover(configstore.DLQRecoveryInput{})
		if r.Status != configstore.RecoveryCompleted || r.Replayed != 3 {
			t.Fatalf("recovery = %+v, want the 3 reclaimed entries replayed", r)
		}
		if got, want := f.rows(), f.want(); got != want {
			t.Fatalf("destination %s, source %s", got, want)
		}
		if n := f.rdb.XLen(context.Background(), key).Val(); n != 0 {
			t.Fatalf("%d entries left", n)
		}
	})
}

// The module dead-letters when a *redis.Client is provided, and replays
// recoveries when the config store can hold them.
func TestModuleWithRedis(t *testing.T) {
	t.Parallel()
	_, js := testkit.StartNATS(t).Connect(t)
	r := testkit.StartRedis(t)
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rc.Close() })
	build := func(store ConfigStore, withRedis bool) *Manager {
		t.Helper()
		s := settings.Default()
		var m *Manager
		opts := []fx.Option{fx.NopLogger, fx.Supply(&s, quietLog()),
			fx.Provide(func() ConfigStore { return store }, func() jetstream.JetStream { return js }),
			fx.Populate(&m), Module}
		if withRedis {
			opts = append(opts, fx.Supply(rc))
		}
		if err := fx.New(opts...).Err(); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := build(newMemStore(), false); m.dlq != nil || m.recoveries != nil {
		t.Error("without redis: dead-letter queue enabled")
	}
	if m := build(newMemStore(), true); m.dlq == nil || m.recoveries != nil {
		t.Errorf("redis and a store without recoveries: dlq %v, recoveries %v", m.dlq != nil, m.recoveries != nil)
	}
	if m := build(&configstore.Store{}, true); m.dlq == nil || m.recoveries == nil {
		t.Error("redis and a configstore.Store: want dead letters and recoveries")
	}
}
