package duckdb

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/rosettacdc/rosetta/contracts"
)

// widens reports whether changing a destination column of DuckDB type dest
// to sent, the type the source column now maps to, keeps every value
// exactly and holds every value of dest: a wider integer, or a DECIMAL
// with at least as many digits before and after the point.
func widens(dest, sent string) bool {
	if dest == sent {
		return false
	}
	switch dest {
	case "TINYINT":
		return sent == "SMALLINT" || sent == "INTEGER" || sent == "BIGINT"
	case "SMALLINT":
		return sent == "INTEGER" || sent == "BIGINT"
	case "INTEGER":
		return sent == "BIGINT"
	}
	p, s, ok := decimalType(dest)
	if !ok {
		return false
	}
	p2, s2, ok := decimalType(sent)
	return ok && s2 >= s && p2-s2 >= p-s
}

// widenColumns changes the type of destination columns whose source
// column was widened (widens) to the type the source's now maps to, in the
// batch's transaction, before the batch is staged. Key columns are left
// alone (the tombstone table repeats their type). It returns the
// statements it ran.
func widenColumns(ctx context.Context, conn *sql.Conn, target string, types map[string]string, cols []contracts.Column) ([]string, error) {
	var ddl []string
	for _, c := range cols {
		dest, ok := types[c.Name]
		if !ok || c.Key {
			continue
		}
		if sent := columnType(c.BaseType); widens(dest, sent) {
			ddl = append(ddl, "ALTER TABLE "+target+" ALTER COLUMN "+ident(c.Name)+" TYPE "+sent)
		}
	}
	for _, q := range ddl {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("widen destination column: %w", err)
		}
	}
	return ddl, nil
}
