package fakesnowflake

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Snowflake refuses a value longer than its column's declared VARCHAR(n)
// (in characters) or BINARY(n) (in bytes) with 100078. DuckDB keeps no
// lengths (lengths.go), so a write (INSERT, UPDATE, MERGE) into a
// permanent table with declared lengths runs in a transaction (the open
// one, or an implicit one), then a probe looks for a value over its
// length; if there is one the statement fails and its effect is rolled
// back. Inside an explicit transaction that means the whole transaction,
// as for any failed statement (see errTxAborted).

// writeChecked runs a write statement (toks) with run, enforcing the
// declared lengths of the table it writes.
func (ss *session) writeChecked(ctx context.Context, toks []token, run func() (*result, error)) (*result, error) {
	db, schema, table, ok := ss.writeTarget(toks)
	if !ok {
		return run()
	}
	lengths := ss.srv.lengthsOf(db, schema, table)
	if len(lengths) == 0 {
		return run()
	}
	finish, err := ss.beginImplicit(ctx)
	if err != nil {
		return nil, err
	}
	res, err := run()
	if err == nil {
		err = ss.checkLengths(ctx, db, schema, table, lengths)
		if err != nil && ss.inTx {
			ss.txAborted = true
		}
	}
	if err != nil {
		if ferr := finish(false); ferr != nil {
			ss.srv.log.Warn("fakesnowflake: roll back a refused write", "err", ferr)
		}
		return nil, err
	}
	if err := finish(true); err != nil {
		return nil, err
	}
	return res, nil
}

// writeTarget is the permanent table INSERT [OVERWRITE] INTO t, UPDATE t
// or MERGE INTO t writes; ok is false for a temporary table or another
// statement.
func (ss *session) writeTarget(toks []token) (db, schema, table string, ok bool) {
	i := 1
	switch {
	case len(toks) > 2 && toks[0].isWord("INSERT"):
		if toks[i].isWord("OVERWRITE") {
			i++
		}
		if i >= len(toks) || !toks[i].isWord("INTO") {
			return "", "", "", false
		}
		i++
	case len(toks) > 2 && toks[0].isWord("MERGE") && toks[1].isWord("INTO"):
		i = 2
	case len(toks) > 1 && toks[0].isWord("UPDATE"):
	default:
		return "", "", "", false
	}
	parts, _, found := readQualifiedName(toks, i)
	if !found {
		return "", "", "", false
	}
	if _, temp := ss.lookupTemp(parts); temp {
		return "", "", "", false
	}
	db, schema, table = ss.qualify(parts)
	return db, schema, table, true
}

// checkLengths fails with 100078 when a value of table is longer than its
// column's declared length (lengths, by column name).
func (ss *session) checkLengths(ctx context.Context, db, schema, table string, lengths map[string]int64) error {
	rows, err := ss.conn.QueryContext(ctx, `SELECT column_name, data_type FROM duckdb_columns()
		WHERE database_name = $1 AND schema_name = $2 AND table_name = $3`, encodeName(db), encodeName(schema), encodeName(table))
	if err != nil {
		return fmt.Errorf("read the columns of %s.%s.%s: %w", db, schema, table, err)
	}
	from := quoteIdent(db) + "." + quoteIdent(schema) + "." + quoteIdent(table)
	var probes []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			_ = rows.Close()
			return fmt.Errorf("read the columns of %s.%s.%s: %w", db, schema, table, err)
		}
		name = decodeName(name)
		n, ok := lengths[name]
		if !ok {
			continue
		}
		col := quoteIdent(name)
		switch typ {
		case "VARCHAR": // Snowflake counts characters
			probes = append(probes, fmt.Sprintf(`SELECT %s AS c, %d AS n, false AS b, encode(%s) AS v FROM %s WHERE length(%s) > %d`,
				quoteString(name), n, col, from, col, n))
		case "BLOB":
			probes = append(probes, fmt.Sprintf(`SELECT %s AS c, %d AS n, true AS b, %s AS v FROM %s WHERE octet_length(%s) > %d`,
				quoteString(name), n, col, from, col, n))
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("read the columns of %s.%s.%s: %w", db, schema, table, err)
	}
	if len(probes) == 0 {
		return nil
	}
	sort.Strings(probes)
	var (
		column string
		n      int64
		binary bool
		value  []byte
	)
	switch err := ss.conn.QueryRowContext(ctx, strings.Join(probes, " UNION ALL ")+" LIMIT 1").Scan(&column, &n, &binary, &value); {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("check the declared lengths of %s: %w", from, err)
	}
	if binary {
		return &sfError{code: "100078", sqlState: "22000", msg: fmt.Sprintf("Binary value '%.60s' is too long and would be truncated (column %s, BINARY(%d))",
			strings.ToUpper(hex.EncodeToString(value)), column, n)}
	}
	return &sfError{code: "100078", sqlState: "22000", msg: fmt.Sprintf("String '%.60s' is too long and would be truncated (column %s, VARCHAR(%d))",
		value, column, n)}
}
