package postgres

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

// Names Rosetta reserves in a destination (relational holds the shared
// ones).
const (
	bookkeepingSchema = relational.BookkeepingSchema
	inColPrefix       = "_rosetta_in_" // staging only: _rosetta_in_<pos>, the sent text of a checked column
)

// ident quotes a (possibly qualified) identifier. Every identifier in
// generated SQL goes through it.
func ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// typePattern accepts the type names format_type prints for built-in
// types: "char", or lower-case words with an optional list of (possibly
// negative) integer modifiers, optional trailing words and array brackets,
// e.g. "numeric(10,2)", "numeric(3,-2)" (PostgreSQL 15 allows a negative
// scale, and one above the precision), "timestamp(3) with time zone",
// "character varying(20)[]". Nothing else reaches DDL: other type names
// become text.
var typePattern = regexp.MustCompile(`^("char"|[a-z][a-z0-9_ ]*(\(-?[0-9]+(, ?-?[0-9]+)*\))?[a-z ]*)(\[\])*$`)

// columnType is the destination type for a source column's base type.
func columnType(baseType string) string {
	if len(baseType) <= 100 && typePattern.MatchString(baseType) {
		return baseType
	}
	return "text"
}

// tombstoneTableName names the tombstone table of one destination table
// inside _rosetta (relational.TombstoneTableName).
func tombstoneTableName(schema, table string) string {
	return relational.TombstoneTableName(schema, table)
}

// stageColumn is one data column of a staging table.
type stageColumn struct {
	Name string
	Type string // the destination column's type, as the catalog prints it
	Key  bool
	// Check is the type the values were sent as (columnType of the
	// change's base_type) when the destination column has another type
	// that may not hold every such value exactly: an existing table, or
	// a source column whose type changed. Empty: no check needed.
	Check string
}

// needsCheck reports whether a destination column of type dest may change
// values sent as type sent: the same type reads back what it printed, and
// text and unbounded varchar store the text as it is; any other type (a
// narrower numeric, a lower timestamp precision, a shorter varchar, real
// for double precision) may round or trim without an error.
func needsCheck(dest, sent string) bool {
	return dest != sent && dest != "text" && dest != "character varying"
}

// statements is the SQL of one table shape: the staging table and every
// statement Apply runs against it: the version guard's steps
// (relational.Guarded, in PostgreSQL's syntax) and the exactness checks.
// Values are bound ($1, $2 …) or copied, never spliced in.
type statements struct {
	createStage string
	copy        string
	// The guard's steps (tombstone: its upsert form).
	relational.Guarded
	// checks select, per checked column, one staged row whose value the
	// destination type does not hold exactly: its sent text, the stored
	// value's text and its key (as text[]).
	checks []columnCheck
}

// columnCheck is the exactness check of one staged column.
type columnCheck struct {
	col stageColumn
	sql string
}

// column is c as the shared statements see it.
func (c stageColumn) column() relational.Column {
	return relational.Column{Name: c.Name, Type: c.Type, Key: c.Key}
}

// syntax is PostgreSQL's spelling of the shared statements for a table
// with column versions (x.has) or without.
func (x colvSQL) syntax() relational.Syntax {
	registry := func(cols string) string {
		return "(SELECT " + cols + " FROM " + ident(bookkeepingSchema, relational.RegistryTable) + " AS w WHERE w.schema_name = $1 AND w.table_name = $2)"
	}
	watermark, collected := registry("w.truncate_lsn, w.truncate_seq"), registry("w.collect_lsn, w.collect_seq")
	return relational.Syntax{
		Ident: ident, Text: "text", Bigint: "bigint", ColvType: "jsonb", AdoptVersion: "bigint NOT NULL DEFAULT 0",
		Bound: [2]string{"$1", "$2"}, Typed: [2]string{"$1::bigint", "$2::bigint"},
		Pair:    func(lsn, seq string) string { return "jsonb_build_array(" + lsn + ", " + seq + ")" },
		Unknown: unknownVersion, Colv: x.has, ColVersion: x.colVersion, HasUnknown: x.hasUnknown, Sparse: sparseObject,
		AboveWatermark: func(v string) string { return v + " > " + watermark },
		AboveFloors:    func(v string) string { return v + " > " + watermark + " AND " + v + " >= " + collected },
		TombUpsert:     true, ColumnType: columnType, Widens: widens,
	}
}

// buildStatements generates the SQL of one shape: target and tomb are the
// destination and tombstone tables, stage the temporary staging table, cols
// the batch's columns (key columns flagged) in staging order.
func buildStatements(target, tomb, stage string, cols []stageColumn, x colvSQL) statements {
	var st statements
	var defs, names, keyText []string
	for _, c := range cols {
		defs = append(defs, ident(c.Name)+" "+c.Type)
		names = append(names, ident(c.Name))
		if c.Key {
			keyText = append(keyText, "s."+ident(c.Name)+"::text")
		}
	}
	meta := []string{ident(relational.DelCol), ident(relational.LSNCol), ident(relational.SeqCol), ident(relational.ColvCol), ident(relational.FloorLSNCol), ident(relational.FloorSeqCol)}
	defs = append(defs, ident(relational.DelCol)+" boolean NOT NULL", ident(relational.LSNCol)+" bigint NOT NULL", ident(relational.SeqCol)+" bigint NOT NULL",
		ident(relational.ColvCol)+" jsonb", ident(relational.FloorLSNCol)+" bigint", ident(relational.FloorSeqCol)+" bigint")
	for i, c := range cols {
		if c.Check == "" {
			continue
		}
		n := ident(inColPrefix + strconv.Itoa(i+1))
		defs = append(defs, n+" text")
		meta = append(meta, n)
		// Both sides go through the sent type and its text output, so
		// that equal values compare equal whatever their spelling
		// (1.500 in numeric(10,3) is 1.5 sent as numeric(10,1)) and
		// types without an equality operator (json, point) compare too.
		st.checks = append(st.checks, columnCheck{col: c, sql: "SELECT s." + n + ", s." + ident(c.Name) + "::text, ARRAY[" +
			strings.Join(keyText, ", ") + "] FROM " + ident(stage) + " AS s WHERE NOT s." + ident(relational.DelCol) + " AND s." + n +
			" IS NOT NULL AND (s." + ident(c.Name) + "::text::" + c.Check + ")::text IS DISTINCT FROM (s." + n + "::" + c.Check +
			")::text LIMIT 1"})
	}
	// ON COMMIT DELETE ROWS: the staging table is empty at the start of
	// every transaction, committed or rolled back.
	st.createStage = "CREATE TEMPORARY TABLE " + ident(stage) + " (" + strings.Join(defs, ", ") + ") ON COMMIT DELETE ROWS"
	st.copy = "COPY " + ident(stage) + " (" + strings.Join(append(names, meta...), ", ") + ") FROM STDIN"

	st.Guarded = x.syntax().Guarded(target, tomb, stage, relational.Columns(cols, stageColumn.column))
	return st
}

// The DDL of the shared statements in PostgreSQL's syntax; a table
// without column versions does not change it.
func addColumnSQL(target string, c stageColumn) string {
	return colvSQL{}.syntax().AddColumn(target, c.column())
}
