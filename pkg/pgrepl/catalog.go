package pgrepl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rosettacdc/rosetta/contracts"
)

// firstNormalOID is PostgreSQL's FirstNormalObjectId: types with a lower
// OID are built in; anything at or above it was created by a user or an
// extension.
const firstNormalOID = 16384

// CatalogResolver resolves relations through the source's catalog over a
// normal (non-replication) connection. It is used by one goroutine at a
// time, like the connection it holds.
type CatalogResolver struct {
	conn *pgx.Conn
	// version is the server's server_version_num, read once: existing
	// values (attmissingval) exist from PostgreSQL 11 on.
	version int
}

var (
	_ Resolver     = (*CatalogResolver)(nil)
	_ CommitWaiter = (*CatalogResolver)(nil)
)

// NewCatalogResolver returns a resolver querying conn.
func NewCatalogResolver(conn *pgx.Conn) *CatalogResolver { return &CatalogResolver{conn: conn} }

// Type names are resolved from the (type OID, typmod) pgoutput sent for
// each column, not from the table's current attributes, so a column dropped
// since the change was written still resolves. format_type runs with
// search_path = pg_catalog so that non-built-in types print schema-qualified
// ("public.mood") whatever the role's search_path is. A domain is followed
// down to its base type, keeping the innermost typmod that was set.
const columnTypesSQL = `
WITH RECURSIVE cols(ord, typid, typmod) AS (
    SELECT u.ord, u.typid, u.typmod FROM unnest($1::oid[], $2::int4[]) WITH ORDINALITY AS u(typid, typmod, ord)
), base(ord, typid, typmod, depth) AS (
    SELECT ord, typid, typmod, 0 FROM cols
    UNION ALL
    SELECT b.ord, t.typbasetype, CASE WHEN t.typtypmod <> -1 THEN t.typtypmod ELSE b.typmod END, b.depth + 1
    FROM base b JOIN pg_type t ON t.oid = b.typid
    WHERE t.typtype = 'd' AND b.depth < 32
)
SELECT c.ord, format_type(c.typid, c.typmod), bb.typid, format_type(bb.typid, bb.typmod)
FROM cols c
JOIN LATERAL (SELECT typid, typmod FROM base WHERE base.ord = c.ord ORDER BY depth DESC LIMIT 1) bb ON true
ORDER BY c.ord`

// existingValuesSQL reads, for the columns that have one, the value rows
// that existed when the column was added hold (ADD COLUMN … DEFAULT with a
// non-volatile default; pg_attribute.attmissingval, a one-element array
// of the column's type). Its text is the array's output, so it depends on
// the session's settings: resolveSession pins them to capture's.
const existingValuesSQL = `
SELECT attname, attmissingval::text
FROM pg_attribute
WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND atthasmissing AND attmissingval IS NOT NULL`

// resolveSession pins, for the resolve transaction, the settings that
// shape values' text output to those capture's replication connection
// pins (services/capture sessionParams), so that an existing value is
// spelled as the same value in a change would be; and the search_path
// that makes format_type qualify non-built-in types.
const resolveSession = `SET LOCAL search_path TO pg_catalog; SET LOCAL TimeZone TO 'UTC'; SET LOCAL DateStyle TO 'ISO, MDY';
SET LOCAL IntervalStyle TO 'postgres'; SET LOCAL extra_float_digits TO 1; SET LOCAL bytea_output TO 'hex'; SET LOCAL lc_monetary TO 'C'`

// attnumsSQL reads the columns' numbers, which survive RENAME COLUMN and
// are never reused within a table: a consumer tells a renamed column from
// a new one by them (contracts.Column.Attnum). Read by name, like
// existing values, as the table is now: a column renamed again since the
// change was written is not found and goes without one. The same query
// reads whether the column has a default or is an identity column: one
// added that way holds, in the rows that existed, values the table's
// rewrite wrote and logical replication never sent, unless PostgreSQL
// kept a single existing value for them (attmissingval, read below).
const attnumsSQL = `
SELECT attname, attnum::int, atthasdef OR attidentity <> '' FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped`

