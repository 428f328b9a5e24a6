package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

const schemaSQL = `
CREATE TABLE customers (
  id bigint PRIMARY KEY, name text NOT NULL, email varchar(200), balance numeric(12,2),
  active boolean, created_at timestamptz DEFAULT now(), tags text[], profile jsonb, photo bytea);
CREATE TABLE order_items (
  order_id int, line int, sku text, qty smallint, price double precision, note text,
  PRIMARY KEY (order_id, line));
ALTER TABLE order_items ALTER COLUMN note SET STORAGE EXTERNAL;
CREATE TABLE events (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(), kind text, at timestamp, payload json, took interval);
`

var tableCols = map[string][]string{
	"customers":   {"id", "name", "email", "balance", "active", "created_at", "tags", "profile", "photo"},
	"order_items": {"order_id", "line", "sku", "qty", "price", "note"},
	"events":      {"id", "kind", "at", "payload", "took"},
}

// waitCapturing waits until the source's replication slot is streaming, so
// that changes written from now on are captured.
func (e *env) waitCapturing() {
	e.t.Helper()
	conn := e.pg.Connect(e.t, e.sourceDB)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		err := conn.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_replication_slots WHERE database = $1 AND active", e.sourceDB).Scan(&n)
		if err == nil && n > 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.t.Fatalf("capture did not start streaming within 60s\n%s", testkit.Tail(e.logBuf.String(), 4000))
}

func TestReplicatesEveryKindOfChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if os.Getenv("E2E_EXTERNAL_NATS") != "" {
		e.natsURL = testkit.StartNATS(t).URL
	}
	e.pg.Exec(t, e.sourceDB, schemaSQL)
	e.start()
	if os.Getenv("E2E_AUDIT") != "" {
		url := e.natsURL
		var opts []nats.Option
		if url == "" {
			// rosetta dev's embedded server: its services' user.
			url = "nats://" + e.natsAddr
			creds, err := natsx.ReadDevCredentials(e.dataDir)
			if err != nil {
				t.Fatal(err)
			}
			opts = append(opts, creds.Services.Option())
		}
		e.audit = startAudit(t, url, 1, opts...)
	}
	e.createPipeline("public.customers", "public.order_items", "public.events")
	e.waitCapturing()

	big := strings.Repeat("toasted-value-", 80_000) // ~1.1 MB, stored out of line
	steps := []string{
		// Inserts of every column type, NULLs included, in a multi-statement transaction.
		`BEGIN;
		 INSERT INTO customers VALUES
		   (1, 'Ada', 'ada@example.com', 1234.50, true, '2024-01-02 03:04:05.123456+00', '{a,b,NULL}', '{"tier": "gold", "n": [1,2]}', '\x00ff10'),
		   (2, 'Bob', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		   (3, 'Cy "quoted" \ back	tab', 'cy@example.com', -0.01, false, 'infinity', '{}', '[]', '\x');
		 INSERT INTO order_items VALUES (10, 1, 'A-1', 2, 9.99, 'short'), (10, 2, 'B-2', 1, 1e-300, NULL);
		 INSERT INTO events (kind, at, payload, took) VALUES ('signup', '2024-05-06 07:08:09', '{"a":  1}', '1 day 02:03:04');
		 COMMIT;`,
		// A large TOASTed value, then an update that leaves it unchanged.
		fmt.Sprintf(`INSERT INTO order_items VALUES (11, 1, 'C-3', 5, 3.5, '%s')`, big),
		`UPDATE order_items SET qty = 6 WHERE order_id = 11 AND line = 1`,
		// Updates, including a primary-key change and a composite-key change.
		`UPDATE customers SET balance = balance * 2, tags = array_append(tags, 'x') WHERE id = 1`,
		`UPDATE customers SET id = 100 WHERE id = 2`,
		`UPDATE order_items SET line = 3 WHERE order_id = 10 AND line = 2`,
		// The TOASTed row's key changes too; its unchanged value must follow it.
		`UPDATE order_items SET order_id = 12 WHERE order_id = 11`,
		// Deletes, and a row deleted and re-inserted in one transaction.
		`DELETE FROM customers WHERE id = 3`,
		`BEGIN; DELETE FROM order_items WHERE order_id = 10 AND line = 1;
		 INSERT INTO order_items VALUES (10, 1, 'A-1b', 7, 0.5, 'again'); COMMIT;`,
		// Many changes to one row in one transaction collapse to the last.
		`BEGIN; UPDATE customers SET name = 'Ada 1' WHERE id = 1; UPDATE customers SET name = 'Ada 2' WHERE id = 1;
		 UPDATE customers SET name = 'Ada 3', email = NULL WHERE id = 1; COMMIT;`,
	}
	for _, s := range steps {
		e.pg.Exec(t, e.sourceDB, s)
	}
	// A bulk transaction across tables.
	e.pg.Exec(t, e.sourceDB, `INSERT INTO customers (id, name, balance, active, profile)
		SELECT g, 'bulk ' || g, g / 7.0, g % 2 = 0, jsonb_build_object('g', g) FROM generate_series(1000, 3000) g;
		UPDATE customers SET active = NOT active WHERE id BETWEEN 1000 AND 1500;
		DELETE FROM customers WHERE id BETWEEN 2500 AND 2600;`)
	e.waitConverged(90*time.Second, tableCols)

	// The TOASTed value survived both the unchanged-TOAST update and the key change.
	dst := e.pg.Connect(t, e.destDB)
	var n int
	if err := dst.QueryRow(context.Background(), "SELECT length(note) FROM order_items WHERE order_id = 12").Scan(&n); err != nil {
		t.Fatalf("read toasted row: %v", err)
	}
	if n != len(big) {
		t.Fatalf("toasted note length = %d at destination, want %d", n, len(big))
	}
}

func TestPauseKeepsPositionAndStartResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pg.Exec(t, e.sourceDB, schemaSQL)
	e.start()
	pipe := e.createPipeline("public.customers")
	e.waitCapturing()
	e.pg.Exec(t, e.sourceDB, `INSERT INTO customers (id, name) SELECT g, 'before ' || g FROM generate_series(1, 100) g`)
	e.waitConverged(60*time.Second, map[string][]string{"customers": tableCols["customers"]})

	e.mustAPI("POST", fmt.Sprintf("/pipelines/%d/pause", pipe), nil, nil)
	// Writes while paused must arrive after start, and not before.
	time.Sleep(time.Second)
	e.pg.Exec(t, e.sourceDB, `INSERT INTO customers (id, name) SELECT g, 'paused ' || g FROM generate_series(101, 200) g;
		UPDATE customers SET name = 'changed while paused' WHERE id <= 10; DELETE FROM customers WHERE id BETWEEN 50 AND 60;`)
	time.Sleep(3 * time.Second)
	dst := e.pg.Connect(t, e.destDB)
	var n int
	if err := dst.QueryRow(context.Background(), "SELECT count(*) FROM customers").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 100 {
		t.Fatalf("destination has %d rows while paused, want the 100 from before the pause", n)
	}
	var status struct {
		Status string `json:"status"`
	}
	e.mustAPI("GET", fmt.Sprintf("/pipelines/%d", pipe), nil, &status)
	if status.Status != "PAUSE" {
		t.Fatalf("pipeline status = %q, want PAUSE", status.Status)
	}
	e.mustAPI("POST", fmt.Sprintf("/pipelines/%d/start", pipe), nil, nil)
	e.waitConverged(60*time.Second, map[string][]string{"customers": tableCols["customers"]})
}

