package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/pkg/testkit"
	"github.com/rosettacdc/rosetta/services/sink/drivers/postgres"
)

// memStore fakes the config store only; PostgreSQL and NATS are real.
type memStore struct {
	mu        sync.Mutex
	pipelines map[int64]configstore.Pipeline
	dests     map[int64]configstore.Destination
	states    map[pairKey]configstore.DestinationState
}

func newMemStore() *memStore {
	return &memStore{pipelines: map[int64]configstore.Pipeline{}, dests: map[int64]configstore.Destination{},
		states: map[pairKey]configstore.DestinationState{}}
}

func (s *memStore) ListAllPipelines(context.Context) ([]configstore.Pipeline, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []configstore.Pipeline
	for _, p := range s.pipelines {
		out = append(out, p)
	}
	return out, nil
}

func (s *memStore) DestinationWithSecrets(_ context.Context, id int64) (configstore.Destination, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dests[id]
	if !ok {
		return configstore.Destination{}, fmt.Errorf("destination %d: %w", id, configstore.ErrNotFound)
	}
	return d, nil
}

func (s *memStore) SetDestinationState(_ context.Context, st configstore.DestinationState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states[pairKey{st.PipelineID, st.DestinationID}] = st
	return nil
}

func (s *memStore) state(p, d int64) configstore.DestinationState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.states[pairKey{p, d}]
}

func (s *memStore) update(fn func(s *memStore)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}

// countingDrivers wraps the built-in drivers to count opened and closed
// drivers, so tests see restarts.
type countingDrivers struct {
	opened, closed atomic.Int64
}

type countedDriver struct {
	sinkrunner.Driver
	c *countingDrivers
}

func (d countedDriver) Close() error {
	d.c.closed.Add(1)
	return d.Driver.Close()
}

