package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestCompleteIncompletableRows runs `rosetta dev` with a pipeline that
// does not snapshot, on a table whose rows existed before it with bodies
// stored out of line (TOASTed). An update leaving the body untouched
// reaches the destination without it: the rows are inserted with the body
// unknown, which no change of the stream will ever provide. The sink must
// report them in the destination's health (table, count, keys) and have
// them completed from the source by a completion backfill: every body ends
// equal to the source's, and the reason clears.
func TestCompleteIncompletableRows(t *testing.T) {
	t.Parallel()
	bin, cleanup, err := testkit.BuildBinary(".", "rosetta", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	pg := testkit.StartPostgres(t)
	cfgDB := pg.CreateDatabase(t, "cfg")
	srcDB := pg.CreateDatabase(t, "src")
	dstDB := pg.CreateDatabase(t, "dst")
	// 9,600-byte bodies, stored out of line uncompressed: an update
	// that leaves them alone logs them as unchanged TOAST.
	pg.Exec(t, srcDB, `CREATE TABLE public.docs (id bigint PRIMARY KEY, score int NOT NULL, body text);
		ALTER TABLE public.docs ALTER COLUMN body SET STORAGE EXTERNAL;
		INSERT INTO public.docs SELECT g, g, repeat(md5(g::text), 300) FROM generate_series(1, 20) g`)

	httpAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	natsAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	dev := startDev(t, bin, append(os.Environ(),
		"ROSETTA_CONFIG_DSN="+pg.DSN(cfgDB),
		"ROSETTA_HTTP_ADDR="+httpAddr,
		"ROSETTA_EMBEDDED_NATS_ADDR="+natsAddr,
		"ROSETTA_NATS_URL=",
		"ROSETTA_LOG_FORMAT=text",
		"ROSETTA_SECRET_KEY=complete-test-secret-key-0123456789",
		"ROSETTA_API_TOKEN="+testAPIToken,
		"ROSETTA_DATA_DIR="+t.TempDir(),
		"ROSETTA_SINK_BATCH_WAIT=50ms",
	), httpAddr)
	waitUntil := dev.waitUntil

	call := apiCaller(t, "http://"+httpAddr+"/api/v1")
	var src, dest, pipe struct {
		ID int64 `json:"id"`
	}
	call("POST", "/sources", map[string]any{"name": "docs", "host": pg.Host(), "port": pg.Port,
		"database": srcDB, "user": "postgres", "sslmode": "disable"}, &src)
	call("POST", "/destinations", map[string]any{"name": "warehouse", "type": "postgres", "config": map[string]any{
		"host": pg.Host(), "port": pg.Port, "database": dstDB, "user": "postgres", "sslmode": "disable"}}, &dest)
	call("POST", "/pipelines", map[string]any{"name": "docs", "source_id": src.ID, "destination_ids": []int64{dest.ID},
		"tables": []string{"public.docs"}, "snapshot": false}, &pipe)
	call("POST", fmt.Sprintf("/pipelines/%d/start", pipe.ID), nil, nil)

	ctx := context.Background()
	source := pg.Connect(t, srcDB)
	dst := pg.Connect(t, dstDB)
	// Capture streams from when its slot exists: bump a marker row until
	// one of its changes reaches the destination.
	waitUntil("capture streams", 90*time.Second, func() bool {
		if _, err := source.Exec(ctx, `INSERT INTO public.docs VALUES (0, 0, 'marker')
			ON CONFLICT (id) DO UPDATE SET score = docs.score + 1`); err != nil {
			t.Fatal(err)
		}
		var n int
		return dst.QueryRow(ctx, "SELECT count(*) FROM public.docs WHERE id = 0").Scan(&n) == nil && n == 1
	})
	if _, err := source.Exec(ctx, "UPDATE public.docs SET score = score + 1 WHERE id > 0"); err != nil {
		t.Fatal(err)
	}

	health := func() string {
		var p struct {
			Destinations []struct {
				Health    string `json:"health"`
				Reason    string `json:"reason"`
				LastError string `json:"last_error"`
			} `json:"destinations"`
		}
		call("GET", fmt.Sprintf("/pipelines/%d", pipe.ID), nil, &p)
		if len(p.Destinations) != 1 {
			t.Fatalf("destinations: %+v", p.Destinations)
		}
		// The console shows reason; a healthy sink's notes are it.
		d := p.Destinations[0]
		if d.Health == "HEALTHY" && d.Reason != d.LastError {
			t.Fatalf("healthy destination: reason %q, last_error %q", d.Reason, d.LastError)
		}
		return d.Reason
	}
	var reason string
	waitUntil("the health reason names the incomplete rows", 60*time.Second, func() bool {
		reason = health()
		return strings.Contains(reason, "public.docs: 20 rows with columns not yet known (keys 1, 10, 11, …)")
	})
	t.Logf("health reason: %s", reason)

	// Every body is the source's, value by value (and the updated score).
	want := map[int64]string{}
	rows, err := source.Query(ctx, "SELECT id, score || ':' || body FROM public.docs WHERE id > 0")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		want[id] = v
	}
	if rows.Err() != nil || len(want) != 20 {
		t.Fatalf("source rows: %d, %v", len(want), rows.Err())
	}
	var mismatch string
	t.Cleanup(func() {
		if t.Failed() && mismatch != "" {
			t.Logf("last differing destination row: %s", mismatch)
		}
	})
	waitUntil("the completion backfill fills every body", 60*time.Second, func() bool {
		rows, err := dst.Query(ctx, "SELECT id, score || ':' || coalesce(body, '<NULL>') FROM public.docs WHERE id > 0")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := 0
		mismatch = ""
		for rows.Next() {
			var id int64
			var v string
			if err := rows.Scan(&id, &v); err != nil {
				t.Fatal(err)
			}
			if want[id] != v {
				mismatch = fmt.Sprintf("id %d: %.40s", id, v)
				return false
			}
			got++
		}
		return got == len(want)
	})
	waitUntil("the health reason clears", 60*time.Second, func() bool {
		reason = health()
		return !strings.Contains(reason, "not yet known")
	})
	var jobs int
	if err := pg.Connect(t, cfgDB).QueryRow(ctx, "SELECT count(*) FROM backfill_jobs WHERE kind = 'completion' AND status = 'COMPLETED'").
		Scan(&jobs); err != nil || jobs < 1 {
		t.Fatalf("completion jobs: %d, %v", jobs, err)
	}
}