// TestConvergesAfterSIGKILL kills the all-in-one with SIGKILL while a
// workload writes, restarts it, and asserts that the destination ends equal
// to the source: nothing lost, nothing doubled.
func TestConvergesAfterSIGKILL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if os.Getenv("E2E_EXTERNAL_NATS") != "" {
		e.natsURL = testkit.StartNATS(t).URL
	}
	e.pg.Exec(t, e.sourceDB, schemaSQL)
	e.start()
	if os.Getenv("E2E_AUDIT") != "" {
		url := e.natsURL
		var opts []nats.Option
		if url == "" {
			// rosetta dev's embedded server: its services' user.
			url = "nats://" + e.natsAddr
			creds, err := natsx.ReadDevCredentials(e.dataDir)
			if err != nil {
				t.Fatal(err)
			}
			opts = append(opts, creds.Services.Option())
		}
		e.audit = startAudit(t, url, 1, opts...)
	}
	e.createPipeline("public.customers", "public.order_items")
	e.waitCapturing()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	written := make(chan int, 1)
	go func() {
		conn := e.pg.Connect(t, e.sourceDB)
		rng := rand.New(rand.NewPCG(1, 2))
		i := 0
		for ; i < 600 && ctx.Err() == nil; i++ {
			tx, err := conn.Begin(ctx)
			if err != nil {
				done <- err
				return
			}
			id := int64(i)
			_, err = tx.Exec(ctx, `INSERT INTO customers (id, name, balance) VALUES ($1, $2, $3)`, id, fmt.Sprintf("c%d", i), rng.IntN(100000))
			if err == nil {
				_, err = tx.Exec(ctx, `INSERT INTO order_items VALUES ($1, 1, 'x', 1, 1.5, 'n'), ($1, 2, 'y', 2, 2.5, 'm')`, id)
			}
			if err == nil && i > 5 {
				_, err = tx.Exec(ctx, `UPDATE customers SET balance = balance + 1, name = name || '+' WHERE id = $1`, int64(rng.IntN(i)))
			}
			if err == nil && i%7 == 0 && i > 10 {
				_, err = tx.Exec(ctx, `DELETE FROM order_items WHERE order_id = $1`, int64(rng.IntN(i)))
			}
			if err == nil && i%11 == 0 && i > 10 {
				_, err = tx.Exec(ctx, `UPDATE customers SET id = id + 100000 WHERE id = $1`, int64(rng.IntN(i)))
			}
			if err != nil {
				tx.Rollback(ctx)
				done <- err
				return
			}
			if err := tx.Commit(ctx); err != nil {
				done <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		written <- i
		done <- nil
	}()

	if os.Getenv("E2E_NO_KILL") == "" {
		time.Sleep(1500 * time.Millisecond)
		e.stop(syscall.SIGKILL)
		time.Sleep(500 * time.Millisecond)
		e.start()
		time.Sleep(1500 * time.Millisecond)
		e.stop(syscall.SIGKILL)
		e.start()
	}
	if err := <-done; err != nil {
		t.Fatalf("workload: %v", err)
	}
	t.Logf("workload wrote %d transactions across two SIGKILLs", <-written)
	e.waitConverged(120*time.Second, map[string][]string{
		"customers":   tableCols["customers"],
		"order_items": tableCols["order_items"],
	})
}

// TestServicesAsSeparateProcesses runs api, capture and sink as three
// processes sharing one NATS server and one config DB, as in production.
func TestServicesAsSeparateProcesses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.natsURL = testkit.StartNATS(t).URL
	e.pg.Exec(t, e.sourceDB, schemaSQL)
	e.spawn("api")
	e.spawn("capture")
	e.spawn("sink")
	e.createPipeline("public.customers", "public.order_items")
	e.waitCapturing()
	e.pg.Exec(t, e.sourceDB, `INSERT INTO customers (id, name, balance) SELECT g, 'c' || g, g FROM generate_series(1, 500) g;
		INSERT INTO order_items (order_id, line, sku) SELECT g, 1, 's' || g FROM generate_series(1, 200) g;
		UPDATE customers SET name = 'changed' WHERE id % 3 = 0; DELETE FROM order_items WHERE order_id > 150;`)
	e.waitConverged(60*time.Second, map[string][]string{
		"customers":   tableCols["customers"],
		"order_items": tableCols["order_items"],
	})
}
