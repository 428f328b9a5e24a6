package backfill

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/testkit"
	"github.com/rosettacdc/rosetta/services/capture"
	"github.com/rosettacdc/rosetta/services/sink"
)

// snapshotRows is the size of the table TestSnapshotWhileWriting
// snapshots; ROSETTA_SNAPSHOT_ROWS overrides it (e.g. 1000000).
func snapshotRows(t *testing.T) int {
	if v := os.Getenv("ROSETTA_SNAPSHOT_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("ROSETTA_SNAPSHOT_ROWS=%q: want a positive integer", v)
		}
		return n
	}
	return 200_000
}

// TestSnapshotWhileWriting runs capture, sink (PostgreSQL destination) and
// the backfill worker in-process: a started pipeline's table with existing
// rows is snapshotted while it takes inserts, updates and deletes, and the
// destination ends equal to the source. It logs the snapshot's rows/s and
// that of a plain COPY (SELECT ...) TO STDOUT of the same table.
func TestSnapshotWhileWriting(t *testing.T) {
	t.Parallel()
	rows := snapshotRows(t)
	ctx := context.Background()
	pg := testkit.StartPostgres(t)
	box, err := secrets.NewBox("backfill-e2e-key-0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	store, err := configstore.Open(ctx, pg.DSN(pg.CreateDatabase(t, "cfg")), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sourceDB, destDB := pg.CreateDatabase(t, "src"), pg.CreateDatabase(t, "dst")
	pg.Exec(t, sourceDB, `CREATE TABLE accounts (id bigint PRIMARY KEY, name text, balance numeric(12,2), tags text[], seen timestamptz);
		INSERT INTO accounts SELECT g, 'acct ' || g, g * 0.5, ARRAY['t' || (g % 7)], timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
		FROM generate_series(1, `+strconv.Itoa(rows)+`) g; ANALYZE accounts`)

	// Baseline: the same table through COPY.
	conn := pg.Connect(t, sourceDB)
	start := time.Now()
	tag, err := conn.PgConn().CopyTo(ctx, io.Discard, `COPY (SELECT * FROM accounts) TO STDOUT`)
	if err != nil {
		t.Fatal(err)
	}
	copyRate := float64(tag.RowsAffected()) / time.Since(start).Seconds()

	n := testkit.StartNATS(t)
	nc, js := n.Connect(t)
	suffix := testkit.RandomSuffix()
	src, err := store.CreateSource(ctx, configstore.SourceInput{Name: "src", Host: pg.Host(), Port: pg.Port, Database: sourceDB,
		User: "postgres", Publication: "pub_" + suffix, Slot: "slot_" + suffix, SSLMode: "disable"})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := store.CreateDestination(ctx, configstore.DestinationInput{Name: "dst", Type: "postgres", Config: map[string]any{
		"host": pg.Host(), "port": pg.Port, "database": destDB, "user": "postgres", "schema": "public", "sslmode": "disable"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := store.CreatePipeline(ctx, configstore.PipelineInput{Name: "p", SourceID: src.ID, DestinationIDs: []int64{dst.ID}, Tables: []string{"public.accounts"}})
	if err != nil {
		t.Fatal(err)
	}
	// What POST /pipelines/{id}/start does.
	if p, err = store.SetPipelineStatus(ctx, p.ID, configstore.StatusStart); err != nil {
		t.Fatal(err)
	}
	jobs, err := store.EnsureSnapshotJobs(ctx, p.ID, p.Tables, true)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("snapshot jobs: %v %v", jobs, err)
	}
	job := jobs[0]

	runCtx, stopAll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stopAll(); wg.Wait() })
	log := quietLog()
	ccfg := capture.DefaultConfig()
	ccfg.ReconcileInterval = time.Second
	cm := capture.NewManager(ccfg, store, js, log)
	scfg := sink.DefaultConfig()
	scfg.ReconcileInterval = time.Second
	sm := sink.NewManager(scfg, store, js, log)
	wcfg := DefaultConfig()
	wcfg.PollInterval = 100 * time.Millisecond
	wcfg.NotReadyWait = 200 * time.Millisecond
	w := New(wcfg, store, nc, log)
	for _, run := range []func(context.Context) error{cm.Run, sm.Run, w.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(runCtx) }()
	}

	// Writes while the snapshot runs: updates, deletes and inserts in
	// small transactions, until the snapshot completed.
	writer := pg.Connect(t, sourceDB)
	rng := rand.New(rand.NewPCG(1, 2))
	var writes int
	next := rows + 1
	for {
		j, err := store.GetBackfillJob(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == configstore.JobCompleted {
			job = j
			break
		}
		if j.Status == configstore.JobFailed || j.Status == configstore.JobCancelled {
			t.Fatalf("snapshot %s: %s", j.Status, j.Error)
		}
		for range 20 {
			id := rng.IntN(rows) + 1
			var q string
			switch rng.IntN(4) {
			case 0:
				q = fmt.Sprintf("DELETE FROM accounts WHERE id = %d", id)
			case 1:
				q = fmt.Sprintf("INSERT INTO accounts VALUES (%d, 'new %d', 1.5, '{x}', now())", next, next)
				next++
			default:
				q = fmt.Sprintf("UPDATE accounts SET balance = balance + 1, name = name || '+', tags = tags || 'u'::text WHERE id = %d", id)
			}
			if _, err := writer.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
			writes++
		}
		time.Sleep(5 * time.Millisecond)
	}
	if job.RowsCopied < int64(rows)*9/10 {
		t.Fatalf("snapshot copied %d rows of about %d", job.RowsCopied, rows)
	}
	secs := job.FinishedAt.Sub(*job.StartedAt).Seconds()
	t.Logf("snapshot: %d rows in %.1fs = %.0f rows/s (%d writes during it); COPY (SELECT * FROM accounts) TO STDOUT: %.0f rows/s",
		job.RowsCopied, secs, float64(job.RowsCopied)/secs, writes, copyRate)
	// What the sink still had to apply when the snapshot finished: a
	// large backlog means the sink, not the snapshot, bounds the time
	// until the destination equals the source.
	if c, err := js.Consumer(ctx, contracts.StreamName(src.ID), contracts.ConsumerName(p.ID, dst.ID)); err == nil {
		if info, err := c.Info(ctx); err == nil {
			t.Logf("sink backlog when the snapshot finished: %d messages (of up to %d rows) not yet applied (%d pending, %d being applied)",
				info.NumPending+uint64(info.NumAckPending), contracts.ChunkChanges, info.NumPending, info.NumAckPending)
		}
	}

	// The destination converges to the source.
	const digest = `SELECT count(*)::text || ' ' || coalesce(md5(string_agg(id::text || '|' || coalesce(name, '~') || '|' ||
		coalesce(balance::text, '~') || '|' || coalesce(tags::text, '~') || '|' || coalesce(extract(epoch FROM seen)::text, '~'), ',' ORDER BY id)), '')
		FROM accounts`
	var want string
	if err := writer.QueryRow(ctx, digest).Scan(&want); err != nil {
		t.Fatal(err)
	}
	dconn := pg.Connect(t, destDB)
	deadline := time.Now().Add(3*time.Minute + time.Duration(rows/2000)*time.Second)
	for {
		var got string
		err := dconn.QueryRow(ctx, digest).Scan(&got)
		if err == nil && got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("destination did not converge: source %s, destination %q (err %v)", want, got, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	sinceStart := time.Since(*job.StartedAt).Seconds()
	t.Logf("destination equals source (%s) %.1fs after the snapshot finished, %.1fs after it started (%.0f rows/s end to end)",
		want, time.Since(*job.FinishedAt).Seconds(), sinceStart, float64(job.RowsCopied)/sinceStart)
}
