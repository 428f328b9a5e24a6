package duckdb

import (
	"context"
	"database/sql"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
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

// widenColumns widens destination columns (relational.Syntax.WidenColumns)
// in the batch's transaction on conn.
func widenColumns(ctx context.Context, conn *sql.Conn, target string, types map[string]string, cols []contracts.Column) ([]string, error) {
	return syntax().WidenColumns(ctx, connExec(conn), nil, target, types, cols)
}

// connExec runs statements on conn, in the transaction open there.
func connExec(conn *sql.Conn) relational.Exec {
	return func(ctx context.Context, q string) error {
		_, err := conn.ExecContext(ctx, q)
		return err
	}
}
