package backfill

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/pgrepl"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// fixture is a config store, a source database with a table "items"
// that capture would follow (slot and publication made here), and NATS
// with the source's stream and the pipeline's consumer.
type fixture struct {
	t        testing.TB
	pg       *testkit.Postgres
	store    *configstore.Store
	nc       *nats.Conn
	js       jetstream.JetStream
	sourceDB string
	src      configstore.Source
	pipeline configstore.Pipeline
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFixture(t testing.TB, pg *testkit.Postgres, rows int) *fixture {
	t.Helper()
	return newFixtureParts(t, pg, rows, 1, 1)
}

// newFixtureParts is newFixture with a source of partitions partitions,
// of which capture has created the first ready consumers.
func newFixtureParts(t testing.TB, pg *testkit.Postgres, rows, partitions, ready int) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, pg: pg}
	box, err := secrets.NewBox("backfill-test-key-0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	f.store, err = configstore.Open(ctx, pg.DSN(pg.CreateDatabase(t, "cfg")), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.store.Close)
	if err := f.store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f.sourceDB = pg.CreateDatabase(t, "src")
	pg.Exec(t, f.sourceDB, `CREATE TABLE items (id bigint PRIMARY KEY, name text, amount numeric(10,2), flag boolean, at timestamptz);
		INSERT INTO items SELECT g, 'n' || g, g * 1.25, g % 2 = 0, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
		FROM generate_series(1, `+fmt.Sprint(rows)+`) g; ANALYZE items`)
	suffix := testkit.RandomSuffix()
	f.src, err = f.store.CreateSource(ctx, configstore.SourceInput{Name: "src_" + suffix, Host: pg.Host(), Port: pg.Port,
		Database: f.sourceDB, User: "postgres", Publication: "pub_" + suffix, Slot: "slot_" + suffix, SSLMode: "disable",
		Partitions: &partitions})
	if err != nil {
		t.Fatal(err)
	}
	dest, err := f.store.CreateDestination(ctx, configstore.DestinationInput{Name: "dst_" + suffix, Type: "postgres",
		Config: map[string]any{"host": "127.0.0.1", "port": 1, "database": "x", "user": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	f.pipeline, err = f.store.CreatePipeline(ctx, configstore.PipelineInput{Name: "p_" + suffix, SourceID: f.src.ID,
		DestinationIDs: []int64{dest.ID}, Tables: []string{"public.items"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.pipeline, err = f.store.SetPipelineStatus(ctx, f.pipeline.ID, configstore.StatusStart); err != nil {
		t.Fatal(err)
	}
	// What capture does before a table's changes can flow.
	n := testkit.StartNATS(t)
	f.nc, f.js = n.Connect(t)
	if _, err := natsx.EnsureSourceStream(ctx, f.js, f.src.ID, natsx.StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	tables := []natsx.Table{{Schema: "public", Name: "items"}}
	for part := range ready {
		cfg := natsx.PipelineConsumerConfig(f.src.ID, f.pipeline.ID, dest.ID, tables, part, partitions)
		if _, err := f.js.CreateOrUpdateConsumer(ctx, contracts.StreamName(f.src.ID), cfg); err != nil {
			t.Fatal(err)
		}
	}
	conn := pg.Connect(t, f.sourceDB)
	if err := pgrepl.EnsurePublication(ctx, conn, f.src.Publication, tables); err != nil {
		t.Fatal(err)
	}
	if err := pgrepl.EnsureSlot(ctx, conn, f.src.Slot); err != nil {
		t.Fatal(err)
	}
	return f
}

func testConfig() Config {
	c := DefaultConfig()
	c.PollInterval = 50 * time.Millisecond
	c.Lease = 5 * time.Second
	c.StatementTimeout = 4 * time.Second
	c.NotReadyWait = 100 * time.Millisecond
	c.RetryWait = 100 * time.Millisecond
	return c
}

// start runs a worker until the returned stop is called (or the test ends).
func (f *fixture) start(cfg Config) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = New(cfg, f.store, f.nc, quietLog()).Run(ctx)
	}()
	stop = func() {
		cancel()
		<-done
	}
	f.t.Cleanup(stop)
	return stop
}

func (f *fixture) job(id int64) configstore.BackfillJob {
	f.t.Helper()
	j, err := f.store.GetBackfillJob(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

func (f *fixture) waitJob(id int64, what string, cond func(configstore.BackfillJob) bool) configstore.BackfillJob {
	f.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		j := f.job(id)
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("job %d: timed out waiting for %s; job is %+v", id, what, j)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stored is one message of the source's stream, decoded.
type stored struct {
	subject string
	header  nats.Header
	data    []byte
	changes []contracts.Change
}

// stream returns every message in the source's stream.
func (f *fixture) stream() []stored {
	f.t.Helper()
	ctx := context.Background()
	s, err := f.js.Stream(ctx, contracts.StreamName(f.src.ID))
	if err != nil {
		f.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []stored
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			f.t.Fatalf("get msg %d: %v", seq, err)
		}
		msg, err := contracts.DecodeMessage(m.Data)
		if err != nil {
			f.t.Fatalf("msg %d: %v", seq, err)
		}
		st := stored{subject: m.Subject, header: m.Header, data: m.Data}
		for _, c := range msg.All() {
			st.changes = append(st.changes, c)
		}
		out = append(out, st)
	}
	return out
}

// published returns every change in the source's stream, in stream order.
func (f *fixture) published() []contracts.Change {
	f.t.Helper()
	var out []contracts.Change
	for _, m := range f.stream() {
		out = append(out, m.changes...)
	}
	return out
}

// ids returns the published rows' ids, sorted, failing on a duplicate.
func (f *fixture) ids(changes []contracts.Change) []int64 {
	f.t.Helper()
	seen := map[int64]bool{}
	var ids []int64
	for _, c := range changes {
		var id int64
		if err := json.Unmarshal(c.Key["id"], &id); err != nil {
			f.t.Fatalf("key of %+v: %v", c, err)
		}
		if seen[id] {
			f.t.Fatalf("row %d published twice", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func (f *fixture) sourceIDs(where string) []int64 {
	f.t.Helper()
	conn := f.pg.Connect(f.t, f.sourceDB)
	rows, err := conn.Query(context.Background(), "SELECT id FROM items WHERE "+where+" ORDER BY id")
	if err != nil {
		f.t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		f.t.Fatal(err)
	}
	return ids
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWorker(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)

	t.Run("filtered backfill publishes only matching rows, as capture would", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, pg, 2000)
		ctx := context.Background()
		filters := []configstore.BackfillFilter{
			{Column: "id", Op: ">", Value: json.RawMessage(`100`)},
			{Column: "flag", Op: "=", Value: json.RawMessage(`true`)},
			{Column: "name", Op: "like", Value: json.RawMessage(`"n1%"`)},
			{Column: "amount", Op: "not in", Value: json.RawMessage(`["125.00", 250]`)},
			{Column: "at", Op: "is not null"},
		}
		j, err := f.store.CreateBackfillJob(ctx, configstore.BackfillInput{PipelineID: f.pipeline.ID, Table: "public.items", Filters: filters, BatchSize: 70})
		if err != nil {
			t.Fatal(err)
		}
		f.start(testConfig())
		j = f.waitJob(j.ID, "COMPLETED", func(j configstore.BackfillJob) bool { return j.Status == configstore.JobCompleted })
		want := f.sourceIDs("id > 100 AND flag AND name LIKE 'n1%' AND amount NOT IN (125.00, 250) AND at IS NOT NULL")
		changes := f.published()
		if got := f.ids(changes); !equalIDs(got, want) {
			t.Fatalf("published %d rows, want %d", len(got), len(want))
		}
		if j.RowsCopied != int64(len(want)) || j.RowsTotal == nil || *j.RowsTotal != int64(len(want)) {
			t.Fatalf("rows_copied %d rows_total %v, want %d", j.RowsCopied, j.RowsTotal, len(want))
		}
		c := changes[0]
		if c.Op != contracts.OpRead || !c.Source.Snapshot || c.Source.Seq != 0 || c.Source.CommitLSN == "" || c.Source.Table != "items" {
			t.Fatalf("envelope: %+v", c.Source)
		}
		if string(c.After["id"]) != "102" || string(c.After["amount"]) != `"127.50"` || string(c.After["flag"]) != "true" ||
			string(c.After["at"]) != `"2024-01-01 01:42:00+00"` || string(c.Key["id"]) != "102" {
			t.Fatalf("after: %s", mustJSON(c))
		}
		if len(c.Columns) != 5 || c.Columns[0].Type != "bigint" || !c.Columns[0].Key || c.Columns[2].Type != "numeric(10,2)" {
			t.Fatalf("columns: %+v", c.Columns)
		}
	})

	t.Run("with partitions, waits for every partition's consumer and publishes rows on their key's", func(t *testing.T) {
		t.Parallel()
		const parts = 4
		f := newFixtureParts(t, pg, 400, parts, parts-1)
		ctx := context.Background()
		j, err := f.store.CreateBackfillJob(ctx, configstore.BackfillInput{PipelineID: f.pipeline.ID, Table: "public.items", BatchSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		f.start(testConfig())
		dest := f.pipeline.DestinationIDs[0]
		last := contracts.PartitionConsumerName(f.pipeline.ID, dest, parts-1, parts)
		f.waitJob(j.ID, "waiting for "+last, func(j configstore.BackfillJob) bool { return strings.Contains(j.Error, last) })
		if n := len(f.published()); n != 0 {
			t.Fatalf("%d rows published before every partition's consumer existed", n)
		}
		cfg := natsx.PipelineConsumerConfig(f.src.ID, f.pipeline.ID, dest, []natsx.Table{{Schema: "public", Name: "items"}}, parts-1, parts)
		if _, err := f.js.CreateOrUpdateConsumer(ctx, contracts.StreamName(f.src.ID), cfg); err != nil {
			t.Fatal(err)
		}
		f.waitJob(j.ID, "COMPLETED", func(j configstore.BackfillJob) bool { return j.Status == configstore.JobCompleted })
		used := map[int]int{}
		rows := 0
		for _, m := range f.stream() {
			for _, c := range m.changes {
				part := contracts.Partition(c.Key, parts)
				if want := contracts.ChangeSubject(f.src.ID, "public", "items", part); m.subject != want {
					t.Fatalf("row %s on %s; want %s", c.Key["id"], m.subject, want)
				}
				used[part]++
				rows++
			}
		}
		if rows != 400 {
			t.Fatalf("stream holds %d rows, want 400", rows)
		}
		if len(used) != parts {
			t.Errorf("rows per partition %v; want all %d used", used, parts)
		}
	})

	t.Run("a backfill for some destinations addresses its rows to them", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, pg, 300)
		ctx := context.Background()
		dest := f.pipeline.DestinationIDs[0]
		j, err := f.store.CreateBackfillJob(ctx, configstore.BackfillInput{PipelineID: f.pipeline.ID, Table: "public.items",
			DestinationIDs: []int64{dest, dest}, BatchSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		// A job whose only destination is not (any more) the pipeline's
		// fails: its rows would reach no destination it was asked for.
		gone, err := f.store.CreateBackfillJob(ctx, configstore.BackfillInput{PipelineID: f.pipeline.ID, Table: "public.items",
			DestinationIDs: []int64{dest + 1000}})
		if err != nil {
			t.Fatal(err)
		}
		f.start(testConfig())
		f.waitJob(j.ID, "COMPLETED", func(j configstore.BackfillJob) bool { return j.Status == configstore.JobCompleted })
		gone = f.waitJob(gone.ID, "FAILED", func(j configstore.BackfillJob) bool { return j.Status == configstore.JobFailed })
		if !strings.Contains(gone.Error, "any more") {
			t.Errorf("job for a removed destination: %q", gone.Error)
		}
		if n := len(f.published()); n != 300 {
			t.Fatalf("stream holds %d rows, want 300", n)
		}
		for i, m := range f.stream() {
			if got, want := m.header.Get(contracts.DestinationsHeader), fmt.Sprint(dest); got != want {
				t.Fatalf("message %d: %s %q, want %q", i, contracts.DestinationsHeader, got, want)
			}
		}
	})

	t.Run("cancel stops the job between batches", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, pg, 20000)
		ctx := context.Background()
		j, err := f.store.CreateBackfillJob(ctx, configstore.BackfillInput{PipelineID: f.pipeline.ID, Table: "public.items", BatchSize: 50})
		if err != nil {
			t.Fatal(err)
		}
		stop := f.start(testConfig())
		f.waitJob(j.ID, "progress", func(j configstore.BackfillJob) bool { return j.RowsCopied > 0 })
		if _, ok, err := f.store.CancelBackfillJob(ctx, j.ID); err != nil || !ok {
			t.Fatalf("cancel: ok %v err %v", ok, err)
		}
		time.Sleep(500 * time.Millisecond)
		stop()
		j = f.job(j.ID)
		n := len(f.published())
		if j.Status != configstore.JobCancelled || n >= 20000 || int64(n) > j.RowsCopied+50 {
			t.Fatalf("after cancel: status %s rows_copied %d published %d", j.Status, j.RowsCopied, n)
		}
	})

	t.Run("a job interrupted mid-way resumes from its checkpoint, each row once", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, pg, 5000)
		ctx := context.Background()
		j, err := f.store.CreateBackfillJob(ctx, configstore.BackfillInput{PipelineID: f.pipeline.ID, Table: "public.items", BatchSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		stop := f.start(testConfig())
		f.waitJob(j.ID, "progress", func(j configstore.BackfillJob) bool { return j.RowsCopied >= 500 })
		stop() // the worker's ctx ends mid-job
		mid := f.job(j.ID)
		if mid.Status == configstore.JobCompleted || mid.LastKey == nil {
			t.Fatalf("job after stop: %+v", mid)
		}
		f.start(testConfig())
		j = f.waitJob(j.ID, "COMPLETED", func(j configstore.BackfillJob) bool { return j.Status == configstore.JobCompleted })
		if got, want := f.ids(f.published()), f.sourceIDs("true"); !equalIDs(got, want) {
			t.Fatalf("published %d rows, want %d", len(got), len(want))
		}
		if j.RowsCopied != 5000 || j.Attempts != 2 {
			t.Fatalf("rows_copied %d attempts %d", j.RowsCopied, j.Attempts)
		}
	})

	t.Run("a crashed worker's job is taken over after its lease", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, pg, 3000)
		ctx := context.Background()
		j, err := f.store.CreateBackfillJob(ctx, configstore.BackfillInput{PipelineID: f.pipeline.ID, Table: "public.items", BatchSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		// A "crashed" worker: it claimed the job and checkpointed a
		// batch, then vanished without releasing it.
		cfg := testConfig()
		cfg.Lease = time.Second
		if _, ok, err := f.store.ClaimBackfillJob(ctx, "ghost", cfg.Lease); err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		if err := f.store.CheckpointBackfillJob(ctx, j.ID, "ghost", cfg.Lease, configstore.Checkpoint{LastKey: json.RawMessage(`["1000"]`), RowsCopied: 1000}); err != nil {
			t.Fatal(err)
		}
		cfg.StatementTimeout = 500 * time.Millisecond
		f.start(cfg)
		j = f.waitJob(j.ID, "COMPLETED", func(j configstore.BackfillJob) bool { return j.Status == configstore.JobCompleted })
		if got, want := f.ids(f.published()), f.sourceIDs("id > 1000"); !equalIDs(got, want) || j.RowsCopied != 3000 {
			t.Fatalf("published %d rows (want %d), rows_copied %d", len(got), len(want), j.RowsCopied)
		}
	})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
