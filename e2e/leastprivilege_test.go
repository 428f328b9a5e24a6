package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestLeastPrivilegeSourceOverTLS replicates through a source role that has
// only REPLICATION and SELECT (no superuser, owns no table), using a
// publication and a slot a DBA created, over TLS with verify-full and
// SCRAM only: pg_hba admits the role over hostssl alone, so every
// connection Rosetta opens to the source (API checks, the snapshot's
// reads, capture's query and replication connections) must use TLS. It
// asserts the destination rows after the initial snapshot, live changes
// and a backfill, and the answer when the role lacks SELECT on a table.
func TestLeastPrivilegeSourceOverTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ca := testkit.NewCA(t)
	e.pg.EnableTLS(t, ca, "127.0.0.1")
	e.pg.Exec(t, e.sourceDB, `
		CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int);
		INSERT INTO items SELECT g, 'before-' || g, g FROM generate_series(1, 200) g;
		CREATE TABLE payroll (id bigint PRIMARY KEY, salary numeric);
		INSERT INTO payroll VALUES (1, 100);`)
	// The DBA's part, as docs/security.md "A source role with least
	// privilege" gives it.
	e.pg.Exec(t, e.sourceDB, `
		SET password_encryption = 'scram-sha-256';
		CREATE ROLE rosetta_capture LOGIN REPLICATION PASSWORD 'capture-pw-e2e';
		GRANT SELECT ON public.items TO rosetta_capture;
		CREATE PUBLICATION rosetta_pub FOR TABLE public.items, public.payroll;`)
	e.pg.Exec(t, e.sourceDB, `SELECT pg_create_logical_replication_slot('rosetta_slot', 'pgoutput')`)
	e.pg.SetHBA(t,
		"hostssl all rosetta_capture 127.0.0.1/32 scram-sha-256",
		"hostssl replication rosetta_capture 127.0.0.1/32 scram-sha-256",
	)
	e.start()

	var src, dst, pipe idOnly
	e.mustAPI("POST", "/sources", map[string]any{
		"name": "src", "host": "127.0.0.1", "port": e.pg.Port, "database": e.sourceDB,
		"user": "rosetta_capture", "password": "capture-pw-e2e",
		"sslmode": "verify-full", "sslrootcert": string(ca.CertPEM), "require_auth": "scram-sha-256", "channel_binding": "require",
		"publication": "rosetta_pub", "slot": "rosetta_slot", "adopt_publication": true, "adopt_slot": true,
	}, &src)
	e.mustAPI("POST", "/destinations", map[string]any{
		"name": "dst", "type": "postgres", "config": map[string]any{
			"host": "127.0.0.1", "port": e.pg.Port, "database": e.destDB, "user": "postgres", "schema": "public", "sslmode": "disable",
		},
	}, &dst)

	// A table the role may not read is refused with the GRANT to run.
	var refused struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	code := e.api("POST", "/pipelines", map[string]any{
		"name": "payroll", "source_id": src.ID, "destination_ids": []int64{dst.ID}, "tables": []string{"public.payroll"},
	}, &refused)
	if code != 422 || !strings.Contains(refused.Error, "GRANT SELECT ON") || !strings.Contains(refused.Error, "payroll") {
		t.Fatalf("pipeline over a table without SELECT: HTTP %d %+v, want 422 naming the GRANT", code, refused)
	}

	e.mustAPI("POST", "/pipelines", map[string]any{
		"name": "p", "source_id": src.ID, "destination_ids": []int64{dst.ID}, "tables": []string{"public.items"},
	}, &pipe)
	e.mustAPI("POST", fmt.Sprintf("/pipelines/%d/start", pipe.ID), nil, nil)
	e.waitCapturing()
	items := map[string][]string{"items": {"id", "name", "qty"}}
	// The initial snapshot reads with SELECT alone.
	e.waitConverged(90*time.Second, items)

	e.pg.Exec(t, e.sourceDB, `
		INSERT INTO items SELECT g, 'live-' || g, g FROM generate_series(201, 260) g;
		UPDATE items SET qty = qty * 10 WHERE id % 7 = 0;
		DELETE FROM items WHERE id % 11 = 0;`)
	e.waitConverged(90*time.Second, items)

	// A backfill reads with SELECT too: rows changed at the destination
	// behind Rosetta's back are put back.
	dconn := e.pg.Connect(t, e.destDB)
	if _, err := dconn.Exec(t.Context(), `DELETE FROM items WHERE id <= 20`); err != nil {
		t.Fatal(err)
	}
	var job idOnly
	e.mustAPI("POST", fmt.Sprintf("/pipelines/%d/backfill", pipe.ID), map[string]any{"table": "public.items"}, &job)
	deadline := time.Now().Add(90 * time.Second)
	for {
		var j struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		e.mustAPI("GET", fmt.Sprintf("/backfill/%d", job.ID), nil, &j)
		if j.Status == "COMPLETED" {
			break
		}
		if j.Status == "FAILED" || time.Now().After(deadline) {
			t.Fatalf("backfill as the least-privilege role: %s %s", j.Status, j.Error)
		}
		time.Sleep(300 * time.Millisecond)
	}
	e.waitConverged(90*time.Second, items)

	// Every connection of the role was encrypted (pg_hba admits no
	// other), and capture's walsender is one of them.
	var walsenders int
	if err := e.pg.Connect(t, "postgres").QueryRow(t.Context(), `
		SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
		WHERE a.usename = 'rosetta_capture' AND a.backend_type = 'walsender' AND s.ssl`).Scan(&walsenders); err != nil {
		t.Fatal(err)
	}
	if walsenders != 1 {
		t.Fatalf("encrypted walsenders of the capture role = %d, want 1", walsenders)
	}
}
