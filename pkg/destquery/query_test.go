package destquery

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

// newFile creates a DuckDB file holding table t(i) with n rows.
func newFile(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "q.duckdb")
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t AS SELECT range AS i, 'v' || range AS s FROM range(?)`, n); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckRead(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct {
		sql string
		ok  bool
	}{
		{"SELECT 1", true},
		{"  select * from t where s = 'a;b' ", true},
		{"WITH a AS (SELECT 1) SELECT * FROM a", true},
		{"FROM t", true},
		{"VALUES (1), (2)", true},
		{"SHOW TABLES", true},
		{"DESCRIBE t", true},
		{"SUMMARIZE t", true},
		{"SELECT 1; SELECT 2", false},
		{"SELECT 1; DROP TABLE t", false},
		{"", false},
		{"INSERT INTO t VALUES (1)", false},
		{"UPDATE t SET i = 1", false},
		{"DELETE FROM t", false},
		{"CREATE TABLE x (i INT)", false},
		{"DROP TABLE t", false},
		{"ATTACH 'other.duckdb' AS o", false},
		{"COPY t TO 'out.csv'", false},
		{"EXPORT DATABASE 'dir'", false},
		{"INSTALL httpfs", false},
		{"LOAD httpfs", false},
		{"PRAGMA enable_profiling", false},
		{"SET enable_external_access = true", false},
		{"CALL pragma_version()", false},
		{"CHECKPOINT", false},
	} {
		err := CheckRead(context.Background(), db, tc.sql)
		if tc.ok && err != nil {
			t.Errorf("%q refused: %v", tc.sql, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("%q accepted", tc.sql)
		}
	}
	// A syntax error is reported as such, not as "not a read".
	err = CheckRead(context.Background(), db, "SELEC 1")
	if err == nil || errors.Is(err, ErrNotRead) || !strings.Contains(err.Error(), "syntax") {
		t.Errorf("syntax error: %v", err)
	}
}

func TestQueryFile(t *testing.T) {
	t.Parallel()
	path := newFile(t, 50)
	ctx := context.Background()

	t.Run("rows, types and limit", func(t *testing.T) {
		res, err := QueryFile(ctx, path, Request{SQL: "SELECT i, s, NULL AS n FROM t ORDER BY i", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Truncated || len(res.Rows) != 10 {
			t.Fatalf("rows %d truncated %v, want 10 and true", len(res.Rows), res.Truncated)
		}
		if strings.Join(res.Columns, ",") != "i,s,n" || res.Types[0] != "BIGINT" || res.Types[1] != "VARCHAR" {
			t.Fatalf("columns %v types %v", res.Columns, res.Types)
		}
		if *res.Rows[3][0] != "3" || *res.Rows[3][1] != "v3" || res.Rows[3][2] != nil {
			t.Fatalf("row 3 = %v %v %v", *res.Rows[3][0], *res.Rows[3][1], res.Rows[3][2])
		}
		res, err = QueryFile(ctx, path, Request{SQL: "SELECT count(*) FROM t", Limit: 10})
		if err != nil || res.Truncated || *res.Rows[0][0] != "50" {
			t.Fatalf("count: %+v %v", res, err)
		}
	})
	t.Run("no other files", func(t *testing.T) {
		other := newFile(t, 1)
		for _, q := range []string{
			"SELECT * FROM read_csv('" + other + "')",
			"SELECT * FROM '" + other + "'",
			"SELECT * FROM read_text('/etc/hostname')",
		} {
			if _, err := QueryFile(ctx, path, Request{SQL: q}); err == nil {
				t.Errorf("%s: read another file", q)
			}
		}
	})
	t.Run("read only", func(t *testing.T) {
		_, err := QueryFile(ctx, path, Request{SQL: "CREATE TABLE x AS SELECT 1"})
		if !errors.Is(err, ErrNotRead) {
			t.Fatalf("create: %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		_, err := QueryFile(ctx, path, Request{SQL: "SELECT count(*) FROM range(1000000000000) a", Timeout: 300 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Fatalf("long query: %v", err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Fatalf("the timeout did not interrupt the query (%s)", d)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := QueryFile(ctx, filepath.Join(t.TempDir(), "none.duckdb"), Request{SQL: "SELECT 1"})
		if !errors.Is(err, ErrNoFile) {
			t.Fatalf("missing file: %v", err)
		}
	})
}
