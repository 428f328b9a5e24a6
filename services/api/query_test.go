package api

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/rosettacdc/rosetta/pkg/destquery"
)

// testQuery covers POST /destinations/{id}/query on a DuckDB file no
// process holds (the querier then opens it read-only itself).
func testQuery(t *testing.T, c *client) {
	dir := t.TempDir()
	path := filepath.Join(dir, "q.duckdb")
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE main.orders (id INTEGER, note VARCHAR); INSERT INTO main.orders SELECT i, CASE WHEN i = 2 THEN NULL ELSE 'n' || i END FROM range(1, 6) t(i)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	c.srv.UseDuckDBQueries(destquery.NewQuerier(nil, nil))

	var duck, missing, pg idView
	c.must(201, "POST", "/destinations", map[string]any{"name": "q-duck", "type": "duckdb", "config": map[string]any{"path": path}}, &duck)
	c.must(201, "POST", "/destinations", map[string]any{"name": "q-missing", "type": "duckdb", "config": map[string]any{"path": filepath.Join(dir, "none.duckdb")}}, &missing)
	c.must(201, "POST", "/destinations", c.pgDestBody("q-pg"), &pg)
	q := func(id int64) string { return fmt.Sprintf("/destinations/%d/query", id) }

	var res queryView
	c.must(200, "POST", q(duck.ID), map[string]any{"sql": "SELECT id, note FROM main.orders ORDER BY id", "limit": 3}, &res)
	if fmt.Sprint(res.Columns) != "[id note]" || len(res.Rows) != 3 || !res.Truncated || res.Rows[1][1] != nil || *res.Rows[2][1] != "n3" {
		t.Fatalf("query = %+v, want 3 of 5 rows, truncated, NULL as null", res)
	}
	tests := []struct {
		name   string
		id     int64
		body   map[string]any
		status int
		field  string
		words  string
	}{
		{"a write", duck.ID, map[string]any{"sql": "DELETE FROM main.orders"}, 422, "sql", "only a single read statement"},
		{"two statements", duck.ID, map[string]any{"sql": "SELECT 1; SELECT 2"}, 422, "sql", "read statement"},
		{"another file", duck.ID, map[string]any{"sql": "SELECT * FROM read_csv('/etc/passwd')"}, 422, "sql", ""},
		{"an SQL error", duck.ID, map[string]any{"sql": "SELECT nope FROM main.orders"}, 422, "sql", "nope"},
		{"no sql", duck.ID, map[string]any{}, 422, "sql", "sql is required"},
		{"limit out of range", duck.ID, map[string]any{"sql": "SELECT 1", "limit": 0}, 422, "limit", "limit must be"},
		{"no file yet", missing.ID, map[string]any{"sql": "SELECT 1"}, 409, "", "has no file yet"},
		{"not duckdb", pg.ID, map[string]any{"sql": "SELECT 1"}, 422, "", "duckdb destinations only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.words == "" {
				c.wantError("POST", q(tt.id), tt.body, tt.status, tt.field)
				return
			}
			c.wantError("POST", q(tt.id), tt.body, tt.status, tt.field, tt.words)
		})
	}
	c.wantError("POST", "/destinations/999999/query", map[string]any{"sql": "SELECT 1"}, 404, "", "does not exist")
	// The refused DELETE changed nothing.
	c.must(200, "POST", q(duck.ID), map[string]any{"sql": "SELECT count(*) AS n FROM main.orders"}, &res)
	if *res.Rows[0][0] != "5" {
		t.Fatalf("rows after the refused DELETE = %s, want 5", *res.Rows[0][0])
	}
}
