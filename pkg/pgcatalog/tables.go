package pgcatalog

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// TableInfo is one table of a source database as a pipeline sees it: how
// its rows are identified and, when it cannot be replicated, why and how to
// fix it (the same wording as CheckTables).
type TableInfo struct {
	Table Table
	// ReplicaIdentity is "default" (the primary key), "full", "index"
	// (USING INDEX) or "nothing".
	ReplicaIdentity string
	// PrimaryKey lists the primary key's columns in key order; empty when
	// the table has none.
	PrimaryKey []string
	// IdentityColumns are the columns that identify a row in updates and
	// deletes: the primary key, the USING INDEX index's columns, or none
	// for FULL (the whole row) and NOTHING.
	IdentityColumns []string
	// Problem is empty when the table can be replicated.
	Problem string
}

// ListTables lists the ordinary and partitioned tables of the database conn
// is connected to, outside the system schemas, ordered by schema and name.
// Partitions are left out: a partitioned table is replicated as a whole.
func ListTables(ctx context.Context, conn *pgx.Conn) ([]TableInfo, error) {
	rows, err := conn.Query(ctx, `SELECT n.nspname::text, c.relname::text, c.relreplident::text,
			COALESCE((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
				CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
				JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
				WHERE i.indrelid = c.oid AND i.indisprimary), '{}'),
			COALESCE((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
				CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
				JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
				WHERE i.indrelid = c.oid AND i.indisreplident), '{}'),
			has_table_privilege(c.oid, 'SELECT')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
			AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
			AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'
		ORDER BY n.nspname, c.relname`)
	if err != nil {
		return nil, fmt.Errorf("list tables of the source: %w", err)
	}
	defer rows.Close()
	var out []TableInfo
	for rows.Next() {
		var ti TableInfo
		var ident string
		var replIdx []string
		var canSelect bool
		if err := rows.Scan(&ti.Table.Schema, &ti.Table.Name, &ident, &ti.PrimaryKey, &replIdx, &canSelect); err != nil {
			return nil, fmt.Errorf("list tables of the source: %w", err)
		}
		ti.Problem = identityProblem(ti.Table, ident, len(ti.PrimaryKey) > 0, canSelect)
		switch ident {
		case "d":
			ti.ReplicaIdentity, ti.IdentityColumns = "default", ti.PrimaryKey
		case "f":
			ti.ReplicaIdentity = "full"
		case "i":
			ti.ReplicaIdentity, ti.IdentityColumns = "index", replIdx
		default:
			ti.ReplicaIdentity = "nothing"
		}
		out = append(out, ti)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables of the source: %w", err)
	}
	return out, nil
}
