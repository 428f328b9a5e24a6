// Command duckquery runs one SQL query against a DuckDB file opened
// read-only and prints the rows tab-separated. While Rosetta writes the file
// it holds DuckDB's lock; duckquery retries until Rosetta releases it (see
// docs/duckdb.md) or -wait runs out. The demo uses it to show DuckDB rows.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

func main() {
	wait := flag.Duration("wait", 10*time.Second, "how long to retry while the file is locked")
	flag.Usage = func() { fmt.Fprintln(os.Stderr, "usage: duckquery [-wait 10s] FILE SQL") }
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *wait); err != nil {
		fmt.Fprintln(os.Stderr, "duckquery:", err)
		os.Exit(1)
	}
}

func run(path, query string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait+30*time.Second)
	defer cancel()
	deadline := time.Now().Add(wait)
	for {
		err := queryOnce(ctx, path, query)
		if err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "lock") || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func queryOnce(ctx context.Context, path, query string) error {
	db, err := sql.Open("duckdb", path+"?access_mode=READ_ONLY")
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		out := make([]string, len(vals))
		for i, v := range vals {
			out[i] = fmt.Sprint(v)
		}
		fmt.Println(strings.Join(out, "\t"))
	}
	return rows.Err()
}
