package api

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/pkg/pgrepl"
)

// testReplicationObjects checks the life of a source's slot and
// publication: one that exists is used only when adopted explicitly, one
// to adopt must exist, adopted ones survive the source's deletion, and
// managed ones are dropped with it — after confirmation, even while a
// walsender holds the slot — or kept on request; a renamed managed slot
// does not stay behind.
func testReplicationObjects(t *testing.T, base *fixture, js jetstream.JetStream) {
	f := *base
	f.sourceDB = f.pg.CreateDatabase(t, "adopt")
	f.pg.Exec(t, f.sourceDB, `CREATE TABLE public.t (id int PRIMARY KEY);
		CREATE PUBLICATION dba_pub FOR TABLE public.t`)
	f.pg.Exec(t, f.sourceDB, `SELECT pg_create_logical_replication_slot('dba_slot_api', 'pgoutput')`)
	c := newClient(t, &f, js, nil)
	ctx := context.Background()
	exists := func(kind, name string) bool {
		t.Helper()
		q := `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`
		if kind == "pub" {
			q = `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`
		}
		var ok bool
		if err := f.pg.Connect(t, f.sourceDB).QueryRow(ctx, q, name).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	body := func(name string, extra map[string]any) map[string]any {
		b := c.sourceBody(name)
		for k, v := range extra {
			b[k] = v
		}
		return b
	}

	// Someone else's objects: refused unless adopted; adopting what is
	// not there is refused too.
	c.wantError("POST", "/sources", body("s", map[string]any{"slot": "dba_slot_api"}), 422, "slot", "already exists", "adopt_slot")
	c.wantError("POST", "/sources", body("s", map[string]any{"publication": "dba_pub"}), 422, "publication", "already exists", "adopt_publication")
	c.wantError("POST", "/sources", body("s", map[string]any{"slot": "nope_slot", "adopt_slot": true}), 422, "adopt_slot", "does not exist")
	c.wantError("POST", "/sources", body("s", map[string]any{"adopt_publication": true}), 422, "publication", "needs publication")
	var adopted sourceView
	c.must(201, "POST", "/sources", body("adopted", map[string]any{"slot": "dba_slot_api", "adopt_slot": true,
		"publication": "dba_pub", "adopt_publication": true}), &adopted)
	if !adopted.AdoptSlot || !adopted.AdoptPub {
		t.Fatalf("adopted source = %+v", adopted)
	}
	// Adopted objects are never dropped.
	c.must(204, "DELETE", fmt.Sprintf("/sources/%d", adopted.ID), nil, nil)
	if !exists("slot", "dba_slot_api") || !exists("pub", "dba_pub") {
		t.Fatal("deleting the source dropped an adopted slot or publication")
	}

	// Managed objects (as capture makes them), the slot held by a
	// walsender: deleting asks for confirmation, then drops both.
	var managedSrc sourceView
	c.must(201, "POST", "/sources", body("managed", nil), &managedSrc)
	f.pg.Exec(t, f.sourceDB, fmt.Sprintf(`CREATE PUBLICATION %s FOR TABLE public.t`, managedSrc.Publication))
	f.pg.Exec(t, f.sourceDB, fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, managedSrc.Slot))
	holdSlot(t, &f, managedSrc.Slot, managedSrc.Publication)
	path := fmt.Sprintf("/sources/%d", managedSrc.ID)
	c.wantError("DELETE", path, nil, 409, "drop_replication", "replication slot "+managedSrc.Slot, "publication "+managedSrc.Publication, "?drop_replication=true")
	c.wantError("DELETE", path+"?drop_replication=maybe", nil, 422, "drop_replication", "true or false")
	c.must(204, "DELETE", path+"?drop_replication=true", nil, nil)
	if exists("slot", managedSrc.Slot) || exists("pub", managedSrc.Publication) {
		t.Fatal("managed slot or publication left after DELETE ?drop_replication=true")
	}

	// Kept on request.
	var kept sourceView
	c.must(201, "POST", "/sources", body("kept", nil), &kept)
	f.pg.Exec(t, f.sourceDB, fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, kept.Slot))
	c.must(204, "DELETE", fmt.Sprintf("/sources/%d?drop_replication=false", kept.ID), nil, nil)
	if !exists("slot", kept.Slot) {
		t.Fatal("?drop_replication=false dropped the slot")
	}
	f.pg.Exec(t, f.sourceDB, fmt.Sprintf(`SELECT pg_drop_replication_slot('%s')`, kept.Slot))

	// A renamed managed slot is dropped.
	var renamed sourceView
	c.must(201, "POST", "/sources", body("renamed", nil), &renamed)
	f.pg.Exec(t, f.sourceDB, fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, renamed.Slot))
	c.must(200, "PUT", fmt.Sprintf("/sources/%d", renamed.ID), body("renamed", map[string]any{"slot": "renamed_slot_api"}), nil)
	if exists("slot", renamed.Slot) {
		t.Fatalf("the former slot %s is still on the source after the rename", renamed.Slot)
	}

	// An unreachable source: deleting cannot drop, so it says how to go on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var gone sourceView
	c.must(201, "POST", "/sources", body("gone", nil), &gone)
	if _, err := c.f.pg.Connect(t, c.cfgDB).Exec(ctx, `UPDATE sources SET port = $1 WHERE id = $2`, port, gone.ID); err != nil {
		t.Fatal(err)
	}
	c.wantError("DELETE", fmt.Sprintf("/sources/%d", gone.ID), nil, 409, "drop_replication", "cannot reach", "?drop_replication=false", "pg_drop_replication_slot")
	c.must(204, "DELETE", fmt.Sprintf("/sources/%d?drop_replication=false", gone.ID), nil, nil)
}

// holdSlot streams from slot on a replication connection for the rest of
// the test, as a running capture does, so the slot is active.
func holdSlot(t *testing.T, f *fixture, slot, pub string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgconn.Connect(ctx, f.pg.DSN(f.sourceDB)+"&replication=database")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		conn.Close(context.Background())
	})
	if err := pgrepl.StartReplication(ctx, conn, slot, pub, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var active bool
		if err := f.pg.Connect(t, f.sourceDB).QueryRow(context.Background(),
			`SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active); err != nil {
			t.Fatal(err)
		}
		if active {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot %s never became active", slot)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