func (c *countingDrivers) drivers() Drivers {
	out := Drivers{}
	for typ, f := range BuiltinDrivers() {
		out[typ] = func(ctx context.Context, raw json.RawMessage, log *slog.Logger) (sinkrunner.Driver, error) {
			d, err := f(ctx, raw, log)
			if err != nil {
				return nil, err
			}
			c.opened.Add(1)
			return countedDriver{Driver: d, c: c}, nil
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// provision creates the source's stream and a pipeline destination's
// consumer on app.items and app.orders, as capture does before it publishes.
func provision(t *testing.T, js jetstream.JetStream, source, pipeline int64, dests ...int64) {
	t.Helper()
	ctx := context.Background()
	// What capture provisions, the config stream included: a sink only
	// reads it.
	if err := natsx.EnsureConfigStream(ctx, js); err != nil {
		t.Fatal(err)
	}
	if _, err := natsx.EnsureSourceStream(ctx, js, source, natsx.StreamLimits{MaxBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	for _, d := range dests {
		if _, err := natsx.EnsurePipelineConsumer(ctx, js, source, pipeline, d,
			[]natsx.Table{{Schema: "app", Name: "items"}, {Schema: "app", Name: "orders"}}); err != nil {
			t.Fatal(err)
		}
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func change(op contracts.Op, source int64, table string, lsn uint64, id int, name string) contracts.Change {
	c := contracts.Change{
		V:  contracts.EnvelopeVersion,
		Op: op,
		Source: contracts.Source{SourceID: source, Schema: "app", Table: table,
			CommitLSN: contracts.FormatLSN(lsn), Seq: 1},
		Columns: []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true}, {Name: "name", Type: "text", BaseType: "text"}},
		Key:     contracts.Row{"id": json.RawMessage(fmt.Sprint(id))},
	}
	if op != contracts.OpDelete {
		c.After = contracts.Row{"id": json.RawMessage(fmt.Sprint(id)), "name": json.RawMessage(fmt.Sprintf("%q", name))}
	}
	return c
}

func TestManager(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	ctx := context.Background()
	db := pg.CreateDatabase(t, "dest")
	conn := pg.Connect(t, db)

	const source, pipeline, pgDest, sfDest = 21, 5, 10, 11
	store := newMemStore()
	store.dests[pgDest] = configstore.Destination{ID: pgDest, Name: "warehouse", Type: "postgres",
		Config:  map[string]any{"host": pg.Host(), "port": pg.Port, "database": db, "user": "postgres", "schema": "one", "sslmode": "disable"},
		Secrets: map[string]string{"password": "unused-by-trust-auth"}}
	store.dests[sfDest] = configstore.Destination{ID: sfDest, Name: "other", Type: "oracle", Config: map[string]any{"host": "x"}}
	store.pipelines[pipeline] = configstore.Pipeline{ID: pipeline, Name: "p", SourceID: source,
		DestinationIDs: []int64{pgDest, sfDest}, Tables: []string{"app.items"}, Status: configstore.StatusStart}

	counts := &countingDrivers{}
	cfg := DefaultConfig()
	cfg.Drivers = counts.drivers()
	cfg.ReconcileInterval = time.Hour // config events drive this test
	cfg.Runner.BatchWait = 50 * time.Millisecond
	cfg.Runner.MinBackoff = 50 * time.Millisecond
	cfg.Runner.ReportEvery = 10 * time.Millisecond
	provision(t, js, source, pipeline, pgDest, sfDest)
	m := NewManager(cfg, store, js, quietLog())
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(mctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	notify := func(kind contracts.ConfigKind, id int64) {
		t.Helper()
		if err := natsx.PublishConfigEvent(ctx, js, contracts.ConfigEvent{Kind: kind, ID: id, Action: contracts.ActionUpdated}); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(changes ...contracts.Change) {
		t.Helper()
		for _, c := range changes {
			body, _ := json.Marshal(c)
			if _, err := js.Publish(ctx, contracts.ChangeSubject(source, "app", c.Source.Table, 0), body); err != nil {
				t.Fatal(err)
			}
		}
	}
	rows := func(query string) string {
		var out []string
		rs, err := conn.Query(ctx, query)
		if err != nil {
			return "error: " + err.Error()
		}
		defer rs.Close()
		for rs.Next() {
			var id int
			var name string
			if err := rs.Scan(&id, &name); err != nil {
				return "error: " + err.Error()
			}
			out = append(out, fmt.Sprintf("%d=%s", id, name))
		}
		return strings.Join(out, ",")
	}
	consumerExists := func(p, d int64) bool {
		_, err := js.Consumer(ctx, contracts.StreamName(source), contracts.ConsumerName(p, d))
		return err == nil
	}

	// Started: postgres applies, the unsupported type says why not.
	publish(change(contracts.OpCreate, source, "items", 10, 1, "a"), change(contracts.OpCreate, source, "items", 11, 2, "b"))
	waitFor(t, "rows in one.items", func() bool { return rows(`SELECT id, name FROM one.items ORDER BY id`) == "1=a,2=b" })
	waitFor(t, "healthy", func() bool { return store.state(pipeline, pgDest).Health == configstore.HealthHealthy })
	if st := store.state(pipeline, sfDest); st.Health != configstore.HealthError ||
		st.LastError != "destination type oracle is not supported by this build yet" {
		t.Errorf("unsupported destination state = %+v", st)
	}

	// Paused: the runner stops, changes wait in the stream.
	store.update(func(s *memStore) {
		p := s.pipelines[pipeline]
		p.Status = configstore.StatusPause
		s.pipelines[pipeline] = p
	})
	notify(contracts.KindPipeline, pipeline)
	waitFor(t, "paused", func() bool { return store.state(pipeline, pgDest).Health == configstore.HealthPaused })
	// The same reconcile pass reports the other destination just after.
	waitFor(t, "unsupported destination of a paused pipeline PAUSED", func() bool {
		return store.state(pipeline, sfDest).Health == configstore.HealthPaused
	})
	waitFor(t, "driver closed", func() bool { return counts.closed.Load() == 1 })
	publish(change(contracts.OpUpdate, source, "items", 20, 1, "a while paused"))
	time.Sleep(500 * time.Millisecond)
	if got := rows(`SELECT id, name FROM one.items ORDER BY id`); got != "1=a,2=b" {
		t.Errorf("rows changed while paused: %s", got)
	}

	// Started again: what waited arrives.
	store.update(func(s *memStore) {
		p := s.pipelines[pipeline]
		p.Status = configstore.StatusStart
		s.pipelines[pipeline] = p
	})
	notify(contracts.KindPipeline, pipeline)
	waitFor(t, "rows after resume", func() bool { return rows(`SELECT id, name FROM one.items ORDER BY id`) == "1=a while paused,2=b" })
	if got := counts.opened.Load(); got != 2 {
		t.Errorf("drivers opened = %d, want 2", got)
	}

	// A destination config change restarts its runner with the new config.
	store.update(func(s *memStore) { d := s.dests[pgDest]; d.Config["schema"] = "two"; s.dests[pgDest] = d })
	notify(contracts.KindDestination, pgDest)
	waitFor(t, "restart", func() bool { return counts.opened.Load() == 3 && counts.closed.Load() == 2 })
	publish(change(contracts.OpCreate, source, "items", 30, 3, "c"))
	waitFor(t, "rows in two.items", func() bool { return rows(`SELECT id, name FROM two.items ORDER BY id`) == "3=c" })

	// A table added to the pipeline (capture widens the consumer's
	// filter; provision did already): the runner restarts and applies it.
	store.update(func(s *memStore) {
		p := s.pipelines[pipeline]
		p.Tables = []string{"app.items", "app.orders"}
		s.pipelines[pipeline] = p
	})
	notify(contracts.KindPipeline, pipeline)
	waitFor(t, "restart for the new table", func() bool { return counts.opened.Load() == 4 })
	publish(change(contracts.OpCreate, source, "orders", 40, 7, "order"))
	waitFor(t, "rows in two.orders", func() bool { return rows(`SELECT id, name FROM two.orders`) == "7=order" })

	// No restart without a change.
	m2 := counts.opened.Load()
	notify(contracts.KindPipeline, pipeline)
	time.Sleep(300 * time.Millisecond)
	if got := counts.opened.Load(); got != m2 {
		t.Errorf("reconcile without a change restarted the runner (%d -> %d)", m2, got)
	}

	// The destination is removed from the pipeline, then the pipeline
	// goes: the runners stop; the consumers are capture's to delete, so
	// they are still there.
	store.update(func(s *memStore) {
		p := s.pipelines[pipeline]
		p.DestinationIDs = []int64{pgDest}
		s.pipelines[pipeline] = p
	})
	notify(contracts.KindPipeline, pipeline)
	store.update(func(s *memStore) { delete(s.pipelines, pipeline) })
	notify(contracts.KindPipeline, pipeline)
	waitFor(t, "runner stopped", func() bool { return counts.closed.Load() == counts.opened.Load() })
	if !consumerExists(pipeline, pgDest) || !consumerExists(pipeline, sfDest) {
		t.Error("the sink deleted a consumer: deleting them is capture's")
	}
}

func TestManagerReportsUnusableConfig(t *testing.T) {
	t.Parallel()
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	store := newMemStore()
	store.dests[1] = configstore.Destination{ID: 1, Type: "postgres", Config: map[string]any{"host": "h"},
		Secrets: map[string]string{"password": "hunter2-secret"}}
	store.pipelines[1] = configstore.Pipeline{ID: 1, SourceID: 31, DestinationIDs: []int64{1, 2}, Tables: []string{"app.t"}, Status: configstore.StatusStart}
	store.pipelines[2] = configstore.Pipeline{ID: 2, SourceID: 31, DestinationIDs: []int64{1}, Tables: []string{"no_schema"}, Status: configstore.StatusStart}
	provision(t, js, 31, 1, 1, 2)
	m := NewManager(DefaultConfig(), store, js, quietLog())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m.reconcile(ctx)
	defer m.stopAll()
	tests := []struct {
		p, d int64
		want string
	}{
		{1, 1, "database is empty"},
		{1, 2, "destination 2 does not exist"},
		{2, 1, `pipeline table "no_schema" is not schema.table`},
	}
	for _, tt := range tests {
		st := store.state(tt.p, tt.d)
		if st.Health != configstore.HealthError || !strings.Contains(st.LastError, tt.want) {
			t.Errorf("pipeline %d destination %d: %+v, want ERROR containing %q", tt.p, tt.d, st, tt.want)
		}
		if strings.Contains(st.LastError, "hunter2") {
			t.Errorf("state leaks a secret: %q", st.LastError)
		}
	}
}

func TestModule(t *testing.T) {
	t.Parallel()
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	store := newMemStore()
	store.dests[1] = configstore.Destination{ID: 1, Type: "oracle"}
	store.pipelines[1] = configstore.Pipeline{ID: 1, SourceID: 41, DestinationIDs: []int64{1}, Tables: []string{"app.t"}, Status: configstore.StatusStart}
	provision(t, js, 41, 1, 1)
	s := settings.Default()
	app := fx.New(
		fx.NopLogger,
		fx.Supply(&s, quietLog()),
		fx.Provide(func() ConfigStore { return store }, func() jetstream.JetStream { return js }),
		Module,
	)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the module to reconcile", func() bool {
		return store.state(1, 1).LastError == "destination type oracle is not supported by this build yet"
	})
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Consumer(ctx, contracts.StreamName(41), contracts.ConsumerName(1, 1)); err != nil {
		t.Errorf("consumer of the pipeline destination: %v", err)
	}
}

// The built-in postgres driver is what BuiltinDrivers composes.
var _ DriverFactory = postgres.Factory

func TestParseTables(t *testing.T) {
	t.Parallel()
	got, err := parseTables([]string{"public.a", "s.b.c"})
	if err != nil || len(got) != 2 || got[1] != (natsx.Table{Schema: "s", Name: "b.c"}) {
		t.Errorf("parseTables = %v, %v", got, err)
	}
	for _, bad := range [][]string{nil, {"nodot"}, {".t"}, {"s."}} {
		if _, err := parseTables(bad); err == nil {
			t.Errorf("parseTables(%q): want error", bad)
		}
	}
}

// TestManagerRunsOnlyItsDestinations runs two managers as two `rosetta sink
// --destinations` instances would: each applies its own destination's
// changes only, and reports and provisions nothing of the other's.
func TestManagerRunsOnlyItsDestinations(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	ctx := context.Background()
	db := pg.CreateDatabase(t, "dest")
	conn := pg.Connect(t, db)

	const source, pipeline, destA, destB = 51, 6, 3, 7
	store := newMemStore()
	for id, schema := range map[int64]string{destA: "a", destB: "b"} {
		store.dests[id] = configstore.Destination{ID: id, Name: schema, Type: "postgres",
			Config:  map[string]any{"host": pg.Host(), "port": pg.Port, "database": db, "user": "postgres", "schema": schema, "sslmode": "disable"},
			Secrets: map[string]string{"password": "unused-by-trust-auth"}}
	}
	store.pipelines[pipeline] = configstore.Pipeline{ID: pipeline, Name: "p", SourceID: source,
		DestinationIDs: []int64{destA, destB}, Tables: []string{"app.items"}, Status: configstore.StatusStart}

	start := func(dests ...int64) {
		cfg := DefaultConfig()
		cfg.Destinations = dests
		cfg.ReconcileInterval = 200 * time.Millisecond
		cfg.Runner.BatchWait = 20 * time.Millisecond
		m := NewManager(cfg, store, js, quietLog())
		mctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Run(mctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	count := func(schema string) int {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.items`).Scan(&n); err != nil {
			return -1 // no table yet
		}
		return n
	}
	publish := func(id int) {
		t.Helper()
		body, _ := json.Marshal(change(contracts.OpCreate, source, "items", uint64(100+id), id, "x"))
		if _, err := js.Publish(ctx, contracts.ChangeSubject(source, "app", "items", 0), body); err != nil {
			t.Fatal(err)
		}
	}

	// Both consumers exist (capture creates them; the changes wait in
	// the stream for B's sink).
	provision(t, js, source, pipeline, destA, destB)
	start(destA)
	for id := 1; id <= 5; id++ {
		publish(id)
	}
	waitFor(t, "five rows in a.items", func() bool { return count("a") == 5 })
	time.Sleep(time.Second) // several reconciles of the A-only sink
	if got := count("b"); got != -1 {
		t.Fatalf("destination B was written by a sink running only A: b.items has %d rows", got)
	}
	if st := store.state(pipeline, destB); st.Health != "" {
		t.Fatalf("destination B's health reported by a sink running only A: %+v", st)
	}

	// B's own sink instance picks up what waited for it, and A's sink is
	// unaffected.
	start(destB)
	waitFor(t, "five rows in b.items", func() bool { return count("b") == 5 })
	publish(6)
	waitFor(t, "six rows in both", func() bool { return count("a") == 6 && count("b") == 6 })
}

// TestManagerWaitsForCapturesConsumer: a started pipeline destination whose
// consumer capture has not created yet is looked at again every
// ConsumerRetry, reported ERROR after ConsumerGrace with what to check, and
// runs as soon as the consumer appears.
func TestManagerWaitsForCapturesConsumer(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	ctx := context.Background()
	db := pg.CreateDatabase(t, "dest")
	conn := pg.Connect(t, db)
	const source, pipeline, dest = 61, 8, 4
	store := newMemStore()
	store.dests[dest] = configstore.Destination{ID: dest, Name: "w", Type: "postgres",
		Config:  map[string]any{"host": pg.Host(), "port": pg.Port, "database": db, "user": "postgres", "schema": "w", "sslmode": "disable"},
		Secrets: map[string]string{"password": "unused-by-trust-auth"}}
	store.pipelines[pipeline] = configstore.Pipeline{ID: pipeline, SourceID: source, DestinationIDs: []int64{dest},
		Tables: []string{"app.items"}, Status: configstore.StatusStart}
	cfg := DefaultConfig()
	cfg.ReconcileInterval = time.Hour // only the consumer retry reconciles
	cfg.ConsumerRetry = 100 * time.Millisecond
	cfg.ConsumerGrace = 300 * time.Millisecond
	cfg.Runner.BatchWait = 20 * time.Millisecond
	m := NewManager(cfg, store, js, quietLog())
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(mctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "ERROR naming the missing consumer", func() bool {
		st := store.state(pipeline, dest)
		return st.Health == configstore.HealthError && strings.Contains(st.LastError, "is rosetta capture running")
	})
	provision(t, js, source, pipeline, dest)
	body, _ := json.Marshal(change(contracts.OpCreate, source, "items", 10, 1, "a"))
	if _, err := js.Publish(ctx, contracts.ChangeSubject(source, "app", "items", 0), body); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the row, once the consumer exists", func() bool {
		var n int
		return conn.QueryRow(ctx, `SELECT count(*) FROM w.items`).Scan(&n) == nil && n == 1
	})
}
