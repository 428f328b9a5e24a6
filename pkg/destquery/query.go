package destquery

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Limits of a query. A Request's zero Limit or Timeout takes the default;
// larger values are capped.
const (
	DefaultLimit   = 1000
	MaxLimit       = 100_000
	DefaultTimeout = 10 * time.Second
	MaxTimeout     = 60 * time.Second
)

// Errors a query can end with; test them with errors.Is.
var (
	// ErrNotRead: the SQL is not exactly one read statement.
	ErrNotRead = errors.New("only a single read statement (SELECT, WITH, FROM, VALUES, SHOW, DESCRIBE, SUMMARIZE) is accepted")
	// ErrNoFile: the destination file does not exist yet (no batch has
	// been applied to it).
	ErrNoFile = errors.New("the duckdb file does not exist yet")
	// ErrHeldElsewhere: another process holds the file and did not answer
	// over NATS (it is not a Rosetta sink, or NATS is not reachable).
	ErrHeldElsewhere = errors.New("the duckdb file is held by another process that does not serve queries")
)

// Request is one query. It is also the NATS request body (JSON).
type Request struct {
	SQL string `json:"sql"`
	// Limit is the most rows returned (DefaultLimit; at most MaxLimit).
	Limit int `json:"limit,omitempty"`
	// Timeout bounds the query (DefaultTimeout; at most MaxTimeout).
	Timeout time.Duration `json:"timeout,omitempty"`
}

// normalized returns r with its defaults and caps applied.
func (r Request) normalized() Request {
	if r.Limit <= 0 {
		r.Limit = DefaultLimit
	}
	r.Limit = min(r.Limit, MaxLimit)
	if r.Timeout <= 0 {
		r.Timeout = DefaultTimeout
	}
	r.Timeout = min(r.Timeout, MaxTimeout)
	return r
}

// Result is a query's answer: column names and DuckDB types, and rows whose
// cells are the values' text (DuckDB's own cast to VARCHAR semantics as the
// Go driver reports them) or nil for NULL.
type Result struct {
	Columns   []string    `json:"columns"`
	Types     []string    `json:"types"`
	Rows      [][]*string `json:"rows"`
	Truncated bool        `json:"truncated"`
}

// dsn is how a destination file is opened for a query: read-only, and with
// external access off so that a query cannot read other files or ATTACH.
func dsn(path string) string {
	q := url.Values{}
	q.Set("access_mode", "READ_ONLY")
	q.Set("enable_external_access", "false")
	return path + "?" + q.Encode()
}

// QueryFile runs req on the DuckDB file at path, opened read-only here.
// It fails if another process holds the file (a DuckDB IO error naming
// the lock); Querier.Query routes to the holder instead.
func QueryFile(ctx context.Context, path string, req Request) (*Result, error) {
	req = req.normalized()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("query %s: %w", path, ErrNoFile)
	}
	ctx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	connector, err := duckdb.NewConnector(dsn(path), nil)
	if err != nil {
		return nil, fmt.Errorf("open duckdb file %s read-only: %w", path, err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	db.SetMaxOpenConns(1)
	// The timeout covers parsing too: on a loaded host it can run out
	// there, and the caller must still hear that it was the timeout.
	timedOut := func(err error) error {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("query timed out after %s: %w", req.Timeout, err)
		}
		return err
	}
	if err := CheckRead(ctx, db, req.SQL); err != nil {
		return nil, timedOut(err)
	}
	res, err := run(ctx, db, req)
	if err != nil {
		return nil, timedOut(fmt.Errorf("query: %w", err))
	}
	return res, nil
}

// CheckRead returns nil if sql is exactly one read statement according to
// DuckDB's parser on db, and an error wrapping ErrNotRead otherwise. It
// parses only; nothing is executed. (Preparing a multi-statement string
// would execute all but its last statement, so it is never prepared before
// this check.)
func CheckRead(ctx context.Context, db *sql.DB, query string) error {
	if strings.TrimSpace(query) == "" {
		return fmt.Errorf("empty query: %w", ErrNotRead)
	}
	var parsed string
	if err := db.QueryRowContext(ctx, "SELECT json_serialize_sql(?::VARCHAR)::VARCHAR", query).Scan(&parsed); err != nil {
		return fmt.Errorf("parse query: %w", err)
	}
	var p struct {
		Error        bool              `json:"error"`
		ErrorType    string            `json:"error_type"`
		ErrorMessage string            `json:"error_message"`
		Statements   []json.RawMessage `json:"statements"`
	}
	if err := json.Unmarshal([]byte(parsed), &p); err != nil {
		return fmt.Errorf("parse query: %w", err)
	}
	switch {
	case p.Error && p.ErrorType == "not implemented":
		// "Only SELECT statements can be serialized to json!"
		return ErrNotRead
	case p.Error:
		return fmt.Errorf("%s", strings.TrimSpace(p.ErrorMessage))
	case len(p.Statements) != 1:
		return fmt.Errorf("%d statements: %w", len(p.Statements), ErrNotRead)
	}
	return nil
}

func run(ctx context.Context, db *sql.DB, req Request) (*Result, error) {
	rows, err := db.QueryContext(ctx, req.SQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	res := &Result{Columns: make([]string, len(cols)), Types: make([]string, len(cols)), Rows: [][]*string{}}
	for i, c := range cols {
		res.Columns[i], res.Types[i] = c.Name(), c.DatabaseTypeName()
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if len(res.Rows) == req.Limit {
			res.Truncated = true
			break
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]*string, len(vals))
		for i, v := range vals {
			if v != nil {
				s := Text(v)
				row[i] = &s
			}
		}
		res.Rows = append(res.Rows, row)
	}
	return res, rows.Err()
}
