package duckdb

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/destquery"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestQueriesThroughTheHolder: while the driver holds the file (another
// process cannot open it), queries reach it through pkg/destquery, in
// this process and over NATS, see every committed batch, and are confined
// to reads of this file.
func TestQueriesThroughTheHolder(t *testing.T) {
	t.Parallel()
	it := ev{Table: "items", Columns: itemCols}
	e := newEnv(t, map[string]any{"release_after": "1h", "max_hold": "0s"})
	e.mustApply(it.Ins(10, 1, "a"), it.Ins(10, 2, "b"))
	if _, err := readOnce(t, e.path); err == nil {
		t.Fatal("another process opened the file while the driver held it; the test proves nothing")
	}

	reg := destquery.NewRegistry(quietLog())
	remove := reg.Add(e.path, e.drv)
	defer remove()
	n := testkit.StartNATS(t)
	serveConn, _ := n.Connect(t)
	stop, err := reg.Serve(serveConn)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	askConn, _ := n.Connect(t)
	queriers := map[string]*destquery.Querier{
		"in process": destquery.NewQuerier(reg, nil),
		"over nats":  destquery.NewQuerier(nil, askConn),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	count := func(t *testing.T, q *destquery.Querier) string {
		t.Helper()
		res, err := q.Query(ctx, e.path, destquery.Request{SQL: "SELECT count(*) AS n FROM sink.items"})
		if err != nil {
			t.Fatalf("count: %v", err)
		}
		if len(res.Rows) != 1 || res.Rows[0][0] == nil || res.Columns[0] != "n" {
			t.Fatalf("count returned %+v", res)
		}
		return *res.Rows[0][0]
	}
	lsn := uint64(20)
	for name, q := range queriers {
		t.Run(name, func(t *testing.T) {
			before := count(t, q)
			// The driver reopens the file for the next batch, and the
			// next query sees it.
			lsn++
			e.mustApply(it.Ins(lsn, int(lsn), "x"))
			after := count(t, q)
			if before == after {
				t.Fatalf("count stayed %s after a committed insert", after)
			}
			for _, tc := range []struct {
				sql      string
				notRead  bool
				contains string
			}{
				{sql: "DELETE FROM sink.items", notRead: true},
				{sql: "SELECT 1; DELETE FROM sink.items", notRead: true},
				{sql: "ATTACH '/tmp/other.duckdb' AS o", notRead: true},
				{sql: "COPY sink.items TO '/tmp/out.csv'", notRead: true},
				{sql: "SET enable_external_access = true", notRead: true},
				{sql: "SELECT * FROM read_csv('/etc/hostname')", contains: "disabled by configuration"},
			} {
				_, err := q.Query(ctx, e.path, destquery.Request{SQL: tc.sql})
				if err == nil {
					t.Errorf("%s: accepted", tc.sql)
					continue
				}
				if tc.notRead != errors.Is(err, destquery.ErrNotRead) {
					t.Errorf("%s: error %v, want ErrNotRead %v", tc.sql, err, tc.notRead)
				}
				if !strings.Contains(err.Error(), tc.contains) {
					t.Errorf("%s: error %q does not say %q", tc.sql, err, tc.contains)
				}
			}
			if got := count(t, q); got != after {
				t.Fatalf("a refused statement changed the table: %s rows, want %s", got, after)
			}
		})
	}
}
