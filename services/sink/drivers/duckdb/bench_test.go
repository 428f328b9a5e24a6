package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
)

// benchCols is a typical table: a key and a mix of types that take every
// conversion path (typed wire values and text cast in SQL).
var benchCols = []contracts.Column{
	{Name: "id", Type: "bigint", BaseType: "bigint", Key: true},
	{Name: "name", Type: "text", BaseType: "text"},
	{Name: "price", Type: "numeric(12,2)", BaseType: "numeric(12,2)"},
	{Name: "qty", Type: "integer", BaseType: "integer"},
	{Name: "ok", Type: "boolean", BaseType: "boolean"},
	{Name: "at", Type: "timestamp with time zone", BaseType: "timestamp with time zone"},
	{Name: "doc", Type: "jsonb", BaseType: "jsonb"},
	{Name: "ratio", Type: "double precision", BaseType: "double precision"},
}

func benchChanges(n int, lsn uint64) []contracts.Change {
	e := ev{Table: "bench", Columns: benchCols}
	out := make([]contracts.Change, n)
	for i := range out {
		out[i] = e.Change(contracts.OpCreate, lsn, int64(i+1), fmt.Sprintf(`{"id":%d}`, i), ``, fmt.Sprintf(
			`{"id":%d,"name":"customer name %d","price":"%d.25","qty":%d,"ok":true,"at":"2024-05-06 07:08:09.%06d+00","doc":"{\"k\": %d, \"tags\": [\"a\", \"b\"]}","ratio":"0.%d"}`,
			i, i, i, i%100, i, i, i))
	}
	return out
}

// benchStage opens a driver's file, creates the bench table and a staging
// plan for a batch of n rows, and returns the rows converted for staging.
func benchStage(b *testing.B, n int) (*Driver, *sql.Conn, *stagePlan, [][]driver.Value) {
	b.Helper()
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(b.TempDir(), "bench.duckdb")
	cfg.ReleaseAfter = time.Hour
	d := New(cfg, quietLog())
	b.Cleanup(func() { d.Close() })
	batches, err := cdc.Collapse(benchChanges(n, 10))
	if err != nil {
		b.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	conn, err := d.open(ctx)
	if err != nil {
		b.Fatal(err)
	}
	plan, _, _, err := d.prepare(ctx, conn, batches[0])
	if err != nil {
		b.Fatal(err)
	}
	rows, _, err := stageRows(batches[0], plan.layout, nil)
	if err != nil {
		b.Fatal(err)
	}
	return d, conn, plan, rows
}

// insertRows is the alternative to appendRows that BenchmarkStage measures:
// multi-row INSERT statements of per rows each, prepared once per size,
// with every value bound. stmts caches the prepared statements by row
// count; the caller closes them.
func insertRows(ctx context.Context, conn *sql.Conn, plan *stagePlan, rows [][]driver.Value, per int, stmts map[int]*sql.Stmt) error {
	width := len(plan.wireTypes)
	args := make([]any, 0, per*width)
	for start := 0; start < len(rows); start += per {
		chunk := rows[start:min(start+per, len(rows))]
		st, ok := stmts[len(chunk)]
		if !ok {
			row := make([]string, width)
			for i, t := range plan.wireTypes {
				row[i] = "CAST(? AS " + wireName(t.InternalType()) + ")"
			}
			tuple := "(" + strings.Join(row, ", ") + ")"
			values := strings.TrimSuffix(strings.Repeat(tuple+", ", len(chunk)), ", ")
			names := make([]string, width)
			for i := range names {
				names[i] = ident(loadColPrefix + strconv.Itoa(i+1))
			}
			var err error
			st, err = conn.PrepareContext(ctx, plan.sql.loadPrefix+"(VALUES "+values+") AS "+ident(loadAlias)+"("+strings.Join(names, ", ")+")")
			if err != nil {
				return err
			}
			stmts[len(chunk)] = st
		}
		args = args[:0]
		for _, r := range chunk {
			for _, v := range r {
				args = append(args, v)
			}
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkStage compares the two ways of loading a 1000-row batch into
// the staging table, inside a transaction as Apply does.
func BenchmarkStage(b *testing.B) {
	loaders := []struct {
		name string
		load func(context.Context, *sql.Conn, *stagePlan, [][]driver.Value) error
	}{
		{"appender", appendRows},
		{"insert-100-rows", func(ctx context.Context, c *sql.Conn, p *stagePlan, r [][]driver.Value) error {
			return insertRows(ctx, c, p, r, 100, map[int]*sql.Stmt{})
		}},
		{"insert-1000-rows", func(ctx context.Context, c *sql.Conn, p *stagePlan, r [][]driver.Value) error {
			return insertRows(ctx, c, p, r, 1000, map[int]*sql.Stmt{})
		}},
	}
	for _, l := range loaders {
		b.Run(l.name, func(b *testing.B) {
			ctx := context.Background()
			_, conn, plan, rows := benchStage(b, 1000)
			for b.Loop() {
				for _, q := range []string{"BEGIN TRANSACTION", plan.sql.clearStage} {
					if _, err := conn.ExecContext(ctx, q); err != nil {
						b.Fatal(err)
					}
				}
				if err := l.load(ctx, conn, plan, rows); err != nil {
					b.Fatal(err)
				}
				if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
					b.Fatal(err)
				}
			}
			var n int
			if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+ident("_rosetta_stage_1")).Scan(&n); err != nil || n != 1000 {
				b.Fatalf("staged %d rows (%v), want 1000", n, err)
			}
		})
	}
}

// BenchmarkApply measures a whole Apply of 1000 or 10 rows (updates of
// existing rows) with the file kept open between batches, and released
// (checkpointed and closed) after every batch, which is what readers pay
// for.
func BenchmarkApply(b *testing.B) {
	for _, tc := range []struct {
		name    string
		rows    int
		release time.Duration
	}{{"1000-rows/held", 1000, time.Hour}, {"1000-rows/release-each-batch", 1000, 0},
		{"10-rows/held", 10, time.Hour}, {"10-rows/release-each-batch", 10, 0}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			cfg := DefaultConfig()
			cfg.Path = filepath.Join(b.TempDir(), "bench.duckdb")
			cfg.ReleaseAfter = tc.release
			d := New(cfg, quietLog())
			b.Cleanup(func() { d.Close() })
			// 100k rows in the table; each iteration rewrites 1000 of them.
			for i := range 100 {
				batches, _ := cdc.Collapse(benchChanges(1000, uint64(i+1)))
				for j := range batches[0].Rows {
					batches[0].Rows[j].Key[0].Text = strconv.Itoa(i*1000 + j)
					batches[0].Rows[j].Values["id"] = batches[0].Rows[j].Key[0]
				}
				if err := d.Apply(ctx, batches); err != nil {
					b.Fatal(err)
				}
			}
			lsn := uint64(1000)
			for b.Loop() {
				lsn++
				batches, _ := cdc.Collapse(benchChanges(tc.rows, lsn))
				if err := d.Apply(ctx, batches); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