const primaryKeySQL = `
SELECT a.attname
FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = $1 AND i.indisprimary`

// visibleSQL reports whether transaction $1 (a 32-bit xid, as pgoutput's
// Begin carries it) is visible to a new snapshot: committed and no longer
// in progress for other sessions. The xid is widened with the epoch of the
// snapshot's xmax (an xid above xmax's low half belongs to the epoch
// before). The txid_* functions exist on every supported server.
const visibleSQL = `
SELECT txid_visible_in_snapshot(CASE WHEN $1::bigint > x % 4294967296 THEN (x / 4294967296 - 1) * 4294967296 + $1::bigint
                                     ELSE (x / 4294967296) * 4294967296 + $1::bigint END, s)
FROM (SELECT s, txid_snapshot_xmax(s) AS x FROM (SELECT txid_current_snapshot() AS s) a) b`

// WaitCommitted implements CommitWaiter: it polls until transaction xid is
// visible to a new snapshot, or ctx ends. The wait is the moment between
// a commit record reaching the WAL and the transaction leaving the
// server's list of running ones: microseconds, longer on a loaded server.
func (r *CatalogResolver) WaitCommitted(ctx context.Context, xid uint32) error {
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		var visible bool
		if err := r.conn.QueryRow(ctx, visibleSQL, int64(xid)).Scan(&visible); err != nil {
			return fmt.Errorf("wait for transaction %d to be visible: %w", xid, err)
		}
		if visible {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for transaction %d to be visible: %w", xid, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// ResolveRelation implements Resolver. Key columns are the table's primary
// key; without one, every column under REPLICA IDENTITY FULL, or the
// replica identity index's columns under REPLICA IDENTITY USING INDEX.
func (r *CatalogResolver) ResolveRelation(ctx context.Context, rel *pglogrepl.RelationMessage) ([]Column, error) {
	oids := make([]uint32, len(rel.Columns))
	mods := make([]int32, len(rel.Columns))
	for i, c := range rel.Columns {
		oids[i] = c.DataType
		mods[i] = c.TypeModifier
	}
	cols := make([]Column, len(rel.Columns))
	pk := make(map[string]bool)
	attnums := make(map[string]int, len(rel.Columns))
	defaulted := make(map[string]bool, len(rel.Columns))
	var existing []existingValue
	err := pgx.BeginTxFunc(ctx, r.conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, resolveSession); err != nil {
			return fmt.Errorf("pin session settings: %w", err)
		}
		rows, err := tx.Query(ctx, columnTypesSQL, oids, mods)
		if err != nil {
			return fmt.Errorf("query column types: %w", err)
		}
		n := 0
		for rows.Next() {
			var (
				ord           int64
				typ, baseType string
				baseOID       uint32
			)
			if err := rows.Scan(&ord, &typ, &baseOID, &baseType); err != nil {
				rows.Close()
				return fmt.Errorf("scan column types: %w", err)
			}
			if ord < 1 || int(ord) > len(cols) {
				rows.Close()
				return fmt.Errorf("column types: ordinal %d out of range", ord)
			}
			c := &cols[ord-1]
			c.Column.Type = typ
			if baseOID >= firstNormalOID {
				// Enums, extension types (citext, hstore…), composites and
				// arrays of them: destinations store their text form as text.
				c.Column.BaseType, c.ValueOID = "text", pgtype.TextOID
			} else {
				c.Column.BaseType, c.ValueOID = baseType, baseOID
			}
			n++
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("query column types: %w", err)
		}
		if n != len(cols) {
			return fmt.Errorf("column types: got %d rows for %d columns", n, len(cols))
		}
		pkRows, err := tx.Query(ctx, primaryKeySQL, rel.RelationID)
		if err != nil {
			return fmt.Errorf("query primary key: %w", err)
		}
		names, err := pgx.CollectRows(pkRows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("query primary key: %w", err)
		}
		for _, n := range names {
			pk[n] = true
		}
		numRows, err := tx.Query(ctx, attnumsSQL, rel.RelationID)
		if err != nil {
			return fmt.Errorf("query column numbers: %w", err)
		}
		var name string
		var num int
		var def bool
		if _, err := pgx.ForEachRow(numRows, []any{&name, &num, &def}, func() error {
			attnums[name] = num
			defaulted[name] = def
			return nil
		}); err != nil {
			return fmt.Errorf("query column numbers: %w", err)
		}
		if r.version == 0 {
			if err := tx.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&r.version); err != nil {
				return fmt.Errorf("read server version: %w", err)
			}
		}
		if r.version < 110000 {
			return nil
		}
		exRows, err := tx.Query(ctx, existingValuesSQL, rel.RelationID)
		if err != nil {
			return fmt.Errorf("query existing values: %w", err)
		}
		existing, err = pgx.CollectRows(exRows, func(row pgx.CollectableRow) (existingValue, error) {
			var v existingValue
			err := row.Scan(&v.name, &v.array)
			return v, err
		})
		if err != nil {
			return fmt.Errorf("query existing values: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("resolve %s.%s (oid %d): %w", rel.Namespace, rel.RelationName, rel.RelationID, err)
	}
	byName := make(map[string]string, len(existing))
	for _, e := range existing {
		byName[e.name] = e.array
	}
	var types *pgtype.Map
	for i, c := range rel.Columns {
		cols[i].Column.Name = c.Name
		cols[i].Column.Attnum = attnums[c.Name]
		cols[i].Defaulted = defaulted[c.Name]
		if array, ok := byName[c.Name]; ok {
			text, err := firstArrayElement(array)
			if err != nil {
				return nil, fmt.Errorf("resolve %s.%s column %s: existing value: %w", rel.Namespace, rel.RelationName, c.Name, err)
			}
			if types == nil {
				types = pgtype.NewMap()
			}
			v, err := textValue(types, cols[i].ValueOID, []byte(text))
			if err != nil {
				return nil, fmt.Errorf("resolve %s.%s column %s: existing value: %w", rel.Namespace, rel.RelationName, c.Name, err)
			}
			cols[i].Column.ExistingValue = contracts.RawValue(v)
		}
		switch {
		case len(pk) > 0:
			cols[i].Key = pk[c.Name]
		case rel.ReplicaIdentity == 'f':
			cols[i].Key = true
		default:
			cols[i].Key = c.Flags&1 != 0
		}
	}
	return cols, nil
}

type existingValue struct{ name, array string }

// firstArrayElement returns the text of the only element of a one-element
// array's text output: "{7.50}" is 7.50, `{"x \"y\""}` is `x "y"`.
// array_out quotes an element that is empty, NULL-like or holds braces,
// quotes, backslashes, white space or the delimiter (an array-typed
// column's value, "{1,2}", is always quoted); an unquoted element is
// verbatim. attmissingval's arrays have lower bound 1, so no "[l:u]="
// prefix.
func firstArrayElement(s string) (string, error) {
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return "", fmt.Errorf("%.40q is not a one-element array", s)
	}
	inner := s[1 : len(s)-1]
	if inner == "" || inner == "NULL" {
		return "", fmt.Errorf("%.40q has no value", s)
	}
	if inner[0] != '"' {
		return inner, nil
	}
	var b strings.Builder
	for i := 1; i < len(inner); i++ {
		switch c := inner[i]; c {
		case '\\':
			i++
			if i == len(inner) {
				return "", fmt.Errorf("%.40q ends inside an escape", s)
			}
			b.WriteByte(inner[i])
		case '"':
			if i != len(inner)-1 {
				return "", fmt.Errorf("%.40q has more than one element", s)
			}
			return b.String(), nil
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("%.40q has an unterminated quoted element", s)
}
