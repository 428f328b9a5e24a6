package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/rosettacdc/rosetta/pkg/testkit"
	"github.com/rosettacdc/rosetta/pkg/testkit/fakesnowflake"
)

// TestSnowflakeDestinationThroughTheAPI replicates through `rosetta dev` into
// a fake Snowflake that the real gosnowflake driver talks to (key-pair login,
// PUT, COPY, MERGE on DuckDB), and reads the rows back through gosnowflake.
func TestSnowflakeDestinationThroughTheAPI(t *testing.T) {
	t.Parallel()
	srv, key, pemKey := fakesnowflake.StartWithKeyPair(t, "E2EACCT", "LOADER")

	e := newEnv(t)
	// The API accepts a tls_ca_file only inside ROSETTA_KEYS_DIR.
	caFile := srv.CAFile(t)
	e.extraEnv = []string{"SNOWFLAKE_DISABLE_PLATFORM_DETECTION=true", "SF_DISABLE_MINICORE=true", "ROSETTA_KEYS_DIR=" + filepath.Dir(caFile)}
	e.pg.Exec(t, e.sourceDB, schemaSQL)
	// Names that needed quotes in PostgreSQL keep their case in Snowflake;
	// all-lower-case ones are upper-cased (docs/snowflake.md, Names). The
	// fake resolves quoted names case-sensitively, as Snowflake does.
	e.pg.Exec(t, e.sourceDB, `CREATE TABLE "OrderLines" ("OrderId" int, "LineNo" int, qty int, "Note" text, PRIMARY KEY ("OrderId", "LineNo"));
		CREATE TABLE tags (id int PRIMARY KEY, "Label" text, weight int)`)
	e.start()
	var src, dst, pipe idOnly
	e.mustAPI("POST", "/sources", map[string]any{
		"name": "src", "host": "127.0.0.1", "port": e.pg.Port, "database": e.sourceDB,
		"user": "postgres", "password": "pw", "sslmode": "disable",
	}, &src)
	var raw map[string]any
	code := e.api("POST", "/destinations", map[string]any{
		"name": "snow", "type": "snowflake", "config": map[string]any{
			"account": "e2eacct", "user": "loader", "database": "ROSETTA", "schema": "PUBLIC",
			"warehouse": "LOAD_WH", "private_key": pemKey,
			"host": srv.Host(), "port": srv.Port(), "protocol": "https", "tls_ca_file": caFile,
			// Flush as soon as the destination is free: the default (60s,
			// to let a warehouse sleep) would slow the test down.
			"flush_interval": "200ms",
		},
	}, &raw)
	if code != 201 {
		t.Fatalf("create snowflake destination: HTTP %d %v", code, raw)
	}
	if strings.Contains(fmt.Sprint(raw), "PRIVATE KEY") {
		t.Fatalf("the API returned the private key: %v", raw)
	}
	dst.ID = int64(raw["id"].(float64))
	e.mustAPI("POST", "/pipelines", map[string]any{
		"name": "p", "source_id": src.ID, "destination_ids": []int64{dst.ID}, "tables": []string{"public.customers", "public.OrderLines", "public.tags"},
	}, &pipe)
	e.mustAPI("POST", fmt.Sprintf("/pipelines/%d/start", pipe.ID), nil, nil)
	e.waitCapturing()

	e.pg.Exec(t, e.sourceDB, `INSERT INTO customers (id, name, balance) SELECT g, 'c' || g, g * 1.5 FROM generate_series(1, 300) g;
		UPDATE customers SET name = 'changed ' || id WHERE id % 4 = 0;
		DELETE FROM customers WHERE id % 10 = 0;
		UPDATE customers SET id = id + 1000 WHERE id = 7;
		INSERT INTO "OrderLines" SELECT g / 3, g % 3, g, CASE WHEN g % 5 > 0 THEN 'n' || g END FROM generate_series(1, 60) g;
		UPDATE "OrderLines" SET "Note" = 'Changed', qty = -qty WHERE "LineNo" = 1;
		DELETE FROM "OrderLines" WHERE "OrderId" = 4;
		INSERT INTO tags SELECT g, 'Tag ' || g, g * 10 FROM generate_series(1, 20) g;
		UPDATE tags SET "Label" = NULL WHERE id % 3 = 0;
		DELETE FROM tags WHERE id = 2;`)

	src2 := e.pg.Connect(t, e.sourceDB)
	checks := []struct {
		table   string
		cols    []string
		sfQuery string
	}{
		{"customers", []string{"id", "name"}, `SELECT "ID", "NAME" FROM CUSTOMERS`},
		{"OrderLines", []string{"OrderId", "LineNo", "qty", "Note"}, `SELECT "OrderId", "LineNo", QTY, "Note" FROM "OrderLines"`},
		{"tags", []string{"id", "Label", "weight"}, `SELECT id, "Label", WEIGHT FROM tags`},
	}
	db := sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, sf.Config{
		Account: "E2EACCT", User: "LOADER", Authenticator: sf.AuthTypeJwt, PrivateKey: key,
		//lint:ignore SA1019 gosnowflake 1.19 has no other switch for client telemetry; Rosetta sends none
		Host: srv.Host(), Port: srv.Port(), Protocol: "https", Transporter: srv.ClientTransport(), DisableTelemetry: true,
		Database: "ROSETTA", Schema: "PUBLIC",
	}))
	defer db.Close()
	deadline := time.Now().Add(90 * time.Second)
	for _, c := range checks {
		want, err := tableRows(t, src2, c.table, c.cols)
		if err != nil {
			t.Fatal(err)
		}
		for {
			got := snowflakeRows(db, c.sfQuery)
			if slices.Equal(want, got) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("snowflake did not converge: %s\n%s", describeDiff(c.table, want, got), testkit.Tail(e.logBuf.String(), 3000))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	// Exactly the source's names (no folded copy of a mixed-case name).
	names := snowflakeRows(db, `SELECT TABLE_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS
		WHERE TABLE_NAME IN ('OrderLines', 'TAGS', 'ORDERLINES', 'Tags') AND LEFT(COLUMN_NAME, 9) <> '_ROSETTA_'`)
	if want := []string{"OrderLines|LineNo", "OrderLines|Note", "OrderLines|OrderId", "OrderLines|QTY", "TAGS|ID", "TAGS|Label", "TAGS|WEIGHT"}; !slices.Equal(names, want) {
		t.Fatalf("snowflake's names = %v, want %v", names, want)
	}
}

// snowflakeRows reads the rows of query q as a|b|c lines, NULL as <NULL>,
// sorted like tableRows.
func snowflakeRows(db *sql.DB, q string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return []string{"query: " + err.Error()}
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return []string{"columns: " + err.Error()}
	}
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return []string{"scan: " + err.Error()}
		}
		line := make([]string, len(cols))
		for i, v := range vals {
			line[i] = v.String
			if !v.Valid {
				line[i] = "<NULL>"
			}
		}
		out = append(out, strings.Join(line, "|"))
	}
	slices.Sort(out)
	return out
}
