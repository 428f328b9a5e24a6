package pgcatalog

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/contracts"
)

// CheckSource checks that the database conn is connected to can be a
// source: wal_level is logical, and the connected user may use logical
// replication (superuser, the REPLICATION attribute, or membership in the
// managed-service roles that grant it).
func CheckSource(ctx context.Context, conn *pgx.Conn) error {
	var level string
	if err := conn.QueryRow(ctx, `SHOW wal_level`).Scan(&level); err != nil {
		return fmt.Errorf("read wal_level: %w", err)
	}
	if level != "logical" {
		return &Problem{Msg: fmt.Sprintf("the source has wal_level=%s, but change capture needs wal_level=logical: "+
			"run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL "+
			"(on a managed service set its parameter, e.g. rds.logical_replication = 1 on RDS)", level)}
	}
	var user string
	var ok bool
	err := conn.QueryRow(ctx, `SELECT current_user::text, r.rolsuper OR r.rolreplication OR EXISTS (
			SELECT 1 FROM pg_roles m WHERE m.rolname IN ('rds_replication', 'rds_superuser', 'azure_pg_admin')
			AND pg_has_role(r.oid, m.oid, 'member'))
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&user, &ok)
	if err != nil {
		return fmt.Errorf("read replication privilege: %w", err)
	}
	if !ok {
		return &Problem{Field: "user", Msg: fmt.Sprintf("user %s may not use logical replication: run ALTER ROLE %s REPLICATION (or grant the managed service's replication role)",
			user, pgx.Identifier{user}.Sanitize())}
	}
	return nil
}

// Table is a schema-qualified table name (contracts.Table).
type Table = contracts.Table

// quoted is the table as SQL, for the fixes messages suggest.
func quoted(t Table) string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// ParseTable parses "schema.table" (contracts.ParseTable).
func ParseTable(s string) (Table, error) { return contracts.ParseTable(s) }

// ParseTables parses a pipeline's table list. It refuses an empty list,
// a table listed twice, and two tables with the same name in different
// schemas: destinations name tables by table name alone, so both would be
// written to one destination table. Problems have Field "tables".
func ParseTables(names []string) ([]Table, error) {
	if len(names) == 0 {
		return nil, &Problem{Field: "tables", Msg: "tables is empty: list at least one schema.table"}
	}
	out := make([]Table, 0, len(names))
	seen := map[Table]bool{}
	byName := map[string]Table{}
	for i, n := range names {
		t, err := ParseTable(n)
		if err != nil {
			return nil, &Problem{Field: "tables", Msg: fmt.Sprintf("tables[%d]: %v", i, err)}
		}
		if seen[t] {
			return nil, &Problem{Field: "tables", Msg: fmt.Sprintf("tables lists %s twice", t)}
		}
		if other, ok := byName[t.Name]; ok {
			return nil, &Problem{Field: "tables", Msg: fmt.Sprintf("tables %s and %s have the same table name in different schemas; destinations name tables by table name, "+
				"so one pipeline cannot hold both: put them in separate pipelines with separate destinations", other, t)}
		}
		seen[t] = true
		byName[t.Name] = t
		out = append(out, t)
	}
	return out, nil
}

// CheckTables checks that each table exists in the database conn is
// connected to, is a table, has a primary key or a replica identity that
// identifies rows (FULL or USING INDEX), and is readable by the connected
// user (backfills read it). All failures are reported in one *Problem with
// Field "tables", each saying how to fix it.
func CheckTables(ctx context.Context, conn *pgx.Conn, tables []Table) error {
	schemas := make([]string, len(tables))
	names := make([]string, len(tables))
	for i, t := range tables {
		schemas[i], names[i] = t.Schema, t.Name
	}
	rows, err := conn.Query(ctx, `SELECT t.schema, t.name, c.relkind::text, c.relreplident::text,
			COALESCE(EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), false),
			CASE WHEN c.oid IS NULL THEN false ELSE has_table_privilege(c.oid, 'SELECT') END
		FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(schema, name, ord)
		LEFT JOIN pg_namespace n ON n.nspname = t.schema
		LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.name
		ORDER BY t.ord`, schemas, names)
	if err != nil {
		return fmt.Errorf("read tables from the source catalog: %w", err)
	}
	type info struct {
		t                Table
		kind, ident      *string
		hasPK, canSelect bool
	}
	var infos []info
	for rows.Next() {
		var in info
		if err := rows.Scan(&in.t.Schema, &in.t.Name, &in.kind, &in.ident, &in.hasPK, &in.canSelect); err != nil {
			rows.Close()
			return fmt.Errorf("read tables from the source catalog: %w", err)
		}
		infos = append(infos, in)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read tables from the source catalog: %w", err)
	}
	var problems []string
	for _, in := range infos {
		t := in.t
		switch {
		case in.kind == nil:
			msg := fmt.Sprintf("table %s does not exist in the source database", t)
			var alt Table
			err := conn.QueryRow(ctx, `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE lower(n.nspname) = lower($1) AND lower(c.relname) = lower($2) AND c.relkind IN ('r', 'p') LIMIT 1`,
				t.Schema, t.Name).Scan(&alt.Schema, &alt.Name)
			if err == nil {
				msg += fmt.Sprintf(" (names are case-sensitive: did you mean %s?)", alt)
			}
			problems = append(problems, msg)
		case *in.kind != "r" && *in.kind != "p":
			problems = append(problems, fmt.Sprintf("%s is a %s, not a table: only tables can be replicated", t, relkindName(*in.kind)))
		default:
			if msg := identityProblem(t, *in.ident, in.hasPK, in.canSelect); msg != "" {
				problems = append(problems, msg)
			}
		}
	}
	if len(problems) > 0 {
		return &Problem{Field: "tables", Msg: strings.Join(problems, "; ")}
	}
	return nil
}

// identityProblem says what keeps a table from being replicated, and how
// to fix it, from its replica identity (pg_class.relreplident), whether it
// has a primary key and whether the user may read it; "" when nothing does.
// CheckTables and ListTables word it the same way.
func identityProblem(t Table, ident string, hasPK, canSelect bool) string {
	switch {
	case ident == "n":
		return fmt.Sprintf("%s has REPLICA IDENTITY NOTHING, so its updates and deletes cannot be captured: run ALTER TABLE %s REPLICA IDENTITY FULL, or REPLICA IDENTITY DEFAULT if it has a primary key", t, quoted(t))
	case ident == "d" && !hasPK:
		return fmt.Sprintf("%s has no primary key: add one, or run ALTER TABLE %s REPLICA IDENTITY FULL", t, quoted(t))
	case !canSelect:
		return fmt.Sprintf("the source user cannot read %s: run GRANT SELECT ON %s TO the source user", t, quoted(t))
	}
	return ""
}

func relkindName(k string) string {
	switch k {
	case "v":
		return "view"
	case "m":
		return "materialized view"
	case "f":
		return "foreign table"
	case "S":
		return "sequence"
	case "i", "I":
		return "index"
	case "c":
		return "composite type"
	case "t":
		return "TOAST table"
	}
	return "relation of kind " + k
}
